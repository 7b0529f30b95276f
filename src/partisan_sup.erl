%% -----------------------------------------------------------------------------
%% @doc The top supervisor: runs the configured peer service manager, which
%% owns the native engine.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_sup).

-behaviour(supervisor).

-include("partisan.hrl").

-export([start_link/0]).
-export([init/1]).



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Starts the supervisor, registered as `partisan_sup'.
%% @end
%% -----------------------------------------------------------------------------
-spec start_link() -> supervisor:startlink_ret().

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).



%% =============================================================================
%% SUPERVISOR CALLBACKS
%% =============================================================================



%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.

init([]) ->
    Manager = ?PEER_SERVICE_MANAGER,
    Flags = #{strategy => one_for_one, intensity => 10, period => 10},
    ManagerSpec = #{
        id => Manager,
        start => {Manager, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [Manager]
    },
    %% The monitor server first: the manager reports node events to it.
    MonitorSpec = #{
        id => partisan_monitor,
        start => {partisan_monitor, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [partisan_monitor]
    },
    %% Before the manager, which reports membership changes to it.
    EventsSpec = #{
        id => partisan_peer_service_events,
        start => {partisan_peer_service_events, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => dynamic
    },
    %% The relay of partisan_gen_server calls last: it monitors nodes.
    RelaySpec = #{
        id => partisan_gen_relay,
        start => {partisan_gen_relay, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [partisan_gen_relay]
    },
    %% Acknowledged sends: their tables must exist before anything sends, and
    %% outlive a crash of the server.
    AckTablesSpec = #{
        id => partisan_acknowledgement_tables,
        start => {partisan_acknowledgement_tables, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [partisan_acknowledgement_tables]
    },
    AckSpec = #{
        id => partisan_acknowledgement,
        start => {partisan_acknowledgement, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [partisan_acknowledgement]
    },
    %% Plumtree's handler side: payloads reach it through the manager.
    BroadcastSpec = #{
        id => partisan_plumtree_broadcast,
        start => {partisan_plumtree_broadcast, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [partisan_plumtree_broadcast]
    },
    Children = [AckTablesSpec, AckSpec, MonitorSpec, EventsSpec, ManagerSpec,
                RelaySpec, BroadcastSpec],
    {ok, {Flags, Children}}.
