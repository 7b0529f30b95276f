%% The peer service manager API, each function delegating to the module ?M
%% (the full-mesh manager, which owns the engine). Managers that differ only in
%% the engine's membership rules include this file after defining ?M.

-export([cast_message/2, cast_message/3, cast_message/4]).
-export([forward_message/2, forward_message/3, forward_message/4]).
-export([get_local_state/0, decode/1]).
-export([join/1, sync_join/1]).
-export([leave/0, leave/1]).
-export([member/1, members/0, members_for_orchestration/0, update_members/1]).
-export([on_down/2, on_down/3, on_up/2, on_up/3]).
-export([start_link/0]).
-export([supports_capability/1]).
-export([inject_partition/2, resolve_partition/1, partitions/0]).
-export([reserve/1]).

%% @doc As {@link partisan_peer_service:reserve/1}.
-spec reserve(atom()) -> ok | {error, no_available_slots}.
reserve(Tag) -> ?M:reserve(Tag).

%% @doc Starts the manager.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() -> ?M:start_link().

%% @doc Joins the cluster of `NodeSpec'.
-spec join(partisan:node_spec()) -> ok | {error, term()}.
join(NodeSpec) -> ?M:join(NodeSpec).

%% @doc Like {@link join/1}, returning once connected.
-spec sync_join(partisan:node_spec()) -> ok | {error, term()}.
sync_join(NodeSpec) -> ?M:sync_join(NodeSpec).

%% @doc Leaves the cluster.
-spec leave() -> ok.
leave() -> ?M:leave().

%% @doc Drops one node from the cluster.
-spec leave(partisan:node_spec() | node()) -> ok.
leave(Node) -> ?M:leave(Node).

%% @doc This node and its members (see the manager's module documentation).
-spec members() -> {ok, [node()]}.
members() -> ?M:members().

%% @doc Whether the node is a member.
-spec member(node() | partisan:node_spec()) -> boolean().
member(Node) -> ?M:member(Node).

%% @doc The members' specifications.
-spec members_for_orchestration() -> [partisan:node_spec()].
members_for_orchestration() -> ?M:members_for_orchestration().

%% @doc Makes the members exactly these (plus this node).
-spec update_members([partisan:node_spec()]) -> ok | {error, not_implemented}.
update_members(NodeSpecs) -> ?M:update_members(NodeSpecs).

%% @doc The engine's view of the membership.
-spec get_local_state() -> term().
get_local_state() -> ?M:get_local_state().

%% @doc The member names of a membership state, as {@link partisan_peer_service:decode/1}.
-spec decode({ok, [node() | partisan:node_spec()]} | [node() | partisan:node_spec()]) ->
    [node()].
decode(State) -> ?M:decode(State).

%% @doc As {@link partisan_peer_service:on_up/2}.
-spec on_up(partisan_peer_service_manager:node_selector(),
            partisan_peer_service_manager:on_event_fun()) -> ok | {error, not_implemented}.
on_up(Node, Fun) -> ?M:on_up(Node, Fun).

%% @doc As {@link partisan_peer_service:on_up/3}.
-spec on_up(partisan_peer_service_manager:node_selector(),
            partisan_peer_service_manager:on_event_fun(), map()) -> ok | {error, not_implemented}.
on_up(Node, Fun, Opts) -> ?M:on_up(Node, Fun, Opts).

%% @doc As {@link partisan_peer_service:on_down/2}.
-spec on_down(partisan_peer_service_manager:node_selector(),
              partisan_peer_service_manager:on_event_fun()) -> ok | {error, not_implemented}.
on_down(Node, Fun) -> ?M:on_down(Node, Fun).

%% @doc As {@link partisan_peer_service:on_down/3}.
-spec on_down(partisan_peer_service_manager:node_selector(),
              partisan_peer_service_manager:on_event_fun(), map()) -> ok | {error, not_implemented}.
on_down(Node, Fun, Opts) -> ?M:on_down(Node, Fun, Opts).

%% @doc As {@link partisan:forward_message/2}.
-spec forward_message(partisan:server_ref(), partisan:message()) -> partisan:forward_result().
forward_message(Ref, Msg) -> ?M:forward_message(Ref, Msg).

%% @doc As {@link partisan:forward_message/3}.
-spec forward_message(partisan:server_ref(), partisan:message(), partisan:forward_opts()) ->
    partisan:forward_result().
forward_message(Ref, Msg, Opts) -> ?M:forward_message(Ref, Msg, Opts).

%% @doc As {@link partisan:forward_message/4}.
-spec forward_message(node(), partisan:server_ref(), partisan:message(),
                      partisan:forward_opts()) -> partisan:forward_result().
forward_message(Node, Ref, Msg, Opts) -> ?M:forward_message(Node, Ref, Msg, Opts).

%% @doc As {@link partisan:cast_message/2}.
-spec cast_message(partisan:server_ref(), partisan:message()) -> ok.
cast_message(Ref, Msg) -> ?M:cast_message(Ref, Msg).

%% @doc As {@link partisan:cast_message/3}.
-spec cast_message(partisan:server_ref(), partisan:message(), partisan:forward_opts()) -> ok.
cast_message(Ref, Msg, Opts) -> ?M:cast_message(Ref, Msg, Opts).

%% @doc As {@link partisan:cast_message/4}.
-spec cast_message(node(), partisan:server_ref(), partisan:message(), partisan:forward_opts()) -> ok.
cast_message(Node, Ref, Msg, Opts) -> ?M:cast_message(Node, Ref, Msg, Opts).

%% @doc Whether the manager supports `Capability'.
-spec supports_capability(atom()) -> boolean().
supports_capability(Capability) -> ?M:supports_capability(Capability).

%% @doc As {@link partisan_pluggable_peer_service_manager:inject_partition/2}.
-spec inject_partition(partisan:node_spec() | node(), non_neg_integer()) ->
    {ok, reference()} | {error, term()}.
inject_partition(Origin, TTL) -> ?M:inject_partition(Origin, TTL).

%% @doc As {@link partisan_pluggable_peer_service_manager:resolve_partition/1}.
-spec resolve_partition(reference()) -> ok.
resolve_partition(Reference) -> ?M:resolve_partition(Reference).

%% @doc As {@link partisan_pluggable_peer_service_manager:partitions/0}.
-spec partitions() -> {ok, [{reference(), partisan:node_spec()}]}.
partitions() -> ?M:partitions().
