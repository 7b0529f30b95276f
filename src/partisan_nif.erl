%% -----------------------------------------------------------------------------
%% @doc The boundary with the native transport (`priv/libpartisan_nif.so').
%%
%% This is the only module that calls the native library; see
%% `docs/nif_api.md' for the contract. The library is loaded explicitly by
%% {@link load/0} (from `partisan_app') rather than with `-on_load', so that a
%% missing or broken library is reported as an application start error.
%%
%% Every native function is declared with a stub that raises
%% `{not_loaded, partisan_nif}' until the library replaces it.
%%
%% The running engine is kept in `persistent_term' under `{partisan, engine}';
%% {@link engine/0} reads it.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_nif).

-define(LIBRARY, "libpartisan_nif").
-define(ENGINE_KEY, {partisan, engine}).

-type engine() :: reference().
-type channel() :: atom().
-type node_spec() :: map().
-type target() :: atom() | pid() | binary() | {call, pos_integer()}.
-type partition_key() :: undefined | non_neg_integer().
-type send_error() :: not_yet_connected
                    | message_too_large
                    | busy
                    | partitioned
                    | {unknown_channel, channel()}.
-type send_mode() :: suspend | nosuspend.

-export_type([engine/0]).
-export_type([send_error/0]).
-export_type([send_mode/0]).
-export_type([target/0]).

%% Erlang-side helpers
-export([load/0]).
-export([engine/0]).
-export([put_engine/1]).
-export([erase_engine/0]).

%% Native functions
-export([start/1]).
-export([stop/1]).
-export([listen_addrs/1]).
-export([join/2]).
-export([leave/2]).
-export([update_members/2]).
-export([members/1]).
-export([nodes/1]).
-export([overlay_views/1]).
-export([overlay_reserve/2]).
-export([overlay_reserved/2]).
-export([broadcast/4]).
-export([broadcast_peers/3]).
-export([is_connected/3]).
-export([is_fully_connected/2]).
-export([up_generation/2]).
-export([connections/1]).
-export([send/7]).
-export([send_call/9]).
-export([call_cancel/2]).
-export([serve_watch/2]).
-export([serve_begin/4]).
-export([serve_end/2]).
-export([serve_unwatch/2]).
-export([serve_forget/2]).
-export([serve_reset/1]).
-export([kill_connections/2]).
-export([set_partitioned/2]).
-export([stats/1]).
-export([peer_stats/1]).

-nifs([
    start/1,
    stop/1,
    listen_addrs/1,
    join/2,
    leave/2,
    update_members/2,
    members/1,
    nodes/1,
    overlay_views/1,
    overlay_reserve/2,
    overlay_reserved/2,
    broadcast/4,
    broadcast_peers/3,
    is_connected/3,
    is_fully_connected/2,
    up_generation/2,
    connections/1,
    send/7,
    send_call/9,
    call_cancel/2,
    serve_watch/2,
    serve_begin/4,
    serve_end/2,
    serve_unwatch/2,
    serve_forget/2,
    serve_reset/1,
    kill_connections/2,
    set_partitioned/2,
    stats/1,
    peer_stats/1
]).

-define(NOT_LOADED, erlang:nif_error({not_loaded, ?MODULE})).



%% =============================================================================
%% ERLANG-SIDE HELPERS
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Loads the native library from the application's `priv' directory.
%% Idempotent: a library that is already loaded counts as success.
%% @end
%% -----------------------------------------------------------------------------
-spec load() -> ok | {error, Reason :: term()}.

load() ->
    case erlang:load_nif(library_path(), 0) of
        ok ->
            ok;
        {error, {reload, _}} ->
            ok;
        {error, _} = Error ->
            Error
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns the running engine.
%% Fails with `partisan_not_started' when the application is not running.
%% @end
%% -----------------------------------------------------------------------------
-spec engine() -> engine() | no_return().

engine() ->
    case persistent_term:get(?ENGINE_KEY, undefined) of
        undefined ->
            erlang:error(partisan_not_started);
        Engine ->
            Engine
    end.


%% -----------------------------------------------------------------------------
%% @doc Publishes `Engine' as the running engine (called by the peer service
%% manager that started it).
%% @end
%% -----------------------------------------------------------------------------
-spec put_engine(engine()) -> ok.

put_engine(Engine) ->
    persistent_term:put(?ENGINE_KEY, Engine),
    partisan_send:refresh_context().


%% -----------------------------------------------------------------------------
%% @doc Forgets the running engine, so that later calls fail with
%% `partisan_not_started' instead of reaching a stopped engine.
%% @end
%% -----------------------------------------------------------------------------
-spec erase_engine() -> ok.

erase_engine() ->
    _ = persistent_term:erase(?ENGINE_KEY),
    partisan_send:refresh_context().



%% =============================================================================
%% NATIVE FUNCTIONS
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Starts an engine with `Config'; its listeners are bound on return.
%% @end
%% -----------------------------------------------------------------------------
-spec start(Config :: map()) -> {ok, engine()} | {error, Reason :: term()}.

start(_Config) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Stops an engine: closes its sockets and joins its threads. Idempotent.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(engine()) -> ok.

stop(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns the addresses the engine's listeners are actually bound to.
%% @end
%% -----------------------------------------------------------------------------
-spec listen_addrs(engine()) ->
    [#{ip := inet:ip_address(), port := inet:port_number()}].

listen_addrs(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Adds `NodeSpec' to the membership and dials it.
%% @end
%% -----------------------------------------------------------------------------
-spec join(engine(), NodeSpec :: node_spec()) -> ok | {error, Reason :: term()}.

join(_Engine, _NodeSpec) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Removes `Node' from the cluster; the local node name means leaving it.
%% @end
%% -----------------------------------------------------------------------------
-spec leave(engine(), node()) -> ok.

leave(_Engine, _Node) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Joins the listed specs and removes the members that are not listed.
%% @end
%% -----------------------------------------------------------------------------
-spec update_members(engine(), [node_spec()]) -> ok.

update_members(_Engine, _NodeSpecs) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns the member specs, the local node included, sorted by name.
%% @end
%% -----------------------------------------------------------------------------
-spec members(engine()) -> [node_spec()].

members(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns the members with a live control connection (not the local
%% node).
%% @end
%% -----------------------------------------------------------------------------
-spec nodes(engine()) -> [node()].

nodes(_Engine) ->
    ?NOT_LOADED.



%% -----------------------------------------------------------------------------
%% @doc HyParView's active and passive views, as binaries (empty lists for the
%% other managers). Passive nodes are not members: their names stay binaries.
%% @end
%% -----------------------------------------------------------------------------
-spec overlay_views(engine()) -> {[binary()], [binary()]}.

overlay_views(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Reserves a slot of HyParView's active view for a neighbour tagged
%% `Tag'; `{error, no_available_slots}' when all are reserved, or for another
%% membership. `badarg' for a tag over 255 bytes.
%% @end
%% -----------------------------------------------------------------------------
-spec overlay_reserve(engine(), atom()) -> ok | {error, no_available_slots}.

overlay_reserve(_Engine, _Tag) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc The neighbour holding the slot reserved for `Tag': `{ok, Node}',
%% `{ok, undefined}' while it is open, `error' if there is none.
%% @end
%% -----------------------------------------------------------------------------
-spec overlay_reserved(engine(), atom()) -> {ok, node() | undefined} | error.

overlay_reserved(_Engine, _Tag) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Broadcasts `Data' under `Id' (both in external term format) through
%% the Plumtree handler named `Module'; `{error, unknown_module}' when it is
%% not one of the `broadcast_mods' the engine started with.
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast(engine(), binary(), binary(), binary()) ->
    ok | {error, unknown_module}.

broadcast(_Engine, _Module, _Id, _Data) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc The eager and the lazy peers of `Root''s broadcast tree for `Module',
%% as binaries.
%% @end
%% -----------------------------------------------------------------------------
-spec broadcast_peers(engine(), binary(), binary()) -> {[binary()], [binary()]}.

broadcast_peers(_Engine, _Module, _Root) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns whether there is at least one connection to `Node' on
%% `Channel' (`` '_' '' for any channel).
%% @end
%% -----------------------------------------------------------------------------
-spec is_connected(engine(), node(), channel() | '_') -> boolean().

is_connected(_Engine, _Node, _Channel) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns whether every channel x parallelism connection to `Node' is up.
%% @end
%% -----------------------------------------------------------------------------
-spec is_fully_connected(engine(), node()) -> boolean().

is_fully_connected(_Engine, _Node) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns the live connections.
%% @end
%% -----------------------------------------------------------------------------
-spec connections(engine()) ->
    [{node(), channel(), Index :: non_neg_integer()}].

connections(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Enqueues an encoded message for `Target' on `Node'. The payload is
%% the external format of the message, as one binary or as a list of at most
%% 256 binaries whose concatenation it is (see {@link partisan_payload}), or
%% `{term, Msg}': the message itself, which the NIF encodes when it is small
%% and plain (at most 16 KiB of external format, no funs, no integers beyond
%% 64 bits, no bit strings, improper lists or atoms outside Latin-1) and
%% otherwise answers `encode', nothing sent: the caller then encodes it and
%% sends again. `badarg' for any other payload. Runs on a normal scheduler in constant time for large
%% payloads and large parts (they are referenced, not copied). With `suspend',
%% a send that takes the
%% connection's queue over its limit (`send_queue_limit') is still queued but
%% returns `{suspend, Token}': the caller must then wait for
%% `{'$partisan_resume', Token}', which always arrives (when the queue drains
%% to half the limit, or the connection closes). With `nosuspend', such a send
%% is refused with `{error, busy}' and nothing is queued.
%% @end
%% -----------------------------------------------------------------------------
-spec send(
    engine(), node(), channel(), partition_key(), target(),
    partisan_payload:t() | {term, term()}, send_mode()) ->
    ok | encode | {suspend, non_neg_integer()} | {error, send_error()}.

send(_Engine, _Node, _Channel, _PartitionKey, _Target, _Payload, _Mode) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc {@link send/7} of a call's request that first registers call `Id' (a
%% number unique on this node) of the calling process as waiting for its
%% answer. The remote end sends the answer to the target `{call, Id}' as
%% `{Tag, Result}'; the engine delivers it to the caller only while the call
%% waits, and counts it in `call_answers_late' otherwise. When `Node' goes down
%% first, the caller gets `{Tag, {exit, {nodedown, Node}}}' (and `ok' here
%% even if the send then failed: that message is the answer). Any other send
%% that fails leaves no call waiting; `{error, too_many_calls}' when a million
%% calls wait.
%% @end
%% -----------------------------------------------------------------------------
-spec send_call(
    engine(), node(), channel(), partition_key(), target(),
    partisan_payload:t() | {term, term()}, send_mode(), pos_integer(), reference()) ->
    ok | encode | {suspend, non_neg_integer()} | {error, send_error() | too_many_calls}.

send_call(_Engine, _Node, _Channel, _PartitionKey, _Target, _Payload, _Mode, _Id, _Tag) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Ends call `Id' of {@link send_call/9} if it still waits: `true'. `false'
%% when its answer (or its `nodedown') has been taken for delivery: it is in
%% the caller's mailbox or about to be.
%% @end
%% -----------------------------------------------------------------------------
-spec call_cancel(engine(), pos_integer()) -> boolean().

call_cancel(_Engine, _Id) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Marks `Server' as monitored by the node's relay, which from now on
%% may be handed calls of other nodes directly by the engine (the relay is
%% their `From'). False when it was already.
%% @end
%% -----------------------------------------------------------------------------
-spec serve_watch(engine(), pid()) -> boolean().

serve_watch(_Engine, _Server) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Registers a call of `CallerNode' (answered by `Key') that the relay
%% hands to the watched `Server': the number its reply carries, or
%% `{error, too_many_calls}' when a million such calls are under way (or the
%% server is not watched).
%% @end
%% -----------------------------------------------------------------------------
-spec serve_begin(engine(), pid(), node(), term()) ->
    pos_integer() | {error, too_many_calls}.

serve_begin(_Engine, _Server, _CallerNode, _Key) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc The reply to served call `Id' came: true when the call still waited
%% for it (false: its server died or its caller's node went down first).
%% @end
%% -----------------------------------------------------------------------------
-spec serve_end(engine(), pos_integer()) -> boolean().

serve_end(_Engine, _Id) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc `Server' died: it is no longer watched, and the calls it had end,
%% returned as `{CallerNode, term_to_binary(Key)}' with the node's name as a
%% binary.
%% @end
%% -----------------------------------------------------------------------------
-spec serve_unwatch(engine(), pid()) -> [{binary(), binary()}].

serve_unwatch(_Engine, _Server) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc `Node' went down: the calls it made to servers here end unanswered;
%% how many.
%% @end
%% -----------------------------------------------------------------------------
-spec serve_forget(engine(), node()) -> non_neg_integer().

serve_forget(_Engine, _Node) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Forgets every watched server and served call (a relay starts); the
%% calls that were under way, as {@link serve_unwatch/2} returns them.
%% @end
%% -----------------------------------------------------------------------------
-spec serve_reset(engine()) -> [{binary(), binary()}].

serve_reset(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Closes every connection to `Nodes' (members reconnect).
%% @end
%% -----------------------------------------------------------------------------
-spec kill_connections(engine(), [node()]) -> ok.

kill_connections(_Engine, _Nodes) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc From now on, sends to `Nodes' (and no others) fail with `{error,
%% partitioned}': the fault injection behind
%% `partisan_peer_service:inject_partition/2'. Connections, the engine's own
%% traffic (membership, heartbeats) and what arrives are not touched.
%% @end
%% -----------------------------------------------------------------------------
-spec set_partitioned(engine(), [node()]) -> ok.

set_partitioned(_Engine, _Nodes) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc While `Node' is up, the number of times it came up: the current
%% connection life, which a later `node_down' ends; `false' when it is down.
%% @end
%% -----------------------------------------------------------------------------
-spec up_generation(engine(), node()) -> pos_integer() | false.

up_generation(_Engine, _Node) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns the engine's counters.
%% @end
%% -----------------------------------------------------------------------------
-spec stats(engine()) -> map().

stats(_Engine) ->
    ?NOT_LOADED.


%% -----------------------------------------------------------------------------
%% @doc Returns, for every peer whose messages created atoms on this node or
%% were refused because they would have created atoms past the budget
%% (`peer_atom_budget'), how many atoms it created and how many of its
%% messages and atoms were refused.
%% @end
%% -----------------------------------------------------------------------------
-spec peer_stats(engine()) ->
    #{node() => #{atoms_created := non_neg_integer(),
                  messages_refused := non_neg_integer(),
                  atoms_refused := non_neg_integer()}}.

peer_stats(_Engine) ->
    ?NOT_LOADED.



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% The library sits in the application's priv directory. When the application
%% is not known to the code server (e.g. modules loaded by path in a test),
%% priv is found next to the directory holding this module's beam file.
library_path() ->
    filename:join(priv_dir(), ?LIBRARY).


priv_dir() ->
    case code:priv_dir(partisan) of
        {error, bad_name} ->
            Ebin = filename:dirname(code:which(?MODULE)),
            filename:join(filename:dirname(Ebin), "priv");
        Dir ->
            Dir
    end.
