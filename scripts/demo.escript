#!/usr/bin/env escript
%% -*- mode: erlang -*-
%%
%% `make demo`: a 3-node partisan cluster on this machine.
%%
%% Starts three BEAM nodes with OTP's `peer` module, starts the partisan
%% application on each (listening on 127.0.0.1, ephemeral ports), joins them
%% into a full mesh, sends messages between every pair with
%% partisan:forward_message/2,3, then compares the throughput of one sender
%% over partisan and over Distributed Erlang between the same two nodes.
%%
%% Distributed Erlang connects this script to the nodes, to start them and to
%% collect results; the messages being demonstrated travel over partisan.
%%
%% Usage: escript scripts/demo.escript [--messages N] [--mesh N]
%% Needs `rebar3 compile` first (make demo does it).
-mode(compile).

-define(RECEIVER, partisan_demo_receiver).
-define(CONVERGE_MS, 30000).
-define(DELIVERY_MS, 60000).
-define(PAYLOAD, <<0:64/unit:8>>).

main(Args) ->
    Opts = parse_args(Args, #{messages => 100000, mesh => 1000}),
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    Result =
        try
            run(Root, Opts)
        catch
            throw:{demo_failed, Why} ->
                io:format("~nFAILED: ~ts~n", [Why]),
                error;
            Class:Reason:Stack ->
                io:format("~nFAILED: ~p:~p~n~p~n", [Class, Reason, Stack]),
                error
        end,
    halt(case Result of ok -> 0; _ -> 1 end).

parse_args([], Acc) ->
    Acc;
parse_args(["--messages", N | Rest], Acc) ->
    parse_args(Rest, Acc#{messages => list_to_integer(N)});
parse_args(["--mesh", N | Rest], Acc) ->
    parse_args(Rest, Acc#{mesh => list_to_integer(N)});
parse_args([Other | _], _) ->
    io:format("usage: demo.escript [--messages N] [--mesh N] (unknown: ~ts)~n", [Other]),
    halt(2).

run(Root, #{messages := NMsgs, mesh := NMesh}) ->
    Ebin = filename:join([Root, "_build", "default", "lib", "partisan", "ebin"]),
    Nif = filename:join([Root, "_build", "default", "lib", "partisan", "priv", "libpartisan_nif.so"]),
    filelib:is_regular(filename:join(Ebin, "partisan.app")) orelse
        fail("~ts has no partisan.app: run `rebar3 compile` (or `make demo`)", [Ebin]),
    filelib:is_regular(Nif) orelse
        fail("~ts is missing: run `rebar3 compile` (or `make demo`)", [Nif]),
    start_distribution(),
    AgentBin = compile_agent(Root),

    step("starting 3 nodes"),
    Peers = [start_peer(I, Ebin) || I <- [1, 2, 3]],
    try
        demo(Peers, AgentBin, NMsgs, NMesh)
    after
        stop_peers(Peers)
    end.

demo(Peers, AgentBin, NMsgs, NMesh) ->
    Nodes = [Node || {_, Node} <- Peers],
    [load_agent(Node, AgentBin) || Node <- Nodes],
    [configure_and_start(Node) || Node <- Nodes],
    Names = [call(Node, partisan, node, []) || Node <- Nodes],
    Specs = [call(Node, partisan, node_spec, []) || Node <- Nodes],
    lists:foreach(
        fun({Name, Spec}) ->
            Addrs = [format_addr(A) || A <- maps:get(listen_addrs, Spec, [])],
            io:format("  ~ts listens on ~ts~n", [Name, lists:join(", ", Addrs)])
        end,
        lists:zip(Names, Specs)),

    %% Everyone joins the first node; membership spreads by gossip.
    step("joining a full mesh"),
    [Seed | _] = Specs,
    [ok = call(Node, partisan_peer_service, join, [Seed]) || Node <- tl(Nodes)],
    T0 = erlang:monotonic_time(millisecond),
    converge(Nodes, Names, T0 + ?CONVERGE_MS) orelse
        fail("membership did not converge within ~b s", [?CONVERGE_MS div 1000]),
    ConvergeMs = erlang:monotonic_time(millisecond) - T0,
    [call(Node, partisan_demo_agent, wait_fully_connected, [Names, 10000]) orelse
        fail("~ts: not every connection came up", [Node]) || Node <- Nodes],
    io:format("  converged in ~b ms~n", [ConvergeMs]),

    step("membership, as each node sees it"),
    lists:foreach(
        fun(Node) ->
            {ok, Members} = call(Node, partisan_peer_service, members, []),
            Connected = call(Node, partisan, nodes, []),
            io:format("  ~ts~n    members:   ~ts~n    connected: ~ts~n",
                      [Node, join_names(lists:sort(Members)), join_names(lists:sort(Connected))]),
            lists:sort(Members) =:= lists:sort(Names) orelse
                fail("~ts sees members ~p, expected ~p", [Node, Members, Names])
        end, Nodes),

    %% Every node sends NMesh messages to the receiver on every other node.
    step(io_lib:format("every node sends ~b messages to every other node", [NMesh])),
    [{ok, _} = call(Node, partisan_demo_agent, start_receiver, [?RECEIVER, self()]) || Node <- Nodes],
    SentPerNode = [call(Node, partisan_demo_agent, send_to_all, [?RECEIVER, Names, NMesh, #{}]) ||
                   Node <- Nodes],
    Sent = lists:sum(SentPerNode),
    Received = await_mesh(Nodes, Sent, erlang:monotonic_time(millisecond) + ?DELIVERY_MS),
    io:format("  sent ~b, received ~b~n", [Sent, Received]),

    %% Throughput: node 1 -> node 2, one sender, small messages.
    [{Node1, Name1}, {Node2, Name2} | _] = lists:zip(Nodes, Names),
    step(io_lib:format("throughput ~ts -> ~ts: 1 sender, ~b x ~b B messages",
                       [Name1, Name2, NMsgs, byte_size(?PAYLOAD)])),
    true = call(Node1, net_kernel, connect_node, [Node2]),
    Runs = [
        {"partisan, channel undefined", {partisan, #{}}, Name2},
        {"partisan, channel data (x4)", {partisan, #{channel => data}}, Name2},
        {"disterl (erlang:send)", disterl, Node2}
    ],
    Results = [throughput(Label, Via, Node1, Node2, DestNode, NMsgs) ||
               {Label, Via, DestNode} <- Runs],

    [call(Node, partisan, stop, []) || Node <- Nodes],
    summary(Names, ConvergeMs, Sent, Received, NMsgs, Results).

%% --- the steps -------------------------------------------------------------

configure_and_start(Node) ->
    Env = [
        {listen_addrs, [#{ip => {127, 0, 0, 1}, port => 0}]},
        {channels, #{undefined => #{parallelism => 1}, data => #{parallelism => 4}}}
    ],
    [ok = call(Node, application, set_env, [partisan, K, V]) || {K, V} <- Env],
    case call(Node, partisan, start, []) of
        {ok, _} -> ok;
        Other -> fail("~ts: partisan:start() returned ~p", [Node, Other])
    end.

converge(Nodes, Names, Deadline) ->
    Done = lists:all(
        fun({Node, Name}) ->
            lists:sort(call(Node, partisan, nodes, [])) =:= lists:sort(Names -- [Name])
        end, lists:zip(Nodes, Names)),
    case Done of
        true -> true;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(50), converge(Nodes, Names, Deadline)
            end
    end.

await_mesh(Nodes, Sent, Deadline) ->
    Received = lists:sum([mesh_count(Node) || Node <- Nodes]),
    case Received >= Sent orelse erlang:monotonic_time(millisecond) > Deadline of
        true -> Received;
        false -> timer:sleep(50), await_mesh(Nodes, Sent, Deadline)
    end.

mesh_count(Node) ->
    {?RECEIVER, Node} ! {demo_counts, self()},
    receive
        {demo_counts, _, Counts} -> lists:sum(maps:values(Counts))
    after 5000 ->
        fail("no answer from the receiver on ~ts", [Node])
    end.

throughput(Label, Via, From, SinkNode, DestNode, N) ->
    Sink = list_to_atom("partisan_demo_sink_" ++ integer_to_list(erlang:unique_integer([positive]))),
    %% Warm up the path with a few messages to a throwaway sink.
    Warm = 1000,
    {ok, _} = call(SinkNode, partisan_demo_agent, start_sink, [Sink, Warm, self()]),
    ok = call(From, partisan_demo_agent, blast, [Via, {Sink, DestNode}, Warm, ?PAYLOAD]),
    _ = await_sink(Sink, SinkNode, Warm, 10000),
    {Sink, SinkNode} ! sink_stop,

    Sink2 = list_to_atom(atom_to_list(Sink) ++ "_run"),
    {ok, _} = call(SinkNode, partisan_demo_agent, start_sink, [Sink2, N, self()]),
    T0 = erlang:monotonic_time(microsecond),
    ok = call(From, partisan_demo_agent, blast, [Via, {Sink2, DestNode}, N, ?PAYLOAD]),
    Got = await_sink(Sink2, SinkNode, N, ?DELIVERY_MS),
    Us = max(1, erlang:monotonic_time(microsecond) - T0),
    {Sink2, SinkNode} ! sink_stop,
    Rate = Got * 1000000 / Us,
    io:format("  ~-30ts ~9b msg/s  (~b received in ~.2f s)~n", [Label, round(Rate), Got, Us / 1.0e6]),
    #{label => Label, via => Via, sent => N, received => Got, rate => Rate}.

await_sink(Sink, SinkNode, N, Timeout) ->
    receive
        {sink_done, Sink, N} -> N
    after Timeout ->
        {Sink, SinkNode} ! {sink_count, self()},
        receive
            {sink_count, Sink, Got} -> Got
        after 5000 -> 0
        end
    end.

summary(Names, ConvergeMs, Sent, Received, NMsgs, Results) ->
    [Disterl] = [R || #{via := disterl} = R <- Results],
    DisterlRate = maps:get(rate, Disterl),
    Problems =
        [io_lib:format("mesh: ~b of ~b messages delivered", [Received, Sent]) || Received =/= Sent] ++
        [io_lib:format("~ts: ~b of ~b messages delivered", [L, G, S]) ||
         #{label := L, received := G, sent := S} <- Results, G =/= S],
    Line = lists:duplicate(64, $-),
    io:format("~n~ts~n", [Line]),
    io:format(" partisan demo: ~b nodes on 127.0.0.1~n", [length(Names)]),
    io:format("~ts~n", [Line]),
    io:format(" members            ~ts~n", [join_names(Names)]),
    io:format(" converged in       ~b ms~n", [ConvergeMs]),
    io:format(" mesh messages      ~b sent, ~b received~n", [Sent, Received]),
    io:format(" throughput         1 sender, ~b x ~b B, node 1 -> node 2~n",
              [NMsgs, byte_size(?PAYLOAD)]),
    lists:foreach(
        fun(#{label := L, rate := R}) ->
            io:format("   ~-30ts ~10ts msg/s  ~5.2fx disterl~n",
                      [L, thousands(round(R)), R / max(DisterlRate, 1.0)])
        end, Results),
    io:format("~ts~n", [Line]),
    io:format(" (one run on this machine; see `make bench` for the full comparison)~n"),
    case Problems of
        [] ->
            io:format(" result: OK~n"),
            ok;
        _ ->
            [io:format(" problem: ~ts~n", [P]) || P <- Problems],
            io:format(" result: FAILED~n"),
            error
    end.

%% --- nodes -----------------------------------------------------------------

start_distribution() ->
    _ = os:cmd("epmd -daemon"),
    Name = list_to_atom("partisan_demo_" ++ os:getpid() ++ "@127.0.0.1"),
    case net_kernel:start([Name, longnames]) of
        {ok, _} -> ok;
        {error, Reason} -> fail("could not start Distributed Erlang (epmd running?): ~p", [Reason])
    end.

start_peer(I, Ebin) ->
    Name = list_to_atom("n" ++ integer_to_list(I) ++ "_" ++ os:getpid()),
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()), "-pa", Ebin,
            "-kernel", "logger_level", "warning"],
    Opts = #{name => Name, host => "127.0.0.1", longnames => true,
             exec => os:find_executable("erl"), args => Args, wait_boot => 30000},
    case peer:start_link(Opts) of
        {ok, Peer, Node} ->
            io:format("  started ~ts~n", [Node]),
            {Peer, Node};
        {error, Reason} ->
            fail("could not start node ~ts: ~p", [Name, Reason])
    end.

stop_peers(Peers) ->
    [catch peer:stop(Peer) || {Peer, _} <- Peers],
    ok.

compile_agent(Root) ->
    Src = filename:join([Root, "scripts", "partisan_demo_agent.erl"]),
    case compile:file(Src, [binary, report, debug_info]) of
        {ok, partisan_demo_agent, Bin} -> {Src, Bin};
        _ -> fail("could not compile ~ts", [Src])
    end.

load_agent(Node, {Src, Bin}) ->
    {module, _} = call(Node, code, load_binary, [partisan_demo_agent, Src, Bin]),
    ok.

call(Node, M, F, A) ->
    erpc:call(Node, M, F, A, 60000).

%% --- output ----------------------------------------------------------------

step(Text) ->
    io:format("~n== ~ts~n", [Text]).

fail(Fmt, Args) ->
    throw({demo_failed, io_lib:format(Fmt, Args)}).

format_addr(#{ip := Ip, port := Port}) ->
    io_lib:format("~ts:~b", [inet:ntoa(Ip), Port]);
format_addr(Other) ->
    io_lib:format("~p", [Other]).

join_names(Names) ->
    lists:join(", ", [atom_to_list(N) || N <- Names]).

thousands(N) ->
    S = integer_to_list(N),
    Groups = group3(lists:reverse(S)),
    lists:reverse(lists:flatten(lists:join($,, Groups))).

group3([A, B, C | Rest]) -> [[A, B, C] | group3(Rest)];
group3([]) -> [];
group3(Rest) -> [Rest].
