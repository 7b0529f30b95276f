%% -----------------------------------------------------------------------------
%% @doc The static peer service manager: the members are exactly the nodes
%% this node joined and the nodes that joined it, with no gossip, so nobody
%% learns of (or connects to) a node it was not told about. `leave/1' drops a
%% node. It is the full-mesh manager ({@link partisan_pluggable_peer_service_manager})
%% with the engine's static membership; every call goes to it. Unlike
%% Partisan 5.0.3 (issue #267), it starts.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_static_peer_service_manager).

-behaviour(partisan_peer_service_manager).

-define(M, partisan_pluggable_peer_service_manager).

-include("partisan_manager_delegate.hrl").
