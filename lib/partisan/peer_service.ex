defmodule Partisan.PeerService do
  @moduledoc """
  Cluster membership: delegates to `:partisan_peer_service`.

  A node joins a cluster through any member's node spec (`Partisan.node_spec/0`
  on that member); membership then spreads to every node (full mesh).
  """

  @typedoc "Called when a node comes up or goes down: no argument, the node, or the node and channel."
  @type callback :: (() -> any()) | (node() -> any()) | (node(), Partisan.channel() -> any())

  @typedoc "Which nodes a callback is for: one node (or its spec), or any node."
  @type node_selector :: node() | Partisan.node_spec() | :any | :_

  @doc "Joins the cluster of the node described by `node_spec`; membership converges asynchronously."
  @spec join(Partisan.node_spec() | node()) :: :ok | {:error, :self_join | term()}
  defdelegate join(node_spec), to: :partisan_peer_service

  @doc "Joins and returns once this node is connected to the node described by `node_spec`."
  @spec sync_join(Partisan.node_spec()) :: :ok | {:error, :self_join | term()}
  defdelegate sync_join(node_spec), to: :partisan_peer_service

  @doc """
  Reserves a slot of HyParView's active view for a neighbour tagged `tag`
  (`{:error, :no_available_slots}` once all are reserved, and with the other managers).
  """
  @spec reserve(atom()) :: :ok | {:error, :no_available_slots | :not_implemented}
  defdelegate reserve(tag), to: :partisan_peer_service

  @doc "Makes this node leave the cluster."
  @spec leave() :: :ok
  defdelegate leave(), to: :partisan_peer_service

  @doc "Removes the node described by `node_spec` from the cluster (this node: same as `leave/0`)."
  @spec leave(Partisan.node_spec()) :: :ok
  defdelegate leave(node_spec), to: :partisan_peer_service

  @doc "The cluster members, this node included."
  @spec members() :: {:ok, [node()]}
  defdelegate members(), to: :partisan_peer_service

  @doc "Whether `node` is a cluster member."
  @spec member(node() | Partisan.node_spec()) :: boolean()
  defdelegate member(node), to: :partisan_peer_service

  @doc "Same as `member/1`."
  @spec member?(node() | Partisan.node_spec()) :: boolean()
  defdelegate member?(node), to: :partisan_peer_service, as: :member

  @doc "Runs `fun` each time a connection to a selected node comes up."
  @spec on_up(node_selector(), callback()) :: :ok | {:error, :not_implemented}
  defdelegate on_up(node, fun), to: :partisan_peer_service

  @doc "`on_up/2` for one channel: `opts` is `%{channel: channel}`."
  @spec on_up(node_selector(), callback(), %{optional(:channel) => Partisan.channel()}) ::
          :ok | {:error, :not_implemented}
  defdelegate on_up(node, fun, opts), to: :partisan_peer_service

  @doc "Runs `fun` each time the connection to a selected node goes down."
  @spec on_down(node_selector(), callback()) :: :ok | {:error, :not_implemented}
  defdelegate on_down(node, fun), to: :partisan_peer_service

  @doc "`on_down/2` for one channel: `opts` is `%{channel: channel}`."
  @spec on_down(node_selector(), callback(), %{optional(:channel) => Partisan.channel()}) ::
          :ok | {:error, :not_implemented}
  defdelegate on_down(node, fun, opts), to: :partisan_peer_service

  @doc "The live connections of this node."
  @spec connections() :: {:ok, term()}
  defdelegate connections(), to: :partisan_peer_service

  @doc "Replaces the member list: joins the given specs, removes the members not listed."
  @spec update_members([Partisan.node_spec()]) :: :ok | {:error, :not_implemented}
  defdelegate update_members(node_specs), to: :partisan_peer_service

  @doc "The members' node specifications."
  @spec members_for_orchestration() :: [Partisan.node_spec()]
  defdelegate members_for_orchestration(), to: :partisan_peer_service

  @doc """
  The member names in a membership state as callbacks get it (node specifications,
  `{:ok, nodes}` or names), as Partisan 5's `decode/1`.
  """
  @spec decode({:ok, [node() | Partisan.node_spec()]} | [node() | Partisan.node_spec()]) :: [node()]
  defdelegate decode(state), to: :partisan_peer_service

  @doc """
  Calls `fun.(members)`, with the members' node specifications, on every change of the
  membership, until the calling process exits.
  """
  @spec add_sup_callback(([Partisan.node_spec()] -> any())) :: :ok | {:error, term()}
  defdelegate add_sup_callback(fun), to: :partisan_peer_service
end
