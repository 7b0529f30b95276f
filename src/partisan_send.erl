%% -----------------------------------------------------------------------------
%% @doc The send path behind `partisan:forward_message/2,3,4': where a
%% message goes (this node, or a remote one through the engine), the
%% forwarding options, channel fallback and the wait of a suspended sender.
%% No process sits in this path: the caller's own process encodes the message
%% and hands it to the engine.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_send).

-include("partisan.hrl").

-export([deliver/2]).
-export([locally/2]).
-export([opts/1]).
-export([remote/4]).
-export([pass_on/4]).
-export([call/6]).
-export([target/1]).
-export([via/3]).
-export([remote_unless_local/4]).
-export([refresh_context/0]).

%% What every remote send reads, in one persistent_term lookup:
%% {Engine, NodeName, ForwardDefaults, EncodeOptsByChannel}. Rebuilt whenever
%% one of them changes (see refresh_context/0); absent while no engine runs.
%% (An atom key: persistent_term hashes it faster than a tuple.)
-define(CONTEXT, partisan_send_context).



%% @doc The transport's destination on the remote node for `ServerRef'.
-spec target(partisan:server_ref()) -> atom() | pid() | binary() | term().

target(Name) when is_atom(Name) ->
    Name;

target(Pid) when erlang:is_pid(Pid) ->
    Pid;

target({Name, Node}) when is_atom(Name), is_atom(Node) ->
    Name;

target({encoded_pid, Text} = Target) when is_list(Text) ->
    try list_to_binary(Text)
    catch error:badarg -> erlang:error(badarg, [Target])
    end;

target({encoded_name, Text} = Target) when is_list(Text) ->
    %% A name the caller chose: local input, so the atom may be created.
    try list_to_atom(Text)
    catch error:badarg -> erlang:error(badarg, [Target])
    end;

target(RemoteRef) ->
    partisan_remote_ref:delivery_target(RemoteRef).


%% @doc Encodes `Msg' for the channel and hands it to the transport, falling
%% back to the default channel when the requested one has no connection yet.
-spec remote(node(), term(), partisan:message(), map()) ->
    partisan:forward_result() | no_return().

remote(Node, Target, Msg, Opts) ->
    send(context(), Node, Target, Msg, Opts, undefined).


%% -----------------------------------------------------------------------------
%% @doc What `partisan:forward_message/4' does for a node other than this one:
%% {@link remote/4} with the destination made a {@link target/1} and the
%% options {@link opts/1}; `local' when `Node' is this node's name, which the
%% caller then handles. The node's name and the send's settings are read in
%% one lookup.
%% @end
%% -----------------------------------------------------------------------------
-spec remote_unless_local(node(), partisan:server_ref(), partisan:message(),
                          partisan:forward_opts()) ->
    local | partisan:forward_result() | no_return().

remote_unless_local(Node, ServerRef, Msg, Opts) ->
    case persistent_term:get(?CONTEXT, undefined) of
        {_, Node, _, _} ->
            local;
        undefined ->
            case Node =:= partisan_config:get(name) of
                true -> local;
                false -> remote(Node, target(ServerRef), Msg, opts(Opts))
            end;
        Context ->
            send(Context, Node, target(ServerRef), Msg, opts(Opts), undefined)
    end.


%% -----------------------------------------------------------------------------
%% @doc Sends the request `Msg' of call `Id' (a number unique on this node) as
%% {@link remote/4} does, and registers the call as waiting for its answer:
%% the remote end answers to `{call, Id}' with `{Tag, Result}', which the
%% engine delivers to this process only while the call waits (see
%% `partisan_nif:send_call/9'). A send that fails leaves no call waiting.
%% @end
%% -----------------------------------------------------------------------------
-spec call(node(), term(), partisan:message(), map(), pos_integer(), reference()) ->
    partisan:forward_result() | no_return().

call(Node, Target, Msg, Opts, Id, Tag) ->
    send(context(), Node, Target, Msg, Opts, {Id, Tag}).


send({_, _, Defaults, _} = Context, Node, Target, Msg, Opts0, Call) ->
    case with_forward_defaults(Defaults, Opts0) of
        #{ack := true} = Opts when Call =:= undefined ->
            partisan_acknowledgement:send(Node, Target, Msg, Opts);
        Opts ->
            send_now(Context, Node, Target, Msg, Opts, Opts0, Call)
    end.


send_now({Engine, _, _, Encode}, Node, Target, Msg, Opts, Opts0, Call) ->
    Channel = maps:get(channel, Opts, ?DEFAULT_CHANNEL),
    Key = maps:get(partition_key, Opts, ?DEFAULT_PARTITION_KEY),
    is_atom(Channel) andalso is_partition_key(Key)
        orelse erlang:error(badarg, [Node, Target, Msg, Opts0]),
    Engine =/= undefined orelse erlang:error(partisan_not_started),
    Payload = case maps:get(Channel, Encode, []) of
        %% The engine encodes small plain terms itself (partisan_nif:send/7).
        [] -> {term, Msg};
        EncodeOpts -> partisan_payload:encode(Msg, EncodeOpts)
    end,
    Mode = send_mode(Opts),
    Result = case transmit(Engine, Node, Channel, Key, Target, Payload, Mode, Call) of
        {error, not_yet_connected} = Error when Channel =/= ?DEFAULT_CHANNEL ->
            case channel_fallback(Opts) of
                true ->
                    transmit(
                        Engine, Node, ?DEFAULT_CHANNEL, Key, Target, Payload,
                        Mode, Call
                    );
                false ->
                    Error
            end;
        Other ->
            Other
    end,
    case {Result, Opts} of
        {{error, not_yet_connected}, #{transitive := true}} when Call =:= undefined ->
            relay(Engine, Node, Target, Msg, Opts);
        _ ->
            Result
    end.


%% The `transitive' option: a node we have no connection to (HyParView keeps
%% only a few neighbours) is reached by flooding. The message goes to every
%% neighbour but the hop it came from, each of whose relays
%% (partisan_gen_relay) delivers it, sends it straight to its destination, or
%% floods it on, at most `relay_ttl' hops from its origin. The message's id
%% (`relay_id') is remembered by every node it passes
%% (partisan_gen_relay:first_sight/1), so each node handles it once and the
%% destination delivers it once; a random walk (Partisan 5's relay, and ours
%% before) could miss a target that flooding within the hops always reaches.
%% `{error, no_route}' when no neighbour is left or the hops are spent.
relay(Engine, Node, Target, Msg, Opts) ->
    TTL = maps:get(relay_ttl, Opts, partisan_config:get(relay_ttl)),
    From = maps:get(relay_from, Opts, undefined),
    Id = case Opts of
        #{relay_id := Seen} ->
            Seen;
        #{} ->
            New = make_ref(),
            %% Ours: the flood must not come back through us.
            _ = partisan_gen_relay:first_sight(New),
            New
    end,
    Via = [N || N <- partisan_nif:nodes(Engine), N =/= Node, N =/= From],
    case Via of
        _ when TTL =< 0 ->
            {error, no_route};
        [] ->
            {error, no_route};
        _ ->
            Relayed = relayed(Node, Target, Msg, Opts#{relay_ttl => TTL - 1, relay_id => Id}),
            Direct = maps:remove(transitive, Opts),
            Sent = [remote(Next, partisan_gen_relay, Relayed, Direct) || Next <- Via],
            case lists:member(ok, Sent) of
                true -> ok;
                false -> {error, no_route}
            end
    end.


%% -----------------------------------------------------------------------------
%% @doc Passes on a message relayed to this node for `Node' (see
%% `partisan_gen_relay'): to the relay of `Node' when it is a neighbour (the
%% relay there delivers each message once, however many neighbours pass it
%% on), by flooding on otherwise.
%% @end
%% -----------------------------------------------------------------------------
-spec pass_on(node(), term(), partisan:message(), map()) ->
    partisan:forward_result() | no_return().

pass_on(Node, Target, Msg, Opts) ->
    Direct = maps:remove(transitive, Opts),
    case remote(Node, partisan_gen_relay, relayed(Node, Target, Msg, Opts), Direct) of
        {error, not_yet_connected} ->
            {Engine, _, _, _} = context(),
            relay(Engine, Node, Target, Msg, Opts);
        Other ->
            Other
    end.


relayed(Node, Target, Msg, Opts) ->
    {'$partisan_relay', Node, Target, Msg, Opts#{relay_from => partisan:node()}}.


%% @doc Delivers a relayed message on its destination node: `Target' is what
%% {@link target/1} made of the caller's destination.
-spec deliver(term(), partisan:message()) -> ok.

deliver(Target, Msg) when is_atom(Target); erlang:is_pid(Target) ->
    locally(Target, Msg);

deliver(Text, Msg) when is_binary(Text) ->
    locally({encoded_pid, binary_to_list(Text)}, Msg);

deliver(Target, Msg) ->
    locally(Target, Msg).


%% Hands the payload to the engine. When the connection's queue is over its
%% limit the engine has queued the message and asks us to wait (as a sender to
%% a busy Distributed Erlang port is suspended): the wait is a receive, so the
%% process neither spins nor holds a scheduler, and the engine always answers.
%% A message the engine does not encode itself (see partisan_nif:send/7) is
%% encoded here and sent again.
transmit(Engine, Node, Channel, Key, Target, Payload, Mode, Call) ->
    case enqueue(Engine, Node, Channel, Key, Target, Payload, Mode, Call) of
        {suspend, Token} ->
            receive
                {'$partisan_resume', Token} -> ok
            end;
        encode ->
            {term, Msg} = Payload,
            Encoded = partisan_payload:encode(Msg, []),
            transmit(Engine, Node, Channel, Key, Target, Encoded, Mode, Call);
        Result ->
            Result
    end.


enqueue(Engine, Node, Channel, Key, Target, Payload, Mode, undefined) ->
    partisan_nif:send(Engine, Node, Channel, Key, Target, Payload, Mode);

enqueue(Engine, Node, Channel, Key, Target, Payload, Mode, {Id, Tag}) ->
    partisan_nif:send_call(Engine, Node, Channel, Key, Target, Payload, Mode, Id, Tag).


%% `nosuspend' (as in erlang:send/3): refuse with {error, busy} rather than
%% wait when the connection is over its limit.
send_mode(#{nosuspend := true}) -> nosuspend;
send_mode(_) -> suspend.


%% The `forward_options' option holds defaults for every send.
with_forward_defaults(Defaults, Opts) when map_size(Defaults) =:= 0 -> Opts;
with_forward_defaults(Defaults, Opts) -> maps:merge(Defaults, Opts).


context() ->
    case persistent_term:get(?CONTEXT, undefined) of
        undefined -> build_context();
        Context -> Context
    end.


%% The engine is `undefined' while none runs: a send then still checks its
%% options first (`badarg'), and fails with `partisan_not_started' after.
%% Fails with `badarg' when the node has no name yet.
build_context() ->
    Engine =
        try partisan_nif:engine()
        catch error:partisan_not_started -> undefined
        end,
    {Engine, partisan_config:get(name),
     partisan_config:get(forward_options, #{}), partisan_config:channel_encode_opts()}.


%% -----------------------------------------------------------------------------
%% @doc Rebuilds the send path's settings after the engine, the node name, the
%% `forward_options' or the channels changed. Cheap when nothing did.
%% @end
%% -----------------------------------------------------------------------------
-spec refresh_context() -> ok.

refresh_context() ->
    try build_context() of
        {Engine, _, _, _} = Context when Engine =/= undefined ->
            persistent_term:put(?CONTEXT, Context);
        _ ->
            forget_context()
    catch
        error:_ ->
            forget_context()
    end.


forget_context() ->
    _ = persistent_term:erase(?CONTEXT),
    ok.


channel_fallback(#{channel_fallback := Flag}) when is_boolean(Flag) ->
    Flag;

channel_fallback(_) ->
    partisan_config:get(channel_fallback, true).


is_partition_key(undefined) -> true;
is_partition_key(Key) -> is_integer(Key) andalso Key >= 0.


%% @doc Forwarding options as a map: a map, or a property list whose bare
%% flags (`nosuspend', `noconnect') mean `true'. Fails with `badarg' otherwise.
-spec opts(partisan:forward_opts()) -> map() | no_return().

opts(Opts) when is_map(Opts) ->
    Opts;

opts([]) ->
    #{};

opts(Opts) when is_list(Opts) ->
    maps:from_list([opt_pair(Opt, Opts) || Opt <- Opts]);

opts(Opts) ->
    erlang:error(badarg, [Opts]).


%% `{Key, Value}', or a bare flag such as `nosuspend' (as in erlang:send/3).
opt_pair({Key, _} = Pair, _) when is_atom(Key) -> Pair;
opt_pair(Flag, _) when Flag == nosuspend; Flag == noconnect -> {Flag, true};
opt_pair(_, Opts) -> erlang:error(badarg, [Opts]).


%% @doc Delivery on this node. Like a remote node, an unregistered name drops
%% the message.
-spec locally(partisan:server_ref(), partisan:message()) -> ok | no_return().

locally(Pid, Msg) when erlang:is_pid(Pid) ->
    erlang:send(Pid, Msg),
    ok;

locally(Name, Msg) when is_atom(Name) ->
    send_to_local_name(Name, Msg);

locally({global, Name}, Msg) ->
    via(global, Name, Msg);

locally({via, Module, Name}, Msg) when is_atom(Module) ->
    via(Module, Name, Msg);

locally({Name, Node}, Msg) when is_atom(Name), is_atom(Node) ->
    send_to_local_name(Name, Msg);

locally({encoded_pid, Text} = Target, Msg) when is_list(Text) ->
    try list_to_pid(Text) of
        Pid -> locally(Pid, Msg)
    catch
        error:badarg -> erlang:error(badarg, [Target, Msg])
    end;

locally({encoded_name, Text}, Msg) when is_list(Text) ->
    try list_to_existing_atom(Text) of
        Name -> send_to_local_name(Name, Msg)
    catch
        %% No such atom, so no such registered process.
        error:badarg -> ok
    end;

locally(RemoteRef, Msg) ->
    try partisan_remote_ref:to_pid_or_name(RemoteRef) of
        Dest -> locally(Dest, Msg)
    catch
        error:badarg ->
            %% A name whose atom does not exist here has no process; anything
            %% else is not something we can deliver to.
            partisan_remote_ref:is_name(RemoteRef)
                orelse erlang:error(badarg, [RemoteRef, Msg]),
            ok
    end.


%% Sending to {Name, node()} never fails, even if Name is not registered.
send_to_local_name(Name, Msg) ->
    erlang:send({Name, erlang:node()}, Msg),
    ok.


%% @doc Sends through a registry module (`global', or the module of a
%% `{via, Module, Name}'); an unknown name drops the message.
-spec via(module(), term(), partisan:message()) -> ok.

via(Module, Name, Msg) ->
    case Module:whereis_name(Name) of
        Pid when erlang:is_pid(Pid) ->
            erlang:send(Pid, Msg),
            ok;
        _ ->
            ok
    end.
