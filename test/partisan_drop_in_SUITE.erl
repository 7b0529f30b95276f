%% -----------------------------------------------------------------------------
%% @doc Drop-in message semantics: every message Distributed Erlang delivers
%% arrives over partisan, with the same meaning.
%%
%% - Atoms the receiver has never seen are created (names made at run time as
%%   reply addresses, 10,000 fresh atoms), within the `peer_atom_budget';
%%   past it, or in safe mode, messages are refused, counted per peer and
%%   logged once per peer and interval.
%% - Pids and references inside messages name their origin, never alias a
%%   process of the receiver, come home `=:=' to the originals, stay equal
%%   across messages, reach their owner when relayed through a third node,
%%   and a pid of an earlier life of a node reaches no process of its new one.
%% - A node listed by `partisan:nodes()' takes a message at once, in 20
%%   restarts and rejoins.
%%
%% The `no_disterl' group runs on nodes without Distributed Erlang (`peer'
%% over standard I/O, node `nonode@nohost'), where every pid must be
%% rewritten; the `disterl' group on nodes that also run Distributed Erlang
%% (used only to orchestrate them), where partisan names are the VM's.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_drop_in_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([init_per_group/2, end_per_group/2]).
-export([init_per_testcase/2, end_per_testcase/2]).

-export([reply_to_name_made_at_run_time/1]).
-export([ten_thousand_new_atoms/1]).
-export([pids_and_refs_round_trip/1]).
-export([receiver_pids_come_home/1]).
-export([large_message_pids_round_trip/1]).
-export([pid_is_a_stable_map_key/1]).
-export([relayed_pid_reaches_its_owner/1]).
-export([foreign_pid_never_reaches_a_local_process/1]).
-export([pid_of_an_earlier_life_reaches_nothing/1]).
-export([close_reasons_are_counted/1]).
-export([listed_means_sendable_across_restarts/1]).
-export([atom_budget_refuses_counts_and_logs/1]).
-export([safe_mode_refuses_new_atoms/1]).

-import(partisan_test_nodes, [
    start/4, restart/2, mesh/1, cluster/1, name/1, call/4
]).

-define(AGENT, partisan_drop_in_agent).
-define(RESTARTS, 20).

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [{group, no_disterl}, {group, disterl}, {group, budget}, {group, safe}].

groups() ->
    Messages = [
        reply_to_name_made_at_run_time,
        ten_thousand_new_atoms,
        pids_and_refs_round_trip,
        receiver_pids_come_home,
        large_message_pids_round_trip,
        pid_is_a_stable_map_key,
        relayed_pid_reaches_its_owner,
        foreign_pid_never_reaches_a_local_process
    ],
    [
        {no_disterl, [], Messages ++ [
            close_reasons_are_counted,
            pid_of_an_earlier_life_reaches_nothing,
            listed_means_sendable_across_restarts
        ]},
        {disterl, [], Messages ++ [listed_means_sendable_across_restarts]},
        {budget, [], [atom_budget_refuses_counts_and_logs]},
        {safe, [], [safe_mode_refuses_new_atoms]}
    ].

init_per_suite(Config) ->
    ok = partisan_ct_support:init_dist(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_group(Group, Config) ->
    Kind = case Group of
        disterl -> dist;
        _ -> stdio
    end,
    Env = group_env(Group),
    Nodes = [start(Kind, Tag, Env, Config) || Tag <- ["a", "b", "c"]],
    ok = mesh(Nodes),
    [{nodes, Nodes}, {group, Group} | Config].

end_per_group(Group, Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, cluster(Config)),
    _ = persistent_term:erase({partisan_test_nodes, Group}),
    ok.

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    ok.

group_env(budget) ->
    #{peer_atom_budget => 300, refusal_log_interval => 1000};
group_env(safe) ->
    #{peer_atom_budget => 0};
group_env(_) ->
    #{}.



%% =============================================================================
%% ATOMS
%% =============================================================================



reply_to_name_made_at_run_time(Config) ->
    [A, B, _] = cluster(Config),
    %% The sender registers under a name that exists only on its node and
    %% gives {Name, Node} as the reply address; the echo answers there.
    ?assertEqual(
        {echoed, hello},
        call(A, ?AGENT, ask_as, ["worker_", name(B), echo, hello])
    ).

ten_thousand_new_atoms(Config) ->
    [A, B, _] = cluster(Config),
    ?assert(call(A, ?AGENT, send_new_atoms, [name(B), echo, 10000])),
    ?assert(call(B, ?AGENT, send_new_atoms, [name(A), echo, 10000])).

atom_budget_refuses_counts_and_logs(Config) ->
    [A, B, _] = cluster(Config),
    ok = call(B, ?AGENT, capture_logs, []),
    %% 300 atoms of budget: three messages of 100 new atoms pass, seven not.
    First = call(A, ?AGENT, send_atoms, [name(B), echo, {10, 100}]),
    ?assertEqual(3, length(First)),
    %% Once the budget is spent, refused messages leave the atom table as it
    %% is (measured after the first refusal has loaded the logging code).
    Before = call(B, erlang, system_info, [atom_count]),
    %% Past the log interval, a refusal is logged again.
    timer:sleep(1200),
    ?assertEqual([], call(A, ?AGENT, send_atoms, [name(B), echo, {5, 100}])),
    After = call(B, erlang, system_info, [atom_count]),
    ct:log("atoms: ~p before, ~p after", [Before, After]),
    ?assert(After - Before =< 20),
    Mine = call(B, ?AGENT, peer_stats, []),
    ?assertMatch(
        #{atoms_created := 300, messages_refused := 12, atoms_refused := 1200},
        maps:get(name(A), Mine)
    ),
    Stats = call(B, ?AGENT, stats, []),
    ?assertEqual(12, maps:get(dropped_atoms, Stats)),
    ?assertEqual(0, maps:get(atom_budget_left, Stats)),
    Logs = [L || #{node := N} = L <- call(B, ?AGENT, captured_logs, []),
                 N =:= name(A)],
    ct:log("refusal logs: ~p", [Logs]),
    ?assertEqual(2, length(Logs)),
    %% The first refusal, then the six after it within the interval with the
    %% first of the next.
    ?assertEqual([1, 7], lists:sort([M || #{messages := M} <- Logs])),
    %% The node stays healthy: known atoms still flow.
    ?assertEqual({echoed, ok}, call(A, ?AGENT, ask_echo, [name(B), echo, ok])).

safe_mode_refuses_new_atoms(Config) ->
    [A, B, _] = cluster(Config),
    ok = call(B, ?AGENT, capture_logs, []),
    ?assertEqual([], call(A, ?AGENT, send_atoms, [name(B), echo, {1, 3}])),
    ?assertEqual(1, maps:get(dropped_atoms, call(B, ?AGENT, stats, []))),
    [Log] = call(B, ?AGENT, captured_logs, []),
    ?assertMatch(#{messages := 1, atoms := 3, budget := 0}, Log),
    ?assertEqual({echoed, ok}, call(A, ?AGENT, ask_echo, [name(B), echo, ok])).



%% =============================================================================
%% PIDS AND REFERENCES
%% =============================================================================



pids_and_refs_round_trip(Config) ->
    [A, B, _] = cluster(Config),
    {Same, Seen} = call(A, ?AGENT, round_trip, [name(B), echo]),
    ?assert(Same),
    %% On B every pid and reference names A, is not B's own, and is a pid or
    %% reference for partisan.
    ?assertNotEqual([], Seen),
    NameA = name(A),
    [?assertMatch({_, NameA, false, true}, S) || S <- Seen].

receiver_pids_come_home(Config) ->
    [A, B, _] = cluster(Config),
    %% The same from the other side: B's pids go to A and come back B's own.
    {Same, Seen} = call(B, ?AGENT, round_trip, [name(A), echo]),
    ?assert(Same),
    NameB = name(B),
    [?assertMatch({_, NameB, false, true}, S) || S <- Seen].

large_message_pids_round_trip(Config) ->
    [A, B, _] = cluster(Config),
    {Same, Seen} = call(A, ?AGENT, round_trip_large, [name(B), echo]),
    ?assert(Same),
    NameA = name(A),
    ?assertEqual(3, length(Seen)),
    [?assertMatch({_, NameA, false, true}, S) || S <- Seen].

pid_is_a_stable_map_key(Config) ->
    [A, B, _] = cluster(Config),
    %% One pid in five messages (and once inside a pair) is one key on B.
    ?assertEqual({count, 2}, call(A, ?AGENT, remember_self, [name(B), echo, 5])).

relayed_pid_reaches_its_owner(Config) ->
    [A, B, C] = cluster(Config),
    ?assertEqual({echoed, relayed}, call(A, ?AGENT, relay_via, [name(B), name(C)])).

foreign_pid_never_reaches_a_local_process(Config) ->
    [A, B, _] = cluster(Config),
    ok = call(A, ?AGENT, start_farm, [2000]),
    ok = call(B, ?AGENT, start_farm, [2000]),
    %% B sends `hit' to each of A's pids as they arrived in the message: all
    %% reach A's processes, none of B's, which have the same numbers.
    ?assertEqual(done, call(A, ?AGENT, hit_farm_via, [name(B), echo])),
    ok = partisan_ct_support:wait_until(
        fun() -> call(A, ?AGENT, farm_hits, []) =:= 2000 end, 200, 50
    ),
    ?assertEqual(0, call(B, ?AGENT, farm_hits, [])).

close_reasons_are_counted(Config) ->
    [A, B, _] = cluster(Config),
    Killed0 = maps:get(closed_killed, call(A, ?AGENT, stats, [])),
    Closed0 = maps:get(closed_connection_closed, call(B, ?AGENT, stats, [])),
    ok = call(A, partisan, kill_connections, [name(B)]),
    ok = partisan_ct_support:wait_until(
        fun() ->
            maps:get(closed_killed, call(A, ?AGENT, stats, [])) > Killed0
                andalso maps:get(closed_connection_closed, call(B, ?AGENT, stats, [])) > Closed0
        end,
        200, 50
    ),
    %% And they come back.
    {ok, _} = call(A, ?AGENT, wait_up, [name(B), 20000]),
    ?assertEqual({echoed, back}, call(A, ?AGENT, ask_echo, [name(B), echo, back])).

pid_of_an_earlier_life_reaches_nothing(Config) ->
    [A, B0, _] = cluster(Config),
    ok = call(A, ?AGENT, start_holder, []),
    ok = call(B0, ?AGENT, start_farm, [500]),
    ok = call(B0, ?AGENT, give_farm, [name(A)]),
    %% Behind the pids on the same connection: when this answers, A has them.
    {echoed, ok} = call(B0, ?AGENT, ask_echo, [name(A), echo, ok]),
    B = restart(B0, Config),
    %% The new life has processes with the same numbers as the old farm.
    ok = call(B, ?AGENT, start_farm, [2000]),
    Results = call(A, ?AGENT, fire_held, []),
    ?assertEqual(500, length([ok || ok <- Results])),
    %% Behind the hits on the same connection: when this answers, they were
    %% all handled.
    ?assertEqual({echoed, ok}, call(A, ?AGENT, ask_echo, [name(B), echo, ok])),
    ?assertEqual(0, call(B, ?AGENT, farm_hits, [])),
    ?assertEqual(500, maps:get(dropped_stale_pid, call(B, ?AGENT, stats, []))).



%% =============================================================================
%% CONNECTED MEANS SENDABLE
%% =============================================================================



listed_means_sendable_across_restarts(Config) ->
    [A | _] = cluster(Config),
    lists:foldl(
        fun(I, B0) ->
            B = restart(B0, Config),
            %% Right after each lists the other, a message to it is taken
            %% (no not_yet_connected) and delivered.
            {ok, _} = call(A, ?AGENT, wait_up, [name(B), 20000]),
            ?assertEqual({echoed, I}, call(A, ?AGENT, ask_echo, [name(B), echo, I])),
            {ok, _} = call(B, ?AGENT, wait_up, [name(A), 20000]),
            ?assertEqual({echoed, I}, call(B, ?AGENT, ask_echo, [name(A), echo, I])),
            B
        end,
        lists:nth(2, cluster(Config)),
        lists:seq(1, ?RESTARTS)
    ),
    ok.
