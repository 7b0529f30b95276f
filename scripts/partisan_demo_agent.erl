%% Code that scripts/demo.escript loads into the nodes of the demo cluster.
%% Everything here runs on those nodes; messages to the demo's own node (the
%% orchestrator) use Distributed Erlang, messages between cluster nodes use
%% partisan (or erlang:send, for the comparison).
-module(partisan_demo_agent).

-export([start_receiver/2]).
-export([send_to_all/4]).
-export([start_sink/3]).
-export([blast/4]).
-export([wait_fully_connected/2]).

-type via() :: disterl | {partisan, map()}.

%% A registered process that counts messages `{demo, FromNode, Seq}' per
%% sender and reports the counts on `{demo_counts, From}'.
-spec start_receiver(atom(), pid()) -> {ok, pid()}.
start_receiver(Name, Owner) ->
    Pid = spawn(fun() -> receiver(Owner, #{}) end),
    true = register(Name, Pid),
    {ok, Pid}.

receiver(Owner, Counts) ->
    receive
        {demo, From, _Seq} ->
            receiver(Owner, maps:update_with(From, fun(C) -> C + 1 end, 1, Counts));
        {demo_counts, ReplyTo} ->
            ReplyTo ! {demo_counts, partisan:node(), Counts},
            receiver(Owner, Counts)
    end.

%% Sends Count messages to the receiver `Name' on every other node in `Nodes'
%% with partisan:forward_message/2,3. Returns how many it sent.
-spec send_to_all(atom(), [node()], pos_integer(), map()) -> non_neg_integer().
send_to_all(Name, Nodes, Count, Opts) ->
    Me = partisan:node(),
    Others = [N || N <- Nodes, N =/= Me],
    lists:sum([send_seq({Name, N}, Me, Count, Opts) || N <- Others]).

send_seq(Dest, Me, Count, Opts) ->
    lists:foreach(
        fun(Seq) -> ok = partisan:forward_message(Dest, {demo, Me, Seq}, Opts) end,
        lists:seq(1, Count)
    ),
    Count.

%% A registered process that counts every message and tells Owner
%% `{sink_done, Name, Count}' once it has received Expected of them.
-spec start_sink(atom(), pos_integer(), pid()) -> {ok, pid()}.
start_sink(Name, Expected, Owner) ->
    Pid = spawn(fun() -> sink(Name, Expected, Owner, 0) end),
    true = register(Name, Pid),
    {ok, Pid}.

sink(Name, Expected, Owner, Expected) ->
    Owner ! {sink_done, Name, Expected},
    sink_idle(Name, Expected);
sink(Name, Expected, Owner, N) ->
    receive
        {sink_count, ReplyTo} ->
            ReplyTo ! {sink_count, Name, N},
            sink(Name, Expected, Owner, N);
        sink_stop ->
            ok;
        _ ->
            sink(Name, Expected, Owner, N + 1)
    end.

sink_idle(Name, N) ->
    receive
        {sink_count, ReplyTo} ->
            ReplyTo ! {sink_count, Name, N},
            sink_idle(Name, N);
        sink_stop ->
            ok;
        _ ->
            sink_idle(Name, N + 1)
    end.

%% Sends Msg N times to Dest, one after the other, from the calling process.
-spec blast(via(), {atom(), node()}, non_neg_integer(), term()) -> ok.
blast(_, _, 0, _) ->
    ok;
blast(disterl, Dest, N, Msg) ->
    _ = erlang:send(Dest, Msg),
    blast(disterl, Dest, N - 1, Msg);
blast({partisan, Opts} = Via, Dest, N, Msg) ->
    ok = partisan:forward_message(Dest, Msg, Opts),
    blast(Via, Dest, N - 1, Msg).

%% Waits until every connection (all channels) to Nodes is up, when the
%% partisan in use exports is_fully_connected/1; true if so before Timeout ms.
-spec wait_fully_connected([node()], non_neg_integer()) -> boolean().
wait_fully_connected(Nodes, Timeout) ->
    _ = code:ensure_loaded(partisan),
    case erlang:function_exported(partisan, is_fully_connected, 1) of
        false ->
            true;
        true ->
            Deadline = erlang:monotonic_time(millisecond) + Timeout,
            wait_fully_connected_loop([N || N <- Nodes, N =/= partisan:node()], Deadline)
    end.

wait_fully_connected_loop(Nodes, Deadline) ->
    case lists:all(fun partisan:is_fully_connected/1, Nodes) of
        true ->
            true;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    false;
                false ->
                    timer:sleep(50),
                    wait_fully_connected_loop(Nodes, Deadline)
            end
    end.
