%% -----------------------------------------------------------------------------
%% @doc `erpc' over partisan: `call/4,5' apply `M:F(A)' on `Node' and return
%% its value, raising as `erpc:call/5' does: the exception of the call
%% (`error:{exception, Reason, Stack}', `exit:{exception, Reason}', or the
%% thrown value), `error:{erpc, timeout}', `error:{erpc, noconnection}'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_erpc).

-export([call/4]).
-export([call/5]).
-export([cast/4]).


%% @doc Same as `call(Node, M, F, A, infinity)'.
-spec call(node(), module(), atom(), list()) -> term().

call(Node, M, F, A) ->
    call(Node, M, F, A, infinity).


%% @doc Applies `M:F(A)' on `Node' within `Timeout' ms.
-spec call(node(), module(), atom(), list(), timeout()) -> term().

call(Node, M, F, A, Timeout) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    Result =
        case Node =:= partisan:node() of
            true -> {reply, partisan_gen_relay:run(M, F, A)};
            false -> relay(Node, M, F, A, Timeout)
        end,
    case Result of
        {reply, {value, Value}} -> Value;
        {reply, {exception, throw, Value, _}} -> throw(Value);
        {reply, {exception, exit, Reason, _}} -> exit({exception, Reason});
        {reply, {exception, error, Reason, Stack}} -> erlang:error({exception, Reason, Stack});
        {exit, {nodedown, _}} -> erlang:error({erpc, noconnection});
        {exit, Why} -> erlang:error({erpc, Why})
    end.


%% @doc Applies `M:F(A)' on `Node' without waiting; `ok'.
-spec cast(node(), module(), atom(), list()) -> ok.

cast(Node, M, F, A) ->
    partisan_gen_relay:cast_apply(Node, M, F, A).


relay(Node, M, F, A, Timeout) ->
    try
        partisan_gen_relay:apply(Node, M, F, A, Timeout)
    catch
        exit:{timeout, _} -> erlang:error({erpc, timeout})
    end.
