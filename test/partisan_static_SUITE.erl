%% -----------------------------------------------------------------------------
%% @doc The static peer service manager on nodes without Distributed Erlang:
%% it starts (Partisan 5.0.3 issue #267), the members are the nodes joined
%% and the nodes that joined, no gossip introduces anybody else, messages
%% flow between joined nodes, and `leave/1' drops a member.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_static_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([connections_are_exactly_the_joins/1]).

-import(partisan_test_nodes, [start/4, cluster/1, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).
-define(ENV, #{peer_service_manager => partisan_static_peer_service_manager}).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [connections_are_exactly_the_joins].

init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config = [{group, static} | Config0],
    Nodes = [start(stdio, Tag, ?ENV, Config) || Tag <- ["ta", "tb", "tc"]],
    [{nodes, Nodes} | Config].

end_per_suite(Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, cluster(Config)),
    _ = persistent_term:erase({partisan_test_nodes, static}),
    ok.

connections_are_exactly_the_joins(Config) ->
    [A, B, C] = cluster(Config),
    ?assertEqual(partisan_static_peer_service_manager,
                 call(A, partisan_peer_service, manager, [])),
    SpecB = call(B, partisan, node_spec, []),
    ok = call(A, ?AGENT, join, [SpecB]),
    ok = call(C, ?AGENT, join, [SpecB]),
    {ok, _} = call(A, ?AGENT, wait_up, [name(B), 20000]),
    {ok, _} = call(C, ?AGENT, wait_up, [name(B), 20000]),
    {ok, _} = call(B, ?AGENT, wait_up, [name(A), 20000]),
    {ok, _} = call(B, ?AGENT, wait_up, [name(C), 20000]),
    %% No gossip: A and C never hear of each other.
    timer:sleep(1500),
    ?assertEqual({ok, lists:sort([name(A), name(B)])}, call(A, partisan_peer_service, members, [])),
    ?assertEqual({ok, lists:sort([name(A), name(B), name(C)])},
                 call(B, partisan_peer_service, members, [])),
    ?assertEqual({ok, lists:sort([name(B), name(C)])}, call(C, partisan_peer_service, members, [])),
    ?assertEqual([name(B)], call(A, partisan, nodes, [])),
    ?assertEqual(false, call(A, partisan, is_connected, [name(C)])),
    %% Messages between joined nodes.
    ?assertMatch({echoed, hello}, call(A, ?AGENT, ask_echo, [name(B), echo, hello])),
    ?assertMatch({echoed, hi}, call(B, ?AGENT, ask_echo, [name(C), echo, hi])),
    %% leave/1 drops a member here.
    ok = call(B, partisan_peer_service, leave, [name(C)]),
    ok = partisan_ct_support:wait_until(
        fun() -> call(B, partisan_peer_service, members, []) =:= {ok, lists:sort([name(A), name(B)])} end,
        50, 100
    ).
