%% -----------------------------------------------------------------------------
%% @doc `rpc' over partisan, with Partisan 5's API: `call/4,5' return the
%% value of `M:F(A)' applied on `Node', or `{badrpc, Reason}' as `rpc:call/5'
%% does (`{'EXIT', ...}' for an exception, `timeout', `nodedown'). The fifth
%% argument is a timeout or Partisan's options (`timeout', `channel').
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_rpc).

-export([call/4]).
-export([call/5]).
-export([cast/4]).
-export([prepare_opts/1]).

-include("partisan.hrl").

-define(RPC_TIMEOUT, infinity).


%% @doc Same as `call(Node, M, F, A, infinity)'.
-spec call(node(), module(), atom(), list()) -> term() | {badrpc, term()}.

call(Node, M, F, A) ->
    call(Node, M, F, A, ?RPC_TIMEOUT).


%% @doc Applies `M:F(A)' on `Node' and returns its value, or `{badrpc, Reason}'.
-spec call(node(), module(), atom(), list(), timeout() | list() | map()) ->
    term() | {badrpc, term()}.

call(Node, M, F, A, Opts) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    Timeout = timeout(Opts),
    case Node =:= partisan:node() of
        true ->
            rpc:call(erlang:node(), M, F, A, Timeout);
        false ->
            Forward = maps:with([channel, channel_fallback], options(Opts)),
            try partisan_gen_relay:apply(Node, M, F, A, Timeout, Forward) of
                {reply, {value, Value}} -> Value;
                {reply, {exception, throw, Value, _}} -> Value;
                {reply, {exception, exit, Reason, _}} -> {badrpc, {'EXIT', Reason}};
                {reply, {exception, error, Reason, Stack}} -> {badrpc, {'EXIT', {Reason, Stack}}};
                {exit, {nodedown, _}} -> {badrpc, nodedown};
                {exit, Why} -> {badrpc, Why}
            catch
                exit:{timeout, _} -> {badrpc, timeout}
            end
    end.


%% @doc Applies `M:F(A)' on `Node' without waiting; always `true', as
%% `rpc:cast/4'.
-spec cast(node(), module(), atom(), list()) -> true.

cast(Node, M, F, A) ->
    ok = partisan_gen_relay:cast_apply(Node, M, F, A),
    true.


%% @doc The options of {@link call/5} as a map, with the default channel
%% when they name none (Partisan 5's helper).
-spec prepare_opts(list() | map()) -> map().

prepare_opts(Opts) when is_list(Opts); is_map(Opts) ->
    maps:merge(#{channel => ?DEFAULT_CHANNEL}, options(Opts)).


options(Opts) when is_map(Opts) -> Opts;
options(Opts) when is_list(Opts) -> maps:from_list(proplists:unfold(Opts));
options(_) -> #{}.


timeout(Timeout) when Timeout == infinity; is_integer(Timeout), Timeout >= 0 -> Timeout;
timeout(Opts) when is_list(Opts) -> proplists:get_value(timeout, Opts, ?RPC_TIMEOUT);
timeout(Opts) when is_map(Opts) -> maps:get(timeout, Opts, ?RPC_TIMEOUT);
timeout(Other) -> erlang:error(badarg, [Other]).
