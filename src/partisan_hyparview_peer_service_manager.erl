%% -----------------------------------------------------------------------------
%% @doc The HyParView peer service manager: each node keeps a small active
%% view of neighbours (between `active_min_size' and `active_max_size', keys of
%% the `hyparview' option) and a larger passive view, found by random walks and
%% shuffles and repaired from the passive view when a neighbour fails
%% (docs/architecture.md). The protocol runs in the engine; this module is the
%% full-mesh manager ({@link partisan_pluggable_peer_service_manager}) with the
%% engine's HyParView membership, so:
%% <ul>
%% <li>`members/0' is the active view with this node, as in Partisan 5;</li>
%% <li>`on_up'/`on_down', `partisan:monitor_nodes/1' and node monitors follow
%% the active view (Partisan 5 offers none of them with HyParView);</li>
%% <li>`forward_message' reaches neighbours, and any node with the
%% `transitive' option, relayed by neighbours (at most `relay_ttl' hops);</li>
%% <li>`leave/0' tells the neighbours and leaves the overlay (a no-op in
%% Partisan 5); `leave/1' forgets a node.</li>
%% <li>slots of the active view can be kept for nodes of a kind: the
%% `reservations' option and {@link partisan_peer_service:reserve/1} name
%% tags, a node's `tag' option says its kind, and {@link active/1} names the
%% neighbour in a tag's slot (docs/configuration.md).</li>
%% <li>full views keep mixing through X-BOT exchanges (`xbot_enabled',
%% `xbot_interval'; on by default, unlike Partisan 5), which also merge an
%% island that dense joins can leave (docs/architecture.md).</li>
%% </ul>
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_hyparview_peer_service_manager).

-behaviour(partisan_peer_service_manager).

-export([active/0, active/1, passive/0]).

-define(M, partisan_pluggable_peer_service_manager).

-include("partisan_manager_delegate.hrl").


%% @doc The active view: the neighbours, this node excluded.
-spec active() -> {ok, [node()]}.
active() ->
    {Active, _} = partisan_nif:overlay_views(partisan_nif:engine()),
    {ok, [binary_to_atom(N, utf8) || N <- Active]}.


%% @doc The neighbour in the active-view slot reserved for `Tag' (by
%% {@link partisan_peer_service:reserve/1} or the `reservations' option):
%% `{ok, Node}', `{ok, undefined}' while no neighbour has that tag, and
%% `error' for a tag with no slot. Unlike Partisan 5, a slot opens again
%% when its neighbour goes.
-spec active(atom()) -> {ok, node() | undefined} | error.
active(Tag) when is_atom(Tag) ->
    partisan_nif:overlay_reserved(partisan_nif:engine(), Tag).


%% @doc The passive view. Its nodes are not members, so their names are
%% binaries rather than atoms (unlike Partisan 5, which returns node specs).
-spec passive() -> {ok, [binary()]}.
passive() ->
    {_, Passive} = partisan_nif:overlay_views(partisan_nif:engine()),
    {ok, Passive}.
