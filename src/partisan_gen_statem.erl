%% -----------------------------------------------------------------------------
%% @doc `gen_statem' across nodes over partisan, with Partisan 5's API.
%%
%% State machines are OTP's own `gen_statem' processes: `start/3,4',
%% `start_link/3,4', `start_monitor/3,4' and `enter_loop/4,5,6' start them as
%% `gen_statem' does, so a callback module written for `gen_statem' (both
%% callback modes, state enter calls, state, event and generic timeouts,
%% postponing, `sys') runs unchanged. What this module adds is reaching them
%% from other nodes through partisan: `call', `cast', `send_request' and
%% `stop' take a local pid or name, `{Name, Node}', a pid of another node (as
%% it arrived in a message) or a remote reference. Calls to another node go
%% through the nodes' relays ({@link partisan_gen_relay}), which serve
%% `gen_statem' as they serve `gen_server' (both take `$gen_call'); every
%% timeout of a remote call is clean: the caller exits with `{timeout,
%% {partisan_gen_statem, call, Args}}' and no late reply reaches its mailbox.
%% A dead machine gives `noproc', a lost node `{nodedown, Node}'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen_statem).

-export([start/3, start/4]).
-export([start_link/3, start_link/4]).
-export([start_monitor/3, start_monitor/4]).
-export([stop/1, stop/3]).
-export([call/2, call/3]).
-export([cast/2, cast/3]).
-export([reply/1, reply/2]).
-export([send_request/2, send_request/3]).
-export([wait_response/1, wait_response/2]).
-export([receive_response/1, receive_response/2]).
-export([check_response/2]).
-export([enter_loop/4, enter_loop/5, enter_loop/6]).

-type server_ref() :: gen_statem:server_ref() | partisan_remote_ref:p()
                    | partisan_remote_ref:n().
%% A request of send_request/2: local (OTP's own) or through the relay.
-opaque request_id() :: {local, gen_statem:request_id()}
                      | {remote, gen_server:request_id(), server_ref()}.
%% `gen_statem''s call timeouts, or Partisan's options: `timeout' and `channel'.
-type call_opts() :: timeout() | {clean_timeout, timeout()} | {dirty_timeout, timeout()}
                   | [{timeout, timeout()} | {channel, atom()} | {channel_fallback, boolean()}].

-export_type([server_ref/0, request_id/0, call_opts/0]).

%% `gen_statem''s types under our name, so that specs written against Partisan
%% 5's module keep their meaning.
-type event_type() :: gen_statem:event_type().
-type from() :: gen_statem:from().
-type callback_mode_result() :: gen_statem:callback_mode_result().
-type init_result(State) :: gen_statem:init_result(State).
-type init_result(State, Data) :: gen_statem:init_result(State, Data).
-type state_enter_result(State) :: gen_statem:state_enter_result(State).
-type state_enter_result(State, Data) :: gen_statem:state_enter_result(State, Data).
-type event_handler_result(State) :: gen_statem:event_handler_result(State).
-type event_handler_result(State, Data) :: gen_statem:event_handler_result(State, Data).
-type state_function_result() :: gen_statem:state_function_result().
-type handle_event_result() :: gen_statem:handle_event_result().
-type reply_action() :: gen_statem:reply_action().
-type enter_action() :: gen_statem:enter_action().
-type action() :: gen_statem:action().
-type transition_option() :: gen_statem:transition_option().
-type server_name() :: gen_statem:server_name().
-type start_opt() :: gen_statem:start_opt().
-type start_ret() :: gen_statem:start_ret().
-type enter_loop_opt() :: gen_statem:enter_loop_opt().

-export_type([event_type/0, from/0, callback_mode_result/0,
              init_result/1, init_result/2,
              state_enter_result/1, state_enter_result/2,
              event_handler_result/1, event_handler_result/2,
              state_function_result/0, handle_event_result/0,
              reply_action/0, enter_action/0, action/0, transition_option/0,
              server_name/0, start_opt/0, start_ret/0, enter_loop_opt/0]).

%% The callbacks are `gen_statem''s (machines run on it unchanged), declared
%% here so that a module with `-behaviour(partisan_gen_statem)' is checked
%% against them, as Partisan 5's are.
-callback init(Args :: term()) -> init_result(term()).
-callback callback_mode() -> callback_mode_result().
-callback state_name(event_type(), EventContent :: term(), Data :: term()) ->
    state_enter_result(state_name) | event_handler_result(atom()).
-callback handle_event(event_type() | enter, EventContent :: term(),
                       State :: term(), Data :: term()) ->
    state_enter_result(term()) | event_handler_result(term()).
-callback terminate(Reason :: normal | shutdown | {shutdown, term()} | term(),
                    State :: term(), Data :: term()) -> term().
-callback code_change(OldVsn :: term() | {down, term()}, OldState :: term(),
                      OldData :: term(), Extra :: term()) ->
    {ok, NewState :: term(), NewData :: term()} | (Reason :: term()).
-callback format_status(Opt :: normal | terminate,
                        StatusData :: [term()]) -> Status :: term().
-callback format_status(Status :: map()) -> NewStatus :: map().

-optional_callbacks([state_name/3, handle_event/4, terminate/3, code_change/4,
                     format_status/1, format_status/2]).



%% =============================================================================
%% STARTING AND STOPPING
%% =============================================================================



%% @doc As `gen_statem:start/3'.
-spec start(module(), term(), [gen_statem:start_opt()]) -> gen_statem:start_ret().
start(Mod, Args, Opts) -> gen_statem:start(Mod, Args, Opts).

%% @doc As `gen_statem:start/4'.
-spec start(gen_statem:server_name(), module(), term(), [gen_statem:start_opt()]) ->
    gen_statem:start_ret().
start(Name, Mod, Args, Opts) -> gen_statem:start(Name, Mod, Args, Opts).

%% @doc As `gen_statem:start_link/3'.
-spec start_link(module(), term(), [gen_statem:start_opt()]) -> gen_statem:start_ret().
start_link(Mod, Args, Opts) -> gen_statem:start_link(Mod, Args, Opts).

%% @doc As `gen_statem:start_link/4'.
-spec start_link(gen_statem:server_name(), module(), term(), [gen_statem:start_opt()]) ->
    gen_statem:start_ret().
start_link(Name, Mod, Args, Opts) -> gen_statem:start_link(Name, Mod, Args, Opts).

%% @doc As `gen_statem:start_monitor/3'.
-spec start_monitor(module(), term(), [gen_statem:start_opt()]) -> gen_statem:start_mon_ret().
start_monitor(Mod, Args, Opts) -> gen_statem:start_monitor(Mod, Args, Opts).

%% @doc As `gen_statem:start_monitor/4'.
-spec start_monitor(gen_statem:server_name(), module(), term(), [gen_statem:start_opt()]) ->
    gen_statem:start_mon_ret().
start_monitor(Name, Mod, Args, Opts) -> gen_statem:start_monitor(Name, Mod, Args, Opts).

%% @doc As `gen_statem:enter_loop/4'.
-spec enter_loop(module(), [gen_statem:enter_loop_opt()], term(), term()) -> no_return().
enter_loop(Mod, Opts, State, Data) -> gen_statem:enter_loop(Mod, Opts, State, Data).

%% @doc As `gen_statem:enter_loop/5'.
-spec enter_loop(module(), [gen_statem:enter_loop_opt()], term(), term(),
                 gen_statem:server_name() | pid() | [gen_statem:action()] | gen_statem:action()) ->
    no_return().
enter_loop(Mod, Opts, State, Data, ServerOrActions) ->
    gen_statem:enter_loop(Mod, Opts, State, Data, ServerOrActions).

%% @doc As `gen_statem:enter_loop/6'.
-spec enter_loop(module(), [gen_statem:enter_loop_opt()], term(), term(),
                 gen_statem:server_name() | pid(), [gen_statem:action()] | gen_statem:action()) ->
    no_return().
enter_loop(Mod, Opts, State, Data, Server, Actions) ->
    gen_statem:enter_loop(Mod, Opts, State, Data, Server, Actions).


%% @doc Same as `stop(ServerRef, normal, infinity)'.
-spec stop(server_ref()) -> ok.

stop(ServerRef) ->
    stop(ServerRef, normal, infinity).


%% -----------------------------------------------------------------------------
%% @doc Stops the state machine as `gen_statem:stop/3' does, on whichever node
%% it is. Exits with `noproc' if there is no such machine, `{nodedown, Node}'
%% if its node is not connected.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(server_ref(), term(), timeout()) -> ok.

stop(ServerRef, Reason, Timeout) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            gen_statem:stop(Local, Reason, Timeout);
        {remote, Node, Remote} ->
            case partisan_gen:remote_stop(Node, Remote, Reason, Timeout) of
                ok -> ok;
                {exit, Why} -> exit(Why)
            end
    end.



%% =============================================================================
%% CALLS AND CASTS
%% =============================================================================



%% @doc Same as `call(ServerRef, Request, infinity)', as in `gen_statem'.
-spec call(server_ref(), term()) -> term().

call(ServerRef, Request) ->
    call(ServerRef, Request, infinity).


%% -----------------------------------------------------------------------------
%% @doc Calls the state machine and waits for its reply, as `gen_statem:call/3'
%% does; the third argument is a timeout, `{clean_timeout, T}',
%% `{dirty_timeout, T}', or Partisan's option list (`timeout', `channel',
%% `channel_fallback'). Exits with `{Reason, {partisan_gen_statem, call,
%% [ServerRef, Request, Opts]}}': `timeout', `noproc', the machine's exit
%% reason, or `{nodedown, Node}'.
%% @end
%% -----------------------------------------------------------------------------
-spec call(server_ref(), term(), call_opts()) -> term().

call(ServerRef, Request, Opts) ->
    {Timeout, Forward} = call_opts(Opts),
    Args = [ServerRef, Request, Opts],
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            try
                gen_statem:call(Local, Request, local_timeout(Opts, Timeout))
            catch
                exit:{Reason, {gen_statem, call, _}} -> exit({Reason, {?MODULE, call, Args}})
            end;
        {remote, Node, Remote} ->
            case partisan_gen:remote_call(Node, Remote, Request, Timeout, Forward) of
                {reply, Reply} -> Reply;
                {exit, Why} -> exit({Why, {?MODULE, call, Args}})
            end
    end.


%% @doc Sends `{'$gen_cast', Msg}' to the state machine; always `ok'.
-spec cast(server_ref(), term()) -> ok.

cast(ServerRef, Msg) ->
    cast(ServerRef, Msg, []).


%% @doc Like {@link cast/2} with Partisan's forwarding options (`channel').
-spec cast(server_ref(), term(), list() | map()) -> ok.

cast(ServerRef, Msg, Opts) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} -> gen_statem:cast(Local, Msg);
        {remote, _, _} -> partisan:cast_message(ServerRef, Msg, Opts)
    end.


%% -----------------------------------------------------------------------------
%% @doc Replies to callers, as `gen_statem:reply/1' does with a list of
%% `{reply, From, Reply}' actions.
%% @end
%% -----------------------------------------------------------------------------
-spec reply([gen_statem:reply_action()] | gen_statem:reply_action()) -> ok.

reply({reply, From, Reply}) ->
    reply(From, Reply);

reply(Replies) when is_list(Replies) ->
    lists:foreach(fun reply/1, Replies).


%% -----------------------------------------------------------------------------
%% @doc Replies to a caller from the state machine (`From' as the event gave
%% it). A `From' of another node (a raw `$gen_call' sent over partisan) is
%% answered over partisan.
%% @end
%% -----------------------------------------------------------------------------
-spec reply(gen_server:from(), term()) -> ok.

reply(From, Reply) ->
    partisan_gen_server:reply(From, Reply).


%% @doc Same as `send_request(ServerRef, Request, [])'.
-spec send_request(server_ref(), term()) -> request_id().

send_request(ServerRef, Request) ->
    send_request(ServerRef, Request, []).


%% @doc Sends a call request without waiting, as `gen_statem:send_request/2'
%% does; collect the answer with {@link wait_response/2},
%% {@link receive_response/2} or {@link check_response/2}.
-spec send_request(server_ref(), term(), list()) -> request_id().

send_request(ServerRef, Request, Opts) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            {local, gen_statem:send_request(Local, Request)};
        {remote, Node, Remote} ->
            Forward = partisan_gen:forward_opts(Opts),
            {remote, partisan_gen:send_request(Node, Remote, Request, Forward), ServerRef}
    end.


%% @doc Same as `wait_response(RequestId, infinity)'.
-spec wait_response(request_id()) ->
    {reply, term()} | {error, {term(), server_ref()}}.

wait_response(RequestId) ->
    wait_response(RequestId, infinity).


%% @doc As `gen_statem:wait_response/2': `{reply, Reply}', `{error, {Reason,
%% ServerRef}}' or `timeout' (the request stays pending).
-spec wait_response(request_id(), timeout()) ->
    {reply, term()} | {error, {term(), server_ref()}} | timeout.

wait_response({local, Id}, Timeout) ->
    gen_statem:wait_response(Id, Timeout);

wait_response({remote, Id, ServerRef}, Timeout) ->
    partisan_gen:unwrap(gen_server:wait_response(Id, Timeout), ServerRef).


%% @doc Same as `receive_response(RequestId, infinity)'.
-spec receive_response(request_id()) ->
    {reply, term()} | {error, {term(), server_ref()}}.

receive_response(RequestId) ->
    receive_response(RequestId, infinity).


%% @doc As `gen_statem:receive_response/2': on `timeout' the request is
%% abandoned.
-spec receive_response(request_id(), timeout()) ->
    {reply, term()} | {error, {term(), server_ref()}} | timeout.

receive_response({local, Id}, Timeout) ->
    gen_statem:receive_response(Id, Timeout);

receive_response({remote, Id, ServerRef}, Timeout) ->
    partisan_gen:unwrap(gen_server:receive_response(Id, Timeout), ServerRef).


%% @doc As `gen_statem:check_response/2': whether `Msg' answers the request.
-spec check_response(term(), request_id()) ->
    {reply, term()} | {error, {term(), server_ref()}} | no_reply.

check_response(Msg, {local, Id}) ->
    gen_statem:check_response(Msg, Id);

check_response(Msg, {remote, Id, ServerRef}) ->
    partisan_gen:unwrap(gen_server:check_response(Msg, Id), ServerRef).



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% The timeout of a call and its forwarding options.
call_opts({Kind, T}) when Kind == clean_timeout; Kind == dirty_timeout ->
    partisan_gen:call_opts(T, infinity);

call_opts(Opts) ->
    partisan_gen:call_opts(Opts, infinity).


%% What a local call passes to gen_statem: its own timeout forms as given.
local_timeout({Kind, _} = Timeout, _) when Kind == clean_timeout; Kind == dirty_timeout ->
    Timeout;

local_timeout(_, Timeout) ->
    Timeout.
