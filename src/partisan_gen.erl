%% -----------------------------------------------------------------------------
%% @private
%% @doc What {@link partisan_gen_server} and {@link partisan_gen_statem} share:
%% where a server reference points, Partisan's call options, and calls,
%% requests and stops that go to another node through the relays
%% ({@link partisan_gen_relay}). Both behaviours' servers take the same
%% `$gen_call' and `$gen_cast' messages, so one relay serves both.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_gen).

-export([target/1]).
-export([call_opts/2]).
-export([forward_opts/1]).
-export([remote_call/5]).
-export([remote_stop/4]).
-export([send_request/4]).
-export([unwrap/2]).
-export([deadline/1]).
-export([remaining/1]).

-type target() :: {local, pid() | atom() | {global, term()} | {via, module(), term()}}
                | {remote, node(), term()}.

-export_type([target/0]).



%% -----------------------------------------------------------------------------
%% @doc Where a server reference points: this node (as OTP takes it) or
%% another one (with the target as the remote relay resolves it). Fails with
%% `badarg' on something that is not a server reference.
%% @end
%% -----------------------------------------------------------------------------
-spec target(term()) -> target().

target(Pid) when is_pid(Pid) ->
    case erlang:node(Pid) of
        Node when Node =:= erlang:node() -> {local, Pid};
        %% A pid of an earlier life of this node: OTP says noproc.
        Node -> case Node =:= partisan:node() of
            true -> {local, Pid};
            false -> {remote, Node, Pid}
        end
    end;

target(Name) when is_atom(Name) ->
    {local, Name};

target({global, _} = Global) ->
    {local, Global};

target({via, _, _} = Via) ->
    {local, Via};

target({Name, Node}) when is_atom(Name), is_atom(Node) ->
    case Node =:= partisan:node() of
        true -> {local, Name};
        false -> {remote, Node, Name}
    end;

target(RemoteRef) ->
    Node =
        try partisan_remote_ref:node(RemoteRef)
        catch error:badarg -> erlang:error(badarg, [RemoteRef])
        end,
    case Node =:= partisan:node() of
        true -> {local, partisan_remote_ref:to_pid_or_name(RemoteRef)};
        false -> {remote, Node, RemoteRef}
    end.


%% -----------------------------------------------------------------------------
%% @doc The timeout and the forwarding options of a call's third argument: a
%% timeout, or Partisan's option list (`timeout', `channel',
%% `channel_fallback'); `Default' when the list has no timeout.
%% @end
%% -----------------------------------------------------------------------------
-spec call_opts(timeout() | list(), timeout()) -> {timeout(), map()}.

call_opts(Timeout, _) when Timeout == infinity; is_integer(Timeout), Timeout >= 0 ->
    {Timeout, #{}};

call_opts(Opts, Default) when is_list(Opts) ->
    {proplists:get_value(timeout, Opts, Default), forward_opts(Opts)};

call_opts(Other, _) ->
    erlang:error(badarg, [Other]).


%% @doc The options of a list or map that concern forwarding.
-spec forward_opts(list() | map()) -> map().

forward_opts(Opts) when is_map(Opts) ->
    maps:with([channel, channel_fallback], Opts);

forward_opts(Opts) when is_list(Opts) ->
    maps:from_list(
        [{K, V} || {K, V} <- Opts, K == channel orelse K == channel_fallback]
    ).


%% -----------------------------------------------------------------------------
%% @doc Calls `Remote' on `Node' through the relays: `{reply, Reply}' or
%% `{exit, Reason}' (`timeout' when no answer came in time; no late reply is
%% left in the caller's mailbox).
%% @end
%% -----------------------------------------------------------------------------
-spec remote_call(node(), term(), term(), timeout(), map()) ->
    {reply, term()} | {exit, term()}.

remote_call(Node, Remote, Request, Timeout, Forward) ->
    partisan_gen_relay:call(Node, Remote, Request, Timeout, Forward).


%% @doc Stops `Remote' on `Node' as `gen:stop' does there: `ok' or `{exit, Why}'.
-spec remote_stop(node(), term(), term(), timeout()) -> ok | {exit, term()}.

remote_stop(Node, Remote, Reason, Timeout) ->
    Result =
        try partisan_gen_relay:stop(Node, Remote, Reason, Timeout)
        catch exit:{Why, {gen_server, call, _}} -> {exit, Why}
        end,
    case Result of
        {reply, ok} -> ok;
        {exit, _} = Exit -> Exit
    end.


%% @doc Sends a call request for `Remote' on `Node' to the local relay; the
%% answer is collected with `gen_server''s response functions and {@link unwrap/2}.
-spec send_request(node(), term(), term(), map()) -> gen_server:request_id().

send_request(Node, Remote, Request, Forward) ->
    gen_server:send_request(partisan_gen_relay, {call, Node, Remote, Request, infinity, Forward}).


%% @doc A relayed answer as the caller of a local server would see it.
-spec unwrap(term(), term()) -> term().

unwrap({reply, {reply, Reply}}, _) -> {reply, Reply};
unwrap({reply, {exit, Why}}, ServerRef) -> {error, {Why, ServerRef}};
unwrap({error, {Why, _}}, ServerRef) -> {error, {Why, ServerRef}};
unwrap(Other, _) -> Other.


%% @doc The monotonic time (ms) by which `Timeout' ends.
-spec deadline(timeout()) -> integer() | infinity.

deadline(infinity) -> infinity;
deadline(Timeout) -> erlang:monotonic_time(millisecond) + Timeout.


%% @doc What is left of a deadline, in ms.
-spec remaining(integer() | infinity) -> timeout().

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).
