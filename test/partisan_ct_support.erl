%% -----------------------------------------------------------------------------
%% @doc Shared helpers for the multi-node Common Test suites.
%%
%% Two kinds of functions live here:
%%
%% <ul>
%% <li>Orchestration, run on the Common Test node: start/stop/kill/restart
%% peer nodes (OTP `peer'), configure and start `partisan' on them, join them,
%% wait (always with a bounded poll) for convergence.</li>
%% <li>Remote helpers, run on the peer nodes through `erpc:call(Node, ?MODULE,
%% F, Args)': message collectors, an echo server, senders. This module is on
%% every peer's code path, so no fun ever crosses a node boundary.</li>
%% </ul>
%%
%% Distributed Erlang is used only to drive the nodes. Peers are started
%% `-hidden' with `-connect_all false' so they never form a disterl mesh among
%% themselves: every message a test checks travels through Partisan.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_ct_support).

-include_lib("common_test/include/ct.hrl").

%% orchestration (Common Test node)
-export([init_dist/0]).
-export([default_env/0]).
-export([node_name/1]).
-export([start_nodes/2]).
-export([start_nodes/3]).
-export([start_node/2]).
-export([start_node/3]).
-export([stop_nodes/1]).
-export([stop_node/1]).
-export([kill_node/1]).
-export([restart_node/1]).
-export([start_partisan/1]).
-export([stop_partisan/1]).
-export([node_spec/1]).
-export([free_port/0]).
-export([join/2]).
-export([join_all/1]).
-export([wait_until_converged/1]).
-export([wait_until_converged/2]).
-export([cluster_view/1]).
-export([wait_until/3]).
-export([hyparview_check/3]).
-export([wait_until/4]).
-export([always_true/4]).
-export([wait_for_messages/3]).
-export([wait_for_messages/4]).
-export([assert_no_disterl_mesh/1]).
-export([rpc/4]).

%% remote helpers (run on peer nodes via erpc)
-export([start_watchdog/1]).
-export([configure/1]).
-export([start_collector/1]).
-export([stop_collector/1]).
-export([collector_ref/1]).
-export([collected/1]).
-export([collected_digest/1]).
-export([collected_count/1]).
-export([reset_collector/1]).
-export([start_echo/1]).
-export([echo_errors/1]).
-export([ping/4]).
-export([ping/5]).
-export([ping_many/4]).
-export([forward/3]).
-export([forward/4]).
-export([send_seq/5]).
-export([send_keyed/6]).
-export([send_binary/5]).
-export([send_burst/5]).
-export([spawn_checkers/3]).
-export([forward_each/2]).
-export([register_on_down/2]).
-export([register_on_up/2]).
-export([resource_usage/0]).
-export([view/0]).
-export([digest/1]).
-export([collected_sharing/1]).
-export([engine_stats/0]).
-export([message_atoms/0]).

-define(HOST, "127.0.0.1").
-define(IP, {127, 0, 0, 1}).
-define(KEY(Node), {?MODULE, peer, Node}).
-define(BIG, 1024).
-define(DEFAULT_RETRIES, 150).
-define(DEFAULT_SLEEP, 100).
-define(RPC_TIMEOUT, 30000).

-type node_opts() :: #{
    env => #{atom() => term()},
    port => inet:port_number(),
    priv_dir => file:filename()
}.


%% =============================================================================
%% ORCHESTRATION (runs on the Common Test node)
%% =============================================================================


%% -----------------------------------------------------------------------------
%% @doc Makes sure the Common Test node is distributed (longnames, 127.0.0.1).
%% `rebar3 ct --name ct@127.0.0.1' already does it; this covers a plain run.
%% @end
%% -----------------------------------------------------------------------------
-spec init_dist() -> ok.

init_dist() ->
    case erlang:node() of
        'nonode@nohost' ->
            _ = os:cmd("epmd -daemon"),
            Name = list_to_atom(
                "ct_" ++ os:getpid() ++ "@" ++ ?HOST
            ),
            {ok, _} = net_kernel:start([Name, longnames]),
            ok;
        _ ->
            ok
    end.


%% -----------------------------------------------------------------------------
%% @doc The application environment every test node gets unless overridden.
%% Port 0 means an ephemeral port; `partisan:node_spec()' must report the port
%% actually bound.
%% @end
%% -----------------------------------------------------------------------------
-spec default_env() -> #{atom() => term()}.

default_env() ->
    #{
        listen_addrs => [#{ip => ?IP, port => 0}],
        peer_ip => ?IP,
        peer_port => 0,
        connect_disterl => false,
        periodic_interval => 200,
        connection_interval => 200,
        connection_jitter => 50,
        connection_ping => #{
            enabled => true,
            idle_timeout => 1000,
            timeout => 1000,
            max_attempts => 3
        }
    }.


%% -----------------------------------------------------------------------------
%% @doc A unique node name (`Prefix-N-OsPid') so runs never collide with a
%% leftover node.
%% @end
%% -----------------------------------------------------------------------------
-spec node_name(string() | atom()) -> atom().

node_name(Prefix) when is_atom(Prefix) ->
    node_name(atom_to_list(Prefix));

node_name(Prefix) when is_list(Prefix) ->
    list_to_atom(peer:random_name(Prefix)).


%% -----------------------------------------------------------------------------
%% @doc Starts `N' nodes with partisan running, using the default environment
%% merged with `?config(partisan_env, Config)'.
%% @end
%% -----------------------------------------------------------------------------
-spec start_nodes(pos_integer(), list()) -> [node()].

start_nodes(N, Config) ->
    start_nodes(N, Config, #{}).


%% -----------------------------------------------------------------------------
%% @doc Like {@link start_nodes/2}; `Env' is merged on top of the config's
%% `partisan_env'. Nodes are started in parallel.
%% @end
%% -----------------------------------------------------------------------------
-spec start_nodes(pos_integer(), list(), #{atom() => term()}) -> [node()].

start_nodes(N, Config, Env) when is_integer(N), N > 0 ->
    Prefix = prefix(Config),
    Names = [
        node_name(Prefix ++ "_" ++ [$a + I - 1])
        || I <- lists:seq(1, N)
    ],
    Results = pmap_results(
        fun(Name) -> start_node(Name, Config, #{env => Env}) end, Names
    ),
    case [R || {raise, _, _, _} = R <- Results] of
        [] ->
            [Node || {ok, Node} <- Results];
        [{raise, C, R, S} | _] ->
            %% do not leave the ones that did start running
            stop_nodes([Node || {ok, Node} <- Results]),
            erlang:raise(C, R, S)
    end.


%% -----------------------------------------------------------------------------
%% @doc Starts one node named `Name' (short part; host is 127.0.0.1).
%% @end
%% -----------------------------------------------------------------------------
-spec start_node(atom(), list()) -> node().

start_node(Name, Config) ->
    start_node(Name, Config, #{}).


%% -----------------------------------------------------------------------------
%% @doc Starts one node named `Name', configures partisan on it and starts the
%% application. `Opts': `env' (app env overrides) and `port' (a fixed listen
%% port instead of an ephemeral one).
%% @end
%% -----------------------------------------------------------------------------
-spec start_node(atom(), list(), node_opts()) -> node().

start_node(Name, Config, Opts0) ->
    Env0 = maps:merge(
        proplists:get_value(partisan_env, Config, #{}),
        maps:get(env, Opts0, #{})
    ),
    PrivDir = proplists:get_value(priv_dir, Config, "/tmp"),
    Opts = Opts0#{env => Env0, priv_dir => PrivDir},
    do_start_node(Name, Opts).


%% -----------------------------------------------------------------------------
%% @doc Stops the nodes (gracefully via peer:stop/1); tolerates dead nodes.
%% @end
%% -----------------------------------------------------------------------------
-spec stop_nodes([node()]) -> ok.

stop_nodes(Nodes) when is_list(Nodes) ->
    _ = pmap(fun stop_node/1, Nodes),
    ok.


%% -----------------------------------------------------------------------------
%% @doc Stops a node (peer:stop/1) and waits until disterl sees it gone.
%% The start options are kept so that {@link restart_node/1} can bring it back.
%% @end
%% -----------------------------------------------------------------------------
-spec stop_node(node()) -> ok.

stop_node(Node) ->
    case persistent_term:get(?KEY(Node), undefined) of
        #{peer := Pid} = Info when is_pid(Pid) ->
            _ = (catch peer:stop(Pid)),
            persistent_term:put(?KEY(Node), Info#{peer => undefined});
        _ ->
            %% unknown or already dead; make sure it is really gone
            _ = (catch erpc:call(Node, erlang, halt, [], 5000)),
            ok
    end,
    wait_node_gone(Node).


%% -----------------------------------------------------------------------------
%% @doc Kills a node's BEAM with SIGKILL (no graceful shutdown at all) and
%% waits until disterl sees it gone.
%% @end
%% -----------------------------------------------------------------------------
-spec kill_node(node()) -> ok.

kill_node(Node) ->
    OsPid = erpc:call(Node, os, getpid, [], ?RPC_TIMEOUT),
    true = lists:all(fun(C) -> C >= $0 andalso C =< $9 end, OsPid),
    ct:log("kill -9 ~s (~p)", [OsPid, Node]),
    _ = os:cmd("kill -9 " ++ OsPid),
    ok = wait_node_gone(Node),
    case persistent_term:get(?KEY(Node), undefined) of
        #{peer := Pid} = Info when is_pid(Pid) ->
            %% peer_down defaults to 'stop': the controller exits by itself
            _ = wait_until(
                {peer_controller_exit, Node},
                fun() -> not is_process_alive(Pid) end,
                50, 100
            ),
            persistent_term:put(?KEY(Node), Info#{peer => undefined});
        _ ->
            ok
    end.


%% -----------------------------------------------------------------------------
%% @doc Starts again a node previously started by this module, with the same
%% name and the same options (so a fixed `port' is reused).
%% @end
%% -----------------------------------------------------------------------------
-spec restart_node(node()) -> node().

restart_node(Node) ->
    case persistent_term:get(?KEY(Node), undefined) of
        #{peer := undefined, name := Name, opts := Opts} ->
            Short = atom_to_list(Name),
            %% the old incarnation must have left epmd before we can reuse
            %% the name
            wait_until(
                {epmd_name_released, Node},
                fun() ->
                    case erl_epmd:names(?HOST) of
                        {ok, Names} ->
                            not lists:keymember(Short, 1, Names);
                        _ ->
                            false
                    end
                end,
                100, 100
            ),
            do_start_node(Name, Opts);
        #{peer := Pid} when is_pid(Pid) ->
            error({still_running, Node});
        undefined ->
            error({unknown_node, Node})
    end.


%% -----------------------------------------------------------------------------
%% @doc Starts the partisan application on an already configured node.
%% @end
%% -----------------------------------------------------------------------------
-spec start_partisan(node()) -> ok.

start_partisan(Node) ->
    case rpc(Node, application, ensure_all_started, [partisan]) of
        {ok, _} ->
            ok;
        {error, Reason} ->
            ct:fail({partisan_start_failed, Node, Reason})
    end.


%% -----------------------------------------------------------------------------
%% @doc Stops the partisan application on `Node'.
%% @end
%% -----------------------------------------------------------------------------
-spec stop_partisan(node()) -> ok.

stop_partisan(Node) ->
    ok = rpc(Node, application, stop, [partisan]).


%% -----------------------------------------------------------------------------
%% @doc `partisan:node_spec()' evaluated on `Node'.
%% @end
%% -----------------------------------------------------------------------------
-spec node_spec(node()) -> map().

node_spec(Node) ->
    Spec = rpc(Node, partisan, node_spec, []),
    #{name := Node, listen_addrs := [_ | _] = Addrs} = Spec,
    %% the spec must carry the port actually bound, never 0
    [
        Port > 0 orelse ct:fail({node_spec_with_port_0, Node, Spec})
        || #{port := Port} <- Addrs
    ],
    Spec.


%% -----------------------------------------------------------------------------
%% @doc A TCP port that is free on 127.0.0.1 right now.
%% @end
%% -----------------------------------------------------------------------------
-spec free_port() -> inet:port_number().

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, ?IP}, {reuseaddr, true}]),
    {ok, Port} = inet:port(S),
    ok = gen_tcp:close(S),
    Port.


%% -----------------------------------------------------------------------------
%% @doc `Node' joins `Target' (using Target's node spec).
%% @end
%% -----------------------------------------------------------------------------
-spec join(node(), node()) -> ok.

join(Node, Target) ->
    Spec = node_spec(Target),
    case rpc(Node, partisan_peer_service, join, [Spec]) of
        ok ->
            ok;
        Other ->
            ct:fail({join_failed, Node, Target, Other})
    end.


%% -----------------------------------------------------------------------------
%% @doc Every node but the first joins the first.
%% @end
%% -----------------------------------------------------------------------------
-spec join_all([node()]) -> ok.

join_all([_]) ->
    ok;

join_all([First | Rest]) ->
    lists:foreach(fun(N) -> ok = join(N, First) end, Rest).


%% -----------------------------------------------------------------------------
%% @doc Waits until every node in `Nodes' sees exactly the others in
%% `partisan:nodes()', fully connected, and `partisan_peer_service:members()'
%% returns `{ok, lists:sort(Nodes)}' everywhere.
%% @end
%% -----------------------------------------------------------------------------
-spec wait_until_converged([node()]) -> ok.

wait_until_converged(Nodes) ->
    wait_until_converged(Nodes, ?DEFAULT_RETRIES).


-spec wait_until_converged([node()], pos_integer()) -> ok.

wait_until_converged(Nodes, Retries) ->
    Expected = lists:sort(Nodes),
    wait_until(
        {converged, Expected},
        fun() ->
            Views = cluster_view(Nodes),
            Bad = [
                {N, V}
                || {N, V} <- Views, not view_ok(N, V, Expected)
            ],
            case Bad of
                [] -> true;
                _ -> {false, Bad}
            end
        end,
        Retries,
        ?DEFAULT_SLEEP
    ).


%% -----------------------------------------------------------------------------
%% @doc The view each node has: `#{nodes, members, fully_connected}'.
%% @end
%% -----------------------------------------------------------------------------
-spec cluster_view([node()]) -> [{node(), map() | {error, term()}}].

cluster_view(Nodes) ->
    [{N, catch_rpc(N, ?MODULE, view, [])} || N <- Nodes].


%% -----------------------------------------------------------------------------
%% @doc Polls `Fun' (`true | false | {false, Why}') at most `Retries' times,
%% sleeping `SleepMs' in between; fails the test case with the last answer.
%% Exceptions raised by `Fun' count as `{false, Exception}'.
%% @end
%% -----------------------------------------------------------------------------
-spec wait_until(fun(() -> boolean() | {false, term()}), pos_integer(),
    non_neg_integer()) -> ok.

wait_until(Fun, Retries, SleepMs) ->
    wait_until(condition, Fun, Retries, SleepMs).


-spec wait_until(term(), fun(() -> boolean() | {false, term()}),
    pos_integer(), non_neg_integer()) -> ok.

wait_until(Label, Fun, Retries, SleepMs) ->
    Start = erlang:monotonic_time(millisecond),
    do_wait_until(Label, Fun, Retries, SleepMs, Start, undefined).


%% -----------------------------------------------------------------------------
%% @doc Checks that `Fun' stays true for `DurationMs', sampling every
%% `IntervalMs'. Fails at the first false.
%% @end
%% -----------------------------------------------------------------------------
-spec always_true(term(), fun(() -> boolean() | {false, term()}),
    pos_integer(), pos_integer()) -> ok.

always_true(Label, Fun, DurationMs, IntervalMs) ->
    Deadline = erlang:monotonic_time(millisecond) + DurationMs,
    do_always_true(Label, Fun, Deadline, IntervalMs, 0).


%% -----------------------------------------------------------------------------
%% @doc Waits until collector `Name' on `Node' holds at least `Count'
%% messages; returns them (binaries over 1 KiB replaced by digests).
%% @end
%% -----------------------------------------------------------------------------
-spec wait_for_messages(node(), atom(), non_neg_integer()) -> [term()].

wait_for_messages(Node, Name, Count) ->
    wait_for_messages(Node, Name, Count, 20000).


-spec wait_for_messages(node(), atom(), non_neg_integer(), pos_integer()) ->
    [term()].

wait_for_messages(Node, Name, Count, TimeoutMs) ->
    Sleep = 50,
    wait_until(
        {messages, Node, Name, Count},
        fun() ->
            case rpc(Node, ?MODULE, collected_count, [Name]) of
                N when N >= Count ->
                    true;
                N when N =< 20 ->
                    Got = rpc(Node, ?MODULE, collected_digest, [Name]),
                    {false, {have, N, Got}};
                N ->
                    {false, {have, N}}
            end
        end,
        max(1, TimeoutMs div Sleep),
        Sleep
    ),
    rpc(Node, ?MODULE, collected_digest, [Name]).


%% -----------------------------------------------------------------------------
%% @doc Asserts that no two peer nodes have a Distributed Erlang connection:
%% each peer is connected (by disterl) to the Common Test node only, so
%% whatever traffic passed between them went through Partisan.
%% @end
%% -----------------------------------------------------------------------------
-spec assert_no_disterl_mesh([node()]) -> ok.

assert_no_disterl_mesh(Nodes) ->
    lists:foreach(
        fun(N) ->
            Connected = rpc(N, erlang, nodes, [connected]),
            case [X || X <- Connected, lists:member(X, Nodes)] of
                [] ->
                    ok;
                Peers ->
                    ct:fail({disterl_between_peers, N, Peers})
            end
        end,
        Nodes
    ).


%% -----------------------------------------------------------------------------
%% @doc `erpc:call/5' with a 30 s timeout.
%% @end
%% -----------------------------------------------------------------------------
-spec rpc(node(), module(), atom(), list()) -> term().

rpc(Node, M, F, A) ->
    erpc:call(Node, M, F, A, ?RPC_TIMEOUT).



%% =============================================================================
%% REMOTE HELPERS (run on the peer nodes)
%% =============================================================================


%% -----------------------------------------------------------------------------
%% @doc Halts this node if the orchestrating node goes away (no orphans when a
%% Common Test run is aborted).
%% @end
%% -----------------------------------------------------------------------------
-spec start_watchdog(node()) -> ok.

start_watchdog(CtNode) ->
    Parent = self(),
    Ref = make_ref(),
    _ = spawn(fun() ->
        true = erlang:monitor_node(CtNode, true),
        Parent ! {Ref, ready},
        receive
            {nodedown, CtNode} -> erlang:halt(0)
        end
    end),
    receive {Ref, ready} -> ok after 5000 -> error(watchdog_timeout) end.


%% -----------------------------------------------------------------------------
%% @doc Loads partisan (so that the .app defaults are in place) and sets the
%% given application environment keys on top.
%% @end
%% -----------------------------------------------------------------------------
-spec configure(#{atom() => term()}) -> ok.

configure(Env) when is_map(Env) ->
    case application:load(partisan) of
        ok -> ok;
        {error, {already_loaded, partisan}} -> ok
    end,
    maps:foreach(
        fun(K, V) -> ok = application:set_env(partisan, K, V) end,
        Env
    ).


%% -----------------------------------------------------------------------------
%% @doc Starts a process registered as `Name' that keeps every message it
%% receives, in arrival order. Replaces a previous collector of that name.
%% @end
%% -----------------------------------------------------------------------------
-spec start_collector(atom()) -> pid().

start_collector(Name) ->
    ok = stop_collector(Name),
    Parent = self(),
    Ref = make_ref(),
    Pid = spawn(fun() ->
        true = register(Name, self()),
        Parent ! {Ref, ready},
        collector_loop(0, [])
    end),
    receive
        {Ref, ready} -> Pid
    after 5000 ->
        error({collector_start_timeout, Name})
    end.


%% -----------------------------------------------------------------------------
%% @doc Stops the collector registered as `Name', if any.
%% @end
%% -----------------------------------------------------------------------------
-spec stop_collector(atom()) -> ok.

stop_collector(Name) ->
    case whereis(Name) of
        undefined ->
            ok;
        Pid ->
            MRef = monitor(process, Pid),
            exit(Pid, kill),
            receive {'DOWN', MRef, _, _, _} -> ok end
    end.


%% -----------------------------------------------------------------------------
%% @doc The partisan remote reference of the collector's pid.
%% @end
%% -----------------------------------------------------------------------------
-spec collector_ref(atom()) -> term().

collector_ref(Name) ->
    partisan_remote_ref:from_term(whereis_or_fail(Name)).


%% -----------------------------------------------------------------------------
%% @doc Messages received so far by collector `Name', oldest first.
%% @end
%% -----------------------------------------------------------------------------
-spec collected(atom()) -> [term()].

collected(Name) ->
    collector_call(Name, get).


%% -----------------------------------------------------------------------------
%% @doc Like {@link collected/1} with binaries over 1 KiB replaced by
%% `{'$binary', Size, MD5}' (so big payloads are not shipped back).
%% @end
%% -----------------------------------------------------------------------------
-spec collected_digest(atom()) -> [term()].

collected_digest(Name) ->
    [digest(M) || M <- collected(Name)].


%% -----------------------------------------------------------------------------
%% @doc How many messages collector `Name' received.
%% @end
%% -----------------------------------------------------------------------------
-spec collected_count(atom()) -> non_neg_integer().

collected_count(Name) ->
    collector_call(Name, count).


%% -----------------------------------------------------------------------------
%% @doc Forgets the messages collected so far.
%% @end
%% -----------------------------------------------------------------------------
-spec reset_collector(atom()) -> ok.

reset_collector(Name) ->
    collector_call(Name, reset).


%% -----------------------------------------------------------------------------
%% @doc Starts an echo server registered as `Name'. On `{ping, ReplyTo, Tag,
%% Payload}' it replies `{pong, Tag, Payload}' with
%% `partisan:forward_message(ReplyTo, Reply)' where `ReplyTo' is a partisan
%% remote reference; `{ping, ReplyTo, Tag, Payload, Opts}' replies with
%% `partisan:forward_message(ReplyTo, Reply, Opts)'.
%% @end
%% -----------------------------------------------------------------------------
-spec start_echo(atom()) -> pid().

start_echo(Name) ->
    ok = stop_collector(Name),
    Parent = self(),
    Ref = make_ref(),
    Pid = spawn(fun() ->
        true = register(Name, self()),
        Parent ! {Ref, ready},
        echo_loop([])
    end),
    receive
        {Ref, ready} -> Pid
    after 5000 ->
        error({echo_start_timeout, Name})
    end.


%% -----------------------------------------------------------------------------
%% @doc Replies of the echo server that did not return `ok'.
%% @end
%% -----------------------------------------------------------------------------
-spec echo_errors(atom()) -> [term()].

echo_errors(Name) ->
    collector_call(Name, errors).


%% -----------------------------------------------------------------------------
%% @doc From this node, sends `{ping, partisan:self(), Tag, Payload}' to `Dest'
%% (anything `partisan:forward_message/2' accepts) and waits for the pong.
%% @end
%% -----------------------------------------------------------------------------
-spec ping(term(), term(), term(), timeout()) ->
    {ok, term(), term()} | {error, term()}.

ping(Dest, Tag, Payload, Timeout) ->
    ping(Dest, Tag, Payload, #{}, Timeout).


-spec ping(term(), term(), term(), map(), timeout()) ->
    {ok, term(), term()} | {error, term()}.

ping(Dest, Tag, Payload, Opts, Timeout) ->
    Me = partisan:self(),
    Msg = case map_size(Opts) of
        0 -> {ping, Me, Tag, Payload};
        _ -> {ping, Me, Tag, Payload, Opts}
    end,
    case partisan:forward_message(Dest, Msg, Opts) of
        ok ->
            receive
                {pong, Tag, Reply} -> {ok, Me, Reply}
            after Timeout ->
                {error, {no_pong, Tag}}
            end;
        Error ->
            {error, {send, Error}}
    end.


%% -----------------------------------------------------------------------------
%% @doc `N' sequential round trips to the echo server `Dest'.
%% @end
%% -----------------------------------------------------------------------------
-spec ping_many(term(), pos_integer(), map(), timeout()) ->
    ok | {error, term()}.

ping_many(Dest, N, Opts, Timeout) ->
    ping_many(Dest, 1, N, Opts, Timeout).


%% -----------------------------------------------------------------------------
%% @doc `partisan:forward_message(Dest, Msg, #{})' from this node, returning
%% the result.
%% @end
%% -----------------------------------------------------------------------------
-spec forward(term(), term(), map()) -> term().

forward(Dest, Msg, Opts) ->
    partisan:forward_message(Dest, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc `partisan:forward_message(Node, Name, Msg, Opts)' from this node.
%% @end
%% -----------------------------------------------------------------------------
-spec forward(node(), term(), term(), map()) -> term().

forward(Node, ServerRef, Msg, Opts) ->
    partisan:forward_message(Node, ServerRef, Msg, Opts).


%% -----------------------------------------------------------------------------
%% @doc Sends `{seq, Tag, I}' for I in From..To to `Dest'. Returns `ok' or the
%% first non-`ok' result.
%% @end
%% -----------------------------------------------------------------------------
-spec send_seq(term(), term(), integer(), integer(), map()) ->
    ok | {error, integer(), term()}.

send_seq(Dest, Tag, From, To, _Opts) when From > To ->
    _ = Dest, _ = Tag,
    ok;

send_seq(Dest, Tag, I, To, Opts) ->
    case partisan:forward_message(Dest, {seq, Tag, I}, Opts) of
        ok -> send_seq(Dest, Tag, I + 1, To, Opts);
        Other -> {error, I, Other}
    end.


%% -----------------------------------------------------------------------------
%% @doc For Seq in 1..PerKey, for each Key: sends `{keyed, Tag, Key, Seq}'
%% with `partition_key => Key' (interleaving the keys). Returns `ok' or the
%% first non-`ok' result.
%% @end
%% -----------------------------------------------------------------------------
-spec send_keyed(term(), term(), [non_neg_integer()], pos_integer(), map(),
    non_neg_integer()) -> ok | {error, term()}.

send_keyed(Dest, Tag, Keys, PerKey, Opts, Seq) when Seq >= PerKey ->
    _ = {Dest, Tag, Keys, Opts},
    ok;

send_keyed(Dest, Tag, Keys, PerKey, Opts, Seq0) ->
    Seq = Seq0 + 1,
    Results = [
        {K, partisan:forward_message(
            Dest, {keyed, Tag, K, Seq}, Opts#{partition_key => K}
        )}
        || K <- Keys
    ],
    case [R || {_, Res} = R <- Results, Res =/= ok] of
        [] -> send_keyed(Dest, Tag, Keys, PerKey, Opts, Seq);
        Bad -> {error, {Seq, Bad}}
    end.


%% -----------------------------------------------------------------------------
%% @doc Builds a binary (`random' or `pattern') of `Size' bytes on this node,
%% sends `{bin, Tag, Bin}' to `Dest' and returns `{Result, Size, MD5}'.
%% @end
%% -----------------------------------------------------------------------------
-spec send_binary(term(), term(), random | pattern, non_neg_integer(), map())
    -> {term(), non_neg_integer(), binary()}.

send_binary(Dest, Tag, Kind, Size, Opts) ->
    Bin = make_binary(Kind, Size),
    Result = partisan:forward_message(Dest, {bin, Tag, Bin}, Opts),
    {Result, byte_size(Bin), erlang:md5(Bin)}.


%% -----------------------------------------------------------------------------
%% @doc Runs `Senders' processes on this node that each forward `Count'
%% messages `{bin, N, Binary}' of `Size' bytes to `Dest' with `Opts', as fast
%% as they can. Returns every result (`ok', `{error, busy}', ...) counted.
%% @end
%% -----------------------------------------------------------------------------
-spec send_burst(term(), pos_integer(), pos_integer(), pos_integer(), map()) ->
    #{term() => non_neg_integer()}.

send_burst(Dest, Senders, Count, Size, Opts) ->
    Bin = make_binary(random, Size),
    Parent = self(),
    Pids = [
        spawn_link(fun() ->
            Results = [
                partisan:forward_message(Dest, {bin, N, Bin}, Opts)
                || N <- lists:seq(1, Count)
            ],
            Parent ! {self(), Results}
        end)
        || _ <- lists:seq(1, Senders)
    ],
    All = lists:append([receive {P, R} -> R end || P <- Pids]),
    lists:foldl(fun(R, Acc) -> maps:update_with(R, fun(C) -> C + 1 end, 1, Acc) end, #{}, All).


%% -----------------------------------------------------------------------------
%% @doc Registers, on this node, an on_down callback for `Node' that sends
%% `{on_down, Node}' to the local process registered as `Collector'.
%% @end
%% -----------------------------------------------------------------------------
-spec register_on_down(node(), atom()) -> term().

register_on_down(Node, Collector) ->
    partisan_peer_service:on_down(
        Node,
        fun() -> catch Collector ! {on_down, Node}, ok end
    ).


%% -----------------------------------------------------------------------------
%% @doc Registers an on_up callback for `Node' sending `{on_up, Node}' to the
%% local process registered as `Collector'.
%% @end
%% -----------------------------------------------------------------------------
-spec register_on_up(node(), atom()) -> term().

register_on_up(Node, Collector) ->
    partisan_peer_service:on_up(
        Node,
        fun() -> catch Collector ! {on_up, Node}, ok end
    ).


%% -----------------------------------------------------------------------------
%% @doc OS threads, open fds, `erlang:memory(total)' and RSS of this node
%% (after garbage collecting every process).
%% @end
%% -----------------------------------------------------------------------------
-spec resource_usage() -> #{atom() => non_neg_integer()}.

resource_usage() ->
    _ = [erlang:garbage_collect(P) || P <- erlang:processes()],
    {ok, Tasks} = file:list_dir("/proc/self/task"),
    {ok, Fds} = file:list_dir("/proc/self/fd"),
    #{
        threads => length(Tasks),
        fds => length(Fds),
        memory => erlang:memory(total),
        rss => rss_bytes()
    }.


%% -----------------------------------------------------------------------------
%% @doc This node's view of the cluster.
%% @end
%% -----------------------------------------------------------------------------
-spec view() -> map().

view() ->
    Nodes = lists:sort(partisan:nodes()),
    #{
        nodes => Nodes,
        members => partisan_peer_service:members(),
        fully_connected => [
            N || N <- Nodes, partisan:is_fully_connected(N)
        ]
    }.


%% -----------------------------------------------------------------------------
%% @doc For each message collected by `Name', the binaries of 64 KiB or more
%% in it (in tuples and lists, at any depth) as `{Size, ReferencedSize}': a binary that
%% is part of a larger one (a sub-binary of the received frame) has
%% `ReferencedSize > Size'; a copy has them equal.
%% @end
%% -----------------------------------------------------------------------------
-spec collected_sharing(atom()) -> [[{non_neg_integer(), non_neg_integer()}]].

collected_sharing(Name) ->
    [lists:flatten(sharing(M)) || M <- collected(Name)].


sharing(Bin) when is_binary(Bin), byte_size(Bin) >= 65536 ->
    [{byte_size(Bin), binary:referenced_byte_size(Bin)}];

sharing(T) when is_tuple(T) ->
    [sharing(E) || E <- tuple_to_list(T)];

sharing(L) when is_list(L) ->
    [sharing(E) || E <- L];

sharing(_) ->
    [].


%% -----------------------------------------------------------------------------
%% @doc The transport's counters on this node.
%% @end
%% -----------------------------------------------------------------------------
-spec engine_stats() -> #{atom() => non_neg_integer()}.

engine_stats() ->
    partisan_nif:stats(partisan_nif:engine()).


%% -----------------------------------------------------------------------------
%% @doc Replaces binaries over 1 KiB inside `Term' with
%% `{'$binary', Size, MD5}'.
%% @end
%% -----------------------------------------------------------------------------
-spec digest(term()) -> term().

digest(Bin) when is_binary(Bin), byte_size(Bin) > ?BIG ->
    {'$binary', byte_size(Bin), erlang:md5(Bin)};

digest([H | T]) ->
    [digest(H) | digest(T)];

digest(T) when is_tuple(T) ->
    list_to_tuple([digest(E) || E <- tuple_to_list(T)]);

digest(Term) ->
    Term.



%% -----------------------------------------------------------------------------
%% @doc Every atom the suites put inside messages sent through partisan.
%%
%% The transport decodes what a peer sends with safe decoding: it never
%% creates an atom from peer input (DESIGN.md, safety rules), so a message
%% that holds an atom unknown to the receiving node is dropped (counted as
%% undeliverable). A real receiver has these atoms from its own code; our
%% generic collectors do not. This module is loaded on every peer (the
%% watchdog is started from it), and loading it creates every atom below on
%% that node. Add any new atom used in a test message here.
%% @end
%% -----------------------------------------------------------------------------
-spec message_atoms() -> [atom()].

message_atoms() ->
    [
        %% shapes
        hello, seq, keyed, bin, ping, pong, ping_many, on_down, on_up,
        to_dead, to_pid, m, msg, payload, structured, via_pid, via_name,
        pong_payload, after_big, small_after, big, blob, two, t, u,
        %% tags
        join_three_nodes, self_join_refused, leave_self, leave_other,
        before_failure, while_down, after_rejoin, fast, slow, zip, tt, pk, z,
        ab, ba, t1, t2, fmt, big_back, too_big, under, pattern, random,
        %% values inside structured payloads
        k, v, list, float, atom, 'an atom', nested, a, b, x, y, deep, tag,
        %% remote reference shapes
        partisan_remote_ref, partisan_remote_reference, encoded_pid,
        encoded_name, encoded_ref
    ].



%% =============================================================================
%% PRIVATE
%% =============================================================================


prefix(Config) ->
    case proplists:get_value(node_prefix, Config) of
        undefined ->
            "partisan";
        P when is_atom(P) ->
            atom_to_list(P);
        P when is_list(P) ->
            P
    end.


do_start_node(Name, #{env := Env0, priv_dir := PrivDir} = Opts) ->
    Node = list_to_atom(atom_to_list(Name) ++ "@" ++ ?HOST),
    LogFile = filename:join(PrivDir, atom_to_list(Name) ++ ".log"),
    Args = code_path_args() ++ [
        "-hidden",
        "-connect_all", "false",
        "-kernel", "logger",
        lists:flatten(io_lib:format(
            "[{handler,default,logger_std_h,"
            "#{config=>#{file=>~p},"
            "formatter=>{logger_formatter,#{single_line=>false}}}}]",
            [LogFile]
        ))
    ],
    {ok, Pid, Node} = peer:start(#{
        name => Name,
        host => ?HOST,
        longnames => true,
        args => Args,
        wait_boot => 30000
    }),
    persistent_term:put(
        ?KEY(Node), #{peer => Pid, name => Name, opts => Opts}
    ),
    try
        ok = rpc(Node, ?MODULE, start_watchdog, [erlang:node()]),
        Env = case maps:find(port, Opts) of
            {ok, Port} ->
                Env0#{
                    listen_addrs => [#{ip => ?IP, port => Port}],
                    peer_port => Port
                };
            error ->
                Env0
        end,
        ok = rpc(Node, ?MODULE, configure, [maps:merge(default_env(), Env)]),
        ok = start_partisan(Node),
        ct:log("started ~p (log: ~s)", [Node, LogFile]),
        Node
    catch
        Class:Reason:Stack ->
            ct:log("starting ~p failed (log: ~s): ~p",
                   [Node, LogFile, {Class, Reason}]),
            stop_node(Node),
            erlang:raise(Class, Reason, Stack)
    end.


%% Every directory on our code path that is not part of OTP and exists on
%% disk: partisan's ebin, its deps, and the compiled test modules.
code_path_args() ->
    Root = code:root_dir(),
    Mine = filename:dirname(code:which(?MODULE)),
    PartisanEbin = case code:lib_dir(partisan) of
        {error, _} -> [];
        Dir -> [filename:join(Dir, "ebin")]
    end,
    Paths = lists:usort(
        [
            P
            || P <- code:get_path(),
               not lists:prefix(Root, P),
               P =/= ".",
               filelib:is_dir(P)
        ] ++ PartisanEbin ++ [Mine]
    ),
    lists:append([["-pa", P] || P <- Paths]).


wait_node_gone(Node) ->
    wait_until(
        {node_gone, Node},
        fun() -> not lists:member(Node, erlang:nodes(connected)) end,
        100,
        100
    ).


view_ok(N, #{nodes := Nodes, members := Members, fully_connected := FC},
        Expected) ->
    Others = Expected -- [N],
    Nodes =:= Others
        andalso Members =:= {ok, Expected}
        andalso lists:sort(FC) =:= Others;

view_ok(_, _, _) ->
    false.


catch_rpc(Node, M, F, A) ->
    try
        erpc:call(Node, M, F, A, 5000)
    catch
        Class:Reason ->
            {error, {Class, Reason}}
    end.


do_wait_until(Label, _Fun, 0, _SleepMs, Start, Last) ->
    Elapsed = erlang:monotonic_time(millisecond) - Start,
    ct:log("wait_until ~p timed out after ~p ms; last: ~p",
           [Label, Elapsed, Last]),
    ct:fail({timeout, Label, {elapsed_ms, Elapsed}, {last, Last}});

do_wait_until(Label, Fun, Retries, SleepMs, Start, _Last) ->
    Result = try Fun() catch C:R -> {false, {C, R}} end,
    case Result of
        true ->
            ok;
        false ->
            timer:sleep(SleepMs),
            do_wait_until(Label, Fun, Retries - 1, SleepMs, Start, false);
        {false, Why} ->
            timer:sleep(SleepMs),
            do_wait_until(Label, Fun, Retries - 1, SleepMs, Start, Why)
    end.


do_always_true(Label, Fun, Deadline, IntervalMs, Samples) ->
    Result = try Fun() catch C:R -> {false, {C, R}} end,
    case Result of
        true ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true ->
                    ct:log("~p held for ~p samples", [Label, Samples + 1]),
                    ok;
                false ->
                    timer:sleep(IntervalMs),
                    do_always_true(
                        Label, Fun, Deadline, IntervalMs, Samples + 1
                    )
            end;
        Other ->
            ct:fail({no_longer_true, Label, {sample, Samples + 1}, Other})
    end.


%% Parallel map with a bounded wait; re-raises the first failure.
pmap(Fun, List) ->
    [
        case R of
            {ok, V} -> V;
            {raise, C, R1, S} -> erlang:raise(C, R1, S)
        end
        || R <- pmap_results(Fun, List)
    ].


%% Parallel map returning {ok, Value} | {raise, Class, Reason, Stack} for each
%% element, in order.
pmap_results(Fun, List) ->
    Parent = self(),
    Tagged = [
        {I, spawn_monitor(fun() ->
            Res = try {ok, Fun(X)} catch C:R:S -> {raise, C, R, S} end,
            Parent ! {pmap, I, Res}
        end)}
        || {I, X} <- lists:zip(lists:seq(1, length(List)), List)
    ],
    [
        receive
            {pmap, I, Res} ->
                erlang:demonitor(Ref, [flush]),
                Res;
            {'DOWN', Ref, process, Pid, Reason} ->
                {raise, exit, Reason, []}
        after 120000 ->
            {raise, exit, pmap_timeout, []}
        end
        || {I, {Pid, Ref}} <- Tagged
    ].


whereis_or_fail(Name) ->
    case whereis(Name) of
        undefined -> error({not_registered, Name});
        Pid -> Pid
    end.


collector_call(Name, Req) ->
    Pid = whereis_or_fail(Name),
    MRef = monitor(process, Pid),
    Pid ! {'$ct_collector', Req, self(), MRef},
    receive
        {MRef, Reply} ->
            erlang:demonitor(MRef, [flush]),
            Reply;
        {'DOWN', MRef, _, _, Reason} ->
            error({collector_down, Name, Reason})
    after 20000 ->
        error({collector_timeout, Name})
    end.


%% -----------------------------------------------------------------------------
%% @doc Spawns `N' processes, the I-th of which answers each of `Rounds'
%% messages `{hello, J, Round}' by telling the local collector `Inbox'
%% `{checked, Round, J, I}' (so J =:= I when the message found its own
%% process), then ends. Returns `[{I, RemoteRef}]'.
%% @end
%% -----------------------------------------------------------------------------
-spec spawn_checkers(pos_integer(), atom(), pos_integer()) ->
    [{pos_integer(), partisan_remote_ref:p()}].

spawn_checkers(N, Inbox, Rounds) ->
    [begin
         Pid = spawn(fun() -> checker_loop(I, Inbox, Rounds) end),
         {I, partisan_remote_ref:from_term(Pid)}
     end || I <- lists:seq(1, N)].


checker_loop(_I, _Inbox, 0) ->
    ok;

checker_loop(I, Inbox, Left) ->
    receive
        {hello, J, Round} ->
            Inbox ! {checked, Round, J, I},
            checker_loop(I, Inbox, Left - 1)
    end.


%% -----------------------------------------------------------------------------
%% @doc Forwards `{hello, I, Round}' to each remote reference of `Pairs' (as
%% {@link spawn_checkers/3} returns them).
%% @end
%% -----------------------------------------------------------------------------
-spec forward_each([{pos_integer(), partisan_remote_ref:p()}], pos_integer()) ->
    ok.

forward_each(Pairs, Round) ->
    lists:foreach(
        fun({I, Ref}) -> ok = partisan:forward_message(Ref, {hello, I, Round}) end,
        Pairs
    ).


collector_loop(N, Acc) ->
    receive
        {'$ct_collector', get, From, Ref} ->
            From ! {Ref, lists:reverse(Acc)},
            collector_loop(N, Acc);
        {'$ct_collector', count, From, Ref} ->
            From ! {Ref, N},
            collector_loop(N, Acc);
        {'$ct_collector', reset, From, Ref} ->
            From ! {Ref, ok},
            collector_loop(0, []);
        {'$ct_collector', errors, From, Ref} ->
            From ! {Ref, []},
            collector_loop(N, Acc);
        Msg ->
            collector_loop(N + 1, [Msg | Acc])
    end.


echo_loop(Errors) ->
    receive
        {'$ct_collector', errors, From, Ref} ->
            From ! {Ref, lists:reverse(Errors)},
            echo_loop(Errors);
        {'$ct_collector', _, From, Ref} ->
            From ! {Ref, ok},
            echo_loop(Errors);
        {ping, ReplyTo, Tag, Payload} ->
            Res = partisan:forward_message(ReplyTo, {pong, Tag, Payload}),
            echo_loop(echo_result(Res, Tag, Errors));
        {ping, ReplyTo, Tag, Payload, Opts} ->
            Res = partisan:forward_message(
                ReplyTo, {pong, Tag, Payload}, Opts
            ),
            echo_loop(echo_result(Res, Tag, Errors));
        _ ->
            echo_loop(Errors)
    end.


echo_result(ok, _, Errors) -> Errors;
echo_result(Other, Tag, Errors) -> [{Tag, Other} | Errors].


ping_many(_Dest, I, N, _Opts, _Timeout) when I > N ->
    ok;

ping_many(Dest, I, N, Opts, Timeout) ->
    case ping(Dest, {ping_many, I}, I, Opts, Timeout) of
        {ok, _, I} -> ping_many(Dest, I + 1, N, Opts, Timeout);
        {ok, _, Other} -> {error, {I, wrong_payload, Other}};
        {error, Reason} -> {error, {I, Reason}}
    end.


make_binary(random, Size) ->
    crypto:strong_rand_bytes(Size);

make_binary(pattern, Size) ->
    Unit = <<"partisan compresses this nicely; ">>,
    Copies = Size div byte_size(Unit) + 1,
    binary:part(binary:copy(Unit, Copies), 0, Size).


rss_bytes() ->
    case file:read_file("/proc/self/status") of
        {ok, Bin} ->
            case re:run(Bin, "VmRSS:\\s+(\\d+)\\s+kB",
                        [{capture, all_but_first, list}]) of
                {match, [Kb]} -> list_to_integer(Kb) * 1024;
                nomatch -> 0
            end;
        _ ->
            0
    end.


%% -----------------------------------------------------------------------------
%% @doc With the HyParView manager: `true' when every active view of `Nodes'
%% is within [Min, Max] and holds only nodes of `Nodes', views are symmetric,
%% each equals the nodes that are up there, and the overlay is connected;
%% else `{false, Why}'.
%% @end
%% -----------------------------------------------------------------------------
-spec hyparview_check([node()], pos_integer(), pos_integer()) -> true | {false, term()}.

hyparview_check(Nodes, Min, Max) ->
    Views = maps:from_list([{N, hyparview_view(N)} || N <- Nodes]),
    Bad = [
        {N, View, Up}
        || {N, {View, Up}} <- maps:to_list(Views),
           length(View) < min(Min, length(Nodes) - 1)
               orelse length(View) > Max
               orelse View =/= Up
               orelse (View -- Nodes) =/= []
    ],
    Asymmetric = [
        {N, P}
        || {N, {View, _}} <- maps:to_list(Views), P <- View,
           not lists:member(N, element(1, maps:get(P, Views, {[], []})))
    ],
    Reached = overlay_reach([hd(Nodes)], Views, []),
    if
        Bad =/= [] -> {false, {views, Bad}};
        Asymmetric =/= [] -> {false, {asymmetric, Asymmetric}};
        length(Reached) =/= length(Nodes) -> {false, {reached, Reached}};
        true -> true
    end.

hyparview_view(Node) ->
    {ok, Active} = rpc(Node, partisan_hyparview_peer_service_manager, active, []),
    {lists:sort(Active), lists:sort(rpc(Node, partisan, nodes, []))}.

overlay_reach([], _, Seen) ->
    lists:sort(Seen);
overlay_reach([N | Todo], Views, Seen) ->
    case lists:member(N, Seen) of
        true ->
            overlay_reach(Todo, Views, Seen);
        false ->
            {View, _} = maps:get(N, Views, {[], []}),
            overlay_reach(View ++ Todo, Views, [N | Seen])
    end.
