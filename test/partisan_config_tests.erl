%% EUnit tests of partisan_config: defaults, aliases, names, listen addresses
%% and the normalisation of channels. They need no native library.
-module(partisan_config_tests).

-include_lib("eunit/include/eunit.hrl").

-define(NODE, 'test@127.0.0.1').


%% =============================================================================
%% FIXTURE
%% =============================================================================


config_test_() ->
    {foreach, fun clear_env/0, fun clear_env/1, [
        {"defaults", fun defaults/0},
        {"deprecated names", fun aliases/0},
        {"configured name", fun configured_name/0},
        {"generated name", fun generated_name/0},
        {"generated name survives re-initialisation", fun generated_name_kept/0},
        {"default listen address", fun default_listen_addrs/0},
        {"listen address forms", fun listen_addr_forms/0},
        {"invalid listen addresses", fun invalid_listen_addrs/0},
        {"channels: default", fun default_channels/0},
        {"channels: list form", fun channels_list_form/0},
        {"channels: map form", fun channels_map_form/0},
        {"channels: default channel is not configurable", fun default_channel_fixed/0},
        {"channels: membership channel", fun membership_channel/0},
        {"channels: invalid", fun invalid_channels/0},
        {"channels: encode options", fun encode_opts/0},
        {"channel_opts/1", fun channel_opts/0},
        {"forward_options", fun forward_options/0},
        {"connection_ping", fun connection_ping/0},
        {"invalid values", fun invalid_values/0},
        {"tag and reservations", fun tags/0},
        {"hyparview: X-BOT keys", fun xbot/0},
        {"unknown keys and their nearest known key", fun unknown_keys/0},
        {"init is idempotent", fun idempotent/0},
        {"seed: random_seed makes runs repeat", fun seed/0},
        {"get_with_opts: the options first", fun get_with_opts/0},
        {"trace/2 logs only with tracing on", fun trace/0}
    ]}.


clear_env() ->
    [application:unset_env(partisan, Key)
        || {Key, _} <- application:get_all_env(partisan)],
    ok.


clear_env(_) ->
    clear_env().


init_with(Env) ->
    [ok = application:set_env(partisan, Key, Value) || {Key, Value} <- Env],
    ok = partisan_config:init().


%% =============================================================================
%% TESTS
%% =============================================================================


defaults() ->
    init_with([{name, ?NODE}]),
    ?assertEqual(false, partisan_config:get(connect_disterl)),
    ?assertEqual(true, partisan_config:get(channel_fallback)),
    ?assertEqual(10000, partisan_config:get(periodic_interval)),
    ?assertEqual(1000, partisan_config:get(connection_interval)),
    ?assertEqual(1000, partisan_config:get(connection_jitter)),
    ?assertEqual(improper_list, partisan_config:get(remote_ref_format)),
    ?assertEqual(#{}, partisan_config:get(forward_options)),
    ?assertEqual(1, partisan_config:parallelism()),
    ?assertEqual(64 * 1024 * 1024, partisan_config:get(max_frame_size)),
    ?assertEqual(max(1, erlang:system_info(schedulers_online) div 2),
                 partisan_config:get(io_threads)),
    ?assertEqual(
        partisan_pluggable_peer_service_manager,
        partisan_config:get(peer_service_manager)
    ),
    ?assertMatch(
        #{enabled := true, idle_timeout := 20000, timeout := 10000,
          max_attempts := 5},
        partisan_config:get(connection_ping)
    ),
    ?assertEqual(0, partisan_config:get(listen_port)),
    ?assertEqual({127, 0, 0, 1}, partisan_config:get(listen_ip)),
    ?assertEqual(undefined, partisan_config:default_channel()),
    ?assertEqual(missing, partisan_config:get(no_such_option, missing)),
    ?assertError(badarg, partisan_config:get(no_such_option)).


aliases() ->
    init_with([
        {name, ?NODE},
        {peer_ip, "10.1.2.3"},
        {peer_port, 9999},
        {partisan_peer_service_manager, my_manager}
    ]),
    ?assertEqual({10, 1, 2, 3}, partisan_config:get(listen_ip)),
    ?assertEqual({10, 1, 2, 3}, partisan_config:get(peer_ip)),
    ?assertEqual(9999, partisan_config:get(listen_port)),
    ?assertEqual(9999, partisan_config:get(peer_port)),
    ?assertEqual(my_manager, partisan_config:get(peer_service_manager)),
    ?assertEqual(
        [#{ip => {10, 1, 2, 3}, port => 9999}],
        partisan_config:listen_addrs()
    ),
    %% The current name wins over the deprecated one.
    clear_env(),
    init_with([{name, ?NODE}, {peer_port, 1}, {listen_port, 2}]),
    ?assertEqual(2, partisan_config:get(listen_port)).


configured_name() ->
    init_with([{name, "named@127.0.0.1"}]),
    %% Distributed Erlang's name wins over the configured one.
    erlang:node() =:= nonode@nohost orelse partisan_config:set(name, "named@127.0.0.1"),
    ?assertEqual('named@127.0.0.1', partisan_config:get(name)),
    ?assertEqual('named@127.0.0.1', partisan:node()),
    ?assertEqual(<<"named@127.0.0.1">>, partisan_config:get(nodestring)),
    ?assertEqual(<<"named@127.0.0.1">>, partisan:nodestring()).


generated_name() ->
    init_with([]),
    case erlang:node() of
        nonode@nohost ->
            Name = atom_to_list(partisan:node()),
            ?assertMatch("partisan_" ++ _, Name),
            ?assertMatch([_, "127.0.0.1"], string:split(Name, "@")),
            ?assertEqual(list_to_binary(Name), partisan:nodestring());
        Node ->
            %% Distributed Erlang's name is used as is.
            ?assertEqual(Node, partisan:node())
    end.


generated_name_kept() ->
    init_with([]),
    Name = partisan:node(),
    ok = partisan_config:init(),
    ?assertEqual(Name, partisan:node()).


default_listen_addrs() ->
    init_with([{name, ?NODE}, {listen_ip, <<"127.0.0.2">>}, {listen_port, "4000"}]),
    ?assertEqual(
        [#{ip => {127, 0, 0, 2}, port => 4000}],
        partisan_config:listen_addrs()
    ).


listen_addr_forms() ->
    init_with([
        {name, ?NODE},
        {listen_port, 7000},
        {listen_addrs, [
            "127.0.0.1:12345",
            <<"127.0.0.1:12345">>,
            {"127.0.0.1", "12345"},
            {{127, 0, 0, 1}, 12345},
            #{ip => "127.0.0.1", port => "12345"},
            #{ip => <<"127.0.0.1">>, port => <<"12345">>},
            #{ip => {127, 0, 0, 1}, port => 12345},
            "10.0.0.1",
            "[::1]:5000",
            {{0, 0, 0, 0, 0, 0, 0, 1}, 0}
        ]}
    ]),
    ?assertEqual(
        lists:sort([
            #{ip => {127, 0, 0, 1}, port => 12345},
            #{ip => {10, 0, 0, 1}, port => 7000},
            #{ip => {0, 0, 0, 0, 0, 0, 0, 1}, port => 5000},
            #{ip => {0, 0, 0, 0, 0, 0, 0, 1}, port => 0}
        ]),
        partisan_config:listen_addrs()
    ).


invalid_listen_addrs() ->
    init_with([{name, ?NODE}]),
    Invalid = [
        [{{127, 0, 0, 1}, 70000}],
        [{{127, 0, 0, 1}, -1}],
        [{{256, 0, 0, 1}, 80}],
        ["not an address:80"],
        ["127.0.0.1:port"],
        [#{ip => "127.0.0.1"}],
        [42],
        not_a_list
    ],
    [?assertError(badarg, partisan_config:set(listen_addrs, Addrs))
        || Addrs <- Invalid],
    ?assertError(badarg, partisan_config:set(listen_port, 65536)),
    ?assertError(badarg, partisan_config:set(listen_ip, "nonsense")).


default_channels() ->
    init_with([{name, ?NODE}]),
    ?assertEqual(
        #{
            undefined =>
                #{parallelism => 1, monotonic => false, compression => false},
            partisan_membership =>
                #{parallelism => 1, monotonic => false, compression => true}
        },
        partisan_config:channels()
    ).


channels_list_form() ->
    init_with([
        {name, ?NODE},
        {parallelism, 2},
        {channels, [
            foo,
            {monotonic, bar},
            {baz, #{parallelism => 4}},
            #{name => qux, compression => 3},
            {quux, [{monotonic, true}]}
        ]}
    ]),
    Default = #{parallelism => 2, monotonic => false, compression => false},
    ?assertEqual(
        #{
            undefined => Default,
            foo => Default,
            bar => Default#{monotonic => true},
            baz => Default#{parallelism => 4},
            qux => Default#{compression => 3},
            quux => Default#{monotonic => true},
            partisan_membership =>
                #{parallelism => 1, monotonic => false, compression => true}
        },
        partisan_config:channels()
    ).


channels_map_form() ->
    init_with([
        {name, ?NODE},
        {channels, #{data => #{parallelism => 4}, gossip => #{compression => true}}}
    ]),
    Channels = partisan_config:channels(),
    ?assertEqual(
        #{parallelism => 4, monotonic => false, compression => false},
        maps:get(data, Channels)
    ),
    ?assertEqual(
        #{parallelism => 1, monotonic => false, compression => true},
        maps:get(gossip, Channels)
    ),
    ?assertEqual(
        [data, gossip, partisan_membership, undefined],
        lists:sort(maps:keys(Channels))
    ).


default_channel_fixed() ->
    init_with([
        {name, ?NODE},
        {parallelism, 3},
        {channels, #{undefined => #{parallelism => 8, monotonic => true}}}
    ]),
    ?assertEqual(
        #{parallelism => 3, monotonic => false, compression => false},
        partisan_config:channel_opts(undefined)
    ).


membership_channel() ->
    init_with([
        {name, ?NODE},
        {channels, [{partisan_membership, #{parallelism => 2, monotonic => true}}]}
    ]),
    ?assertEqual(
        #{parallelism => 2, monotonic => false, compression => false},
        partisan_config:channel_opts(partisan_membership)
    ).


invalid_channels() ->
    init_with([{name, ?NODE}]),
    Invalid = [
        [{foo, #{parallelism => 0}}],
        [{foo, #{parallelism => two}}],
        [{foo, #{monotonic => yes}}],
        [{foo, #{compression => 10}}],
        [{"foo", #{}}],
        [42],
        #{foo => not_opts},
        not_channels
    ],
    [?assertError(badarg, partisan_config:set(channels, Channels))
        || Channels <- Invalid],
    clear_env(),
    application:set_env(partisan, channels, [{foo, #{parallelism => 0}}]),
    ?assertError(badarg, partisan_config:init()).


encode_opts() ->
    init_with([
        {name, ?NODE},
        {channels, #{fast => #{}, small => #{compression => true},
                     tiny => #{compression => 9}, none => #{compression => 0}}}
    ]),
    ?assertEqual([], partisan_config:channel_encode_opts(undefined)),
    ?assertEqual([], partisan_config:channel_encode_opts(fast)),
    ?assertEqual([{compressed, 6}], partisan_config:channel_encode_opts(small)),
    ?assertEqual([{compressed, 9}], partisan_config:channel_encode_opts(tiny)),
    ?assertEqual([], partisan_config:channel_encode_opts(none)),
    ?assertEqual([{compressed, 6}],
                 partisan_config:channel_encode_opts(partisan_membership)),
    ?assertEqual([], partisan_config:channel_encode_opts(no_such_channel)),
    %% Changing the channels refreshes the cached options.
    ok = partisan_config:set(channels, #{fast => #{compression => 2}}),
    ?assertEqual([{compressed, 2}], partisan_config:channel_encode_opts(fast)).


channel_opts() ->
    init_with([{name, ?NODE}, {channels, [foo]}]),
    ?assertEqual(
        #{parallelism => 1, monotonic => false, compression => false},
        partisan:channel_opts(foo)
    ),
    ?assertError(badarg, partisan_config:channel_opts(bar)).


forward_options() ->
    init_with([{name, ?NODE}, {forward_options, [{channel, data}]}]),
    ?assertEqual(#{channel => data}, partisan_config:get(forward_options)),
    ?assertError(badarg, partisan_config:set(forward_options, [oops])).


connection_ping() ->
    init_with([{name, ?NODE}, {connection_ping, [{enabled, false}]}]),
    ?assertEqual(
        #{enabled => false, idle_timeout => 20000, timeout => 10000,
          max_attempts => 5},
        partisan_config:get(connection_ping)
    ).


tags() ->
    init_with([{name, ?NODE}]),
    ?assertEqual(undefined, partisan_config:get(tag)),
    ?assertEqual([], partisan_config:get(reservations)),
    %% Any atom tags a HyParView node (client and server are two of them).
    ok = partisan_config:set(tag, hub),
    ?assertEqual(hub, partisan_config:get(tag)),
    ?assertError(badarg, partisan_config:set(tag, "hub")),
    ok = partisan_config:set(reservations, [db, hub, db]),
    ?assertEqual([db, hub], partisan_config:get(reservations)),
    ?assertError(badarg, partisan_config:set(reservations, hub)),
    ?assertError(badarg, partisan_config:set(reservations, [<<"hub">>])),
    %% 255 characters fit an atom, not the wire when they take 2 bytes each.
    Long = binary_to_atom(binary:copy(<<"é"/utf8>>, 200), utf8),
    ?assertError(badarg, partisan_config:set(tag, Long)),
    ?assertError(badarg, partisan_config:set(reservations, [Long])).


xbot() ->
    init_with([{name, ?NODE}]),
    HV = partisan_config:get(hyparview),
    ?assertMatch(#{xbot_enabled := true, xbot_interval := 120000}, HV),
    ok = partisan_config:set(hyparview, #{xbot_enabled => false}),
    ?assertMatch(
        #{xbot_enabled := false, xbot_interval := 120000, active_max_size := 6},
        partisan_config:get(hyparview)
    ),
    ?assertError(badarg, partisan_config:set(hyparview, #{xbot_enabled => yes})),
    ?assertError(badarg, partisan_config:set(hyparview, #{xbot_interval => 0})),
    %% Partisan 5's deprecated top-level key lands in the map.
    clear_env(),
    init_with([{name, ?NODE}, {xbot_interval, 7000}]),
    ?assertMatch(#{xbot_interval := 7000}, partisan_config:get(hyparview)).


invalid_values() ->
    init_with([{name, ?NODE}]),
    ?assertError(badarg, partisan_config:set(remote_ref_format, binary)),
    ?assertError(badarg, partisan_config:set(parallelism, 0)),
    ?assertError(badarg, partisan_config:set(max_frame_size, -1)),
    ?assertError(badarg, partisan_config:set(io_threads, two)),
    ?assertError(badarg, partisan_config:set(connection_jitter, -5)),
    ?assertError(badarg, partisan_config:set(channel_fallback, maybe)),
    ?assertError(badarg, partisan_config:set(name, 42)),
    %% Values the engine could not honour as given are refused, not adjusted.
    ?assertError(badarg, partisan_config:set(max_frame_size, 100)),
    ?assertError(badarg, partisan_config:set(send_queue_limit, 1000)),
    ?assertError(badarg, partisan_config:set(io_threads, 65)),
    ?assertError(badarg, partisan_config:set(connection_ping, #{timeout => 0})),
    ?assertError(badarg, partisan_config:set(connection_ping, #{enabled => yes})),
    ?assertError(badarg, partisan_config:set(connection_ping, #{timeot => 5})),
    ?assertError(badarg, partisan_config:set(peer_atom_budget, -1)),
    ?assertError(badarg, partisan_config:set(pid_encoding, 1)),
    ?assertError(badarg, partisan_config:set(peer_service_manager, "mod")),
    ?assertError(badarg, partisan_config:set(auth_secret, <<>>)),
    ?assertError(badarg, partisan_config:set(auth_secret, 42)),
    ?assertError(badarg, partisan_config:set(authentication, off)),
    ?assertError(badarg, partisan_config:set(handshake_limit, 0)),
    ?assertError(badarg, partisan_config:set(max_members, 0)),
    ?assertError(badarg, partisan_config:set(member_name_rate, 0)),
    ok = partisan_config:set(auth_secret, "s3cret"),
    ?assertEqual(<<"s3cret">>, partisan_config:get(auth_secret)),
    ?assertMatch([_ | _], partisan_config:accepted(max_frame_size)).


unknown_keys() ->
    ?assertEqual(
        [{parallelizm, parallelism}, {conection_ping, connection_ping}],
        partisan_config:unknown_keys([
            {parallelizm, 2}, {conection_ping, #{}}, {hyparview, #{}},
            {channels, #{}}, {peer_atom_budget, 10}
        ])
    ).


idempotent() ->
    init_with([{name, ?NODE}, {channels, [foo]}, {listen_port, 1234}]),
    Before = snapshot(),
    ok = partisan_config:init(),
    ?assertEqual(Before, snapshot()).


snapshot() ->
    [partisan_config:get(Key)
        || Key <- [name, nodestring, channels, listen_addrs, listen_ip,
                   listen_port, parallelism, connection_ping]].


seed() ->
    init_with([{name, ?NODE}, {random_seed, {1, 2, 3}}]),
    _ = partisan_config:seed(),
    First = [rand:uniform(1000000) || _ <- lists:seq(1, 5)],
    _ = partisan_config:seed(),
    ?assertEqual(First, [rand:uniform(1000000) || _ <- lists:seq(1, 5)]),
    _ = partisan_config:seed(7),
    ?assertError(badarg, partisan_config:seed(not_a_seed)).


get_with_opts() ->
    init_with([{name, ?NODE}, {periodic_interval, 1234}]),
    ?assertEqual(1234, partisan_config:get_with_opts(periodic_interval, #{})),
    ?assertEqual(5, partisan_config:get_with_opts(periodic_interval, #{periodic_interval => 5})),
    ?assertEqual(6, partisan_config:get_with_opts(periodic_interval, [{periodic_interval, 6}])),
    ?assertEqual(true, partisan_config:get_with_opts(flag_here, [flag_here], false)),
    ?assertEqual(none, partisan_config:get_with_opts(no_such_key, [], none)),
    ?assertError(badarg, partisan_config:get_with_opts(no_such_key, [])).


%% A primary filter sees every event before the handlers: it tells this
%% process of the trace events and stops them there.
trace() ->
    Self = self(),
    Filter = fun(#{msg := {report, #{description := "Trace"} = R}, meta := Meta}, _) ->
                     Self ! {traced, R, maps:get(domain, Meta, [])},
                     stop;
                (_, _) ->
                     ignore
             end,
    ok = logger:add_primary_filter(partisan_trace_test, {Filter, []}),
    Level = maps:get(level, logger:get_primary_config()),
    ok = logger:set_primary_config(level, info),
    try
        ok = init_with([]),
        ?assertEqual(ok, partisan_config:trace(quiet, [])),
        ok = init_with([{tracing, true}]),
        ?assertEqual(ok, partisan_config:trace(loud, [1, 2])),
        Got = receive {traced, _, _} = T -> T after 1000 -> none end,
        ?assertMatch({traced, #{message := loud, args := [1, 2]}, [trace]}, Got),
        ?assertEqual(none, receive {traced, _, _} = More -> More after 0 -> none end)
    after
        ok = logger:set_primary_config(level, Level),
        ok = logger:remove_primary_filter(partisan_trace_test)
    end.
