%% A Plumtree broadcast handler for the tests: it keeps what reaches the node
%% in a table, and crashes on the payload `crash' (the broadcast must go on).
%% The table functions (`start/1' ... `graft/2') serve other test handlers too.
-module(partisan_test_bcast).

-behaviour(partisan_plumtree_broadcast_handler).

-export([start/0, received/0]).
-export([broadcast_data/1, merge/2, is_stale/1, graft/1, exchange/1]).
-export([start/1, received/1, merge/3, is_stale/2, graft/2]).

-define(TABLE, ?MODULE).

start() -> start(?TABLE).

received() -> received(?TABLE).

broadcast_data({Id, Payload}) ->
    {Id, Payload}.

merge(_Id, crash) ->
    error(handler_crash_on_purpose);
merge(Id, Payload) ->
    merge(?TABLE, Id, Payload).

is_stale(Id) -> is_stale(?TABLE, Id).

graft(Id) -> graft(?TABLE, Id).

exchange(_Peer) ->
    ignore.


%% The table `Table', owned by a process that outlives the caller.
start(Table) ->
    case ets:whereis(Table) of
        undefined ->
            Parent = self(),
            Owner = spawn(fun() ->
                _ = ets:new(Table, [named_table, public, set]),
                Parent ! {self(), ready},
                receive stop -> ok end
            end),
            receive {Owner, ready} -> ok end;
        _ ->
            ok
    end.

received(Table) ->
    lists:sort(ets:tab2list(Table)).

merge(Table, Id, Payload) ->
    ets:insert_new(Table, {Id, Payload}).

is_stale(Table, Id) ->
    ets:member(Table, Id).

graft(Table, Id) ->
    case ets:lookup(Table, Id) of
        [{Id, P}] -> {ok, P};
        [] -> {error, not_found}
    end.
