%% -----------------------------------------------------------------------------
%% @doc The client-server manager on real nodes through our transport: two
%% servers and three clients, every node joining both servers; clients see
%% only the servers, servers see everybody, a client's join to a client is
%% refused and leaves no trace, and messages flow between client and server.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_client_server_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([clients_see_only_servers/1]).

-import(partisan_ct_support, [rpc/4, wait_until/4]).

-define(M, partisan_client_server_peer_service_manager).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [clients_see_only_servers].

init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config = [{node_prefix, "cs"} | Config0],
    Env = #{peer_service_manager => ?M, connection_interval => 200},
    [S1, S2] = Servers = partisan_ct_support:start_nodes(2, [{node_prefix, "cs_srv"} | Config],
                                                          Env#{tag => server}),
    Clients = partisan_ct_support:start_nodes(3, [{node_prefix, "cs_cli"} | Config],
                                              Env#{tag => client}),
    [{servers, [S1, S2]}, {clients, Clients}, {all, Servers ++ Clients} | Config].

end_per_suite(Config) ->
    partisan_ct_support:stop_nodes(?config(all, Config)),
    ok.

clients_see_only_servers(Config) ->
    [S1, S2] = Servers = ?config(servers, Config),
    [C1, C2 | _] = Clients = ?config(clients, Config),
    ?assertEqual(?M, rpc(C1, partisan_peer_service, manager, [])),
    ok = partisan_ct_support:join(S2, S1),
    [ok = partisan_ct_support:join(C, S) || C <- Clients, S <- Servers],
    %% A client joining a client is refused by both, and not retried.
    ok = partisan_ct_support:join(C2, C1),
    Up = fun(N) -> lists:sort(rpc(N, partisan, nodes, [])) end,
    ok = wait_until(
        star,
        fun() ->
            Want = [{S, lists:sort((Servers ++ Clients) -- [S])} || S <- Servers]
                ++ [{C, lists:sort(Servers)} || C <- Clients],
            Got = [{N, Up(N)} || {N, _} <- Want],
            Got =:= Want orelse {false, Got}
        end,
        100, 200
    ),
    %% Members likewise: a client's are the servers and itself.
    ?assertEqual({ok, lists:sort([C1 | Servers])}, rpc(C1, partisan_peer_service, members, [])),
    ?assertEqual({ok, lists:sort(Servers ++ Clients)}, rpc(S1, partisan_peer_service, members, [])),
    ?assertEqual(false, rpc(C1, partisan, is_connected, [C2])),
    %% Messages between a client and a server, both ways.
    _ = rpc(S1, partisan_ct_support, start_collector, [cs_inbox]),
    _ = rpc(C1, partisan_ct_support, start_collector, [cs_inbox]),
    ok = rpc(C1, partisan, forward_message, [S1, cs_inbox, {from, C1}, #{}]),
    ok = rpc(S1, partisan, forward_message, [C1, cs_inbox, {from, S1}, #{}]),
    ?assertEqual([{from, C1}], partisan_ct_support:wait_for_messages(S1, cs_inbox, 1)),
    ?assertEqual([{from, S1}], partisan_ct_support:wait_for_messages(C1, cs_inbox, 1)),
    %% And nothing between clients.
    ?assertEqual({error, not_yet_connected},
                 rpc(C1, partisan, forward_message, [C2, cs_inbox, nope, #{}])).
