%% -----------------------------------------------------------------------------
%% @doc `erpc' over partisan. `call' applies a function on a node and returns
%% its value, raising as `erpc:call' does: the exception of the call
%% (`error:{exception, Reason, Stack}', `exit:{exception, Reason}', or the
%% thrown value), `error:{erpc, timeout}', `error:{erpc, noconnection}'.
%% Requests (`send_request', then `receive_response', `wait_response' or
%% `check_response'), `multicall' and the casts behave as in `erpc'. Calls to
%% another node go through the nodes' relays ({@link partisan_gen_relay}), where
%% each runs in a process of its own, so calls to one node run concurrently and
%% an abandoned call's late answer is dropped, never taken for another's.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_erpc).

%% (The local request's process only exits, on purpose.)
-dialyzer({nowarn_function, send_request/4}).

-export([call/2, call/3, call/4, call/5]).
-export([cast/2, cast/4]).
-export([send_request/2, send_request/4]).
-export([receive_response/1, receive_response/2]).
-export([wait_response/1, wait_response/2]).
-export([check_response/2]).
-export([multicall/2, multicall/3, multicall/4, multicall/5]).
-export([multicast/2, multicast/4]).

%% A request: run here by a monitored process, or on another node through
%% the relay.
-opaque request_id() :: {local, reference()} | {remote, gen_server:request_id()}.
-type result() :: {ok, term()} | {error | exit | throw, term()}.

-export_type([request_id/0]).



%% =============================================================================
%% CALLS
%% =============================================================================



%% @doc Same as `call(Node, Fun, infinity)'.
-spec call(node(), fun(() -> term())) -> term().

call(Node, Fun) ->
    call(Node, Fun, infinity).


%% @doc Applies `Fun()' on `Node' within `Timeout' ms.
-spec call(node(), fun(() -> term()), timeout()) -> term().

call(Node, Fun, Timeout) when is_function(Fun, 0) ->
    call(Node, erlang, apply, [Fun, []], Timeout);

call(Node, Fun, Timeout) ->
    erlang:error(badarg, [Node, Fun, Timeout]).


%% @doc Same as `call(Node, M, F, A, infinity)'.
-spec call(node(), module(), atom(), list()) -> term().

call(Node, M, F, A) ->
    call(Node, M, F, A, infinity).


%% @doc Applies `M:F(A)' on `Node' within `Timeout' ms.
-spec call(node(), module(), atom(), list(), timeout()) -> term().

call(Node, M, F, A, Timeout) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    result(
        case Node =:= partisan:node() of
            true -> {reply, partisan_gen_relay:run(M, F, A)};
            false -> relay(Node, M, F, A, Timeout)
        end
    );

call(Node, M, F, A, Timeout) ->
    erlang:error(badarg, [Node, M, F, A, Timeout]).


%% @doc Applies `Fun()' on `Node' without waiting; `ok'.
-spec cast(node(), fun(() -> term())) -> ok.

cast(Node, Fun) when is_function(Fun, 0) ->
    cast(Node, erlang, apply, [Fun, []]);

cast(Node, Fun) ->
    erlang:error(badarg, [Node, Fun]).


%% @doc Applies `M:F(A)' on `Node' without waiting; `ok'.
-spec cast(node(), module(), atom(), list()) -> ok.

cast(Node, M, F, A) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    case Node =:= partisan:node() of
        true -> _ = spawn(partisan_gen_relay, run, [M, F, A]), ok;
        false -> partisan_gen_relay:cast_apply(Node, M, F, A)
    end;

cast(Node, M, F, A) ->
    erlang:error(badarg, [Node, M, F, A]).



%% =============================================================================
%% REQUESTS
%% =============================================================================



%% @doc Like {@link send_request/4} with `Fun()'.
-spec send_request(node(), fun(() -> term())) -> request_id().

send_request(Node, Fun) when is_function(Fun, 0) ->
    send_request(Node, erlang, apply, [Fun, []]);

send_request(Node, Fun) ->
    erlang:error(badarg, [Node, Fun]).


%% @doc Starts applying `M:F(A)' on `Node' and returns at once; the result is
%% collected with {@link receive_response/2}, {@link wait_response/2} or
%% {@link check_response/2} by the same process.
-spec send_request(node(), module(), atom(), list()) -> request_id().

send_request(Node, M, F, A) when is_atom(Node), is_atom(M), is_atom(F), is_list(A) ->
    case Node =:= partisan:node() of
        true ->
            {_, Mon} = spawn_monitor(fun() -> exit({?MODULE, partisan_gen_relay:run(M, F, A)}) end),
            {local, Mon};
        false ->
            {remote, gen_server:send_request(partisan_gen_relay, {apply, Node, M, F, A, infinity})}
    end;

send_request(Node, M, F, A) ->
    erlang:error(badarg, [Node, M, F, A]).


%% @doc Same as `receive_response(RequestId, infinity)'.
-spec receive_response(request_id()) -> term().

receive_response(RequestId) ->
    receive_response(RequestId, infinity).


%% @doc The result of a request, raising as {@link call/5} does; after
%% `Timeout' ms the request is abandoned and `error:{erpc, timeout}' raised.
-spec receive_response(request_id(), timeout()) -> term().

receive_response({local, Mon}, Timeout) ->
    receive
        {'DOWN', Mon, process, _, Exit} -> local_result(Exit)
    after Timeout ->
        erlang:demonitor(Mon, [flush]),
        erlang:error({erpc, timeout})
    end;

receive_response({remote, Id}, Timeout) ->
    case gen_server:receive_response(Id, Timeout) of
        {reply, Result} -> result(Result);
        timeout -> erlang:error({erpc, timeout});
        {error, {Reason, _}} -> erlang:error({erpc, Reason})
    end;

receive_response(RequestId, Timeout) ->
    erlang:error(badarg, [RequestId, Timeout]).


%% @doc Same as `wait_response(RequestId, 0)'.
-spec wait_response(request_id()) -> {response, term()} | no_response.

wait_response(RequestId) ->
    wait_response(RequestId, 0).


%% @doc `{response, Result}' if the result came within `Timeout' ms (raising
%% as {@link call/5} does), else `no_response' and the request stays pending.
-spec wait_response(request_id(), timeout()) -> {response, term()} | no_response.

wait_response({local, Mon}, Timeout) ->
    receive
        {'DOWN', Mon, process, _, Exit} -> {response, local_result(Exit)}
    after Timeout ->
        no_response
    end;

wait_response({remote, Id}, Timeout) ->
    case gen_server:wait_response(Id, Timeout) of
        {reply, Result} -> {response, result(Result)};
        timeout -> no_response;
        {error, {Reason, _}} -> erlang:error({erpc, Reason})
    end;

wait_response(RequestId, Timeout) ->
    erlang:error(badarg, [RequestId, Timeout]).


%% @doc Whether `Msg' is the result of the request: `{response, Result}'
%% (raising as {@link call/5} does) or `no_response'.
-spec check_response(term(), request_id()) -> {response, term()} | no_response.

check_response({'DOWN', Mon, process, _, Exit}, {local, Mon}) ->
    {response, local_result(Exit)};

check_response(_, {local, _}) ->
    no_response;

check_response(Msg, {remote, Id}) ->
    case gen_server:check_response(Msg, Id) of
        {reply, Result} -> {response, result(Result)};
        no_reply -> no_response;
        {error, {Reason, _}} -> erlang:error({erpc, Reason})
    end;

check_response(Msg, RequestId) ->
    erlang:error(badarg, [Msg, RequestId]).



%% =============================================================================
%% MANY NODES
%% =============================================================================



%% @doc Same as `multicall(Nodes, Fun, infinity)'.
-spec multicall([node()], fun(() -> term())) -> [result()].

multicall(Nodes, Fun) ->
    multicall(Nodes, Fun, infinity).


%% @doc Like {@link multicall/5} with `Fun()'.
-spec multicall([node()], fun(() -> term()), timeout()) -> [result()].

multicall(Nodes, Fun, Timeout) when is_function(Fun, 0) ->
    multicall(Nodes, erlang, apply, [Fun, []], Timeout);

multicall(Nodes, Fun, Timeout) ->
    erlang:error(badarg, [Nodes, Fun, Timeout]).


%% @doc Same as `multicall(Nodes, M, F, A, infinity)'.
-spec multicall([node()], module(), atom(), list()) -> [result()].

multicall(Nodes, M, F, A) ->
    multicall(Nodes, M, F, A, infinity).


%% -----------------------------------------------------------------------------
%% @doc Applies `M:F(A)' on every node at once and returns their results in
%% the order of `Nodes', as `erpc:multicall/5' does: `{ok, Value}', or
%% `{Class, Reason}' with the exception {@link call/5} would raise. `Timeout'
%% is for all of them together.
%% @end
%% -----------------------------------------------------------------------------
-spec multicall([node()], module(), atom(), list(), timeout()) -> [result()].

multicall(Nodes, M, F, A, Timeout) when is_list(Nodes) ->
    Deadline = partisan_gen:deadline(Timeout),
    Ids = [send_request(Node, M, F, A) || Node <- Nodes],
    [collect(Id, Deadline) || Id <- Ids];

multicall(Nodes, M, F, A, Timeout) ->
    erlang:error(badarg, [Nodes, M, F, A, Timeout]).


%% @doc Casts `Fun()' to every node; `ok'.
-spec multicast([node()], fun(() -> term())) -> ok.

multicast(Nodes, Fun) when is_list(Nodes) ->
    lists:foreach(fun(Node) -> cast(Node, Fun) end, Nodes).


%% @doc Casts `M:F(A)' to every node; `ok'.
-spec multicast([node()], module(), atom(), list()) -> ok.

multicast(Nodes, M, F, A) when is_list(Nodes) ->
    lists:foreach(fun(Node) -> cast(Node, M, F, A) end, Nodes).



%% =============================================================================
%% PRIVATE
%% =============================================================================



relay(Node, M, F, A, Timeout) ->
    try
        partisan_gen_relay:apply(Node, M, F, A, Timeout)
    catch
        exit:{timeout, _} -> erlang:error({erpc, timeout})
    end.


%% The value of an apply, or the exception erpc raises for it.
result({reply, {value, Value}}) -> Value;
result({reply, {exception, throw, Value, _}}) -> throw(Value);
result({reply, {exception, exit, Reason, _}}) -> exit({exception, Reason});
result({reply, {exception, error, Reason, Stack}}) -> erlang:error({exception, Reason, Stack});
result({exit, {nodedown, _}}) -> erlang:error({erpc, noconnection});
result({exit, Why}) -> erlang:error({erpc, Why}).


%% A local request's process ended with its result, or was killed.
local_result({?MODULE, Result}) -> result({reply, Result});
local_result(Reason) -> erlang:error({exception, Reason}).


collect(Id, Deadline) ->
    try
        {ok, receive_response(Id, partisan_gen:remaining(Deadline))}
    catch
        Class:Reason -> {Class, Reason}
    end.
