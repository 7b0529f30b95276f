defmodule Partisan.GenStatem do
  @moduledoc """
  `:gen_statem` across nodes over partisan: delegates to `:partisan_gen_statem`.

  State machines are ordinary OTP `:gen_statem` processes (either callback
  mode, state and event timeouts, postponing), so a module written for
  `:gen_statem` runs unchanged; start it here (or with `:gen_statem`, it is the
  same process) and reach it from any node with `call/3` and `cast/2`,
  addressing it as `{name, node}`, by a pid that arrived in a message, or
  locally as usual.

      {:ok, _} = Partisan.GenStatem.start_link({:local, Door}, Door, :code, [])
      # on another node of the cluster
      Partisan.GenStatem.call({Door, :"a@127.0.0.1"}, {:button, 1})
  """

  @typedoc "A state machine: local pid or name, `{name, node}`, a pid of another node, a remote ref."
  @type server :: term()

  @doc "Starts a state machine registered as `name`, linked to the caller (`:gen_statem.start_link/4`)."
  @spec start_link(term(), module(), term(), list()) :: :gen_statem.start_ret()
  defdelegate start_link(name, module, init_arg, opts), to: :partisan_gen_statem

  @doc "Starts an unregistered state machine linked to the caller."
  @spec start_link(module(), term(), list()) :: :gen_statem.start_ret()
  defdelegate start_link(module, init_arg, opts), to: :partisan_gen_statem

  @doc "Starts a state machine registered as `name`, without a link."
  @spec start(term(), module(), term(), list()) :: :gen_statem.start_ret()
  defdelegate start(name, module, init_arg, opts), to: :partisan_gen_statem

  @doc "Calls the state machine on whichever node (see `:partisan_gen_statem.call/3`)."
  @spec call(server(), term(), timeout() | list() | tuple()) :: term()
  defdelegate call(server, request, timeout \\ :infinity), to: :partisan_gen_statem

  @doc "Casts an event to the state machine on whichever node."
  @spec cast(server(), term()) :: :ok
  defdelegate cast(server, event), to: :partisan_gen_statem

  @doc "Replies to a caller from the state machine."
  @spec reply(:gen_statem.from(), term()) :: :ok
  defdelegate reply(from, reply), to: :partisan_gen_statem

  @doc "Stops the state machine on whichever node."
  @spec stop(server(), term(), timeout()) :: :ok
  defdelegate stop(server, reason \\ :normal, timeout \\ :infinity), to: :partisan_gen_statem
end
