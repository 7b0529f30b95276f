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

-define(DEFAULT_TIMEOUT, infinity).


%% @doc Same as `call(Node, M, F, A, infinity)'.
-spec call(node(), module(), atom(), list()) -> term() | {badrpc, term()}.

call(Node, M, F, A) ->
    call(Node, M, F, A, ?DEFAULT_TIMEOUT).


%% @doc Applies `M:F(A)' on `Node' and returns its value, or `{badrpc, Reason}'.
-spec call(node(), module(), atom(), list(), timeout() | list() | map()) ->
    term() | {badrpc, term()}.

call(Node, M, F, A, Opts) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    Timeout = timeout(Opts),
    case Node =:= partisan:node() of
        true ->
            rpc:call(erlang:node(), M, F, A, Timeout);
        false ->
            try partisan_gen_relay:apply(Node, M, F, A, Timeout) of
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


timeout(Timeout) when Timeout == infinity; is_integer(Timeout), Timeout >= 0 -> Timeout;
timeout(Opts) when is_list(Opts) -> proplists:get_value(timeout, Opts, ?DEFAULT_TIMEOUT);
timeout(Opts) when is_map(Opts) -> maps:get(timeout, Opts, ?DEFAULT_TIMEOUT);
timeout(Other) -> erlang:error(badarg, [Other]).
