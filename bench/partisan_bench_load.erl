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
%% both nodes, so a receiver that decodes safely knows them all; all but the
%% sender names of the `named' flow rows, which are made at run time on the
%% sending node precisely so that the receiving node has never seen them.
%%
%% Over partisan, a process of the other node is addressed by that node's
%% partisan name (see `dest()').
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_load).

-behaviour(gen_server).

%% setup and teardown, called by the orchestrator
-export([load/0]).
-export([start_partisan/1]).
-export([wait_connected/2]).
-export([go/1]).
-export([echo/1]).
-export([kill/1]).

%% throughput
-export([spawn_senders/2]).
-export([spawn_receivers/5]).
-export([engine_drops/0]).

%% latency and head-of-line blocking
-export([slow_sends/0]).
-export([spawn_pinger/3]).
-export([spawn_ponger/2]).
-export([spawn_streamer/2]).
-export([spawn_sink/3]).

%% gen_server:call
-export([start_echo/1]).
-export([start_message_echo/1]).
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
%% Where a message goes: what `erlang:send/2' takes (a pid, `{Name, Node}'),
%% or, over partisan, `{at, Node, Pid}': a pid the orchestrator got over
%% Distributed Erlang, whose node partisan knows by another name, `Node'
%% (sent with `partisan:forward_message/4').
-type dest() :: pid() | {atom(), node()} | {at, node(), pid()}.
%% Where a receiver returns its credits: a fixed `dest()';
%% `#{name_in_message := Node}': to `{Name, Node}', Name being the one the
%% sender's first messages carry; `#{pid_in_message := Sender, node := Node}':
%% to the pid every message carries, which must be Sender's process as seen
%% under the node name `Node'.
-type reply_to() :: dest() | #{name_in_message := node()}
                  | #{pid_in_message := pid(), node := node()}.
%% What a sender sends (see spawn_senders/2).
-type message() :: plain | named | pid_ref.
-type sender_spec() :: #{
    via := via(),
    count := pos_integer(),
    payload := binary(),
    window := pos_integer() | infinity,
    cap_ms := pos_integer(),
    message => message()
}.
-export_type([via/0, dest/0, reply_to/0, message/0, sender_spec/0]).

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


%% @doc Spawns N parked senders; each, once released with its receiver (a
%% `dest()'), sends `count' messages (or fewer, if `cap_ms' runs out), keeping
%% at most `window' unacknowledged, then `{bench_end, Sent}'. The messages,
%% by `message' (default `plain'):
%% <ul>
%% <li>`plain': `{bench_data, Payload}';</li>
%% <li>`named': the same, but the first `window' are `{bench_named, Name,
%% Payload}', where Name is the name the sender registered itself under, made
%% at run time (the receiver returns its credits to that name);</li>
%% <li>`pid_ref': `{bench_req, self(), make_ref(), Payload}', a fresh
%% reference in each (the receiver returns its credits to that pid).</li>
%% </ul>
-spec spawn_senders(pos_integer(), sender_spec()) -> [pid()].
spawn_senders(N, Spec) ->
    [spawn_parked(fun() -> messages(I, Spec) end,
                  fun(Receiver, Messages) -> sender(Receiver, Messages, Spec) end)
     || I <- lists:seq(1, N)].


%% The messages of the first window (`none': the same as the rest) and of the
%% rest; made before the sender is released, so that registering is not timed.
messages(I, #{payload := Payload} = Spec) ->
    case maps:get(message, Spec, plain) of
        plain ->
            {none, {bench_data, Payload}};
        named ->
            Name = run_time_name(I),
            true = register(Name, self()),
            {{bench_named, Name, Payload}, {bench_data, Payload}};
        pid_ref ->
            Self = self(),
            {none, {fresh, fun() -> {bench_req, Self, make_ref(), Payload} end}}
    end.


%% A name made now, on this node, unique to this run: no module holds it as a
%% literal, so the receiving node has never had this atom.
run_time_name(I) ->
    list_to_atom("bench_rt_" ++ integer_to_list(I) ++ "_"
                 ++ integer_to_list(erlang:unique_integer([positive]))).


sender(Receiver, {First, Rest}, #{via := Via, count := Count, window := Window,
                                  cap_ms := CapMs}) ->
    Deadline = now_ms() + CapMs,
    %% The first window goes out before any credit can come back, so the
    %% receiver has had a first message by the time it owes one.
    Sent0 = case First of
        none -> 0;
        _ -> send_loop(Via, Receiver, First, min(Count, Window), Window, Deadline, 0, 0)
    end,
    Sent = send_loop(Via, Receiver, Rest, Count, Window, Deadline, Sent0, 0),
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
            Sent1 = Sent + ok_count(send(Via, To, message(Msg))),
            send_loop(Via, To, Msg, Count, Window, Deadline, Sent1, Acked)
    end.


%% A message as it is, or `{fresh, Make}': made anew for every send.
message({fresh, Make}) -> Make();
message(Msg) -> Msg.


%% @doc Spawns one receiver per sender (given as where its credits go, in
%% order) and a collector; returns the receivers. A receiver counts the data
%% messages of {@link spawn_senders/2} and their payload bytes, returns
%% `{bench_credit, Window div 2}' every `Window div 2' of them, and on
%% `{bench_end, Sent}' reports to the collector. The collector sends
%% `{bench_result, Ref, Result}' to `Owner' once every receiver reported, or
%% `{bench_result, Ref, timeout}' after `CapMs'.
-spec spawn_receivers([reply_to()], via(), pos_integer() | infinity, {pid(), reference()},
                      pos_integer()) -> [pid()].
spawn_receivers(ReplyTos, Via, Window, {Owner, Ref}, CapMs) ->
    Self = self(),
    Collector = spawn(fun() ->
        process_flag(trap_exit, true),
        Receivers = [spawn_link(fun() -> receiver(Via, R, Window) end) || R <- ReplyTos],
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
-spec spawn_sink(via(), dest(), pos_integer()) -> pid().
spawn_sink(Via, Streamer, Window) ->
    spawn(fun() -> receiver(Via, Streamer, Window) end).


receiver(Via, ReplyTo, Window) ->
    Credit = case Window of infinity -> infinity; _ -> max(1, Window div 2) end,
    receive_loop(Via, ReplyTo, Credit, Credit, 0, 0).


receive_loop(Via, ReplyTo, Credit, Left, N, Bytes) ->
    receive
        {bench_data, Bin} ->
            counted(Via, ReplyTo, Credit, Left, N, Bytes + byte_size(Bin));
        {bench_named, Name, Bin} ->
            counted(Via, named(ReplyTo, Name), Credit, Left, N, Bytes + byte_size(Bin));
        {bench_req, Pid, Ref, Bin} ->
            counted(Via, sender_in(Via, ReplyTo, Pid, Ref), Credit, Left, N,
                    Bytes + byte_size(Bin));
        {bench_end, Sent} ->
            exit({bench_received, #{received => N, bytes => Bytes, sent => Sent,
                                    t_end => os:system_time(microsecond)}})
    end.


%% One more message received; a credit goes back every `Credit' of them.
counted(Via, ReplyTo, Credit, 1, N, Bytes) ->
    _ = send(Via, ReplyTo, {bench_credit, Credit}),
    receive_loop(Via, ReplyTo, Credit, Credit, N + 1, Bytes);
counted(Via, ReplyTo, Credit, Left, N, Bytes) ->
    receive_loop(Via, ReplyTo, Credit, decr(Left), N + 1, Bytes).


%% Credits go to the name the sender's first messages carry, on its node;
%% another name is a broken workload (a crash, reported as such).
named(#{name_in_message := Node}, Name) -> {Name, Node};
named({Name, _Node} = To, Name) -> To.


%% Credits go to the pid the message carries. The first one is checked to be
%% the sender's process under the name this transport gives its node (for
%% partisan, `partisan:node/1'); every later one must be that same pid, with a
%% reference of its node (cheap checks, as they are made for every message).
sender_in(_Via, Pid, Pid, Ref) when is_reference(Ref), node(Ref) =:= node(Pid) ->
    Pid;
sender_in(Via, #{pid_in_message := Sender, node := Node}, Pid, Ref) when is_pid(Pid) ->
    case node_of(Via, Pid) =:= Node andalso same_process(Pid, Sender) of
        true -> sender_in(Via, Pid, Pid, Ref);
        false -> not_the_sender(Via, Pid, Ref, Node)
    end;
sender_in(Via, #{node := Node}, Pid, Ref) ->
    not_the_sender(Via, Pid, Ref, Node);
sender_in(Via, First, Pid, Ref) ->
    not_the_sender(Via, Pid, Ref, node(First)).


%% Ends the receiver with what the report needs to say what was wrong.
not_the_sender(Via, Pid, Ref, SenderNode) ->
    exit({bench_not_the_sender, #{pid => Pid, pid_node => node_of(Via, Pid),
                                  ref_node => node_of(Via, Ref), sender_node => SenderNode}}).


%% The node of a pid or reference as this transport names it; `none' for
%% anything else.
node_of(disterl, Arg) when is_pid(Arg); is_reference(Arg) -> node(Arg);
node_of({partisan, _}, Arg) when is_pid(Arg); is_reference(Arg) -> partisan:node(Arg);
node_of(_Via, _) -> none.


%% Whether two pids, perhaps under different node names, are one process: the
%% same number and serial (`<X.Number.Serial>').
same_process(Pid, Pid) -> true;
same_process(Pid, Other) -> process_id(Pid) =:= process_id(Other).


process_id(Pid) ->
    [_Node, Number, Serial] = string:lexemes(pid_to_list(Pid), "<.>"),
    {Number, Serial}.


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


%% @doc This node's engine counters of dropped messages (`dropped_*'): read
%% around a partisan run, they say why its messages did not arrive.
-spec engine_drops() -> #{atom() => non_neg_integer()}.
engine_drops() ->
    maps:filter(fun(Key, _) -> lists:prefix("dropped_", atom_to_list(Key)) end,
                partisan_nif:stats(partisan_nif:engine())).


%% @doc How many `send' NIF calls of this node took over 1 ms of wall-clock
%% time so far: read around a run, it tells a `long_schedule' of our NIF from
%% one of the OS preempting a scheduler thread elsewhere.
-spec slow_sends() -> non_neg_integer().
slow_sends() ->
    maps:get(send_nif_over_1ms, partisan_nif:stats(partisan_nif:engine()), 0).


%% =============================================================================
%% LATENCY: ping-pong; HEAD-OF-LINE: the same beside a bulk stream
%% =============================================================================


%% @doc A parked pinger: once released with its ponger, it does `warmup'
%% round trips, then up to `count' timed ones (or fewer, within `cap_ms'),
%% and sends `{bench_result, Ref, #{rtts_us => [...]}}' to `Owner'.
-spec spawn_pinger(via(), map(), {pid(), reference()}) -> pid().
spawn_pinger(Via, #{count := Count, warmup := Warm, cap_ms := CapMs} = Params, {Owner, Ref}) ->
    %% gap_ms: an idle pause after each pong, so every ping finds the
    %% connection (and the threads behind it) idle: sparse traffic.
    Gap = maps:get(gap_ms, Params, 0),
    spawn_parked(fun(Ponger) ->
        _ = ping_loop(Via, Ponger, Warm, now_ms() + CapMs, Gap, []),
        Rtts = ping_loop(Via, Ponger, Count, now_ms() + CapMs, Gap, []),
        Owner ! {bench_result, Ref, #{rtts_us => Rtts}}
    end).


ping_loop(_Via, _Ponger, 0, _Deadline, _Gap, Acc) ->
    Acc;
ping_loop(Via, Ponger, N, Deadline, Gap, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    ok = send(Via, Ponger, {bench_ping, N}),
    receive
        {bench_pong, N} ->
            T1 = erlang:monotonic_time(nanosecond),
            Acc1 = [(T1 - T0) / 1000 | Acc],
            case (Gap > 0 orelse N rem 64 =:= 0) andalso now_ms() > Deadline of
                true -> Acc1;
                false -> pause(Gap), ping_loop(Via, Ponger, N - 1, Deadline, Gap, Acc1)
            end
    after max(0, Deadline - now_ms()) ->
        Acc
    end.


pause(0) -> ok;
pause(Ms) -> receive after Ms -> ok end.


%% @doc Answers every `{bench_ping, N}' from `Pinger' with `{bench_pong, N}'.
-spec spawn_ponger(via(), dest()) -> pid().
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


%% @doc Starts the echo process of the request/reply rows: a plain process,
%% no behaviour and no relay, that answers `{bench_echo, From, Tag, Req}' with
%% `{Tag, Req}' over Distributed Erlang or partisan; registered as
%% {@link echo_name/1}. Those rows tell the transport's part of a call from
%% the behaviour's.
-spec start_message_echo(message_disterl | message_partisan) -> {ok, pid()}.
start_message_echo(Api) ->
    Pid = spawn(fun() -> message_echo(Api) end),
    true = register(echo_name(Api), Pid),
    {ok, Pid}.


message_echo(Api) ->
    receive
        {bench_echo, From, Tag, Req} ->
            message_send(Api, From, {Tag, Req}),
            message_echo(Api)
    end.


message_send(message_disterl, To, Msg) -> To ! Msg, ok;
message_send(message_partisan, To, Msg) -> ok = partisan:forward_message(To, Msg).


%% @doc The registered name of the echo server of `Behaviour' (or of the
%% request/reply rows' echo process).
-spec echo_name(gen_server | partisan_gen_server | message_disterl | message_partisan) -> atom().
echo_name(gen_server) -> bench_echo_gen_server;
echo_name(partisan_gen_server) -> bench_echo_partisan_gen_server;
echo_name(message_disterl) -> bench_echo_message_disterl;
echo_name(message_partisan) -> bench_echo_message_partisan.


%% @doc A parked caller: once released (with the server ref, or the node for
%% an rpc), makes up to `count' calls `{bench_echo, Payload}' within `cap_ms'
%% and sends `{bench_result, Ref, #{calls, elapsed_us, rtt_p50_us}}' to `Owner'.
-spec spawn_caller(gen_server | partisan_gen_server | rpc | partisan_rpc
                   | message_disterl | message_partisan, map(), binary(),
                   {pid(), reference()}) -> pid().
spawn_caller(Api, #{count := Count, cap_ms := CapMs}, Payload, {Owner, Ref}) ->
    spawn_parked(fun(Server) ->
        T0 = erlang:monotonic_time(microsecond),
        Rtts = call_loop(Api, Server, {bench_echo, Payload}, Count, now_ms() + CapMs, 0, []),
        Elapsed = erlang:monotonic_time(microsecond) - T0,
        Sorted = lists:sort(Rtts),
        P50 = case Sorted of [] -> 0; _ -> lists:nth((length(Sorted) + 1) div 2, Sorted) end,
        Owner ! {bench_result, Ref, #{calls => length(Rtts), elapsed_us => Elapsed,
                                      rtt_p50_us => P50}}
    end).


call_loop(_Api, _Server, _Req, Count, _Deadline, Count, Rtts) ->
    Rtts;
call_loop(Api, Server, Req, Count, Deadline, N, Rtts) ->
    case N rem 64 =:= 0 andalso now_ms() > Deadline of
        true ->
            Rtts;
        false ->
            T0 = erlang:monotonic_time(nanosecond),
            Req = call_once(Api, Server, Req),
            Rtt = (erlang:monotonic_time(nanosecond) - T0) / 1000,
            call_loop(Api, Server, Req, Count, Deadline, N + 1, [Rtt | Rtts])
    end.


call_once(Api, To, Req) when Api =:= message_disterl; Api =:= message_partisan ->
    Tag = make_ref(),
    message_send(Api, To, {bench_echo, self(), Tag, Req}),
    receive {Tag, Reply} -> Reply after 5000 -> exit(timeout) end;
call_once(rpc, Node, Req) -> rpc:call(Node, ?MODULE, echo, [Req], 5000);
call_once(partisan_rpc, Node, Req) -> partisan_rpc:call(Node, ?MODULE, echo, [Req], 5000);
call_once(Behaviour, Server, Req) -> Behaviour:call(Server, Req, 5000).


%% @doc What an rpc of the call rows runs: returns its argument.
-spec echo(term()) -> term().
echo(Term) -> Term.


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


%% The transport under measurement, to a dest().
send(disterl, To, Msg) ->
    _ = erlang:send(To, Msg),
    ok;
send({partisan, Opts}, {at, Node, Pid}, Msg) ->
    partisan:forward_message(Node, Pid, Msg, Opts);
send({partisan, Opts}, To, Msg) ->
    partisan:forward_message(To, Msg, Opts).


ok_count(ok) -> 1;
ok_count(_) -> 0.


spawn_parked(Fun) ->
    spawn_parked(fun() -> ready end, fun(Peer, ready) -> Fun(Peer) end).


%% A process that runs Prepare() at once, then waits to be released with its
%% peer and runs Fun(Peer, WhatPrepareReturned).
spawn_parked(Prepare, Fun) ->
    spawn(fun() ->
        Ready = Prepare(),
        receive {bench_go, Peer} -> Fun(Peer, Ready) end
    end).


now_ms() ->
    erlang:monotonic_time(millisecond).
