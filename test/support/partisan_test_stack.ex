defmodule Partisan.TestStack do
  @moduledoc false
  # A plain `use GenServer` module, called across nodes by test/partisan_test.exs
  # through Partisan.GenServer.
  use GenServer

  @impl true
  def init(items), do: {:ok, items}

  @impl true
  def handle_call(:pop, _from, [top | rest]), do: {:reply, top, rest}
  def handle_call(:pop, _from, []), do: {:reply, :empty, []}

  @impl true
  def handle_cast({:push, item}, items), do: {:noreply, [item | items]}
end
