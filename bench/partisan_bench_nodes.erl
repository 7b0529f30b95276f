%% -----------------------------------------------------------------------------
%% @doc What the many-node scripts share (`make scale`, `make mesh`): starting
%% BEAM nodes with partisan, loading modules on them, waiting for a condition,
%% and reading a node's figures from /proc. Runs on the script's own node.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_nodes).

-export([compile/2]).
-export([start_peer/4]).
-export([pmap/2]).
-export([wait/2]).
-export([rss/1]).
-export([threads/1]).
-export([now_ms/0]).
-export([avg/1]).

-type code() :: {module(), file:filename(), binary()}.


%% @doc Compiles the module `Root/Path' into a binary, to load on nodes.
-spec compile(file:filename(), file:filename()) -> code().
compile(Root, Path) ->
    Src = filename:join(Root, Path),
    {ok, Mod, Bin} = compile:file(Src, [binary, report]),
    {Mod, Src, Bin}.


%% @doc Starts node `Name' (one scheduler, busy-wait off, no Distributed
%% Erlang mesh), sets partisan's `Env', loads `Code' there and starts partisan.
-spec start_peer(atom(), file:filename(), [{atom(), term()}], [code()]) -> {pid(), node()}.
start_peer(Name, Ebin, Env, Code) ->
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()), "-pa", Ebin,
            "-connect_all", "false", "-kernel", "logger_level", "warning",
            "+S", "1", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"],
    %% Not linked: the process that starts it may end at once.
    {ok, Peer, Node} = peer:start(#{
        name => Name, host => "127.0.0.1", longnames => true,
        exec => os:find_executable("erl"), args => Args, wait_boot => 60000
    }),
    [{module, M} = erpc:call(Node, code, load_binary, [M, F, B]) || {M, F, B} <- Code],
    [ok = erpc:call(Node, application, set_env, [partisan, K, V]) || {K, V} <- Env],
    {ok, _} = erpc:call(Node, partisan, start, []),
    {Peer, Node}.


%% @doc `lists:map/2' with one process per element.
-spec pmap(fun((A) -> B), [A]) -> [B].
pmap(F, List) ->
    Parent = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() -> Parent ! {Ref, F(X)} end),
                Ref
            end || X <- List],
    [receive {Ref, R} -> R end || Ref <- Refs].


%% @doc Polls `Fun' every 100 ms until it returns true; returns when (ms),
%% fails with `timeout' after `Timeout' ms.
-spec wait(fun(() -> boolean()), non_neg_integer()) -> integer().
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


%% @doc The resident size of `Node''s OS process, in bytes.
-spec rss(node()) -> non_neg_integer().
rss(Node) -> status_field(Node, "VmRSS:\\s+(\\d+) kB") * 1024.


%% @doc The OS threads of `Node''s OS process.
-spec threads(node()) -> non_neg_integer().
threads(Node) -> status_field(Node, "Threads:\\s+(\\d+)").


status_field(Node, Re) ->
    Pid = erpc:call(Node, os, getpid, []),
    {ok, Status} = file:read_file("/proc/" ++ Pid ++ "/status"),
    {match, [V]} = re:run(Status, Re, [{capture, all_but_first, list}]),
    list_to_integer(V).


-spec now_ms() -> integer().
now_ms() -> erlang:monotonic_time(millisecond).


-spec avg([number()]) -> float().
avg(L) -> lists:sum(L) / max(1, length(L)).
