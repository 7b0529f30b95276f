%% -----------------------------------------------------------------------------
%% @doc Membership updates for whoever asks: an OTP event manager, registered
%% under this module's name, to which the peer service manager reports every
%% change of the member list, as Partisan 5 does.
%%
%% A callback is a fun of one argument, called with the members'
%% specifications (this node's included) each time the list changes. It runs
%% in the event manager, one update after the other, in the order of the
%% changes; one that raises is removed. A callback added with
%% {@link add_sup_callback/1} is removed when the process that added it exits
%% (`gen_event:add_sup_handler/3').
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_peer_service_events).

-behaviour(gen_event).

-export([start_link/0]).
-export([add_handler/2]).
-export([add_sup_handler/2]).
-export([add_callback/1]).
-export([add_sup_callback/1]).
-export([update/1]).

-export([init/1]).
-export([handle_event/2]).
-export([handle_call/2]).
-export([handle_info/2]).

-type callback() :: fun(([partisan:node_spec()]) -> any()).

-export_type([callback/0]).



%% =============================================================================
%% API
%% =============================================================================



%% @private
-spec start_link() -> {ok, pid()} | {error, term()}.

start_link() ->
    gen_event:start_link({local, ?MODULE}).


%% @doc Adds the `gen_event' handler `Handler' (it gets `{update, Members}').
-spec add_handler(module() | {module(), term()}, term()) -> ok | {error, term()}.

add_handler(Handler, Args) ->
    gen_event:add_handler(?MODULE, Handler, Args).


%% @doc Like {@link add_handler/2}, tied to the calling process.
-spec add_sup_handler(module() | {module(), term()}, term()) -> ok | {error, term()}.

add_sup_handler(Handler, Args) ->
    gen_event:add_sup_handler(?MODULE, Handler, Args).


%% @doc Calls `Fun(Members)' on every change of the membership.
-spec add_callback(callback()) -> ok | {error, term()}.

add_callback(Fun) when is_function(Fun, 1) ->
    gen_event:add_handler(?MODULE, {?MODULE, make_ref()}, Fun).


%% @doc Like {@link add_callback/1}, until the calling process exits.
-spec add_sup_callback(callback()) -> ok | {error, term()}.

add_sup_callback(Fun) when is_function(Fun, 1) ->
    gen_event:add_sup_handler(?MODULE, {?MODULE, make_ref()}, Fun).


%% @doc Reports the members `Members' to every handler. It does not wait for
%% them: the peer service manager is never held up by a slow callback.
-spec update([partisan:node_spec()]) -> ok.

update(Members) ->
    gen_event:notify(?MODULE, {update, Members}).



%% =============================================================================
%% GEN_EVENT (the handler of a callback)
%% =============================================================================



%% @private
init(Fun) ->
    {ok, Fun}.


%% @private
handle_event({update, Members}, Fun) ->
    _ = Fun(Members),
    {ok, Fun};

handle_event(_, Fun) ->
    {ok, Fun}.


%% @private
handle_call(_, Fun) ->
    {ok, {error, unknown_call}, Fun}.


%% @private
handle_info(_, Fun) ->
    {ok, Fun}.
