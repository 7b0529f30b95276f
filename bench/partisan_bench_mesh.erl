%% -----------------------------------------------------------------------------
%% @doc The nodes' side of `make mesh' (bench/mesh_scale.escript): a sink that
%% counts what it receives, and a sender that sends to the sinks of many nodes
%% in turn, over partisan or over Distributed Erlang.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_mesh).

-export([start_sink/0]).
-export([received/0]).
-export([blast/4]).

-define(SINK, mesh_sink).


%% @doc Starts the counting sink, registered as `mesh_sink'.
-spec start_sink() -> ok.
start_sink() ->
    Counter = counters:new(1, [write_concurrency]),
    persistent_term:put(?MODULE, Counter),
    true = register(?SINK, spawn(fun() -> sink(Counter) end)),
    ok.


sink(Counter) ->
    receive
        _ -> counters:add(Counter, 1, 1)
    end,
    sink(Counter).


%% @doc Messages the sink received so far.
-spec received() -> non_neg_integer().
received() ->
    counters:get(persistent_term:get(?MODULE), 1).


%% @doc Sends `Count' rounds of `Msg', one to the sink of each of `Nodes'
%% per round, from a new process; returns at once.
-spec blast(partisan | disterl, [node()], pos_integer(), term()) -> ok.
blast(Via, Nodes, Count, Msg) ->
    _ = spawn(fun() -> rounds(Via, Nodes, Count, Msg) end),
    ok.


rounds(_, _, 0, _) ->
    ok;
rounds(Via, Nodes, N, Msg) ->
    [send(Via, Node, Msg) || Node <- Nodes],
    rounds(Via, Nodes, N - 1, Msg).


send(partisan, Node, Msg) -> ok = partisan:forward_message({?SINK, Node}, Msg);
send(disterl, Node, Msg) -> erlang:send({?SINK, Node}, Msg).
