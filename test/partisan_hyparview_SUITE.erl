%% -----------------------------------------------------------------------------
%% @doc The HyParView manager on real nodes through our transport: eight nodes
%% joining one contact form a connected overlay whose active views are within
%% bounds, symmetric, and exactly the nodes that are up; messages reach
%% neighbours, and other nodes with `transitive'; a small active view forces
%% nodes to drop peers and the views stay symmetric with nobody left alone;
%% three nodes stopped, the rest heal. With a small active view, `transitive'
%% messages between every pair of nodes all arrive, each once. A slot reserved
%% for a tag (`reservations', `reserve/1') is kept for a node with that tag,
%% whose holder is never dropped, and opens again when the holder goes. X-BOT
%% exchanges (every second here) rewire full views while they stay symmetric
%% and within bounds, and `transitive' messages still all arrive, each once.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_hyparview_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([init_per_testcase/2, end_per_testcase/2]).
-export([eight_nodes_form_one_overlay/1]).
-export([a_small_active_view_stays_symmetric/1]).
-export([the_rest_heal_when_three_stop/1]).
-export([a_reserved_slot_is_kept_for_its_tag/1]).
-export([exchanges_rewire_full_views/1]).

-import(partisan_ct_support, [rpc/4, wait_until/4]).

-define(M, partisan_hyparview_peer_service_manager).

suite() ->
    [{timetrap, {minutes, 4}}].

all() ->
    [eight_nodes_form_one_overlay,
     a_small_active_view_stays_symmetric,
     the_rest_heal_when_three_stop,
     a_reserved_slot_is_kept_for_its_tag,
     exchanges_rewire_full_views].

init_per_suite(Config) ->
    ok = partisan_ct_support:init_dist(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(Case, Config) ->
    [{node_prefix, short(Case)} | Config].

end_per_testcase(_Case, _Config) ->
    partisan_ct_support:stop_nodes(persistent_term:get({?MODULE, nodes}, [])),
    _ = persistent_term:erase({?MODULE, nodes}),
    ok.

short(eight_nodes_form_one_overlay) -> "hv1";
short(a_small_active_view_stays_symmetric) -> "hv2";
short(the_rest_heal_when_three_stop) -> "hv3";
short(a_reserved_slot_is_kept_for_its_tag) -> "hv4";
short(exchanges_rewire_full_views) -> "hv5".


%% =============================================================================
%% Cases
%% =============================================================================

eight_nodes_form_one_overlay(Config) ->
    Nodes = start(8, #{}, Config),
    ok = settled(Nodes, 3, 6),
    %% members/0 is the active view with this node, as Partisan 5 returns it.
    [A | _] = Nodes,
    {ok, Active} = rpc(A, ?M, active, []),
    ?assertEqual({ok, lists:sort([A | Active])}, rpc(A, partisan_peer_service, members, [])),
    ?assertMatch({ok, [_ | _]}, rpc(A, ?M, passive, [])),
    %% A neighbour gets a message directly.
    [B | _] = Active,
    partisan_ct_support:rpc(B, partisan_ct_support, start_collector, [hv_inbox]),
    ok = rpc(A, partisan, forward_message, [B, hv_inbox, {hello, A}, #{}]),
    ?assertEqual([{hello, A}], partisan_ct_support:wait_for_messages(B, hv_inbox, 1)),
    %% A node that is no neighbour: refused without `transitive', relayed with it.
    case refused_non_neighbour(A, Nodes, 20) of
        none ->
            ct:comment("every node is a neighbour of ~p: no transitive send", [A]);
        {ok, Far} ->
            partisan_ct_support:rpc(Far, partisan_ct_support, start_collector, [hv_inbox]),
            ok = rpc(A, partisan, forward_message,
                     [Far, hv_inbox, {relayed, A}, #{transitive => true}]),
            ?assertEqual([{relayed, A}], partisan_ct_support:wait_for_messages(Far, hv_inbox, 1))
    end.


%% A node that is not in A's active view and to which a plain send is refused
%% (`not_yet_connected'). The view is read again before each try: exchanges
%% and promotions may make the node picked a neighbour between the read and
%% the send (that send reaches no collector: none runs there yet).
refused_non_neighbour(A, Nodes, Tries) ->
    {ok, Active} = rpc(A, ?M, active, []),
    case [N || N <- Nodes, N =/= A, not lists:member(N, Active)] of
        [] ->
            none;
        [Far | _] ->
            case rpc(A, partisan, forward_message, [Far, hv_inbox, direct, #{}]) of
                {error, not_yet_connected} ->
                    {ok, Far};
                ok when Tries > 1 ->
                    timer:sleep(100),
                    refused_non_neighbour(A, Nodes, Tries - 1);
                Other ->
                    ct:fail({sent_to_a_non_neighbour, Far, Other})
            end
    end.

exchanges_rewire_full_views(Config) ->
    %% Eight nodes of three neighbours each: full views, and passive nodes to
    %% exchange with; an exchange per node every second.
    HV = #{active_max_size => 3, active_min_size => 2, xbot_interval => 1000},
    Nodes = start(8, HV, Config),
    ok = settled(Nodes, 2, 3),
    Edges = fun() -> lists:sort([{N, P} || N <- Nodes, P <- active_of(N)]) end,
    Before = Edges(),
    ok = wait_until(rewired, fun() -> Edges() -- Before =/= [] end, 100, 200),
    ok = settled(Nodes, 2, 3),
    %% Exchanges go on; the overlay still carries every message, once.
    ok = all_pairs_transitive(Nodes, hv_xbot, 3, #{}),
    After = Edges(),
    ct:comment("~b of ~b directed edges changed", [length(After -- Before), length(Before)]).


a_small_active_view_stays_symmetric(Config) ->
    %% Three neighbours at most for eight nodes joining one contact: the
    %% contact must drop peers as the others arrive.
    HV = #{active_max_size => 3, active_min_size => 2},
    Nodes = start(8, HV, Config),
    ok = settled(Nodes, 2, 3),
    %% And settles so again after a few rounds of shuffles and promotions.
    timer:sleep(5000),
    ok = settled(Nodes, 2, 3),
    %% With three neighbours of seven, most nodes are reached only by relay:
    %% every `transitive' message arrives, once.
    ok = all_pairs_transitive(Nodes, hv_far, 5, #{}),
    %% Acknowledged too: the acknowledgements come back through the overlay,
    %% so that every sender ends up keeping nothing.
    ok = all_pairs_transitive(Nodes, hv_acked, 2, #{ack => true}),
    ok = wait_until(acknowledged, fun() ->
        lists:all(fun(N) -> maps:get(outstanding, rpc(N, partisan_acknowledgement, stats, [])) =:= 0 end,
                  Nodes)
    end, 100, 200),
    Stats = [rpc(N, partisan_gen_relay, stats, []) || N <- Nodes],
    ct:comment("relays: ~p", [Stats]),
    ?assert(lists:sum([D || #{delivered := D} <- Stats]) > 0).

the_rest_heal_when_three_stop(Config) ->
    Nodes = start(8, #{}, Config),
    ok = settled(Nodes, 3, 6),
    {Stopped, Rest} = lists:split(3, lists:reverse(Nodes)),
    partisan_ct_support:stop_nodes(Stopped),
    ok = settled(Rest, 3, 6),
    %% leave/0 works (a no-op in Partisan 5): the node tells its neighbours and
    %% is alone; the others drop it and settle without it.
    [Leaver | Stay] = Rest,
    ok = rpc(Leaver, partisan_peer_service, leave, []),
    ok = wait_until(
        left_alone,
        fun() ->
            rpc(Leaver, partisan_peer_service, members, []) =:= {ok, [Leaver]}
                andalso rpc(Leaver, partisan, nodes, []) =:= []
        end,
        100, 100
    ),
    ok = wait_until(
        {overlay, Stay},
        fun() -> partisan_ct_support:hyparview_check(Stay, 3, 6) end,
        150, 200
    ).


a_reserved_slot_is_kept_for_its_tag(Config) ->
    %% A contact with three slots, one kept for a `hub'; untagged nodes join
    %% it, then a hub, then more untagged ones.
    HV = #{active_max_size => 3, active_min_size => 1, random_promotion => false},
    [C] = start_group(1, "hv4c", HV, #{reservations => [hub]}, Config),
    ?assertEqual({ok, undefined}, rpc(C, ?M, active, [hub])),
    ?assertEqual(error, rpc(C, ?M, active, [db])),
    Spec = rpc(C, partisan, node_spec, []),
    Join = fun(Nodes) -> [ok = rpc(N, partisan_peer_service, join, [Spec]) || N <- Nodes] end,
    %% (The early nodes have room for all, so that none of them drops the
    %% contact on its own when the hub's join walks reach it: what is tested
    %% is the contact's choices.)
    Early = start_group(3, "hv4u", HV#{active_max_size => 10}, #{}, Config),
    Join(Early),
    %% The open slot counts as taken: the contact holds two of them.
    ok = wait_until(two_early, fun() -> length(active_of(C)) =:= 2 end, 100, 100),
    timer:sleep(500),
    ?assertEqual(2, length(active_of(C))),
    %% (The hub has room for all: only the contact's choices are tested, as a
    %% full hub may drop the contact, which the slot cannot prevent.)
    [H] = start_group(1, "hv4h", HV#{active_max_size => 10}, #{tag => hub}, Config),
    Join([H]),
    ok = wait_until(hub_in_slot, fun() -> rpc(C, ?M, active, [hub]) =:= {ok, H} end, 100, 100),
    ?assertEqual(3, length(active_of(C))),
    %% Each newcomer's join makes the full contact drop a neighbour (the
    %% newcomer may move on, as the walks of its join find it others), never
    %% the hub.
    Late = start_group(3, "hv4v", HV, #{}, Config),
    lists:foreach(
        fun(N) ->
            ok = rpc(N, partisan_peer_service, join, [Spec]),
            ok = wait_until({joined, N}, fun() -> active_of(N) =/= [] end, 100, 100),
            timer:sleep(300),
            ?assert(lists:member(H, active_of(C))),
            ?assertEqual({ok, H}, rpc(C, ?M, active, [hub])),
            ?assert(length(active_of(C)) =< 3)
        end,
        Late
    ),
    %% reserve/1: a second tag fits, a fourth does not (three slots).
    ?assertEqual(ok, rpc(C, partisan_peer_service, reserve, [db])),
    ?assertEqual(ok, rpc(C, partisan_peer_service, reserve, [db])),
    ?assertEqual({ok, undefined}, rpc(C, ?M, active, [db])),
    ?assertEqual(ok, rpc(C, partisan_peer_service, reserve, [cache])),
    ?assertEqual({error, no_available_slots},
                 rpc(C, partisan_peer_service, reserve, [queue])),
    %% The hub goes: its slot opens again.
    partisan_ct_support:stop_nodes([H]),
    ok = wait_until(slot_open, fun() -> rpc(C, ?M, active, [hub]) =:= {ok, undefined} end,
                    100, 100),
    ?assertNot(lists:member(H, active_of(C))).


%% =============================================================================
%% Helpers
%% =============================================================================

%% Starts `N' HyParView nodes named after `Prefix', with `Extra' partisan
%% options; they join nobody.
start_group(N, Prefix, HV, Extra, Config) ->
    Env = Extra#{
        peer_service_manager => ?M,
        hyparview => HV,
        connection_interval => 200,
        connection_jitter => 100
    },
    Nodes = partisan_ct_support:start_nodes(N, [{node_prefix, Prefix} | Config], Env),
    persistent_term:put({?MODULE, nodes}, persistent_term:get({?MODULE, nodes}, []) ++ Nodes),
    Nodes.

active_of(Node) ->
    {ok, Active} = rpc(Node, ?M, active, []),
    Active.

%% Starts `N' HyParView nodes with short shuffle and promotion periods and joins
%% them all through the first.
start(N, HV, Config) ->
    Env = #{
        peer_service_manager => ?M,
        hyparview => maps:merge(
            #{shuffle_interval => 2000, random_promotion_interval => 1000}, HV
        ),
        connection_interval => 200,
        connection_jitter => 100
    },
    [Contact | Others] = Nodes = partisan_ct_support:start_nodes(N, Config, Env),
    persistent_term:put({?MODULE, nodes}, Nodes),
    Spec = rpc(Contact, partisan, node_spec, []),
    [ok = rpc(Node, partisan_peer_service, join, [Spec]) || Node <- Others],
    Nodes.

settled(Nodes, Min, Max) ->
    wait_until({overlay, Nodes}, fun() -> partisan_ct_support:hyparview_check(Nodes, Min, Max) end, 150, 200).

%% Every node sends `Count' `transitive' messages (with `Opts' too) to every
%% other (collected under `Name'): each arrives, once.
all_pairs_transitive(Nodes, Name, Count, Opts) ->
    [partisan_ct_support:rpc(N, partisan_ct_support, start_collector, [Name])
     || N <- Nodes],
    Sent = [{From, To, I} || From <- Nodes, To <- Nodes, To =/= From,
                             I <- lists:seq(1, Count)],
    [ok = rpc(From, partisan, forward_message, [To, Name, M, Opts#{transitive => true}])
     || {From, To, _} = M <- Sent],
    lists:foreach(
        fun(To) ->
            Expected = lists:sort([M || {_, T, _} = M <- Sent, T =:= To]),
            _ = partisan_ct_support:wait_for_messages(To, Name, length(Expected)),
            timer:sleep(200),
            ?assertEqual(Expected,
                         lists:sort(partisan_ct_support:rpc(To, partisan_ct_support,
                                                            collected, [Name])))
        end,
        Nodes
    ).
