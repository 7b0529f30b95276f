%% -----------------------------------------------------------------------------
%% @doc `gen_server' across nodes over partisan, with Partisan 5's API.
%%
%% Servers are OTP's own `gen_server' processes: `start/3,4', `start_link/3,4',
%% `start_monitor/3,4' and `enter_loop/3,4,5' start them as `gen_server'
%% does, so a callback module written for `gen_server' (every callback,
%% `handle_continue', `format_status', `code_change', hibernation, `sys')
%% runs unchanged. What this module adds is reaching them from other nodes
%% through partisan: `call', `cast', `send_request' and `stop' take a local
%% pid or name, `{Name, Node}', a pid of another node (as it arrived in a
%% message) or a remote reference. Calls to another node go through the
%% nodes' relays ({@link partisan_gen_relay}); a timeout exits the caller with
%% `{timeout, {partisan_gen_server, call, Args}}' and leaves no late reply in
%% its mailbox, a dead server gives `noproc', a lost node `{nodedown, Node}'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen_server).

-export([start/3, start/4]).
-export([start_link/3, start_link/4]).
-export([start_monitor/3, start_monitor/4]).
-export([stop/1, stop/3]).
-export([call/2, call/3]).
-export([cast/2, cast/3]).
-export([reply/2]).
-export([send_request/2, send_request/3]).
-export([wait_response/2]).
-export([receive_response/2]).
-export([check_response/2]).
-export([multi_call/2, multi_call/3, multi_call/4]).
-export([abcast/2, abcast/3]).
-export([enter_loop/3, enter_loop/4, enter_loop/5]).

-type server_ref() :: gen_server:server_ref() | partisan_remote_ref:p()
                    | partisan_remote_ref:n().
-type from() :: gen_server:from().
%% A request of send_request/2: local (OTP's own) or through the relay.
-opaque request_id() :: {local, gen_server:request_id()}
                      | {remote, gen_server:request_id(), server_ref()}.
%% A timeout, or Partisan's options: `timeout' and `channel'.
-type call_opts() :: timeout() | [{timeout, timeout()} | {channel, atom()}].

-export_type([server_ref/0, request_id/0, call_opts/0, from/0]).

%% The callbacks are `gen_server''s (servers run on it unchanged), declared
%% here so that a module with `-behaviour(partisan_gen_server)' is checked
%% against them, as Partisan 5's are.
-callback init(Args :: term()) ->
    {ok, State :: term()}
    | {ok, State :: term(), timeout() | hibernate | {continue, term()}}
    | {stop, Reason :: term()}
    | ignore.
-callback handle_call(Request :: term(), From :: from(), State :: term()) ->
    {reply, Reply :: term(), NewState :: term()}
    | {reply, Reply :: term(), NewState :: term(),
       timeout() | hibernate | {continue, term()}}
    | {noreply, NewState :: term()}
    | {noreply, NewState :: term(), timeout() | hibernate | {continue, term()}}
    | {stop, Reason :: term(), Reply :: term(), NewState :: term()}
    | {stop, Reason :: term(), NewState :: term()}.
-callback handle_cast(Request :: term(), State :: term()) ->
    {noreply, NewState :: term()}
    | {noreply, NewState :: term(), timeout() | hibernate | {continue, term()}}
    | {stop, Reason :: term(), NewState :: term()}.
-callback handle_info(Info :: timeout | term(), State :: term()) ->
    {noreply, NewState :: term()}
    | {noreply, NewState :: term(), timeout() | hibernate | {continue, term()}}
    | {stop, Reason :: term(), NewState :: term()}.
-callback handle_continue(Info :: term(), State :: term()) ->
    {noreply, NewState :: term()}
    | {noreply, NewState :: term(), timeout() | hibernate | {continue, term()}}
    | {stop, Reason :: term(), NewState :: term()}.
-callback terminate(Reason :: normal | shutdown | {shutdown, term()} | term(),
                    State :: term()) -> term().
-callback code_change(OldVsn :: term() | {down, term()}, State :: term(),
                      Extra :: term()) ->
    {ok, NewState :: term()} | {error, Reason :: term()}.
-callback format_status(Opt :: normal | terminate, StatusData :: [term()]) ->
    Status :: term().
-callback format_status(Status :: map()) -> NewStatus :: map().

-optional_callbacks([handle_info/2, handle_continue/2, terminate/2,
                     code_change/3, format_status/1, format_status/2]).

-define(DEFAULT_TIMEOUT, 5000).



%% =============================================================================
%% STARTING AND STOPPING
%% =============================================================================



%% @doc As `gen_server:start/3'.
-spec start(module(), term(), [gen_server:start_opt()]) -> gen_server:start_ret().
start(Mod, Args, Opts) -> gen_server:start(Mod, Args, Opts).

%% @doc As `gen_server:start/4'.
-spec start(gen_server:server_name(), module(), term(), [gen_server:start_opt()]) ->
    gen_server:start_ret().
start(Name, Mod, Args, Opts) -> gen_server:start(Name, Mod, Args, Opts).

%% @doc As `gen_server:start_link/3'.
-spec start_link(module(), term(), [gen_server:start_opt()]) -> gen_server:start_ret().
start_link(Mod, Args, Opts) -> gen_server:start_link(Mod, Args, Opts).

%% @doc As `gen_server:start_link/4'.
-spec start_link(gen_server:server_name(), module(), term(), [gen_server:start_opt()]) ->
    gen_server:start_ret().
start_link(Name, Mod, Args, Opts) -> gen_server:start_link(Name, Mod, Args, Opts).

%% @doc As `gen_server:start_monitor/3'.
-spec start_monitor(module(), term(), [gen_server:start_opt()]) -> gen_server:start_mon_ret().
start_monitor(Mod, Args, Opts) -> gen_server:start_monitor(Mod, Args, Opts).

%% @doc As `gen_server:start_monitor/4'.
-spec start_monitor(gen_server:server_name(), module(), term(), [gen_server:start_opt()]) ->
    gen_server:start_mon_ret().
start_monitor(Name, Mod, Args, Opts) -> gen_server:start_monitor(Name, Mod, Args, Opts).

%% @doc As `gen_server:enter_loop/3'.
-spec enter_loop(module(), list(), term()) -> no_return().
enter_loop(Mod, Opts, State) -> gen_server:enter_loop(Mod, Opts, State).

%% @doc As `gen_server:enter_loop/4'.
-spec enter_loop(module(), list(), term(), term()) -> no_return().
enter_loop(Mod, Opts, State, NameOrTimeout) ->
    gen_server:enter_loop(Mod, Opts, State, NameOrTimeout).

%% @doc As `gen_server:enter_loop/5'.
-spec enter_loop(module(), list(), term(), term(), term()) -> no_return().
enter_loop(Mod, Opts, State, Name, Timeout) ->
    gen_server:enter_loop(Mod, Opts, State, Name, Timeout).


%% @doc Same as `stop(ServerRef, normal, infinity)'.
-spec stop(server_ref()) -> ok.

stop(ServerRef) ->
    stop(ServerRef, normal, infinity).


%% -----------------------------------------------------------------------------
%% @doc Stops the server as `gen_server:stop/3' does, on whichever node it
%% is. Exits with `noproc' if there is no such server, `{nodedown, Node}' if
%% its node is not connected.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(server_ref(), term(), timeout()) -> ok.

stop(ServerRef, Reason, Timeout) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            gen_server:stop(Local, Reason, Timeout);
        {remote, Node, Remote} ->
            case partisan_gen:remote_stop(Node, Remote, Reason, Timeout) of
                ok -> ok;
                {exit, Why} -> exit(Why)
            end
    end.



%% =============================================================================
%% CALLS AND CASTS
%% =============================================================================



%% @doc Same as `call(ServerRef, Request, 5000)'.
-spec call(server_ref(), term()) -> term().

call(ServerRef, Request) ->
    call(ServerRef, Request, ?DEFAULT_TIMEOUT).


%% -----------------------------------------------------------------------------
%% @doc Calls the server and waits at most the timeout for its reply, as
%% `gen_server:call/3' does; the third argument is a timeout or Partisan's
%% option list (`timeout', `channel'). Exits with `{Reason, {partisan_gen_server,
%% call, [ServerRef, Request, Opts]}}': `timeout', `noproc', the server's exit
%% reason, or `{nodedown, Node}'.
%% @end
%% -----------------------------------------------------------------------------
-spec call(server_ref(), term(), call_opts()) -> term().

call(ServerRef, Request, Opts) ->
    {Timeout, Forward} = partisan_gen:call_opts(Opts, ?DEFAULT_TIMEOUT),
    Args = [ServerRef, Request, Opts],
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            try
                gen_server:call(Local, Request, Timeout)
            catch
                exit:{Reason, {gen_server, call, _}} -> exit({Reason, {?MODULE, call, Args}})
            end;
        {remote, Node, Remote} ->
            case partisan_gen:remote_call(Node, Remote, Request, Timeout, Forward) of
                {reply, Reply} -> Reply;
                {exit, Why} -> exit({Why, {?MODULE, call, Args}})
            end
    end.


%% @doc Sends `{'$gen_cast', Request}' to the server; always `ok'.
-spec cast(server_ref(), term()) -> ok.

cast(ServerRef, Request) ->
    cast(ServerRef, Request, []).


%% @doc Like {@link cast/2} with Partisan's forwarding options (`channel').
-spec cast(server_ref(), term(), list() | map()) -> ok.

cast(ServerRef, Request, Opts) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} -> gen_server:cast(Local, Request);
        {remote, _, _} -> partisan:cast_message(ServerRef, Request, Opts)
    end.


%% -----------------------------------------------------------------------------
%% @doc Replies to a caller, from the server (`From' as `handle_call/3' got
%% it). A `From' of another node (a raw `$gen_call' sent over partisan) is
%% answered over partisan.
%% @end
%% -----------------------------------------------------------------------------
-spec reply(from(), term()) -> ok.

reply({Pid, Tag} = From, Reply) when is_pid(Pid) ->
    case erlang:node(Pid) =:= erlang:node() of
        true -> gen_server:reply(From, Reply);
        false -> _ = partisan:forward_message(Pid, {Tag, Reply}), ok
    end;

reply(From, Reply) ->
    gen_server:reply(From, Reply).


%% @doc Same as `send_request(ServerRef, Request, [])'.
-spec send_request(server_ref(), term()) -> request_id().

send_request(ServerRef, Request) ->
    send_request(ServerRef, Request, []).


%% @doc Sends a call request without waiting, as `gen_server:send_request/2'
%% does; collect the answer with {@link wait_response/2},
%% {@link receive_response/2} or {@link check_response/2}.
-spec send_request(server_ref(), term(), list()) -> request_id().

send_request(ServerRef, Request, Opts) ->
    case partisan_gen:target(ServerRef) of
        {local, Local} ->
            {local, gen_server:send_request(Local, Request)};
        {remote, Node, Remote} ->
            Forward = partisan_gen:forward_opts(Opts),
            {remote, partisan_gen:send_request(Node, Remote, Request, Forward), ServerRef}
    end.


%% @doc As `gen_server:wait_response/2': `{reply, Reply}', `{error, {Reason,
%% ServerRef}}' or `timeout' (the request stays pending).
-spec wait_response(request_id(), timeout()) ->
    {reply, term()} | {error, {term(), server_ref()}} | timeout.

wait_response({local, Id}, Timeout) ->
    gen_server:wait_response(Id, Timeout);

wait_response({remote, Id, ServerRef}, Timeout) ->
    partisan_gen:unwrap(gen_server:wait_response(Id, Timeout), ServerRef).


%% @doc As `gen_server:receive_response/2': on `timeout' the request is
%% abandoned.
-spec receive_response(request_id(), timeout()) ->
    {reply, term()} | {error, {term(), server_ref()}} | timeout.

receive_response({local, Id}, Timeout) ->
    gen_server:receive_response(Id, Timeout);

receive_response({remote, Id, ServerRef}, Timeout) ->
    partisan_gen:unwrap(gen_server:receive_response(Id, Timeout), ServerRef).


%% @doc As `gen_server:check_response/2': whether `Msg' answers the request.
-spec check_response(term(), request_id()) ->
    {reply, term()} | {error, {term(), server_ref()}} | no_reply.

check_response(Msg, {local, Id}) ->
    gen_server:check_response(Msg, Id);

check_response(Msg, {remote, Id, ServerRef}) ->
    partisan_gen:unwrap(gen_server:check_response(Msg, Id), ServerRef).


%% @doc Same as `multi_call([partisan:node() | partisan:nodes()], Name, Request)'.
-spec multi_call(atom(), term()) -> {[{node(), term()}], [node()]}.

multi_call(Name, Request) ->
    multi_call([partisan:node() | partisan:nodes()], Name, Request).


%% @doc Same as `multi_call(Nodes, Name, Request, infinity)'.
-spec multi_call([node()], atom(), term()) -> {[{node(), term()}], [node()]}.

multi_call(Nodes, Name, Request) ->
    multi_call(Nodes, Name, Request, infinity).


%% -----------------------------------------------------------------------------
%% @doc Calls the server registered as `Name' on each of `Nodes' in parallel
%% and returns `{Replies, BadNodes}' as `gen_server:multi_call/4' does:
%% `BadNodes' are the nodes whose server did not exist, exited, or did not
%% answer within `Timeout' (for them all).
%% @end
%% -----------------------------------------------------------------------------
-spec multi_call([node()], atom(), term(), timeout()) -> {[{node(), term()}], [node()]}.

multi_call(Nodes, Name, Request, Timeout) when is_list(Nodes), is_atom(Name) ->
    Deadline = partisan_gen:deadline(Timeout),
    Ids = [{Node, send_request({Name, Node}, Request)} || Node <- Nodes],
    lists:foldr(
        fun({Node, Id}, {Replies, Bad}) ->
            case receive_response(Id, partisan_gen:remaining(Deadline)) of
                {reply, Reply} -> {[{Node, Reply} | Replies], Bad};
                _ -> {Replies, [Node | Bad]}
            end
        end,
        {[], []},
        Ids
    ).


%% @doc Same as `abcast([partisan:node() | partisan:nodes()], Name, Request)'.
-spec abcast(atom(), term()) -> abcast.

abcast(Name, Request) ->
    abcast([partisan:node() | partisan:nodes()], Name, Request).


%% @doc Casts `Request' to the server registered as `Name' on each node.
-spec abcast([node()], atom(), term()) -> abcast.

abcast(Nodes, Name, Request) when is_list(Nodes), is_atom(Name) ->
    _ = [cast({Name, Node}, Request) || Node <- Nodes],
    abcast.
