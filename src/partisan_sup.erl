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
    Flags = #{strategy => one_for_one, intensity => 10, period => 10},
    %% In start order. The acknowledgement tables first: they must exist
    %% before anything sends, and outlive a crash of their server. The monitor
    %% server and the events server before the manager, which reports node
    %% events and membership changes to them. The relay of partisan_gen_server
    %% calls after it: it monitors nodes. Last, Plumtree's handler side, whose
    %% payloads reach it through the manager.
    Children = [
        worker(partisan_acknowledgement_tables),
        worker(partisan_acknowledgement),
        worker(partisan_monitor),
        (worker(partisan_peer_service_events))#{modules => dynamic},
        worker(?PEER_SERVICE_MANAGER),
        worker(partisan_gen_relay),
        worker(partisan_plumtree_broadcast)
    ],
    {ok, {Flags, Children}}.



%% =============================================================================
%% PRIVATE
%% =============================================================================



worker(Module) ->
    #{
        id => Module,
        start => {Module, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [Module]
    }.
