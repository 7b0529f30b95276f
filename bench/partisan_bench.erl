%% -----------------------------------------------------------------------------
%% @doc `make bench': the same workloads over Distributed Erlang and over
%% partisan, between the same two BEAM nodes on this machine.
%%
%% This module is the orchestrator. It runs on its own node (started by
%% `bench/run.sh'), starts the two measured nodes with OTP's `peer' module,
%% starts partisan on both and joins them, then runs every workload over both
%% transports, round after round, alternating which transport goes first.
%% The workloads themselves are in `partisan_bench_load' (loaded on both
%% nodes); the table and the chart are made by `partisan_bench_report'.
%%
%% Distributed Erlang connects the orchestrator to the two nodes, to set each
%% run up and to collect its result (one message at the end); during a run
%% over partisan, the traffic between the two nodes is partisan's, and a
%% process of the other node is addressed by that node's partisan name
%% (`partisan:node()' there).
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench).

-export([main/1]).

-define(LOAD, partisan_bench_load).
-define(RPC_TIMEOUT, 60000).
-define(CONNECT_MS, 30000).
-define(GRACE_MS, 10000).
-define(SETTLE_MS, 150).
-define(KiB, 1024).
-define(MiB, (1024 * 1024)).

-type transport() :: disterl | partisan.
-type workload() :: #{id := term(), kind := atom(), atom() => term()}.
-type run() :: #{workload := term(), transport := transport(), round := pos_integer(),
                 metrics := #{atom() => number()} | {error, term()},
                 long := #{term() => pos_integer()},
                 peaks := #{memory := non_neg_integer(), rss := non_neg_integer()}}.
-export_type([transport/0, workload/0, run/0]).


%% =============================================================================
%% ENTRY POINT
%% =============================================================================


%% @doc `partisan_bench:main(["--root", Dir, "--code", Dir | ["--quick"]])'; halts.
-spec main([string()]) -> no_return().
main(Args) ->
    ok = io:setopts(standard_io, [{encoding, unicode}]),
    ok = io:setopts(standard_error, [{encoding, unicode}]),
    Code =
        try run(parse_args(Args, #{mode => full})) of
            ok -> 0
        catch
            throw:{bench_failed, Why} ->
                io:format(standard_error, "bench: FAILED: ~ts~n", [Why]),
                1;
            Class:Reason:Stack ->
                io:format(standard_error, "bench: FAILED: ~p:~p~n~p~n", [Class, Reason, Stack]),
                1
        end,
    erlang:halt(Code).


parse_args([], Opts) ->
    maps:is_key(root, Opts) andalso maps:is_key(code, Opts)
        orelse fail("usage: partisan_bench [--quick] --root DIR --code DIR", []),
    Opts;
parse_args(["--quick" | Rest], Opts) -> parse_args(Rest, Opts#{mode => quick});
parse_args(["--tls", Dir | Rest], Opts) -> parse_args(Rest, Opts#{mode => tls, tls => Dir});
parse_args(["--root", Dir | Rest], Opts) -> parse_args(Rest, Opts#{root => Dir});
parse_args(["--code", Dir | Rest], Opts) -> parse_args(Rest, Opts#{code => Dir});
parse_args([Other | _], _) -> fail("unknown argument: ~ts", [Other]).


run(#{mode := Mode, root := Root} = Opts) ->
    Started = erlang:monotonic_time(millisecond),
    Config = config(Mode),
    Meta = partisan_bench_report:machine(Root, #{mode => Mode, rounds => rounds(Config)}),
    Nodes = start_nodes(Opts),
    try
        Ctx = setup(Nodes, tls_env(Opts)),
        Runs = run_rounds(Ctx, Config),
        print_engine_stats(Nodes),
        Rows = summarize(workloads(Config, Ctx), Runs),
        Elapsed = erlang:monotonic_time(millisecond) - Started,
        partisan_bench_report:write(Rows, Meta#{elapsed_ms => Elapsed},
                                    filename:join([Root, "bench", "results"]))
    after
        stop_nodes(Nodes)
    end.


%% The engine's own counters on both nodes (stderr): drops, suspensions, and
%% send_nif_max_us, the longest send NIF call (scheduler health).
print_engine_stats(Nodes) ->
    [begin
         Stats = erpc:call(Node, fun() -> partisan_nif:stats(partisan_nif:engine()) end),
         io:format(standard_error, "engine stats of ~s: ~p~n", [Node, Stats])
     end || {_, Node} <- Nodes],
    ok.


%% =============================================================================
%% WHAT RUNS: sizes, counts and time caps per mode
%% =============================================================================


config(full) ->
    #{rounds => 3, senders => [1, 16], bursts => [2000, 100000],
      flow_cap_ms => 3000, burst_cap_ms => 10000, scale => 1,
      latency => #{count => 20000, warmup => 1000, cap_ms => 8000},
      hol => #{count => 2000, warmup => 200, cap_ms => 8000},
      call => #{count => 10000, cap_ms => 5000}};
config(tls) ->
    (config(full))#{tls => true};
config(quick) ->
    #{rounds => 1, senders => [16], bursts => [2000],
      flow_cap_ms => 1500, burst_cap_ms => 5000, scale => 4,
      latency => #{count => 5000, warmup => 500, cap_ms => 3000},
      hol => #{count => 500, warmup => 100, cap_ms => 3000},
      call => #{count => 2000, cap_ms => 2000}}.


%% BENCH_ROUNDS=N overrides the number of rounds (more rounds, steadier medians).
rounds(#{rounds := R}) ->
    case os:getenv("BENCH_ROUNDS") of
        false -> R;
        Text -> list_to_integer(Text)
    end.


%% Total messages of a flow-controlled run (split over its senders), and the
%% window W of each sender, per payload size.
flow_total(64) -> 600000;
flow_total(?KiB) -> 400000;
flow_total(64 * ?KiB) -> 50000;
flow_total(?MiB) -> 4000.

window(Size) when Size =< ?KiB -> 256;
window(Size) when Size =< 64 * ?KiB -> 32;
window(_) -> 8.


%% BENCH_ONLY=Text keeps the workloads whose id, printed, contains Text, or
%% one of the texts separated by `|' (for profiling one row, e.g.
%% BENCH_ONLY="{flow,16,1048576", or a few: BENCH_ONLY="latency|{sparse,1}").
workloads(Config, Ctx) ->
    case os:getenv("BENCH_ONLY") of
        false -> all_workloads(Config, Ctx);
        Only ->
            Texts = string:split(Only, "|", all),
            [W || #{id := Id} = W <- all_workloads(Config, Ctx),
                  lists:any(fun(T) -> string:find(io_lib:format("~p", [Id]), T) =/= nomatch end,
                            Texts)]
    end.


all_workloads(#{tls := true} = Config, _Ctx) ->
    %% TLS rows: small-message throughput and round trip, and 1 MiB throughput.
    [flow(plain, 16, 64, Config), flow(plain, 1, ?MiB, Config),
     #{id => latency, kind => latency, params => maps:get(latency, Config)}];
all_workloads(Config, Ctx) ->
    #{senders := Senders, bursts := Bursts} = Config,
    [flow(plain, N, Size, Config) || N <- Senders, Size <- [64, ?KiB, 64 * ?KiB, ?MiB]]
    ++ [flow(named, 16, Size, Config) || Size <- [64, ?KiB]]
    ++ [flow(pid_ref, N, 64, Config) || N <- Senders]
    ++ [burst(N, M, Config) || M <- Bursts, N <- Senders]
    ++ [#{id => latency, kind => latency, params => maps:get(latency, Config)}]
    ++ [#{id => {sparse, Gap}, kind => latency, params => sparse(Gap, Config)} || Gap <- [1, 10]]
    ++ [#{id => hol, kind => hol, params => maps:get(hol, Config),
          bulk => #{size => 8 * ?MiB, window => 4}}]
    ++ [#{id => {call, Via, N}, kind => call,
          params => (maps:get(call, Config))#{via => Via, callers => N},
          available => Via =:= message orelse maps:get(gen_server, Ctx)}
        || Via <- [message, gen_server, rpc], N <- [1, 16]].


%% A flow-controlled workload; Message is what the senders send (see
%% partisan_bench_load:spawn_senders/2): `named' and `pid_ref' are the rows
%% with a run-time name, and with a pid and a reference, in the messages.
flow(Message, N, Size, #{flow_cap_ms := Cap, scale := Scale}) ->
    #{id => {flow_kind(Message), N, Size, window(Size)}, kind => throughput,
      message => Message, senders => N, size => Size, window => window(Size),
      count => max(1, flow_total(Size) div Scale div N), cap_ms => Cap}.


%% Sparse ping-pong: a ping every Gap ms (after the pong), as many as fit in
%% the latency row's time cap.
sparse(Gap, #{latency := #{cap_ms := Cap}}) ->
    Count = max(50, Cap div (Gap + 1) * 3 div 4),
    #{count => Count, warmup => 20, cap_ms => Cap, gap_ms => Gap}.


flow_kind(plain) -> flow;
flow_kind(named) -> flow_names;
flow_kind(pid_ref) -> flow_pid_ref.


burst(N, M, #{burst_cap_ms := Cap}) ->
    #{id => {burst, N, M}, kind => throughput, senders => N, size => 64,
      window => infinity, count => M, cap_ms => Cap}.


%% =============================================================================
%% NODES
%% =============================================================================


start_nodes(#{root := Root, code := Code} = Opts) ->
    Ebin = filename:join([Root, "_build", "default", "lib", "partisan", "ebin"]),
    filelib:is_regular(filename:join(Ebin, "partisan.app"))
        orelse fail("~ts has no partisan.app: run `rebar3 compile`", [Ebin]),
    Args = ["-pa", Ebin, "-pa", Code, "-setcookie", atom_to_list(erlang:get_cookie()),
            "-kernel", "logger_level", "warning"] ++ emulator_flags()
           ++ case Opts of #{tls := Dir} -> partisan_bench_tls:dist_args(Dir); _ -> [] end,
    Suffix = os:getpid(),
    [start_node("bench_a_" ++ Suffix, Args), start_node("bench_b_" ++ Suffix, Args)].


%% BENCH_SBWT=none runs both nodes with +sbwt/+sbwtdcpu/+sbwtdio none (both
%% transports alike); BENCH_ERL_FLAGS adds any other emulator flags (both nodes,
%% both transports, e.g. "+IOs false"); by default the emulator's own defaults
%% are used.
emulator_flags() ->
    Sbwt = case os:getenv("BENCH_SBWT") of
               false -> [];
               Value -> ["+sbwt", Value, "+sbwtdcpu", Value, "+sbwtdio", Value]
           end,
    Sbwt ++ string:lexemes(os:getenv("BENCH_ERL_FLAGS", ""), " ").


start_node(Name, Args) ->
    Opts = #{name => list_to_atom(Name), host => "127.0.0.1", longnames => true,
             args => Args, wait_boot => 30000},
    case peer:start(Opts) of
        {ok, Peer, Node} -> {Peer, Node};
        {error, Reason} -> fail("could not start node ~ts: ~p", [Name, Reason])
    end.


stop_nodes(Nodes) ->
    [catch peer:stop(Peer) || {Peer, _} <- Nodes],
    ok.


%% Loads the workload code on both nodes, connects them over Distributed Erlang
%% (for the disterl runs), starts partisan on both and joins them. The context
%% keeps, per node, the name partisan gives it (`partisan:node()' there).
setup([{_, A}, {_, B}], TlsEnv) ->
    progress("nodes ~ts and ~ts up; starting partisan", [A, B]),
    [ok = rpc(N, ?LOAD, load, []) || N <- [A, B]],
    true = rpc(A, net_kernel, connect_node, [B]),
    Env = [{listen_addrs, [#{ip => {127, 0, 0, 1}, port => 0}]},
           {channels, #{bulk => #{parallelism => 1}}}] ++ TlsEnv ++ bench_env(),
    SpecA = start_partisan(A, Env),
    _ = start_partisan(B, Env),
    Names = #{A => rpc(A, partisan, node, []), B => rpc(B, partisan, node, [])},
    ok = rpc(B, partisan_peer_service, join, [SpecA]),
    [rpc(X, ?LOAD, wait_connected, [maps:get(Y, Names), ?CONNECT_MS]) orelse
         fail("partisan: ~ts is not fully connected to ~ts", [X, maps:get(Y, Names)])
     || {X, Y} <- [{A, B}, {B, A}]],
    GenServer = lists:all(fun(N) -> rpc(N, code, which, [partisan_gen_server]) =/= non_existing end,
                          [A, B]),
    #{a => A, b => B, partisan_names => Names, gen_server => GenServer}.


start_partisan(Node, Env) ->
    case rpc(Node, ?LOAD, start_partisan, [Env]) of
        {ok, Spec} -> Spec;
        {error, Reason} -> fail("partisan did not start on ~ts: ~p", [Node, Reason])
    end.


%% =============================================================================
%% ROUNDS
%% =============================================================================


run_rounds(Ctx, Config) ->
    Workloads = workloads(Config, Ctx),
    warm_up(Ctx),
    Rounds = rounds(Config),
    lists:foldl(fun(R, Done) -> Done ++ run_round(Ctx, Workloads, R, Rounds, failed(Done)) end,
                [], lists:seq(1, Rounds)).


%% Odd rounds run Distributed Erlang first, even rounds partisan first. A
%% workload that failed over a transport is not run over it again (a broken
%% transport would otherwise cost a time-out per round).
run_round(Ctx, Workloads, Round, Rounds, Failed) ->
    Order = [T || T <- case Round rem 2 of 1 -> [disterl, partisan]; 0 -> [partisan, disterl] end,
                  lists:member(T, transports())],
    [run_one(Ctx, W, T, Round, Rounds) ||
        #{id := Id} = W <- Workloads, runnable(W), T <- Order,
        not lists:member({Id, T}, Failed)].


%% BENCH_TRANSPORTS=partisan (or disterl) runs one transport only, for
%% profiling it alone; the report then has no ratios.
transports() ->
    case os:getenv("BENCH_TRANSPORTS") of
        false -> [disterl, partisan];
        Text -> [list_to_existing_atom(T) || T <- string:split(Text, ",", all)]
    end.


failed(Runs) ->
    [{Id, T} || #{workload := Id, transport := T, metrics := {error, _}} <- Runs].


runnable(#{kind := call, available := Available}) -> Available;
runnable(_) -> true.


warm_up(Ctx) ->
    progress("warming up both transports", []),
    W = #{id => warm_up, kind => throughput, senders => 2, size => ?KiB, window => 256,
          count => 10000, cap_ms => 2000},
    [run_workload(Ctx, W, T) || T <- [disterl, partisan]],
    ok.


run_one(Ctx, Workload, Transport, Round, Rounds) ->
    #{id := Id} = Workload,
    T0 = erlang:monotonic_time(millisecond),
    Run = with_probes(Ctx, fun() -> run_workload(Ctx, Workload, Transport) end),
    Ms = erlang:monotonic_time(millisecond) - T0,
    progress("round ~b/~b  ~-42ts ~-8ts ~ts  (~.1f s)",
             [Round, Rounds, partisan_bench_report:workload_label(Id), Transport,
              partisan_bench_report:headline(Id, maps:get(metrics, Run)), Ms / 1000]),
    Run#{workload => Id, transport => Transport, round => Round}.


%% Runs Fun with a long_schedule monitor on both nodes and a memory sampler on
%% the sending node.
with_probes(#{a := A, b := B}, Fun) ->
    Monitors = [{N, rpc(N, ?LOAD, start_monitor, [Role])} || {Role, N} <- [{a, A}, {b, B}]],
    Sampler = rpc(A, ?LOAD, start_sampler, []),
    SlowBefore = [rpc(N, ?LOAD, slow_sends, []) || N <- [A, B]],
    OsPids = [rpc(N, os, getpid, []) || N <- [A, B]],
    CpuBefore = cpu_us(OsPids),
    Metrics0 =
        try Fun()
        catch Class:Reason -> {error, {Class, Reason}}
        end,
    Metrics = with_cpu(Metrics0, cpu_us(OsPids) - CpuBefore),
    SlowSends = lists:sum([rpc(N, ?LOAD, slow_sends, []) || N <- [A, B]]) - lists:sum(SlowBefore),
    Peaks = rpc(A, ?LOAD, stop_sampler, [Sampler]),
    Long = lists:foldl(fun({N, M}, Acc) -> merge_counts(rpc(N, ?LOAD, stop_monitor, [M]), Acc) end,
                       #{}, Monitors),
    flush(),
    timer:sleep(?SETTLE_MS),
    #{metrics => Metrics, peaks => Peaks, long => Long, slow_sends => SlowSends}.


%% CPU time (user + system, all threads) the OS processes of both nodes used,
%% in µs: the nanosecond run time of each thread (/proc/PID/task/*/schedstat),
%% or, where that is missing, the process's clock ticks (/proc/PID/stat, 10 ms
%% each: too coarse for the short rows); 0 where /proc is missing.
cpu_us(OsPids) ->
    lists:sum([process_cpu_us(P) || P <- OsPids]).


process_cpu_us(OsPid) ->
    case threads_cpu_ns(OsPid) of
        {ok, Ns} -> Ns div 1000;
        error -> ticks_cpu_us(OsPid)
    end.


threads_cpu_ns(OsPid) ->
    Dir = "/proc/" ++ OsPid ++ "/task",
    case file:list_dir(Dir) of
        {ok, Tids} ->
            Times = [thread_cpu_ns(Dir ++ "/" ++ Tid ++ "/schedstat") || Tid <- Tids],
            case [T || {ok, T} <- Times] of
                [] -> error;
                Known -> {ok, lists:sum(Known)}
            end;
        {error, _} ->
            error
    end.


%% The first field of schedstat: time on a CPU, in ns (a thread that ended
%% meanwhile is skipped).
thread_cpu_ns(File) ->
    case file:read_file(File) of
        {ok, Line} ->
            [OnCpu | _] = string:lexemes(Line, " \n"),
            {ok, binary_to_integer(OnCpu)};
        {error, _} ->
            error
    end.


ticks_cpu_us(OsPid) ->
    case file:read_file("/proc/" ++ OsPid ++ "/stat") of
        {ok, Stat} ->
            %% The fields after the command name, which is in parentheses.
            [_, After] = string:split(Stat, ")", trailing),
            Fields = string:lexemes(After, " "),
            %% utime and stime are fields 14 and 15 of the line, 12 and 13 here.
            Ticks = binary_to_integer(lists:nth(12, Fields))
                    + binary_to_integer(lists:nth(13, Fields)),
            Ticks * 1000000 div clock_ticks();
        {error, _} ->
            0
    end.


clock_ticks() ->
    case persistent_term:get({?MODULE, clk_tck}, undefined) of
        undefined ->
            Hz = try list_to_integer(string:trim(os:cmd("getconf CLK_TCK")))
                 catch error:badarg -> 100
                 end,
            persistent_term:put({?MODULE, clk_tck}, Hz),
            Hz;
        Hz ->
            Hz
    end.


%% CPU per message delivered, for throughput runs.
with_cpu(#{delivered := Got} = Metrics, CpuUs) when Got > 0, CpuUs > 0 ->
    Metrics#{cpu_us_per_msg => CpuUs / Got};
with_cpu(Metrics, _) ->
    Metrics.


merge_counts(M1, M2) ->
    maps:fold(fun(K, V, Acc) -> maps:update_with(K, fun(C) -> C + V end, V, Acc) end, M2, M1).


%% =============================================================================
%% ONE RUN OF ONE WORKLOAD OVER ONE TRANSPORT
%% =============================================================================


via(disterl, _Channel) -> disterl;
via(partisan, undefined) -> {partisan, #{}};
via(partisan, Channel) -> {partisan, #{channel => Channel}}.


%% The name of Node (a Distributed Erlang name) on Transport.
node_name(disterl, _Ctx, Node) -> Node;
node_name(partisan, #{partisan_names := Names}, Node) -> maps:get(Node, Names).


%% How the processes of a run address Pid (which the orchestrator got over
%% Distributed Erlang): as it is, unless partisan knows its node by another
%% name (see partisan_bench_load:dest()).
dest(Transport, Ctx, Pid) ->
    case node_name(Transport, Ctx, node(Pid)) of
        Node when Node =:= node(Pid) -> Pid;
        Node -> {at, Node, Pid}
    end.


%% Where the receiver of Sender returns its credits (partisan_bench_load:reply_to()).
reply_to(plain, Transport, Ctx, Sender) ->
    dest(Transport, Ctx, Sender);
reply_to(named, Transport, Ctx, Sender) ->
    #{name_in_message => node_name(Transport, Ctx, node(Sender))};
reply_to(pid_ref, Transport, Ctx, Sender) ->
    #{pid_in_message => Sender, node => node_name(Transport, Ctx, node(Sender))}.


run_workload(#{a := A, b := B} = Ctx, #{kind := throughput} = W, Transport) ->
    #{senders := N, size := Size, window := Window, count := Count, cap_ms := Cap} = W,
    Message = maps:get(message, W, plain),
    Via = via(Transport, undefined),
    Ref = make_ref(),
    Spec = #{via => Via, count => Count, payload => rand:bytes(Size), window => Window,
             cap_ms => Cap, message => Message},
    Senders = rpc(A, ?LOAD, spawn_senders, [N, Spec]),
    ReplyTos = [reply_to(Message, Transport, Ctx, S) || S <- Senders],
    Drops0 = engine_drops(Transport, B),
    Receivers = rpc(B, ?LOAD, spawn_receivers, [ReplyTos, Via, Window, {self(), Ref}, Cap + ?GRACE_MS]),
    Watch = watch(Senders),
    T0 = rpc(A, ?LOAD, go, [lists:zip(Senders, [dest(Transport, Ctx, R) || R <- Receivers])]),
    Result = await(Ref, Cap + ?GRACE_MS + 5000, Watch),
    _ = rpc(A, ?LOAD, kill, [Senders]),
    throughput_metrics(Result, T0, N * Count, drops_since(Drops0, engine_drops(Transport, B)));

run_workload(#{a := A, b := B} = Ctx, #{kind := latency, params := Params}, Transport) ->
    Via = via(Transport, undefined),
    Ref = make_ref(),
    Pinger = rpc(A, ?LOAD, spawn_pinger, [Via, Params, {self(), Ref}]),
    Ponger = rpc(B, ?LOAD, spawn_ponger, [Via, dest(Transport, Ctx, Pinger)]),
    Watch = watch([Pinger, Ponger]),
    _ = rpc(A, ?LOAD, go, [[{Pinger, dest(Transport, Ctx, Ponger)}]]),
    Result = await(Ref, maps:get(cap_ms, Params) * 2 + 5000, Watch),
    ok = rpc(B, ?LOAD, kill, [[Ponger]]),
    latency_metrics(Result, maps:get(count, Params));

run_workload(#{a := A, b := B} = Ctx, #{kind := hol, params := Params, bulk := Bulk},
             Transport) ->
    #{size := Size, window := Window} = Bulk,
    Via = via(Transport, undefined),
    BulkVia = via(Transport, bulk),
    Ref = make_ref(),
    Dest = fun(Pid) -> dest(Transport, Ctx, Pid) end,
    Streamer = rpc(A, ?LOAD, spawn_streamer, [BulkVia, #{payload => rand:bytes(Size),
                                                         window => Window}]),
    Sink = rpc(B, ?LOAD, spawn_sink, [BulkVia, Dest(Streamer), Window]),
    Pinger = rpc(A, ?LOAD, spawn_pinger, [Via, Params, {self(), Ref}]),
    Ponger = rpc(B, ?LOAD, spawn_ponger, [Via, Dest(Pinger)]),
    Watch = watch([Streamer, Sink, Pinger, Ponger]),
    _ = rpc(A, ?LOAD, go, [[{Streamer, Dest(Sink)}, {Pinger, Dest(Ponger)}]]),
    Result = await(Ref, maps:get(cap_ms, Params) * 2 + 5000, Watch),
    Stream = stop_stream(Streamer),
    ok = rpc(A, ?LOAD, kill, [[Streamer, Pinger]]),
    ok = rpc(B, ?LOAD, kill, [[Sink, Ponger]]),
    hol_metrics(latency_metrics(Result, maps:get(count, Params)), Stream);

run_workload(#{a := A, b := B} = Ctx, #{kind := call, params := Params}, Transport) ->
    #{via := Via, callers := N} = Params,
    Api = call_api(Via, Transport),
    NodeB = node_name(Transport, Ctx, B),
    Server = case Via of
        gen_server -> {ok, S} = rpc(B, ?LOAD, start_echo, [Api]), [S];
        message -> {ok, S} = rpc(B, ?LOAD, start_message_echo, [Api]), [S];
        rpc -> []
    end,
    Target = case Via of
        rpc -> NodeB;
        _ -> {rpc(A, ?LOAD, echo_name, [Api]), NodeB}
    end,
    Ref = make_ref(),
    Callers = [rpc(A, ?LOAD, spawn_caller, [Api, Params, rand:bytes(64), {self(), Ref}])
               || _ <- lists:seq(1, N)],
    Watch = watch(Callers ++ Server),
    _ = rpc(A, ?LOAD, go, [[{Caller, Target} || Caller <- Callers]]),
    Deadline = maps:get(cap_ms, Params) + ?GRACE_MS,
    Results = [await(Ref, Deadline, Watch) || _ <- Callers],
    ok = rpc(B, ?LOAD, kill, [Server]),
    call_metrics(Results).


%% What a caller calls: the behaviour's call over Distributed Erlang or
%% partisan, an rpc to the echo function, or a bare request and reply.
call_api(message, disterl) -> message_disterl;
call_api(message, partisan) -> message_partisan;
call_api(gen_server, disterl) -> gen_server;
call_api(gen_server, partisan) -> partisan_gen_server;
call_api(rpc, disterl) -> rpc;
call_api(rpc, partisan) -> partisan_rpc.


%% Monitors the processes of a run (before it starts), so that a crash ends
%% the wait at once.
watch(Pids) ->
    [monitor(process, Pid) || Pid <- Pids].


%% The run's result, `{crashed, Reason}' if a watched process died abnormally,
%% or `timeout'.
await(Ref, Timeout, Watch) ->
    Result = await_loop(Ref, Watch, erlang:monotonic_time(millisecond) + Timeout),
    [demonitor(M, [flush]) || M <- Watch],
    Result.


await_loop(Ref, Watch, Deadline) ->
    receive
        {bench_result, Ref, Result} ->
            Result;
        {'DOWN', M, process, _, Reason} when Reason =/= normal ->
            case lists:member(M, Watch) of
                true -> {crashed, Reason};
                false -> await_loop(Ref, Watch, Deadline)
            end
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        timeout
    end.


stop_stream(Streamer) ->
    Ref = make_ref(),
    Down = monitor(process, Streamer),
    Streamer ! {bench_stop, self(), Ref},
    receive
        {bench_stream, Ref, Stream} -> demonitor(Down, [flush]), Stream;
        {'DOWN', Down, process, _, Reason} -> {stream_crashed, Reason}
    after 20000 ->
        demonitor(Down, [flush]),
        stream_timeout
    end.


flush() ->
    receive _ -> flush() after 0 -> ok end.


%% =============================================================================
%% METRICS OF A RUN
%% =============================================================================


%% Dropped: the messages the receiving engine dropped during the run, by
%% counter (partisan only). A run whose receivers got nothing stalled: a
%% flow-controlled sender stops at its window, and waits out the cap.
throughput_metrics(#{received := Got, bytes := Bytes, sent := Sent, t_end := TEnd}, T0, Planned,
                   Dropped)
when Got > 0 ->
    Us = max(1, TEnd - T0),
    #{msgs_per_s => Got * 1.0e6 / Us, mb_per_s => Bytes / Us, delivered => Got,
      lost => Sent - Got, capped => Sent < Planned, dropped => Dropped};
throughput_metrics(#{received := 0, sent := Sent}, _, _, Dropped) when Sent > 0 ->
    {error, {stalled, #{sent => Sent, delivered => 0, dropped => Dropped}}};
throughput_metrics(#{received := 0}, _, _, _) ->
    {error, nothing_received};
throughput_metrics(Other, _, _, _) ->
    {error, Other}.


engine_drops(disterl, _Node) -> #{};
engine_drops(partisan, Node) -> rpc(Node, ?LOAD, engine_drops, []).


%% The counters that grew, and by how much.
drops_since(Before, After) ->
    maps:filter(fun(_, N) -> N > 0 end,
                maps:map(fun(Key, N) -> N - maps:get(Key, Before, 0) end, After)).


latency_metrics(#{rtts_us := []}, _Planned) ->
    {error, no_round_trip};
latency_metrics(#{rtts_us := Rtts}, Planned) ->
    Sorted = lists:sort(Rtts),
    #{p50 => percentile(Sorted, 0.50), p99 => percentile(Sorted, 0.99),
      p999 => percentile(Sorted, 0.999), capped => length(Sorted) < Planned};
latency_metrics(Other, _Planned) ->
    {error, Other}.


%% The ping-pong figures count only if the stream ran beside them.
hol_metrics({error, _} = Error, _Stream) ->
    Error;
hol_metrics(Latency, #{acked_bytes := Bytes, elapsed_us := Us}) when Bytes > 0 ->
    Latency#{bulk_mb_per_s => Bytes / max(1, Us)};
hol_metrics(_Latency, #{acked_bytes := 0}) ->
    {error, stream_not_acknowledged};
hol_metrics(_Latency, Stream) ->
    {error, Stream}.


%% Calls per second of all callers together, and the median of the callers'
%% median round trips.
call_metrics(Results) ->
    case lists:all(fun(R) -> is_map(R) andalso maps:get(calls, R, 0) > 0 end, Results) of
        true ->
            Calls = lists:sum([C || #{calls := C} <- Results]),
            Us = lists:max([E || #{elapsed_us := E} <- Results]),
            #{calls_per_s => Calls * 1.0e6 / max(1, Us),
              rtt_p50 => median([P || #{rtt_p50_us := P} <- Results])};
        false ->
            {error, [R || R <- Results, not is_map(R)]}
    end.


median(Xs) ->
    lists:nth((length(Xs) + 1) div 2, lists:sort(Xs)).


percentile(Sorted, P) ->
    N = length(Sorted),
    lists:nth(max(1, min(N, ceil(P * N))), Sorted).


%% =============================================================================
%% SUMMARY: one row per figure, medians over rounds
%% =============================================================================


%% The rows of the table for each workload: {label suffix (or {label, L}),
%% metric, unit, whether higher or lower is better}.
%% Throughput rows of small messages also show the CPU time both nodes spent
%% per message delivered (what a machine with more cores would be bound by).
rows(#{kind := throughput, id := Id}) when element(1, Id) =:= flow, element(3, Id) =< 1024;
                                           element(1, Id) =:= burst ->
    [{"", msgs_per_s, "msg/s", higher}, {" CPU per message", cpu_us_per_msg, "µs", lower}];
rows(#{kind := throughput}) -> [{"", msgs_per_s, "msg/s", higher}];
rows(#{kind := latency}) -> [{" p50", p50, "µs", lower}, {" p99", p99, "µs", lower},
                             {" p99.9", p999, "µs", lower}];
rows(#{kind := hol}) -> [{" p50", p50, "µs", lower}, {" p99", p99, "µs", lower},
                         {{label, "HOL: the 8 MiB stream itself"}, bulk_mb_per_s, "MB/s", higher}];
rows(#{kind := call}) -> [{"", calls_per_s, "calls/s", higher},
                          {" median round trip", rtt_p50, "µs", lower}].


summarize(Workloads, Runs) ->
    lists:append([summarize_workload(W, Runs) || W <- Workloads]).


summarize_workload(#{id := Id} = W, Runs) ->
    Mine = [R || #{workload := Wid} = R <- Runs, Wid =:= Id],
    Rows = rows(W),
    [summarize_row(W, Row, Mine, First) ||
        {Row, First} <- lists:zip(Rows, [true | lists:duplicate(length(Rows) - 1, false)])].


summarize_row(#{id := Id} = W, {Name, Metric, Unit, Better}, Runs, First) ->
    Label = case Name of
        {label, L} -> L;
        Suffix -> partisan_bench_report:workload_label(Id) ++ Suffix
    end,
    Base = #{label => Label, unit => Unit,
             better => Better, workload => Id, first => First},
    case {W, Runs} of
        {#{kind := call, available := false}, _} ->
            Base#{na => "n/a (partisan_gen_server not yet implemented)"};
        _ ->
            Base#{disterl => transport_summary(disterl, Metric, Runs),
                  partisan => transport_summary(partisan, Metric, Runs),
                  ratios => round_ratios(Metric, Runs)}
    end.


transport_summary(Transport, Metric, Runs) ->
    Mine = [R || #{transport := T} = R <- Runs, T =:= Transport],
    Values = [V || #{metrics := #{Metric := V}} <- Mine],
    Errors = [E || #{metrics := {error, E}} <- Mine],
    #{values => Values, runs => length(Mine), errors => Errors,
      extra => extra(Metric, Mine),
      lost => lists:sum([L || #{metrics := #{lost := L}} <- Mine]),
      capped => lists:any(fun(#{metrics := M}) -> is_map(M) andalso maps:get(capped, M, false) end,
                          Mine),
      long => lists:foldl(fun(#{long := L}, Acc) -> merge_counts(L, Acc) end, #{}, Mine),
      slow_sends => lists:sum([N || #{slow_sends := N} <- Mine]),
      peak_memory => lists:max([0 | [M || #{peaks := #{memory := M}} <- Mine]]),
      peak_rss => lists:max([0 | [M || #{peaks := #{rss := M}} <- Mine]])}.


%% MB/s beside messages/s.
extra(msgs_per_s, Runs) -> [V || #{metrics := #{mb_per_s := V}} <- Runs];
extra(_, _) -> [].


%% partisan / disterl of the same round, for each round where both ran.
round_ratios(Metric, Runs) ->
    ByRound = maps:groups_from_list(fun(#{round := R}) -> R end, Runs),
    [P / D || {_, Pair} <- lists:sort(maps:to_list(ByRound)),
              {D, P} <- [pair_values(Metric, Pair)], is_number(D), is_number(P), D > 0].


pair_values(Metric, Pair) ->
    Value = fun(T) -> hd([V || #{transport := T1, metrics := #{Metric := V}} <- Pair, T1 =:= T]
                         ++ [none]) end,
    {Value(disterl), Value(partisan)}.


%% =============================================================================
%% HELPERS
%% =============================================================================


rpc(Node, M, F, A) ->
    erpc:call(Node, M, F, A, ?RPC_TIMEOUT).


progress(Fmt, Args) ->
    io:format(standard_error, "bench: " ++ Fmt ++ "~n", Args).


fail(Fmt, Args) ->
    throw({bench_failed, flat(Fmt, Args)}).


flat(Fmt, Args) ->
    lists:flatten(io_lib:format(Fmt, Args)).


%% BENCH_PARTISAN_ENV="[{io_nice, 10}]" adds partisan settings (an Erlang
%% list of {Key, Value}) to both nodes, to try a setting out.
tls_env(#{tls := Dir}) -> partisan_bench_tls:partisan_env(Dir);
tls_env(_) -> [].


bench_env() ->
    case os:getenv("BENCH_PARTISAN_ENV") of
        false -> [];
        Text ->
            {ok, Tokens, _} = erl_scan:string(Text ++ "."),
            {ok, Env} = erl_parse:parse_term(Tokens),
            Env
    end.
