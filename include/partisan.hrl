%% Public macros of the partisan application.
%% Only macros live here: records and types belong to the modules that own
%% them, so that including this file never adds unused definitions to a
%% module.

-ifndef(PARTISAN_HRL).
-define(PARTISAN_HRL, true).

-define(APP, partisan).

%% Channels
-define(DEFAULT_CHANNEL, undefined).
-define(MEMBERSHIP_CHANNEL, partisan_membership).
-define(RPC_CHANNEL, rpc).
-define(PARALLELISM, 1).
-define(DEFAULT_PARTITION_KEY, undefined).

%% Peer service
-define(DEFAULT_PEER_SERVICE_MANAGER, partisan_pluggable_peer_service_manager).
-define(PEER_SERVICE_MANAGER,
    (partisan_config:get(peer_service_manager, ?DEFAULT_PEER_SERVICE_MANAGER))
).
-define(PERIODIC_INTERVAL, 10000).
-define(CONNECTION_INTERVAL, 1000).
-define(CONNECTION_JITTER, 1000).

%% Addresses
-define(LOCALHOST, {127, 0, 0, 1}).

%% Timeouts (same bounds as OTP's receive ... after)
-define(DEFAULT_TIMEOUT, 5000).
-define(MAX_INT_TIMEOUT, 4294967295).
-define(IS_VALID_TMO_INT(T),
    (is_integer(T) andalso 0 =< T andalso T =< ?MAX_INT_TIMEOUT)
).
-define(IS_VALID_TMO(T), (T == infinity orelse ?IS_VALID_TMO_INT(T))).
-define(IS_VALID_TIME(T), (is_integer(T) andalso T >= 0)).
-define(IS_VALID_MFA(M, F, A), (is_atom(M) andalso is_atom(F) andalso is_list(A))).

-endif.
