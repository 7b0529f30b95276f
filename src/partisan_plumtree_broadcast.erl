%% -----------------------------------------------------------------------------
%% @doc Plumtree broadcast (epidemic broadcast trees) for the handler modules
%% of the `broadcast_mods' option (see {@link partisan_plumtree_broadcast_handler}).
%%
%% The trees, the message ids, the payload cache and the lazy queues live in
%% the engine (native, one tree per root and per handler module, over the
%% nodes that are up: every member with the full mesh, the neighbours with
%% HyParView). {@link broadcast/2} calls the handler's `broadcast_data/1' in
%% the caller and hands the id and payload to the engine. This process owns
%% the handlers' side: it calls `merge/2' for every payload that reaches the
%% node for the first time (a crashing handler is logged and the broadcast
%% goes on), and runs the anti-entropy exchanges: every `exchange_tick_period'
%% it asks handlers with no exchange running to `exchange/1' with a random
%% peer, at most `broadcast_start_exchange_limit' at once.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_plumtree_broadcast).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0]).
-export([broadcast/2, broadcast_channel/1, update/1]).
-export([broadcast_members/0, broadcast_members/1]).
-export([exchanges/0, exchanges/1, exchanges/2, cancel_exchanges/1]).
-export([get_peers/1, get_peers/2]).
-export([get_eager_peers/1, get_lazy_peers/1]).
-export([debug_get_peers/2, debug_get_peers/3, debug_get_peers/4]).
-export([debug_get_tree/2, debug_get_tree/3, debug_get_tree/4]).
-export([node_info/1]).
-export([deliver/4]).

-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-type exchange() :: {module(), node(), reference(), pid()}.
-type selector() :: all | {peer, node()} | {mod, module()} | reference() | pid().
-type nodeset() :: [node()].
%% What get_peers/2 tells of the root besides its peers (Partisan 5's names).
-type info_opt() :: name | channels | listen_addrs | listen_ip | listen_port
                  | metadata | connection_count.

-export_type([exchange/0, selector/0, nodeset/0, info_opt/0]).

-record(state, {
    mods :: [module()],
    exchanges = [] :: [exchange()]
}).

-define(SERVER, ?MODULE).


%% =============================================================================
%% API
%% =============================================================================


%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).


%% -----------------------------------------------------------------------------
%% @doc Broadcasts `Broadcast' to every node through handler `Mod' (one of
%% `broadcast_mods'): `Mod:broadcast_data(Broadcast)' names the id and the
%% payload. Fails with `badarg' for a module that is not a handler.
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast(any(), module()) -> ok.
broadcast(Broadcast, Mod) when is_atom(Mod) ->
    lists:member(Mod, partisan_config:get(broadcast_mods))
        orelse erlang:error(badarg, [Broadcast, Mod]),
    {MessageId, Payload} = Mod:broadcast_data(Broadcast),
    Engine = partisan_nif:engine(),
    case partisan_nif:broadcast(
        Engine, atom_to_binary(Mod, utf8), term_to_binary(MessageId),
        term_to_binary(Payload)
    ) of
        ok -> ok;
        {error, unknown_module} -> erlang:error(badarg, [Broadcast, Mod])
    end.


%% -----------------------------------------------------------------------------
%% @doc The channel handler `Mod' names for its broadcasts: its
%% `broadcast_channel/0' if it exports one, else {@link
%% partisan:default_channel/0}; `undefined' if that callback fails (Partisan
%% 5's answers). A handler that exports `broadcast_channel/0' naming a
%% configured channel has its broadcasts carried on that channel; the others'
%% travel on the membership channel, which never waits behind user data
%% (Partisan 5 would use the default channel).
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast_channel(module()) -> partisan:channel() | undefined.
broadcast_channel(Mod) when is_atom(Mod) ->
    _ = code:ensure_loaded(Mod),
    case erlang:function_exported(Mod, broadcast_channel, 0) of
        true ->
            try
                Mod:broadcast_channel()
            catch
                Class:Reason ->
                    ?LOG_NOTICE(#{
                        description => "broadcast handler failed to name its channel",
                        handler => Mod, class => Class, reason => Reason
                    }),
                    undefined
            end;
        false ->
            partisan:default_channel()
    end.


%% -----------------------------------------------------------------------------
%% @doc Partisan 5's membership hook (`partisan_peer_service:add_sup_callback(
%% fun partisan_plumtree_broadcast:update/1)'): takes a membership state as
%% callbacks get it and returns `ok'. The engine builds the trees over the
%% nodes that are up and follows every change itself, so there is nothing
%% for the update to change; it is checked (`badarg' if it names no members,
%% as {@link partisan_peer_service:decode/1}) so that code wiring the hook
%% runs unchanged.
%% @end
%% -----------------------------------------------------------------------------
-spec update({ok, [node() | partisan:node_spec()]} | [node() | partisan:node_spec()]) -> ok.
update(State) ->
    _ = partisan_peer_service:decode(State),
    ok.


%% @doc The nodes broadcasts go to from here, this node included.
-spec broadcast_members() -> ordsets:ordset(node()).
broadcast_members() ->
    ordsets:from_list([partisan:node() | partisan:nodes()]).


%% @doc As {@link broadcast_members/0}; the timeout is accepted for Partisan 5
%% compatibility (the answer is local).
-spec broadcast_members(infinity | pos_integer()) -> ordsets:ordset(node()).
broadcast_members(_Timeout) ->
    broadcast_members().


%% @doc The exchanges running on this node.
-spec exchanges() -> {ok, [exchange()]}.
exchanges() ->
    gen_server:call(?SERVER, exchanges, infinity).


%% @doc The exchanges running on `Node' (asked through our transport).
-spec exchanges(node()) -> {ok, [exchange()]} | {error, term()}.
exchanges(Node) ->
    exchanges(Node, 5000).


%% @doc The exchanges running on `Node', waiting at most `Timeout' for them.
-spec exchanges(node(), timeout()) -> {ok, [exchange()]} | {error, term()}.
exchanges(Node, Timeout) ->
    case Node =:= partisan:node() of
        true ->
            exchanges();
        false ->
            case partisan_rpc:call(Node, ?MODULE, exchanges, [], Timeout) of
                {badrpc, Reason} -> {error, Reason};
                Result -> Result
            end
    end.


%% @doc Stops the exchanges `Selector' names; returns them.
-spec cancel_exchanges(selector()) -> [exchange()].
cancel_exchanges(Selector) ->
    gen_server:call(?SERVER, {cancel_exchanges, Selector}, infinity).


%% -----------------------------------------------------------------------------
%% @doc The eager and the lazy peers of this node in `Root''s tree, as
%% Partisan 5 returns them. The engine keeps a tree per handler module (see
%% get_peers/2 with a module); here they are merged: a peer eager in any of
%% them is eager, the others lazy. With one handler, as is usual, that is its
%% tree.
%% @end
%% -----------------------------------------------------------------------------
-spec get_peers(node()) -> {nodeset(), nodeset()}.
get_peers(Root) ->
    Trees = [get_peers(Root, Mod) || Mod <- partisan_config:get(broadcast_mods)],
    Eager = lists:usort(lists:append([E || {E, _} <- Trees])),
    Lazy = lists:usort(lists:append([L || {_, L} <- Trees])) -- Eager,
    {Eager, Lazy}.


%% -----------------------------------------------------------------------------
%% @doc With a handler module: the eager and the lazy peers of `Root''s tree
%% for that handler. With a list of {@link info_opt()} (Partisan 5's form):
%% the peers of get_peers/1 and a map of what the options ask of `Root'
%% ({@link node_info/1} there; empty when it cannot be asked).
%% @end
%% -----------------------------------------------------------------------------
-spec get_peers(node(), module() | [info_opt()]) ->
    {nodeset(), nodeset()} | {nodeset(), nodeset(), map()}.
get_peers(Root, Opts) when is_list(Opts) ->
    {Eager, Lazy} = get_peers(Root),
    {Eager, Lazy, root_info(Root, Opts)};

get_peers(Root, Mod) when is_atom(Mod) ->
    {Eager, Lazy} = partisan_nif:broadcast_peers(
        partisan_nif:engine(), atom_to_binary(Mod, utf8), atom_to_binary(Root, utf8)
    ),
    %% Tree peers are neighbours, hence members: their atoms exist.
    Atoms = fun(Names) -> [binary_to_atom(N, utf8) || N <- Names] end,
    {Atoms(Eager), Atoms(Lazy)}.


%% @doc The eager peers of this node in `Root''s tree (see get_peers/1).
-spec get_eager_peers(node()) -> nodeset().
get_eager_peers(Root) ->
    element(1, get_peers(Root)).


%% @doc The lazy peers of this node in `Root''s tree (see get_peers/1).
-spec get_lazy_peers(node()) -> nodeset().
get_lazy_peers(Root) ->
    element(2, get_peers(Root)).


%% @doc The peers of `Node' in `Root''s tree (asked through our transport),
%% waiting as long as it takes.
-spec debug_get_peers(node(), node()) -> {nodeset(), nodeset()}.
debug_get_peers(Node, Root) ->
    debug_get_peers(Node, Root, infinity).


%% @doc The peers of `Node' in `Root''s tree, waiting at most `Timeout'.
%% Fails with the reason when `Node' cannot answer.
-spec debug_get_peers(node(), node(), timeout()) -> {nodeset(), nodeset()}.
debug_get_peers(Node, Root, Timeout) ->
    ask(Node, get_peers, [Root], Timeout).


%% @doc {@link get_peers/2} with info options, on `Node'.
-spec debug_get_peers(node(), node(), [info_opt()], timeout()) ->
    {nodeset(), nodeset(), map()}.
debug_get_peers(Node, Root, Opts, Timeout) when is_list(Opts) ->
    ask(Node, get_peers, [Root, Opts], Timeout).


%% @doc The peers of each of `Nodes' in `Root''s tree; `down' for a node
%% that could not answer.
-spec debug_get_tree(node(), [node()]) -> [{node(), {nodeset(), nodeset()} | down}].
debug_get_tree(Root, Nodes) ->
    debug_get_tree(Root, Nodes, infinity).


%% @doc {@link debug_get_tree/2}, waiting at most `Timeout' for each node.
-spec debug_get_tree(node(), [node()], timeout()) ->
    [{node(), {nodeset(), nodeset()} | down}].
debug_get_tree(Root, Nodes, Timeout) ->
    [{Node, tree_peers(fun() -> debug_get_peers(Node, Root, Timeout) end)} || Node <- Nodes].


%% @doc {@link debug_get_tree/3} with info options (see get_peers/2).
-spec debug_get_tree(node(), [node()], [info_opt()], timeout()) ->
    [{node(), {nodeset(), nodeset(), map()} | down}].
debug_get_tree(Root, Nodes, Opts, Timeout) when is_list(Opts) ->
    [{Node, tree_peers(fun() -> debug_get_peers(Node, Root, Opts, Timeout) end)}
     || Node <- Nodes].


%% @private
%% What the options ask of this node (for get_peers/2 on other nodes).
-spec node_info([info_opt()]) -> map().
node_info(Opts) when is_list(Opts) ->
    Spec = partisan:node_spec(),
    Addrs = maps:get(listen_addrs, Spec, []),
    lists:foldl(
        fun
            (name, Acc) -> Acc#{name => partisan:node()};
            (channels, Acc) -> Acc#{channels => maps:get(channels, Spec, #{})};
            (listen_addrs, Acc) -> Acc#{listen_addrs => Addrs};
            (listen_ip, Acc) when Addrs =/= [] -> Acc#{listen_ip => maps:get(ip, hd(Addrs))};
            (listen_port, Acc) when Addrs =/= [] -> Acc#{listen_port => maps:get(port, hd(Addrs))};
            (metadata, Acc) -> Acc#{metadata => partisan_config:get(metadata, #{})};
            (connection_count, Acc) -> Acc#{connection_count => length(partisan:nodes())};
            (_, Acc) -> Acc
        end,
        #{},
        Opts
    ).


%% @private
%% A payload the engine received for the first time (the manager passes the
%% engine's event on).
-spec deliver(binary(), binary(), binary(), binary()) -> ok.
deliver(Mod, Root, Id, Data) ->
    gen_server:cast(?SERVER, {deliver, Mod, Root, Id, Data}).


%% =============================================================================
%% GEN_SERVER CALLBACKS
%% =============================================================================


%% @private
init([]) ->
    Mods = partisan_config:get(broadcast_mods),
    _ = [code:ensure_loaded(M) || M <- Mods],
    schedule_exchange_tick(),
    {ok, #state{mods = Mods}}.


%% @private
handle_call(exchanges, _From, State) ->
    {reply, {ok, State#state.exchanges}, State};

handle_call({cancel_exchanges, Selector}, _From, State) ->
    {Cancel, Keep} = lists:partition(
        fun(E) -> selected(Selector, E) end, State#state.exchanges
    ),
    _ = [begin demonitor(Ref, [flush]), exit(Pid, cancel) end
         || {_, _, Ref, Pid} <- Cancel],
    {reply, Cancel, State#state{exchanges = Keep}};

handle_call(_, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
handle_cast({deliver, ModBin, _Root, Id, Data}, State) ->
    %% Only modules of broadcast_mods are delivered, so the atom exists.
    Mod = binary_to_existing_atom(ModBin, utf8),
    try
        Mod:merge(binary_to_term(Id), binary_to_term(Data))
    catch
        Class:Reason:Stack ->
            ?LOG_ERROR(#{
                description => "broadcast handler failed to merge",
                handler => Mod, class => Class, reason => Reason,
                stacktrace => Stack
            })
    end,
    {noreply, State};

handle_cast(_, State) ->
    {noreply, State}.


%% @private
handle_info(exchange_tick, State) ->
    schedule_exchange_tick(),
    {noreply, start_exchanges(State)};

handle_info({'DOWN', Ref, process, _, _}, #state{exchanges = Exchanges} = State) ->
    {noreply, State#state{exchanges = lists:keydelete(Ref, 3, Exchanges)}};

handle_info(_, State) ->
    {noreply, State}.


%% =============================================================================
%% PRIVATE
%% =============================================================================


schedule_exchange_tick() ->
    erlang:send_after(partisan_config:get(exchange_tick_period), self(), exchange_tick).


%% One exchange per handler at a time, each with a random peer that is up, and
%% at most `broadcast_start_exchange_limit' at once (by default one per
%% handler, as in Partisan 5). Handlers are tried in random order, and one that
%% starts no exchange (`ok', `ignore') leaves the room to the next.
start_exchanges(#state{mods = Mods, exchanges = Running} = State) ->
    Limit = case partisan_config:get(broadcast_start_exchange_limit) of
        undefined -> length(Mods);
        N -> N
    end,
    Busy = [M || {M, _, _, _} <- Running],
    Idle = shuffle([M || M <- Mods, not lists:member(M, Busy)]),
    case partisan:nodes() of
        [] ->
            State;
        Peers ->
            Started = start_some(Idle, Peers, max(0, Limit - length(Running)), []),
            State#state{exchanges = Started ++ Running}
    end.


start_some(_, _, 0, Acc) ->
    Acc;
start_some([], _, _, Acc) ->
    Acc;
start_some([Mod | Rest], Peers, Room, Acc) ->
    case exchange(Mod, pick(Peers)) of
        {true, E} -> start_some(Rest, Peers, Room - 1, [E | Acc]);
        false -> start_some(Rest, Peers, Room, Acc)
    end.


shuffle(List) ->
    [X || {_, X} <- lists:sort([{rand:uniform(), X} || X <- List])].


exchange(Mod, Peer) ->
    try Mod:exchange(Peer) of
        {ok, Pid} when is_pid(Pid) ->
            {true, {Mod, Peer, monitor(process, Pid), Pid}};
        _ ->
            false
    catch
        Class:Reason ->
            ?LOG_ERROR(#{
                description => "broadcast handler failed to start an exchange",
                handler => Mod, peer => Peer, class => Class, reason => Reason
            }),
            false
    end.


pick(List) ->
    lists:nth(rand:uniform(length(List)), List).


selected(all, _) -> true;
selected({peer, Node}, {_, Node, _, _}) -> true;
selected({mod, Mod}, {Mod, _, _, _}) -> true;
selected(Ref, {_, _, Ref, _}) when is_reference(Ref) -> true;
selected(Pid, {_, _, _, Pid}) when is_pid(Pid) -> true;
selected(_, _) -> false.


%% Runs get_peers here, or on `Node' through our transport.
ask(Node, F, Args, Timeout) ->
    case Node =:= partisan:node() of
        true ->
            erlang:apply(?MODULE, F, Args);
        false ->
            case partisan_rpc:call(Node, ?MODULE, F, Args, Timeout) of
                {badrpc, Reason} -> erlang:error(Reason);
                Result -> Result
            end
    end.


tree_peers(Ask) ->
    try
        Ask()
    catch
        _:Reason ->
            ?LOG_INFO(#{description => "the tree peers of a node could not be asked",
                        reason => Reason}),
            down
    end.


root_info(Root, Opts) ->
    try ask(Root, node_info, [Opts], 5000)
    catch _:_ -> #{}
    end.
