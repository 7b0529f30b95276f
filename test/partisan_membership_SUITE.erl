%% -----------------------------------------------------------------------------
%% @doc Full-mesh membership across real BEAM nodes: join, self-join, leave
%% (self and remote removal) and failures (graceful stop and SIGKILL) with
%% on_down callbacks and a rejoin on the same name and port.
%%
%% Every node runs with `periodic_interval' = 200 ms so that "stays gone"
%% covers many gossip rounds. Distributed Erlang only drives the nodes; the
%% peers are hidden and never connected to one another by disterl.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_membership_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).

-export([join_three_nodes/1]).
-export([self_join_refused/1]).
-export([leave_self/1]).
-export([leave_other/1]).
-export([stopped_node_on_down_and_rejoin/1]).
-export([killed_node_on_down_and_rejoin/1]).

-define(S, partisan_ct_support).
-define(PERIODIC_INTERVAL, 200).
%% how long a removed node must stay removed: many gossip rounds
-define(STAYS_GONE_MS, 10 * ?PERIODIC_INTERVAL).


%% =============================================================================
%% CT CALLBACKS
%% =============================================================================


suite() ->
    [{timetrap, {seconds, 90}}].


all() ->
    [
        join_three_nodes,
        self_join_refused,
        leave_self,
        leave_other,
        stopped_node_on_down_and_rejoin,
        killed_node_on_down_and_rejoin
    ].


init_per_suite(Config) ->
    ok = ?S:init_dist(),
    [
        {node_prefix, "memb"},
        {partisan_env, #{periodic_interval => ?PERIODIC_INTERVAL}}
        | Config
    ].


end_per_suite(_Config) ->
    ok.


init_per_testcase(TC, Config)
when TC == stopped_node_on_down_and_rejoin;
     TC == killed_node_on_down_and_rejoin ->
    %% The node that dies comes back on the same name and the same port, so
    %% its port is fixed from the start.
    Port = ?S:free_port(),
    [A, B] = ?S:start_nodes(2, Config),
    C = ?S:start_node(?S:node_name("memb_c"), Config, #{port => Port}),
    [{nodes, [A, B, C]}, {fixed_port, Port} | Config];

init_per_testcase(_TC, Config) ->
    Nodes = ?S:start_nodes(3, Config),
    [{nodes, Nodes} | Config].


end_per_testcase(_TC, Config) ->
    ?S:stop_nodes(?config(nodes, Config)).



%% =============================================================================
%% TEST CASES
%% =============================================================================


%% Every node's partisan:nodes() converges to the other two and
%% partisan_peer_service:members() returns the same sorted list (including
%% self) everywhere; messages flow between every pair.
join_three_nodes(Config) ->
    Nodes = ?config(nodes, Config),
    Sorted = lists:sort(Nodes),

    %% before joining, each node only knows itself
    [
        begin
            ?assertEqual([], ?S:rpc(N, partisan, nodes, [])),
            ?assertEqual({ok, [N]}, ?S:rpc(N, partisan_peer_service, members, []))
        end
        || N <- Nodes
    ],

    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),

    %% explicit assertions on the converged state
    lists:foreach(
        fun(N) ->
            Others = lists:sort(Nodes -- [N]),
            ?assertEqual(Others, lists:sort(?S:rpc(N, partisan, nodes, []))),
            {ok, Members} = ?S:rpc(N, partisan_peer_service, members, []),
            ?assertEqual(Sorted, Members),
            ?assert(lists:member(N, Members)),
            [
                ?assert(?S:rpc(N, partisan_peer_service, member, [O]))
                || O <- Others
            ]
        end,
        Nodes
    ),

    %% every ordered pair can talk through partisan
    ok = all_pairs_exchange(Nodes, join_three_nodes),
    ok = ?S:assert_no_disterl_mesh(Nodes).


%% Joining oneself is refused with {error, self_join}, alone and in a cluster,
%% and does not change membership.
self_join_refused(Config) ->
    [A, B | _] = ?config(nodes, Config),
    SpecA = ?S:node_spec(A),

    ?assertEqual(
        {error, self_join},
        ?S:rpc(A, partisan_peer_service, join, [SpecA])
    ),
    ?assertEqual({ok, [A]}, ?S:rpc(A, partisan_peer_service, members, [])),
    ?assertEqual([], ?S:rpc(A, partisan, nodes, [])),

    ok = ?S:join(B, A),
    ok = ?S:wait_until_converged([A, B]),

    ?assertEqual(
        {error, self_join},
        ?S:rpc(A, partisan_peer_service, join, [SpecA])
    ),
    SpecB = ?S:node_spec(B),
    ?assertEqual(
        {error, self_join},
        ?S:rpc(B, partisan_peer_service, join, [SpecB])
    ),
    ?assertEqual(
        {ok, lists:sort([A, B])},
        ?S:rpc(A, partisan_peer_service, members, [])
    ),
    ok = ?S:wait_until_converged([A, B]).


%% A node calls partisan_peer_service:leave(): it disappears from every view,
%% its own view collapses to itself, and it stays gone for many gossip rounds.
leave_self(Config) ->
    [A, B, C] = Nodes = ?config(nodes, Config),
    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),

    ?assertEqual(ok, ?S:rpc(C, partisan_peer_service, leave, [])),

    ok = assert_removed(C, [A, B]),
    %% the rest of the cluster still works
    ok = all_pairs_exchange([A, B], leave_self),
    ok.


%% Another node removes C with partisan_peer_service:leave(NodeSpec): C
%% disappears from every view (its own included) and stays gone.
leave_other(Config) ->
    [A, B, C] = Nodes = ?config(nodes, Config),
    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),

    SpecC = ?S:node_spec(C),
    ?assertEqual(ok, ?S:rpc(A, partisan_peer_service, leave, [SpecC])),

    ok = assert_removed(C, [A, B]),
    ok = all_pairs_exchange([A, B], leave_other),
    ok.


%% peer:stop/1 on C: A and B drop it from partisan:nodes() and run the on_down
%% callbacks; C restarts with the same name and port, rejoins, and messages
%% flow again.
stopped_node_on_down_and_rejoin(Config) ->
    node_failure_and_rejoin(fun ?S:stop_node/1, Config).


%% Same as above, but C's BEAM is killed with SIGKILL.
killed_node_on_down_and_rejoin(Config) ->
    node_failure_and_rejoin(fun ?S:kill_node/1, Config).



%% =============================================================================
%% PRIVATE
%% =============================================================================


node_failure_and_rejoin(Fail, Config) ->
    [A, B, C] = Nodes = ?config(nodes, Config),
    Port = ?config(fixed_port, Config),
    ?assertMatch(#{listen_addrs := [#{port := Port} | _]}, ?S:node_spec(C)),

    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),
    ok = all_pairs_exchange(Nodes, before_failure),

    %% on_down callbacks, registered on the survivors; the callback sends to
    %% a registered collector on the same node.
    Survivors = [A, B],
    [
        begin
            _ = ?S:rpc(N, ?S, start_collector, [ct_events]),
            ?assertEqual(ok, ?S:rpc(N, ?S, register_on_down, [C, ct_events]))
        end
        || N <- Survivors
    ],

    ok = Fail(C),

    %% survivors drop C from partisan:nodes()
    ?S:wait_until(
        {survivors_drop, C},
        fun() ->
            Bad = [
                {N, Seen}
                || N <- Survivors,
                   Seen <- [lists:sort(?S:rpc(N, partisan, nodes, []))],
                   Seen =/= Survivors -- [N]
            ],
            Bad == [] orelse {false, Bad}
        end,
        150, 100
    ),

    %% ...and called the on_down fun
    ?S:wait_until(
        {on_down_called, C},
        fun() ->
            Missing = [
                {N, Events}
                || N <- Survivors,
                   Events <- [?S:rpc(N, ?S, collected, [ct_events])],
                   not lists:member({on_down, C}, Events)
            ],
            Missing == [] orelse {false, Missing}
        end,
        150, 100
    ),

    %% sending to the dead node fails cleanly (no exception, ok or an error
    %% tuple) and does not disturb the others
    SendToDead = ?S:rpc(A, ?S, forward, [C, inbox, {to_dead, A}, #{}]),
    case SendToDead of
        ok -> ok;
        {error, _} -> ok;
        _ -> ct:fail({unexpected_send_result, SendToDead})
    end,
    ok = pair_exchange(A, B, while_down),

    %% restart with the same name and the same port, rejoin
    C = ?S:restart_node(C),
    ?assertMatch(#{listen_addrs := [#{port := Port} | _]}, ?S:node_spec(C)),
    ok = ?S:join(C, A),
    ok = ?S:wait_until_converged(Nodes),

    %% messages flow again, in every direction
    ok = all_pairs_exchange(Nodes, after_rejoin),
    ok = ?S:assert_no_disterl_mesh(Nodes),
    ok.


%% `Removed' is gone from the views of `Remaining' (members and nodes), its
%% own view is just itself, and this holds for ?STAYS_GONE_MS.
assert_removed(Removed, Remaining) ->
    Expected = lists:sort(Remaining),
    Check = fun() ->
        Views = ?S:cluster_view([Removed | Remaining]),
        Bad = [
            {N, V}
            || {N, V} <- Views, not removed_view_ok(N, V, Removed, Expected)
        ],
        Bad == [] orelse {false, Bad}
    end,
    ?S:wait_until({removed, Removed}, Check, 150, 100),
    ?S:always_true({stays_removed, Removed}, Check, ?STAYS_GONE_MS, 100).


removed_view_ok(Removed, #{nodes := Nodes, members := Members}, Removed, _) ->
    Nodes == [] andalso Members == {ok, [Removed]};

removed_view_ok(N, #{nodes := Nodes, members := Members}, _Removed, Expected) ->
    Nodes == Expected -- [N] andalso Members == {ok, Expected};

removed_view_ok(_, _, _, _) ->
    false.


%% Every ordered pair of `Nodes' exchanges one message through partisan.
all_pairs_exchange(Nodes, Tag) ->
    [_ = ?S:rpc(N, ?S, start_collector, [inbox]) || N <- Nodes],
    Pairs = [{From, To} || From <- Nodes, To <- Nodes, From =/= To],
    lists:foreach(
        fun({From, To}) ->
            Msg = {hello, Tag, From, To},
            ?assertEqual(
                ok,
                ?S:rpc(From, ?S, forward, [To, inbox, Msg, #{}]),
                {From, To}
            )
        end,
        Pairs
    ),
    lists:foreach(
        fun(To) ->
            Expected = lists:sort(
                [{hello, Tag, From, To} || From <- Nodes, From =/= To]
            ),
            Got = ?S:wait_for_messages(To, inbox, length(Expected)),
            ?assertEqual(Expected, lists:sort(Got), To)
        end,
        Nodes
    ).


%% One message each way between two nodes.
pair_exchange(A, B, Tag) ->
    all_pairs_exchange([A, B], Tag).
