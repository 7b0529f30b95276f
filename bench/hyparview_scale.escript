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
    Kv = compile_kv(Root),
    T0 = now_ms(),
    Peers = pmap(fun(I) -> start_peer(I, Ebin, Kv) end, lists:seq(1, N)),
    Nodes = [Node || {_, Node} <- Peers],
    io:format("~p nodes started in ~p ms~n", [N, now_ms() - T0]),
    try
        run(Nodes)
    after
        [catch peer:stop(P) || {P, _} <- Peers]
    end,
    halt(0).

run([First | _] = Nodes) ->
    T0 = now_ms(),
    lists:foldl(
        fun(Node, Joined) ->
            Contact = lists:nth(rand:uniform(length(Joined)), Joined),
            Spec = erpc:call(Contact, partisan, node_spec, []),
            ok = erpc:call(Node, partisan_peer_service, join, [Spec]),
            [Node | Joined]
        end,
        [First], tl(Nodes)),
    Converged = wait(fun() -> settled(Nodes) end, 300000) - T0,
    Views = [length(active(N)) || N <- Nodes],
    Mem = [erpc:call(N, erlang, memory, [total]) || N <- Nodes],
    Rss = [rss(N) || N <- Nodes],
    Conns = [length(erpc:call(N, partisan_nif, connections, [erpc:call(N, partisan_nif, engine, [])]))
             || N <- Nodes],
    T1 = now_ms(),
    ok = erpc:call(First, partisan_kv, put, [scale, T1]),
    All = fun() -> lists:all(fun(N) -> erpc:call(N, partisan_kv, get, [scale]) =:= {ok, T1} end, Nodes) end,
    Reached = wait(All, 60000) - T1,
    io:format(
        "~n| nodes | converged (ms) | active view min/avg/max | connections per node (avg) "
        "| VM memory per node (MiB) | RSS per node (MiB) | broadcast reached all (ms) |~n"
        "|---|---|---|---|---|---|---|~n"
        "| ~p | ~p | ~p / ~.1f / ~p | ~.1f | ~.1f | ~.1f | ~p |~n",
        [length(Nodes), Converged, lists:min(Views), avg(Views), lists:max(Views),
         avg(Conns), avg(Mem) / 1048576, avg(Rss) / 1048576, Reached]).

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

rss(Node) ->
    Pid = erpc:call(Node, os, getpid, []),
    {ok, Status} = file:read_file("/proc/" ++ Pid ++ "/status"),
    {match, [KB]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(KB) * 1024.

start_peer(I, Ebin, {Mod, File, Bin}) ->
    Name = list_to_atom("s" ++ integer_to_list(I) ++ "_" ++ os:getpid()),
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()), "-pa", Ebin,
            "-connect_all", "false", "-kernel", "logger_level", "warning",
            "+S", "1", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"],
    %% Not linked: the process that starts it ends at once.
    {ok, Peer, Node} = peer:start(#{
        name => Name, host => "127.0.0.1", longnames => true,
        exec => os:find_executable("erl"), args => Args, wait_boot => 60000
    }),
    {module, Mod} = erpc:call(Node, code, load_binary, [Mod, File, Bin]),
    Env = [
        {listen_addrs, [#{ip => {127, 0, 0, 1}, port => 0}]},
        {peer_service_manager, partisan_hyparview_peer_service_manager},
        {broadcast_mods, [partisan_kv]},
        {io_threads, 1}
    ],
    [ok = erpc:call(Node, application, set_env, [partisan, K, V]) || {K, V} <- Env],
    {ok, _} = erpc:call(Node, partisan, start, []),
    ok = erpc:call(Node, partisan_kv, start, []),
    {Peer, Node}.

compile_kv(Root) ->
    Src = filename:join([Root, "examples", "partisan_kv.erl"]),
    {ok, Mod, Bin} = compile:file(Src, [binary, report]),
    {Mod, Src, Bin}.

wait(Fun, Timeout) ->
    wait_loop(Fun, now_ms() + Timeout).

wait_loop(Fun, Deadline) ->
    case catch Fun() of
        true ->
            now_ms();
        _ ->
            now_ms() < Deadline orelse error(timeout),
            timer:sleep(100),
            wait_loop(Fun, Deadline)
    end.

pmap(F, List) ->
    Parent = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() -> Parent ! {Ref, F(X)} end),
                Ref
            end || X <- List],
    [receive {Ref, R} -> R end || Ref <- Refs].

avg(L) -> lists:sum(L) / max(1, length(L)).

now_ms() -> erlang:monotonic_time(millisecond).
