defmodule Partisan.TestRelay do
  @moduledoc false
  # Runs on the peer nodes of test/partisan_test.exs (compiled only for
  # MIX_ENV=test): a registered process that relays every message it receives
  # to its owner, over Distributed Erlang, so the test process can assert on it.

  @spec start(atom(), pid()) :: {:ok, pid()}
  def start(name, owner) do
    pid = spawn(fn -> loop(owner) end)
    true = Process.register(pid, name)
    {:ok, pid}
  end

  @doc "Sends `{:seq, 1}` .. `{:seq, count}` to `dest` with Partisan.forward_message/2."
  @spec send_seq(Partisan.server_ref(), pos_integer()) :: :ok
  def send_seq(dest, count) do
    Enum.each(1..count, &(:ok = Partisan.forward_message(dest, {:seq, &1})))
  end

  defp loop(owner) do
    receive do
      message ->
        send(owner, {:relayed, node(), message})
        loop(owner)
    end
  end
end
