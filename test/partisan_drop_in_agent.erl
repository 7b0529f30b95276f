%% -----------------------------------------------------------------------------
%% @doc What runs on the peer nodes of `partisan_drop_in_SUITE': starting
%% partisan, echo servers, senders that wait for their answer, process farms.
%%
%% The suite calls these with `peer:call/5' (nodes without Distributed
%% Erlang) or `erpc' (nodes with it); every message between the peers travels
%% over partisan. Atoms that must exist only on the sender are made at run
%% time, never written here.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_drop_in_agent).

-export([start/1]).
-export([join/1]).
-export([wait_up/2]).
-export([start_echo/1]).
-export([ask_echo/3]).
-export([ask_as/4]).
-export([round_trip/2]).
-export([round_trip_large/2]).
-export([relay_via/2]).
-export([remember_self/3]).
-export([fresh_atoms/2]).
-export([send_new_atoms/3]).
-export([send_atoms/3]).
-export([inspect_pids/1]).
-export([start_farm/1]).
-export([farm_hits/0]).
-export([hit_farm_via/2]).
-export([start_holder/0]).
-export([give_farm/1]).
-export([fire_held/0]).
-export([stats/0]).
-export([peer_stats/0]).
-export([spawn_target/1]).
-export([monitor_down/4]).
-export([monitor_p5/2]).
-export([demonitor_quiet/2]).
-export([monitor_wait/3]).
-export([monitor_cycles/3]).
-export([already_dead/2]).
-export([start_watcher/2]).
-export([watched/1]).
-export([gs_call/5]).
-export([gs_call_then_wait/5]).
-export([gs_timeout_races/4]).
-export([gs_call_storm/5]).
-export([churn/3]).
-export([gs_cast/3]).
-export([gs_multi_call/4]).
-export([gs_request/4]).
-export([gs_stop/3]).
-export([catching/3]).
-export([gsm_call_then_wait/4]).
-export([gsm_postponed/3]).
-export([gsm_pid/2]).
-export([gsm_request/3]).
-export([proc_checks/1]).
-export([erpc_checks/1]).
-export([bounce/1]).
-export([capture_logs/0]).
-export([captured_logs/0]).
-export([log/2]).

-define(WAIT, 10000).



%% =============================================================================
%% SETUP
%% =============================================================================



%% @doc Sets the partisan environment, starts partisan and returns the spec.
-spec start(map()) -> map().

start(Env) ->
    ok = application:load(partisan),
    maps:foreach(fun(K, V) -> application:set_env(partisan, K, V) end, Env),
    {ok, _} = application:ensure_all_started(partisan),
    partisan:node_spec().


-spec join(map()) -> ok.

join(Spec) ->
    partisan_peer_service:join(Spec).


%% @doc Waits until `Node' is in `partisan:nodes()'; returns the wait in ms.
-spec wait_up(node(), timeout()) -> {ok, integer()} | timeout.

wait_up(Node, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    Start = erlang:monotonic_time(millisecond),
    wait_up(Node, Start, Deadline).

wait_up(Node, Start, Deadline) ->
    Now = erlang:monotonic_time(millisecond),
    case lists:member(Node, partisan:nodes()) of
        true -> {ok, Now - Start};
        false when Now > Deadline -> timeout;
        false -> timer:sleep(5), wait_up(Node, Start, Deadline)
    end.



%% =============================================================================
%% ECHO
%% =============================================================================



%% @doc Registers an echo server under `Name'. It answers:
%% `{echo, ReplyTo, Term}' with `{echoed, Term}' sent to `ReplyTo';
%% `{inspect, ReplyTo, Term}' with `{inspected, inspect_pids(Term)}';
%% `{relay, To, Msg}' by forwarding `Msg' to `To';
%% `{hit_all, ReplyTo, Pids}' by sending `hit' to every pid, then `done';
%% `{remember, Term}' by making `Term' a key of a map it keeps, and
%% `{count, ReplyTo}' with that map's size;
%% `{atoms, ReplyTo, Atoms}' with their number and a digest of their text.
%% Every destination is used as it arrived in the message.
-spec start_echo(atom()) -> pid().

start_echo(Name) ->
    Parent = self(),
    Pid = spawn(fun() ->
        true = register(Name, self()),
        Parent ! {self(), ready},
        echo_loop()
    end),
    receive {Pid, ready} -> Pid end.


echo_loop() ->
    receive
        {echo, ReplyTo, Term} ->
            ok = partisan:forward_message(ReplyTo, {echoed, Term});
        {inspect, ReplyTo, Term} ->
            ok = partisan:forward_message(ReplyTo, {inspected, inspect_pids(Term)});
        {relay, To, Msg} ->
            ok = partisan:forward_message(To, Msg);
        {hit_all, ReplyTo, Pids} ->
            _ = [ok = partisan:forward_message(P, hit) || P <- Pids],
            ok = partisan:forward_message(ReplyTo, done);
        {remember, Term} ->
            put(remembered, maps:put(Term, true, remembered()));
        {count, ReplyTo} ->
            ok = partisan:forward_message(ReplyTo, {count, map_size(remembered())});
        {whereis, ReplyTo, Name} ->
            ok = partisan:forward_message(ReplyTo, {whereis, whereis(Name)});
        {spawn_dead, ReplyTo} ->
            Pid = spawn(fun() -> ok end),
            MRef = erlang:monitor(process, Pid),
            receive {'DOWN', MRef, _, _, _} -> ok end,
            ok = partisan:forward_message(ReplyTo, {dead, Pid});
        {exit, Name, Reason} ->
            case whereis(Name) of
                undefined -> ok;
                Pid -> Pid ! {exit, Reason}
            end;
        {atoms, ReplyTo, Atoms} ->
            Digest = erlang:phash2([atom_to_list(A) || A <- Atoms]),
            ok = partisan:forward_message(ReplyTo, {atoms, length(Atoms), Digest})
    end,
    echo_loop().


remembered() ->
    case get(remembered) of
        undefined -> #{};
        Map -> Map
    end.


%% @doc Sends `{echo, self(), Term}' to the echo `Name' on `Node' over
%% partisan; returns what comes back, or `timeout'.
-spec ask_echo(node(), atom(), term()) -> term().

ask_echo(Node, Name, Term) ->
    ask(Node, Name, {echo, self(), Term}).


ask(Node, Name, Msg) ->
    ok = partisan:forward_message({Name, Node}, Msg),
    receive Answer -> Answer after ?WAIT -> timeout end.


%% @doc Asks the echo from a process registered under a name made here at run
%% time (`Prefix' and a unique number), whose reply address is `{Name,
%% partisan:node()}'. Returns the answer and whether the name exists as an atom
%% only because it was made here.
-spec ask_as(string(), node(), atom(), term()) -> term().

ask_as(Prefix, Node, Name, Term) ->
    Me = list_to_atom(Prefix ++ integer_to_list(erlang:unique_integer([positive]))),
    true = register(Me, self()),
    try
        ask(Node, Name, {echo, {Me, partisan:node()}, Term})
    after
        unregister(Me)
    end.


%% @doc A term with this process's pid and fresh references everywhere a pid
%% can hide: tuples (records), lists, improper lists, maps (keys and values),
%% funs excepted. Sent to the echo on `Node' and back: returns whether what
%% came home is `=:=' to it, and what the echo's node saw of its pids.
-spec round_trip(node(), atom()) -> {boolean(), [tuple()]}.

round_trip(Node, Name) ->
    Me = self(),
    Ref = make_ref(),
    Term = {
        {rec, Me, Ref},
        [Me, Ref | Me],
        #{Me => Ref, Ref => [Me], {key, Me} => #{inner => Ref}},
        [[[Me]]],
        <<"not a pid">>
    },
    {echoed, Back} = ask_echo(Node, Name, Term),
    {inspected, Seen} = ask(Node, Name, {inspect, self(), Term}),
    %% A reply that carries only the reference, matched as gen_server does.
    {echoed, {Ref, answer}} = ask_echo(Node, Name, {Ref, answer}),
    {Back =:= Term, Seen}.


%% @doc Like {@link round_trip/2} for a large message (read into memory of its
%% own and decoded in place on the receiver), pids beside a 1 MiB binary.
-spec round_trip_large(node(), atom()) -> {boolean(), [tuple()]}.

round_trip_large(Node, Name) ->
    Big = crypto:strong_rand_bytes(1 bsl 20),
    Term = {big, self(), Big, {make_ref(), [self()]}},
    {echoed, Back} = ask_echo(Node, Name, Term),
    {inspected, Seen} = ask(Node, Name, {inspect, self(), Term}),
    {Back =:= Term, Seen}.


%% @doc Asks the echo on `Via' to relay to the echo on `To' a request whose
%% reply address is this process: `To' answers it directly.
-spec relay_via(node(), node()) -> term().

relay_via(Via, To) ->
    ask(Via, echo, {relay, {echo, To}, {echo, self(), relayed}}).


%% @doc Makes the echo on `Node' remember this process's pid `N' times, in as
%% many messages, and returns the size of its map.
-spec remember_self(node(), atom(), pos_integer()) -> term().

remember_self(Node, Name, N) ->
    _ = [ok = partisan:forward_message({Name, Node}, {remember, self()}) || _ <- lists:seq(1, N)],
    ok = partisan:forward_message({Name, Node}, {remember, {pair, self(), self()}}),
    ask(Node, Name, {count, self()}).


%% @doc Sends `N' atoms that exist only here to the echo on `Node'; returns
%% whether it saw the same number and text.
-spec send_new_atoms(node(), atom(), pos_integer()) -> boolean().

send_new_atoms(Node, Name, N) ->
    Atoms = fresh_atoms("only_here_", N),
    Digest = erlang:phash2([atom_to_list(A) || A <- Atoms]),
    ask(Node, Name, {atoms, self(), Atoms}) =:= {atoms, N, Digest}.


%% @doc `N' atoms made here at run time, unique to this call.
-spec fresh_atoms(string(), non_neg_integer()) -> [atom()].

fresh_atoms(Prefix, N) ->
    U = integer_to_list(erlang:unique_integer([positive])),
    [list_to_atom(Prefix ++ U ++ "_" ++ integer_to_list(I)) || I <- lists:seq(1, N)].


%% @doc Sends `M' messages of `N' fresh atoms each to the echo `Name' on
%% `Node', as `{atoms, ReplyTo, Atoms}'; returns the answers received within
%% the wait (a refused message gets none).
-spec send_atoms(node(), atom(), {pos_integer(), pos_integer()}) -> [term()].

send_atoms(Node, Name, {M, N}) ->
    _ = [
        ok = partisan:forward_message(
            {Name, Node}, {atoms, self(), fresh_atoms("budget_", N)}
        )
        || _ <- lists:seq(1, M)
    ],
    collect(M, 2000).


collect(0, _) ->
    [];

collect(N, Timeout) ->
    receive Answer -> [Answer | collect(N - 1, Timeout)]
    after Timeout -> []
    end.


%% @doc Every pid, port and reference in `Term' (maps, lists, improper
%% lists, tuples): `{Kind, partisan:node(X), IsLocal, partisan:is_pid(X) or
%% partisan:is_reference(X)}'.
-spec inspect_pids(term()) -> [tuple()].

inspect_pids(Term) ->
    lists:reverse(inspect(Term, [])).


inspect(P, Acc) when is_pid(P) ->
    [{pid, partisan:node(P), erlang:node(P) =:= erlang:node(), partisan:is_pid(P)} | Acc];

inspect(R, Acc) when is_reference(R) ->
    [{ref, partisan:node(R), erlang:node(R) =:= erlang:node(),
      partisan:is_reference(R)} | Acc];

inspect(T, Acc) when is_tuple(T) ->
    inspect(tuple_to_list(T), Acc);

inspect(M, Acc) when is_map(M) ->
    inspect(maps:to_list(M), Acc);

inspect([H | T], Acc) ->
    inspect(T, inspect(H, Acc));

inspect(_, Acc) ->
    Acc.



%% =============================================================================
%% MONITORS
%% =============================================================================



%% @doc Registers a process under `Name' that exits with `Reason' when told
%% `{exit, Reason}'.
-spec spawn_target(atom()) -> ok.

spawn_target(Name) ->
    Parent = self(),
    Pid = spawn(fun() ->
        true = register(Name, self()),
        Parent ! {self(), ready},
        receive {exit, Reason} -> exit(Reason) end
    end),
    receive {Pid, ready} -> ok end.


%% @doc Monitors the process `Name' on `Node' (by its pid, as it arrives in a
%% message, or by `{Name, Node}' when `How' is `name'), has the echo there
%% make it exit with `Reason', and returns the `DOWN' message, checked to
%% carry the monitor's reference.
-spec monitor_down(node(), atom(), pid | name, term()) -> term().

monitor_down(Node, Name, How, Reason) ->
    Target = case How of
        pid -> {whereis, Pid} = ask(Node, echo, {whereis, self(), Name}), Pid;
        name -> {Name, Node}
    end,
    Ref = partisan:monitor(process, Target),
    %% Whether the target lives once the monitor is in place (for the log of
    %% an unexpected DOWN; the monitor server is not involved).
    Before = whereis_probe(Node, Name),
    {messages, Queued} = erlang:process_info(self(), messages),
    Early = [Down || {'DOWN', R, _, _, _} = Down <- Queued, R =:= Ref],
    %% (Not sent when the node is not connected.)
    _ = partisan:forward_message({echo, Node}, {exit, Name, Reason}),
    receive
        {'DOWN', Ref, process, Object, Why} when Why =:= Reason; How =:= name ->
            {down, Object =:= Target, Why};
        {'DOWN', Ref, process, Object, Why} ->
            %% Unexpected: say what the target was, for the log.
            {down, Object =:= Target, Why, Target, catch erlang:node(Target), Before, Early}
    after ?WAIT ->
        timeout
    end.


%% Where `Name' is on `Node', waiting only for that answer: the DOWN may come
%% first (it must stay in the mailbox), and a node that is not connected is
%% not asked.
whereis_probe(Node, Name) ->
    case partisan:forward_message({echo, Node}, {whereis, self(), Name}) of
        ok -> receive {whereis, Where} -> Where after ?WAIT -> timeout end;
        {error, _} = Error -> Error
    end.


%% @doc Partisan 5's partisan_monitor:monitor/2 on `{Name, Node}': returns
%% the `DOWN' and what partisan_monitor:demonitor/2 says of the monitor
%% after it (no longer active).
-spec monitor_p5(node(), atom()) -> term().

monitor_p5(Node, Name) ->
    Ref = partisan_monitor:monitor({Name, Node}, []),
    receive
        {'DOWN', Ref, process, {Name, Node}, Why} ->
            {down, Why, partisan_monitor:demonitor(Ref, [info])}
    after ?WAIT ->
        timeout
    end.


%% @doc Monitors `{Name, Node}' and waits up to `Timeout' for its `DOWN'.
-spec monitor_wait(node(), atom(), timeout()) -> term().

monitor_wait(Node, Name, Timeout) ->
    Target = {Name, Node},
    Ref = partisan:monitor(process, Target),
    receive
        {'DOWN', Ref, process, Object, Why} -> {down, Object =:= Target, Why}
    after Timeout ->
        timeout
    end.


%% @doc Monitors `Name' on `Node', removes the monitor with `[flush, info]',
%% makes the process exit, and returns what `demonitor' said and whatever
%% `DOWN' arrived within half a second (none should).
-spec demonitor_quiet(node(), atom()) -> {boolean(), [term()]}.

demonitor_quiet(Node, Name) ->
    Ref = partisan:monitor(process, {Name, Node}),
    Info = partisan:demonitor(Ref, [flush, info]),
    ok = partisan:forward_message({echo, Node}, {exit, Name, late}),
    %% Behind the exit on the same connection.
    {echoed, ok} = ask(Node, echo, {echo, self(), ok}),
    receive
        {'DOWN', Ref, _, _, _} = Down -> {Info, [Down]}
    after 500 ->
        {Info, []}
    end.


%% @doc `N' cycles of monitoring the echo on `Node' and removing the monitor;
%% returns the monitor tables' sizes here and the process's memory before
%% and after.
-spec monitor_cycles(node(), atom(), pos_integer()) -> map().

monitor_cycles(Node, Name, N) ->
    Server = whereis(partisan_monitor),
    Before = element(2, erlang:process_info(Server, memory)),
    _ = [partisan:demonitor(partisan:monitor(process, {Name, Node}), [flush])
         || _ <- lists:seq(1, N)],
    %% The last demonitor request reached the remote server before this.
    {echoed, ok} = ask(Node, echo, {echo, self(), ok}),
    _ = erlang:garbage_collect(Server),
    After = element(2, erlang:process_info(Server, memory)),
    %% Owners that exited a moment ago (earlier cases) are cleaned up when
    %% their exit reaches the server: wait for that, a little.
    Tables = settled_tables(40),
    #{tables => Tables, memory_before => Before,
      memory_after => After, mailbox => element(2, erlang:process_info(self(), message_queue_len))}.


settled_tables(0) ->
    partisan_monitor:stats();

settled_tables(Tries) ->
    Tables = partisan_monitor:stats(),
    #{subscribers := Subs, owners := Owners} = Tables,
    Rest = maps:values(maps:without([subscribers, owners], Tables)),
    case Owners =:= Subs andalso lists:all(fun(N) -> N =:= 0 end, Rest) of
        true -> Tables;
        false -> timer:sleep(50), settled_tables(Tries - 1)
    end.


%% @doc `N' times: gets from the echo on `Node' the pid of a process that has
%% already exited, monitors it and waits for its `DOWN'; returns the reasons.
-spec already_dead(node(), pos_integer()) -> [term()].

already_dead(Node, N) ->
    [begin
         {dead, Pid} = ask(Node, echo, {spawn_dead, self()}),
         Ref = partisan:monitor(process, Pid),
         receive {'DOWN', Ref, process, Pid, Why} -> Why after ?WAIT -> timeout end
     end || _ <- lists:seq(1, N)].


%% @doc A process registered as `Name' that keeps what it receives after
%% `partisan:monitor_nodes(true, Opts)' (`{nodes, Opts}') or after
%% `partisan:monitor_node(Node, true)' three times and `false' once
%% (`{node, Node}': two monitors remain).
-spec start_watcher(atom(), {nodes, list()} | {node, node()}) -> ok.

start_watcher(Name, What) ->
    Parent = self(),
    Pid = spawn(fun() ->
        true = register(Name, self()),
        case What of
            {nodes, Opts} ->
                ok = partisan:monitor_nodes(true, Opts);
            {node, Node} ->
                [true = partisan:monitor_node(Node, true) || _ <- [1, 2, 3]],
                true = partisan:monitor_node(Node, false)
        end,
        Parent ! {self(), ready},
        watcher_loop([])
    end),
    receive {Pid, ready} -> ok end.


watcher_loop(Acc) ->
    receive
        {'$get', From} -> From ! {watched, lists:reverse(Acc)}, watcher_loop(Acc);
        Msg -> watcher_loop([Msg | Acc])
    end.


%% @doc What the watcher `Name' received so far.
-spec watched(atom()) -> [term()].

watched(Name) ->
    Name ! {'$get', self()},
    receive {watched, Msgs} -> Msgs end.



%% =============================================================================
%% PARTISAN_GEN_SERVER
%% =============================================================================



%% The server `Name' on `Node': by name, or by its pid as it arrives in a
%% message from that node.
gs_target(Node, Name, name) ->
    {Name, Node};

gs_target(Node, Name, pid) ->
    {whereis, Pid} = ask(Node, echo, {whereis, self(), Name}),
    Pid.


%% @doc `partisan_gen_server:call/3' to `Name' on `Node'; `{ok, Reply}' or
%% `{exit, Reason}'.
-spec gs_call(node(), atom(), name | pid, term(), term()) -> term().

gs_call(Node, Name, How, Request, Opts) ->
    Target = gs_target(Node, Name, How),
    try {ok, partisan_gen_server:call(Target, Request, Opts)}
    catch exit:Reason -> {exit, Reason}
    end.


%% @doc Like {@link gs_call/5} by name, then waits `Ms' and returns what else
%% arrived in the mailbox meanwhile (a late reply would).
-spec gs_call_then_wait(node(), atom(), term(), term(), non_neg_integer()) ->
    {term(), [term()]}.

gs_call_then_wait(Node, Name, Request, Opts, Ms) ->
    Result = gs_call(Node, Name, name, Request, Opts),
    timer:sleep(Ms),
    {Result, collect_until(0)}.


%% @doc `Count' calls to `{later, Ms}' with a timeout of `Ms' too, so that
%% the reply and the timeout race; then waits 200 ms. Returns how many calls
%% got their reply, how many timed out, and what was left in the mailbox.
-spec gs_timeout_races(node(), atom(), pos_integer(), pos_integer()) ->
    {non_neg_integer(), non_neg_integer(), [term()]}.

gs_timeout_races(Node, Name, Count, Ms) ->
    Results = [gs_call(Node, Name, name, {later, Ms}, Ms) || _ <- lists:seq(1, Count)],
    Replies = length([ok || {ok, {late, _}} <- Results]),
    Timeouts = length([ok || {exit, {timeout, _}} <- Results]),
    timer:sleep(200),
    {Replies, Timeouts, collect_until(0)}.


%% @doc `Callers' processes each make `Calls' calls of `get' to `Name' on
%% `Node' (timeout `Ms'), all at once. Returns every result, with how long
%% the slowest call took (ms), and what was left in this process's mailbox.
-spec gs_call_storm(node(), atom(), pos_integer(), pos_integer(), timeout()) ->
    {[term()], non_neg_integer(), [term()]}.

gs_call_storm(Node, Name, Callers, Calls, Ms) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                Timed = [timer:tc(fun() -> gs_call(Node, Name, name, get, Ms) end)
                         || _ <- lists:seq(1, Calls)],
                Self ! {self(), Timed, collect_until(0)}
            end) || _ <- lists:seq(1, Callers)],
    Got = [receive {P, Timed, Left} -> {Timed, Left} end || P <- Pids],
    Timed = lists:append([T || {T, _} <- Got]),
    Slowest = lists:max([Us || {Us, _} <- Timed]) div 1000,
    {[R || {_, R} <- Timed], Slowest, lists:append([L || {_, L} <- Got])}.


%% @doc `Times' lives of a counter registered as `Name': each started, left
%% to serve for `GapMs', then killed. Returns how many lives it had.
-spec churn(atom(), pos_integer(), pos_integer()) -> pos_integer().

churn(Name, Times, GapMs) ->
    lists:foreach(
        fun(_) ->
            {ok, Pid} = partisan_test_counter:start(Name),
            timer:sleep(GapMs),
            exit(Pid, kill),
            wait_unregistered(Name)
        end,
        lists:seq(1, Times)
    ),
    Times.


wait_unregistered(Name) ->
    case whereis(Name) of
        undefined -> ok;
        _ -> timer:sleep(1), wait_unregistered(Name)
    end.


collect_until(Timeout) ->
    receive Msg -> [Msg | collect_until(Timeout)]
    after Timeout -> []
    end.


-spec gs_cast(node(), atom(), term()) -> ok.

gs_cast(Node, Name, Msg) ->
    partisan_gen_server:cast({Name, Node}, Msg).


-spec gs_multi_call([node()], atom(), term(), timeout()) -> term().

gs_multi_call(Nodes, Name, Request, Timeout) ->
    partisan_gen_server:multi_call(Nodes, Name, Request, Timeout).


%% @doc `send_request/2', then `receive_response/2'.
-spec gs_request(node(), atom(), term(), timeout()) -> term().

gs_request(Node, Name, Request, Timeout) ->
    Id = partisan_gen_server:send_request({Name, Node}, Request),
    partisan_gen_server:receive_response(Id, Timeout).


%% @doc A `partisan_gen_statem' call that may time out, then what reaches the
%% mailbox within `Ms'.
-spec gsm_call_then_wait(term(), term(), term(), timeout()) -> {term(), [term()]}.

gsm_call_then_wait(Target, Request, Opts, Ms) ->
    Result = catching(partisan_gen_statem, call, [Target, Request, Opts]),
    timer:sleep(Ms),
    {Result, collect_until(0)}.


%% @doc A call the door postpones while locked: still pending after 200 ms,
%% answered once another call unlocks the door.
-spec gsm_postponed(node(), atom(), term()) -> {term(), term(), term()}.

gsm_postponed(Node, Name, Code) ->
    Id = partisan_gen_statem:send_request({Name, Node}, enter),
    Pending = partisan_gen_statem:wait_response(Id, 200),
    Unlocked = partisan_gen_statem:call({Name, Node}, {unlock, Code}, 5000),
    {Pending, Unlocked, partisan_gen_statem:wait_response(Id, 5000)}.


%% @doc `partisan_gen_statem:send_request/2', then the answer by `How'.
-spec gsm_request(term(), term(), receive_response | wait_response | check_response) -> term().

gsm_request(Target, Request, check_response) ->
    Id = partisan_gen_statem:send_request(Target, Request),
    receive Msg -> partisan_gen_statem:check_response(Msg, Id)
    after 5000 -> timeout
    end;

gsm_request(Target, Request, How) ->
    Id = partisan_gen_statem:send_request(Target, Request),
    partisan_gen_statem:How(Id, 5000).


%% @doc The pid of `Name' on `Node', as it arrives in a message from there.
-spec gsm_pid(node(), atom()) -> pid().

gsm_pid(Node, Name) ->
    gs_target(Node, Name, pid).


%% @doc The process functions of `partisan' on processes of node `B', run
%% from here: what each gave.
-spec proc_checks(node()) -> map().

proc_checks(B) ->
    Sleeper = partisan:spawn(B, timer, sleep, [infinity]),
    Alive = partisan:is_process_alive(Sleeper),
    Status = partisan:process_info(Sleeper, status),
    Info = is_list(partisan:process_info(Sleeper)),
    true = partisan:exit(Sleeper, kill),
    Dead = wait_until_dead(Sleeper, 100),
    %% The monitor is in place before the process runs: its reason, never noproc.
    Reasons = lists:usort([spawned_down(B) || _ <- lists:seq(1, 50)]),
    {_, Mon} = partisan:spawn_monitor('nowhere@127.0.0.1', erlang, exit, [bye]),
    Nowhere = receive {'DOWN', Mon, process, _, R} -> R after 5000 -> timeout end,
    Me = partisan:self(),
    Echo = partisan:spawn(B, ?MODULE, bounce, [Me]),
    _ = partisan:send_after(50, Echo, hello),
    Bounced = receive {bounced, hello} -> ok after 5000 -> timeout end,
    Timer = partisan:send_after(1000, Echo, never),
    Left = partisan:cancel_timer(Timer),
    Cancelled = receive {bounced, never} -> arrived after 1500 -> ok end,
    #{alive => Alive, status => Status, info => Info, dead => Dead, reasons => Reasons,
      nowhere => Nowhere, bounced => Bounced, left => is_integer(Left) andalso Left > 0,
      cancelled => Cancelled}.


spawned_down(B) ->
    {_, Mon} = partisan:spawn_monitor(B, erlang, exit, [bye]),
    receive {'DOWN', Mon, process, _, Reason} -> Reason after 5000 -> timeout end.


wait_until_dead(_, 0) ->
    still_alive;

wait_until_dead(Process, N) ->
    case partisan:is_process_alive(Process) of
        false -> dead;
        true -> timer:sleep(20), wait_until_dead(Process, N - 1)
    end.


%% @doc Sends what it receives back to `To' as `{bounced, Msg}', forever.
-spec bounce(term()) -> no_return().

bounce(To) ->
    receive Msg -> _ = partisan:forward_message(To, {bounced, Msg}) end,
    bounce(To).


%% @doc `partisan_erpc' beyond call/4,5 against node `B', run from here.
-spec erpc_checks(node()) -> map().

erpc_checks(B) ->
    Nowhere = 'nowhere@127.0.0.1',
    Fun = catching(partisan_erpc, call, [B, fun partisan:node/0]),
    Id = partisan_erpc:send_request(B, partisan, node, []),
    Received = catching(partisan_erpc, receive_response, [Id, 5000]),
    Slow = partisan_erpc:send_request(B, timer, sleep, [300]),
    Waited = {partisan_erpc:wait_response(Slow, 0), partisan_erpc:wait_response(Slow, 5000)},
    Checked = partisan_erpc:send_request(B, erlang, error, [boom]),
    Check = receive Msg -> catching(partisan_erpc, check_response, [Msg, Checked])
            after 5000 -> timeout end,
    Abandoned = partisan_erpc:send_request(B, timer, sleep, [400]),
    TimedOut = catching(partisan_erpc, receive_response, [Abandoned, 50]),
    timer:sleep(600),
    Late = collect_until(0),
    Local = catching(partisan_erpc, receive_response,
                     [partisan_erpc:send_request(partisan:node(), partisan, node, []), 5000]),
    Multi = partisan_erpc:multicall([B, Nowhere, partisan:node()], partisan, node, [], 5000),
    ok = partisan_erpc:multicast([B], partisan_test_counter, start, [multicast_started]),
    #{fun_call => Fun, received => Received, waited => Waited, checked => Check,
      timed_out => TimedOut, late => Late, local => Local, multi => Multi}.


%% @doc `apply(M, F, A)': `{ok, Value}' or `{Class, Reason}'.
-spec catching(module(), atom(), list()) -> term().

catching(M, F, A) ->
    try {ok, erlang:apply(M, F, A)}
    catch Class:Reason -> {Class, Reason}
    end.


-spec gs_stop(node(), atom(), term()) -> term().

gs_stop(Node, Name, Reason) ->
    try partisan_gen_server:stop({Name, Node}, Reason, 5000)
    catch exit:Why -> {exit, Why}
    end.



%% =============================================================================
%% PROCESS FARMS
%% =============================================================================



%% @doc Starts `N' processes that count what they receive (their pids are
%% kept in `persistent_term').
-spec start_farm(pos_integer()) -> ok.

start_farm(N) ->
    Pids = [spawn(fun() -> farm_loop(0) end) || _ <- lists:seq(1, N)],
    persistent_term:put({?MODULE, farm}, Pids).


%% @doc Asks the echo on `Node' to send `hit' to every process of this node's
%% farm, taking their pids from the message; waits until it is done.
-spec hit_farm_via(node(), atom()) -> term().

hit_farm_via(Node, Name) ->
    ask(Node, Name, {hit_all, self(), persistent_term:get({?MODULE, farm})}).


%% @doc Registers `holder', which keeps the pids it is given.
-spec start_holder() -> ok.

start_holder() ->
    Pid = spawn(fun() -> holder_loop([]) end),
    true = register(holder, Pid),
    ok.


holder_loop(Held) ->
    receive
        {held, Pids} ->
            holder_loop(Pids);
        {fire, From} ->
            From ! {fired, [partisan:forward_message(P, hit) || P <- Held]},
            holder_loop(Held)
    end.


%% @doc Gives this node's farm pids to the holder on `Node'.
-spec give_farm(node()) -> ok.

give_farm(Node) ->
    partisan:forward_message({holder, Node}, {held, persistent_term:get({?MODULE, farm})}).


%% @doc Sends `hit' to every pid the holder keeps; returns the results.
-spec fire_held() -> [term()].

fire_held() ->
    holder ! {fire, self()},
    receive {fired, Results} -> Results after ?WAIT -> timeout end.


farm_loop(N) ->
    receive
        {count, From} -> From ! {self(), N}, farm_loop(N);
        _ -> farm_loop(N + 1)
    end.


%% @doc Total messages the farm's processes received.
-spec farm_hits() -> non_neg_integer().

farm_hits() ->
    Pids = persistent_term:get({?MODULE, farm}),
    lists:sum([
        begin
            P ! {count, self()},
            receive {P, N} -> N after ?WAIT -> error({farm_silent, P}) end
        end
        || P <- Pids
    ]).



%% =============================================================================
%% COUNTERS AND LOGS
%% =============================================================================



-spec stats() -> map().

stats() ->
    partisan_nif:stats(partisan_nif:engine()).


-spec peer_stats() -> map().

peer_stats() ->
    partisan_nif:peer_stats(partisan_nif:engine()).


%% @doc Keeps every warning logged from now on (in an ETS table).
-spec capture_logs() -> ok.

capture_logs() ->
    Owner = spawn(fun() ->
        _ = ets:new(?MODULE, [named_table, public, bag]),
        receive stop -> ok end
    end),
    wait_table(),
    _ = Owner,
    _ = logger:remove_handler(?MODULE),
    ok = logger:add_handler(?MODULE, ?MODULE, #{level => warning}).


wait_table() ->
    case ets:info(?MODULE) of
        undefined -> timer:sleep(5), wait_table();
        _ -> ok
    end.


%% @doc The captured warnings' reports.
-spec captured_logs() -> [map()].

captured_logs() ->
    [Report || {log, Report} <- ets:tab2list(?MODULE)].


%% @private logger handler callback
log(#{msg := {report, Report}}, _Config) when is_map(Report) ->
    ets:insert(?MODULE, {log, Report});

log(_, _) ->
    ok.
