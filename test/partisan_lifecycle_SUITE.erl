%% -----------------------------------------------------------------------------
%% @doc Application lifecycle: repeated application:stop/start of partisan on
%% a node must not leak OS threads, file descriptors or memory, must release
%% the listening socket, and must leave the node able to join and exchange
%% messages.
%%
%% (The case "the application refuses to start with a clear reason when the
%% NIF cannot be loaded" is not covered here: it needs a broken build.)
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_lifecycle_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).

-export([restart_cycles_do_not_leak/1]).
-export([restart_cycles_with_peer_traffic/1]).

-define(S, partisan_ct_support).
-define(MiB, (1024 * 1024)).
-define(CYCLES, 20).
-define(PEER_CYCLES, 5).
%% tolerances relative to the first cycle
-define(FD_SLACK, 2).
-define(MEM_SLACK, 10 * ?MiB).
-define(RSS_SLACK, 64 * ?MiB).


%% =============================================================================
%% CT CALLBACKS
%% =============================================================================


suite() ->
    [{timetrap, {seconds, 120}}].


all() ->
    [restart_cycles_do_not_leak, restart_cycles_with_peer_traffic].


init_per_suite(Config) ->
    ok = ?S:init_dist(),
    [{node_prefix, "life"} | Config].


end_per_suite(_Config) ->
    ok.


init_per_testcase(restart_cycles_with_peer_traffic, Config) ->
    %% A comes back on the same port every cycle
    Port = ?S:free_port(),
    A = ?S:start_node(?S:node_name("life_a"), Config, #{port => Port}),
    B = ?S:start_node(?S:node_name("life_b"), Config),
    [{nodes, [A, B]}, {fixed_port, Port} | Config];

init_per_testcase(_TC, Config) ->
    Nodes = ?S:start_nodes(2, Config),
    [{nodes, Nodes} | Config].


end_per_testcase(_TC, Config) ->
    ?S:stop_nodes(?config(nodes, Config)).



%% =============================================================================
%% TEST CASES
%% =============================================================================


%% application:stop/start 20 times on A. After the loop, threads, fds and
%% memory (running and stopped) are back to what they were after the first
%% cycle (within a small tolerance), and A can still join B and exchange
%% messages.
restart_cycles_do_not_leak(Config) ->
    [A, B] = ?config(nodes, Config),

    Usage = [cycle(A, I) || I <- lists:seq(1, ?CYCLES)],
    log_usage(io_lib:format("~p: stopped -> running, per cycle", [A]), Usage),
    [{1, Stopped1, Running1} | _] = Usage,

    %% running state after the loop (bounded settle) vs after the first cycle
    ok = settle_and_compare(A, running, Running1),

    %% stopped state: one more stop, compared with the first cycle's
    ok = ?S:rpc(A, application, stop, [partisan]),
    ok = settle_and_compare(A, stopped, Stopped1),
    ok = ?S:rpc(A, application, start, [partisan]),

    %% and the node still works
    ok = join_and_talk(A, B).


%% Each cycle, A starts, joins B, exchanges messages both ways, then stops.
%% The listening port is released at every stop, B notices A down, and
%% neither node accumulates threads or fds across cycles.
restart_cycles_with_peer_traffic(Config) ->
    [A, B] = ?config(nodes, Config),
    Port = ?config(fixed_port, Config),
    [_ = ?S:rpc(N, ?S, start_echo, [echo]) || N <- [A, B]],

    Samples = [
        peer_cycle(A, B, Port, I) || I <- lists:seq(1, ?PEER_CYCLES)
    ],
    log_usage(
        io_lib:format("~p stopped -> ~p running without it, per cycle", [A, B]),
        Samples
    ),
    [{1, StoppedA1, RunningB1} | _] = Samples,
    %% A is stopped now (last cycle), B running without A
    ok = settle_and_compare(A, stopped, StoppedA1),
    ok = settle_and_compare(B, running, RunningB1),

    %% finally A comes back once more and talks
    ok = ?S:rpc(A, application, start, [partisan]),
    ok = join_and_talk(A, B).



%% =============================================================================
%% PRIVATE
%% =============================================================================


%% One stop/start cycle; returns {I, UsageWhileStopped, UsageWhileRunning}.
cycle(Node, I) ->
    ok = ?S:rpc(Node, application, stop, [partisan]),
    ?assertNot(is_running(Node), {still_running_after_stop, I}),
    Stopped = stable_usage(Node),
    case ?S:rpc(Node, application, start, [partisan]) of
        ok -> ok;
        Error -> ct:fail({start_failed, {cycle, I}, Error})
    end,
    ?assert(is_running(Node), {not_running_after_start, I}),
    %% the engine is really up: it has bound a listener
    _ = ?S:node_spec(Node),
    Running = stable_usage(Node),
    {I, Stopped, Running}.


%% A starts (except in cycle 1, where it is already running), joins B, both
%% exchange messages, A stops. Returns {I, A's usage once stopped, B's usage
%% once it has seen A go}.
peer_cycle(A, B, Port, I) ->
    case I of
        1 -> ok;
        _ -> ok = ?S:rpc(A, application, start, [partisan])
    end,
    ?assertMatch(#{listen_addrs := [#{port := Port} | _]}, ?S:node_spec(A)),
    ok = join_and_talk(A, B),

    ok = ?S:rpc(A, application, stop, [partisan]),
    %% the listener is closed
    ?assertEqual(
        {error, econnrefused},
        gen_tcp:connect({127, 0, 0, 1}, Port, [], 2000),
        {listener_still_open, I}
    ),
    %% B notices A is gone
    ?S:wait_until(
        {b_sees_a_down, I},
        fun() ->
            case ?S:rpc(B, partisan, nodes, []) of
                [] -> true;
                Other -> {false, Other}
            end
        end,
        150, 100
    ),
    StoppedA = stable_usage(A),
    RunningB = stable_usage(B),
    {I, StoppedA, RunningB}.


%% A joins B, they converge, and messages flow both ways (plain sends to a
%% registered name and round trips through remote refs).
join_and_talk(A, B) ->
    ok = ?S:join(A, B),
    ok = ?S:wait_until_converged([A, B]),
    [
        begin
            _ = ?S:rpc(N, ?S, start_collector, [inbox]),
            case ?S:rpc(N, erlang, whereis, [echo]) of
                undefined -> _ = ?S:rpc(N, ?S, start_echo, [echo]);
                _ -> ok
            end
        end
        || N <- [A, B]
    ],
    ?assertEqual(ok, ?S:rpc(A, ?S, send_seq, [{inbox, B}, ab, 1, 100, #{}])),
    ?assertEqual(ok, ?S:rpc(B, ?S, send_seq, [{inbox, A}, ba, 1, 100, #{}])),
    ?assertEqual(
        [{seq, ab, I} || I <- lists:seq(1, 100)],
        ?S:wait_for_messages(B, inbox, 100)
    ),
    ?assertEqual(
        [{seq, ba, I} || I <- lists:seq(1, 100)],
        ?S:wait_for_messages(A, inbox, 100)
    ),
    ?assertEqual(ok, ?S:rpc(A, ?S, ping_many, [{echo, B}, 20, #{}, 5000])),
    ?assertEqual(ok, ?S:rpc(B, ?S, ping_many, [{echo, A}, 20, #{}, 5000])),
    ok.


%% A usage sample taken once the thread count is stable over two samples
%% 50 ms apart (at most ~2 s), so threads that are exiting are not counted.
stable_usage(Node) ->
    stable_usage(Node, ?S:rpc(Node, ?S, resource_usage, []), 40).


stable_usage(_Node, Usage, 0) ->
    Usage;

stable_usage(Node, #{threads := T} = Prev, N) ->
    timer:sleep(50),
    case ?S:rpc(Node, ?S, resource_usage, []) of
        #{threads := T} = Usage -> Usage;
        Usage -> _ = Prev, stable_usage(Node, Usage, N - 1)
    end.


is_running(Node) ->
    Apps = ?S:rpc(Node, application, which_applications, []),
    lists:keymember(partisan, 1, Apps).


%% Polls (bounded) until `Node's usage is within tolerance of `Base', then
%% asserts it. Threads get up to 15 s (a runtime may keep idle blocking
%% threads for a while).
settle_and_compare(Node, Label, Base) ->
    ?S:wait_until(
        {settle, Label, Node},
        fun() ->
            Now = ?S:rpc(Node, ?S, resource_usage, []),
            case check(Base, Now) of
                [] -> true;
                Bad -> {false, Bad}
            end
        end,
        75, 200
    ),
    Final = ?S:rpc(Node, ?S, resource_usage, []),
    ct:log("~p ~p: base ~p~nfinal ~p", [Label, Node, Base, Final]),
    compare(Label, Base, Final).


compare(Label, Base, Now) ->
    case check(Base, Now) of
        [] -> ok;
        Bad -> ct:fail({resource_growth, Label, Bad, {base, Base}, {now, Now}})
    end.


check(#{threads := T0, fds := F0, memory := M0, rss := R0},
      #{threads := T1, fds := F1, memory := M1, rss := R1}) ->
    [
        {threads, T0, T1} || T1 > T0
    ] ++ [
        {fds, F0, F1} || F1 > F0 + ?FD_SLACK
    ] ++ [
        {memory, M0, M1} || M1 > M0 + ?MEM_SLACK
    ] ++ [
        {rss, R0, R1} || R0 > 0, R1 > R0 + ?RSS_SLACK
    ].


log_usage(Header, Samples) ->
    Lines = [
        io_lib:format(
            "~3w | threads ~4w -> ~4w | fds ~4w -> ~4w | "
            "memory ~10w -> ~10w | rss ~10w -> ~10w~n",
            [I, T1, T2, F1, F2, M1, M2, R1, R2]
        )
        || {I, #{threads := T1, fds := F1, memory := M1, rss := R1},
               #{threads := T2, fds := F2, memory := M2, rss := R2}}
           <- Samples
    ],
    ct:log("resource usage, ~s~n~s", [Header, Lines]).
