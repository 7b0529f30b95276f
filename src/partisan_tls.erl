%% -----------------------------------------------------------------------------
%% @doc TLS options: Partisan's `tls', `tls_client_options' and
%% `tls_server_options' (OTP `ssl' option names) checked and turned into what
%% the engine's rustls configuration takes.
%%
%% Files are read and keys decrypted here, with OTP's `public_key', so the
%% engine gets DER only. Options that have no rustls meaning are refused with
%% `{error, {bad_option, Option}}' instead of being ignored: a TLS setting that
%% silently does nothing is worse than none. The accepted options:
%%
%% <ul>
%% <li>`certfile' or `cert' (DER, or a list of DER, leaf first): own chain;</li>
%% <li>`keyfile' (else the key in `certfile') or `key' (`{Type, DER}'), and
%% `password' (a string or a fun returning one) for an encrypted key;</li>
%% <li>`cacertfile' or `cacerts': the trusted CAs;</li>
%% <li>`verify': `verify_peer' (the default: a peer's certificate must chain to
%% the CAs and be valid now) or `verify_none' (unsafe);</li>
%% <li>`fail_if_no_peer_cert' (server side; default `true' with
%% `verify_peer', so members authenticate each other);</li>
%% <li>`server_name_indication' (client side): `disable' (check the chain,
%% not the name), or the host name the server's certificate must name; by
%% default the certificate must name the address dialed, as `ssl:connect/3'
%% checks the host it is given;</li>
%% <li>`versions': a list of `` 'tlsv1.2' '' and `` 'tlsv1.3' '';</li>
%% <li>`depth': most intermediate CAs in a peer's chain (default 10);</li>
%% <li>`secure_renegotiate' `true' and `reuse_sessions' (rustls never
%% renegotiates, and resumes sessions itself).</li>
%% </ul>
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_tls).

-include_lib("public_key/include/public_key.hrl").

-export([engine_options/0]).
-export([engine_options/2]).

-type side() :: client | server.
-type engine_side() :: #{
    certs := [binary()],
    key => {pkcs1 | sec1 | pkcs8, binary()},
    cacerts := [binary()],
    verify_peer := boolean(),
    fail_if_no_peer_cert := boolean(),
    server_name_indication := dialed | disable | string(),
    versions := ['tlsv1.2' | 'tlsv1.3'],
    depth := non_neg_integer()
}.
-type reason() :: {bad_option, term()} | {tls, term()}.

-export_type([engine_side/0]).


%% =============================================================================
%% API
%% =============================================================================


%% -----------------------------------------------------------------------------
%% @doc The engine's `tls' setting from the `partisan' environment:
%% `{ok, undefined}' when `tls' is off.
%% @end
%% -----------------------------------------------------------------------------
-spec engine_options() ->
    {ok, undefined | #{client := engine_side(), server := engine_side()}}
    | {error, reason()}.

engine_options() ->
    case partisan_config:get(tls, false) of
        false ->
            {ok, undefined};
        true ->
            engine_options(
                partisan_config:get(tls_client_options, []),
                partisan_config:get(tls_server_options, [])
            )
    end.


%% -----------------------------------------------------------------------------
%% @doc Checks and reads both sides' `ssl' options.
%% @end
%% -----------------------------------------------------------------------------
-spec engine_options(ClientOpts :: list(), ServerOpts :: list()) ->
    {ok, #{client := engine_side(), server := engine_side()}} | {error, reason()}.

engine_options(ClientOpts, ServerOpts) ->
    try
        {ok, #{client => side(client, ClientOpts), server => side(server, ServerOpts)}}
    catch
        throw:{partisan_tls, Reason} -> {error, Reason}
    end.



%% =============================================================================
%% PRIVATE
%% =============================================================================


-spec side(side(), list()) -> engine_side().

side(Side, Opts) when is_list(Opts) ->
    Map = lists:foldl(fun(Opt, Acc) -> check(Side, Opt, Acc) end, #{}, Opts),
    Verify = maps:get(verify, Map, verify_peer) =:= verify_peer,
    Certs = certs(Map),
    CaCerts = cacerts(Map),
    Verify andalso CaCerts =:= [] andalso fail({tls, {Side, verify_peer_needs_cacerts}}),
    Side =:= server andalso Certs =:= [] andalso fail({tls, {server, no_certificate}}),
    Base = #{
        certs => Certs,
        cacerts => CaCerts,
        verify_peer => Verify,
        fail_if_no_peer_cert => maps:get(fail_if_no_peer_cert, Map, Verify),
        server_name_indication => maps:get(server_name_indication, Map, dialed),
        versions => maps:get(versions, Map, []),
        depth => maps:get(depth, Map, 10)
    },
    case key(Map) of
        undefined -> Base;
        Key -> Base#{key => Key}
    end;

side(Side, Opts) ->
    fail({bad_option, {tls_options(Side), Opts}}).


tls_options(client) -> tls_client_options;
tls_options(server) -> tls_server_options.


%% Each option once checked for its type; file names are read later.
check(_, {K, File} = Opt, Acc)
when K == certfile; K == keyfile; K == cacertfile ->
    io_lib:char_list(File) orelse is_binary(File) orelse fail({bad_option, Opt}),
    Acc#{K => File};

check(_, {cert, Der} = Opt, Acc) ->
    Ders = case Der of
        D when is_binary(D) -> [D];
        L when is_list(L) -> L;
        _ -> fail({bad_option, Opt})
    end,
    lists:all(fun is_binary/1, Ders) orelse fail({bad_option, Opt}),
    Acc#{cert => Ders};

check(_, {cacerts, Ders} = Opt, Acc) ->
    is_list(Ders) andalso lists:all(fun is_binary/1, Ders) orelse fail({bad_option, Opt}),
    Acc#{cacerts => Ders};

check(_, {key, {Type, Der}} = Opt, Acc) when is_binary(Der) ->
    Kind = key_kind(Type),
    Kind =/= undefined orelse fail({bad_option, Opt}),
    Acc#{key => {Kind, Der}};

check(_, {password, P} = Opt, Acc) ->
    (io_lib:char_list(P) orelse is_function(P, 0)) orelse fail({bad_option, Opt}),
    Acc#{password => P};

check(_, {verify, V} = Opt, Acc) ->
    (V == verify_peer orelse V == verify_none) orelse fail({bad_option, Opt}),
    Acc#{verify => V};

check(server, {fail_if_no_peer_cert, B} = Opt, Acc) ->
    is_boolean(B) orelse fail({bad_option, Opt}),
    Acc#{fail_if_no_peer_cert => B};

check(client, {server_name_indication, disable}, Acc) ->
    Acc#{server_name_indication => disable};

check(client, {server_name_indication, Host} = Opt, Acc) ->
    io_lib:printable_latin1_list(Host) andalso Host =/= [] orelse fail({bad_option, Opt}),
    Acc#{server_name_indication => Host};

check(_, {versions, Vs} = Opt, Acc) ->
    is_list(Vs) andalso Vs =/= []
        andalso lists:all(fun(V) -> V == 'tlsv1.2' orelse V == 'tlsv1.3' end, Vs)
        orelse fail({bad_option, Opt}),
    Acc#{versions => Vs};

check(_, {depth, D} = Opt, Acc) ->
    is_integer(D) andalso D >= 0 andalso D =< 64 orelse fail({bad_option, Opt}),
    Acc#{depth => D};

check(_, {secure_renegotiate, true}, Acc) ->
    Acc;

check(_, {reuse_sessions, B}, Acc) when is_boolean(B) ->
    Acc;

check(_, Opt, _) ->
    fail({bad_option, Opt}).


certs(#{cert := Ders}) ->
    Ders;

certs(#{certfile := File}) ->
    [Der || {'Certificate', Der, not_encrypted} <- pem(certfile, File)];

certs(_) ->
    [].


cacerts(#{cacerts := Ders}) ->
    Ders;

cacerts(#{cacertfile := File}) ->
    [Der || {'Certificate', Der, not_encrypted} <- pem(cacertfile, File)];

cacerts(_) ->
    [].


%% The key: given, else the first one in `keyfile', else in `certfile' (as
%% OTP looks for it).
key(#{key := Key}) ->
    Key;

key(Map) ->
    File = maps:get(keyfile, Map, maps:get(certfile, Map, undefined)),
    Entries = case File of
        undefined -> [];
        _ -> [E || {T, _, _} = E <- pem(keyfile, File), key_kind(T) =/= undefined]
    end,
    case Entries of
        [] -> undefined;
        [Entry | _] -> decode_key(Entry, Map)
    end.


decode_key({Type, Der, not_encrypted}, _) ->
    {key_kind(Type), Der};

decode_key(Entry, Map) ->
    Password = case maps:get(password, Map, undefined) of
        undefined -> fail({tls, {keyfile, encrypted_key_needs_password}});
        F when is_function(F, 0) -> F();
        P -> P
    end,
    Key = try
        public_key:pem_entry_decode(Entry, Password)
    catch
        _:_ -> fail({tls, {keyfile, cannot_decrypt_key}})
    end,
    case Key of
        #'RSAPrivateKey'{} -> {pkcs1, public_key:der_encode('RSAPrivateKey', Key)};
        #'ECPrivateKey'{} -> {sec1, public_key:der_encode('ECPrivateKey', Key)};
        _ -> fail({tls, {keyfile, unsupported_key_type}})
    end.


key_kind('RSAPrivateKey') -> pkcs1;
key_kind('ECPrivateKey') -> sec1;
key_kind('PrivateKeyInfo') -> pkcs8;
key_kind(_) -> undefined.


pem(Option, File) ->
    case file:read_file(File) of
        {ok, Bin} ->
            try
                public_key:pem_decode(Bin)
            catch
                _:_ -> fail({tls, {Option, File, not_pem}})
            end;
        {error, Reason} ->
            fail({tls, {Option, File, Reason}})
    end.


-spec fail(reason()) -> no_return().

fail(Reason) ->
    throw({partisan_tls, Reason}).
