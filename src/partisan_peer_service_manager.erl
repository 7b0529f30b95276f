%% -----------------------------------------------------------------------------
%% @doc The behaviour of a peer service manager: the module, named by the
%% option `peer_service_manager', that maintains the membership and the
%% connections, and to which {@link partisan_peer_service} dispatches.
%%
%% It also defines the types shared by the message passing functions.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_peer_service_manager).

-type server_ref() :: partisan:any_pid()
                    | partisan:any_name()
                    | partisan_remote_ref:encoded_pid()
                    | partisan_remote_ref:encoded_name()
                    | {RegName :: atom(), node()}
                    | {global, term()}
                    | {via, module(), term()}.

-type forward_opts() :: #{
                            ack => boolean(),
                            channel => partisan:channel(),
                            channel_fallback => boolean(),
                            partition_key => non_neg_integer(),
                            atom() => term()
                        }
                      | [
                            {ack, boolean()}
                          | {channel, partisan:channel()}
                          | {channel_fallback, boolean()}
                          | {partition_key, non_neg_integer()}
                          | {atom(), term()}
                        ].

-type on_event_fun() :: fun(() -> any())
                      | fun((node()) -> any())
                      | fun((node(), partisan:channel()) -> any()).

%% A node, a node specification, or any node ('_' or any).
-type node_selector() :: node() | partisan:node_spec() | '_' | any.

-export_type([forward_opts/0]).
-export_type([node_selector/0]).
-export_type([on_event_fun/0]).
-export_type([server_ref/0]).

-export([mynode/0]).
-export([myself/0]).


-callback start_link() -> {ok, pid()} | ignore | {error, term()}.

-callback join(partisan:node_spec()) -> ok | {error, term()}.

-callback sync_join(partisan:node_spec()) -> ok | {error, term()}.

-callback leave() -> ok.

-callback leave(partisan:node_spec() | node()) -> ok.

-callback members() -> {ok, [node()]}.

-callback member(node() | partisan:node_spec()) -> boolean().

-callback members_for_orchestration() -> [partisan:node_spec()].

-callback update_members([partisan:node_spec()]) ->
    ok | {error, not_implemented}.

-callback get_local_state() -> term().

-callback on_up(node_selector(), on_event_fun()) ->
    ok | {error, not_implemented}.

-callback on_up(
    node_selector(), on_event_fun(), #{channel => partisan:channel()}) ->
    ok | {error, not_implemented}.

-callback on_down(node_selector(), on_event_fun()) ->
    ok | {error, not_implemented}.

-callback on_down(
    node_selector(), on_event_fun(), #{channel => partisan:channel()}) ->
    ok | {error, not_implemented}.

-callback forward_message(server_ref(), partisan:message()) ->
    partisan:forward_result().

-callback forward_message(server_ref(), partisan:message(), forward_opts()) ->
    partisan:forward_result().

-callback forward_message(
    node(), server_ref(), partisan:message(), forward_opts()) ->
    partisan:forward_result().

-callback cast_message(server_ref(), partisan:message()) -> ok.

-callback cast_message(server_ref(), partisan:message(), forward_opts()) -> ok.

-callback cast_message(
    node(), server_ref(), partisan:message(), forward_opts()) -> ok.

-callback supports_capability(Capability :: atom()) -> boolean().

-optional_callbacks([on_up/3, on_down/3, supports_capability/1]).



%% @doc This node's name (Partisan 3 and 4's name for `partisan:node/0',
%% kept by Partisan 5 for old code).
-spec mynode() -> node().

mynode() ->
    partisan:node().


%% @doc This node's specification (Partisan 3 and 4's name for
%% `partisan:node_spec/0').
-spec myself() -> partisan:node_spec().

myself() ->
    partisan:node_spec().
