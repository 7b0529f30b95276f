defmodule Partisan.GenServer do
  @moduledoc """
  `GenServer` across nodes over partisan: delegates to `:partisan_gen_server`.

  Servers are ordinary OTP `gen_server` processes, so a module that
  `use GenServer` runs unchanged; start it with `start_link/3` here (or with
  `GenServer.start_link/3`, it is the same server) and reach it from any node
  with `call/3`, `cast/2` and friends, addressing it as `{name, node}`, by a
  pid that arrived in a message, or locally as usual.

      {:ok, _} = Partisan.GenServer.start_link(Stack, [:hello], name: Stack)
      # on another node of the cluster
      Partisan.GenServer.call({Stack, :"a@127.0.0.1"}, :pop)
  """

  @typedoc "A server: local pid or name, `{name, node}`, a pid of another node, a remote ref."
  @type server :: term()

  @doc "Starts a server linked to the caller, as `GenServer.start_link/3` does."
  @spec start_link(module(), term(), GenServer.options()) :: GenServer.on_start()
  def start_link(module, init_arg, opts \\ []), do: GenServer.start_link(module, init_arg, opts)

  @doc "Starts a server without a link, as `GenServer.start/3` does."
  @spec start(module(), term(), GenServer.options()) :: GenServer.on_start()
  def start(module, init_arg, opts \\ []), do: GenServer.start(module, init_arg, opts)

  @doc "Calls the server on whichever node (see `:partisan_gen_server.call/3`)."
  @spec call(server(), term(), timeout() | list()) :: term()
  defdelegate call(server, request, timeout \\ 5000), to: :partisan_gen_server

  @doc "Casts to the server on whichever node."
  @spec cast(server(), term()) :: :ok
  defdelegate cast(server, request), to: :partisan_gen_server

  @doc "Replies to a caller from the server."
  @spec reply(GenServer.from(), term()) :: :ok
  defdelegate reply(from, reply), to: :partisan_gen_server

  @doc "Stops the server on whichever node."
  @spec stop(server(), term(), timeout()) :: :ok
  defdelegate stop(server, reason \\ :normal, timeout \\ :infinity), to: :partisan_gen_server

  @doc "Calls the server registered as `name` on each node: `{replies, bad_nodes}`."
  @spec multi_call([node()], atom(), term(), timeout()) :: {[{node(), term()}], [node()]}
  defdelegate multi_call(nodes, name, request, timeout \\ :infinity), to: :partisan_gen_server

  @doc "Casts to the server registered as `name` on each node."
  @spec abcast([node()], atom(), term()) :: :abcast
  defdelegate abcast(nodes, name, request), to: :partisan_gen_server
end
