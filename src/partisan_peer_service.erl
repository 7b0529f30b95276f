%% -----------------------------------------------------------------------------
%% @doc The peer service: joining and leaving the cluster, the membership and
%% node status callbacks. Each function dispatches to the configured peer
%% service manager (option `peer_service_manager', see {@link manager/0}).
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_peer_service).

-include("partisan.hrl").

-export([add_sup_callback/1]).
-export([broadcast_members/0]).
-export([broadcast_members/1]).
-export([cancel_exchanges/1]).
-export([connections/0]).
-export([exchanges/0]).
-export([exchanges/1]).
-export([decode/1]).
-export([get_local_state/0]).
-export([inject_partition/2]).
-export([join/1]).
-export([leave/0]).
-export([leave/1]).
-export([manager/0]).
-export([member/1]).
-export([members/0]).
-export([members_for_orchestration/0]).
-export([on_down/2]).
-export([on_down/3]).
-export([on_up/2]).
-export([on_up/3]).
-export([partitions/0]).
-export([reserve/1]).
-export([resolve_partition/1]).
-export([stop/0]).
-export([node_name/1]).
-export([stop/1]).
-export([sync_join/1]).
-export([update_members/1]).

-type node_selector() :: partisan_peer_service_manager:node_selector().
-type on_event_fun() :: partisan_peer_service_manager:on_event_fun().
-type event_opts() :: #{channel => partisan:channel()}.



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Returns the peer service manager module in use.
%% @end
%% -----------------------------------------------------------------------------
-spec manager() -> module().

manager() ->
    ?PEER_SERVICE_MANAGER.


%% -----------------------------------------------------------------------------
%% @doc Joins the cluster of the node described by `NodeSpec' (or of node
%% `Node', whose specification is found with {@link partisan:node_spec/1}).
%% Returns once the join is under way; the membership spreads by gossip.
%% @end
%% -----------------------------------------------------------------------------
-spec join(partisan:node_spec() | node()) ->
    ok | {error, self_join | not_yet_connected | term()}.

join(Arg) ->
    with_node_spec(Arg, fun(NodeSpec) -> (manager()):join(NodeSpec) end).


%% -----------------------------------------------------------------------------
%% @doc Like {@link join/1}, then waits (up to 10 seconds) until every
%% connection to the node is up. Returns `{error, timeout}' if they are not.
%% @end
%% -----------------------------------------------------------------------------
-spec sync_join(partisan:node_spec() | node()) ->
    ok | {error, self_join | timeout | term()}.

sync_join(Arg) ->
    with_node_spec(Arg, fun(NodeSpec) -> (manager()):sync_join(NodeSpec) end).


%% -----------------------------------------------------------------------------
%% @doc Makes the local node leave the cluster.
%% @end
%% -----------------------------------------------------------------------------
-spec leave() -> ok.

leave() ->
    (manager()):leave().


%% -----------------------------------------------------------------------------
%% @doc Removes a node from the cluster; for the local node, same as
%% {@link leave/0}.
%% @end
%% -----------------------------------------------------------------------------
-spec leave(partisan:node_spec() | node()) -> ok.

leave(Arg) ->
    case node_name(Arg) =:= partisan:node() of
        true -> (manager()):leave();
        false -> (manager()):leave(Arg)
    end.


%% -----------------------------------------------------------------------------
%% @doc The nodes Plumtree broadcasts reach from here, this node included.
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast_members() -> ordsets:ordset(node()).

broadcast_members() ->
    partisan_plumtree_broadcast:broadcast_members().


%% @doc As {@link broadcast_members/0} (the timeout is kept for Partisan 5).
-spec broadcast_members(infinity | pos_integer()) -> ordsets:ordset(node()).

broadcast_members(Timeout) ->
    partisan_plumtree_broadcast:broadcast_members(Timeout).


%% @doc The anti-entropy exchanges running on this node.
-spec exchanges() -> {ok, [partisan_plumtree_broadcast:exchange()]}.

exchanges() ->
    partisan_plumtree_broadcast:exchanges().


%% @doc The anti-entropy exchanges running on `Node'.
-spec exchanges(node()) ->
    {ok, [partisan_plumtree_broadcast:exchange()]} | {error, term()}.

exchanges(Node) ->
    partisan_plumtree_broadcast:exchanges(Node).


%% @doc Stops the exchanges `Selector' names (`all', `{peer, Node}',
%% `{mod, Module}', a reference or a pid); returns them.
-spec cancel_exchanges(partisan_plumtree_broadcast:selector()) ->
    [partisan_plumtree_broadcast:exchange()].

cancel_exchanges(Selector) ->
    partisan_plumtree_broadcast:cancel_exchanges(Selector).


%% -----------------------------------------------------------------------------
%% @doc Returns the names of the members, the local node included.
%% @end
%% -----------------------------------------------------------------------------
-spec members() -> {ok, [node()]}.

members() ->
    (manager()):members().


%% -----------------------------------------------------------------------------
%% @doc Returns whether the node is a member.
%% @end
%% -----------------------------------------------------------------------------
-spec member(node() | partisan:node_spec()) -> boolean().

member(Arg) ->
    (manager()):member(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns the specifications of the members, the local node included.
%% @end
%% -----------------------------------------------------------------------------
-spec members_for_orchestration() -> [partisan:node_spec()].

members_for_orchestration() ->
    (manager()):members_for_orchestration().


%% -----------------------------------------------------------------------------
%% @doc Makes the membership `NodeSpecs' (plus the local node): joins the
%% listed nodes and removes the others. For external membership services.
%% @end
%% -----------------------------------------------------------------------------
-spec update_members([partisan:node_spec()]) -> ok | {error, not_implemented}.

update_members(NodeSpecs) when is_list(NodeSpecs) ->
    (manager()):update_members(NodeSpecs).


%% -----------------------------------------------------------------------------
%% @doc Returns the live connections as `{Node, Channel, Index}' tuples.
%% @end
%% -----------------------------------------------------------------------------
-spec connections() -> {ok, [{node(), partisan:channel(), non_neg_integer()}]}.

connections() ->
    {ok, partisan_nif:connections(partisan_nif:engine())}.


%% -----------------------------------------------------------------------------
%% @doc The member names in a membership state as callbacks get it: the
%% node specifications that {@link add_sup_callback/1}'s funs receive, the
%% `{ok, Nodes}' of {@link get_local_state/0}, or a list of names. As in
%% Partisan 5, a callback written as `fun(State) -> decode(State) end'
%% gets the names. Fails with `badarg' for anything else.
%% @end
%% -----------------------------------------------------------------------------
-spec decode({ok, [node() | partisan:node_spec()]} | [node() | partisan:node_spec()]) ->
    [node()].

decode({ok, Members}) when is_list(Members) ->
    decode(Members);

decode(Members) when is_list(Members) ->
    [member_name(M, Members) || M <- Members];

decode(Other) ->
    erlang:error(badarg, [Other]).


member_name(#{name := Node}, _) when is_atom(Node) -> Node;
member_name(Node, _) when is_atom(Node) -> Node;
member_name(_, Members) -> erlang:error(badarg, [Members]).


%% -----------------------------------------------------------------------------
%% @doc Returns the manager's view of the membership.
%% @end
%% -----------------------------------------------------------------------------
-spec get_local_state() -> term().

get_local_state() ->
    (manager()):get_local_state().


%% -----------------------------------------------------------------------------
%% @doc Calls `Fun' whenever the node (`` '_' '' or `any': every node) comes
%% up. `Fun' takes no argument or the node.
%% @end
%% -----------------------------------------------------------------------------
-spec on_up(node_selector(), on_event_fun()) -> ok | {error, not_implemented}.

on_up(Node, Fun) ->
    (manager()):on_up(Node, Fun).


%% -----------------------------------------------------------------------------
%% @doc Like {@link on_up/2}, with options (`channel').
%% @end
%% -----------------------------------------------------------------------------
-spec on_up(node_selector(), on_event_fun(), event_opts()) ->
    ok | {error, not_implemented}.

on_up(Node, Fun, Opts) ->
    call_optional(on_up, [Node, Fun, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Calls `Fun' whenever the node (`` '_' '' or `any': every node) goes
%% down. `Fun' takes no argument or the node.
%% @end
%% -----------------------------------------------------------------------------
-spec on_down(node_selector(), on_event_fun()) ->
    ok | {error, not_implemented}.

on_down(Node, Fun) ->
    (manager()):on_down(Node, Fun).


%% -----------------------------------------------------------------------------
%% @doc Like {@link on_down/2}, with options (`channel').
%% @end
%% -----------------------------------------------------------------------------
-spec on_down(node_selector(), on_event_fun(), event_opts()) ->
    ok | {error, not_implemented}.

on_down(Node, Fun, Opts) ->
    call_optional(on_down, [Node, Fun, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Calls `Fun(Members)', with the members' specifications, on every
%% change of the membership, until the calling process exits (see
%% {@link partisan_peer_service_events}).
%% @end
%% -----------------------------------------------------------------------------
-spec add_sup_callback(partisan_peer_service_events:callback()) ->
    ok | {error, term()}.

add_sup_callback(Fun) when is_function(Fun, 1) ->
    partisan_peer_service_events:add_sup_callback(Fun).


%% -----------------------------------------------------------------------------
%% @doc The partitions injected with {@link inject_partition/2} that this
%% node holds: `{Reference, NodeSpec}' for each node its sends are cut off
%% from. `{error, not_implemented}' from a custom manager without them.
%% @end
%% -----------------------------------------------------------------------------
-spec partitions() -> {ok, [{reference(), partisan:node_spec()}]} | {error, not_implemented}.

partitions() ->
    call_optional(partitions, []).


%% -----------------------------------------------------------------------------
%% @doc Fault injection: `Origin' stops sending to its neighbours, and so do
%% the nodes up to `TTL' hops from it; sends to them fail with `{error,
%% partitioned}' until {@link resolve_partition/1}. See
%% {@link partisan_pluggable_peer_service_manager:inject_partition/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec inject_partition(partisan:node_spec() | node(), non_neg_integer()) ->
    {ok, reference()} | {error, term()}.

inject_partition(Origin, TTL) ->
    call_optional(inject_partition, [Origin, TTL]).


%% -----------------------------------------------------------------------------
%% @doc Ends a partition made by {@link inject_partition/2}, on every node
%% it reached.
%% @end
%% -----------------------------------------------------------------------------
-spec resolve_partition(reference()) -> ok | {error, not_implemented}.

resolve_partition(Reference) ->
    call_optional(resolve_partition, [Reference]).


%% -----------------------------------------------------------------------------
%% @doc Reserves a slot of the active view for a neighbour tagged `Tag' (its
%% `tag' option), as Partisan 5's HyParView manager does: the slot is kept
%% for such a node, never given to another, and its holder is never dropped
%% to make room; `{error, no_available_slots}' once every slot is reserved.
%% The other managers have no slots (`{error, no_available_slots}'); a custom
%% manager without the callback answers `{error, not_implemented}'. See
%% {@link partisan_hyparview_peer_service_manager:active/1}.
%% @end
%% -----------------------------------------------------------------------------
-spec reserve(atom()) -> ok | {error, no_available_slots | not_implemented}.

reserve(Tag) ->
    call_optional(reserve, [Tag]).


%% -----------------------------------------------------------------------------
%% @doc Stops the node (`init:stop/0'), as Partisan does.
%% @end
%% -----------------------------------------------------------------------------
-spec stop() -> ok.

stop() ->
    stop("received stop request").


%% -----------------------------------------------------------------------------
%% @doc Logs `Reason' and stops the node (`init:stop/0'), as Partisan does.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(Reason :: term()) -> ok.

stop(Reason) ->
    logger:notice(#{description => "Peer service stopping", reason => Reason}),
    init:stop().



%% -----------------------------------------------------------------------------
%% @doc The node named by `Arg', a node or a node specification (the two forms
%% that join, leave, member and the event callbacks accept). Fails with
%% `badarg' on anything else.
%% @end
%% -----------------------------------------------------------------------------
-spec node_name(node() | partisan:node_spec()) -> node() | no_return().

node_name(#{name := Node}) when is_atom(Node) ->
    Node;

node_name(Node) when is_atom(Node) ->
    Node;

node_name(Arg) ->
    erlang:error(badarg, [Arg]).



%% =============================================================================
%% PRIVATE
%% =============================================================================



with_node_spec(#{name := Node} = NodeSpec, Fun) when is_atom(Node) ->
    case Node =:= partisan:node() of
        true -> {error, self_join};
        false -> Fun(NodeSpec)
    end;

with_node_spec(Node, Fun) when is_atom(Node) ->
    case partisan:node_spec(Node) of
        {ok, NodeSpec} ->
            with_node_spec(NodeSpec, Fun);
        {error, _} = Error ->
            Error
    end;

with_node_spec(Arg, _) ->
    erlang:error(badarg, [Arg]).


%% Calls an optional callback of the manager.
call_optional(Function, Args) ->
    Manager = manager(),
    _ = code:ensure_loaded(Manager),
    case erlang:function_exported(Manager, Function, length(Args)) of
        true -> apply(Manager, Function, Args);
        false -> {error, not_implemented}
    end.
