%% -----------------------------------------------------------------------------
%% @doc The relay of {@link partisan_gen_server} calls between nodes, one per
%% node, registered as `partisan_gen_relay'.
%%
%% A call to a server on another node goes from the caller to the server's
%% node addressed to its relay, and the engine there hands it to the server
%% itself as `{'$gen_call', From, Request}', with the relay as `From': the
%% relay passes the server's reply back. That is done only for a server the
%% relay monitors (watches), so that its exit reaches the relay with the
%% reason and ends the calls it still had (`partisan_core::serving' keeps
%% them, and decides under one lock whether a call goes to the server or to
%% the relay). The first call to a server comes to the relay, which watches
%% the server from then on (one monitor for the server's life, none per
%% call) and hands it the call the same way; a call to a server that is gone
%% is answered `noproc'. Servers therefore run on OTP's `gen_server' and
%% `gen_statem' unchanged, deferred replies (`gen_server:reply/2' with the
%% `From' they were given) included.
%%
%% The answer comes back straight to the caller, through the engine: the
%% caller registers its call with the request (`partisan_send:call/6'), the
%% relay answers to the call (`{call, Id}'), and the engine of the caller's
%% node delivers the answer only while the call waits. Whoever takes the call
%% from the engine's table ends it: the reader of the answer, the caller at
%% its timeout (`partisan_nif:call_cancel/2'), or the node's `node_down'. A
%% caller that finds its call already taken knows the answer is on its way and
%% drops it, so no late reply is ever left in its mailbox, and neither a timer
%% nor a process of the caller's node is on the call's way.
%% When a node goes down, calls waiting on it end with `{nodedown, Node}'
%% (the engine sends it), and calls it was making are forgotten.
%% `stop/4' and `partisan_erpc:send_request/4' go through the relay of the
%% caller's node instead, which waits for their answer without blocking.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen_relay).

-behaviour(gen_server).

-export([start_link/0]).
-export([call/5]).
-export([stop/4]).
-export([apply/5]).
-export([apply/6]).
-export([cast_apply/4]).
-export([run/3]).
-export([first_sight/1]).
-export([stats/0]).

-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-record(state, {
    %% Calls made from this node, waiting for their remote answer.
    waiting = #{} :: #{reference() => {gen_server:from(), node(), pos_integer()}},
    %% The local servers we monitor, so that the engine may hand them calls
    %% of other nodes directly (see the module doc).
    watched = #{} :: #{pid() => reference()},
    %% What became of the `transitive' messages that reached us.
    relayed = #{delivered => 0, passed_on => 0, duplicates => 0, dead_ends => 0}
        :: #{atom() => non_neg_integer()}
}).

-define(SERVER, ?MODULE).
%% How long a caller that timed out waits for an answer the engine has already
%% taken (taken and sent by one thread in one go: in practice at once).
-define(CLAIMED_MS, 1000).
%% Where the numbers of this node's calls start: drawn at random for each
%% start of the VM, so that an answer meant for an earlier life of a node
%% cannot be taken for one of its new calls.
-define(ID_BASE, {?MODULE, id_base}).
%% The ids of the relayed messages seen here (see first_sight/1), kept for
%% ?SEEN_S seconds, far longer than a flood takes, and swept every ?SWEEP_MS.
-define(SEEN, partisan_relay_seen).
-define(SEEN_S, 60).
-define(SWEEP_MS, 10000).



%% =============================================================================
%% API
%% =============================================================================



%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.

start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).


%% -----------------------------------------------------------------------------
%% @doc Calls `Target' on `Node' with `Request'; `Target' is a pid of that
%% node, a registered name there or a remote reference. Returns `{reply,
%% Reply}' or `{exit, Reason}' (`{exit, timeout}' when no answer came in
%% time).
%% @end
%% -----------------------------------------------------------------------------
-spec call(node(), term(), term(), timeout(), map()) ->
    {reply, term()} | {exit, term()}.

call(Node, Target, Request, Timeout, Opts) ->
    request(Node, fun(Tag) -> {'$partisan_call', Tag, Target, Request, partisan:node()} end,
            Timeout, Opts).


%% -----------------------------------------------------------------------------
%% @doc Stops `Target' on `Node' as `gen_server:stop/3' does there.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(node(), term(), term(), timeout()) -> {reply, ok} | {exit, term()}.

stop(Node, Target, Reason, Timeout) ->
    gen_server:call(?SERVER, {stop, Node, Target, Reason, Timeout}, Timeout).



%% -----------------------------------------------------------------------------
%% @doc Applies `M:F(A)' on `Node' (for {@link partisan_rpc} and
%% {@link partisan_erpc}): `{reply, {value, V}}', `{reply, {exception, Class,
%% Reason, Stack}}', or `{exit, Why}' when it could not run there. Exits as
%% `gen_server:call/3' does on timeout.
%% @end
%% -----------------------------------------------------------------------------
-spec apply(node(), module(), atom(), list(), timeout()) ->
    {reply, {value, term()} | {exception, atom(), term(), list()}} | {exit, term()}.

apply(Node, M, F, A, Timeout) ->
    apply(Node, M, F, A, Timeout, #{}).


%% @doc Like {@link apply/5}, the request sent with the forward options
%% `Opts' (`channel', `channel_fallback').
-spec apply(node(), module(), atom(), list(), timeout(), map()) ->
    {reply, {value, term()} | {exception, atom(), term(), list()}} | {exit, term()}.

apply(Node, M, F, A, Timeout, Opts) when is_map(Opts) ->
    Ask = fun(Tag) -> {'$partisan_apply', Tag, M, F, A, partisan:node()} end,
    case request(Node, Ask, Timeout, Opts) of
        {exit, timeout} -> exit({timeout, {?MODULE, apply, [Node, M, F, A, Timeout]}});
        Result -> Result
    end.


%% @doc Applies `M:F(A)' on `Node' without waiting for it.
-spec cast_apply(node(), module(), atom(), list()) -> ok.

cast_apply(Node, M, F, A) ->
    _ = partisan:forward_message({?SERVER, Node}, {'$partisan_cast_apply', M, F, A}),
    ok.



%% -----------------------------------------------------------------------------
%% @doc Records the id of a relayed message (a `transitive' send) as seen on
%% this node: `true' the first time, `false' after, so that a flood is
%% handled once per node. `true' while the relay is not running.
%% @end
%% -----------------------------------------------------------------------------
-spec first_sight(reference()) -> boolean().

first_sight(Id) ->
    try
        ets:insert_new(?SEEN, {Id, erlang:monotonic_time(second)})
    catch
        error:badarg -> true
    end.


%% -----------------------------------------------------------------------------
%% @doc What became of the relayed messages that reached this node:
%% `delivered' here, `passed_on' towards their destination, `duplicates'
%% (a flood reaches a node once per path; each is handled once), and
%% `dead_ends' (no neighbour left to pass it to, or its hops spent: another
%% path of the flood may still reach the destination), and `seen', the ids
%% remembered.
%% @end
%% -----------------------------------------------------------------------------
-spec stats() -> #{atom() => non_neg_integer()}.

stats() ->
    gen_server:call(?SERVER, stats).



%% =============================================================================
%% GEN_SERVER
%% =============================================================================



%% @private
init([]) ->
    ok = partisan:monitor_nodes(true),
    ok = id_base(),
    %% Calls a relay before us had handed to servers: their replies went to it.
    lists:foreach(
        fun(Call) -> answer_ended(Call, {exit, {relay_restarted, ?MODULE}}) end,
        with_engine(fun partisan_nif:serve_reset/1, [])
    ),
    ?SEEN = ets:new(?SEEN, [named_table, public, set, {write_concurrency, true}]),
    _ = erlang:send_after(?SWEEP_MS, self(), sweep),
    {ok, #state{}}.


%% @private
handle_call({call, Node, Target, Request, Timeout, Opts}, From, State) ->
    Key = make_ref(),
    expire(Key, Timeout),
    ask(Node, {'$partisan_call', Key, Target, Request, partisan:node()}, Opts, From, State);

%% A request of partisan_erpc:send_request/4 (answered like a call).
handle_call({apply, Node, M, F, A, Timeout}, From, State) ->
    Key = make_ref(),
    expire(Key, Timeout),
    ask(Node, {'$partisan_apply', Key, M, F, A, partisan:node()}, #{}, From, State);

handle_call({stop, Node, Target, Reason, Timeout}, From, State) ->
    Key = make_ref(),
    expire(Key, Timeout),
    ask(Node, {'$partisan_stop', Key, Target, Reason, Timeout, partisan:node()},
        #{}, From, State);

handle_call(stats, _From, #state{relayed = Relayed} = State) ->
    {reply, Relayed#{seen => ets:info(?SEEN, size)}, State};

handle_call(_, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
handle_cast(_, State) ->
    {noreply, State}.


%% @private
%% A call of another node reaches us (instead of its server) the first time
%% a server is called, once the engine's table is full, and when the server
%% is gone: we watch the server and hand it the call as the engine does.
handle_info({'$partisan_call', Key, Target, Request, Caller}, State) ->
    case local_pid(Target) of
        {ok, Pid} ->
            case node(Pid) =:= node() andalso is_process_alive(Pid) of
                true ->
                    %% (No engine: the node is stopping, and no answer could go.)
                    Serve = fun(E) -> serve(E, Pid, Key, Request, Caller, State) end,
                    {noreply, with_engine(Serve, State)};
                false -> answer(Caller, Key, {exit, noproc}), {noreply, State}
            end;
        error ->
            answer(Caller, Key, {exit, noproc}),
            {noreply, State}
    end;

%% An apply runs in a process of its own, as rpc and erpc run them.
handle_info({'$partisan_apply', Key, M, F, A, Caller}, State) ->
    _ = spawn(fun() -> answer(Caller, Key, {reply, run(M, F, A)}) end),
    {noreply, State};

%% A timer of partisan:send_after/4 for a destination on another node.
handle_info({'$partisan_forward', Dest, Msg, Opts}, State) ->
    _ = catch partisan:forward_message(Dest, Msg, Opts),
    {noreply, State};

%% A message sent with the `transitive' option, for this node or to pass on:
%% each once, however many paths of its flood reach us.
handle_info({'$partisan_relay', Node, Target, Msg, Opts}, State) ->
    case first_sight(maps:get(relay_id, Opts, make_ref())) of
        true ->
            Outcome = case Node =:= partisan:node() of
                true -> {delivered, catch partisan_send:deliver(Target, Msg)};
                false -> {passed_on, catch partisan_send:pass_on(Node, Target, Msg, Opts)}
            end,
            {noreply, relayed(Node, Outcome, State)};
        false ->
            {noreply, count(duplicates, State)}
    end;

handle_info(sweep, State) ->
    Old = erlang:monotonic_time(second) - ?SEEN_S,
    _ = ets:select_delete(?SEEN, [{{'_', '$1'}, [{'<', '$1', Old}], [true]}]),
    _ = erlang:send_after(?SWEEP_MS, self(), sweep),
    {noreply, State};

handle_info({'$partisan_cast_apply', M, F, A}, State) ->
    _ = spawn(fun() -> run(M, F, A) end),
    {noreply, State};

%% Stopping takes as long as the server's terminate/2: a helper does it.
handle_info({'$partisan_stop', Key, Target, Reason, Timeout, Caller}, State) ->
    _ = spawn(fun() ->
        Result =
            try gen_server:stop(stop_target(Target), Reason, Timeout) of
                ok -> {reply, ok}
            catch
                exit:Why -> {exit, Why}
            end,
        answer(Caller, Key, Result)
    end),
    {noreply, State};

%% A server's reply to a call of another node, unless the call ended first.
handle_info({{'$partisan_serve', Id, Caller, Key}, Reply}, State) ->
    case with_engine(fun(E) -> partisan_nif:serve_end(E, Id) end, false) of
        true -> answer(Caller, Key, {reply, Reply});
        false -> ok
    end,
    {noreply, State};

%% A server we watch died: the calls it had end with its exit reason.
handle_info({'DOWN', MRef, process, Pid, Reason}, #state{watched = Watched} = State)
when map_get(Pid, Watched) =:= MRef ->
    Ended = with_engine(fun(E) -> partisan_nif:serve_unwatch(E, Pid) end, []),
    lists:foreach(fun(Call) -> answer_ended(Call, {exit, Reason}) end, Ended),
    {noreply, State#state{watched = maps:remove(Pid, Watched)}};

%% The remote answer to a request or stop made through us (its caller may
%% have given up).
handle_info({'$partisan_answer', Key, Result}, State) ->
    case maps:take(Key, State#state.waiting) of
        {{From, _, _}, Waiting} ->
            gen_server:reply(From, Result),
            {noreply, State#state{waiting = Waiting}};
        error ->
            {noreply, State}
    end;

%% The caller gave up (its gen_server:call timed out): forget the call; a late
%% answer finds nothing.
handle_info({'$expire', Key}, State) ->
    {noreply, State#state{waiting = maps:remove(Key, State#state.waiting)}};

%% Calls of the connection lives that are over end (a node_down may arrive
%% after the node came back: calls of the new life go on).
handle_info({nodedown, Node}, #state{waiting = Waiting} = State) ->
    Now = life(Node),
    Lost = [K || {K, {_, N, L}} <- maps:to_list(Waiting), N =:= Node, is_over(L, Now)],
    lists:foreach(
        fun(K) ->
            {From, _, _} = maps:get(K, Waiting),
            gen_server:reply(From, {exit, {nodedown, Node}})
        end,
        Lost
    ),
    %% The calls it made have no one to answer to (unless it is back already:
    %% then their answers go to its new life, which takes none of them).
    _ = Now =:= false
        andalso with_engine(fun(E) -> partisan_nif:serve_forget(E, Node) end, 0),
    {noreply, State#state{waiting = maps:without(Lost, Waiting)}};

handle_info(_, State) ->
    {noreply, State}.



%% =============================================================================
%% PRIVATE
%% =============================================================================



expire(_, infinity) ->
    ok;

expire(Key, Timeout) ->
    _ = erlang:send_after(Timeout, self(), {'$expire', Key}),
    ok.


%% Sends a request to the relay of Node and waits (without blocking) for its
%% answer; a node that is not connected answers at once.
ask(Node, Request, Opts, From, State) ->
    Key = element(2, Request),
    Life = life(Node),
    Sent = Life =/= false
        andalso partisan:forward_message({?SERVER, Node}, Request, Opts) =:= ok,
    case Sent of
        true ->
            Waiting = maps:put(Key, {From, Node, Life}, State#state.waiting),
            {noreply, State#state{waiting = Waiting}};
        false ->
            {reply, {exit, {nodedown, Node}}, State}
    end.


%% Sends the request Ask({Id, Tag}) to the relay of Node and waits for its
%% answer (see the module doc); a node that is not connected answers at once.
request(Node, Ask, Timeout, Opts) ->
    try partisan_nif:engine() of
        Engine ->
            Tag = make_ref(),
            Id = persistent_term:get(?ID_BASE, 0) + erlang:unique_integer([positive]),
            Sent = life(Node) =/= false
                andalso partisan_send:call(Node, ?SERVER, Ask({Id, Tag}), Opts, Id, Tag),
            case Sent of
                ok -> await(Engine, Id, Tag, Timeout);
                %% The caller's mistake, or an injected partition: not the
                %% node's going down.
                {error, {unknown_channel, _} = Why} -> {exit, Why};
                {error, partitioned} -> {exit, partitioned};
                _ -> {exit, {nodedown, Node}}
            end
    catch
        error:partisan_not_started -> {exit, noproc}
    end.


await(Engine, Id, Tag, Timeout) ->
    receive
        {Tag, Result} -> Result
    after Timeout ->
        case partisan_nif:call_cancel(Engine, Id) of
            true ->
                {exit, timeout};
            false ->
                %% Its answer was taken for delivery: it is here or about to be.
                receive {Tag, _} -> ok after ?CLAIMED_MS -> ok end,
                {exit, timeout}
        end
    end.


life(Node) ->
    partisan_monitor:connection_life(Node).


is_over(Life, Now) ->
    partisan_monitor:is_over(Life, Now).


%% @doc Applies `M:F(A)' here: `{value, V}' or `{exception, Class, Reason,
%% Stack}'.
-spec run(module(), atom(), list()) ->
    {value, term()} | {exception, atom(), term(), list()}.

run(M, F, A) ->
    try
        {value, erlang:apply(M, F, A)}
    catch
        Class:Reason:Stack -> {exception, Class, Reason, Stack}
    end.


%% A call's answer goes to the caller itself (see request/4); that of a
%% request or stop made through the caller's relay goes to that relay.
answer(Caller, {Id, Tag}, Result) when is_integer(Id) ->
    _ = catch partisan_send:remote(Caller, {call, Id}, {Tag, Result}, #{}),
    ok;

answer(Caller, Key, Result) ->
    _ = partisan:forward_message({?SERVER, Caller}, {'$partisan_answer', Key, Result}),
    ok.


%% Watches Pid (once) and hands it the call, with us as the From to reply to.
serve(Engine, Pid, Key, Request, Caller, #state{watched = Watched} = State0) ->
    State = case is_map_key(Pid, Watched) of
        true ->
            State0;
        false ->
            %% The monitor first: once the engine knows the server as watched,
            %% its death must reach us with the reason.
            MRef = erlang:monitor(process, Pid),
            State0#state{watched = Watched#{Pid => MRef}}
    end,
    %% Every time, not only with the monitor: an engine started after ours
    %% (the manager restarted) knows no server as watched.
    _ = partisan_nif:serve_watch(Engine, Pid),
    _ = case partisan_nif:serve_begin(Engine, Pid, Caller, Key) of
        Id when is_integer(Id) ->
            Pid ! {'$gen_call', {self(), {'$partisan_serve', Id, Caller, Key}}, Request};
        {error, too_many_calls} = Error ->
            logger:warning("partisan: a call of ~p to ~p refused: ~p", [Caller, Pid, Error]),
            answer(Caller, Key, {exit, too_many_calls})
    end,
    State.


%% The answer to a call that ended before its server replied, as the engine
%% returned it (see partisan_nif:serve_unwatch/2).
answer_ended({Caller, Key}, Result) ->
    answer(binary_to_atom(Caller, utf8), binary_to_term(Key), Result).


with_engine(Fun, Default) ->
    try partisan_nif:engine() of
        Engine -> Fun(Engine)
    catch
        error:partisan_not_started -> Default
    end.


%% Draws this VM's first call number, once (the top 20 of 63 bits).
id_base() ->
    case persistent_term:get(?ID_BASE, undefined) of
        undefined -> persistent_term:put(?ID_BASE, rand:uniform(1 bsl 20 - 1) bsl 43);
        _ -> ok
    end.


%% A relayed message is counted by what became of it. One this node could
%% not pass on is logged too: a dead end of a flood is common (other paths go
%% on), a failed delivery here is not.
relayed(_, {Kind, ok}, State) ->
    count(Kind, State);

relayed(Node, {passed_on, {error, no_route}}, State) ->
    logger:debug("partisan: a flood for ~p ends here", [Node]),
    count(dead_ends, State);

relayed(Node, {Kind, Other}, State) ->
    logger:warning("partisan: a message relayed for ~p was dropped here (~p): ~p",
                   [Node, Kind, Other]),
    count(dead_ends, State).


count(Kind, #state{relayed = Relayed} = State) ->
    State#state{relayed = maps:update_with(Kind, fun(N) -> N + 1 end, Relayed)}.


stop_target(Target) ->
    case partisan_monitor:local_target(Target) of
        {ok, Local} -> Local;
        error -> undefined
    end.


%% The process a target of another node's request names here.
local_pid(Target) ->
    case partisan_monitor:local_target(Target) of
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        {ok, Name} -> case whereis(Name) of undefined -> error; Pid -> {ok, Pid} end;
        error -> error
    end.
