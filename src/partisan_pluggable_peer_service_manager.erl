%% -----------------------------------------------------------------------------
%% @doc The full-mesh peer service manager: every member connects to every
%% other member.
%%
%% The membership and the connections live in the native engine; this
%% process starts and stops it, receives its events and runs the `on_up' and
%% `on_down' callbacks. Queries and membership changes go straight to the
%% engine, and messages are sent by {@link partisan:forward_message/4} in the
%% caller, so this process is on no hot path.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_pluggable_peer_service_manager).

-behaviour(gen_server).
-behaviour(partisan_peer_service_manager).

-include("partisan.hrl").

-define(SYNC_JOIN_TIMEOUT, 10000).
-define(SYNC_JOIN_POLL_INTERVAL, 50).

-type event() :: up | down.
-type callback() :: {partisan_peer_service_manager:on_event_fun(),
                     partisan:channel()}.
-type callbacks() :: #{node() | '_' => [callback()]}.

-record(state, {
    engine :: partisan_nif:engine(),
    up = #{} :: callbacks(),
    down = #{} :: callbacks(),
    %% The member list of the last membership event.
    members :: [node()],
    %% Injected partitions: each cuts this node's sends to the neighbours it
    %% had when it reached this node (see inject_partition/2).
    partitions = [] :: [{reference(), partisan:node_spec()}],
    %% Per kind of handshake failure (auth, tls): when it was last logged, and
    %% how many happened since.
    failures_logged = #{} :: #{auth | tls => {integer(), non_neg_integer()}}
}).

%% At most one log line about failed authentication per this many ms.
-define(AUTH_LOG_INTERVAL, 10000).

%% API
-export([cast_message/2]).
-export([cast_message/3]).
-export([cast_message/4]).
-export([decode/1]).
-export([forward_message/2]).
-export([forward_message/3]).
-export([forward_message/4]).
-export([get_local_state/0]).
-export([join/1]).
-export([leave/0]).
-export([leave/1]).
-export([member/1]).
-export([members/0]).
-export([members_for_orchestration/0]).
-export([on_down/2]).
-export([on_down/3]).
-export([on_up/2]).
-export([on_up/3]).
-export([start_link/0]).
-export([supports_capability/1]).
-export([inject_partition/2]).
-export([resolve_partition/1]).
-export([partitions/0]).
-export([reserve/1]).
-export([sync_join/1]).
-export([update_members/1]).

%% gen_server callbacks
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([terminate/2]).



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Starts the manager (and the native engine), registered under this
%% module's name.
%% @end
%% -----------------------------------------------------------------------------
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).


%% -----------------------------------------------------------------------------
%% @doc Adds `NodeSpec' to the membership and connects to it.
%% @end
%% -----------------------------------------------------------------------------
-spec join(partisan:node_spec()) -> ok | {error, term()}.

join(#{name := _} = NodeSpec) ->
    partisan_nif:join(partisan_nif:engine(), NodeSpec).


%% -----------------------------------------------------------------------------
%% @doc Like {@link join/1}, then waits up to 10 seconds for every connection
%% to the node to be up.
%% @end
%% -----------------------------------------------------------------------------
-spec sync_join(partisan:node_spec()) -> ok | {error, timeout | term()}.

sync_join(#{name := Node} = NodeSpec) ->
    case join(NodeSpec) of
        ok ->
            Deadline = now_ms() + ?SYNC_JOIN_TIMEOUT,
            wait_until_fully_connected(Node, Deadline);
        Error ->
            Error
    end.


%% -----------------------------------------------------------------------------
%% @doc Makes the local node leave the cluster.
%% @end
%% -----------------------------------------------------------------------------
-spec leave() -> ok.

leave() ->
    partisan_nif:leave(partisan_nif:engine(), partisan:node()).


%% -----------------------------------------------------------------------------
%% @doc Removes a node from the cluster.
%% @end
%% -----------------------------------------------------------------------------
-spec leave(partisan:node_spec() | node()) -> ok.

leave(NodeOrSpec) ->
    Node = partisan_peer_service:node_name(NodeOrSpec),
    partisan_nif:leave(partisan_nif:engine(), Node).


%% -----------------------------------------------------------------------------
%% @doc Returns the names of the members, the local node included.
%% @end
%% -----------------------------------------------------------------------------
-spec members() -> {ok, [node()]}.

members() ->
    {ok, [Node || #{name := Node} <- members_for_orchestration()]}.


%% -----------------------------------------------------------------------------
%% @doc Returns whether the node is a member.
%% @end
%% -----------------------------------------------------------------------------
-spec member(node() | partisan:node_spec()) -> boolean().

member(NodeOrSpec) ->
    Node = partisan_peer_service:node_name(NodeOrSpec),
    lists:any(
        fun(#{name := Name}) -> Name =:= Node end,
        members_for_orchestration()
    ).


%% -----------------------------------------------------------------------------
%% @doc Returns the specifications of the members, the local node included.
%% @end
%% -----------------------------------------------------------------------------
-spec members_for_orchestration() -> [partisan:node_spec()].

members_for_orchestration() ->
    partisan_nif:members(partisan_nif:engine()).


%% -----------------------------------------------------------------------------
%% @doc Joins the listed nodes and removes the members that are not listed
%% (never the local node).
%% @end
%% -----------------------------------------------------------------------------
-spec update_members([partisan:node_spec()]) -> ok.

update_members(NodeSpecs) when is_list(NodeSpecs) ->
    partisan_nif:update_members(partisan_nif:engine(), NodeSpecs).


%% -----------------------------------------------------------------------------
%% @doc Returns `{ok, Members}': the member names of the last membership
%% change this node saw.
%% @end
%% -----------------------------------------------------------------------------
-spec get_local_state() -> {ok, [node()]}.

get_local_state() ->
    gen_server:call(?MODULE, get_local_state, infinity).


%% -----------------------------------------------------------------------------
%% @doc The member names of a membership state (what {@link get_local_state/0}
%% returns, or the node specifications membership callbacks get): Partisan 5's
%% `Manager:decode/1', as {@link partisan_peer_service:decode/1}.
%% @end
%% -----------------------------------------------------------------------------
-spec decode({ok, [node() | partisan:node_spec()]} | [node() | partisan:node_spec()]) ->
    [node()].

decode(State) ->
    partisan_peer_service:decode(State).


%% -----------------------------------------------------------------------------
%% @doc Same as `on_up(Node, Fun, #{})'.
%% @end
%% -----------------------------------------------------------------------------
-spec on_up(
    partisan_peer_service_manager:node_selector(),
    partisan_peer_service_manager:on_event_fun()) -> ok.

on_up(Node, Fun) ->
    on_up(Node, Fun, #{}).


%% -----------------------------------------------------------------------------
%% @doc Calls `Fun' each time the node comes up (`` '_' '' or `any': any
%% node). `Fun' takes no argument, the node, or the node and the channel
%% given as option `channel' (default: the default channel). Callbacks run in
%% this manager, one after another; an exception in one is logged.
%% @end
%% -----------------------------------------------------------------------------
-spec on_up(
    partisan_peer_service_manager:node_selector(),
    partisan_peer_service_manager:on_event_fun(),
    #{channel => partisan:channel()}) -> ok.

on_up(Node, Fun, Opts) ->
    subscribe(up, Node, Fun, Opts).


%% -----------------------------------------------------------------------------
%% @doc Same as `on_down(Node, Fun, #{})'.
%% @end
%% -----------------------------------------------------------------------------
-spec on_down(
    partisan_peer_service_manager:node_selector(),
    partisan_peer_service_manager:on_event_fun()) -> ok.

on_down(Node, Fun) ->
    on_down(Node, Fun, #{}).


%% -----------------------------------------------------------------------------
%% @doc Calls `Fun' each time the node goes down; see {@link on_up/3}.
%% @end
%% -----------------------------------------------------------------------------
-spec on_down(
    partisan_peer_service_manager:node_selector(),
    partisan_peer_service_manager:on_event_fun(),
    #{channel => partisan:channel()}) -> ok.

on_down(Node, Fun, Opts) ->
    subscribe(down, Node, Fun, Opts).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:forward_message/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(partisan:server_ref(), partisan:message()) ->
    partisan:forward_result().

forward_message(ServerRef, Msg) ->
    partisan:forward_message(ServerRef, Msg).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:forward_message/3}.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(
    partisan:server_ref(), partisan:message(), partisan:forward_opts()) ->
    partisan:forward_result().

forward_message(ServerRef, Msg, Opts) ->
    partisan:forward_message(ServerRef, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:forward_message/4}.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(
    node(), partisan:server_ref(), partisan:message(),
    partisan:forward_opts()) -> partisan:forward_result().

forward_message(Node, ServerRef, Msg, Opts) ->
    partisan:forward_message(Node, ServerRef, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:cast_message/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(partisan:server_ref(), partisan:message()) -> ok.

cast_message(ServerRef, Msg) ->
    partisan:cast_message(ServerRef, Msg).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:cast_message/3}.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(
    partisan:server_ref(), partisan:message(), partisan:forward_opts()) -> ok.

cast_message(ServerRef, Msg, Opts) ->
    partisan:cast_message(ServerRef, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc See {@link partisan:cast_message/4}.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(
    node(), partisan:server_ref(), partisan:message(),
    partisan:forward_opts()) -> ok.

cast_message(Node, ServerRef, Msg, Opts) ->
    partisan:cast_message(Node, ServerRef, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc Returns whether this manager supports `Capability': process and node
%% monitoring (`monitoring') is supported, as every member sees every other.
%% @end
%% -----------------------------------------------------------------------------
-spec supports_capability(atom()) -> boolean().

supports_capability(monitoring) ->
    true;

supports_capability(_) ->
    false.


%% -----------------------------------------------------------------------------
%% @doc Reserves an active-view slot for a neighbour tagged `Tag' (see
%% {@link partisan_peer_service:reserve/1}). Only HyParView has such slots:
%% the full mesh, like Partisan 5's, answers `{error, no_available_slots}'.
%% @end
%% -----------------------------------------------------------------------------
-spec reserve(atom()) -> ok | {error, no_available_slots}.

reserve(Tag) when is_atom(Tag) ->
    partisan_nif:overlay_reserve(partisan_nif:engine(), Tag);

reserve(Tag) ->
    erlang:error(badarg, [Tag]).


%% -----------------------------------------------------------------------------
%% @doc Fault injection, as Partisan 5's HyParView manager does it: the node
%% `Origin' (a spec or a name) stops sending to each of its neighbours
%% (`partisan:nodes/0'), and passes the request on to them, with one hop
%% less, while `TTL' hops are left; each node it reaches stops sending to its
%% own neighbours the same way. Sends then fail with `{error, partitioned}'
%% (messages, calls, monitors: everything that goes through
%% `partisan:forward_message', on every channel but the membership channel,
%% which carries these requests); connections, membership and heartbeats go
%% on, and what the partitioned nodes send still arrives. Returns the
%% partition's reference, for {@link resolve_partition/1}.
%% @end
%% -----------------------------------------------------------------------------
-spec inject_partition(partisan:node_spec() | node(), non_neg_integer()) ->
    {ok, reference()} | {error, term()}.

inject_partition(Origin, TTL) when is_integer(TTL), TTL >= 0 ->
    Node = partisan_peer_service:node_name(Origin),
    gen_server:call(?MODULE, {inject_partition, Node, TTL}, infinity).


%% -----------------------------------------------------------------------------
%% @doc Ends the partition `Reference' on every node it reached (the request
%% spreads from node to node while nodes still hold it).
%% @end
%% -----------------------------------------------------------------------------
-spec resolve_partition(reference()) -> ok.

resolve_partition(Reference) when is_reference(Reference) ->
    gen_server:call(?MODULE, {resolve_partition, Reference}, infinity).


%% -----------------------------------------------------------------------------
%% @doc The partitions this node holds: `{Reference, NodeSpec}' for each
%% node its sends are cut off from.
%% @end
%% -----------------------------------------------------------------------------
-spec partitions() -> {ok, [{reference(), partisan:node_spec()}]}.

partitions() ->
    gen_server:call(?MODULE, partitions, infinity).



%% =============================================================================
%% GEN_SERVER CALLBACKS
%% =============================================================================



%% @private
-spec init([]) -> {ok, #state{}} | {stop, term()}.

init([]) ->
    %% So that terminate/2 stops the engine when the supervisor shuts us down.
    process_flag(trap_exit, true),
    case partisan_tls:engine_options() of
        {ok, Tls} ->
            start_engine(Tls);
        {error, Reason} ->
            {stop, {partisan_nif_start_failed, Reason}}
    end.


%% @private
-spec handle_call(term(), gen_server:from(), #state{}) ->
    {reply, term(), #state{}}.

handle_call({subscribe, Event, Node, Callback}, _From, State) ->
    {reply, ok, add_callback(Event, Node, Callback, State)};

handle_call({inject_partition, Origin, TTL}, _From, State) ->
    Ref = make_ref(),
    case Origin =:= partisan:node() of
        true ->
            {reply, {ok, Ref}, partition(Ref, TTL, State)};
        false ->
            case control({?MODULE, Origin}, {'$partisan_partition', Ref, TTL}) of
                ok -> {reply, {ok, Ref}, State};
                {error, _} = Error -> {reply, Error, State}
            end
    end;

handle_call({resolve_partition, Ref}, _From, State) ->
    {reply, ok, resolve(Ref, State)};

handle_call(partitions, _From, State) ->
    {reply, {ok, State#state.partitions}, State};

handle_call(get_local_state, _From, State) ->
    {reply, {ok, State#state.members}, State};

handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.

handle_cast(_Msg, State) ->
    {noreply, State}.


%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.

handle_info({partisan_event, {node_up, Node}}, State) ->
    ok = partisan_monitor:node_event(up, Node, undefined),
    ok = run_callbacks(Node, State#state.up),
    {noreply, State};

handle_info({partisan_event, {node_down, Node, Reason}}, State) ->
    %% Reason: why the connection whose loss took the node down closed
    %% (docs/nif_api.md lists them).
    logger:info(#{description => "Node down", node => Node, reason => Reason}),
    ok = partisan_monitor:node_event(down, Node, Reason),
    ok = run_callbacks(Node, State#state.down),
    {noreply, State};

handle_info({partisan_event, {broadcast, Mod, Root, Id, Data}}, State) ->
    ok = partisan_plumtree_broadcast:deliver(Mod, Root, Id, Data),
    {noreply, State};

handle_info({'$partisan_partition', Ref, TTL}, State) ->
    {noreply, partition(Ref, TTL, State)};

handle_info({'$partisan_resolve', Ref}, State) ->
    {noreply, resolve(Ref, State)};

handle_info({partisan_event, {membership, Members}}, State) ->
    %% add_sup_callback/1 and friends hear of each change, with the specs.
    _ = lists:sort(Members) =:= lists:sort(State#state.members)
        orelse partisan_peer_service_events:update(members_for_orchestration()),
    {noreply, State#state{members = Members}};

handle_info({partisan_event, {atoms_refused, Node, Info}}, State) ->
    #{messages := Messages, atoms := Atoms, budget := Budget} = Info,
    Description = case Budget of
        0 ->
            "Refused messages that would create atoms "
            "(safe mode: peer_atom_budget is 0)";
        _ ->
            "Refused messages that would create atoms past the budget "
            "of atoms peers may create (peer_atom_budget)"
    end,
    logger:warning(Info#{
        description => Description,
        node => Node,
        messages => Messages,
        atoms => Atoms
    }),
    {noreply, State};

handle_info({partisan_event, {role_refused, Peer, Theirs}}, State) ->
    %% A refused join is dropped at once, so this comes once per join.
    logger:warning(#{
        description =>
            "A join was refused: client-server tags do not allow this "
            "connection (clients connect only to servers; untagged nodes only "
            "to untagged ones)",
        peer => Peer,
        our_tag => partisan_config:get(tag),
        their_tag => Theirs
    }),
    {noreply, State};

handle_info({partisan_event, {auth_failed, Addr, Role}}, State) ->
    {noreply, log_handshake_failure(auth, #{
        description =>
            "A handshake failed authentication: the secrets differ "
            "(check auth_secret or the Erlang cookie on both nodes), "
            "or a stranger tried to connect",
        peer => Addr,
        this_node_was => Role
    }, State)};

handle_info({partisan_event, {tls_failed, Addr, Role, Why}}, State) ->
    {noreply, log_handshake_failure(tls, #{
        description =>
            "A TLS handshake failed: the peer's certificate is missing, "
            "expired, not issued by the configured CAs (cacertfile), or "
            "does not name its host (see server_name_indication)",
        peer => Addr,
        this_node_was => Role,
        reason => Why
    }, State)};

handle_info({partisan_event, {left, Node}}, State) ->
    _ = Node =:= partisan:node()
        andalso logger:notice(#{
            description => "This node was removed from the cluster",
            node => Node
        }),
    {noreply, State};

handle_info(_Info, State) ->
    {noreply, State}.


%% @private
-spec terminate(term(), #state{}) -> ok.

terminate(_Reason, #state{engine = Engine}) ->
    %% Forget the engine first, so that concurrent senders get a clear
    %% partisan_not_started rather than a stopping engine.
    ok = partisan_nif:erase_engine(),
    partisan_nif:stop(Engine).



%% =============================================================================
%% PRIVATE
%% =============================================================================


%% Cuts this node's sends to its neighbours under `Ref', once per partition,
%% after passing the request on (the cut would stop it).
partition(Ref, TTL, #state{partitions = Partitions} = State) ->
    case lists:keymember(Ref, 1, Partitions) of
        true ->
            State;
        false ->
            Neighbours = partisan:nodes(),
            _ = TTL > 0 andalso
                [control({?MODULE, N}, {'$partisan_partition', Ref, TTL - 1})
                 || N <- Neighbours],
            Specs = [spec_of(N) || N <- Neighbours],
            cut(State#state{partitions = Partitions ++ [{Ref, S} || S <- Specs]})
    end.


%% Ends `Ref' here first (so that the request can go out), then on the
%% neighbours; a node that does not hold it does not pass it on.
resolve(Ref, #state{partitions = Partitions} = State0) ->
    case lists:keymember(Ref, 1, Partitions) of
        true ->
            State = cut(State0#state{partitions = [P || {R, _} = P <- Partitions, R =/= Ref]}),
            _ = [control({?MODULE, N}, {'$partisan_resolve', Ref})
                 || N <- partisan:nodes()],
            State;
        false ->
            State0
    end.


%% The requests go on the membership channel, which partitions do not cut
%% (a node that holds one partition can still end another).
control(ServerRef, Msg) ->
    partisan:forward_message(ServerRef, Msg, #{channel => ?MEMBERSHIP_CHANNEL}).


cut(#state{engine = Engine, partitions = Partitions} = State) ->
    ok = partisan_nif:set_partitioned(
        Engine, lists:usort([N || {_, #{name := N}} <- Partitions])
    ),
    State.


spec_of(Node) ->
    case partisan:node_spec(Node) of
        {ok, Spec} -> Spec;
        {error, _} -> #{name => Node, listen_addrs => [], channels => #{}}
    end.




start_engine(Tls) ->
    case check_membership_config(partisan_peer_service:manager()) of
        ok -> start_engine_now(Tls);
        {error, Reason} -> {stop, Reason}
    end.


start_engine_now(Tls) ->
    ok = stop_leftover_engine(),
    Config = case Tls of
        undefined -> engine_config();
        _ -> (engine_config())#{tls => Tls}
    end,
    case partisan_nif:start(Config) of
        {ok, Engine} ->
            try publish(Engine) of
                ok -> {ok, #state{engine = Engine, members = [partisan:node()]}}
            catch
                _:Reason ->
                    ok = partisan_nif:erase_engine(),
                    ok = partisan_nif:stop(Engine),
                    {stop, {partisan_nif_start_failed, Reason}}
            end;
        {error, Reason} ->
            {stop, {partisan_nif_start_failed, Reason}}
    end.


%% The engine of a manager before us that was killed (so its terminate/2 did
%% not run): stopped, so that its listener frees the port and its connections
%% close; peers see the node go down and come back, as after a restart.
stop_leftover_engine() ->
    try partisan_nif:engine() of
        Old ->
            logger:warning("partisan: stopping the engine a previous manager left running"),
            ok = partisan_nif:erase_engine(),
            _ = partisan_nif:stop(Old),
            ok
    catch
        error:partisan_not_started -> ok
    end.


%% Logs a failed handshake of `Kind' at most once per ?AUTH_LOG_INTERVAL,
%% saying how many happened since the last report.
log_handshake_failure(Kind, Report, #state{failures_logged = Logged} = State) ->
    Now = erlang:monotonic_time(millisecond),
    case maps:get(Kind, Logged, undefined) of
        {Last, Unlogged} when Now - Last < ?AUTH_LOG_INTERVAL ->
            State#state{failures_logged = Logged#{Kind => {Last, Unlogged + 1}}};
        Previous ->
            Unlogged = case Previous of undefined -> 1; {_, N} -> N + 1 end,
            logger:warning(Report#{failures_since_last_report => Unlogged}),
            State#state{failures_logged = Logged#{Kind => {Now, 0}}}
    end.


%% Ports may have been ephemeral (0): the bound ones are published so that
%% node_spec() tells peers where to connect.
publish(Engine) ->
    ok = partisan_nif:put_engine(Engine),
    ok = partisan_config:set(listen_addrs, partisan_nif:listen_addrs(Engine)).


%% The engine's configuration (docs/nif_api.md): the node specification and
%% the transport options.
engine_config() ->
    Options = [
        periodic_interval,
        connection_interval,
        connection_jitter,
        connection_ping,
        max_frame_size,
        send_queue_limit,
        io_threads,
        io_nice,
        pid_encoding,
        ref_encoding,
        refusal_log_interval,
        handshake_limit,
        max_members,
        member_name_rate,
        broadcast_mods,
        lazy_tick_period
    ],
    Config = maps:from_list([{Key, partisan_config:get(Key)} || Key <- Options]),
    maps:merge(maps:merge(partisan:node_spec(), Config#{
        event_pid => self(),
        incarnation => erlang:system_time(nanosecond),
        auth_secret => partisan_auth:secret(),
        peer_atom_budget => atom_budget(partisan_config:get(peer_atom_budget)),
        broadcast_channels => broadcast_channels(partisan_config:get(broadcast_mods))
    }), membership_config(partisan_peer_service:manager())).


%% `{ok, Channel}' if the handler exports broadcast_channel/0 and it answers.
own_channel(Mod) ->
    Exported = code:ensure_loaded(Mod) =:= {module, Mod}
        andalso erlang:function_exported(Mod, broadcast_channel, 0),
    try
        Exported andalso {ok, Mod:broadcast_channel()}
    catch
        _:_ -> false
    end.


%% The broadcast handlers that name a channel of their own (their
%% `broadcast_channel/0'), and that channel; one that is not configured is
%% logged, and its handler's broadcasts stay on the membership channel.
broadcast_channels(Mods) ->
    Channels = partisan_config:channels(),
    Named = [{Mod, Channel} || Mod <- Mods, {ok, Channel} <- [own_channel(Mod)]],
    maps:from_list(lists:filter(
        fun({Mod, Channel}) ->
            is_map_key(Channel, Channels) orelse begin
                logger:warning("partisan: broadcast handler ~p names channel ~p, which is "
                               "not configured; its broadcasts use the membership channel",
                               [Mod, Channel]),
                false
            end
        end,
        Named
    )).


%% The static and the HyParView managers are this one with the engine's other
%% membership rules: explicit joins only, or HyParView's active view.
membership_config(partisan_static_peer_service_manager) ->
    #{static_membership => true};

membership_config(partisan_client_server_peer_service_manager) ->
    #{client_server => partisan_config:get(tag)};

membership_config(partisan_hyparview_peer_service_manager) ->
    HyParView = partisan_config:get(hyparview),
    #{hyparview => HyParView#{
        tag => partisan_config:get(tag),
        reservations => partisan_config:get(reservations)
    }};

membership_config(_) ->
    #{}.


%% As in Partisan 5, a HyParView node cannot reserve more slots than its
%% active view has; a client-server node is a client or a server.
check_membership_config(partisan_hyparview_peer_service_manager) ->
    Max = maps:get(active_max_size, partisan_config:get(hyparview)),
    case length(partisan_config:get(reservations)) =< Max of
        true -> ok;
        false -> {error, reservation_limit_exceeded}
    end;

check_membership_config(partisan_client_server_peer_service_manager) ->
    case partisan_config:get(tag) of
        Tag when Tag == client; Tag == server; Tag == undefined -> ok;
        Tag -> {error, {invalid_tag, Tag}}
    end;

check_membership_config(_) ->
    ok.


%% `auto': a quarter of the room left in the atom table, so that peers can
%% never fill it and the node's own code keeps three quarters.
atom_budget(auto) ->
    Free = erlang:system_info(atom_limit) - erlang:system_info(atom_count),
    max(0, Free div 4);

atom_budget(N) when is_integer(N), N >= 0 ->
    N.


%% Validates in the caller so that bad arguments fail there with badarg.
subscribe(Event, Node, Fun, Opts) ->
    Selector = selector(Node),
    is_callback_fun(Fun) andalso is_map(Opts)
        orelse erlang:error(badarg, [Node, Fun, Opts]),
    Channel = maps:get(channel, Opts, ?DEFAULT_CHANNEL),
    is_atom(Channel) orelse erlang:error(badarg, [Node, Fun, Opts]),
    Request = {subscribe, Event, Selector, {Fun, Channel}},
    gen_server:call(?MODULE, Request, infinity).


selector(#{name := Node}) when is_atom(Node) ->
    Node;

selector(any) ->
    '_';

selector(Node) when is_atom(Node) ->
    Node;

selector(Other) ->
    erlang:error(badarg, [Other]).


is_callback_fun(Fun) ->
    is_function(Fun, 0) orelse is_function(Fun, 1) orelse is_function(Fun, 2).


-spec add_callback(event(), node() | '_', callback(), #state{}) -> #state{}.

add_callback(up, Node, Callback, #state{up = Callbacks} = State) ->
    State#state{up = append(Node, Callback, Callbacks)};

add_callback(down, Node, Callback, #state{down = Callbacks} = State) ->
    State#state{down = append(Node, Callback, Callbacks)}.


append(Key, Value, Map) ->
    maps:update_with(Key, fun(List) -> List ++ [Value] end, [Value], Map).


%% Wildcard callbacks first, then the node's own, each in registration order.
run_callbacks(Node, Callbacks) ->
    Matching = maps:get('_', Callbacks, []) ++ maps:get(Node, Callbacks, []),
    lists:foreach(fun(Callback) -> run_callback(Callback, Node) end, Matching).


run_callback({Fun, Channel}, Node) ->
    try
        case erlang:fun_info(Fun, arity) of
            {arity, 0} -> Fun();
            {arity, 1} -> Fun(Node);
            {arity, 2} -> Fun(Node, Channel)
        end
    catch
        Class:Reason:Stacktrace ->
            logger:warning(#{
                description => "Node status callback failed",
                node => Node,
                class => Class,
                reason => Reason,
                stacktrace => Stacktrace
            })
    end.


wait_until_fully_connected(Node, Deadline) ->
    case partisan_nif:is_fully_connected(partisan_nif:engine(), Node) of
        true ->
            ok;
        false ->
            case now_ms() >= Deadline of
                true ->
                    {error, timeout};
                false ->
                    timer:sleep(?SYNC_JOIN_POLL_INTERVAL),
                    wait_until_fully_connected(Node, Deadline)
            end
    end.


now_ms() ->
    erlang:monotonic_time(millisecond).
