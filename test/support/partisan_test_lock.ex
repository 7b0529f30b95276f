defmodule Partisan.TestLock do
  @moduledoc false
  # A plain `:gen_statem` module (state functions, a state timeout), called
  # across nodes by test/partisan_test.exs through Partisan.GenStatem.
  @behaviour :gen_statem

  @impl true
  def callback_mode, do: :state_functions

  @impl true
  def init(code), do: {:ok, :locked, code}

  def locked({:call, from}, {:try, code}, code),
    do: {:next_state, :open, code, [{:reply, from, :opened}, {:state_timeout, 200, :relock}]}

  def locked({:call, from}, {:try, _}, code), do: {:keep_state, code, [{:reply, from, :wrong}]}
  def locked({:call, from}, :state, code), do: {:keep_state, code, [{:reply, from, :locked}]}
  def locked(:cast, {:set, new}, _code), do: {:keep_state, new}

  def open(:state_timeout, :relock, code), do: {:next_state, :locked, code}
  def open({:call, from}, :state, code), do: {:keep_state, code, [{:reply, from, :open}]}
  def open({:call, _from}, {:try, _}, _code), do: {:keep_state_and_data, [:postpone]}
  def open(:cast, {:set, _}, _code), do: {:keep_state_and_data, [:postpone]}
end
