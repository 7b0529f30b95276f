%% -----------------------------------------------------------------------------
%% @doc Acknowledged sends: `partisan:forward_message/3,4' with `#{ack =>
%% true}'. Such a message is kept until the destination node says it has
%% delivered it, sent again every `retransmit_interval' milliseconds until
%% then (through lost connections, partitions and restarts of the
%% destination), and delivered there once.
%%
%% The sender records the message in a table, in its own process, and sends
%% it wrapped to this server on the destination node, with an id (increasing
%% over this node's life) and the smallest id it still keeps for that node,
%% its floor. Everything below the floor has been acknowledged, so it was
%% delivered: the receiver delivers a message only if its id is at or over
%% the highest floor it has seen from that sender's life and not among the
%% ids it delivered since, then acknowledges it (again, for a duplicate).
%% So a retransmission that arrives after a later message is still
%% recognised, and the receiver remembers of a sender only the ids from its
%% oldest unacknowledged message on. Partisan 5 delivers such messages at least once; here they are
%% delivered exactly once while the sender's node lives.
%%
%% The price is a process on the way of these messages, at each end, as in
%% Partisan 5 (whose manager serialises them): plain sends never come here.
%% Messages for a node that is neither a member nor connected are dropped
%% after three sends (a `transitive' one after a minute too), counted
%% (`abandoned') and logged; at most `max_unacknowledged'
%% are kept, past which a send is refused with `{error, busy}'. The tables
%% belong to `partisan_acknowledgement_tables': a crash of this server loses
%% none of the messages kept, and forgets no delivery but the one it may have
%% been making (which may then be delivered again, never lost).
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_acknowledgement).

-behaviour(gen_server).

-export([start_link/0]).
-export([send/4]).
-export([stats/0]).
-export([accept/3]).
-export([new_tables/0]).

-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-export_type([window/0]).

%% What a receiver remembers of one sender's life: the highest floor seen and
%% the ids at or over it that were delivered.
-opaque window() :: {Floor :: non_neg_integer(), gb_sets:set(pos_integer())}.

-record(state, {
    counts = #{delivered => 0, duplicates => 0, acknowledged => 0,
               retransmitted => 0, abandoned => 0} :: #{atom() => non_neg_integer()}
}).

-define(SERVER, ?MODULE).
%% {{Node, Id}, Target, Msg, Opts, SentAt, Attempts}, ordered by node then id,
%% so that a node's floor is the first key at or after {Node, 0}.
-define(OUTSTANDING, partisan_ack_outstanding).
%% {{Origin, Life}, window(), LastSeenAt}: per sender life, its window and when
%% it last sent.
-define(WINDOWS, partisan_ack_windows).
%% This VM's life: drawn at each start, so that a receiver tells the ids of a
%% restarted sender from those of its earlier life.
-define(LIFE, {?MODULE, life}).
%% A message for a node that is not a member is given up after this many sends,
%% a `transitive' one also only after this long.
-define(ATTEMPTS, 3).
-define(TRANSITIVE_MS, 60000).
%% Most retransmissions per tick; the rest wait for the next.
-define(TICK_BUDGET, 10000).
%% A sender life that sent nothing for this long is forgotten once a newer
%% life of its node has been seen.
-define(IDLE_MS, 60000).



%% =============================================================================
%% API
%% =============================================================================



%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.

start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).


%% -----------------------------------------------------------------------------
%% @doc Sends `Msg' to `Target' (what `partisan_send:target/1' made of the
%% destination) on `Node' with acknowledgement and retransmission (see the
%% module doc). Returns `ok' once the message is kept, whether or not the
%% first send went out; `{error, busy}' when `max_unacknowledged' messages are
%% kept already; the first send's error when retrying cannot help (`{error,
%% message_too_large}', `{error, {unknown_channel, C}}'), and then nothing
%% is kept. Runs in the caller's process.
%% @end
%% -----------------------------------------------------------------------------
-spec send(node(), term(), partisan:message(), map()) ->
    ok | {error, term()} | no_return().

send(Node, Target, Msg, Opts) ->
    Limit = partisan_config:get(max_unacknowledged),
    case ets:info(?OUTSTANDING, size) of
        Size when is_integer(Size), Size < Limit ->
            Id = erlang:unique_integer([positive, monotonic]),
            Key = {Node, Id},
            true = ets:insert(?OUTSTANDING, {Key, Target, Msg, Opts, now_ms(), 1}),
            try transmit(Node, Id, Target, Msg, Opts) of
                ok ->
                    ok;
                {error, Reason} = Error when Reason == message_too_large;
                                             element(1, Reason) == unknown_channel ->
                    true = ets:delete(?OUTSTANDING, Key),
                    Error;
                {error, _} ->
                    %% Not connected, busy, partitioned: the tick sends it again.
                    ok
            catch
                Class:Reason:Stack ->
                    true = ets:delete(?OUTSTANDING, Key),
                    erlang:raise(Class, Reason, Stack)
            end;
        Size when is_integer(Size) ->
            {error, busy};
        undefined ->
            erlang:error(partisan_not_started)
    end.


%% -----------------------------------------------------------------------------
%% @doc Counters (`delivered', `duplicates', `acknowledged', `retransmitted',
%% `abandoned') and the number of messages kept (`outstanding').
%% @end
%% -----------------------------------------------------------------------------
-spec stats() -> #{atom() => non_neg_integer()}.

stats() ->
    gen_server:call(?SERVER, stats).


%% -----------------------------------------------------------------------------
%% @private
%% @doc Whether the message `Id', sent with floor `Floor', is to be delivered
%% given the sender's window (`undefined': nothing seen yet), and the window
%% after it.
%% @end
%% -----------------------------------------------------------------------------
-spec accept(pos_integer(), non_neg_integer(), window() | undefined) ->
    {boolean(), window()}.

accept(Id, Floor, undefined) ->
    accept(Id, Floor, {0, gb_sets:empty()});

accept(Id, Floor0, {Highest, Seen0}) ->
    Floor = max(Floor0, Highest),
    Fresh = Id >= Floor andalso not gb_sets:is_element(Id, Seen0),
    Seen = case Fresh of
        true -> gb_sets:add(Id, Seen0);
        false -> Seen0
    end,
    {Fresh, {Floor, below_gone(Floor, Seen)}}.


%% -----------------------------------------------------------------------------
%% @private
%% @doc Creates the tables, owned by the calling process
%% (`partisan_acknowledgement_tables'), so that they outlive this server.
%% @end
%% -----------------------------------------------------------------------------
-spec new_tables() -> ok.

new_tables() ->
    _ = ets:new(?OUTSTANDING, [ordered_set, public, named_table,
                               {write_concurrency, true}]),
    _ = ets:new(?WINDOWS, [set, public, named_table]),
    ok.



%% =============================================================================
%% GEN_SERVER CALLBACKS
%% =============================================================================



%% @private
init([]) ->
    %% After a crash, what the tables hold is picked up where it was.
    _ = persistent_term:get(?LIFE, undefined) =/= undefined
        orelse persistent_term:put(?LIFE, rand:uniform(1 bsl 48)),
    schedule_tick(),
    {ok, #state{}}.


%% @private
handle_call(stats, _From, #state{counts = Counts} = State) ->
    {reply, Counts#{outstanding => ets:info(?OUTSTANDING, size)}, State};

handle_call(_, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
handle_cast(_, State) ->
    {noreply, State}.


%% @private
handle_info({'$partisan_acked', Origin, Life, Id, Floor, Transitive, Target, Msg}, State0) ->
    Key = {Origin, Life},
    Window0 = case ets:lookup(?WINDOWS, Key) of
        [{_, W, _}] -> W;
        [] -> undefined
    end,
    {Fresh, Window} = accept(Id, Floor, Window0),
    %% Recorded right after the delivery: a crash between the two can deliver
    %% this one message again (never lose it).
    _ = Fresh andalso deliver(Target, Msg),
    true = ets:insert(?WINDOWS, {Key, Window, now_ms()}),
    State1 = count(case Fresh of true -> delivered; false -> duplicates end, State0),
    %% Acknowledged even when a duplicate: the first acknowledgement may be
    %% what was lost. The way back is the way the message came: relayed
    %% through the overlay when it was (HyParView keeps few neighbours).
    Opts = #{ack => false, nosuspend => true, transitive => Transitive},
    _ = partisan_send:remote(Origin, ?SERVER, {'$partisan_ack', partisan:node(), Id}, Opts),
    {noreply, State1};

handle_info({'$partisan_ack', Node, Id}, State) ->
    case ets:member(?OUTSTANDING, {Node, Id}) of
        true ->
            true = ets:delete(?OUTSTANDING, {Node, Id}),
            {noreply, count(acknowledged, State)};
        false ->
            {noreply, State}
    end;

handle_info(tick, State0) ->
    schedule_tick(),
    State = retransmit(State0),
    ok = forget_idle_lives(),
    {noreply, State};

handle_info(_, State) ->
    {noreply, State}.



%% =============================================================================
%% PRIVATE
%% =============================================================================



transmit(Node, Id, Target, Msg, Opts) ->
    Transitive = maps:get(transitive, Opts, false) =:= true,
    Wrapped = {'$partisan_acked', partisan:node(), persistent_term:get(?LIFE), Id,
               floor(Node, Id), Transitive, Target, Msg},
    %% (`ack => false' overrides an `ack' of the `forward_options' defaults.)
    partisan_send:remote(Node, ?SERVER, Wrapped, Opts#{ack => false}).


%% The smallest id kept for `Node' (`Id' is one of them).
floor(Node, Id) ->
    case ets:next(?OUTSTANDING, {Node, 0}) of
        {Node, First} -> First;
        _ -> Id
    end.


deliver(Target, Msg) ->
    try
        partisan_send:deliver(Target, Msg)
    catch
        error:Reason ->
            logger:warning("partisan: an acknowledged message could not be "
                           "delivered to ~p: ~p", [Target, Reason])
    end.


below_gone(Floor, Seen) ->
    case gb_sets:is_empty(Seen) of
        false ->
            case gb_sets:smallest(Seen) of
                Low when Low < Floor -> below_gone(Floor, gb_sets:delete(Low, Seen));
                _ -> Seen
            end;
        true ->
            Seen
    end.


%% Sends again what waited an interval without its acknowledgement, and gives
%% up what is for a node that is neither a member nor connected after
%% ?ATTEMPTS sends (a `transitive' message, for a node HyParView may reach
%% without either, after ?TRANSITIVE_MS too).
retransmit(State) ->
    Interval = partisan_config:get(retransmit_interval),
    Due = now_ms() - Interval,
    Known = {Interval, members() ++ connected()},
    Stale = ets:select(
        ?OUTSTANDING,
        [{{'$1', '_', '_', '_', '$2', '_'}, [{'=<', '$2', Due}], ['$_']}],
        ?TICK_BUDGET
    ),
    Entries = case Stale of
        {Found, _Continuation} -> Found;
        '$end_of_table' -> []
    end,
    lists:foldl(fun(Entry, S) -> resend(Entry, Known, S) end, State, Entries).


resend({{Node, Id} = Key, Target, Msg, Opts, _, Attempts}, {Interval, Known}, State) ->
    Waited = Attempts >= ?ATTEMPTS andalso
        (maps:get(transitive, Opts, false) =/= true
         orelse Attempts * Interval >= ?TRANSITIVE_MS),
    case Waited andalso not lists:member(Node, Known) of
        true ->
            true = ets:delete(?OUTSTANDING, Key),
            logger:warning("partisan: an acknowledged message for ~p was given "
                           "up after ~b sends: the node is not a member",
                           [Node, Attempts]),
            count(abandoned, State);
        false ->
            true = ets:update_element(?OUTSTANDING, Key, [{5, now_ms()}, {6, Attempts + 1}]),
            %% (Never waiting on a busy connection: the next tick retries.)
            _ = try transmit(Node, Id, Target, Msg, Opts#{nosuspend => true})
                catch error:_ -> {error, not_sent}
                end,
            count(retransmitted, State)
    end.


connected() ->
    try partisan_nif:nodes(partisan_nif:engine())
    catch error:_ -> []
    end.


members() ->
    try partisan_peer_service:members() of
        {ok, Members} -> Members
    catch
        _:_ -> []
    end.


%% A sender's earlier lives are forgotten once they have been quiet a while;
%% its newest is kept.
forget_idle_lives() ->
    Old = now_ms() - ?IDLE_MS,
    Lives = ets:tab2list(?WINDOWS),
    Newest = lists:foldl(
        fun({{Node, _} = Key, _, At}, Acc) ->
            case maps:find(Node, Acc) of
                {ok, {_, Later}} when Later >= At -> Acc;
                _ -> maps:put(Node, {Key, At}, Acc)
            end
        end,
        #{},
        Lives
    ),
    lists:foreach(
        fun({{Node, _} = Key, _, At}) ->
            At >= Old orelse element(1, maps:get(Node, Newest)) =:= Key
                orelse ets:delete(?WINDOWS, Key)
        end,
        Lives
    ).


count(Kind, #state{counts = Counts} = State) ->
    State#state{counts = maps:update_with(Kind, fun(N) -> N + 1 end, Counts)}.


schedule_tick() ->
    erlang:send_after(partisan_config:get(retransmit_interval), self(), tick).


now_ms() ->
    erlang:monotonic_time(millisecond).
