%% -----------------------------------------------------------------------------
%% @doc Partisan's configuration: validation, defaults and fast access.
%%
%% Options are read from the `partisan' application environment by
%% {@link init/0} (called when the application starts), normalised, and kept in
%% `persistent_term' so that reading them costs one lookup. {@link set/2}
%% changes a value at run time (and in the application environment, so that it
%% survives an application restart); most options only take effect when the
%% peer service manager starts.
%%
%% The option names, aliases and defaults are those of Partisan 5, for the
%% options this implementation uses:
%% <ul>
%% <li>`name' (the node name when Distributed Erlang is off; generated when
%% absent), `nodestring' (derived, read only)</li>
%% <li>`listen_ip' (alias `peer_ip'), `listen_port' (alias `peer_port',
%% default `0', an ephemeral port), `listen_addrs'</li>
%% <li>`channels', `parallelism' (default `1'), `channel_fallback'
%% (default `true')</li>
%% <li>`connect_disterl' (default `false'), `peer_service_manager' (alias
%% `partisan_peer_service_manager')</li>
%% <li>`periodic_interval' (10000 ms), `connection_interval' (1000 ms),
%% `connection_jitter' (1000 ms), `connection_ping'</li>
%% <li>`forward_options' (default `#{}'), `remote_ref_format' (`improper_list'
%% | `tuple' | `uri'), `remote_ref_uri_padding' (alias
%% `remote_ref_binary_padding')</li>
%% <li>`tls', `tls_client_options', `tls_server_options'</li>
%% <li>`auth_secret' (the secret peers must prove they know; default: the
%% Erlang cookie), `authentication' (default `true'; `false' is unsafe:
%% anybody who can reach the port can join and send messages)</li>
%% <li>`pid_encoding', `ref_encoding' (default `true': pids, ports and
%% references inside messages name their origin node)</li>
%% </ul>
%% and these of this implementation: `max_frame_size' (bytes, default 64 MiB),
%% `send_queue_limit' (bytes queued per connection before senders are
%% suspended, default 8 MiB), `io_threads' (default: half the schedulers,
%% at least 1), `io_nice' (the OS nice value of the I/O threads, default 0),
%% `peer_atom_budget' (atoms that messages from peers may create, default
%% `auto': a quarter of the atom table's free room at start; `0' is safe mode)
%% `refusal_log_interval' (ms between two log lines about one peer's
%% refused messages, default 10000) and `max_unacknowledged' (messages sent
%% with `ack' kept until acknowledged, default 65536; Partisan 5's
%% `retransmit_interval', default 1000 ms, is when they are sent again).
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_config).

-include_lib("kernel/include/inet.hrl").
-include("partisan.hrl").

-define(KEY(Key), {?MODULE, Key}).
-define(ENCODE_OPTS_KEY, ?KEY('$channel_encode_opts')).
-define(MIB, 1048576).
-define(RESOLVE_TIMEOUT, 5000).
-define(DEFAULT_COMPRESSION_LEVEL, 6).

-type channel_opts() :: #{
    parallelism := pos_integer(),
    monotonic := boolean(),
    compression := boolean() | 0..9,
    atom() => term()
}.
-type channels() :: #{atom() => channel_opts()}.
-type listen_addr() :: #{ip := inet:ip_address(), port := inet:port_number()}.

-export_type([channel_opts/0]).
-export_type([channels/0]).
-export_type([listen_addr/0]).

-export([init/0]).
-export([get/1]).
-export([get/2]).
-export([get_with_opts/2]).
-export([get_with_opts/3]).
-export([set/2]).
-export([channel_opts/1]).
-export([channels/0]).
-export([channel_encode_opts/0]).
-export([channel_encode_opts/1]).
-export([default_channel/0]).
-export([default_channel_opts/0]).
-export([seed/0]).
-export([trace/2]).
-export([seed/1]).
-export([listen_addrs/0]).
-export([parallelism/0]).
-export([accepted/1]).
-export([unknown_keys/1]).

-compile({no_auto_import, [get/1]}).



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Initialises the configuration from the application environment.
%% Called by the application on start; idempotent. Fails with `badarg' on an
%% invalid value.
%% @end
%% -----------------------------------------------------------------------------
-spec init() -> ok.

init() ->
    ok = warn_unknown_keys(),
    ok = erase_all(),
    lists:foreach(
        fun({Key, Default}) -> set(Key, env(Key, Default)) end,
        plain_defaults()
    ),
    ok = init_name(),
    ok = set(listen_ip, env(listen_ip, undefined)),
    ok = set(listen_port, env(listen_port, 0)),
    ok = set(listen_addrs, env(listen_addrs, [])),
    ok = set(hyparview, hyparview_env()),
    %% After parallelism: the default channel takes its parallelism from it.
    ok = set(channels, env(channels, #{})).


%% -----------------------------------------------------------------------------
%% @doc Returns the value of `Key'. Fails with `badarg' if it has no value.
%% Deprecated names are accepted (e.g. `peer_ip' reads `listen_ip').
%% @end
%% -----------------------------------------------------------------------------
-spec get(Key :: atom()) -> term() | no_return().

get(Key) ->
    persistent_term:get(?KEY(canonical_key(Key))).


%% -----------------------------------------------------------------------------
%% @doc Returns the value of `Key', or `Default' if it has no value.
%% @end
%% -----------------------------------------------------------------------------
-spec get(Key :: atom(), Default :: term()) -> term().

get(Key, Default) ->
    persistent_term:get(?KEY(canonical_key(Key)), Default).


%% -----------------------------------------------------------------------------
%% @doc The value of `Key' in `Opts' (a map or a property list) if it has
%% one, else {@link get/1}.
%% @end
%% -----------------------------------------------------------------------------
-spec get_with_opts(atom(), map() | list()) -> term().

get_with_opts(Key, Opts) when is_map(Opts); is_list(Opts) ->
    case find_opt(Key, Opts) of
        {ok, Value} -> Value;
        error -> get(Key)
    end.


%% -----------------------------------------------------------------------------
%% @doc The value of `Key' in `Opts' if it has one, else {@link get/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec get_with_opts(atom(), map() | list(), term()) -> term().

get_with_opts(Key, Opts, Default) when is_map(Opts); is_list(Opts) ->
    case find_opt(Key, Opts) of
        {ok, Value} -> Value;
        error -> get(Key, Default)
    end.


find_opt(Key, Opts) when is_map(Opts) ->
    maps:find(Key, Opts);

find_opt(Key, Opts) ->
    case lists:keyfind(Key, 1, Opts) of
        {Key, Value} -> {ok, Value};
        false -> case lists:member(Key, Opts) of
            true -> {ok, true};
            false -> error
        end
    end.


%% -----------------------------------------------------------------------------
%% @doc Validates, normalises and stores `Value' under `Key' (its current name
%% if `Key' is a deprecated one). Fails with `badarg' on an invalid value.
%% @end
%% -----------------------------------------------------------------------------
-spec set(Key :: atom(), Value :: term()) -> ok | no_return().

set(Key0, Value0) when is_atom(Key0) ->
    Key = canonical_key(Key0),
    Value = normalize(Key, Value0),
    store(Key, Value),
    derive(Key, Value),
    is_send_setting(Key) andalso partisan_send:refresh_context(),
    ok.


%% -----------------------------------------------------------------------------
%% @doc Returns the options of channel `Name'; fails with `badarg' if there is
%% no such channel.
%% @end
%% -----------------------------------------------------------------------------
-spec channel_opts(Name :: atom()) -> channel_opts() | no_return().

channel_opts(Name) when is_atom(Name) ->
    case maps:find(Name, channels()) of
        {ok, Opts} ->
            Opts;
        error ->
            erlang:error(badarg, [Name])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns the configured channels (always including the default channel
%% and the membership channel).
%% @end
%% -----------------------------------------------------------------------------
-spec channels() -> channels().

channels() ->
    get(channels).


%% -----------------------------------------------------------------------------
%% @doc Returns the `term_to_binary/2' options for messages sent on `Channel':
%% `[{compressed, N}]' when the channel compresses, `[]' otherwise (also for an
%% unknown channel). One `persistent_term' lookup: this is on the send path.
%% @end
%% -----------------------------------------------------------------------------
-spec channel_encode_opts(Channel :: atom()) -> [{compressed, 1..9}].

channel_encode_opts(Channel) ->
    maps:get(Channel, channel_encode_opts(), []).


%% -----------------------------------------------------------------------------
%% @doc Returns the encoding options of every channel (see
%% {@link channel_encode_opts/1}).
%% @end
%% -----------------------------------------------------------------------------
-spec channel_encode_opts() -> #{atom() => [{compressed, 1..9}]}.

channel_encode_opts() ->
    persistent_term:get(?ENCODE_OPTS_KEY, #{}).


%% -----------------------------------------------------------------------------
%% @doc Returns the name of the default channel (`undefined').
%% @end
%% -----------------------------------------------------------------------------
-spec default_channel() -> undefined.

default_channel() ->
    ?DEFAULT_CHANNEL.


%% -----------------------------------------------------------------------------
%% @doc Returns the listen addresses: the configured ones before the peer
%% service starts, the bound ones (actual ports) after.
%% @end
%% -----------------------------------------------------------------------------
-spec listen_addrs() -> [listen_addr()].

listen_addrs() ->
    get(listen_addrs).


%% -----------------------------------------------------------------------------
%% @doc Returns the default number of connections per channel.
%% @end
%% -----------------------------------------------------------------------------
-spec parallelism() -> pos_integer().

parallelism() ->
    get(parallelism, ?PARALLELISM).



%% -----------------------------------------------------------------------------
%% @doc What `Key' accepts, in words, for the message that refuses a value.
%% @end
%% -----------------------------------------------------------------------------
-spec accepted(atom()) -> string().

accepted(Key0) ->
    Key = canonical_key(Key0),
    case Key of
        name -> "a node name atom (or text) of the form name@host";
        listen_ip -> "an IP address: a tuple, or text such as \"127.0.0.1\"";
        listen_port -> "a port number 0..65535 (0: ephemeral)";
        listen_addrs -> "a list of #{ip, port}, {Ip, Port} or \"ip:port\"";
        channels -> "a map #{Name => #{parallelism, monotonic, compression}} or a list of names and {Name, Opts}";
        connection_ping -> "a map (or proplist) with enabled (boolean), idle_timeout, timeout (ms) and max_attempts (positive integers); missing keys take their defaults";
        connection_jitter -> "a non-negative integer (ms)";
        io_nice -> "an integer -20..19";
        peer_atom_budget -> "auto or a non-negative integer (0: safe mode)";
        refusal_log_interval -> "a non-negative integer (ms)";
        remote_ref_format -> "improper_list, tuple or uri";
        forward_options -> "a map or a property list of forwarding options";
        peer_service_manager -> "a module name";
        K when K == tls_client_options; K == tls_server_options -> "a list of ssl options";
        K when K == channel_fallback; K == connect_disterl; K == remote_ref_uri_padding;
               K == tls; K == pid_encoding; K == ref_encoding; K == authentication ->
            "true or false";
        auth_secret -> "a non-empty binary or string (default: the Erlang cookie)";
        K when K == parallelism; K == io_threads; K == max_frame_size;
               K == send_queue_limit; K == periodic_interval; K == connection_interval;
               K == handshake_limit; K == max_members; K == member_name_rate;
               K == retransmit_interval; K == max_unacknowledged ->
            {Min, Max} = int_range(K),
            lists:flatten(io_lib:format("an integer ~b..~b", [Min, Max]));
        _ -> "any value"
    end.


%% -----------------------------------------------------------------------------
%% @doc The keys of `Env' that neither this implementation nor Partisan 5
%% knows, each with the nearest known key.
%% @end
%% -----------------------------------------------------------------------------
-spec unknown_keys([{atom(), term()}]) -> [{atom(), Nearest :: atom()}].

unknown_keys(Env) ->
    Known = known_keys(),
    [{Key, nearest(Key, Known)} || {Key, _} <- Env, not lists:member(Key, Known)].



%% =============================================================================
%% PRIVATE: defaults, names and storage
%% =============================================================================



warn_unknown_keys() ->
    lists:foreach(
        fun({Key, Nearest}) ->
            logger:warning(#{
                description => "Unknown partisan configuration key, ignored",
                key => Key,
                nearest_known_key => Nearest
            })
        end,
        unknown_keys(application:get_all_env(?APP))
    ).


%% Every key read here, its deprecated names, and the keys of Partisan 5 that
%% configure features this implementation accepts without effect.
known_keys() ->
    [Key || {Key, _} <- plain_defaults()]
        ++ [name, nodestring, listen_ip, listen_port, listen_addrs, channels,
            peer_ip, peer_port, partisan_peer_service_manager,
            remote_ref_binary_padding, included_applications]
        ++ [hyparview, arwl, prwl, max_active_size, max_passive_size,
            min_active_size, passive_view_shuffle_period, random_promotion,
            random_promotion_period]
        ++ [binary_padding, broadcast, causal_labels, disable_fast_forward,
            disable_fast_receive, distance_enabled, disterl_enabled, egress_delay,
            exchange_selection, fanout, gossip,
            ingress_delay, membership_binary_compression,
            membership_strategy, membership_strategy_tracing, metadata,
            orchestration_strategy, peer_discovery, periodic_enabled,
            random_seed, register_pid_for_encoding, replaying,
            shrinking,
            transmission_logging_mfa,
            %% deprecated in Partisan 5, still read by some deployments
            peer_host, remote_ref_as_uri, xbot_interval].


nearest(Key, Known) ->
    Text = atom_to_list(Key),
    {_, Best} = lists:min([{distance(Text, atom_to_list(K)), K} || K <- Known]),
    Best.


%% Levenshtein distance, one row at a time.
distance(A, B) ->
    First = lists:seq(0, length(B)),
    {Last, _} = lists:foldl(
        fun(CharA, {Prev, I}) ->
            {row(CharA, B, Prev, [I]), I + 1}
        end,
        {First, 1},
        A
    ),
    lists:last(Last).


row(_, [], _, Acc) ->
    lists:reverse(Acc);

row(CharA, [CharB | RestB], [Diag, Up | RestPrev], [Left | _] = Acc) ->
    Cost = case CharA =:= CharB of true -> 0; false -> 1 end,
    Cell = lists:min([Left + 1, Up + 1, Diag + Cost]),
    row(CharA, RestB, [Up | RestPrev], [Cell | Acc]).



%% Options stored as read (after validation), in the order they are set.
%% The engine's I/O threads and the VM's schedulers share the cores: half as
%% many I/O threads as schedulers leaves the VM most of them. On a 2-core
%% machine one I/O thread moves more than two (fewer threads preempting the
%% schedulers; see docs/benchmarks.md).
default_io_threads() ->
    max(1, erlang:system_info(schedulers_online) div 2).


plain_defaults() ->
    [
        {authentication, true},
        {broadcast_mods, []},
        {broadcast_start_exchange_limit, undefined},
        {exchange_tick_period, 10000},
        {lazy_tick_period, 1000},
        {tag, undefined},
        {reservations, []},
        {auth_secret, undefined},
        {channel_fallback, true},
        {connect_disterl, false},
        {connection_interval, ?CONNECTION_INTERVAL},
        {connection_jitter, ?CONNECTION_JITTER},
        {connection_ping, default_connection_ping()},
        {forward_options, #{}},
        {handshake_limit, 256},
        {max_members, 10000},
        {member_name_rate, 1000},
        {io_threads, default_io_threads()},
        {io_nice, 0},
        {max_frame_size, 64 * ?MIB},
        {max_unacknowledged, 65536},
        {send_queue_limit, 8 * ?MIB},
        {parallelism, ?PARALLELISM},
        {peer_atom_budget, auto},
        {peer_service_manager, ?DEFAULT_PEER_SERVICE_MANAGER},
        {periodic_interval, ?PERIODIC_INTERVAL},
        {pid_encoding, true},
        {ref_encoding, true},
        {refusal_log_interval, 10000},
        {relay_ttl, 5},
        {retransmit_interval, 1000},
        {remote_ref_format, improper_list},
        {remote_ref_uri_padding, false},
        {tls, false},
        {tls_client_options, []},
        {tls_server_options, []},
        {tracing, false}
    ].


%% Partisan 5's `hyparview' defaults, but X-BOT: on here (off in Partisan 5),
%% since its exchanges are what merges an island that dense joins can leave,
%% every 120 s per node (Partisan 5 draws 5 to 65 s).
hyparview_defaults() ->
    #{
        active_max_size => 6,
        active_min_size => 3,
        active_rwl => 6,
        passive_max_size => 30,
        passive_rwl => 6,
        random_promotion => true,
        random_promotion_interval => 5000,
        shuffle_interval => 10000,
        shuffle_k_active => 3,
        shuffle_k_passive => 4,
        xbot_enabled => true,
        xbot_interval => 120000
    }.


%% The names Partisan 5 still reads for `hyparview' keys.
hyparview_key(arwl) -> active_rwl;
hyparview_key(prwl) -> passive_rwl;
hyparview_key(max_active_size) -> active_max_size;
hyparview_key(min_active_size) -> active_min_size;
hyparview_key(max_passive_size) -> passive_max_size;
hyparview_key(passive_view_shuffle_period) -> shuffle_interval;
hyparview_key(random_promotion_period) -> random_promotion_interval;
hyparview_key(Key) -> Key.


%% The `hyparview' map, with the deprecated top-level keys under it (the map's
%% own keys win).
hyparview_env() ->
    Old = [arwl, prwl, max_active_size, min_active_size, max_passive_size,
           passive_view_shuffle_period, random_promotion,
           random_promotion_period, xbot_interval],
    Top = maps:from_list(
        [{Key, V} || Key <- Old, {ok, V} <- [application:get_env(?APP, Key)]]
    ),
    maps:merge(Top, to_map(hyparview, env(hyparview, #{}))).


is_valid_hyparview(HV) ->
    Pos = fun(K) -> is_integer(maps:get(K, HV)) andalso maps:get(K, HV) >= 1 end,
    Walk = fun(K) -> is_integer(maps:get(K, HV)) andalso maps:get(K, HV) >= 0
                        andalso maps:get(K, HV) =< 64 end,
    lists:all(Pos, [active_max_size, active_min_size, passive_max_size,
                    shuffle_k_active, shuffle_k_passive, shuffle_interval,
                    random_promotion_interval, xbot_interval])
        andalso lists:all(Walk, [active_rwl, passive_rwl])
        andalso is_boolean(maps:get(random_promotion, HV))
        andalso is_boolean(maps:get(xbot_enabled, HV))
        andalso maps:get(active_min_size, HV) =< maps:get(active_max_size, HV).


default_connection_ping() ->
    #{
        enabled => true,
        idle_timeout => timer:seconds(20),
        timeout => timer:seconds(10),
        max_attempts => 5
    }.


%% Deprecated option names and the ones that replaced them.
canonical_key(peer_ip) -> listen_ip;
canonical_key(peer_port) -> listen_port;
canonical_key(partisan_peer_service_manager) -> peer_service_manager;
canonical_key(remote_ref_binary_padding) -> remote_ref_uri_padding;
canonical_key(Key) -> Key.


deprecated_keys(Key) ->
    [Old || Old <- [peer_ip, peer_port, partisan_peer_service_manager,
                    remote_ref_binary_padding],
            canonical_key(Old) =:= Key].


%% The environment value of Key, else of one of its deprecated names.
env(Key, Default) ->
    env_first([Key | deprecated_keys(Key)], Default).


env_first([Key | Rest], Default) ->
    case application:get_env(?APP, Key) of
        {ok, Value} ->
            Value;
        undefined ->
            env_first(Rest, Default)
    end;

env_first([], Default) ->
    Default.


store(Key, Value) ->
    ok = application:set_env(?APP, Key, Value),
    persistent_term:put(?KEY(Key), Value).


%% What partisan_send keeps a copy of.
is_send_setting(Key) -> Key == name orelse Key == forward_options orelse Key == channels.


%% Values computed from another option, kept for fast access.
derive(name, Name) ->
    store(nodestring, atom_to_binary(Name, utf8));

derive(channels, Channels) ->
    persistent_term:put(?ENCODE_OPTS_KEY, maps:map(fun encode_opts/2, Channels));

derive(_, _) ->
    ok.


encode_opts(_, #{compression := true}) ->
    [{compressed, ?DEFAULT_COMPRESSION_LEVEL}];

encode_opts(_, #{compression := N}) when is_integer(N), N >= 1, N =< 9 ->
    [{compressed, N}];

encode_opts(_, _) ->
    [].


erase_all() ->
    _ = [
        persistent_term:erase(Key)
        || {{?MODULE, _} = Key, _} <- persistent_term:get()
    ],
    partisan_send:refresh_context().


%% Distributed Erlang's name wins; then the configured one; else a generated
%% one, which set/2 saves in the environment so a restart keeps it.
init_name() ->
    Name =
        case erlang:node() of
            nonode@nohost ->
                case env(name, undefined) of
                    undefined -> generated_name();
                    Configured -> Configured
                end;
            Node ->
                Node
        end,
    set(name, Name).


generated_name() ->
    Suffix = binary:encode_hex(rand:bytes(6)),
    binary_to_atom(<<"partisan_", Suffix/binary, "@127.0.0.1">>, utf8).



%% =============================================================================
%% PRIVATE: validation
%% =============================================================================



normalize(name, Name) ->
    to_node_name(Name);

normalize(listen_ip, Ip) ->
    to_listen_ip(Ip);

normalize(listen_port, Port) ->
    to_port(Port);

normalize(listen_addrs, Addrs) when is_list(Addrs) ->
    default_listen_addrs(lists:usort([to_listen_addr(A) || A <- Addrs]));

normalize(channels, Channels) ->
    to_channels(Channels);

normalize(forward_options, Opts) ->
    to_map(forward_options, Opts);

normalize(hyparview, Opts) ->
    Renamed = maps:fold(
        fun(Key, Value, Acc) -> Acc#{hyparview_key(Key) => Value} end,
        #{},
        to_map(hyparview, Opts)
    ),
    HV = maps:merge(hyparview_defaults(), Renamed),
    is_valid_hyparview(HV) orelse invalid(hyparview, Opts),
    HV;

normalize(broadcast_mods, Mods) ->
    is_list(Mods) andalso lists:all(fun is_atom/1, Mods)
        orelse invalid(broadcast_mods, Mods),
    Mods;

%% `client' or `server' for the client-server manager; any atom names a
%% HyParView node's kind, for the slots others reserve for it.
normalize(tag, Tag) when is_atom(Tag) ->
    is_wire_tag(Tag) orelse invalid(tag, Tag),
    Tag;

normalize(reservations, Tags) ->
    is_list(Tags) andalso lists:all(fun is_wire_tag/1, Tags)
        orelse invalid(reservations, Tags),
    lists:usort(Tags);

normalize(Key, N)
when (Key == exchange_tick_period orelse Key == lazy_tick_period)
andalso is_integer(N) andalso N >= 1 ->
    N;

normalize(relay_ttl, N) when is_integer(N), N >= 0, N =< 255 ->
    N;

normalize(broadcast_start_exchange_limit, undefined) ->
    undefined;

normalize(broadcast_start_exchange_limit, N) when is_integer(N), N >= 0 ->
    N;

normalize(connection_ping, Opts) ->
    %% A partial map takes the defaults for the keys it lacks.
    Ping = maps:merge(default_connection_ping(), to_map(connection_ping, Opts)),
    is_valid_ping(Ping) orelse invalid(connection_ping, Opts),
    Ping;

normalize(remote_ref_format, Format)
when Format == improper_list; Format == tuple; Format == uri ->
    Format;

normalize(Key, N)
when (Key == parallelism orelse Key == io_threads
    orelse Key == max_frame_size orelse Key == send_queue_limit
    orelse Key == periodic_interval
    orelse Key == connection_interval orelse Key == handshake_limit
    orelse Key == max_members orelse Key == member_name_rate
    orelse Key == retransmit_interval orelse Key == max_unacknowledged) ->
    {Min, Max} = int_range(Key),
    is_integer(N) andalso N >= Min andalso N =< Max orelse invalid(Key, N),
    N;

normalize(Key, Module)
when Key == peer_service_manager; Key == partisan_peer_service_manager ->
    is_atom(Module) andalso Module =/= undefined orelse invalid(Key, Module),
    Module;

normalize(Key, Opts) when Key == tls_client_options; Key == tls_server_options ->
    is_list(Opts) orelse invalid(Key, Opts),
    Opts;

normalize(connection_jitter, N) when is_integer(N), N >= 0 ->
    N;

normalize(peer_atom_budget, auto) ->
    auto;

normalize(peer_atom_budget, N) when is_integer(N), N >= 0 ->
    N;

normalize(refusal_log_interval, N) when is_integer(N), N >= 0 ->
    N;

normalize(io_nice, N) when is_integer(N), N >= -20, N =< 19 ->
    N;

normalize(auth_secret, undefined) ->
    undefined;

normalize(auth_secret, Secret) ->
    Bin = try iolist_to_binary(Secret) catch error:badarg -> invalid(auth_secret, Secret) end,
    byte_size(Bin) > 0 orelse invalid(auth_secret, Secret),
    Bin;

normalize(Key, Flag)
when (Key == channel_fallback orelse Key == connect_disterl
    orelse Key == remote_ref_uri_padding orelse Key == tls
    orelse Key == pid_encoding orelse Key == ref_encoding
    orelse Key == authentication) ->
    is_boolean(Flag) orelse invalid(Key, Flag),
    Flag;

normalize(Key, Value)
when Key == listen_addrs; Key == remote_ref_format; Key == connection_jitter;
     Key == io_nice; Key == tag; Key == peer_atom_budget; Key == refusal_log_interval ->
    invalid(Key, Value);

normalize(_, Value) ->
    Value.


%% Bounds of the integer options: what the engine can honour as given (it
%% never adjusts a value on its own).
int_range(max_frame_size) -> {1024, 4294967279};
int_range(send_queue_limit) -> {65536, 1 bsl 40};
int_range(io_threads) -> {1, 64};
int_range(parallelism) -> {1, 65535};
int_range(handshake_limit) -> {1, 1 bsl 20};
int_range(max_members) -> {1, 1 bsl 24};
int_range(member_name_rate) -> {1, 1 bsl 24};
int_range(_) -> {1, 1 bsl 32}.


is_valid_ping(#{enabled := E, idle_timeout := I, timeout := T, max_attempts := A} = Ping) ->
    is_boolean(E)
        andalso is_integer(I) andalso I > 0
        andalso is_integer(T) andalso T > 0
        andalso is_integer(A) andalso A > 0
        andalso map_size(Ping) =:= 4.


-spec invalid(atom(), term()) -> no_return().

invalid(Key, Value) ->
    erlang:error(badarg, [Key, Value]).


%% A tag travels in overlay messages as at most 255 bytes of UTF-8.
is_wire_tag(Tag) ->
    is_atom(Tag) andalso byte_size(atom_to_binary(Tag, utf8)) =< 255.


to_map(_, Map) when is_map(Map) ->
    Map;

to_map(Key, List) when is_list(List) ->
    try
        maps:from_list(List)
    catch
        error:badarg ->
            invalid(Key, List)
    end;

to_map(Key, Other) ->
    invalid(Key, Other).


to_node_name(Name) when is_atom(Name), Name =/= undefined ->
    Name;

to_node_name(Name) when is_binary(Name) ->
    binary_to_atom(Name, utf8);

to_node_name(Name) when is_list(Name) ->
    try
        list_to_atom(Name)
    catch
        error:badarg ->
            invalid(name, Name)
    end;

to_node_name(Name) ->
    invalid(name, Name).


%% Without a configured IP we listen on the address of the node name's host,
%% as Partisan does.
to_listen_ip(undefined) ->
    host_ip(node_host());

to_listen_ip(Ip) ->
    to_ip(listen_ip, Ip).


to_ip(Key, Ip) when is_tuple(Ip) ->
    is_ip_address(Ip) orelse invalid(Key, Ip),
    Ip;

to_ip(Key, Ip) when is_binary(Ip) ->
    to_ip(Key, binary_to_list(Ip));

to_ip(Key, Ip) when is_list(Ip) ->
    case inet:parse_address(Ip) of
        {ok, Parsed} ->
            Parsed;
        {error, _} ->
            invalid(Key, Ip)
    end;

to_ip(Key, Ip) ->
    invalid(Key, Ip).


is_ip_address({A, B, C, D}) ->
    lists:all(fun(X) -> is_integer(X) andalso X >= 0 andalso X =< 255 end,
              [A, B, C, D]);

is_ip_address({_, _, _, _, _, _, _, _} = Ip) ->
    lists:all(fun(X) -> is_integer(X) andalso X >= 0 andalso X =< 65535 end,
              tuple_to_list(Ip));

is_ip_address(_) ->
    false.


to_port(Port) when is_integer(Port), Port >= 0, Port =< 65535 ->
    Port;

to_port(Port) when is_binary(Port) ->
    to_port(binary_to_list(Port));

to_port(Port) when is_list(Port) ->
    case string:to_integer(Port) of
        {N, []} ->
            to_port(N);
        _ ->
            invalid(listen_port, Port)
    end;

to_port(Port) ->
    invalid(listen_port, Port).


%% Accepted forms: #{ip, port}, {Ip, Port}, "ip:port", <<"ip:port">>,
%% "[v6]:port" and a bare "ip" (port: listen_port).
to_listen_addr(#{ip := Ip, port := Port}) ->
    #{ip => to_ip(listen_addrs, Ip), port => to_port(Port)};

to_listen_addr({Ip, Port}) ->
    to_listen_addr(#{ip => Ip, port => Port});

to_listen_addr(Addr) when is_binary(Addr) ->
    to_listen_addr(binary_to_list(Addr));

to_listen_addr(Addr) when is_list(Addr) ->
    io_lib:printable_list(Addr) orelse invalid(listen_addrs, Addr),
    case inet:parse_address(Addr) of
        {ok, Ip} ->
            #{ip => Ip, port => get(listen_port, 0)};
        {error, _} ->
            to_listen_addr(split_host_port(Addr))
    end;

to_listen_addr(Addr) ->
    invalid(listen_addrs, Addr).


split_host_port(Addr) ->
    case string:split(Addr, ":", trailing) of
        [Host, Port] ->
            {string:trim(Host, both, "[]"), Port};
        _ ->
            invalid(listen_addrs, Addr)
    end.


default_listen_addrs([]) ->
    [#{ip => get(listen_ip), port => get(listen_port, 0)}];

default_listen_addrs(Addrs) ->
    Addrs.


node_host() ->
    case string:split(atom_to_list(get(name)), "@") of
        [_, Host] ->
            Host;
        _ ->
            "127.0.0.1"
    end.


host_ip(Host) ->
    case inet:parse_address(Host) of
        {ok, Ip} ->
            Ip;
        {error, _} ->
            resolve(Host)
    end.


%% A host we cannot resolve (in time) falls back to the loopback address.
resolve(Host) ->
    case inet:gethostbyname(Host, inet, ?RESOLVE_TIMEOUT) of
        {ok, #hostent{h_addr_list = [Ip | _]}} ->
            Ip;
        _ ->
            ?LOCALHOST
    end.



%% =============================================================================
%% PRIVATE: channels
%% =============================================================================



%% Channels are given as a map #{Name => Opts} or as a list of `Name',
%% `{Name, Opts}', `Opts#{name => Name}' or the legacy `{monotonic, Name}'.
%% Missing options take the defaults; the default channel always exists with
%% the default options, and the membership channel exists and is never
%% monotonic.
to_channels(Arg) when is_list(Arg); is_map(Arg) ->
    Defaults = default_channel_opts(),
    Entries = case Arg of
        List when is_list(List) -> List;
        Map -> maps:to_list(Map)
    end,
    Channels = maps:from_list([to_channel(E, Defaults) || E <- Entries]),
    with_membership_channel(Channels#{?DEFAULT_CHANNEL => Defaults});

to_channels(Arg) ->
    invalid(channels, Arg).


%% -----------------------------------------------------------------------------
%% @doc Logs `Message' with `Args' at level `info' in the logger domain
%% `[trace]' when the `tracing' option is `true' (default `false'), as
%% Partisan 5 does; otherwise does nothing. Always returns `ok'.
%% @end
%% -----------------------------------------------------------------------------
-spec trace(term(), term()) -> ok.

trace(Message, Args) ->
    case get(tracing, false) of
        true ->
            logger:info(#{description => "Trace", message => Message, args => Args},
                        #{domain => [trace]});
        _ ->
            ok
    end.


%% -----------------------------------------------------------------------------
%% @doc Seeds the calling process's `rand' with the `random_seed' option, as
%% Partisan 5 does (for reproducible runs), or from the clock when it is not
%% set. Returns the new state.
%% @end
%% -----------------------------------------------------------------------------
-spec seed() -> rand:state().

seed() ->
    %% Accepted as Partisan 5's without being validated at start: read here.
    case application:get_env(partisan, random_seed, undefined) of
        undefined -> rand:seed(exsss);
        Seed -> seed(Seed)
    end.


%% @doc Seeds the calling process's `rand' with `Seed' (an integer or a
%% three-tuple of integers).
-spec seed(integer() | {integer(), integer(), integer()}) -> rand:state().

seed(Seed) when is_integer(Seed); is_tuple(Seed), tuple_size(Seed) =:= 3 ->
    rand:seed(exsss, Seed);

seed(Seed) ->
    erlang:error(badarg, [Seed]).


%% @doc The options a channel has unless it says otherwise.
-spec default_channel_opts() -> channel_opts().

default_channel_opts() ->
    #{parallelism => parallelism(), monotonic => false, compression => false}.


to_channel({monotonic, Name}, Defaults) when is_atom(Name) ->
    to_channel({Name, #{monotonic => true}}, Defaults);

to_channel(Name, Defaults) when is_atom(Name) ->
    to_channel({Name, #{}}, Defaults);

to_channel(#{name := Name} = Opts, Defaults) ->
    to_channel({Name, Opts}, Defaults);

to_channel({Name, Opts}, Defaults) when is_atom(Name), is_list(Opts) ->
    to_channel({Name, to_map(channels, Opts)}, Defaults);

to_channel({Name, Opts}, Defaults) when is_atom(Name), is_map(Opts) ->
    Merged = maps:merge(Defaults, maps:remove(name, Opts)),
    is_valid_channel(Merged) orelse invalid(channels, {Name, Opts}),
    {Name, Merged};

to_channel(Other, _) ->
    invalid(channels, Other).


is_valid_channel(#{parallelism := N, monotonic := M, compression := C}) ->
    is_integer(N) andalso N >= 1 andalso N =< 65535
        andalso is_boolean(M)
        andalso (is_boolean(C) orelse (is_integer(C) andalso C >= 0
                                       andalso C =< 9)).


with_membership_channel(#{?MEMBERSHIP_CHANNEL := Opts} = Channels) ->
    Channels#{?MEMBERSHIP_CHANNEL => Opts#{monotonic => false}};

with_membership_channel(Channels) ->
    Channels#{
        ?MEMBERSHIP_CHANNEL => #{
            parallelism => 1,
            monotonic => false,
            compression => true
        }
    }.
