%% -----------------------------------------------------------------------------
%% @doc The behaviour of a Plumtree broadcast handler (Partisan 5's): a module
%% named in the `broadcast_mods' option owns some data that
%% {@link partisan:broadcast/2} spreads to every node.
%% <ul>
%% <li>`broadcast_data(Broadcast)' returns `{MessageId, Payload}' for what
%% `partisan:broadcast/2' was given; ids name payloads, so the same id is never
%% delivered twice to a node.</li>
%% <li>`merge(MessageId, Payload)' takes a payload that reached this node;
%% `true' if it was news.</li>
%% <li>`is_stale(MessageId)' and `graft(MessageId)' (`{ok, Payload}', `stale'
%% or `{error, Reason}') answer questions about ids. The engine keeps recent
%% payloads itself and answers grafts from them, so these two are called only
%% by handlers' own code (and are kept for Partisan 5 compatibility).</li>
%% <li>`exchange(Node)' starts an anti-entropy exchange with the handler on
%% `Node' (`{ok, Pid}' of the process doing it, `ok', `ignore' or
%% `{error, Reason}'); it runs every `exchange_tick_period' with a random
%% peer, so that a node that missed broadcasts (it was down) catches up.</li>
%% <li>`broadcast_channel()' (optional): the channel (one of `channels') that
%% carries the handler's broadcasts; without it they travel on the membership
%% channel, apart from user data.</li>
%% </ul>
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_plumtree_broadcast_handler).

-callback broadcast_data(any()) -> {MessageId :: any(), Payload :: any()}.

-callback broadcast_channel() -> partisan:channel().

-callback merge(MessageId :: any(), Payload :: any()) -> boolean().

-callback is_stale(MessageId :: any()) -> boolean().

-callback graft(MessageId :: any()) -> stale | {ok, any()} | {error, any()}.

-callback exchange(node()) -> ok | {ok, pid()} | {error, term()} | ignore.

-optional_callbacks([broadcast_channel/0]).
