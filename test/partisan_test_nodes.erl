%% -----------------------------------------------------------------------------
%% @doc Peer nodes for the multi-node suites that need nodes without
%% Distributed Erlang: `stdio' nodes are OTP `peer' nodes driven over their
%% standard I/O (node `nonode@nohost', partisan name given), `dist' nodes are
%% started by {@link partisan_ct_support} (Distributed Erlang orchestrates,
%% partisan names are the VM's). A node is a map with `kind' and `name' (its
%% partisan name); {@link call/4} runs a function on it. Every node runs
%% `partisan_drop_in_agent', with an echo server registered as `echo'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_test_nodes).

-include_lib("common_test/include/ct.hrl").

-export([start/4]).
-export([stop/1]).
-export([restart/2]).
-export([mesh/1]).
-export([cluster/1]).
-export([name/1]).
-export([call/4]).

-define(AGENT, partisan_drop_in_agent).
-define(CALL_TIMEOUT, 30000).

-type handle() :: #{kind := stdio | dist, name := node(), atom() => term()}.

-export_type([handle/0]).


%% @doc Starts a node with partisan and the echo; `Config' must hold `group'.
-spec start(stdio | dist, string(), map(), list()) -> handle().

start(stdio, Tag, Env, Config) ->
    Name = list_to_atom(
        "drop_in_" ++ Tag ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))
        ++ "@127.0.0.1"
    ),
    start_stdio(Name, Env, Config);

start(dist, Tag, Env, Config) ->
    Short = partisan_ct_support:node_name("drop_in_" ++ Tag),
    Node = partisan_ct_support:start_node(Short, Config, #{env => Env}),
    N = #{kind => dist, node => Node, name => Node},
    _ = call(N, ?AGENT, start_echo, [echo]),
    N.

start_stdio(Name, Env, _Config) ->
    {ok, Peer, nonode@nohost} = peer:start(#{
        connection => standard_io,
        args => code_path_args(),
        wait_boot => 30000
    }),
    N = #{kind => stdio, peer => Peer, name => Name, env => Env},
    FullEnv = maps:merge(partisan_ct_support:default_env(), Env#{name => Name}),
    _ = call(N, ?AGENT, start, [FullEnv]),
    _ = call(N, ?AGENT, start_echo, [echo]),
    N.

-spec stop(handle()) -> term().

stop(#{kind := stdio, peer := Peer}) ->
    catch peer:stop(Peer);

stop(#{kind := dist, node := Node}) ->
    partisan_ct_support:stop_node(Node).

%% Stops the node and starts it again under the same partisan name; it joins
%% the first node. Returns the new handle.
-spec restart(handle(), list()) -> handle().

restart(#{kind := stdio, name := Name, env := Env} = N, Config) ->
    stop(N),
    rejoin(start_stdio(Name, Env, Config), Config);

restart(#{kind := dist, node := Node} = N, Config) ->
    ok = partisan_ct_support:stop_node(Node),
    Node = partisan_ct_support:restart_node(Node),
    _ = call(N, ?AGENT, start_echo, [echo]),
    rejoin(N, Config).

%% The restarted node joins the first; its handle replaces the old one.
rejoin(New, Config) ->
    [A | _] = Nodes = cluster(Config),
    ok = call(New, ?AGENT, join, [call(A, partisan, node_spec, [])]),
    {ok, _} = call(A, ?AGENT, wait_up, [name(New), 20000]),
    {ok, _} = call(New, ?AGENT, wait_up, [name(A), 20000]),
    Replaced = [
        case name(N) =:= name(New) of
            true -> New;
            false -> N
        end
        || N <- Nodes
    ],
    persistent_term:put({?MODULE, ?config(group, Config)}, Replaced),
    New.

%% Every node joins the first and sees the others.
-spec mesh([handle()]) -> ok.

mesh([A | Rest] = All) ->
    Spec = call(A, partisan, node_spec, []),
    lists:foreach(fun(N) -> ok = call(N, ?AGENT, join, [Spec]) end, Rest),
    lists:foreach(
        fun(N) ->
            [{ok, _} = call(N, ?AGENT, wait_up, [name(M), 20000])
             || M <- All, M =/= N]
        end,
        All
    ).

%% The group's nodes, restarted ones (stdio peers get new handles) included.
-spec cluster(list()) -> [handle()].

cluster(Config) ->
    Key = {?MODULE, ?config(group, Config)},
    persistent_term:get(Key, ?config(nodes, Config)).

-spec name(handle()) -> node().

name(#{name := Name}) ->
    Name.

-spec call(handle(), module(), atom(), list()) -> term().

call(#{kind := stdio, peer := Peer}, M, F, A) ->
    peer:call(Peer, M, F, A, ?CALL_TIMEOUT);

call(#{kind := dist, node := Node}, M, F, A) ->
    erpc:call(Node, M, F, A, ?CALL_TIMEOUT).

code_path_args() ->
    Mine = filename:dirname(code:which(?MODULE)),
    Root = code:root_dir(),
    Paths = lists:usort(
        [P || P <- code:get_path(), not lists:prefix(Root, P), P =/= ".",
              filelib:is_dir(P)] ++ [Mine]
    ),
    lists:append([["-pa", P] || P <- Paths]).
