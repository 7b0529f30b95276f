%% -----------------------------------------------------------------------------
%% @doc Plumtree broadcast on real nodes through our transport, over the full
%% mesh and over HyParView: a broadcast from any node reaches every live node's
%% handler, a handler that crashes on one payload does not stop the others,
%% and the replicated key-value example (examples/partisan_kv.erl) catches up
%% a node that was down through the anti-entropy exchange once it rejoins. A
%% handler that names a channel (`broadcast_channel/0') has its broadcasts
%% carried on that channel, the others' on the membership channel.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_broadcast_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([init_per_testcase/2, end_per_testcase/2]).
-export([a_broadcast_reaches_every_node_of_a_full_mesh/1]).
-export([a_broadcast_reaches_every_node_of_a_hyparview_overlay/1]).
-export([a_node_that_was_down_catches_up_by_exchange/1]).
-export([a_handler_with_a_channel_broadcasts_on_it/1]).

-import(partisan_ct_support, [rpc/4, wait_until/4]).

-define(HANDLERS, [partisan_test_bcast, partisan_kv]).

suite() ->
    [{timetrap, {minutes, 4}}].

all() ->
    [a_broadcast_reaches_every_node_of_a_full_mesh,
     a_broadcast_reaches_every_node_of_a_hyparview_overlay,
     a_node_that_was_down_catches_up_by_exchange,
     a_handler_with_a_channel_broadcasts_on_it].

init_per_suite(Config) ->
    ok = partisan_ct_support:init_dist(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(Case, Config) ->
    Prefix = case Case of
        a_broadcast_reaches_every_node_of_a_full_mesh -> "bc1";
        a_broadcast_reaches_every_node_of_a_hyparview_overlay -> "bc2";
        a_node_that_was_down_catches_up_by_exchange -> "bc3";
        a_handler_with_a_channel_broadcasts_on_it -> "bc4"
    end,
    [{node_prefix, Prefix} | Config].

end_per_testcase(_Case, _Config) ->
    partisan_ct_support:stop_nodes(persistent_term:get({?MODULE, nodes}, [])),
    _ = persistent_term:erase({?MODULE, nodes}),
    ok.


%% =============================================================================
%% Cases
%% =============================================================================

a_broadcast_reaches_every_node_of_a_full_mesh(Config) ->
    Nodes = start(4, #{}, Config),
    ok = partisan_ct_support:wait_until_converged(Nodes),
    everyone_hears_everyone(Nodes),
    %% Partisan 5's views of the tree: every node's peers in A's tree are
    %% the other members, split into eager and lazy, asked over our transport.
    [A | _] = Nodes,
    Tree = rpc(A, partisan_plumtree_broadcast, debug_get_tree, [A, Nodes, 5000]),
    ?assertEqual(Nodes, [N || {N, _} <- Tree]),
    [begin
         ?assertEqual(lists:sort(Nodes -- [N]), lists:sort(Eager ++ Lazy)),
         ?assertEqual([], [X || X <- Eager, lists:member(X, Lazy)])
     end || {N, {Eager, Lazy}} <- Tree],
    {AEager, ALazy} = rpc(A, partisan_plumtree_broadcast, get_peers, [A]),
    ?assertNotEqual([], AEager),
    ?assertEqual(AEager, rpc(A, partisan_plumtree_broadcast, get_eager_peers, [A])),
    ?assertEqual(ALazy, rpc(A, partisan_plumtree_broadcast, get_lazy_peers, [A])),
    [_, B | _] = Nodes,
    ?assertMatch({_, _, #{name := B}},
                 rpc(A, partisan_plumtree_broadcast, debug_get_peers, [B, B, [name], 5000])).

a_broadcast_reaches_every_node_of_a_hyparview_overlay(Config) ->
    Env = #{
        peer_service_manager => partisan_hyparview_peer_service_manager,
        hyparview => #{shuffle_interval => 2000, random_promotion_interval => 1000}
    },
    Nodes = start(8, Env, Config),
    ok = wait_until(
        {overlay, Nodes},
        fun() -> partisan_ct_support:hyparview_check(Nodes, 3, 6) end,
        150, 200
    ),
    everyone_hears_everyone(Nodes).

a_node_that_was_down_catches_up_by_exchange(Config) ->
    [A, B, C] = Nodes = start(3, #{}, Config),
    ok = partisan_ct_support:wait_until_converged(Nodes),
    ok = rpc(A, partisan_kv, put, [colour, blue]),
    ok = rpc(A, partisan_kv, put, [shape, round]),
    ok = until_value(C, colour, {ok, blue}),
    %% C goes down; the others go on writing.
    ok = partisan_ct_support:stop_node(C),
    ok = rpc(B, partisan_kv, put, [colour, green]),
    ok = rpc(A, partisan_kv, delete, [shape]),
    ok = rpc(B, partisan_kv, put, [size, 3]),
    %% C comes back empty and joins: only an exchange can tell it what it missed.
    C = partisan_ct_support:restart_node(C),
    ok = rpc(C, partisan_kv, start, []),
    ok = rpc(C, partisan_test_bcast, start, []),
    ok = partisan_ct_support:join(C, A),
    %% Eventually consistent: an exchange with a node that has not yet had the
    %% delete (a lazy link gets it after a tick and a graft) brings the old
    %% value, and a later exchange the tombstone.
    ok = until_value(C, colour, {ok, green}),
    ok = until_value(C, size, {ok, 3}),
    ok = until_value(C, shape, not_found),
    ?assertEqual([colour, size], rpc(C, partisan_kv, keys, [])),
    ?assertMatch({ok, _}, rpc(C, partisan_plumtree_broadcast, exchanges, [])).


a_handler_with_a_channel_broadcasts_on_it(Config) ->
    Handler = partisan_test_bcast_channel,
    Env = #{
        broadcast_mods => [Handler, partisan_test_bcast],
        channels => #{gossip => #{parallelism => 1}}
    },
    Nodes = start(3, Env, Config),
    [ok = rpc(N, Handler, start, []) || N <- Nodes],
    ok = partisan_ct_support:wait_until_converged(Nodes),
    OwnChannel = fun() ->
        lists:sum([maps:get(broadcasts_on_own_channel, engine_stats(N)) || N <- Nodes])
    end,
    %% The plain handler's broadcasts stay on the membership channel.
    everyone_hears_everyone(Nodes),
    ?assertEqual(0, OwnChannel()),
    %% The other's all arrive, on `gossip'.
    [ok = rpc(N, partisan, broadcast, [{{N, I}, <<I:32>>}, Handler])
     || N <- Nodes, I <- lists:seq(1, 20)],
    ok = wait_until(
        heard_on_gossip,
        fun() ->
            lists:all(
                fun(Me) ->
                    Want = lists:sort([{{N, I}, <<I:32>>} || N <- Nodes, N =/= Me,
                                                            I <- lists:seq(1, 20)]),
                    rpc(Me, Handler, received, []) =:= Want
                end,
                Nodes
            )
        end,
        100, 200
    ),
    %% Each of the 60 payloads reached two nodes: at least 120 frames.
    ?assert(OwnChannel() >= 120).


%% =============================================================================
%% Helpers
%% =============================================================================

engine_stats(Node) ->
    erpc:call(Node, fun() -> partisan_nif:stats(partisan_nif:engine()) end).

start(N, Env0, Config) ->
    Env = maps:merge(#{
        broadcast_mods => ?HANDLERS,
        lazy_tick_period => 200,
        exchange_tick_period => 500,
        connection_interval => 200,
        connection_jitter => 100
    }, Env0),
    Nodes = partisan_ct_support:start_nodes(N, Config, Env),
    persistent_term:put({?MODULE, nodes}, Nodes),
    [begin
         ok = rpc(Node, partisan_test_bcast, start, []),
         ok = rpc(Node, partisan_kv, start, [])
     end || Node <- Nodes],
    ok = partisan_ct_support:join_all(Nodes),
    Nodes.

%% Every node broadcasts three payloads, one of which crashes every handler
%% that merges it; every node must hold the other two of everybody's.
everyone_hears_everyone(Nodes) ->
    [begin
         ok = rpc(N, partisan, broadcast, [{{N, 1}, one}, partisan_test_bcast]),
         ok = rpc(N, partisan, broadcast, [{{N, 2}, crash}, partisan_test_bcast]),
         ok = rpc(N, partisan, broadcast, [{{N, 3}, three}, partisan_test_bcast])
     end || N <- Nodes],
    Expected = fun(Me) ->
        lists:sort(lists:append([[{{N, 1}, one}, {{N, 3}, three}] || N <- Nodes, N =/= Me]))
    end,
    wait_until(
        everyone_hears_everyone,
        fun() ->
            Missing = [
                {N, Expected(N) -- Got}
                || N <- Nodes, Got <- [rpc(N, partisan_test_bcast, received, [])],
                   Expected(N) -- Got =/= []
            ],
            Missing =:= [] orelse {false, Missing}
        end,
        100, 200
    ),
    %% broadcast_members/0: this node and the nodes that are up.
    [N1 | _] = Nodes,
    ?assertEqual(lists:usort([N1 | rpc(N1, partisan, nodes, [])]),
                 rpc(N1, partisan_peer_service, broadcast_members, [])),
    %% A module that is not a handler is refused.
    ?assertError({exception, badarg, _},
                 erpc:call(N1, partisan, broadcast, [{x, y}, lists])).

until_value(Node, Key, Value) ->
    wait_until(
        {kv, Node, Key, Value},
        fun() -> rpc(Node, partisan_kv, get, [Key]) =:= Value end,
        100, 200
    ).
