%% -----------------------------------------------------------------------------
%% @doc An example: a replicated key-value store over Plumtree, in the spirit
%% of PlumDB. Every node holds every key; a write is broadcast to all nodes
%% (last writer wins, by a clock of wall time and node name); a delete is a
%% write of a tombstone. Anti-entropy catches up a node that missed writes
%% (it was down): the broadcast server's exchange tick calls {@link exchange/1}
%% with a random peer, and the two nodes swap what they hold.
%%
%% To use it, start it on every node and add it to `broadcast_mods':
%% ```
%% {partisan, [{broadcast_mods, [partisan_kv]}]}
%% '''
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_kv).

-behaviour(partisan_plumtree_broadcast_handler).

-export([start/0, put/2, get/1, delete/1, keys/0]).
-export([sync/1]).
%% partisan_plumtree_broadcast_handler
-export([broadcast_data/1, merge/2, is_stale/1, graft/1, exchange/1]).

-define(TABLE, ?MODULE).

-type clock() :: {integer(), node()}.


%% @doc Creates the store's table, owned by a process that lives as long as
%% the node.
-spec start() -> ok.
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


%% @doc Writes `Value' under `Key' on every node.
-spec put(term(), term()) -> ok.
put(Key, Value) ->
    write(Key, {value, Value}).


%% @doc The value under `Key' here, or `not_found'.
-spec get(term()) -> {ok, term()} | not_found.
get(Key) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, _, {value, V}}] -> {ok, V};
        _ -> not_found
    end.


%% @doc Deletes `Key' on every node.
-spec delete(term()) -> ok.
delete(Key) ->
    write(Key, deleted).


%% @doc The keys with a value here, sorted.
-spec keys() -> [term()].
keys() ->
    lists:sort([K || {K, _, {value, _}} <- ets:tab2list(?TABLE)]).


write(Key, What) ->
    Clock = {erlang:system_time(nanosecond), partisan:node()},
    true = store(Key, Clock, What),
    partisan:broadcast({Key, Clock, What}, ?MODULE).


%% Keeps the entry if it is newer than the one held; whether it was.
-spec store(term(), clock(), deleted | {value, term()}) -> boolean().
store(Key, Clock, What) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Held, _}] when Held >= Clock -> false;
        _ -> ets:insert(?TABLE, {Key, Clock, What})
    end.


%% -----------------------------------------------------------------------------
%% Broadcast handler
%% -----------------------------------------------------------------------------

%% @private
broadcast_data({Key, Clock, _} = Entry) ->
    {{Key, Clock}, Entry}.

%% @private
merge(_Id, {Key, Clock, What}) ->
    store(Key, Clock, What).

%% @private
is_stale({Key, Clock}) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Held, _}] -> Held >= Clock;
        [] -> false
    end.

%% @private
graft({Key, Clock}) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Clock, What}] -> {ok, {Key, Clock, What}};
        [_] -> stale;
        [] -> {error, not_found}
    end.

%% @private
%% Swaps the whole store with `Peer' (a toy's anti-entropy: PlumDB compares
%% hash trees first).
exchange(Peer) ->
    Pid = spawn(fun() ->
        case partisan_rpc:call(Peer, ?MODULE, sync, [ets:tab2list(?TABLE)], 10000) of
            Theirs when is_list(Theirs) -> _ = merge_all(Theirs), ok;
            _ -> ok
        end
    end),
    {ok, Pid}.


%% @private
%% The peer's side of an exchange: takes its entries, returns ours.
-spec sync([{term(), clock(), term()}]) -> [{term(), clock(), term()}].
sync(Entries) ->
    Mine = ets:tab2list(?TABLE),
    _ = merge_all(Entries),
    Mine.

merge_all(Entries) ->
    [store(K, C, W) || {K, C, W} <- Entries].
