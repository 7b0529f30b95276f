%% -----------------------------------------------------------------------------
%% @doc The client-server peer service manager: a star. Each node has a `tag'
%% (`client' or `server', the option of that name); clients connect only to
%% servers, servers to clients and servers, and untagged nodes only to each
%% other (Partisan 5's accept matrix; it crashes on the combinations it lacks,
%% here they are refused and logged). Members are the nodes joined and the
%% nodes that joined, with no gossip, as with
%% {@link partisan_static_peer_service_manager}: a client that joins a server
%% sees that server only. A join the tags forbid is refused by both sides and
%% is not retried. Like the static manager, this is the full-mesh manager
%% ({@link partisan_pluggable_peer_service_manager}) with another membership
%% rule in the engine; every call goes to it.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_client_server_peer_service_manager).

-behaviour(partisan_peer_service_manager).

-define(M, partisan_pluggable_peer_service_manager).

-include("partisan_manager_delegate.hrl").
