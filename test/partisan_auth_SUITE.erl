%% -----------------------------------------------------------------------------
%% @doc The authenticated handshake on nodes without Distributed Erlang: nodes
%% that find the same secret (here the Erlang cookie file, as `erl' finds it)
%% connect; a node with another `auth_secret' never joins, and the node it
%% tried counts the failure; two nodes with `authentication' off connect.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_auth_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([same_secret_connects_other_secret_never_joins/1]).
-export([authentication_off_on_both_sides_connects/1]).

-import(partisan_test_nodes, [start/4, cluster/1, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [same_secret_connects_other_secret_never_joins, authentication_off_on_both_sides_connects].

init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config = [{group, auth} | Config0],
    Nodes = [
        start(stdio, "aa", #{}, Config),
        start(stdio, "ab", #{}, Config),
        start(stdio, "ac", #{auth_secret => <<"not the cookie">>}, Config),
        start(stdio, "ad", #{authentication => false}, Config),
        start(stdio, "ae", #{authentication => false}, Config)
    ],
    [{nodes, Nodes} | Config].

end_per_suite(Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, cluster(Config)),
    _ = persistent_term:erase({partisan_test_nodes, auth}),
    ok.

same_secret_connects_other_secret_never_joins(Config) ->
    [A, B, C | _] = cluster(Config),
    SpecA = call(A, partisan, node_spec, []),
    ok = call(B, ?AGENT, join, [SpecA]),
    {ok, _} = call(A, ?AGENT, wait_up, [name(B), 20000]),
    ok = call(C, ?AGENT, join, [SpecA]),
    ?assertEqual(timeout, call(C, ?AGENT, wait_up, [name(A), 3000])),
    ?assertEqual({ok, lists:sort([name(A), name(B)])}, call(A, partisan_peer_service, members, [])),
    ?assertEqual({ok, [name(C)]}, call(C, partisan_peer_service, members, [])),
    #{auth_failures := Failed} = call(C, ?AGENT, stats, []),
    ?assert(Failed > 0).

authentication_off_on_both_sides_connects(Config) ->
    [_, _, _, D, E] = cluster(Config),
    ok = call(E, ?AGENT, join, [call(D, partisan, node_spec, [])]),
    {ok, _} = call(D, ?AGENT, wait_up, [name(E), 20000]),
    {ok, _} = call(E, ?AGENT, wait_up, [name(D), 20000]).
