%% A Plumtree broadcast handler for the tests whose broadcasts travel on the
%% `gossip' channel (its broadcast_channel/0); it keeps what reaches the node
%% in a table of its own (partisan_test_bcast's table functions).
-module(partisan_test_bcast_channel).

-behaviour(partisan_plumtree_broadcast_handler).

-export([start/0, received/0]).
-export([broadcast_channel/0]).
-export([broadcast_data/1, merge/2, is_stale/1, graft/1, exchange/1]).

-define(STORE, partisan_test_bcast).
-define(TABLE, ?MODULE).

start() -> ?STORE:start(?TABLE).

received() -> ?STORE:received(?TABLE).

broadcast_channel() ->
    gossip.

broadcast_data({Id, Payload}) ->
    {Id, Payload}.

merge(Id, Payload) -> ?STORE:merge(?TABLE, Id, Payload).

is_stale(Id) -> ?STORE:is_stale(?TABLE, Id).

graft(Id) -> ?STORE:graft(?TABLE, Id).

exchange(_Peer) ->
    ignore.
