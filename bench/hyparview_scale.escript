#!/usr/bin/env escript
%% -*- mode: erlang -*-
%%
%% `make scale`: many BEAM nodes on this machine joined by HyParView.
%%
%% Starts N nodes (default 64) with OTP's `peer' module, each running partisan
%% with the HyParView manager and the key-value example (examples/partisan_kv.erl)
%% as its Plumtree handler, joins every node through a random earlier one, and
%% reports: the time until the overlay is connected with every active view
%% within bounds, memory per node (the VM's total and the OS's resident size),
%% connections per node, and the time for one broadcast to reach every node.
%% Distributed Erlang only starts the nodes and collects the figures.
%%
%% Usage: escript bench/hyparview_scale.escript [--nodes N]
%% Needs `rebar3 compile' first (make scale does it).
-mode(compile).

-define(NODES, partisan_bench_nodes).
-define(MIN, 3).
-define(MAX, 6).

main(Args) ->
    N = case Args of
        ["--nodes", Text] -> list_to_integer(Text);
        _ -> 64
    end,
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    Ebin = filename:join([Root, "_build", "default", "lib", "partisan", "ebin"]),
    _ = os:cmd("epmd -daemon"),
    {ok, _} = net_kernel:start([list_to_atom("scale_" ++ os:getpid() ++ "@127.0.0.1"), longnames]),
    true = code:add_patha(Ebin),
    {Helpers, HelpersFile, HelpersBin} = compile_helpers(Root),
    {module, Helpers} = code:load_binary(Helpers, HelpersFile, HelpersBin),
    Kv = ?NODES:compile(Root, "examples/partisan_kv.erl"),
    T0 = ?NODES:now_ms(),
    Peers = ?NODES:pmap(fun(I) -> start_peer(I, Ebin, Kv) end, lists:seq(1, N)),
    Nodes = [Node || {_, Node} <- Peers],
    io:format("~p nodes started in ~p ms~n", [N, ?NODES:now_ms() - T0]),
    try
        run(Nodes)
    after
        [catch peer:stop(P) || {P, _} <- Peers]
    end,
    halt(0).

run([First | _] = Nodes) ->
    T0 = ?NODES:now_ms(),
    lists:foldl(
        fun(Node, Joined) ->
            Contact = lists:nth(rand:uniform(length(Joined)), Joined),
            Spec = erpc:call(Contact, partisan, node_spec, []),
            ok = erpc:call(Node, partisan_peer_service, join, [Spec]),
            [Node | Joined]
        end,
        [First], tl(Nodes)),
    Converged = ?NODES:wait(fun() -> settled(Nodes) end, 300000) - T0,
    Views = [length(active(N)) || N <- Nodes],
    Mem = [erpc:call(N, erlang, memory, [total]) || N <- Nodes],
    Rss = [?NODES:rss(N) || N <- Nodes],
    Conns = [length(erpc:call(N, partisan_nif, connections, [erpc:call(N, partisan_nif, engine, [])]))
             || N <- Nodes],
    T1 = ?NODES:now_ms(),
    ok = erpc:call(First, partisan_kv, put, [scale, T1]),
    All = fun() -> lists:all(fun(N) -> erpc:call(N, partisan_kv, get, [scale]) =:= {ok, T1} end, Nodes) end,
    Reached = ?NODES:wait(All, 60000) - T1,
    io:format(
        "~n| nodes | converged (ms) | active view min/avg/max | connections per node (avg) "
        "| VM memory per node (MiB) | RSS per node (MiB) | broadcast reached all (ms) |~n"
        "|---|---|---|---|---|---|---|~n"
        "| ~p | ~p | ~p / ~.1f / ~p | ~.1f | ~.1f | ~.1f | ~p |~n",
        [length(Nodes), Converged, lists:min(Views), ?NODES:avg(Views), lists:max(Views),
         ?NODES:avg(Conns), ?NODES:avg(Mem) / 1048576, ?NODES:avg(Rss) / 1048576, Reached]).

settled(Nodes) ->
    Views = maps:from_list([{N, active(N)} || N <- Nodes]),
    Bounded = lists:all(fun(V) -> length(V) >= ?MIN andalso length(V) =< ?MAX end, maps:values(Views)),
    Bounded andalso length(reach([hd(Nodes)], Views, #{})) =:= length(Nodes).

active(Node) ->
    {ok, A} = erpc:call(Node, partisan_hyparview_peer_service_manager, active, []),
    A.

reach([], _, Seen) -> maps:keys(Seen);
reach([N | Rest], Views, Seen) when is_map_key(N, Seen) -> reach(Rest, Views, Seen);
reach([N | Rest], Views, Seen) -> reach(maps:get(N, Views, []) ++ Rest, Views, Seen#{N => true}).

start_peer(I, Ebin, Kv) ->
    Name = list_to_atom("s" ++ integer_to_list(I) ++ "_" ++ os:getpid()),
    Env = [
        {listen_addrs, [#{ip => {127, 0, 0, 1}, port => 0}]},
        {peer_service_manager, partisan_hyparview_peer_service_manager},
        {broadcast_mods, [partisan_kv]},
        {io_threads, 1}
    ],
    {Peer, Node} = ?NODES:start_peer(Name, Ebin, Env, [Kv]),
    ok = erpc:call(Node, partisan_kv, start, []),
    {Peer, Node}.

%% The helpers are compiled here, before any of them can be called.
compile_helpers(Root) ->
    Src = filename:join([Root, "bench", "partisan_bench_nodes.erl"]),
    {ok, Mod, Bin} = compile:file(Src, [binary, report]),
    {Mod, Src, Bin}.
