%% -----------------------------------------------------------------------------
%% @doc The workload side of `make bench': code that runs on the two measured
%% nodes (the orchestrator, `partisan_bench', calls it with erpc).
%%
%% Every workload is a set of processes spawned "parked" on both nodes, wired
%% to each other by the orchestrator (pids travel over Distributed Erlang
%% before the measurement starts), then released with {@link go/1}. During a
%% measurement the only traffic between the two nodes is the workload's own,
%% over the transport being measured (`via()'); results go to the
%% orchestrator as one message at the end.
%%
%% Every atom in a workload message appears in this module, which is loaded on
%% both nodes, so a receiver that decodes safely knows them all.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_load).

-behaviour(gen_server).

%% setup and teardown, called by the orchestrator
-export([load/0]).
-export([start_partisan/1]).
-export([wait_connected/2]).
-export([go/1]).
-export([kill/1]).

%% throughput
-export([spawn_senders/2]).
-export([spawn_receivers/5]).

%% latency and head-of-line blocking
-export([spawn_pinger/3]).
-export([spawn_ponger/2]).
-export([spawn_streamer/2]).
-export([spawn_sink/3]).

%% gen_server:call
-export([start_echo/1]).
-export([echo_name/1]).
-export([spawn_caller/4]).

%% health and memory probes
-export([start_monitor/1]).
-export([stop_monitor/1]).
-export([start_sampler/0]).
-export([stop_sampler/1]).

%% gen_server callbacks of the echo server
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).

-type via() :: disterl | {partisan, map()}.
-type sender_spec() :: #{
    via := via(),
    count := pos_integer(),
    payload := binary(),
    window := pos_integer() | infinity,
    cap_ms := pos_integer()
}.
-export_type([via/0, sender_spec/0]).

-define(TIME_CHECK_EVERY, 256).
-define(SAMPLE_MS, 10).


%% =============================================================================
%% SETUP
%% =============================================================================


%% @doc Makes sure this module (and so its atoms) is loaded on this node.
-spec load() -> ok.
load() ->
    {module, ?MODULE} = code:ensure_loaded(?MODULE),
    ok.


%% @doc Starts partisan on this node with `Env' (application env keys).
-spec start_partisan([{atom(), term()}]) -> {ok, map()} | {error, term()}.
start_partisan(Env) ->
    [ok = application:set_env(partisan, K, V) || {K, V} <- Env],
    case partisan:start() of
        {ok, _} -> {ok, partisan:node_spec()};
        Other -> {error, Other}
    end.


%% @doc Waits until partisan sees `Node' and every connection to it is up.
-spec wait_connected(node(), pos_integer()) -> boolean().
wait_connected(Node, TimeoutMs) ->
    Deadline = now_ms() + TimeoutMs,
    wait_until(fun() -> partisan:is_fully_connected(Node) end, Deadline).


wait_until(Pred, Deadline) ->
    case Pred() of
        true -> true;
        false ->
            case now_ms() > Deadline of
                true -> false;
                false -> timer:sleep(20), wait_until(Pred, Deadline)
            end
    end.


%% @doc Releases parked processes, each with its peer; returns the start time
%% (OS wall clock, microseconds: comparable between the two nodes).
-spec go([{pid(), term()}]) -> integer().
go(Pairs) ->
    T0 = os:system_time(microsecond),
    [Pid ! {bench_go, Peer} || {Pid, Peer} <- Pairs],
    T0.


-spec kill([pid()]) -> ok.
kill(Pids) ->
    [exit(Pid, kill) || Pid <- Pids],
    ok.


%% =============================================================================
%% THROUGHPUT: senders on one node, one receiver per sender on the other
%% =============================================================================


%% @doc Spawns N parked senders; each, once released with its receiver, sends
%% `count' messages `{bench_data, Payload}' (or fewer, if `cap_ms' runs out),
%% keeping at most `window' unacknowledged, then `{bench_end, Sent}'.
-spec spawn_senders(pos_integer(), sender_spec()) -> [pid()].
spawn_senders(N, Spec) ->
    [spawn_parked(fun(Receiver) -> sender(Receiver, Spec) end) || _ <- lists:seq(1, N)].


sender(Receiver, #{via := Via, count := Count, payload := Payload,
                   window := Window, cap_ms := CapMs}) ->
    Deadline = now_ms() + CapMs,
    Msg = {bench_data, Payload},
    Sent = send_loop(Via, Receiver, Msg, Count, Window, Deadline, 0, 0),
    _ = send(Via, Receiver, {bench_end, Sent}).


send_loop(_Via, _To, _Msg, Count, _Window, _Deadline, Count, _Acked) ->
    Count;
send_loop(Via, To, Msg, Count, Window, Deadline, Sent, Acked)
when Window =/= infinity, Sent - Acked >= Window ->
    receive
        {bench_credit, K} ->
            send_loop(Via, To, Msg, Count, Window, Deadline, Sent, Acked + K)
    after max(0, Deadline - now_ms()) ->
        Sent
    end;
send_loop(Via, To, Msg, Count, Window, Deadline, Sent, Acked) ->
    case Sent rem ?TIME_CHECK_EVERY =:= 0 andalso now_ms() > Deadline of
        true ->
            Sent;
        false ->
            Sent1 = Sent + ok_count(send(Via, To, Msg)),
            send_loop(Via, To, Msg, Count, Window, Deadline, Sent1, Acked)
    end.


%% @doc Spawns one receiver per sender (in order) and a collector; returns the
%% receivers. A receiver counts `{bench_data, _}' messages and their bytes,
%% returns `{bench_credit, Window div 2}' every `Window div 2' of them, and
%% on `{bench_end, Sent}' reports to the collector. The collector sends
%% `{bench_result, Ref, Result}' to `Owner' once every receiver reported, or
%% `{bench_result, Ref, timeout}' after `CapMs'.
-spec spawn_receivers([pid()], via(), pos_integer() | infinity, {pid(), reference()},
                      pos_integer()) -> [pid()].
spawn_receivers(Senders, Via, Window, {Owner, Ref}, CapMs) ->
    Self = self(),
    Collector = spawn(fun() ->
        process_flag(trap_exit, true),
        Receivers = [spawn_link(fun() -> receiver(Via, S, Window) end) || S <- Senders],
        Self ! {bench_receivers, self(), Receivers},
        Owner ! {bench_result, Ref, collect(Receivers, CapMs)}
    end),
    receive
        {bench_receivers, Collector, Receivers} -> Receivers
    after 10000 ->
        exit(Collector, kill),
        []
    end.


%% @doc A receiver (as above) that never reports: the sink of a stream.
-spec spawn_sink(via(), pid(), pos_integer()) -> pid().
spawn_sink(Via, Streamer, Window) ->
    spawn(fun() -> receiver(Via, Streamer, Window) end).


receiver(Via, Sender, Window) ->
    Credit = case Window of infinity -> infinity; _ -> max(1, Window div 2) end,
    receive_loop(Via, Sender, Credit, Credit, 0, 0).


receive_loop(Via, Sender, Credit, Left, N, Bytes) ->
    receive
        {bench_data, Bin} when Left =:= 1 ->
            _ = send(Via, Sender, {bench_credit, Credit}),
            receive_loop(Via, Sender, Credit, Credit, N + 1, Bytes + byte_size(Bin));
        {bench_data, Bin} ->
            receive_loop(Via, Sender, Credit, decr(Left), N + 1, Bytes + byte_size(Bin));
        {bench_end, Sent} ->
            exit({bench_received, #{received => N, bytes => Bytes, sent => Sent,
                                    t_end => os:system_time(microsecond)}})
    end.


decr(infinity) -> infinity;
decr(N) -> N - 1.


collect(Receivers, CapMs) ->
    Deadline = now_ms() + CapMs,
    Empty = #{received => 0, bytes => 0, sent => 0, t_end => 0},
    Result = collect(length(Receivers), Deadline, Empty),
    [exit(R, kill) || R <- Receivers],
    Result.


collect(0, _Deadline, Acc) ->
    Acc;
collect(Left, Deadline, Acc) ->
    receive
        {'EXIT', _, {bench_received, R}} ->
            collect(Left - 1, Deadline, merge_received(R, Acc));
        {'EXIT', _, Other} ->
            {error, Other}
    after max(0, Deadline - now_ms()) ->
        timeout
    end.


merge_received(#{received := N, bytes := B, sent := S, t_end := T}, Acc) ->
    #{received := N0, bytes := B0, sent := S0, t_end := T0} = Acc,
    Acc#{received := N0 + N, bytes := B0 + B, sent := S0 + S, t_end := max(T0, T)}.


%% =============================================================================
%% LATENCY: ping-pong; HEAD-OF-LINE: the same beside a bulk stream
%% =============================================================================


%% @doc A parked pinger: once released with its ponger, it does `warmup'
%% round trips, then up to `count' timed ones (or fewer, within `cap_ms'),
%% and sends `{bench_result, Ref, #{rtts_us => [...]}}' to `Owner'.
-spec spawn_pinger(via(), map(), {pid(), reference()}) -> pid().
spawn_pinger(Via, #{count := Count, warmup := Warm, cap_ms := CapMs}, {Owner, Ref}) ->
    spawn_parked(fun(Ponger) ->
        _ = ping_loop(Via, Ponger, Warm, now_ms() + CapMs, []),
        Rtts = ping_loop(Via, Ponger, Count, now_ms() + CapMs, []),
        Owner ! {bench_result, Ref, #{rtts_us => Rtts}}
    end).


ping_loop(_Via, _Ponger, 0, _Deadline, Acc) ->
    Acc;
ping_loop(Via, Ponger, N, Deadline, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    ok = send(Via, Ponger, {bench_ping, N}),
    receive
        {bench_pong, N} ->
            T1 = erlang:monotonic_time(nanosecond),
            Acc1 = [(T1 - T0) / 1000 | Acc],
            case N rem 64 =:= 0 andalso now_ms() > Deadline of
                true -> Acc1;
                false -> ping_loop(Via, Ponger, N - 1, Deadline, Acc1)
            end
    after max(0, Deadline - now_ms()) ->
        Acc
    end.


%% @doc Answers every `{bench_ping, N}' from `Pinger' with `{bench_pong, N}'.
-spec spawn_ponger(via(), pid()) -> pid().
spawn_ponger(Via, Pinger) ->
    spawn(fun() -> pong_loop(Via, Pinger) end).


pong_loop(Via, Pinger) ->
    receive
        {bench_ping, N} ->
            _ = send(Via, Pinger, {bench_pong, N}),
            pong_loop(Via, Pinger)
    end.


%% @doc A parked streamer: sends `{bench_data, Payload}' with at most `window'
%% unacknowledged until told `{bench_stop, Owner, Ref}', then reports
%% `{bench_stream, Ref, #{acked_bytes, elapsed_us}}' to that owner.
-spec spawn_streamer(via(), map()) -> pid().
spawn_streamer(Via, #{payload := Payload, window := Window}) ->
    spawn_parked(fun(Sink) ->
        T0 = erlang:monotonic_time(microsecond),
        stream_loop(Via, Sink, {bench_data, Payload}, byte_size(Payload), Window, T0, 0, 0)
    end).


stream_loop(Via, Sink, Msg, Size, Window, T0, Sent, Acked) ->
    receive
        {bench_stop, Owner, Ref} ->
            Elapsed = erlang:monotonic_time(microsecond) - T0,
            Owner ! {bench_stream, Ref, #{acked_bytes => Acked * Size, elapsed_us => Elapsed}};
        {bench_credit, K} ->
            stream_loop(Via, Sink, Msg, Size, Window, T0, Sent, Acked + K)
    after wait_for(Sent - Acked, Window) ->
        Sent1 = Sent + ok_count(send(Via, Sink, Msg)),
        stream_loop(Via, Sink, Msg, Size, Window, T0, Sent1, Acked)
    end.


wait_for(InFlight, Window) when InFlight >= Window -> infinity;
wait_for(_, _) -> 0.


%% =============================================================================
%% GEN_SERVER CALL
%% =============================================================================


%% @doc Starts an echo server with `gen_server' or `partisan_gen_server' (the
%% same callback module: this one), registered as {@link echo_name/1}.
-spec start_echo(gen_server | partisan_gen_server) -> {ok, pid()} | {error, term()}.
start_echo(Behaviour) ->
    case Behaviour:start({local, echo_name(Behaviour)}, ?MODULE, [], []) of
        {ok, Pid} -> {ok, Pid};
        Other -> {error, Other}
    end.


%% @doc The registered name of the echo server of `Behaviour'.
-spec echo_name(gen_server | partisan_gen_server) -> atom().
echo_name(gen_server) -> bench_echo_gen_server;
echo_name(partisan_gen_server) -> bench_echo_partisan_gen_server.


%% @doc A parked caller: once released (with the server ref), makes up to
%% `count' calls `{bench_echo, Payload}' within `cap_ms' and sends
%% `{bench_result, Ref, #{calls, elapsed_us}}' to `Owner'.
-spec spawn_caller(gen_server | partisan_gen_server, map(), binary(), {pid(), reference()}) ->
    pid().
spawn_caller(Behaviour, #{count := Count, cap_ms := CapMs}, Payload, {Owner, Ref}) ->
    spawn_parked(fun(Server) ->
        T0 = erlang:monotonic_time(microsecond),
        Calls = call_loop(Behaviour, Server, {bench_echo, Payload}, Count, now_ms() + CapMs, 0),
        Elapsed = erlang:monotonic_time(microsecond) - T0,
        Owner ! {bench_result, Ref, #{calls => Calls, elapsed_us => Elapsed}}
    end).


call_loop(_Behaviour, _Server, _Req, Count, _Deadline, Count) ->
    Count;
call_loop(Behaviour, Server, Req, Count, Deadline, N) ->
    case N rem 64 =:= 0 andalso now_ms() > Deadline of
        true ->
            N;
        false ->
            Req = Behaviour:call(Server, Req, 5000),
            call_loop(Behaviour, Server, Req, Count, Deadline, N + 1)
    end.


init([]) -> {ok, undefined}.
handle_call(Req, _From, State) -> {reply, Req, State}.
handle_cast(_Msg, State) -> {noreply, State}.


%% =============================================================================
%% PROBES: long_schedule events, sender memory
%% =============================================================================


%% @doc Starts this node's system monitor for `long_schedule' over 10 ms;
%% the events are counted per `{Role, location}'.
-spec start_monitor(atom()) -> pid().
start_monitor(Role) ->
    Self = self(),
    Pid = spawn(fun() ->
        _ = erlang:system_monitor(self(), [{long_schedule, 10}]),
        Self ! {bench_monitoring, self()},
        monitor_loop(Role, #{})
    end),
    receive {bench_monitoring, Pid} -> Pid end.


%% @doc Stops the monitor; returns how many events it saw at each location.
-spec stop_monitor(pid()) -> #{term() => pos_integer()}.
stop_monitor(Pid) ->
    Ref = monitor(process, Pid),
    Pid ! {bench_stop, self(), Ref},
    receive
        {Ref, Events} -> demonitor(Ref, [flush]), Events;
        {'DOWN', Ref, _, _, _} -> #{}
    end.


monitor_loop(Role, Events) ->
    receive
        {monitor, PidOrPort, long_schedule, Info} ->
            Key = {Role, location(PidOrPort, Info)},
            monitor_loop(Role, maps:update_with(Key, fun(C) -> C + 1 end, 1, Events));
        {bench_stop, From, Ref} ->
            _ = erlang:system_monitor(undefined),
            From ! {Ref, Events}
    end.


%% Where a long schedule happened: the code a process was scheduled out in (or
%% in), the port operation, or else where the process is now ({near, MFA}).
location(PidOrPort, Info) ->
    Get = fun(Key) -> proplists:get_value(Key, Info) end,
    case {Get(out), Get(in), Get(port_op)} of
        {{_, _, _} = MFA, _, _} -> MFA;
        {_, {_, _, _} = MFA, _} -> MFA;
        {_, _, undefined} -> near(PidOrPort);
        {_, _, Op} -> {port_op, Op}
    end.


near(Pid) when is_pid(Pid) ->
    case erlang:process_info(Pid, current_function) of
        {current_function, {_, _, _} = MFA} -> {near, MFA};
        _ -> unknown
    end;
near(_) ->
    unknown.


%% @doc Samples `erlang:memory(total)' and the OS resident set size of this
%% node every 10 ms until {@link stop_sampler/1}.
-spec start_sampler() -> pid().
start_sampler() ->
    PageSize = page_size(),
    spawn(fun() -> sample_loop(PageSize, 0, 0) end).


%% @doc Stops the sampler; returns the peaks in bytes.
-spec stop_sampler(pid()) -> #{memory := non_neg_integer(), rss := non_neg_integer()}.
stop_sampler(Pid) ->
    Ref = monitor(process, Pid),
    Pid ! {bench_stop, self(), Ref},
    receive
        {Ref, Peaks} -> demonitor(Ref, [flush]), Peaks;
        {'DOWN', Ref, _, _, _} -> #{memory => 0, rss => 0}
    end.


sample_loop(PageSize, Mem, Rss) ->
    Mem1 = max(Mem, erlang:memory(total)),
    Rss1 = max(Rss, rss(PageSize)),
    receive
        {bench_stop, From, Ref} -> From ! {Ref, #{memory => Mem1, rss => Rss1}}
    after ?SAMPLE_MS ->
        sample_loop(PageSize, Mem1, Rss1)
    end.


rss(PageSize) ->
    case file:read_file("/proc/self/statm") of
        {ok, Statm} ->
            [_Size, Resident | _] = binary:split(Statm, <<" ">>, [global]),
            binary_to_integer(Resident) * PageSize;
        {error, _} ->
            0
    end.


page_size() ->
    case string:to_integer(os:cmd("getconf PAGESIZE")) of
        {N, _} when is_integer(N), N > 0 -> N;
        _ -> 4096
    end.


%% =============================================================================
%% HELPERS
%% =============================================================================


%% The transport under measurement.
send(disterl, To, Msg) ->
    _ = erlang:send(To, Msg),
    ok;
send({partisan, Opts}, To, Msg) ->
    partisan:forward_message(To, Msg, Opts).


ok_count(ok) -> 1;
ok_count(_) -> 0.


spawn_parked(Fun) ->
    spawn(fun() -> receive {bench_go, Peer} -> Fun(Peer) end end).


now_ms() ->
    erlang:monotonic_time(millisecond).
