%% -----------------------------------------------------------------------------
%% @doc `make bench-tls': certificates for the TLS rows, made at run time with
%% OTP's `public_key:pkix_test_data/1' (one CA, one node certificate naming
%% 127.0.0.1, RSA 2048 with SHA-256), and the same options for both
%% transports: Distributed Erlang over `inet_tls_dist' (an optfile) and
%% partisan with `tls => true'. Both authenticate each other's certificates
%% (`verify_peer', `fail_if_no_peer_cert') and skip the host-name check.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_tls).

-include_lib("public_key/include/public_key.hrl").

-export([write_certs/1]).
-export([dist_args/1]).
-export([partisan_env/1]).

-define(KEY, [{key, {rsa, 2048, 65537}}, {digest, sha256}]).


%% @doc Writes `cert.pem', `key.pem', `ca.pem' and `dist.conf' (the
%% `-ssl_dist_optfile') into `Dir'.
-spec write_certs(file:filename()) -> ok.
write_certs(Dir) ->
    Root = public_key:pkix_test_root_cert("partisan bench CA", ?KEY),
    San = #'Extension'{extnID = ?'id-ce-subjectAltName', critical = false,
                       %% inet_tls_dist checks the node's host as a DNS name.
                       extnValue = [{iPAddress, <<127, 0, 0, 1>>}, {dNSName, "127.0.0.1"}]},
    Chain = public_key:pkix_test_data(#{root => Root, intermediates => [],
                                        peer => ?KEY ++ [{extensions, [San]}]}),
    {KeyType, Key} = proplists:get_value(key, Chain),
    Pem = fun(Entries) -> public_key:pem_encode([{T, D, not_encrypted} || {T, D} <- Entries]) end,
    ok = file:write_file(path(Dir, cert), Pem([{'Certificate', proplists:get_value(cert, Chain)}])),
    ok = file:write_file(path(Dir, key), Pem([{KeyType, Key}])),
    ok = file:write_file(path(Dir, ca),
                         Pem([{'Certificate', C} || C <- proplists:get_value(cacerts, Chain)])),
    DistConf = [{server, server_opts(Dir)}, {client, client_opts(Dir)}],
    ok = file:write_file(filename:join(Dir, "dist.conf"), io_lib:format("~p.~n", [DistConf])).


%% @doc Emulator arguments for Distributed Erlang over TLS.
-spec dist_args(file:filename()) -> [string()].
dist_args(Dir) ->
    ["-proto_dist", "inet_tls", "-ssl_dist_optfile", filename:join(Dir, "dist.conf")].


%% @doc The partisan environment for TLS with the same certificates.
-spec partisan_env(file:filename()) -> [{atom(), term()}].
partisan_env(Dir) ->
    [{tls, true}, {tls_client_options, client_opts(Dir)}, {tls_server_options, server_opts(Dir)}].


common(Dir) ->
    [{certfile, path(Dir, cert)}, {keyfile, path(Dir, key)}, {cacertfile, path(Dir, ca)},
     {verify, verify_peer}].

server_opts(Dir) -> common(Dir) ++ [{fail_if_no_peer_cert, true}].

client_opts(Dir) -> common(Dir) ++ [{server_name_indication, disable}].

path(Dir, What) -> filename:join(Dir, atom_to_list(What) ++ ".pem").
