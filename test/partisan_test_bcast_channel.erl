%% A Plumtree broadcast handler for the tests whose broadcasts travel on the
%% `gossip' channel (its broadcast_channel/0); it keeps what reaches the node
%% in a table of its own.
-module(partisan_test_bcast_channel).

-behaviour(partisan_plumtree_broadcast_handler).

-export([start/0, received/0]).
-export([broadcast_channel/0]).
-export([broadcast_data/1, merge/2, is_stale/1, graft/1, exchange/1]).

-define(TABLE, ?MODULE).

start() ->
    case ets:whereis(?TABLE) of
        undefined ->
            Parent = self(),
            Owner = spawn(fun() ->
                _ = ets:new(?TABLE, [named_table, public, set]),
                Parent ! {self(), ready},
                receive stop -> ok end
            end),
            receive {Owner, ready} -> ok end;
        _ ->
            ok
    end.

received() ->
    lists:sort(ets:tab2list(?TABLE)).

broadcast_channel() ->
    gossip.

broadcast_data({Id, Payload}) ->
    {Id, Payload}.

merge(Id, Payload) ->
    ets:insert_new(?TABLE, {Id, Payload}).

is_stale(Id) ->
    ets:member(?TABLE, Id).

graft(Id) ->
    case ets:lookup(?TABLE, Id) of
        [{Id, P}] -> {ok, P};
        [] -> {error, not_found}
    end.

exchange(_Peer) ->
    ignore.
