defmodule Partisan.TestInspector do
  @moduledoc false
  # Runs on the peer nodes of test/partisan_test.exs: sends messages over
  # partisan and judges, on the receiving node itself, what arrived. Every
  # atom the tests want to exist only on the sender is made at run time.

  @doc "Registers an inspector under `name`; it keeps a verdict on the last message."
  @spec start(atom()) :: :ok
  def start(name) do
    parent = self()

    pid =
      spawn(fn ->
        Process.register(self(), name)
        send(parent, {self(), :ready})
        loop(nil)
      end)

    receive do
      {^pid, :ready} -> :ok
    end
  end

  @doc "The inspector's verdict on the last message it judged, or nil."
  @spec verdict(atom()) :: term()
  def verdict(name) do
    send(name, {:verdict, self()})

    receive do
      {:verdict, v} -> v
    after
      5_000 -> :no_inspector
    end
  end

  @doc "Whether an atom with this text exists on this node."
  @spec atom_exists?(String.t()) :: boolean()
  def atom_exists?(text) do
    _ = String.to_existing_atom(text)
    true
  rescue
    ArgumentError -> false
  end

  @doc "Defines a struct module here, at run time; returns its name."
  @spec define_struct(String.t()) :: String.t()
  def define_struct(name) do
    Code.compile_string("defmodule #{name} do\n defstruct [:x, :y]\nend")
    "Elixir." <> name
  end

  @doc "Sends a struct of the module `module` (made here) to `dest`."
  @spec send_struct(String.t(), Partisan.server_ref()) :: :ok
  def send_struct(module, dest) do
    value = struct(String.to_existing_atom(module), x: 1, y: "two")
    Partisan.forward_message(dest, {:struct, value})
  end

  @doc "Sends `n` atoms made here at run time to `dest`; returns their digest."
  @spec send_atoms(Partisan.server_ref(), pos_integer()) :: {pos_integer(), integer()}
  def send_atoms(dest, n) do
    u = System.unique_integer([:positive])
    atoms = for i <- 1..n, do: String.to_atom("only_on_sender_#{u}_#{i}")
    :ok = Partisan.forward_message(dest, {:atoms, atoms})
    {n, :erlang.phash2(Enum.map(atoms, &Atom.to_string/1))}
  end

  @doc """
  Registers the caller under a name made here at run time, asks `dest` to
  answer at `{name, node}` and waits for the answer.
  """
  @spec ask_as(Partisan.server_ref()) :: term()
  def ask_as(dest) do
    name = String.to_atom("reply_#{System.unique_integer([:positive])}")
    Process.register(self(), name)
    :ok = Partisan.forward_message(dest, {:ask, {name, Partisan.node()}})

    receive do
      :answer -> {:answered, Atom.to_string(name)}
    after
      10_000 -> :timeout
    end
  end

  defp loop(verdict) do
    receive do
      {:verdict, from} ->
        send(from, {:verdict, verdict})
        loop(verdict)

      {:struct, value} ->
        module = value.__struct__

        loop(
          {:struct, Atom.to_string(module), :code.is_loaded(module), Map.get(value, :x),
           Map.get(value, :y)}
        )

      {:atoms, atoms} ->
        loop({:atoms, length(atoms), :erlang.phash2(Enum.map(atoms, &Atom.to_string/1))})

      {:ask, reply_to} ->
        :ok = Partisan.forward_message(reply_to, :answer)
        loop({:asked, reply_to |> elem(0) |> Atom.to_string()})
    end
  end
end
