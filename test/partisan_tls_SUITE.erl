%% -----------------------------------------------------------------------------
%% @doc TLS between real nodes (`tls => true', rustls in the engine), with
%% certificates this suite makes with OTP's `public_key:pkix_test_data/1'
%% (nothing committed): three nodes with certificates from one CA
%% authenticate each other and carry messages, large ones and the
%% membership; a node with a certificate from another CA, one whose
%% certificate has expired, and one without a certificate never join, and the
%% node they tried counts a TLS failure. Options TLS cannot honour stop the
%% application with `{error, {bad_option, _}}'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_tls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("public_key/include/public_key.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([three_nodes_authenticate_each_other_and_talk/1]).
-export([strangers_certificates_are_refused/1]).
-export([the_host_name_check/1]).
-export([options_tls_cannot_honour_are_refused/1]).

-import(partisan_test_nodes, [start/4, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [
        three_nodes_authenticate_each_other_and_talk,
        strangers_certificates_are_refused,
        the_host_name_check,
        options_tls_cannot_honour_are_refused
    ].

init_per_suite(Config) ->
    ok = partisan_ct_support:init_dist(),
    Dir = ?config(priv_dir, Config),
    Ca = root("Partisan test CA"),
    Other = root("Another CA"),
    Loopback = [{extensions, [san_ip({127, 0, 0, 1})]}],
    Files = #{
        good => [issue(Dir, "node" ++ integer_to_list(I), Ca, Loopback) || I <- [1, 2, 3]],
        other => issue(Dir, "other", Other, Loopback),
        expired => issue(Dir, "expired", Ca, [validity({-30, -2}) | Loopback]),
        no_san => issue(Dir, "nosan", Ca, []),
        self_signed => issue(Dir, "selfsigned", root("Nobody"), Loopback)
    },
    [{files, Files} | Config].

end_per_suite(_Config) ->
    ok.


%% =============================================================================
%% CASES
%% =============================================================================


three_nodes_authenticate_each_other_and_talk(Config) ->
    #{good := Good} = ?config(files, Config),
    [A, B, C] = Nodes = [node_with(F, []) || F <- Good],
    try
        SpecA = call(A, partisan, node_spec, []),
        ok = call(B, ?AGENT, join, [SpecA]),
        ok = call(C, ?AGENT, join, [SpecA]),
        Names = lists:sort([name(N) || N <- Nodes]),
        [
            {ok, _} = call(N, ?AGENT, wait_up, [name(M), 20000])
         || N <- Nodes, M <- Nodes, N =/= M
        ],
        [?assertEqual({ok, Names}, call(N, partisan_peer_service, members, [])) || N <- Nodes],
        ?assertEqual({echoed, hello}, call(A, ?AGENT, ask_echo, [name(C), echo, hello])),
        ?assertMatch({true, _}, call(B, ?AGENT, round_trip, [name(A), echo])),
        ?assertMatch({true, _}, call(C, ?AGENT, round_trip_large, [name(B), echo])),
        %% 8 MiB through one TLS connection, against the echo and back.
        Big = crypto:strong_rand_bytes(8 bsl 20),
        ?assertEqual({echoed, Big}, call(A, ?AGENT, ask_echo, [name(B), echo, Big])),
        [?assertMatch(#{tls_failures := 0}, call(N, ?AGENT, stats, [])) || N <- Nodes]
    after
        lists:foreach(fun partisan_test_nodes:stop/1, Nodes)
    end.


strangers_certificates_are_refused(Config) ->
    #{good := [Good | _], other := Other, expired := Expired, self_signed := SelfSigned} =
        ?config(files, Config),
    A = node_with(Good, []),
    %% Certificates the CA did not issue, or that are no longer valid.
    Strangers = [node_with(F, []) || F <- [Other, Expired]],
    %% A node that presents no certificate as a client (and a self-signed one
    %% as a server, so that it can start at all).
    NoCert = node_with(SelfSigned, [{client, fun(Opts) -> Opts -- client_cert(SelfSigned) end}]),
    try
        SpecA = call(A, partisan, node_spec, []),
        [ok = call(S, ?AGENT, join, [SpecA]) || S <- [NoCert | Strangers]],
        %% And the other way round: A dials them and refuses what they show.
        [ok = call(A, ?AGENT, join, [call(S, partisan, node_spec, [])]) || S <- Strangers],
        [?assertEqual(timeout, call(A, ?AGENT, wait_up, [name(S), 3000])) || S <- [NoCert | Strangers]],
        ?assertEqual({ok, [name(A)]}, call(A, partisan_peer_service, members, [])),
        #{tls_failures := Failed} = call(A, ?AGENT, stats, []),
        %% At least one refusal per stranger dialing A, and per stranger A dialed.
        ?assert(Failed >= 5, Failed),
        [?assertMatch(#{tls_failures := N} when N > 0, call(S, ?AGENT, stats, [])) || S <- Strangers]
    after
        lists:foreach(fun partisan_test_nodes:stop/1, [A, NoCert | Strangers])
    end.


%% By default the dialer checks that the acceptor's certificate names the
%% address it dialed (127.0.0.1 here); `server_name_indication => disable'
%% turns that check off, the chain is still checked.
the_host_name_check(Config) ->
    #{good := [Good | _], no_san := NoSan} = ?config(files, Config),
    Unnamed = node_with(NoSan, []),
    Checking = node_with(Good, []),
    Lenient = node_with(Good, [{client, fun(O) -> [{server_name_indication, disable} | O] end}]),
    try
        Spec = call(Unnamed, partisan, node_spec, []),
        ok = call(Checking, ?AGENT, join, [Spec]),
        ?assertEqual(timeout, call(Checking, ?AGENT, wait_up, [name(Unnamed), 3000])),
        ok = call(Lenient, ?AGENT, join, [Spec]),
        {ok, _} = call(Lenient, ?AGENT, wait_up, [name(Unnamed), 20000]),
        ?assertEqual({echoed, named}, call(Lenient, ?AGENT, ask_echo, [name(Unnamed), echo, named]))
    after
        lists:foreach(fun partisan_test_nodes:stop/1, [Unnamed, Checking, Lenient])
    end.


options_tls_cannot_honour_are_refused(Config) ->
    #{good := [Good | _]} = ?config(files, Config),
    Base = client_opts(Good),
    Refused = [
        {ciphers, ["AES128-SHA"]},
        {versions, ['tlsv1.1']},
        {verify_fun, {fun(_, S, U) -> {S, U} end, []}},
        {depth, -1},
        {certfile, 42}
    ],
    [
        ?assertEqual(
            {error, {bad_option, Opt}},
            partisan_tls:engine_options([Opt | Base], server_opts(Good))
        )
     || Opt <- Refused
    ],
    %% fail_if_no_peer_cert is a server option, server_name_indication a client's.
    ?assertEqual(
        {error, {bad_option, {fail_if_no_peer_cert, true}}},
        partisan_tls:engine_options([{fail_if_no_peer_cert, true} | Base], server_opts(Good))
    ),
    ?assertMatch({error, {tls, {certfile, "/no/such/file.pem", enoent}}},
        partisan_tls:engine_options(Base, [{certfile, "/no/such/file.pem"}])),
    ?assertMatch({ok, #{client := #{verify_peer := true}, server := #{fail_if_no_peer_cert := true}}},
        partisan_tls:engine_options(Base, server_opts(Good))),
    %% A node given such an option does not start partisan.
    {ok, Peer, _} = peer:start(#{connection => standard_io, args => code_path()}),
    try
        Env = [{tls, true}, {tls_client_options, [{ciphers, ["RC4"]} | Base]},
               {tls_server_options, server_opts(Good)}],
        ok = peer:call(Peer, application, load, [partisan]),
        [ok = peer:call(Peer, application, set_env, [partisan, K, V]) || {K, V} <- Env],
        ?assertMatch(
            {error, {partisan, {{bad_option, {ciphers, ["RC4"]}}, _}}},
            peer:call(Peer, application, ensure_all_started, [partisan])
        )
    after
        peer:stop(Peer)
    end.


%% =============================================================================
%% CERTIFICATES
%% =============================================================================


%% RSA with SHA-256: webpki takes neither SHA-1 (OTP's default digest) nor the
%% curve parameters OTP writes into ECDSA signature algorithms.
-define(KEY, [{key, {rsa, 2048, 65537}}, {digest, sha256}]).

root(Name) ->
    public_key:pkix_test_root_cert(Name, ?KEY).


%% A certificate for a node, signed by `Root', written as PEM files: returns
%% their paths and the CA file.
issue(Dir, Name, Root, PeerOpts) ->
    Chain = public_key:pkix_test_data(#{
        root => Root,
        intermediates => [],
        peer => ?KEY ++ PeerOpts
    }),
    Cert = proplists:get_value(cert, Chain),
    {KeyType, KeyDer} = proplists:get_value(key, Chain),
    CaCerts = proplists:get_value(cacerts, Chain),
    Path = fun(Suffix) -> filename:join(Dir, Name ++ Suffix) end,
    ok = file:write_file(Path("_cert.pem"), public_key:pem_encode([{'Certificate', Cert, not_encrypted}])),
    ok = file:write_file(Path("_key.pem"), public_key:pem_encode([{KeyType, KeyDer, not_encrypted}])),
    ok = file:write_file(
        Path("_ca.pem"),
        public_key:pem_encode([{'Certificate', C, not_encrypted} || C <- CaCerts])
    ),
    #{certfile => Path("_cert.pem"), keyfile => Path("_key.pem"), cacertfile => Path("_ca.pem")}.


san_ip(Ip) ->
    #'Extension'{
        extnID = ?'id-ce-subjectAltName',
        critical = false,
        extnValue = [{iPAddress, list_to_binary(tuple_to_list(Ip))}]
    }.


%% Valid from `From' to `To' days from today.
validity({From, To}) ->
    Today = calendar:date_to_gregorian_days(date()),
    {validity, {calendar:gregorian_days_to_date(Today + From), calendar:gregorian_days_to_date(Today + To)}}.


client_cert(#{certfile := C, keyfile := K}) ->
    [{certfile, C}, {keyfile, K}].


client_opts(#{cacertfile := Ca} = Files) ->
    client_cert(Files) ++ [{cacertfile, Ca}, {verify, verify_peer}].


server_opts(#{cacertfile := Ca} = Files) ->
    client_cert(Files) ++ [{cacertfile, Ca}, {verify, verify_peer}, {fail_if_no_peer_cert, true}].


%% A node with TLS on, its options from `Files', edited by the funs in `Edits'.
node_with(Files, Edits) ->
    Edit = fun(Side, Opts) -> (proplists:get_value(Side, Edits, fun(O) -> O end))(Opts) end,
    start(stdio, "tls", #{
        tls => true,
        tls_client_options => Edit(client, client_opts(Files)),
        tls_server_options => Edit(server, server_opts(Files))
    }, []).


code_path() ->
    lists:append([["-pa", D] || D <- code:get_path(), filelib:is_dir(D)]).
