%% -----------------------------------------------------------------------------
%% @doc The behaviour of a peer service manager: the module, named by the
%% option `peer_service_manager', that maintains the membership and the
%% connections, and to which {@link partisan_peer_service} dispatches.
%%
%% It also defines the types shared by the message passing functions.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_peer_service_manager).

-type server_ref() :: partisan:any_pid()
                    | partisan:any_name()
                    | partisan_remote_ref:encoded_pid()
                    | partisan_remote_ref:encoded_name()
                    | {RegName :: atom(), node()}
                    | {global, term()}
                    | {via, module(), term()}.

-type forward_opts() :: #{
                            ack => boolean(),
                            channel => partisan:channel(),
                            channel_fallback => boolean(),
                            partition_key => non_neg_integer(),
                            atom() => term()
                        }
                      | [
                            {ack, boolean()}
                          | {channel, partisan:channel()}
                          | {channel_fallback, boolean()}
                          | {partition_key, non_neg_integer()}
                          | {atom(), term()}
                        ].

-type on_event_fun() :: fun(() -> any())
                      | fun((node()) -> any())
                      | fun((node(), partisan:channel()) -> any()).

%% A node, a node specification, or any node ('_' or any).
-type node_selector() :: node() | partisan:node_spec() | '_' | any.

-export_type([forward_opts/0]).
-export_type([node_selector/0]).
-export_type([on_event_fun/0]).
-export_type([server_ref/0]).

-export([deliver/2]).
-export([disconnect/1]).
-export([disconnect/2]).
-export([mynode/0]).
-export([myself/0]).
-export([supports_capability/2]).


-callback start_link() -> {ok, pid()} | ignore | {error, term()}.

-callback join(partisan:node_spec()) -> ok | {error, term()}.

-callback sync_join(partisan:node_spec()) -> ok | {error, term()}.

-callback leave() -> ok.

-callback leave(partisan:node_spec() | node()) -> ok.

-callback members() -> {ok, [node()]}.

-callback member(node() | partisan:node_spec()) -> boolean().

-callback members_for_orchestration() -> [partisan:node_spec()].

-callback update_members([partisan:node_spec()]) ->
    ok | {error, not_implemented}.

-callback get_local_state() -> term().

-callback on_up(node_selector(), on_event_fun()) ->
    ok | {error, not_implemented}.

-callback on_up(
    node_selector(), on_event_fun(), #{channel => partisan:channel()}) ->
    ok | {error, not_implemented}.

-callback on_down(node_selector(), on_event_fun()) ->
    ok | {error, not_implemented}.

-callback on_down(
    node_selector(), on_event_fun(), #{channel => partisan:channel()}) ->
    ok | {error, not_implemented}.

-callback forward_message(server_ref(), partisan:message()) ->
    partisan:forward_result().

-callback forward_message(server_ref(), partisan:message(), forward_opts()) ->
    partisan:forward_result().

-callback forward_message(
    node(), server_ref(), partisan:message(), forward_opts()) ->
    partisan:forward_result().

-callback cast_message(server_ref(), partisan:message()) -> ok.

-callback cast_message(server_ref(), partisan:message(), forward_opts()) -> ok.

-callback cast_message(
    node(), server_ref(), partisan:message(), forward_opts()) -> ok.

-callback supports_capability(Capability :: atom()) -> boolean().

-callback inject_partition(partisan:node_spec() | node(), non_neg_integer()) ->
    {ok, reference()} | {error, term()}.

-callback resolve_partition(reference()) -> ok | {error, term()}.

-callback partitions() -> {ok, [{reference(), partisan:node_spec()}]}.

-callback reserve(atom()) -> ok | {error, no_available_slots}.

-optional_callbacks([on_up/3, on_down/3, supports_capability/1,
                     inject_partition/2, resolve_partition/1, partitions/0,
                     reserve/1]).



%% @doc This node's name (Partisan 3 and 4's name for `partisan:node/0',
%% kept by Partisan 5 for old code).
-spec mynode() -> node().

mynode() ->
    partisan:node().


%% @doc This node's specification (Partisan 3 and 4's name for
%% `partisan:node_spec/0').
-spec myself() -> partisan:node_spec().

myself() ->
    partisan:node_spec().


%% @doc Whether the manager module `Mod' supports `Capability' (`false' for
%% a manager without the optional callback).
-spec supports_capability(module(), atom()) -> boolean().

supports_capability(Mod, Capability) when is_atom(Mod), is_atom(Capability) ->
    _ = code:ensure_loaded(Mod),
    case erlang:function_exported(Mod, supports_capability, 1) of
        true -> Mod:supports_capability(Capability) =:= true;
        false -> false
    end.


%% @doc Closes every connection to each node of `Nodes' (this node is
%% skipped). They stay members: the engine dials them again.
-spec disconnect([node()]) -> ok.

disconnect(Nodes) when is_list(Nodes) ->
    disconnect(Nodes, fun(_) -> ok end).


%% @doc As {@link disconnect/1}, then calls `Fun(Node)' for each node whose
%% connections were closed; what `Fun' raises is ignored.
-spec disconnect([node()], fun((node()) -> any())) -> ok.

disconnect(Nodes, Fun) when is_list(Nodes), is_function(Fun, 1) ->
    Others = [N || N <- Nodes, is_atom(N), N =/= partisan:node()],
    ok = partisan:kill_connections(Others),
    lists:foreach(fun(N) -> catch Fun(N) end, Others).


%% @doc Delivers `Message' to a process of this node named by `ServerRef':
%% a local pid or registered name, `{global, Name}', `{via, Mod, Name}', or
%% a remote reference of this node. Used by managers for what arrives for
%% local processes; a destination that names no process drops the message,
%% as `erlang:send/2' to a dead pid does, and that is logged at debug level.
-spec deliver(server_ref(), term()) -> ok.

deliver(ServerRef, Message) ->
    try local_process(ServerRef) of
        undefined ->
            dropped(ServerRef, noproc);
        Dest ->
            _ = erlang:send(Dest, Message),
            ok
    catch
        error:Reason ->
            dropped(ServerRef, Reason)
    end.


local_process({global, Name}) ->
    global:whereis_name(Name);

local_process({via, Mod, Name}) ->
    Mod:whereis_name(Name);

local_process(Pid) when is_pid(Pid) ->
    %% (A pid of another node would go out over Distributed Erlang.)
    case erlang:node(Pid) =:= erlang:node() of
        true -> Pid;
        false -> erlang:error(not_local)
    end;

local_process(Name) when is_atom(Name) ->
    whereis(Name);

local_process(RemoteRef) ->
    local_process(partisan_remote_ref:to_pid_or_name(RemoteRef)).


dropped(ServerRef, Reason) ->
    logger:debug(#{
        description => "no local process for a delivery, message dropped",
        to => ServerRef, reason => Reason
    }),
    ok.
