%% -----------------------------------------------------------------------------
%% @doc `partisan_gen_server' across nodes without Distributed Erlang, with a
%% callback module written for plain `gen_server' (`partisan_test_counter'):
%% calls by name and by pid, casts, deferred replies, timeouts that leave no
%% late reply, `noproc', a crashing server, a node that is not connected or
%% goes away during the call, `multi_call', `send_request', remote `stop',
%% and `sys' on the server.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen_server_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).

-export([calls_by_name_and_by_pid/1]).
-export([casts_then_calls/1]).
-export([deferred_reply/1]).
-export([timeout_leaves_no_late_reply/1]).
-export([noproc_and_crash/1]).
-export([served_server_dies/1]).
-export([served_server_churn/1]).
-export([engine_restart_keeps_serving/1]).
-export([nodedown/1]).
-export([multi_call_and_abcast/1]).
-export([send_request_and_stop/1]).
-export([sys_works_on_the_server/1]).
-export([rpc_and_erpc/1]).
-export([connection_loss_ends_calls/1]).
-export([killed_node_ends_calls/1]).

-import(partisan_test_nodes, [start/4, stop/1, mesh/1, cluster/1, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).
-define(NOWHERE, 'nowhere@127.0.0.1').

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [
        calls_by_name_and_by_pid,
        casts_then_calls,
        deferred_reply,
        timeout_leaves_no_late_reply,
        noproc_and_crash,
        served_server_dies,
        served_server_churn,
        engine_restart_keeps_serving,
        multi_call_and_abcast,
        send_request_and_stop,
        sys_works_on_the_server,
        rpc_and_erpc,
        connection_loss_ends_calls,
        killed_node_ends_calls,
        nodedown
    ].

init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config = [{group, gen_server} | Config0],
    Nodes = [start(stdio, Tag, #{}, Config) || Tag <- ["ga", "gb", "gc"]],
    ok = mesh(Nodes),
    [_, B, C] = Nodes,
    {ok, _} = call(B, partisan_test_counter, start, [counter]),
    {ok, _} = call(C, partisan_test_counter, start, [counter]),
    [{nodes, Nodes} | Config].

end_per_suite(Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, cluster(Config)),
    _ = persistent_term:erase({partisan_test_nodes, gen_server}),
    ok.



%% =============================================================================
%% CASES
%% =============================================================================



calls_by_name_and_by_pid(Config) ->
    [A, B, _] = cluster(Config),
    Base = gs(A, B, name, get),
    ?assertEqual({ok, Base + 5}, call(A, ?AGENT, gs_call, [name(B), counter, name, {add, 5}, 5000])),
    ?assertEqual({ok, Base + 5}, call(A, ?AGENT, gs_call, [name(B), counter, pid, get, 5000])),
    %% Partisan's option list.
    ?assertEqual(
        {ok, Base + 5},
        call(A, ?AGENT, gs_call, [name(B), counter, name, get, [{timeout, 1000}, {channel, undefined}]])
    ).

casts_then_calls(Config) ->
    [A, B, _] = cluster(Config),
    Base = gs(A, B, name, get),
    ok = call(A, ?AGENT, gs_cast, [name(B), counter, {add, 2}]),
    ?assertEqual(Base + 2, gs(A, B, name, get)).

deferred_reply(Config) ->
    [A, B, _] = cluster(Config),
    N = gs(A, B, name, get),
    ?assertEqual({late, N}, gs(A, B, name, {later, 100})).

timeout_leaves_no_late_reply(Config) ->
    [A, B, _] = cluster(Config),
    #{call_answers_late := LateBefore} = call(A, ?AGENT, stats, []),
    %% The reply comes 600 ms after the caller gave up at 150 ms: A's engine
    %% drops it, and counts it.
    {Result, Mailbox} = call(A, ?AGENT, gs_call_then_wait, [name(B), counter, {later, 600}, 150, 1000]),
    ?assertMatch({exit, {timeout, {partisan_gen_server, call, [_, {later, 600}, 150]}}}, Result),
    ?assertEqual([], Mailbox),
    #{call_answers_late := LateAfter, calls_waiting := 0} = call(A, ?AGENT, stats, []),
    ?assertEqual(LateBefore + 1, LateAfter),
    {Never, []} = call(A, ?AGENT, gs_call_then_wait, [name(B), counter, never, 100, 200]),
    ?assertMatch({exit, {timeout, {partisan_gen_server, call, _}}}, Never),
    %% Replies that race the timeout: each call ends one way or the other, and
    %% no reply that lost the race is left behind.
    {Replies, Timeouts, Left} = call(A, ?AGENT, gs_timeout_races, [name(B), counter, 200, 5]),
    ct:comment("racing replies: ~b in time, ~b timed out", [Replies, Timeouts]),
    ?assertEqual(200, Replies + Timeouts),
    ?assertEqual([], Left),
    ?assertMatch(#{calls_waiting := 0}, call(A, ?AGENT, stats, [])).

noproc_and_crash(Config) ->
    [A, B, _] = cluster(Config),
    ?assertMatch(
        {exit, {noproc, {partisan_gen_server, call, _}}},
        call(A, ?AGENT, gs_call, [name(B), nobody, name, get, 5000])
    ),
    {ok, _} = call(B, partisan_test_counter, start, [fragile]),
    ?assertMatch(
        {exit, {{crashed, _}, {partisan_gen_server, call, _}}},
        call(A, ?AGENT, gs_call, [name(B), fragile, name, crash, 5000])
    ),
    %% A server that stops with a reply answers, then is gone.
    {ok, _} = call(B, partisan_test_counter, start, [brief]),
    ?assertEqual({ok, stopping}, call(A, ?AGENT, gs_call, [name(B), brief, name, {stop, normal}, 5000])).

%% After its first call a server is handed calls by B's engine itself (B's
%% relay watches it, see partisan_gen_relay): its death must still end the
%% calls it had with its exit reason, calls after it are `noproc', and a
%% server of the same name started anew is served as the first was. In a
%% loop, so that calls meet the server at every point of its life; at the
%% end nothing of the dead servers is left in B's tables.
served_server_dies(Config) ->
    [A, B, _] = cluster(Config),
    #{calls_served := Served0, servers_watched := Watched0, calls_handed := Handed0} =
        call(B, ?AGENT, stats, []),
    Get = fun() -> call(A, ?AGENT, gs_call, [name(B), phoenix, name, get, 5000]) end,
    lists:foreach(
        fun(I) ->
            {ok, _} = call(B, partisan_test_counter, start, [phoenix]),
            ?assertEqual({ok, 0}, Get()),
            ?assertEqual({ok, 0}, Get()),
            case I rem 3 of
                0 ->
                    ?assertMatch(
                        {exit, {{crashed, _}, {partisan_gen_server, call, _}}},
                        call(A, ?AGENT, gs_call, [name(B), phoenix, name, crash, 5000])
                    );
                1 ->
                    %% Killed while it has a call it will never answer.
                    Self = self(),
                    Waiter = spawn(fun() ->
                        Self ! {self(), call(A, ?AGENT, gs_call,
                                             [name(B), phoenix, name, never, 10000])}
                    end),
                    ok = wait_served(B, Served0 + 1, 200),
                    Pid = call(B, erlang, whereis, [phoenix]),
                    true = call(B, erlang, exit, [Pid, kill]),
                    ?assertMatch({exit, {killed, {partisan_gen_server, call, _}}},
                                 wait_for(Waiter));
                2 ->
                    ?assertEqual({ok, stopping},
                                 call(A, ?AGENT, gs_call,
                                      [name(B), phoenix, name, {stop, normal}, 5000]))
            end,
            %% (A server that replied before stopping may not be gone yet.)
            ok = wait_gone(B, phoenix, 200),
            ?assertMatch({exit, {noproc, _}}, Get())
        end,
        lists:seq(1, 60)
    ),
    ok = wait_served(B, Served0, 200),
    #{servers_watched := Watched, calls_handed := Handed} = call(B, ?AGENT, stats, []),
    ?assertEqual(Watched0, Watched),
    %% The second call of each life and those after it went to the server
    %% straight from B's engine.
    ?assert(Handed - Handed0 >= 60 * 2, {handed, Handed - Handed0}).

%% Sixteen callers at once while B's server is killed and started again
%% every 5 ms: calls meet the server at every point of its life, and each
%% ends at once with the reply, the server's exit (`killed') or `noproc'.
%% None is lost (a lost call would wait for its timeout), none answered
%% twice (a second answer would be left in a caller's mailbox).
served_server_churn(Config) ->
    [A, B, _] = cluster(Config),
    #{calls_served := Served0} = call(B, ?AGENT, stats, []),
    Self = self(),
    Churner = spawn(fun() -> Self ! {self(), call(B, ?AGENT, churn, [storm, 100, 5])} end),
    {Results, Slowest, Left} =
        call(A, ?AGENT, gs_call_storm, [name(B), storm, 16, 500, 5000]),
    ?assertEqual(100, wait_for(Churner)),
    Kinds = lists:foldl(
        fun(R, Acc) -> maps:update_with(outcome(R), fun(N) -> N + 1 end, 1, Acc) end,
        #{}, Results),
    ct:comment("~p; slowest call ~b ms", [Kinds, Slowest]),
    ?assertEqual([], maps:keys(Kinds) -- [reply, killed, noproc]),
    ?assertEqual(16 * 500, length(Results)),
    ?assert(Slowest < 4000, {slowest_ms, Slowest}),
    ?assertEqual([], Left),
    ok = wait_served(B, Served0, 200).

outcome({ok, _}) -> reply;
outcome({exit, {killed, {partisan_gen_server, call, _}}}) -> killed;
outcome({exit, {noproc, {partisan_gen_server, call, _}}}) -> noproc;
outcome(Other) -> Other.

%% The manager that owns the engine of a node restarts (a new engine, whose
%% table of served calls is empty) while the node's relay lives on, still
%% monitoring the servers it watched: calls to those servers go on. Two
%% nodes of its own, since the restart takes the node out of the cluster.
engine_restart_keeps_serving(Config) ->
    [A, B] = Nodes = [start(stdio, Tag, #{}, Config) || Tag <- ["gra", "grb"]],
    try
        ok = mesh(Nodes),
        {ok, _} = call(B, partisan_test_counter, start, [steady]),
        Get = fun() -> call(A, ?AGENT, gs_call, [name(B), steady, name, get, 5000]) end,
        ?assertEqual({ok, 0}, Get()),
        ?assertEqual({ok, 0}, Get()),
        Relay = call(B, erlang, whereis, [partisan_gen_relay]),
        Manager = call(B, partisan_peer_service, manager, []),
        Old = call(B, erlang, whereis, [Manager]),
        true = call(B, erlang, exit, [Old, kill]),
        ok = partisan_ct_support:wait_until(
            fun() ->
                New = call(B, erlang, whereis, [Manager]),
                is_pid(New) andalso New =/= Old
            end, 100, 50),
        ?assertEqual(Relay, call(B, erlang, whereis, [partisan_gen_relay])),
        ok = mesh(Nodes),
        ?assertEqual({ok, 0}, Get()),
        ?assertEqual({ok, 0}, Get()),
        ?assertMatch(#{calls_handed := H} when H >= 1, call(B, ?AGENT, stats, []))
    after
        lists:foreach(fun partisan_test_nodes:stop/1, Nodes)
    end.

multi_call_and_abcast(Config) ->
    [A, B, C] = cluster(Config),
    ok = call(A, ?AGENT, gs_cast, [name(C), counter, {add, 0}]),
    NB = gs(A, B, name, get),
    NC = gs(A, C, name, get),
    ?assertEqual(
        {[{name(B), NB}, {name(C), NC}], [?NOWHERE]},
        call(A, ?AGENT, gs_multi_call, [[name(B), name(C), ?NOWHERE], counter, get, 5000])
    ),
    abcast = call(A, partisan_gen_server, abcast, [[name(B), name(C)], counter, {add, 1}]),
    ?assertEqual(NB + 1, gs(A, B, name, get)),
    ?assertEqual(NC + 1, gs(A, C, name, get)).

send_request_and_stop(Config) ->
    [A, B, _] = cluster(Config),
    N = gs(A, B, name, get),
    ?assertEqual({reply, N}, call(A, ?AGENT, gs_request, [name(B), counter, get, 5000])),
    ?assertMatch({error, {noproc, _}}, call(A, ?AGENT, gs_request, [name(B), nobody, get, 5000])),
    {ok, _} = call(B, partisan_test_counter, start, [doomed]),
    ?assertEqual(ok, call(A, ?AGENT, gs_stop, [name(B), doomed, normal])),
    ?assertEqual(undefined, call(B, erlang, whereis, [doomed])),
    ?assertMatch({exit, noproc}, call(A, ?AGENT, gs_stop, [name(B), doomed, normal])).

sys_works_on_the_server(Config) ->
    [_, B, _] = cluster(Config),
    {status, _, _, Info} = call(B, sys, get_status, [counter]),
    %% format_status/2 of the callback module formats the state.
    Misc = lists:last(Info),
    ?assertMatch([_], [D || {data, [{"State", {counter, _}}]} = D <- Misc]).

rpc_and_erpc(Config) ->
    [A, B, _] = cluster(Config),
    NameB = name(B),
    %% partisan_rpc: values, {badrpc, _} as rpc:call/5 gives them.
    ?assertEqual(NameB, call(A, partisan_rpc, call, [NameB, partisan, node, []])),
    ?assertEqual(thrown, call(A, partisan_rpc, call, [NameB, erlang, throw, [thrown]])),
    ?assertMatch({badrpc, {'EXIT', {boom, [_ | _]}}},
                 call(A, partisan_rpc, call, [NameB, erlang, error, [boom]])),
    ?assertEqual({badrpc, {'EXIT', bye}}, call(A, partisan_rpc, call, [NameB, erlang, exit, [bye]])),
    ?assertEqual({badrpc, timeout},
                 call(A, partisan_rpc, call, [NameB, timer, sleep, [1000], [{timeout, 100}]])),
    ?assertEqual({badrpc, nodedown}, call(A, partisan_rpc, call, [?NOWHERE, erlang, node, []])),
    %% Partisan's options: the request goes on the channel named (the
    %% membership channel every node has); a channel that does not exist is
    %% the caller's error.
    Membership = partisan_membership,
    ?assertEqual(NameB, call(A, partisan_rpc, call,
                             [NameB, partisan, node, [], #{channel => Membership}])),
    ?assertEqual({badrpc, {unknown_channel, no_such_channel}},
                 call(A, partisan_rpc, call,
                      [NameB, partisan, node, [], [{channel, no_such_channel}]])),
    ?assertEqual(#{channel => undefined, timeout => 5},
                 partisan_rpc:prepare_opts([{timeout, 5}])),
    ?assertEqual(#{channel => c}, partisan_rpc:prepare_opts(#{channel => c})),
    true = call(A, partisan_rpc, cast, [NameB, partisan_test_counter, start, [cast_started]]),
    ok = partisan_ct_support:wait_until(
        fun() -> is_pid(call(B, erlang, whereis, [cast_started])) end, 100, 50
    ),
    %% partisan_erpc: values, and the exceptions erpc:call/5 raises.
    ?assertEqual({ok, NameB}, call(A, ?AGENT, catching, [partisan_erpc, call, [NameB, partisan, node, []]])),
    ?assertMatch({error, {exception, boom, [_ | _]}},
                 call(A, ?AGENT, catching, [partisan_erpc, call, [NameB, erlang, error, [boom]]])),
    ?assertEqual({exit, {exception, bye}},
                 call(A, ?AGENT, catching, [partisan_erpc, call, [NameB, erlang, exit, [bye]]])),
    ?assertEqual({throw, up}, call(A, ?AGENT, catching, [partisan_erpc, call, [NameB, erlang, throw, [up]]])),
    ?assertEqual({error, {erpc, timeout}},
                 call(A, ?AGENT, catching, [partisan_erpc, call, [NameB, timer, sleep, [1000], 100]])),
    ?assertEqual({error, {erpc, noconnection}},
                 call(A, ?AGENT, catching, [partisan_erpc, call, [?NOWHERE, erlang, node, []]])),
    %% Each apply runs in a fresh process of its own: a process dictionary
    %% of its own, a pid never seen before.
    Runs = [call(A, partisan_rpc, call, [NameB, erlang, put, [seen, I]]) || I <- lists:seq(1, 100)],
    ?assertEqual(lists:duplicate(100, undefined), Runs),
    Pids = [call(A, partisan_rpc, call, [NameB, erlang, self, []]) || _ <- lists:seq(1, 100)],
    ?assertEqual(100, length(lists:usort(Pids))).

connection_loss_ends_calls(Config) ->
    [A, B, _] = cluster(Config),
    %% kill_connections/1 loses the connection life the call was made in: the
    %% call ends as a Distributed Erlang call ends when its connection goes.
    Waiter = waiting_call(A, B),
    timer:sleep(300),
    ok = call(A, partisan, kill_connections, [[name(B)]]),
    NameB = name(B),
    ?assertMatch({exit, {{nodedown, NameB}, {partisan_gen_server, call, _}}}, wait_for(Waiter)),
    %% Once reconnected, calls work again.
    ok = partisan_ct_support:wait_until(
        fun() -> element(1, call(A, ?AGENT, gs_call, [name(B), counter, name, get, 1000])) =:= ok end,
        100, 100
    ).

killed_node_ends_calls(Config) ->
    [A | _] = cluster(Config),
    D = start(stdio, "gd", #{}, Config),
    ok = mesh([A, D]),
    {ok, _} = call(D, partisan_test_counter, start, [counter]),
    Waiter = waiting_call(A, D),
    timer:sleep(300),
    OsPid = call(D, os, getpid, []),
    true = lists:all(fun(Ch) -> Ch >= $0 andalso Ch =< $9 end, OsPid),
    _ = os:cmd("kill -9 " ++ OsPid),
    NameD = name(D),
    ?assertMatch({exit, {{nodedown, NameD}, {partisan_gen_server, call, _}}}, wait_for(Waiter)),
    _ = stop(D),
    ok.

nodedown(Config) ->
    [A, _, C] = cluster(Config),
    ?assertMatch(
        {exit, {{nodedown, ?NOWHERE}, {partisan_gen_server, call, _}}},
        call(A, ?AGENT, gs_call, [?NOWHERE, counter, name, get, 5000])
    ),
    %% The node goes away while the call waits.
    Self = self(),
    Waiter = spawn(fun() ->
        Self ! {self(), call(A, ?AGENT, gs_call, [name(C), counter, name, never, infinity])}
    end),
    timer:sleep(500),
    NameC = name(C),
    stop(C),
    Got = receive {Waiter, R} -> R after 20000 -> timeout end,
    ?assertMatch({exit, {{nodedown, NameC}, {partisan_gen_server, call, _}}}, Got).



%% =============================================================================
%% HELPERS
%% =============================================================================



%% A call from A to B's counter that is never answered, waited for by a
%% process of this node.
waiting_call(A, B) ->
    Self = self(),
    spawn(fun() ->
        Self ! {self(), call(A, ?AGENT, gs_call, [name(B), counter, name, never, infinity])}
    end).

wait_gone(B, Name, Tries) ->
    case call(B, erlang, whereis, [Name]) of
        undefined -> ok;
        Pid when Tries =:= 0 -> {still_there, Pid};
        _ -> timer:sleep(5), wait_gone(B, Name, Tries - 1)
    end.

%% Waits until B's servers have N calls of other nodes under way.
wait_served(B, N, Tries) ->
    case call(B, ?AGENT, stats, []) of
        #{calls_served := N} -> ok;
        Stats when Tries =:= 0 -> {calls_served, maps:get(calls_served, Stats), N};
        _ -> timer:sleep(10), wait_served(B, N, Tries - 1)
    end.

wait_for(Waiter) ->
    receive {Waiter, R} -> R after 20000 -> timeout end.

gs(A, B, How, Request) ->
    {ok, Reply} = call(A, ?AGENT, gs_call, [name(B), counter, How, Request, 5000]),
    Reply.
