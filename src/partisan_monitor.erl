%% -----------------------------------------------------------------------------
%% @doc Monitors across nodes over partisan: of processes on other nodes
%% ({@link partisan:monitor/3}) and of nodes ({@link partisan:monitor_node/3},
%% {@link partisan:monitor_nodes/2}), with Erlang's messages and semantics.
%%
%% One server per node, registered as `partisan_monitor', plays both roles:
%%
%% <ul>
%% <li>for a local process monitoring a remote one, it records the monitor
%% <em>before</em> asking the remote node's server, answers the caller only
%% once the remote monitor is in place (so whatever the caller does next, the
%% target's exit is seen with its reason, as with Distributed Erlang), and it
%% alone delivers the `DOWN' message: the remote `DOWN', or `noconnection'
%% when the node goes down, whichever comes first, exactly once. A target
%% that is already dead gives `noproc', through the same path, so it cannot
%% overtake the record;</li>
%% <li>for a remote process monitoring a local one, it holds an
%% `erlang:monitor/2' on the target and reports its exit; monitors of a node
%% that goes down are dropped.</li>
%% </ul>
%%
%% Node events come from the peer service manager in the order the engine
%% emitted them (one courier thread), so every `nodeup' a subscriber gets is
%% followed by exactly one `nodedown' for that connection life. A node counts
%% as connected exactly when {@link partisan:is_connected/1} says so, and each
%% monitor remembers the connection life it was made in
%% (`partisan_nif:up_generation/2'): a `node_down' ends the monitors of the
%% lives that are over, never those of a life that began after it.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_monitor).

-behaviour(gen_server).

-include("partisan.hrl").

-export([start_link/0]).
-export([monitor/2]).
-export([monitor/3]).
-export([demonitor/2]).
-export([remove/2]).
-export([monitor_node/2]).
-export([monitor_nodes/2]).
-export([node_event/3]).
-export([stats/0]).
-export([connection_life/1]).
-export([is_over/2]).
-export([local_target/1]).

-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-record(mon, {
    owner :: pid(),
    node :: node(),
    object :: term(),
    life :: pos_integer(),
    %% The caller of monitor/3, answered once the remote monitor is in place.
    waiting :: gen_server:from() | undefined
}).

-record(state, {
    %% Monitors held by local processes on remote targets.
    mons = #{} :: #{reference() => #mon{}},
    %% Local processes whose exit we watch: their monitor and what they hold.
    owners = #{} :: #{pid() => {reference(), #{term() => true}}},
    %% Monitors remote processes hold on local ones: our erlang monitor ref
    %% to {their ref, their node}, and back.
    served = #{} :: #{reference() => {reference(), node(), pos_integer() | false}},
    served_keys = #{} :: #{{node(), reference()} => reference()},
    %% monitor_node/2: how many times each process monitors each node, in
    %% which connection life.
    node_mons = #{} :: #{{pid(), node()} => {pos_integer(), pos_integer()}},
    %% monitor_nodes/2: each subscription's options, one entry per call.
    subs = #{} :: #{pid() => [list()]}
}).

-define(SERVER, ?MODULE).
-define(CALL_TIMEOUT, infinity).



%% =============================================================================
%% API
%% =============================================================================



%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.

start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).


%% -----------------------------------------------------------------------------
%% @doc Monitors `Target', a process on node `Node' (not this one): a pid of
%% that node, `{Name, Node}' or a remote reference. `Object' is what the
%% `DOWN' message names. `Opts' may hold `channel' and `channel_fallback'
%% for the request. Returns the monitor's reference.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor(node(), term(), map()) -> reference().

monitor(Node, Target, Opts) ->
    gen_server:call(
        ?SERVER, {monitor, self(), Node, Target, Opts}, ?CALL_TIMEOUT
    ).


%% -----------------------------------------------------------------------------
%% @doc Partisan 5's entry: monitors the process `Process' (a pid, `{Name,
%% Node}' or a remote reference) with the options of
%% {@link partisan:monitor/3}. Same as `partisan:monitor(process, Process,
%% Opts)'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor(term(), list()) -> reference().

monitor(Process, Opts) when is_list(Opts) ->
    partisan:monitor(process, Process, Opts).


%% -----------------------------------------------------------------------------
%% @doc Partisan 5's entry: same as {@link partisan:demonitor/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec demonitor(reference(), [flush | info]) -> boolean().

demonitor(Ref, Opts) ->
    partisan:demonitor(Ref, Opts).


%% -----------------------------------------------------------------------------
%% @doc Removes a monitor made by {@link monitor/3}. Returns `false' if `Ref'
%% is not one (the caller then asks `erlang:demonitor/2'), else
%% `{true, WasActive}'. After it returns no `DOWN' for `Ref' is sent.
%% @end
%% -----------------------------------------------------------------------------
-spec remove(reference(), pid()) -> false | {true, boolean()}.

remove(Ref, Owner) ->
    gen_server:call(?SERVER, {demonitor, Ref, Owner}, ?CALL_TIMEOUT).


%% -----------------------------------------------------------------------------
%% @doc `partisan:monitor_node/2' for the calling process.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_node(node(), boolean()) -> true.

monitor_node(Node, Flag) ->
    gen_server:call(?SERVER, {monitor_node, self(), Node, Flag}, ?CALL_TIMEOUT).


%% -----------------------------------------------------------------------------
%% @doc `partisan:monitor_nodes/2' for the calling process (options already
%% checked).
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_nodes(boolean(), list()) -> ok.

monitor_nodes(Flag, Opts) ->
    gen_server:call(?SERVER, {monitor_nodes, self(), Flag, Opts}, ?CALL_TIMEOUT).


%% -----------------------------------------------------------------------------
%% @doc Called by the peer service manager for every node event, in order.
%% @end
%% -----------------------------------------------------------------------------
-spec node_event(up | down, node(), atom()) -> ok.

node_event(Kind, Node, Reason) ->
    case whereis(?SERVER) of
        undefined -> ok;
        Pid -> Pid ! {'$partisan_node', Kind, Node, Reason}, ok
    end.


%% -----------------------------------------------------------------------------
%% @doc Sizes of the server's tables (for tests and health checks).
%% @end
%% -----------------------------------------------------------------------------
-spec stats() -> #{atom() => non_neg_integer()}.

stats() ->
    gen_server:call(?SERVER, stats, ?CALL_TIMEOUT).



%% =============================================================================
%% GEN_SERVER
%% =============================================================================



%% @private
init([]) ->
    {ok, #state{}}.


%% @private
handle_call({monitor, Owner, Node, Target, Opts}, From, State0) ->
    Ref = erlang:make_ref(),
    Object = object(Node, Target),
    State = watch(Owner, Ref, State0),
    Life = life(Node),
    Mon = #mon{owner = Owner, node = Node, object = Object, life = Life, waiting = From},
    Request = {'$partisan_monitor', Ref, Target, partisan:node()},
    Sent = Life =/= false
        andalso partisan:forward_message({?SERVER, Node}, Request, Opts) =:= ok,
    case Sent of
        true ->
            {noreply, State#state{mons = maps:put(Ref, Mon, State#state.mons)}};
        false ->
            _ = Owner ! {'DOWN', Ref, process, Object, noconnection},
            {reply, Ref, unwatch(Owner, Ref, State)}
    end;

handle_call({demonitor, Ref, Owner}, _From, State) ->
    case maps:take(Ref, State#state.mons) of
        {#mon{owner = Owner, node = Node}, Mons} ->
            _ = partisan:forward_message(
                {?SERVER, Node}, {'$partisan_demonitor', Ref, partisan:node()}
            ),
            {reply, {true, true}, unwatch(Owner, Ref, State#state{mons = Mons})};
        _ ->
            {reply, false, State}
    end;

handle_call({monitor_node, Owner, Node, true}, _From, State) ->
    case life(Node) of
        Life when is_integer(Life) ->
            Key = {Owner, Node},
            %% Monitors of a life that is over are fired by its pending
            %% node_down; counting starts afresh in the new one.
            Mons = maps:update_with(
                Key,
                fun({N, L}) when L =:= Life -> {N + 1, L}; (_) -> {1, Life} end,
                {1, Life},
                State#state.node_mons
            ),
            {reply, true, watch(Owner, Key, State#state{node_mons = Mons})};
        false ->
            %% As Erlang does for a node it cannot reach.
            _ = Owner ! {nodedown, Node},
            {reply, true, State}
    end;

handle_call({monitor_node, Owner, Node, false}, _From, State) ->
    Key = {Owner, Node},
    case maps:find(Key, State#state.node_mons) of
        {ok, {1, _}} ->
            Mons = maps:remove(Key, State#state.node_mons),
            {reply, true, unwatch(Owner, Key, State#state{node_mons = Mons})};
        {ok, {N, L}} ->
            Mons = maps:put(Key, {N - 1, L}, State#state.node_mons),
            {reply, true, State#state{node_mons = Mons}};
        error ->
            {reply, true, State}
    end;

handle_call({monitor_nodes, Owner, true, Opts}, _From, State) ->
    Subs = maps:update_with(Owner, fun(L) -> [Opts | L] end, [Opts], State#state.subs),
    {reply, ok, watch(Owner, subscription, State#state{subs = Subs})};

handle_call({monitor_nodes, Owner, false, Opts}, _From, State) ->
    Own = maps:get(Owner, State#state.subs, []),
    case Own -- [Opts] of
        [] ->
            Subs = maps:remove(Owner, State#state.subs),
            {reply, ok, unwatch(Owner, subscription, State#state{subs = Subs})};
        Left ->
            {reply, ok, State#state{subs = maps:put(Owner, Left, State#state.subs)}}
    end;

handle_call(stats, _From, State) ->
    #state{mons = M, owners = O, served = S, served_keys = K, node_mons = N,
           subs = U} = State,
    Sizes = #{
        monitors => map_size(M), owners => map_size(O), served => map_size(S),
        served_keys => map_size(K), node_monitors => map_size(N),
        subscribers => map_size(U)
    },
    {reply, Sizes, State};

handle_call(_, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
handle_cast(_, State) ->
    {noreply, State}.


%% @private
%% A remote process monitors a local one.
handle_info({'$partisan_monitor', Ref, Target, From}, State) ->
    {noreply, serve(Ref, Target, From, State)};

handle_info({'$partisan_demonitor', Ref, From}, State) ->
    case maps:take({From, Ref}, State#state.served_keys) of
        {MRef, Keys} ->
            true = erlang:demonitor(MRef, [flush]),
            {noreply, State#state{
                served_keys = Keys, served = maps:remove(MRef, State#state.served)
            }};
        error ->
            {noreply, State}
    end;

%% The remote monitor is in place: the caller of monitor/3 may go on.
handle_info({'$partisan_monitoring', Ref}, State) ->
    case maps:find(Ref, State#state.mons) of
        {ok, #mon{waiting = From} = Mon} when From =/= undefined ->
            gen_server:reply(From, Ref),
            Mons = maps:put(Ref, Mon#mon{waiting = undefined}, State#state.mons),
            {noreply, State#state{mons = Mons}};
        _ ->
            {noreply, State}
    end;

%% The remote target of one of our monitors exited.
handle_info({'$partisan_down', Ref, Reason}, State) ->
    {noreply, deliver_down(Ref, Reason, State)};

handle_info({'$partisan_node', up, Node, _}, State) ->
    notify_subscribers(Node, up, undefined, State),
    {noreply, State};

handle_info({'$partisan_node', down, Node, Reason}, State0) ->
    State1 = node_down_monitors(Node, State0),
    State2 = node_down_served(Node, State1),
    State = node_down_node_monitors(Node, State2),
    notify_subscribers(Node, down, Reason, State),
    {noreply, State};

handle_info({'DOWN', MRef, process, Pid, Reason}, State) ->
    case maps:take(MRef, State#state.served) of
        {{Ref, From, _}, Served} ->
            _ = partisan:forward_message({?SERVER, From}, {'$partisan_down', Ref, Reason}),
            {noreply, State#state{
                served = Served,
                served_keys = maps:remove({From, Ref}, State#state.served_keys)
            }};
        error ->
            {noreply, owner_exited(Pid, MRef, State)}
    end;

handle_info(_, State) ->
    {noreply, State}.



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc The node's current connection life (the times it came up), or
%% `false' while it is down.
%% @end
%% -----------------------------------------------------------------------------
-spec connection_life(node()) -> pos_integer() | false.

connection_life(Node) ->
    try
        partisan_nif:up_generation(partisan_nif:engine(), Node)
    catch
        error:_ -> false
    end.


%% -----------------------------------------------------------------------------
%% @doc Whether a connection life (or `false': the node was not up) is over,
%% given the node's current one ({@link connection_life/1}).
%% @end
%% -----------------------------------------------------------------------------
-spec is_over(pos_integer() | false, pos_integer() | false) -> boolean().

is_over(_, false) -> true;
is_over(Life, Now) -> Life =/= Now.


life(Node) ->
    connection_life(Node).


%% What the DOWN message names: the pid as the owner knows it, else
%% {Name, Node}, else the remote reference given.
object(_, Pid) when is_pid(Pid) -> Pid;
object(Node, Name) when is_atom(Name) -> {Name, Node};
object(Node, {Name, Node}) when is_atom(Name) -> {Name, Node};
object(_, Other) -> Other.


serve(Ref, Target, From, State) ->
    case local_target(Target) of
        {ok, Local} ->
            MRef = erlang:monitor(process, Local),
            _ = partisan:forward_message({?SERVER, From}, {'$partisan_monitoring', Ref}),
            State#state{
                served = maps:put(MRef, {Ref, From, life(From)}, State#state.served),
                served_keys = maps:put({From, Ref}, MRef, State#state.served_keys)
            };
        error ->
            _ = partisan:forward_message({?SERVER, From}, {'$partisan_down', Ref, noproc}),
            State
    end.


%% -----------------------------------------------------------------------------
%% @doc What a target in another node's request names on this node: a pid of
%% this node (it arrived rewritten home), a registered name (of `{Name, Node}'
%% too) or what a remote reference of this node names; `error' for anything
%% else (a pid of another node or of an earlier life).
%% @end
%% -----------------------------------------------------------------------------
-spec local_target(term()) -> {ok, pid() | atom()} | error.

local_target(Pid) when is_pid(Pid) ->
    case erlang:node(Pid) =:= erlang:node() of
        true -> {ok, Pid};
        false -> error
    end;

local_target(Name) when is_atom(Name) ->
    {ok, Name};

local_target({Name, _}) when is_atom(Name) ->
    {ok, Name};

local_target(RemoteRef) ->
    try partisan_remote_ref:to_pid_or_name(RemoteRef) of
        Local -> local_target(Local)
    catch
        error:_ -> error
    end.


deliver_down(Ref, Reason, State) ->
    case maps:take(Ref, State#state.mons) of
        {#mon{owner = Owner, object = Object, waiting = From}, Mons} ->
            %% The caller gets its reference before the DOWN that carries it.
            _ = From =:= undefined orelse gen_server:reply(From, Ref),
            _ = Owner ! {'DOWN', Ref, process, Object, Reason},
            unwatch(Owner, Ref, State#state{mons = Mons});
        error ->
            State
    end.


node_down_monitors(Node, State) ->
    Now = life(Node),
    Refs = [Ref || {Ref, #mon{node = N, life = L}} <- maps:to_list(State#state.mons),
                   N =:= Node, is_over(L, Now)],
    lists:foldl(fun(Ref, S) -> deliver_down(Ref, noconnection, S) end, State, Refs).


node_down_served(Node, #state{served = Served} = State) ->
    Now = life(Node),
    Gone = [{K, MRef} || {{From, _} = K, MRef} <- maps:to_list(State#state.served_keys),
                         From =:= Node,
                         is_over(element(3, maps:get(MRef, Served)), Now)],
    lists:foldl(
        fun({K, MRef}, #state{served = S, served_keys = Keys} = Acc) ->
            true = erlang:demonitor(MRef, [flush]),
            Acc#state{served = maps:remove(MRef, S), served_keys = maps:remove(K, Keys)}
        end,
        State,
        Gone
    ).


node_down_node_monitors(Node, State) ->
    Now = life(Node),
    Gone = [{Owner, N} || {{Owner, Nd}, {N, L}} <- maps:to_list(State#state.node_mons),
                          Nd =:= Node, is_over(L, Now)],
    lists:foldl(
        fun({Owner, N}, #state{node_mons = Mons} = Acc) ->
            _ = [Owner ! {nodedown, Node} || _ <- lists:seq(1, N)],
            unwatch(Owner, {Owner, Node}, Acc#state{node_mons = maps:remove({Owner, Node}, Mons)})
        end,
        State,
        Gone
    ).


notify_subscribers(Node, Kind, Reason, #state{subs = Subs}) ->
    maps:foreach(
        fun(Owner, AllOpts) ->
            [Owner ! node_message(Kind, Node, Reason, Opts) || Opts <- AllOpts,
                                                              wants(Opts)]
        end,
        Subs
    ).


%% Every partisan node is visible: `{node_type, hidden}' subscribers hear
%% of none.
wants(Opts) ->
    proplists:get_value(node_type, Opts, all) =/= hidden.


node_message(up, Node, _, []) ->
    {nodeup, Node};

node_message(down, Node, _, []) ->
    {nodedown, Node};

node_message(up, Node, _, Opts) ->
    {nodeup, Node, node_type_info(Opts)};

node_message(down, Node, Reason, Opts) ->
    Info = node_type_info(Opts) ++ case lists:member(nodedown_reason, Opts) of
        true -> [{nodedown_reason, erlang_reason(Reason)}];
        false -> []
    end,
    {nodedown, Node, Info}.


node_type_info(Opts) ->
    case lists:keymember(node_type, 1, Opts) of
        true -> [{node_type, visible}];
        false -> []
    end.


%% The engine's close reasons, by the names Distributed Erlang uses where it
%% has one (docs/nif_api.md lists the others).
erlang_reason(ping_timeout) -> net_tick_timeout;
erlang_reason(killed) -> disconnect;
erlang_reason(shutdown) -> net_kernel_terminated;
erlang_reason(Reason) -> Reason.


%% Watches the exit of `Owner', which now holds `Key'.
watch(Owner, Key, #state{owners = Owners} = State) ->
    case maps:find(Owner, Owners) of
        {ok, {MRef, Keys}} ->
            State#state{owners = maps:put(Owner, {MRef, Keys#{Key => true}}, Owners)};
        error ->
            MRef = erlang:monitor(process, Owner),
            State#state{owners = maps:put(Owner, {MRef, #{Key => true}}, Owners)}
    end.


%% `Owner' no longer holds `Key'; once it holds nothing, stop watching it.
unwatch(Owner, Key, #state{owners = Owners} = State) ->
    case maps:find(Owner, Owners) of
        {ok, {MRef, Keys0}} ->
            Keys = maps:remove(Key, Keys0),
            case map_size(Keys) > 0 of
                true ->
                    State#state{owners = maps:put(Owner, {MRef, Keys}, Owners)};
                false ->
                    true = erlang:demonitor(MRef, [flush]),
                    State#state{owners = maps:remove(Owner, Owners)}
            end;
        error ->
            State
    end.


%% An owner died: drop everything it held, telling remote servers.
owner_exited(Pid, MRef, State) ->
    case maps:take(Pid, State#state.owners) of
        {{MRef, Keys}, Owners} ->
            lists:foldl(
                fun(Key, S) -> drop(Pid, Key, S) end,
                State#state{owners = Owners, subs = maps:remove(Pid, State#state.subs)},
                maps:keys(Keys)
            );
        _ ->
            State
    end.


drop(_, Ref, State) when is_reference(Ref) ->
    case maps:take(Ref, State#state.mons) of
        {#mon{node = Node}, Mons} ->
            _ = partisan:forward_message(
                {?SERVER, Node}, {'$partisan_demonitor', Ref, partisan:node()}
            ),
            State#state{mons = Mons};
        error ->
            State
    end;

drop(_, {_, _} = Key, State) ->
    State#state{node_mons = maps:remove(Key, State#state.node_mons)};

drop(_, subscription, State) ->
    State.
