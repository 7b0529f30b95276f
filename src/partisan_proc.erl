%% -----------------------------------------------------------------------------
%% @private
%% @doc The process functions of {@link partisan} for processes of any node:
%% `is_process_alive', `exit', `process_info', `spawn', `spawn_monitor',
%% `send_after' and `cancel_timer'. A process of this node is handled by the
%% `erlang' BIF; one of another node by its node, through the relays
%% ({@link partisan_erpc}), where it is a local process again.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_proc).

-compile({no_auto_import, [exit/2, is_process_alive/1, process_info/1, process_info/2,
                           spawn/2, spawn/4, spawn_monitor/2, spawn_monitor/4]}).

%% (A process made only to have exited, on purpose.)
-dialyzer({nowarn_function, unreachable/0}).

-export([is_process_alive/1]).
-export([exit/2]).
-export([process_info/1, process_info/2]).
-export([spawn/2, spawn/4]).
-export([spawn_monitor/2, spawn_monitor/4]).
-export([send_after/4]).
-export([cancel_timer/2]).
-export([gated/1]).

%% How long a remote query waits for its node.
-define(QUERY_TIMEOUT, 5000).



%% @doc As `erlang:is_process_alive/1'; a process of another node is asked
%% there. Fails with `badarg' on something that is not a process, and with
%% `noconnection' if its node cannot be reached.
-spec is_process_alive(term()) -> boolean().

is_process_alive(Process) ->
    on_home(Process, fun erlang:is_process_alive/1, is_process_alive, []).


%% -----------------------------------------------------------------------------
%% @doc As `erlang:exit/2': sends an exit signal to a process of any node (a
%% pid, a remote reference or a registered name). A signal to a node that
%% cannot be reached is dropped, as Distributed Erlang drops it; always `true'.
%% @end
%% -----------------------------------------------------------------------------
-spec exit(term(), term()) -> true.

exit(Process, Reason) ->
    case home(Process) of
        {local, Pid} when is_pid(Pid) ->
            erlang:exit(Pid, Reason);
        {local, Name} when is_atom(Name) ->
            case erlang:whereis(Name) of
                undefined -> true;
                Pid -> erlang:exit(Pid, Reason)
            end;
        {remote, Node} ->
            ok = partisan_erpc:cast(Node, partisan, exit, [Process, Reason]),
            true;
        {local, _} ->
            erlang:error(badarg, [Process, Reason])
    end.


%% @doc As `erlang:process_info/1' for a process of any node.
-spec process_info(term()) -> [tuple()] | undefined.

process_info(Process) ->
    on_home(Process, fun erlang:process_info/1, process_info, []).


%% @doc As `erlang:process_info/2' for a process of any node.
-spec process_info(term(), atom() | [atom()]) -> term().

process_info(Process, Items) ->
    on_home(Process, fun(Pid) -> erlang:process_info(Pid, Items) end, process_info, [Items]).


%% -----------------------------------------------------------------------------
%% @doc Starts `Fun' on `Node' and returns the new process as a remote
%% reference (Partisan 5's return value). If the node cannot be reached (the
%% reason is logged) the reference names a local process that has exited with
%% `noconnection'.
%% @end
%% -----------------------------------------------------------------------------
-spec spawn(node(), fun(() -> term())) -> partisan_remote_ref:p().

spawn(Node, Fun) when is_atom(Node), is_function(Fun, 0) ->
    spawn(Node, erlang, apply, [Fun, []]);

spawn(Node, Fun) ->
    erlang:error(badarg, [Node, Fun]).


%% @doc Like {@link spawn/2} with `M:F(A)'.
-spec spawn(node(), module(), atom(), list()) -> partisan_remote_ref:p().

spawn(Node, M, F, A) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    Pid = case start(Node, erlang, spawn, [M, F, A]) of
        {ok, P} -> P;
        error -> unreachable()
    end,
    partisan_remote_ref:from_term(Pid);

spawn(Node, M, F, A) ->
    erlang:error(badarg, [Node, M, F, A]).


%% @doc Like {@link spawn/2}, and monitors the process: `{Process, MonitorRef}'.
-spec spawn_monitor(node(), fun(() -> term())) -> {partisan_remote_ref:p(), term()}.

spawn_monitor(Node, Fun) when is_atom(Node), is_function(Fun, 0) ->
    spawn_monitor(Node, erlang, apply, [Fun, []]);

spawn_monitor(Node, Fun) ->
    erlang:error(badarg, [Node, Fun]).


%% -----------------------------------------------------------------------------
%% @doc Like {@link spawn/4}, and monitors the process. As with
%% `erlang:spawn_monitor', the monitor is in place before the process runs:
%% it waits for a go-ahead sent once the monitor is set, so its exit reason is
%% never lost to a `noproc'.
%% @end
%% -----------------------------------------------------------------------------
-spec spawn_monitor(node(), module(), atom(), list()) -> {partisan_remote_ref:p(), term()}.

spawn_monitor(Node, M, F, A) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    case start(Node, erlang, spawn, [?MODULE, gated, [{M, F, A}]]) of
        {ok, Pid} ->
            %% The monitor is confirmed by the other node before the go-ahead.
            Ref = partisan:monitor(process, Pid),
            _ = partisan:forward_message(Pid, {?MODULE, go}),
            {partisan_remote_ref:from_term(Pid), Ref};
        error ->
            %% As erlang:spawn_monitor/4 to a node out of reach: noconnection,
            %% whatever the timing (a monitor on an exiting process could say
            %% noproc).
            Pid = unreachable(),
            Ref = erlang:make_ref(),
            erlang:self() ! {'DOWN', Ref, process, Pid, noconnection},
            {partisan_remote_ref:from_term(Pid), Ref}
    end;

spawn_monitor(Node, M, F, A) ->
    erlang:error(badarg, [Node, M, F, A]).


%% @doc The body of a process started by {@link spawn_monitor/4}: waits for
%% the go-ahead, then applies `M:F(A)'.
-spec gated({module(), atom(), list()}) -> term().

gated({M, F, A}) ->
    receive
        {?MODULE, go} -> erlang:apply(M, F, A)
    end.


%% -----------------------------------------------------------------------------
%% @doc As `erlang:send_after/4' for a destination on any node (a pid, a name,
%% `{Name, Node}' or a remote reference). A local destination gets an
%% `erlang' timer; a remote one a timer whose message goes to this node's
%% relay, which forwards it with `Opts' (Partisan's forwarding options; `abs'
%% is the timer's). Either is cancelled with {@link cancel_timer/2}.
%% @end
%% -----------------------------------------------------------------------------
-spec send_after(non_neg_integer(), term(), term(), list()) -> reference().

send_after(Time, Dest, Msg, Opts) when is_list(Opts) ->
    TimerOpts = [Opt || {abs, _} = Opt <- Opts],
    case partisan_gen:target(Dest) of
        {local, Local} when is_pid(Local); is_atom(Local) ->
            erlang:send_after(Time, Local, Msg, TimerOpts);
        _ ->
            Forward = partisan_gen:forward_opts(Opts),
            Relay = {'$partisan_forward', Dest, Msg, Forward},
            erlang:send_after(Time, partisan_gen_relay, Relay, TimerOpts)
    end;

send_after(Time, Dest, Msg, Opts) ->
    erlang:error(badarg, [Time, Dest, Msg, Opts]).


%% @doc As `erlang:cancel_timer/2', for timers of {@link send_after/4} too.
-spec cancel_timer(reference(), list()) -> non_neg_integer() | false | ok.

cancel_timer(Ref, Opts) when is_reference(Ref), is_list(Opts) ->
    erlang:cancel_timer(Ref, Opts);

cancel_timer(Ref, Opts) ->
    erlang:error(badarg, [Ref, Opts]).



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% Where a process lives: here (as a pid or a registered name), or on another
%% node, which resolves it itself.
home(Process) ->
    case partisan_gen:target(Process) of
        {remote, Node, _} -> {remote, Node};
        Local -> Local
    end.


%% Applies a BIF on a local pid, or asks the process's node to (where
%% `partisan:Name(Process, ...)' finds it local).
on_home(Process, Local, Name, Extra) ->
    case home(Process) of
        {local, Pid} when is_pid(Pid) ->
            Local(Pid);
        {local, _} ->
            erlang:error(badarg, [Process | Extra]);
        {remote, Node} ->
            try partisan_erpc:call(Node, partisan, Name, [Process | Extra], ?QUERY_TIMEOUT)
            catch
                error:{exception, badarg, _} -> erlang:error(badarg, [Process | Extra]);
                error:{erpc, noconnection} -> erlang:error(noconnection);
                error:{erpc, timeout} -> erlang:error(timeout)
            end
    end.


%% Starts a process on `Node' with `M:F(A)' (a spawn BIF): `{ok, Pid}', or
%% `error' (logged with its reason) when the node cannot be asked.
start(Node, M, F, A) ->
    case Node =:= partisan:node() of
        true ->
            {ok, erlang:apply(M, F, A)};
        false ->
            try partisan_erpc:call(Node, M, F, A, ?QUERY_TIMEOUT) of
                Pid when is_pid(Pid) -> {ok, Pid}
            catch
                Class:Reason ->
                    logger:warning(#{
                        description => "could not start a process on another node",
                        node => Node, class => Class, reason => Reason
                    }),
                    error
            end
    end.


%% What a spawn on a node out of reach returns: a local process that has
%% already exited with `noconnection' (so that a later monitor or link says
%% `noproc', as for any dead process; spawn_monitor reports `noconnection').
unreachable() ->
    {Pid, MRef} = erlang:spawn_monitor(fun() -> erlang:exit(noconnection) end),
    receive {'DOWN', MRef, process, Pid, _} -> Pid end.
