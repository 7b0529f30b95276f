%% -----------------------------------------------------------------------------
%% @doc `partisan_gen_statem' across nodes without Distributed Erlang, with
%% callback modules written for plain `gen_statem' in both callback modes
%% (`partisan_test_door': state functions and state enter calls;
%% `partisan_test_light': `handle_event_function'): calls by name, pid and on
%% the local node, casts, state and event timeouts, postponing, deferred
%% replies, clean and dirty call timeouts that leave no late reply,
%% `noproc', a crashing machine, a node that is not connected, requests and
%% remote `stop'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen_statem_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).

-export([calls_in_both_callback_modes/1]).
-export([casts_and_timeouts/1]).
-export([postponed_call_is_answered_later/1]).
-export([deferred_reply/1]).
-export([timeouts_leave_no_late_reply/1]).
-export([noproc_crash_and_nodedown/1]).
-export([requests_and_stop/1]).

-import(partisan_test_nodes, [start/4, mesh/1, cluster/1, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).
-define(NOWHERE, 'nowhere@127.0.0.1').

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [
        calls_in_both_callback_modes,
        casts_and_timeouts,
        postponed_call_is_answered_later,
        deferred_reply,
        timeouts_leave_no_late_reply,
        noproc_crash_and_nodedown,
        requests_and_stop
    ].

init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config = [{group, gen_statem} | Config0],
    Nodes = [start(stdio, Tag, #{}, Config) || Tag <- ["sa", "sb"]],
    ok = mesh(Nodes),
    [A, B] = Nodes,
    {ok, _} = call(B, partisan_test_door, start, [door, 1234]),
    {ok, _} = call(B, partisan_test_light, start, [light]),
    {ok, _} = call(A, partisan_test_light, start, [light]),
    [{nodes, Nodes} | Config].

end_per_suite(Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, cluster(Config)),
    _ = persistent_term:erase({partisan_test_nodes, gen_statem}),
    ok.



%% =============================================================================
%% CASES
%% =============================================================================



calls_in_both_callback_modes(Config) ->
    [A, B] = cluster(Config),
    Door = {door, name(B)},
    ?assertEqual({ok, wrong_code}, sm(A, call, [Door, {unlock, 1}])),
    ?assertMatch({ok, {locked, #{opened := _}}}, sm(A, call, [Door, state, 5000])),
    %% handle_event_function, by name, by pid as it arrived, and on this node.
    Light = {light, name(B)},
    {ok, {Was, _}} = sm(A, call, [Light, get]),
    ?assertEqual({ok, flip(Was)}, sm(A, call, [Light, toggle, [{timeout, 1000}, {channel, undefined}]])),
    Pid = call(A, ?AGENT, gsm_pid, [name(B), light]),
    ?assertEqual({ok, Was}, sm(A, call, [Pid, toggle, {clean_timeout, 1000}])),
    ?assertEqual({ok, on}, sm(A, call, [light, toggle])),
    ?assertEqual({ok, {on, 0}}, sm(A, call, [{light, name(A)}, get])).

casts_and_timeouts(Config) ->
    [A, B] = cluster(Config),
    Light = {light, name(B)},
    {ok, {_, N}} = sm(A, call, [Light, get]),
    {ok, ok} = sm(A, cast, [Light, bump]),
    {ok, ok} = sm(A, cast, [Light, bump, [{channel, undefined}]]),
    ?assertMatch({ok, {_, N2}} when N2 =:= N + 2, sm(A, call, [Light, get])),
    %% A state timeout: the door locks itself 300 ms after it opened.
    Door = {door, name(B)},
    ?assertEqual({ok, ok}, sm(A, call, [Door, {unlock, 1234}])),
    ?assertMatch({ok, {open, _}}, sm(A, call, [Door, state])),
    ok = partisan_ct_support:wait_until(
        fun() -> element(1, element(2, sm(A, call, [Door, state]))) =:= locked end, 50, 40
    ),
    %% An event timeout fires when no event comes for its time (any event,
    %% such as a call asking for the state, would cancel it).
    {ok, ok} = sm(A, cast, [Door, {idle_after, 50}]),
    timer:sleep(400),
    ?assertMatch({ok, {locked, #{idle := true}}}, sm(A, call, [Door, state])).

postponed_call_is_answered_later(Config) ->
    [A, B] = cluster(Config),
    ?assertEqual(
        {timeout, ok, {reply, entered}},
        call(A, ?AGENT, gsm_postponed, [name(B), door, 1234])
    ).

deferred_reply(Config) ->
    [A, B] = cluster(Config),
    ?assertEqual({ok, late}, sm(A, call, [{door, name(B)}, {later, 100}, 5000])).

timeouts_leave_no_late_reply(Config) ->
    [A, B] = cluster(Config),
    Door = {door, name(B)},
    %% The reply comes 600 ms after the caller gave up at 150 ms, with each
    %% of gen_statem's timeout forms.
    lists:foreach(
        fun(Timeout) ->
            {Result, Mailbox} =
                call(A, ?AGENT, gsm_call_then_wait, [Door, {later, 600}, Timeout, 1000]),
            ?assertMatch(
                {exit, {timeout, {partisan_gen_statem, call, [Door, {later, 600}, Timeout]}}},
                Result
            ),
            ?assertEqual([], Mailbox)
        end,
        [150, {clean_timeout, 150}, {dirty_timeout, 150}, [{timeout, 150}]]
    ).

noproc_crash_and_nodedown(Config) ->
    [A, B] = cluster(Config),
    ?assertMatch(
        {exit, {noproc, {partisan_gen_statem, call, _}}},
        sm(A, call, [{nobody, name(B)}, state, 5000])
    ),
    {ok, _} = call(B, partisan_test_door, start, [fragile, 0]),
    ?assertMatch(
        {exit, {{crashed, _}, {partisan_gen_statem, call, _}}},
        sm(A, call, [{fragile, name(B)}, crash, 5000])
    ),
    ?assertMatch(
        {exit, {{nodedown, ?NOWHERE}, {partisan_gen_statem, call, _}}},
        sm(A, call, [{door, ?NOWHERE}, state, 5000])
    ),
    %% A machine that stops with a reply answers, then is gone.
    {ok, _} = call(B, partisan_test_door, start, [brief, 0]),
    ?assertEqual({ok, stopping}, sm(A, call, [{brief, name(B)}, {stop, normal}, 5000])).

requests_and_stop(Config) ->
    [A, B] = cluster(Config),
    Light = {light, name(B)},
    {ok, State} = sm(A, call, [Light, get]),
    ?assertEqual({reply, State}, call(A, ?AGENT, gsm_request, [Light, get, receive_response])),
    ?assertEqual({reply, State}, call(A, ?AGENT, gsm_request, [Light, get, wait_response])),
    ?assertEqual({reply, State}, call(A, ?AGENT, gsm_request, [Light, get, check_response])),
    ?assertMatch(
        {error, {noproc, _}},
        call(A, ?AGENT, gsm_request, [{nobody, name(B)}, get, receive_response])
    ),
    {ok, _} = call(B, partisan_test_door, start, [doomed, 0]),
    ?assertEqual({ok, ok}, sm(A, stop, [{doomed, name(B)}])),
    ?assertEqual(undefined, call(B, erlang, whereis, [doomed])),
    ?assertMatch({exit, noproc}, sm(A, stop, [{doomed, name(B)}, normal, 5000])).



%% =============================================================================
%% HELPERS
%% =============================================================================



%% partisan_gen_statem:F(Args) on node A: `{ok, Value}' or `{Class, Reason}'.
sm(A, F, Args) ->
    call(A, ?AGENT, catching, [partisan_gen_statem, F, Args]).

flip(on) -> off;
flip(off) -> on.
