#!/usr/bin/env escript
%% -*- mode: erlang -*-
%%
%% `make mesh`: a full mesh of N BEAM nodes (default 16) on this machine.
%%
%% Starts N nodes with OTP's `peer' module, each running partisan's full-mesh
%% manager with two channels (the default one and `bulk'), records each node's
%% memory while it is alone, joins all of them through the first, and reports
%% the time until every node has all its connections, connections, OS threads
%% and memory per node, and the memory each idle connection adds (resident
%% size after the mesh settled and idled 5 s, minus before, over the
%% connections); then all-to-all throughput of 64-byte messages, over partisan
%% and over Distributed Erlang's full mesh of the same nodes. Distributed
%% Erlang otherwise only starts the nodes and collects the figures.
%%
%% Usage: escript bench/mesh_scale.escript [--nodes N]
%% Needs `rebar3 compile' first (make mesh does it).
-mode(compile).

-define(NODES, partisan_bench_nodes).

main(Args) ->
    N = case Args of
        ["--nodes", Text] -> list_to_integer(Text);
        _ -> 16
    end,
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    Ebin = filename:join([Root, "_build", "default", "lib", "partisan", "ebin"]),
    _ = os:cmd("epmd -daemon"),
    {ok, _} = net_kernel:start([list_to_atom("mesh_" ++ os:getpid() ++ "@127.0.0.1"), longnames]),
    {Helpers, HelpersFile, HelpersBin} = compile_helpers(Root),
    {module, Helpers} = code:load_binary(Helpers, HelpersFile, HelpersBin),
    Mesh = ?NODES:compile(Root, "bench/partisan_bench_mesh.erl"),
    Peers = ?NODES:pmap(fun(I) -> start_peer(I, Ebin, Mesh) end, lists:seq(1, N)),
    Nodes = [Node || {_, Node} <- Peers],
    try
        run(Nodes)
    after
        [catch peer:stop(P) || {P, _} <- Peers]
    end,
    halt(0).

run([First | Rest] = Nodes) ->
    timer:sleep(2000),
    Before = [{?NODES:rss(Node), erpc:call(Node, erlang, memory, [total])} || Node <- Nodes],
    Spec = erpc:call(First, partisan, node_spec, []),
    T0 = ?NODES:now_ms(),
    [ok = erpc:call(Node, partisan_peer_service, join, [Spec]) || Node <- Rest],
    %% Control, default and bulk to every other node.
    Want = 3 * (length(Nodes) - 1),
    Converged = ?NODES:wait(fun() -> lists:all(fun(Node) -> conns(Node) =:= Want end, Nodes) end,
                     120000) - T0,
    %% Some traffic on every connection first (to a name nobody has: dropped and
    %% counted there), so that idle means idle after use, not never used.
    Bin = binary:copy(<<"x">>, 32768),
    ?NODES:pmap(fun(From) ->
             [ok = erpc:call(From, partisan, forward_message, [To, mesh_nobody, Bin, #{channel => C}])
              || To <- Nodes, To =/= From, C <- [undefined, bulk], _ <- lists:seq(1, 20)]
         end, Nodes),
    timer:sleep(5000),
    After = [{?NODES:rss(Node), erpc:call(Node, erlang, memory, [total])} || Node <- Nodes],
    Conns = [conns(Node) || Node <- Nodes],
    Threads = [?NODES:threads(Node) || Node <- Nodes],
    PerConn = [(R1 - R0) / C || {{R0, _}, {R1, _}, C} <- lists:zip3(Before, After, Conns)],
    VmPerConn = [(M1 - M0) / C || {{_, M0}, {_, M1}, C} <- lists:zip3(Before, After, Conns)],
    io:format(
        "~n| nodes | converged (ms) | connections per node | OS threads per node "
        "| RSS per node (MiB) | VM memory per node (MiB) | RSS per idle connection (KiB) "
        "| VM memory per idle connection (KiB) |~n"
        "|---|---|---|---|---|---|---|---|~n"
        "| ~p | ~p | ~.1f | ~.1f | ~.1f | ~.1f | ~.1f | ~.1f |~n",
        [length(Nodes), Converged, ?NODES:avg(Conns), ?NODES:avg(Threads),
         ?NODES:avg([R || {R, _} <- After]) / 1048576, ?NODES:avg([M || {_, M} <- After]) / 1048576,
         ?NODES:avg(PerConn) / 1024, ?NODES:avg(VmPerConn) / 1024]),
    all_to_all(Nodes).

%% Every node sends ?ROUNDS rounds of a 64-byte message to every other node's
%% sink, all at once, over partisan and then over Distributed Erlang (whose
%% full mesh is made now, so that it costs the figures above nothing).
-define(ROUNDS, 2000).
all_to_all(Nodes) ->
    Names = maps:from_list([{Node, erpc:call(Node, partisan, node, [])} || Node <- Nodes]),
    Partisan = blast(partisan, Nodes, fun(Node) -> maps:get(Node, Names) end),
    [true = erpc:call(X, net_kernel, connect_node, [Y]) || X <- Nodes, Y <- Nodes, X < Y],
    Disterl = blast(disterl, Nodes, fun(Node) -> Node end),
    Row = fun({Rate, Got, Want}) -> io_lib:format("~bk msg/s (~p of ~p)", [round(Rate / 1000), Got, Want]) end,
    io:format(
        "~n| nodes | all-to-all, 64 B, Distributed Erlang | all-to-all, 64 B, partisan | partisan / disterl |~n"
        "|---|---|---|---|~n"
        "| ~p | ~ts | ~ts | ~.2f |~n",
        [length(Nodes), Row(Disterl), Row(Partisan), element(1, Partisan) / element(1, Disterl)]).

blast(Via, Nodes, Name) ->
    Msg = {mesh, binary:copy(<<"x">>, 50)},
    Before = lists:sum([erpc:call(Node, partisan_bench_mesh, received, []) || Node <- Nodes]),
    Want = length(Nodes) * (length(Nodes) - 1) * ?ROUNDS,
    T0 = ?NODES:now_ms(),
    [ok = erpc:call(Node, partisan_bench_mesh, blast, [Via, [Name(O) || O <- Nodes, O =/= Node], ?ROUNDS, Msg])
     || Node <- Nodes],
    Got = fun() -> lists:sum([erpc:call(Node, partisan_bench_mesh, received, []) || Node <- Nodes]) - Before end,
    Done = fun() -> Got() >= Want end,
    T1 = try ?NODES:wait(Done, 60000) catch error:timeout -> ?NODES:now_ms() end,
    N = Got(),
    Via =:= partisan andalso
        io:format("partisan: ~p frames written by their senders' threads (the rest by the writers)~n",
                  [lists:sum([stat(Node, written_directly) || Node <- Nodes])]),
    {N * 1000 / max(1, T1 - T0), N, Want}.

stat(Node, Key) ->
    maps:get(Key, erpc:call(Node, partisan_nif, stats, [erpc:call(Node, partisan_nif, engine, [])])).

conns(Node) ->
    length(erpc:call(Node, partisan_nif, connections, [erpc:call(Node, partisan_nif, engine, [])])).

start_peer(I, Ebin, Mesh) ->
    Name = list_to_atom("m" ++ integer_to_list(I) ++ "_" ++ os:getpid()),
    Env = [
        {listen_addrs, [#{ip => {127, 0, 0, 1}, port => 0}]},
        {channels, #{bulk => #{parallelism => 1}}},
        {io_threads, 1}
    ],
    {Peer, Node} = ?NODES:start_peer(Name, Ebin, Env, [Mesh]),
    ok = erpc:call(Node, partisan_bench_mesh, start_sink, []),
    {Peer, Node}.

%% The helpers are compiled here, before any of them can be called.
compile_helpers(Root) ->
    Src = filename:join([Root, "bench", "partisan_bench_nodes.erl"]),
    {ok, Mod, Bin} = compile:file(Src, [binary, report]),
    {Mod, Src, Bin}.
