%% -----------------------------------------------------------------------------
%% @doc The rest of the peer service API across real nodes: sync_join/1,
%% members_for_orchestration/0, update_members/1, on_up callbacks,
%% kill_connections/1 (and reconnection), get_local_state/0, and the
%% cast_message and send/2 forms of sending.
%%
%% As in the other suites, Distributed Erlang only drives the nodes.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_peer_service_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).

-export([sync_join_returns_fully_connected/1]).
-export([members_for_orchestration_lists_specs/1]).
-export([update_members_removes_and_adds/1]).
-export([on_up_fires_when_a_node_connects/1]).
-export([kill_connections_reconnects/1]).
-export([cast_message_and_send/1]).
-export([disconnect_nodes/1]).
-export([sup_callbacks_hear_membership_changes/1]).
-export([injected_partitions_cut_sends/1]).
-export([start_listener/0, last_members/1]).

-define(S, partisan_ct_support).
-define(PERIODIC_INTERVAL, 200).


suite() ->
    [{timetrap, {seconds, 90}}].


all() ->
    [
        sync_join_returns_fully_connected,
        members_for_orchestration_lists_specs,
        update_members_removes_and_adds,
        on_up_fires_when_a_node_connects,
        kill_connections_reconnects,
        cast_message_and_send,
        sup_callbacks_hear_membership_changes,
        injected_partitions_cut_sends
    ].


init_per_suite(Config) ->
    ok = ?S:init_dist(),
    [
        {node_prefix, "psvc"},
        {partisan_env, #{
            periodic_interval => ?PERIODIC_INTERVAL,
            channels => #{data => #{parallelism => 2}}
        }}
        | Config
    ].


end_per_suite(_Config) ->
    ok.


init_per_testcase(_TC, Config) ->
    Nodes = ?S:start_nodes(3, Config),
    [?S:rpc(N, ?S, start_collector, [inbox]) || N <- Nodes],
    [{nodes, Nodes} | Config].


end_per_testcase(_TC, Config) ->
    ?S:stop_nodes(?config(nodes, Config)).



%% =============================================================================
%% TEST CASES
%% =============================================================================


%% sync_join/1 returns once every connection of the pool is up, so a message
%% on any channel goes through at once.
sync_join_returns_fully_connected(Config) ->
    [A, B | _] = ?config(nodes, Config),
    SpecA = ?S:node_spec(A),
    ?assertEqual(ok, ?S:rpc(B, partisan_peer_service, sync_join, [SpecA])),
    ?assert(?S:rpc(B, partisan, is_fully_connected, [A])),
    ?assertEqual(ok, ?S:rpc(B, ?S, forward, [{inbox, A}, hello, #{channel => data}])),
    ?assertEqual([hello], ?S:wait_for_messages(A, inbox, 1)).


%% members_for_orchestration/0 gives every member's node spec, with the port
%% it really listens on.
members_for_orchestration_lists_specs(Config) ->
    Nodes = ?config(nodes, Config),
    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),
    [A | _] = Nodes,
    Specs = ?S:rpc(A, partisan_peer_service, members_for_orchestration, []),
    ?assertEqual(lists:sort(Nodes), lists:sort([N || #{name := N} <- Specs])),
    [
        begin
            #{listen_addrs := [#{ip := _, port := Port} | _], channels := Channels} = Spec,
            ?assert(Port > 0),
            ?assert(maps:is_key(data, Channels)),
            ?assertEqual(?S:node_spec(N), Spec#{name := N})
        end
        || #{name := N} = Spec <- Specs
    ].


%% update_members/1 with a list that leaves a node out removes it everywhere;
%% a later list that has it again brings it back.
update_members_removes_and_adds(Config) ->
    [A, B, C] = Nodes = ?config(nodes, Config),
    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),
    [SpecA, SpecB, SpecC] = [?S:node_spec(N) || N <- Nodes],

    ?assertEqual(ok, ?S:rpc(A, partisan_peer_service, update_members, [[SpecA, SpecB]])),
    ok = ?S:wait_until_converged([A, B]),
    ?S:wait_until(
        {c_alone, C},
        fun() -> ?S:rpc(C, partisan_peer_service, members, []) =:= {ok, [C]} end,
        100, 100
    ),
    ?S:always_true(
        c_stays_out,
        fun() ->
            {ok, M} = ?S:rpc(B, partisan_peer_service, members, []),
            not lists:member(C, M)
        end,
        5 * ?PERIODIC_INTERVAL, 100
    ),

    ?assertEqual(
        ok, ?S:rpc(A, partisan_peer_service, update_members, [[SpecA, SpecB, SpecC]])
    ),
    ok = ?S:wait_until_converged(Nodes).


%% An on_up callback registered for a node runs when that node connects.
on_up_fires_when_a_node_connects(Config) ->
    [A, B | _] = ?config(nodes, Config),
    ?assertEqual(ok, ?S:rpc(A, ?S, register_on_up, [B, inbox])),
    ok = ?S:join(B, A),
    ?assertEqual([{on_up, B}], ?S:wait_for_messages(A, inbox, 1)),
    %% the current state of the manager is there to inspect
    _ = ?S:rpc(A, partisan_peer_service, get_local_state, []).


%% kill_connections/1 drops every connection to a node; members reconnect by
%% themselves and messages flow again.
kill_connections_reconnects(Config) ->
    [A, B | _] = ?config(nodes, Config),
    ok = ?S:join(B, A),
    ok = ?S:wait_until_converged([A, B]),
    ?S:wait_until(full_pool, fun() -> ?S:rpc(A, partisan, is_fully_connected, [B]) end, 100, 100),
    Opened = opened(A),
    ?assertEqual(ok, ?S:rpc(A, partisan, kill_connections, [[B]])),
    Reconnected = fun(Before) ->
        ?S:wait_until(
            reconnected,
            fun() ->
                ?S:rpc(A, partisan, is_fully_connected, [B]) andalso opened(A) > Before
            end,
            100, 100
        )
    end,
    Reconnected(Opened),
    ?assertEqual(ok, ?S:rpc(A, ?S, forward, [{inbox, B}, after_big, #{}])),
    ?assertEqual([after_big], ?S:wait_for_messages(B, inbox, 1)),
    %% Partisan 5's manager function does the same, and calls the fun for
    %% each node (never for this one).
    Again = opened(A),
    ?assertEqual([B], ?S:rpc(A, ?MODULE, disconnect_nodes, [[A, B]])),
    Reconnected(Again).

%% (Runs on a test node.)
disconnect_nodes(Nodes) ->
    Me = self(),
    ok = partisan_peer_service_manager:disconnect(Nodes, fun(N) -> Me ! {gone, N} end),
    receive {gone, N} -> [N] after 1000 -> [] end.


%% cast_message/2,3,4 deliver `{'$gen_cast', Msg}'; send/2 returns the message
%% and delivers it.
cast_message_and_send(Config) ->
    [A, B | _] = ?config(nodes, Config),
    ok = ?S:join(B, A),
    ok = ?S:wait_until_converged([A, B]),
    ?assertEqual(ok, ?S:rpc(A, partisan, cast_message, [{inbox, B}, m])),
    ?assertEqual(ok, ?S:rpc(A, partisan, cast_message, [{inbox, B}, msg, #{channel => data}])),
    ?assertEqual(ok, ?S:rpc(A, partisan, cast_message, [B, inbox, payload, #{}])),
    ?assertEqual(hello, ?S:rpc(A, partisan, send, [{inbox, B}, hello])),
    %% two channels: no order between them
    ?assertEqual(
        lists:sort([{'$gen_cast', m}, {'$gen_cast', msg}, {'$gen_cast', payload}, hello]),
        lists:sort(?S:wait_for_messages(B, inbox, 4))
    ).


%% inject_partition/2 (Partisan 5's fault injection): the origin's sends to
%% its neighbours fail with {error, partitioned}, and, with a TTL, so do the
%% sends of the nodes the request reaches; what the cut-off nodes send still
%% arrives, the connections stay up, and resolve_partition/1 ends it
%% everywhere. (The inboxes collect: each check lists all so far.)
injected_partitions_cut_sends(Config) ->
    [A, B, C] = Nodes = ?config(nodes, Config),
    ok = ?S:join_all(Nodes),
    ok = ?S:wait_until_converged(Nodes),
    Send = fun(From, To, Msg) -> ?S:rpc(From, ?S, forward, [{inbox, To}, Msg, #{}]) end,
    %% (To a name nobody has: a probe that gets through lands nowhere.)
    Probe = fun(From, To) -> ?S:rpc(From, ?S, forward, [{nobody_here, To}, probe, #{}]) end,
    PS = partisan_peer_service,
    %% TTL 0: only A cuts itself off.
    {ok, Ref} = ?S:rpc(A, PS, inject_partition, [A, 0]),
    {ok, Held} = ?S:rpc(A, PS, partitions, []),
    ?assertEqual(lists:sort([B, C]), lists:sort([N || {R, #{name := N}} <- Held, R =:= Ref])),
    ?assertEqual({error, partitioned}, Send(A, B, cut)),
    ?assertEqual({badrpc, partitioned}, ?S:rpc(A, partisan_rpc, call, [B, erlang, node, []])),
    ?assertEqual({ok, []}, ?S:rpc(B, PS, partitions, [])),
    ?assertEqual(ok, Send(B, A, still_arrives)),
    ?assertEqual([still_arrives], ?S:wait_for_messages(A, inbox, 1)),
    ?assert(?S:rpc(A, partisan, is_connected, [B])),
    Engine = ?S:rpc(A, partisan_nif, engine, []),
    ?assert(maps:get(send_refused_partitioned, ?S:rpc(A, partisan_nif, stats, [Engine])) >= 2),
    ok = ?S:rpc(A, PS, resolve_partition, [Ref]),
    ?assertEqual({ok, []}, ?S:rpc(A, PS, partitions, [])),
    ?assertEqual(ok, Send(A, B, healed)),
    ?assertEqual([healed], ?S:wait_for_messages(B, inbox, 1)),
    %% TTL 1, asked from C with A as the origin: B and C cut themselves off
    %% from their neighbours too, and the resolution from any node reaches all.
    {ok, Ref2} = ?S:rpc(C, PS, inject_partition, [A, 1]),
    ?S:wait_until(
        partitioned_everywhere,
        fun() -> [Probe(N, M) || N <- Nodes, M <- Nodes, N =/= M]
                 =:= lists:duplicate(6, {error, partitioned}) end,
        50, 100
    ),
    ok = ?S:rpc(B, PS, resolve_partition, [Ref2]),
    ?S:wait_until(
        resolved_everywhere,
        fun() -> [?S:rpc(N, PS, partitions, []) || N <- Nodes] =:= lists:duplicate(3, {ok, []}) end,
        50, 100
    ),
    ?assertEqual(ok, Send(C, A, after_all)),
    ?assertEqual([still_arrives, after_all], ?S:wait_for_messages(A, inbox, 2)),
    %% Two partitions: ending one (whose requests pass the other's cut) leaves
    %% exactly the other, everywhere.
    {ok, Ref3} = ?S:rpc(A, PS, inject_partition, [A, 1]),
    {ok, Ref4} = ?S:rpc(B, PS, inject_partition, [B, 1]),
    Refs = fun(N) ->
        {ok, L} = ?S:rpc(N, PS, partitions, []),
        lists:usort([R || {R, _} <- L])
    end,
    Everywhere = fun(Want) -> [Refs(N) || N <- Nodes] =:= lists:duplicate(3, Want) end,
    ?S:wait_until(both_held, fun() -> Everywhere(lists:sort([Ref3, Ref4])) end, 50, 100),
    ok = ?S:rpc(C, PS, resolve_partition, [Ref3]),
    ?S:wait_until(one_left, fun() -> Everywhere([Ref4]) end, 50, 100),
    ?assertEqual({error, partitioned}, Send(C, A, still_cut)),
    ok = ?S:rpc(A, PS, resolve_partition, [Ref4]),
    ?S:wait_until(none_left, fun() -> Everywhere([]) end, 50, 100).


%% =============================================================================
%% HELPERS
%% =============================================================================


opened(Node) ->
    Engine = ?S:rpc(Node, partisan_nif, engine, []),
    maps:get(connections_opened, ?S:rpc(Node, partisan_nif, stats, [Engine])).


%% add_sup_callback/1: the fun gets the members' specifications on every
%% change, and is removed when the process that added it exits.
sup_callbacks_hear_membership_changes(Config) ->
    [A, B, C] = ?config(nodes, Config),
    Listener = ?S:rpc(A, ?MODULE, start_listener, []),
    ok = ?S:join(B, A),
    ok = ?S:join(C, A),
    ok = ?S:wait_until_converged([A, B, C]),
    Want = lists:sort([A, B, C]),
    ?S:wait_until(
        callback_saw_all,
        fun() -> ?S:rpc(A, ?MODULE, last_members, [Listener]) =:= Want end,
        100, 100
    ),
    ?assertMatch([_], ?S:rpc(A, gen_event, which_handlers, [partisan_peer_service_events])),
    ok = ?S:rpc(A, partisan_peer_service, leave, [C]),
    ?S:wait_until(
        callback_saw_leave,
        fun() -> ?S:rpc(A, ?MODULE, last_members, [Listener]) =:= lists:sort([A, B]) end,
        100, 100
    ),
    true = ?S:rpc(A, erlang, exit, [Listener, kill]),
    ?S:wait_until(
        handler_removed,
        fun() -> ?S:rpc(A, gen_event, which_handlers, [partisan_peer_service_events]) =:= [] end,
        50, 100
    ).

%% (Runs on a test node.) A process holding a membership callback; it keeps
%% the last member list the callback reported.
start_listener() ->
    Parent = self(),
    Pid = spawn(fun() ->
        Me = self(),
        ok = partisan_peer_service:add_sup_callback(
            %% Partisan 5's idiom: the callback decodes the state it gets.
            fun(State) -> Me ! {members, lists:sort(partisan_peer_service:decode(State))} end
        ),
        Parent ! {self(), ready},
        listen([])
    end),
    receive {Pid, ready} -> Pid end.

listen(Last) ->
    receive
        {members, Members} -> listen(Members);
        {last, From} -> From ! {last, Last}, listen(Last);
        _ -> listen(Last)
    end.

%% (Runs on a test node.)
last_members(Listener) ->
    Listener ! {last, self()},
    receive {last, Members} -> Members after 1000 -> timeout end.
