%% EUnit tests of the partisan API paths that need no native library: local
%% delivery, argument checking and node information.
-module(partisan_tests).

-include_lib("eunit/include/eunit.hrl").

%% These pass invalid arguments on purpose.
-dialyzer({nowarn_function, [bad_arguments/0, node_info/0]}).

-define(NODE, 'test@127.0.0.1').
-define(OTHER, 'other@127.0.0.1').
-define(NAME, partisan_tests_receiver).


api_test_() ->
    {foreach, fun setup/0, fun cleanup/1, [
        {"local pid and name", registered(fun local_pid_and_name/0)},
        {"local {Name, Node}", registered(fun local_name_node/0)},
        {"local remote references", registered(fun local_remote_refs/0)},
        {"local delivery with forward_message/4", registered(fun forward_4_local/0)},
        {"options: map or property list", registered(fun options/0)},
        {"bad arguments", registered(fun bad_arguments/0)},
        {"remote send needs a running engine", registered(fun remote_needs_engine/0)},
        {"cast and send", registered(fun cast_and_send/0)},
        {"node information", registered(fun node_info/0)},
        {"node_spec of unknown nodes", registered(fun unknown_node_spec/0)},
        {"predicates", registered(fun predicates/0)},
        {"self and make_ref", registered(fun self_and_make_ref/0)},
        {"manager delivery and capabilities", registered(fun manager_deliver/0)}
    ]}.


setup() ->
    [application:unset_env(partisan, Key)
        || {Key, _} <- application:get_all_env(partisan)],
    ok = application:set_env(partisan, name, ?NODE),
    ok = partisan_config:init(),
    ok = partisan_config:set(name, ?NODE).


cleanup(_) ->
    [application:unset_env(partisan, Key)
        || {Key, _} <- application:get_all_env(partisan)],
    ok.


%% =============================================================================
%% TESTS
%% =============================================================================


local_pid_and_name() ->
    ?assertEqual(ok, partisan:forward_message(self(), one)),
    ?assertEqual(one, next()),
    ?assertEqual(ok, partisan:forward_message(?NAME, two, #{})),
    ?assertEqual(two, next()),
    %% As erlang:send/2: an unregistered name is an error.
    ?assertError(badarg, partisan:forward_message(no_such_name_here, x)).


local_name_node() ->
    ?assertEqual(ok, partisan:forward_message({?NAME, ?NODE}, three, [])),
    ?assertEqual(three, next()),
    %% As erlang:send({Name, node()}, _): silently dropped.
    ?assertEqual(ok, partisan:forward_message({no_such_name_here, ?NODE}, x)).


local_remote_refs() ->
    lists:foreach(
        fun(Format) ->
            ok = partisan_config:set(remote_ref_format, Format),
            ?assertEqual(ok, partisan:forward_message(partisan:self(), {pid, Format})),
            ?assertEqual({pid, Format}, next()),
            NameRef = partisan_remote_ref:from_term(?NAME),
            ?assertEqual(ok, partisan:forward_message(NameRef, {name, Format}, #{})),
            ?assertEqual({name, Format}, next())
        end,
        [improper_list, tuple, uri]
    ).


forward_4_local() ->
    Node = partisan:node(),
    ?assertEqual(ok, partisan:forward_message(Node, self(), a, #{})),
    ?assertEqual(a, next()),
    ?assertEqual(ok, partisan:forward_message(Node, ?NAME, b, #{})),
    ?assertEqual(b, next()),
    ?assertEqual(ok, partisan:forward_message(Node, {encoded_pid, pid_to_list(self())}, c, #{})),
    ?assertEqual(c, next()),
    ?assertEqual(ok, partisan:forward_message(Node, {encoded_name, atom_to_list(?NAME)}, d, #{})),
    ?assertEqual(d, next()),
    ?assertEqual(ok, partisan:forward_message(Node, partisan:self(), e, #{})),
    ?assertEqual(e, next()),
    %% Unregistered names are dropped on this node as on any other.
    ?assertEqual(ok, partisan:forward_message(Node, no_such_name_here, x, #{})),
    ?assertEqual(ok, partisan:forward_message(Node, {encoded_name, "no_such_name_xyz"}, x, #{})),
    ?assertEqual(nothing, next()).


options() ->
    ?assertEqual(ok, partisan:forward_message(self(), a, [{channel, foo}])),
    ?assertEqual(a, next()),
    ?assertEqual(ok, partisan:forward_message(self(), b, [])),
    ?assertEqual(b, next()),
    ?assertEqual(ok, partisan:forward_message(self(), c, #{ack => true})),
    ?assertEqual(c, next()).


bad_arguments() ->
    ?assertError(badarg, partisan:forward_message("not a ref", x)),
    ?assertError(badarg, partisan:forward_message(42, x, #{})),
    ?assertError(badarg, partisan:forward_message(self(), x, not_opts)),
    ?assertError(badarg, partisan:forward_message(<<"partisan:pid">>, x)),
    ?assertError(badarg, partisan:forward_message("node", self(), x, #{})),
    ?assertError(badarg, partisan:forward_message(?OTHER, "not a ref", x, #{})),
    ?assertError(badarg, partisan:forward_message(?OTHER, self(), x, [bad_opt])),
    ?assertError(badarg, partisan:forward_message(?OTHER, self(), x, #{partition_key => -1})),
    ?assertError(badarg, partisan:forward_message(?OTHER, self(), x, #{channel => "c"})),
    RefRef = partisan_remote_ref:from_term(make_ref()),
    ?assertError(badarg, partisan:forward_message(?OTHER, RefRef, x, #{})),
    ?assertError(badarg, partisan:node_spec(42)),
    ?assertError(badarg, partisan:is_local_pid(self(), not_a_pid)).


remote_needs_engine() ->
    ?assertError(partisan_not_started, partisan:forward_message(?OTHER, foo, x, #{})),
    Remote = partisan_remote_ref:from_term(foo, ?OTHER),
    ?assertError(partisan_not_started, partisan:forward_message(Remote, x)),
    ?assertError(partisan_not_started, partisan:forward_message({foo, ?OTHER}, x)).


cast_and_send() ->
    ?assertEqual(ok, partisan:cast_message(self(), hello)),
    ?assertEqual({'$gen_cast', hello}, next()),
    ?assertEqual(ok, partisan:cast_message(?NAME, hi, #{})),
    ?assertEqual({'$gen_cast', hi}, next()),
    ?assertEqual(ok, partisan:cast_message(partisan:node(), ?NAME, hey, #{})),
    ?assertEqual({'$gen_cast', hey}, next()),
    %% A cast reports no delivery problem, but a stopped partisan is a
    %% usage error.
    ?assertError(partisan_not_started, partisan:cast_message(?OTHER, foo, x, #{})),
    ?assertEqual(msg, partisan:send(self(), msg)),
    ?assertEqual(msg, next()),
    ?assertEqual(ok, partisan:send(?NAME, msg2, [])),
    ?assertEqual(msg2, next()),
    ok = partisan_config:set(connect_disterl, true),
    ?assertEqual(ok, partisan:send(self(), msg3, [nosuspend])),
    ?assertEqual(msg3, next()).


node_info() ->
    ?assertEqual(?NODE, partisan:node()),
    ?assertEqual(<<"test@127.0.0.1">>, partisan:nodestring()),
    ?assertEqual(?NODE, partisan:node(self())),
    ?assertEqual(?NODE, partisan:node(make_ref())),
    ?assertEqual(?OTHER, partisan:node(partisan_remote_ref:from_term(foo, ?OTHER))),
    ?assertEqual([?NODE], partisan:nodes(this)),
    ?assertEqual([], partisan:nodes(hidden)),
    ?assertEqual([?NODE], partisan:nodes([this, hidden, this])),
    ?assertError(badarg, partisan:nodes(bogus)),
    ?assertEqual(undefined, partisan:default_channel()),
    ?assertNot(partisan:is_alive()),
    Spec = partisan:node_spec(),
    ?assertMatch(#{name := ?NODE, listen_addrs := [_], channels := #{}}, Spec),
    ?assertEqual({ok, Spec}, partisan:node_spec(?NODE)),
    ?assertEqual({ok, Spec}, partisan:node_spec(<<"test@127.0.0.1">>)),
    ?assertEqual({ok, Spec}, partisan:node_spec("test@127.0.0.1", #{})).


unknown_node_spec() ->
    Text = "never_seen_node_spec_7a1b@10.0.0.1",
    Before = erlang:system_info(atom_count),
    ?assertEqual({error, not_yet_connected}, partisan:node_spec(Text)),
    ?assertEqual({error, not_yet_connected}, partisan:node_spec(list_to_binary(Text))),
    ?assertEqual(Before, erlang:system_info(atom_count)),
    ?assertEqual({error, not_yet_connected}, partisan:node_spec(?OTHER)).


predicates() ->
    Remote = partisan_remote_ref:from_term(foo, ?OTHER),
    ?assert(partisan:is_pid(self())),
    ?assert(partisan:is_pid(partisan:self())),
    ?assertNot(partisan:is_pid(Remote)),
    ?assert(partisan:is_reference(make_ref())),
    ?assert(partisan:is_local(self())),
    ?assert(partisan:is_local(partisan:self())),
    ?assertNot(partisan:is_local(Remote)),
    ?assert(partisan:is_local_pid(self())),
    ?assert(partisan:is_local_pid(partisan:self(), self())),
    ?assert(partisan:is_local_name(foo)),
    ?assert(partisan:is_local_name(foo, foo)),
    ?assertNot(partisan:is_local_name(Remote, foo)),
    ?assert(partisan:is_local_reference(make_ref())),
    ?assert(partisan:is_self(self())),
    ?assert(partisan:is_self(partisan:self())),
    ?assertNot(partisan:is_self(spawn(fun() -> ok end))),
    ?assertEqual(self(), partisan:whereis(?NAME)),
    ?assertEqual(self(), partisan:whereis(partisan_remote_ref:from_term(?NAME))),
    ?assertError(badarg, partisan:whereis(Remote)).


self_and_make_ref() ->
    Ref = partisan:self([cache]),
    ?assertEqual(Ref, partisan:self([cache])),
    ?assertEqual(Ref, partisan:self([])),
    erase({partisan, self}),
    Made = partisan:make_ref(),
    ?assert(partisan_remote_ref:is_local_reference(Made)).


%% =============================================================================
%% HELPERS
%% =============================================================================


%% Runs Test in the test process registered as ?NAME (the registration goes
%% away with the process).
registered(Test) ->
    fun() ->
        true = register(?NAME, self()),
        Test()
    end.


next() ->
    receive
        Msg -> Msg
    after 100 ->
        nothing
    end.


%% partisan_peer_service_manager:deliver/2 hands a message to a local process
%% by any of its names and drops (never raises) one for no process.
manager_deliver() ->
    M = partisan_peer_service_manager,
    ?assertEqual(ok, M:deliver(self(), a)),
    ?assertEqual(a, next()),
    ?assertEqual(ok, M:deliver(?NAME, b)),
    ?assertEqual(b, next()),
    ?assertEqual(ok, M:deliver(partisan_remote_ref:from_term(?NAME), c)),
    ?assertEqual(c, next()),
    ?assertEqual(ok, M:deliver(no_such_name_here, d)),
    ?assertEqual(ok, M:deliver({via, no_such_module, x}, e)),
    ?assertEqual(nothing, next()),
    ?assert(M:supports_capability(partisan_pluggable_peer_service_manager, monitoring)),
    ?assertNot(M:supports_capability(partisan_pluggable_peer_service_manager, nothing_like_it)),
    ?assertNot(M:supports_capability(lists, monitoring)).


%% A module with `-behaviour(partisan_gen_server)' or
%% `-behaviour(partisan_gen_statem)' is checked against OTP's callbacks (the
%% test callback modules declare them, and tests compile with
%% warnings_as_errors).
behaviours_test() ->
    Server = partisan_gen_server:behaviour_info(callbacks),
    ?assertEqual([], [{init, 1}, {handle_call, 3}, {handle_cast, 2}, {handle_info, 2}] -- Server),
    ?assert(lists:member({handle_info, 2},
                         partisan_gen_server:behaviour_info(optional_callbacks))),
    Statem = partisan_gen_statem:behaviour_info(callbacks),
    ?assertEqual([], [{init, 1}, {callback_mode, 0}, {handle_event, 4}, {state_name, 3}] -- Statem),
    ?assertEqual([], [{init, 1}, {callback_mode, 0}]
                     -- (Statem -- partisan_gen_statem:behaviour_info(optional_callbacks))).


%% partisan_peer_service:decode/1 names the members of what callbacks and
%% get_local_state/0 give, and refuses anything else with badarg.
decode_test() ->
    D = fun partisan_peer_service:decode/1,
    Specs = [#{name => 'a@h', listen_addrs => []}, #{name => 'b@h', channels => #{}}],
    ?assertEqual(['a@h', 'b@h'], D(Specs)),
    ?assertEqual(['a@h', 'b@h'], D({ok, ['a@h', 'b@h']})),
    ?assertEqual([], D([])),
    ?assertError(badarg, D(#{name => 'a@h'})),
    ?assertError(badarg, D([#{listen_addrs => []}])),
    ?assertError(badarg, D(["a@h"])).


%% Every manager decodes as partisan_peer_service does (Partisan 5's
%% Manager:decode/1); HyParView's active/1 knows no reserved tag.
manager_decode_test() ->
    Specs = [#{name => 'a@h'}, #{name => 'b@h'}],
    [?assertEqual(['a@h', 'b@h'], M:decode(Specs))
     || M <- [partisan_pluggable_peer_service_manager,
              partisan_hyparview_peer_service_manager,
              partisan_static_peer_service_manager,
              partisan_client_server_peer_service_manager]],
    ?assertError(badarg, partisan_static_peer_service_manager:decode(nonsense)).


%% broadcast_channel/1 answers the handler's own channel, the default one when
%% it names none, and undefined when its callback fails; update/1 takes a
%% membership state as callbacks get it.
broadcast_channel_test() ->
    Default = partisan:default_channel(),
    ?assertEqual(Default, partisan_plumtree_broadcast:broadcast_channel(partisan_test_bcast)),
    ok = load_handler(bcast_channel_probe, {atom, 1, gossip}),
    ?assertEqual(gossip, partisan_plumtree_broadcast:broadcast_channel(bcast_channel_probe)),
    ok = load_handler(bcast_channel_crash,
                      {call, 1, {remote, 1, {atom, 1, erlang}, {atom, 1, error}}, [{atom, 1, no}]}),
    ?assertEqual(undefined, partisan_plumtree_broadcast:broadcast_channel(bcast_channel_crash)),
    ?assertEqual(ok, partisan_plumtree_broadcast:update([#{name => 'a@h'}])),
    ?assertEqual(ok, partisan_plumtree_broadcast:update({ok, ['a@h']})),
    ?assertError(badarg, partisan_plumtree_broadcast:update(nonsense)).

%% A module whose broadcast_channel/0 evaluates `Body'.
load_handler(Mod, Body) ->
    Forms = [{attribute, 1, module, Mod},
             {attribute, 1, export, [{broadcast_channel, 0}]},
             {function, 1, broadcast_channel, 0, [{clause, 1, [], [], [Body]}]}],
    {ok, Mod, Bin} = compile:forms(Forms),
    {module, Mod} = code:load_binary(Mod, atom_to_list(Mod) ++ ".erl", Bin),
    ok.
