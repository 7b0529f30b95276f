%% -----------------------------------------------------------------------------
%% @doc A `gen_server' callback module written for plain OTP, used unchanged
%% by `partisan_gen_server_SUITE': it counts, defers replies, continues,
%% hibernates, stops on request and formats its status.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_test_counter).

-behaviour(partisan_gen_server).

-export([start/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2,
         terminate/2, code_change/3, format_status/2]).

%% @doc Starts an unlinked counter registered as `Name' (for peer calls).
-spec start(atom()) -> {ok, pid()}.
start(Name) ->
    partisan_gen_server:start({local, Name}, ?MODULE, 0, []).

init(N) ->
    {ok, N, {continue, ready}}.

handle_continue(ready, N) ->
    {noreply, N}.

handle_call(get, _From, N) ->
    {reply, N, N};
handle_call({add, K}, _From, N) ->
    {reply, N + K, N + K, hibernate};
handle_call({later, Ms}, From, N) ->
    %% A deferred reply, from another process, with the From given.
    _ = spawn(fun() -> timer:sleep(Ms), partisan_gen_server:reply(From, {late, N}) end),
    {noreply, N};
handle_call(never, _From, N) ->
    {noreply, N};
handle_call({stop, Reason}, _From, N) ->
    {stop, Reason, stopping, N};
handle_call(crash, _From, _N) ->
    erlang:error(crashed).

handle_cast({add, K}, N) ->
    {noreply, N + K}.

handle_info(_, N) ->
    {noreply, N}.

terminate(_, _) ->
    ok.

code_change(_, N, _) ->
    {ok, N}.

format_status(_, [_PDict, N]) ->
    [{data, [{"State", {counter, N}}]}].
