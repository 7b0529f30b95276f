%% -----------------------------------------------------------------------------
%% @doc The Partisan API: the node, its membership and message passing.
%%
%% Several functions are the Partisan counterparts of functions of the
%% `erlang' and `net_kernel' modules, working over Partisan's transport and
%% with remote references (see {@link partisan_remote_ref}) where Distributed
%% Erlang would use pids and references of other nodes.
%%
%% Sending ({@link forward_message/4} and friends) runs entirely in the
%% caller (see {@link partisan_send}): the message is encoded and handed to
%% the native transport, without going through any other Erlang process.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan).

-include("partisan.hrl").

%% Messages encoded to at most this size are handed to the transport on a
%% normal scheduler; larger ones on a dirty scheduler (docs/nif_api.md).
-compile({no_auto_import, [exit/2, is_process_alive/1, process_info/1, process_info/2,
                           spawn/2, spawn/4, spawn_monitor/2, spawn_monitor/4]}).

-define(IS_OPTS(Opts), (is_map(Opts) orelse is_list(Opts))).

-type any_pid() :: pid() | remote_pid().
-type any_reference() :: reference() | remote_reference().
-type any_name() :: atom() | remote_name().
-type remote_pid() :: partisan_remote_ref:p().
-type remote_reference() :: partisan_remote_ref:r().
-type remote_name() :: partisan_remote_ref:n().
-type server_ref() :: partisan_peer_service_manager:server_ref().
-type forward_opts() :: partisan_peer_service_manager:forward_opts().
-type node_type() :: this | known | visible | connected | hidden.
-type channel() :: atom().
-type channel_opts() :: #{
    parallelism := pos_integer(),
    monotonic => boolean(),
    compression => boolean() | 0..9
}.
-type listen_addr() :: #{ip := inet:ip_address(), port := inet:port_number()}.
-type node_spec() :: #{
    name := node(),
    listen_addrs := [listen_addr()],
    channels := #{channel() => channel_opts()}
}.
-type message() :: term().
-type send_dst() :: server_ref().
-type forward_result() :: ok | {error, partisan_nif:send_error()}.
%% The options of monitor/3, demonitor/2 and monitor_nodes/2 (Partisan 5's
%% names).
-type monitor_opt() :: erlang:monitor_option()
                     | {channel, channel()}
                     | {channel_fallback, boolean()}.
-type demonitor_opt() :: flush | info.
-type monitor_nodes_opt() :: nodedown_reason
                           | {node_type, visible | hidden | all}
                           | {channel, channel()}
                           | {channel_fallback, boolean()}.
%% What node_info/1 may be asked.
-type info_opt() :: metadata | name | channels | listen_addrs | listen_ip
                  | listen_port | connection_count.
-type actor() :: binary().

-export_type([actor/0]).
-export_type([any_name/0]).
-export_type([demonitor_opt/0]).
-export_type([info_opt/0]).
-export_type([monitor_nodes_opt/0]).
-export_type([monitor_opt/0]).
-export_type([any_pid/0]).
-export_type([any_reference/0]).
-export_type([channel/0]).
-export_type([channel_opts/0]).
-export_type([forward_opts/0]).
-export_type([forward_result/0]).
-export_type([listen_addr/0]).
-export_type([message/0]).
-export_type([node_spec/0]).
-export_type([node_type/0]).
-export_type([remote_name/0]).
-export_type([remote_pid/0]).
-export_type([remote_reference/0]).
-export_type([server_ref/0]).

%% Application
-export([start/0]).
-export([stop/0]).

%% Counterparts of erlang and net_kernel functions
-export([disconnect_node/1]).
-export([is_alive/0]).
-export([is_pid/1]).
-export([is_reference/1]).
-export([make_ref/0]).
-export([monitor/1]).
-export([monitor/2]).
-export([monitor/3]).
-export([demonitor/1]).
-export([demonitor/2]).
-export([monitor_node/2]).
-export([monitor_node/3]).
-export([monitor_nodes/1]).
-export([monitor_nodes/2]).
-export([node/0]).
-export([node/1]).
-export([nodes/0]).
-export([nodes/1]).
-export([self/0]).
-export([cancel_timer/1]).
-export([cancel_timer/2]).
-export([exit/2]).
-export([is_process_alive/1]).
-export([process_info/1]).
-export([process_info/2]).
-export([send_after/3]).
-export([send_after/4]).
-export([spawn/2]).
-export([spawn/4]).
-export([spawn_monitor/2]).
-export([spawn_monitor/4]).
-export([self/1]).
-export([send/2]).
-export([send/3]).
-export([whereis/1]).

%% Partisan
-export([broadcast/2]).
-export([cast_message/2]).
-export([cast_message/3]).
-export([cast_message/4]).
-export([channel_opts/1]).
-export([default_channel/0]).
-export([forward_message/2]).
-export([forward_message/3]).
-export([forward_message/4]).
-export([is_connected/1]).
-export([is_connected/2]).
-export([is_fully_connected/1]).
-export([is_local/1]).
-export([is_local_name/1]).
-export([is_local_name/2]).
-export([is_local_pid/1]).
-export([is_local_pid/2]).
-export([is_local_reference/1]).
-export([is_local_reference/2]).
-export([is_self/1]).
-export([join/1]).
-export([kill_connections/1]).
-export([leave/0]).
-export([node_spec/0]).
-export([node_spec/1]).
-export([node_spec/2]).
-export([nodestring/0]).

-compile({no_auto_import, [
    demonitor/1, demonitor/2, disconnect_node/1, is_alive/0, is_pid/1,
    is_reference/1, make_ref/0, monitor/2, monitor/3, monitor_node/2,
    monitor_node/3, node/0, node/1, nodes/0, nodes/1, self/0, whereis/1
]}).



%% =============================================================================
%% APPLICATION
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Starts the `partisan' application and the applications it needs.
%% @end
%% -----------------------------------------------------------------------------
-spec start() -> {ok, [atom()]} | {error, term()}.

start() ->
    application:ensure_all_started(?APP).


%% -----------------------------------------------------------------------------
%% @doc Stops the `partisan' application.
%% @end
%% -----------------------------------------------------------------------------
-spec stop() -> ok | {error, term()}.

stop() ->
    application:stop(?APP).



%% =============================================================================
%% THE NODE
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Returns the name of the local node: Distributed Erlang's name when the
%% node is distributed, else the configured or generated one.
%% @end
%% -----------------------------------------------------------------------------
-spec node() -> node().

node() ->
    partisan_config:get(name).


%% -----------------------------------------------------------------------------
%% @doc Returns the node `Arg' belongs to: a pid, port, reference or remote
%% reference. Local pids, ports and references belong to {@link node/0} (unless
%% `connect_disterl' is `true', where Distributed Erlang's answer is kept).
%% Fails with `badarg' for a URI reference of a node this VM does not know.
%% @end
%% -----------------------------------------------------------------------------
-spec node(pid() | port() | reference() | partisan_remote_ref:t()) ->
    node() | no_return().

node(Arg)
when erlang:is_pid(Arg); erlang:is_port(Arg); erlang:is_reference(Arg) ->
    case erlang:node(Arg) of
        nonode@nohost ->
            case partisan_config:get(connect_disterl, false) of
                true -> nonode@nohost;
                false -> node()
            end;
        Node ->
            Node
    end;

node(Arg) ->
    partisan_remote_ref:node(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns the name of the local node as a binary.
%% @end
%% -----------------------------------------------------------------------------
-spec nodestring() -> binary().

nodestring() ->
    partisan_config:get(nodestring).


%% -----------------------------------------------------------------------------
%% @doc Returns the specification of the local node: what other nodes need to
%% join it. `listen_addrs' holds the bound addresses once the peer service is
%% running.
%% @end
%% -----------------------------------------------------------------------------
-spec node_spec() -> node_spec().

node_spec() ->
    #{
        name => node(),
        listen_addrs => partisan_config:listen_addrs(),
        channels => maps:map(fun spec_channel_opts/2, partisan_config:channels())
    }.


%% -----------------------------------------------------------------------------
%% @doc Same as `node_spec(Node, #{})'.
%% @end
%% -----------------------------------------------------------------------------
-spec node_spec(node() | binary() | string()) ->
    {ok, node_spec()} | {error, Reason :: term()}.

node_spec(Node) ->
    node_spec(Node, #{}).


%% -----------------------------------------------------------------------------
%% @doc Returns the specification of node `Node': the local one, a member's
%% (as known to the membership), or, for a node connected through Distributed
%% Erlang, the one it reports (with timeout `rpc_timeout', default 5000 ms).
%% Otherwise returns `{error, not_yet_connected}'. A name given as text never
%% creates an atom: an unknown name is not connected.
%% @end
%% -----------------------------------------------------------------------------
-spec node_spec(
    Node :: node() | binary() | string(),
    Opts :: #{rpc_timeout => timeout()}) ->
    {ok, node_spec()} | {error, Reason :: term()}.

node_spec(Node, Opts) when is_binary(Node); is_list(Node) ->
    case existing_atom(Node) of
        {ok, Atom} -> node_spec(Atom, Opts);
        error -> {error, not_yet_connected}
    end;

node_spec(Node, Opts) when is_atom(Node), is_map(Opts) ->
    case Node =:= node() of
        true ->
            {ok, node_spec()};
        false ->
            Timeout = maps:get(rpc_timeout, Opts, ?DEFAULT_TIMEOUT),
            remote_node_spec(Node, Timeout)
    end;

node_spec(Node, Opts) ->
    erlang:error(badarg, [Node, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Same as `nodes(visible)': the members this node is connected to.
%% @end
%% -----------------------------------------------------------------------------
-spec nodes() -> [node()].

nodes() ->
    nodes(visible).


%% -----------------------------------------------------------------------------
%% @doc Returns nodes by type, like `erlang:nodes/1': `this' (the local
%% node), `known' (all members, the local node included), `visible' and
%% `connected' (the members with a live connection), `hidden' (always `[]');
%% a list gives the union. With `connect_disterl' set to `true', this is
%% `erlang:nodes(Arg)'.
%% @end
%% -----------------------------------------------------------------------------
-spec nodes(node_type() | [node_type()]) -> [node()].

nodes(Arg) ->
    case partisan_config:get(connect_disterl, false) of
        true -> erlang:nodes(Arg);
        false -> partisan_nodes(Arg)
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns whether the peer service is running.
%% @end
%% -----------------------------------------------------------------------------
-spec is_alive() -> boolean().

is_alive() ->
    erlang:whereis(?PEER_SERVICE_MANAGER) =/= undefined.


%% -----------------------------------------------------------------------------
%% @doc Returns the name of the default channel.
%% @end
%% -----------------------------------------------------------------------------
-spec default_channel() -> channel().

default_channel() ->
    ?DEFAULT_CHANNEL.


%% -----------------------------------------------------------------------------
%% @doc Returns the options of `Channel'; fails with `badarg' if it does not
%% exist.
%% @end
%% -----------------------------------------------------------------------------
-spec channel_opts(Channel :: channel()) -> channel_opts() | no_return().

channel_opts(Channel) ->
    partisan_config:channel_opts(Channel).



%% =============================================================================
%% MEMBERSHIP AND CONNECTIONS
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Joins the cluster of `NodeSpec'. See {@link partisan_peer_service:join/1}.
%% @end
%% -----------------------------------------------------------------------------
-spec join(node_spec() | node()) -> ok | {error, Reason :: term()}.

join(NodeSpec) ->
    partisan_peer_service:join(NodeSpec).


%% -----------------------------------------------------------------------------
%% @doc Leaves the cluster. See {@link partisan_peer_service:leave/0}.
%% @end
%% -----------------------------------------------------------------------------
-spec leave() -> ok.

leave() ->
    partisan_peer_service:leave().


%% -----------------------------------------------------------------------------
%% @doc Removes `Node' from the cluster (leaves it if `Node' is the local node)
%% and returns `true'; returns `false' if `Node' is not a member.
%% @end
%% -----------------------------------------------------------------------------
-spec disconnect_node(node()) -> boolean().

disconnect_node(Node) when is_atom(Node) ->
    case Node =:= node() of
        true ->
            ok = partisan_peer_service:leave(),
            true;
        false ->
            partisan_peer_service:member(Node)
                andalso partisan_peer_service:leave(Node) =:= ok
    end.


%% -----------------------------------------------------------------------------
%% @doc Closes every connection to `Node' (or to each node of a list). Members
%% reconnect afterwards.
%% @end
%% -----------------------------------------------------------------------------
-spec kill_connections(node() | [node()]) -> ok.

kill_connections(Node) when is_atom(Node) ->
    kill_connections([Node]);

kill_connections(Nodes) when is_list(Nodes) ->
    partisan_nif:kill_connections(partisan_nif:engine(), Nodes).


%% -----------------------------------------------------------------------------
%% @doc Returns whether there is at least one connection to the node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_connected(node() | node_spec()) -> boolean().

is_connected(NodeOrSpec) ->
    is_connected(NodeOrSpec, '_').


%% -----------------------------------------------------------------------------
%% @doc Returns whether there is at least one connection to the node on
%% `Channel' (`` '_' '' for any channel).
%% @end
%% -----------------------------------------------------------------------------
-spec is_connected(node() | node_spec(), channel() | '_') -> boolean().

is_connected(NodeOrSpec, Channel) when is_atom(Channel) ->
    Node = partisan_peer_service:node_name(NodeOrSpec),
    partisan_nif:is_connected(partisan_nif:engine(), Node, Channel).


%% -----------------------------------------------------------------------------
%% @doc Returns whether every connection to the node (each channel times its
%% parallelism) is up.
%% @end
%% -----------------------------------------------------------------------------
-spec is_fully_connected(node() | node_spec()) -> boolean().

is_fully_connected(NodeOrSpec) ->
    Node = partisan_peer_service:node_name(NodeOrSpec),
    partisan_nif:is_fully_connected(partisan_nif:engine(), Node).



%% =============================================================================
%% PROCESSES, REFERENCES AND NAMES
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Returns the remote reference of the calling process.
%% @end
%% -----------------------------------------------------------------------------
-spec self() -> remote_pid().

self() ->
    partisan_remote_ref:from_term(erlang:self()).


%% -----------------------------------------------------------------------------
%% @doc Returns the remote reference of the calling process. With `[cache]'
%% it is computed once and kept in the process dictionary (avoid this in a
%% shell process, whose dictionary survives into its successor).
%% @end
%% -----------------------------------------------------------------------------
-spec self([cache]) -> remote_pid().

self([]) ->
    self();

self([cache]) ->
    Key = {?MODULE, self},
    case get(Key) of
        undefined ->
            Ref = self(),
            _ = put(Key, Ref),
            Ref;
        Ref ->
            Ref
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns a new reference, as a remote reference.
%% @end
%% -----------------------------------------------------------------------------
-spec make_ref() -> remote_reference().

make_ref() ->
    partisan_remote_ref:from_term(erlang:make_ref()).


%% -----------------------------------------------------------------------------
%% @doc Returns the pid or port registered as `Arg' (a name or a name
%% reference of this node), or `undefined'. Fails with `badarg' for a
%% reference of another node.
%% @end
%% -----------------------------------------------------------------------------
-spec whereis(atom() | remote_name()) -> pid() | port() | undefined.

whereis(Name) when is_atom(Name) ->
    erlang:whereis(Name);

whereis(Ref) ->
    partisan_remote_ref:is_local_name(Ref) orelse erlang:error(badarg, [Ref]),
    try partisan_remote_ref:to_name(Ref) of
        Name -> erlang:whereis(Name)
    catch
        %% No such atom, so nothing can be registered under it.
        error:badarg -> undefined
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is a pid or a pid remote reference.
%% @end
%% -----------------------------------------------------------------------------
-spec is_pid(term()) -> boolean().

is_pid(Arg) when erlang:is_pid(Arg) ->
    true;

is_pid(Arg) ->
    partisan_remote_ref:is_pid(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is a reference or a reference remote reference.
%% @end
%% -----------------------------------------------------------------------------
-spec is_reference(term()) -> boolean().

is_reference(Arg) when erlang:is_reference(Arg) ->
    true;

is_reference(Arg) ->
    partisan_remote_ref:is_reference(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' (a pid, port, reference or remote reference)
%% belongs to the local node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local(pid() | port() | reference() | partisan_remote_ref:t()) ->
    boolean() | no_return().

is_local(Arg)
when erlang:is_pid(Arg); erlang:is_port(Arg); erlang:is_reference(Arg) ->
    %% Pids, ports and references of this node always arrive as the VM's own.
    erlang:node(Arg) =:= erlang:node();

is_local(Arg) ->
    partisan_remote_ref:is_local(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is a local pid or a pid reference of this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_pid(term()) -> boolean().

is_local_pid(Pid) when erlang:is_pid(Pid) ->
    is_local(Pid);

is_local_pid(Arg) ->
    partisan_remote_ref:is_local_pid(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' designates the local process `Pid'.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_pid(term(), pid()) -> boolean() | no_return().

is_local_pid(Pid, Pid) when erlang:is_pid(Pid) ->
    is_local(Pid);

is_local_pid(Arg, Pid) when erlang:is_pid(Pid) ->
    partisan_remote_ref:is_local_pid(Arg, Pid);

is_local_pid(Arg, Pid) ->
    erlang:error(badarg, [Arg, Pid]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is a name, or a name reference of this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_name(term()) -> boolean().

is_local_name(Name) when is_atom(Name) ->
    true;

is_local_name(Arg) ->
    partisan_remote_ref:is_local_name(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is the name `Name', or its reference on this
%% node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_name(term(), atom()) -> boolean() | no_return().

is_local_name(Name, Name) when is_atom(Name) ->
    true;

is_local_name(Arg, Name) when is_atom(Name) ->
    partisan_remote_ref:is_local_name(Arg, Name);

is_local_name(Arg, Name) ->
    erlang:error(badarg, [Arg, Name]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is a local reference or a reference remote
%% reference of this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_reference(term()) -> boolean().

is_local_reference(Ref) when erlang:is_reference(Ref) ->
    is_local(Ref);

is_local_reference(Arg) ->
    partisan_remote_ref:is_local_reference(Arg).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' stands for the local reference `Ref'.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_reference(term(), reference()) -> boolean() | no_return().

is_local_reference(Ref, Ref) when erlang:is_reference(Ref) ->
    is_local(Ref);

is_local_reference(Arg, Ref) when erlang:is_reference(Ref) ->
    partisan_remote_ref:is_local_reference(Arg, Ref);

is_local_reference(Arg, Ref) ->
    erlang:error(badarg, [Arg, Ref]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Arg' is the calling process (its pid or its remote
%% reference).
%% @end
%% -----------------------------------------------------------------------------
-spec is_self(term()) -> boolean().

is_self(Pid) when erlang:is_pid(Pid) ->
    Pid =:= erlang:self();

is_self(Arg) ->
    partisan_remote_ref:is_local_pid(Arg, erlang:self()).



%% =============================================================================
%% MONITORS
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Same as `monitor(process, Target)'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor(term()) -> reference().

monitor(Target) ->
    monitor(process, Target).


%% -----------------------------------------------------------------------------
%% @doc Same as `monitor(Type, Target, [])'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor(process | port | time_offset, term()) -> reference().

monitor(Type, Target) ->
    monitor(Type, Target, []).


%% -----------------------------------------------------------------------------
%% @doc Monitors `Target' as `erlang:monitor/3' does, also when it is on
%% another node reached over partisan: a pid of another node (as it arrived
%% in a message), `{Name, Node}', or a pid or name remote reference. The
%% caller gets `{'DOWN', Ref, process, Object, Reason}' with the reference
%% returned: the exit reason, `noproc' if the target did not exist, or
%% `noconnection' if its node is not connected or the connection is lost.
%% `Object' is the pid, `{Name, Node}' or the remote reference given.
%% Options: those of `erlang:monitor/3' for local targets, and `{channel,
%% C}' and `{channel_fallback, Bool}' (the channel of the request) for
%% remote ones. Port and time offset monitors are local, as in Erlang.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor(process | port | time_offset, term(), [monitor_opt()]) -> reference().

monitor(process, Target, Opts) when is_list(Opts) ->
    case monitor_target(Target) of
        {local, Local} ->
            erlang:monitor(process, Local, erlang_monitor_opts(Opts));
        {remote, Node, Remote} ->
            partisan_monitor:monitor(Node, Remote, forward_opts(Opts))
    end;

monitor(Type, Target, Opts) when Type == port; Type == time_offset ->
    erlang:monitor(Type, Target, Opts);

monitor(Type, Target, Opts) ->
    erlang:error(badarg, [Type, Target, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Same as `demonitor(Ref, [])'.
%% @end
%% -----------------------------------------------------------------------------
-spec demonitor(reference()) -> true.

demonitor(Ref) ->
    _ = demonitor(Ref, []),
    true.


%% -----------------------------------------------------------------------------
%% @doc Removes a monitor made by {@link monitor/3}, as `erlang:demonitor/2'
%% does, with its options `flush' (remove a `DOWN' for it from the mailbox)
%% and `info' (return whether the monitor was still active). After it
%% returns, no `DOWN' for `Ref' arrives.
%% @end
%% -----------------------------------------------------------------------------
-spec demonitor(reference(), [demonitor_opt()]) -> boolean().

demonitor(Ref, Opts) when erlang:is_reference(Ref), is_list(Opts) ->
    case partisan_monitor:remove(Ref, erlang:self()) of
        false ->
            erlang:demonitor(Ref, Opts);
        {true, Active} ->
            Flushed = lists:member(flush, Opts) andalso flush_down(Ref),
            case lists:member(info, Opts) of
                true -> Active andalso not Flushed;
                false -> true
            end
    end;

demonitor(Ref, Opts) ->
    erlang:error(badarg, [Ref, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Same as `monitor_node(Node, Flag, [])'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_node(node() | node_spec(), boolean()) -> true.

monitor_node(Node, Flag) ->
    monitor_node(Node, Flag, []).


%% -----------------------------------------------------------------------------
%% @doc Monitors the partisan connection to `Node', as `erlang:monitor_node/3'
%% does: with `Flag' `true' the caller gets `{nodedown, Node}' when the node
%% goes down (at once if it is not connected), once per call; `false' undoes
%% one call. The local node is never down. With `connect_disterl' set to
%% `true' this is `erlang:monitor_node/3'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_node(node() | node_spec(), boolean(), list()) -> true.

monitor_node(#{name := Node}, Flag, Opts) ->
    monitor_node(Node, Flag, Opts);

monitor_node(Node, Flag, Opts)
when is_atom(Node), is_boolean(Flag), is_list(Opts) ->
    case partisan_config:get(connect_disterl, false) of
        true ->
            erlang:monitor_node(Node, Flag, Opts);
        false ->
            case Node =:= node() of
                true -> true;
                false -> partisan_monitor:monitor_node(Node, Flag)
            end
    end;

monitor_node(Node, Flag, Opts) ->
    erlang:error(badarg, [Node, Flag, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Same as `monitor_nodes(Flag, [])'.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_nodes(boolean()) -> ok.

monitor_nodes(Flag) ->
    monitor_nodes(Flag, []).


%% -----------------------------------------------------------------------------
%% @doc Subscribes the caller to `{nodeup, Node}' and `{nodedown, Node}' for
%% the nodes partisan connects, as `net_kernel:monitor_nodes/2' does; each
%% `nodeup' is followed by exactly one `nodedown' for that connection. With
%% options (`nodedown_reason', `{node_type, visible | hidden | all}') the
%% messages are `{nodeup, Node, Info}' and `{nodedown, Node, Info}', `Info'
%% holding `{node_type, visible}' when asked and `{nodedown_reason, R}' when
%% asked. `false' with the same options ends one subscription.
%% @end
%% -----------------------------------------------------------------------------
-spec monitor_nodes(boolean(), [monitor_nodes_opt()]) -> ok | error.

monitor_nodes(Flag, Opts) when is_boolean(Flag), is_list(Opts) ->
    case lists:all(fun is_monitor_nodes_opt/1, Opts) of
        true -> partisan_monitor:monitor_nodes(Flag, Opts);
        false -> error
    end;

monitor_nodes(_, _) ->
    error.



%% =============================================================================
%% PROCESSES
%% =============================================================================



%% @doc As `erlang:is_process_alive/1' for a process of any node (a pid or a
%% remote reference); a remote one is asked on its node. Fails with `badarg'
%% on anything else and with `noconnection' if its node cannot be reached.
-spec is_process_alive(pid() | remote_pid()) -> boolean().

is_process_alive(Process) ->
    partisan_proc:is_process_alive(Process).


%% @doc As `erlang:exit/2' for a process of any node (a pid, a remote
%% reference or a registered name); a signal to an unreachable node is
%% dropped, as Distributed Erlang drops it.
-spec exit(pid() | remote_pid() | remote_name() | atom(), term()) -> true.

exit(Process, Reason) ->
    partisan_proc:exit(Process, Reason).


%% @doc As `erlang:process_info/1' for a process of any node.
-spec process_info(pid() | remote_pid()) -> [tuple()] | undefined.

process_info(Process) ->
    partisan_proc:process_info(Process).


%% @doc As `erlang:process_info/2' for a process of any node.
-spec process_info(pid() | remote_pid(), atom() | [atom()]) -> term().

process_info(Process, Items) ->
    partisan_proc:process_info(Process, Items).


%% @doc Starts `Fun' on `Node'; returns the process as a remote reference.
%% If `Node' cannot be reached, the reference names a process that exits at
%% once with `noconnection' (so monitors and links report what Distributed
%% Erlang would).
-spec spawn(node(), fun(() -> any())) -> remote_pid().

spawn(Node, Fun) ->
    partisan_proc:spawn(Node, Fun).


%% @doc Like {@link spawn/2} with `Module:Function(Args)'.
-spec spawn(node(), module(), atom(), [term()]) -> remote_pid().

spawn(Node, Module, Function, Args) ->
    partisan_proc:spawn(Node, Module, Function, Args).


%% @doc Like {@link spawn/2} and monitors the process, the monitor in place
%% before the process runs: `{Process, MonitorRef}'.
-spec spawn_monitor(node(), fun(() -> any())) -> {remote_pid(), reference()}.

spawn_monitor(Node, Fun) ->
    partisan_proc:spawn_monitor(Node, Fun).


%% @doc Like {@link spawn/4} and monitors the process (see {@link spawn_monitor/2}).
-spec spawn_monitor(node(), module(), atom(), [term()]) -> {remote_pid(), reference()}.

spawn_monitor(Node, Module, Function, Args) ->
    partisan_proc:spawn_monitor(Node, Module, Function, Args).


%% @doc Same as `send_after(Time, Dest, Msg, [])'.
-spec send_after(non_neg_integer(), server_ref(), message()) -> reference().

send_after(Time, Dest, Msg) ->
    send_after(Time, Dest, Msg, []).


%% @doc As `erlang:send_after/4' for a destination on any node; `Opts' are
%% the timer's (`abs') and Partisan's forwarding options (`channel'). Cancel
%% with {@link cancel_timer/1,2}.
-spec send_after(non_neg_integer(), server_ref(), message(), list()) -> reference().

send_after(Time, Dest, Msg, Opts) ->
    partisan_proc:send_after(Time, Dest, Msg, Opts).


%% @doc Same as `cancel_timer(Ref, [])'.
-spec cancel_timer(reference()) -> non_neg_integer() | false.

cancel_timer(Ref) ->
    erlang:cancel_timer(Ref).


%% @doc As `erlang:cancel_timer/2', for timers of {@link send_after/4} too.
-spec cancel_timer(reference(), list()) -> non_neg_integer() | false | ok.

cancel_timer(Ref, Opts) ->
    partisan_proc:cancel_timer(Ref, Opts).



%% =============================================================================
%% MESSAGE PASSING
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Broadcasts `Broadcast' to every node over Plumtree, through the
%% handler `Mod' (one of the `broadcast_mods' option; see
%% {@link partisan_plumtree_broadcast_handler}). Fails with `badarg' when `Mod'
%% is not a handler.
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast(any(), module()) -> ok.

broadcast(Broadcast, Mod) ->
    partisan_plumtree_broadcast:broadcast(Broadcast, Mod).


%% -----------------------------------------------------------------------------
%% @doc Same as `forward_message(ServerRef, Msg, #{})'.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(server_ref(), message()) -> forward_result().

forward_message(ServerRef, Msg) ->
    forward_message(ServerRef, Msg, #{}).


%% -----------------------------------------------------------------------------
%% @doc Sends `Msg' to `ServerRef': a local pid or registered name, `{Name,
%% Node}', a pid or name remote reference, a pid of another node (when
%% Distributed Erlang is on), `{global, Name}' or `{via, Module, Name}'.
%%
%% Options (a map or a property list): `channel' (default: the default
%% channel), `partition_key' (picks the connection; default: round robin),
%% `channel_fallback' (default: the option of that name), `ack' (`true': the
%% message is kept and sent again every `retransmit_interval' until the
%% destination node acknowledges it, and delivered there once; see
%% {@link partisan_acknowledgement}), `nosuspend' (see below).
%%
%% Back-pressure: when the connection's queue holds more than
%% `send_queue_limit' bytes, the caller is suspended (it waits in a receive)
%% until the queue drains to half of that, like a sender to a busy
%% Distributed Erlang port; with `nosuspend' the message is refused with
%% `{error, busy}' instead.
%%
%% Returns `ok' or, for a remote destination the transport could not take,
%% `{error, not_yet_connected | message_too_large | busy | partitioned |
%% {unknown_channel, C}}' (`partitioned': see
%% `partisan_peer_service:inject_partition/2').
%% If the channel has no connection yet and `channel_fallback' holds, the
%% message goes over the default channel instead. Fails with `badarg' on an
%% invalid destination or options, and, like `erlang:send/2', when sending to
%% a local name that is not registered.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(server_ref(), message(), forward_opts()) ->
    forward_result() | no_return().

forward_message(Pid, Msg, Opts) when erlang:is_pid(Pid), ?IS_OPTS(Opts) ->
    case erlang:node(Pid) of
        Node when Node =:= erlang:node() ->
            erlang:send(Pid, Msg),
            ok;
        Node ->
            case partisan_send:remote_unless_local(Node, Pid, Msg, Opts) of
                local ->
                    %% A pid of an earlier life of this node (pids of this life
                    %% arrive as local ones): its process is gone, so the
                    %% message is dropped, as Distributed Erlang drops it.
                    ok;
                Result ->
                    Result
            end
    end;

forward_message(Name, Msg, Opts) when is_atom(Name), ?IS_OPTS(Opts) ->
    erlang:send(Name, Msg),
    ok;

forward_message({global, Name}, Msg, Opts) when ?IS_OPTS(Opts) ->
    partisan_send:via(global, Name, Msg);

forward_message({via, Module, Name}, Msg, Opts)
when is_atom(Module), ?IS_OPTS(Opts) ->
    partisan_send:via(Module, Name, Msg);

forward_message({Name, Node}, Msg, Opts) when is_atom(Name), is_atom(Node) ->
    forward_message(Node, Name, Msg, Opts);

forward_message(RemoteRef, Msg, Opts) when ?IS_OPTS(Opts) ->
    Node =
        try
            partisan_remote_ref:node(RemoteRef)
        catch
            error:badarg ->
                erlang:error(badarg, [RemoteRef, Msg, Opts])
        end,
    forward_message(Node, RemoteRef, Msg, Opts);

forward_message(ServerRef, Msg, Opts) ->
    erlang:error(badarg, [ServerRef, Msg, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Sends `Msg' to `ServerRef' on node `Node'. `ServerRef' is a name, a
%% pid, a remote reference, `{Name, Node}', or a target as returned by
%% {@link partisan_remote_ref:target/1}. On the local node, delivery to a name
%% that is not registered is silently dropped (as on a remote node). See
%% {@link forward_message/3} for the options and the result.
%% @end
%% -----------------------------------------------------------------------------
-spec forward_message(node(), server_ref(), message(), forward_opts()) ->
    forward_result() | no_return().

forward_message(Node, ServerRef, Msg, Opts) when is_atom(Node), ?IS_OPTS(Opts) ->
    case partisan_send:remote_unless_local(Node, ServerRef, Msg, Opts) of
        local -> partisan_send:locally(ServerRef, Msg);
        Result -> Result
    end;

forward_message(Node, ServerRef, Msg, Opts) ->
    erlang:error(badarg, [Node, ServerRef, Msg, Opts]).


%% -----------------------------------------------------------------------------
%% @doc Sends `{'$gen_cast', Msg}' to `ServerRef' (what `gen_server:cast/2'
%% sends). Always returns `ok', as a cast does not report delivery.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(server_ref(), message()) -> ok.

cast_message(ServerRef, Msg) ->
    cast_message(ServerRef, Msg, #{}).


%% -----------------------------------------------------------------------------
%% @doc Like {@link cast_message/2} with forwarding options.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(server_ref(), message(), forward_opts()) -> ok.

cast_message(ServerRef, Msg, Opts) ->
    _ = forward_message(ServerRef, {'$gen_cast', Msg}, Opts),
    ok.


%% -----------------------------------------------------------------------------
%% @doc Like {@link cast_message/3} to `ServerRef' on node `Node'.
%% @end
%% -----------------------------------------------------------------------------
-spec cast_message(node(), server_ref(), message(), forward_opts()) -> ok.

cast_message(Node, ServerRef, Msg, Opts) ->
    _ = forward_message(Node, ServerRef, {'$gen_cast', Msg}, Opts),
    ok.


%% -----------------------------------------------------------------------------
%% @doc Sends `Msg' to `Dest' and returns `Msg', like `erlang:send/2'
%% (delivery is not reported).
%% @end
%% -----------------------------------------------------------------------------
-spec send(send_dst(), message()) -> message().

send(Dest, Msg) ->
    _ = send(Dest, Msg, []),
    Msg.


%% -----------------------------------------------------------------------------
%% @doc Sends `Msg' to `Dest'. With `connect_disterl' set to `true', a pid,
%% name or `{Name, Node}' goes through `erlang:send/3' (which takes the
%% `nosuspend' and `noconnect' options); everything else goes through
%% {@link forward_message/3}.
%% @end
%% -----------------------------------------------------------------------------
-spec send(send_dst(), message(), forward_opts() | [nosuspend | noconnect]) ->
    ok | nosuspend | noconnect | {error, term()}.

send(Dest, Msg, Opts) ->
    UseDisterl =
        partisan_config:get(connect_disterl, false)
            andalso is_erlang_destination(Dest),
    case UseDisterl of
        true -> erlang:send(Dest, Msg, erlang_send_opts(Opts));
        false -> erlang_send_result(forward_message(Dest, Msg, Opts))
    end.


%% erlang:send/3's answers for what the transport reports.
erlang_send_result({error, busy}) -> nosuspend;
erlang_send_result({error, not_yet_connected}) -> noconnect;
erlang_send_result(Result) -> Result.



%% =============================================================================
%% PRIVATE: monitors
%% =============================================================================



%% Where a monitor goes: to erlang:monitor/3 on this node, or to the
%% partisan_monitor server of the target's node.
monitor_target(Pid) when erlang:is_pid(Pid) ->
    Node = erlang:node(Pid),
    %% A pid of an earlier life of this node (named by its partisan name) goes
    %% to erlang:monitor/2 too, which gives noproc at once, as for any dead
    %% process.
    case Node =:= erlang:node() orelse Node =:= node() of
        true -> {local, Pid};
        false -> {remote, Node, Pid}
    end;

monitor_target(Name) when is_atom(Name) ->
    {local, Name};

monitor_target({Name, Node} = Target) when is_atom(Name), is_atom(Node) ->
    case Node =:= node() of
        true -> {local, Name};
        false -> {remote, Node, Target}
    end;

monitor_target(RemoteRef) ->
    Node =
        try partisan_remote_ref:node(RemoteRef)
        catch error:badarg -> erlang:error(badarg, [RemoteRef])
        end,
    case Node =:= node() of
        true -> {local, partisan_remote_ref:to_pid_or_name(RemoteRef)};
        false -> {remote, Node, RemoteRef}
    end.


erlang_monitor_opts(Opts) ->
    [Opt || Opt <- Opts, not is_tuple(Opt) orelse
                         (element(1, Opt) =/= channel andalso
                          element(1, Opt) =/= channel_fallback)].


forward_opts(Opts) ->
    maps:from_list(
        [{K, V} || {K, V} <- Opts, K == channel orelse K == channel_fallback]
    ).


%% True if a DOWN for Ref was in the mailbox (and is now gone).
flush_down(Ref) ->
    receive
        {'DOWN', Ref, _, _, _} -> true
    after 0 ->
        false
    end.


is_monitor_nodes_opt(nodedown_reason) -> true;
is_monitor_nodes_opt({node_type, T}) -> lists:member(T, [visible, hidden, all]);
is_monitor_nodes_opt(_) -> false.



%% =============================================================================
%% PRIVATE: send/2,3
%% =============================================================================



is_erlang_destination(Dest) when erlang:is_pid(Dest); is_atom(Dest) ->
    true;

is_erlang_destination({Name, Node}) ->
    is_atom(Name) andalso is_atom(Node);

is_erlang_destination(_) ->
    false.


erlang_send_opts(Opts) when is_list(Opts) ->
    [Opt || Opt <- Opts, Opt == nosuspend orelse Opt == noconnect];

erlang_send_opts(_) ->
    [].



%% =============================================================================
%% PRIVATE: nodes
%% =============================================================================



partisan_nodes(this) ->
    [node()];

partisan_nodes(known) ->
    {ok, Members} = partisan_peer_service:members(),
    Members;

partisan_nodes(Type) when Type == visible; Type == connected ->
    partisan_nif:nodes(partisan_nif:engine());

partisan_nodes(hidden) ->
    [];

partisan_nodes(Types) when is_list(Types) ->
    unique(lists:append([partisan_nodes(Type) || Type <- Types]));

partisan_nodes(Arg) ->
    erlang:error(badarg, [Arg]).


%% Removes duplicates, keeping the first occurrence of each node.
unique(Nodes) ->
    {Unique, _} = lists:foldl(
        fun(Node, {Acc, Seen}) ->
            case Seen of
                #{Node := _} -> {Acc, Seen};
                _ -> {[Node | Acc], Seen#{Node => true}}
            end
        end,
        {[], #{}},
        Nodes
    ),
    lists:reverse(Unique).


spec_channel_opts(_, Opts) ->
    maps:with([parallelism, monotonic, compression], Opts).


remote_node_spec(Node, Timeout) ->
    case member_spec(Node) of
        {ok, _} = Found ->
            Found;
        error ->
            case lists:member(Node, erlang:nodes(connected)) of
                true -> node_spec_by_rpc(Node, Timeout);
                false -> {error, not_yet_connected}
            end
    end.


member_spec(Node) ->
    try partisan_nif:members(partisan_nif:engine()) of
        Specs ->
            case [Spec || #{name := Name} = Spec <- Specs, Name =:= Node] of
                [Spec | _] -> {ok, Spec};
                [] -> error
            end
    catch
        error:partisan_not_started -> error
    end.


node_spec_by_rpc(Node, Timeout) ->
    try erpc:call(Node, ?MODULE, node_spec, [], Timeout) of
        #{name := Node} = Spec -> {ok, Spec};
        Other -> {error, {unexpected_node_spec, Other}}
    catch
        error:{erpc, Reason} -> {error, Reason};
        Class:Reason -> {error, {Class, Reason}}
    end.


existing_atom(Text) ->
    try
        case is_binary(Text) of
            true -> {ok, binary_to_existing_atom(Text, utf8)};
            false -> {ok, list_to_existing_atom(lists:flatten(Text))}
        end
    catch
        error:badarg -> error
    end.
