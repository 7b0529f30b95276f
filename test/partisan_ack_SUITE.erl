%% -----------------------------------------------------------------------------
%% @doc Acknowledged sends (`#{ack => true}', partisan_acknowledgement) between
%% two real nodes: they arrive, each once, through connections killed while
%% they are on their way; errors retrying cannot mend keep nothing; messages
%% for a node that is not a member are given up, counted; past
%% `max_unacknowledged' a send is refused with `{error, busy}'; a crash of the
%% server, at either end, loses no message (and delivers again at most the
%% message it was delivering).
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_ack_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([init_per_testcase/2, end_per_testcase/2]).

-export([arrive_once_through_killed_connections/1]).
-export([errors_that_retrying_cannot_mend_keep_nothing/1]).
-export([a_node_that_is_no_member_is_given_up/1]).
-export([busy_past_the_limit/1]).
-export([a_crash_of_the_server_loses_nothing/1]).

-define(S, partisan_ct_support).
-define(ACK, partisan_acknowledgement).
-define(NOBODY, 'nobody@127.0.0.1').
-define(MiB, (1024 * 1024)).



suite() ->
    [{timetrap, {seconds, 120}}].


all() ->
    [arrive_once_through_killed_connections,
     errors_that_retrying_cannot_mend_keep_nothing,
     a_node_that_is_no_member_is_given_up,
     busy_past_the_limit,
     a_crash_of_the_server_loses_nothing].


init_per_suite(Config0) ->
    ok = ?S:init_dist(),
    Env = #{retransmit_interval => 200, max_frame_size => ?MiB,
            channels => #{fast => #{parallelism => 2}}},
    Config = [{node_prefix, "ack"}, {partisan_env, Env} | Config0],
    [A, B] = Nodes = ?S:start_nodes(2, Config),
    ok = ?S:join(B, A),
    ok = ?S:wait_until_converged(Nodes),
    [{nodes, Nodes} | Config].


end_per_suite(Config) ->
    ?S:stop_nodes(?config(nodes, Config)).


init_per_testcase(_, Config) ->
    [_ = ?S:rpc(N, ?S, start_collector, [inbox]) || N <- ?config(nodes, Config)],
    Config.


end_per_testcase(_, _Config) ->
    ok.



%% 3,000 messages in batches of 100 on a channel of two connections, and every
%% fifth batch the connections are killed right after it was handed over:
%% what was queued or on the wire then is sent again, and the receiver takes
%% every message once.
arrive_once_through_killed_connections(Config) ->
    [A, B] = ?config(nodes, Config),
    Before = ?S:rpc(A, ?ACK, stats, []),
    lists:foreach(
        fun(Batch) ->
            From = Batch * 100 + 1,
            ok = ?S:rpc(A, ?S, send_seq, [{inbox, B}, acked, From, From + 99,
                                          #{ack => true, channel => fast}]),
            Batch rem 5 =:= 4 andalso begin
                ok = ?S:rpc(A, partisan, kill_connections, [[B]]),
                %% The next batch goes over new connections: what was lost
                %% is what the kill caught on its way.
                ok = ?S:wait_until(
                    fun() -> ?S:rpc(A, partisan, is_connected, [B, fast]) end, 100, 50)
            end
        end,
        lists:seq(0, 29)
    ),
    Expected = [{seq, acked, I} || I <- lists:seq(1, 3000)],
    _ = ?S:wait_for_messages(B, inbox, 3000, 60000),
    ok = ?S:wait_until(
        fun() -> maps:get(outstanding, ?S:rpc(A, ?ACK, stats, [])) =:= 0 end, 300, 100
    ),
    %% (Anything left over would be a duplicate; a retransmission is due every
    %% 200 ms.)
    timer:sleep(500),
    Got = ?S:rpc(B, ?S, collected, [inbox]),
    ?assertEqual(3000, length(Got)),
    ?assertEqual(Expected, lists:sort(Got)),
    After = ?S:rpc(A, ?ACK, stats, []),
    Received = ?S:rpc(B, ?ACK, stats, []),
    ct:comment("retransmitted ~b, duplicates refused at the receiver ~b",
               [maps:get(retransmitted, After) - maps:get(retransmitted, Before),
                maps:get(duplicates, Received)]),
    ?assertEqual(3000, maps:get(acknowledged, After) - maps:get(acknowledged, Before)).


errors_that_retrying_cannot_mend_keep_nothing(Config) ->
    [A, B] = ?config(nodes, Config),
    Big = binary:copy(<<7>>, 2 * ?MiB),
    ?assertEqual({error, message_too_large},
                 ?S:rpc(A, partisan, forward_message, [B, inbox, Big, #{ack => true}])),
    ?assertMatch({error, {unknown_channel, nope}},
                 ?S:rpc(A, partisan, forward_message,
                        [B, inbox, x, #{ack => true, channel => nope,
                                        channel_fallback => false}])),
    ?assertError({exception, badarg, _},
                 ?S:rpc(A, partisan, forward_message,
                        [B, inbox, x, #{ack => true, partition_key => -1}])),
    ?assertEqual(0, maps:get(outstanding, ?S:rpc(A, ?ACK, stats, []))),
    %% A plain send still works, and an acknowledged one too.
    ok = ?S:rpc(A, partisan, forward_message, [B, inbox, plain, #{}]),
    ok = ?S:rpc(A, partisan, forward_message, [B, inbox, acked, #{ack => true}]),
    _ = ?S:wait_for_messages(B, inbox, 2),
    ?assertEqual([acked, plain], lists:sort(?S:rpc(B, ?S, collected, [inbox]))).


a_node_that_is_no_member_is_given_up(Config) ->
    [A, _] = ?config(nodes, Config),
    #{abandoned := Before} = ?S:rpc(A, ?ACK, stats, []),
    ok = ?S:rpc(A, partisan, forward_message, [?NOBODY, inbox, x, #{ack => true}]),
    ok = ?S:wait_until(
        fun() ->
            #{abandoned := N, outstanding := O} = ?S:rpc(A, ?ACK, stats, []),
            N =:= Before + 1 andalso O =:= 0
        end, 100, 100).


busy_past_the_limit(Config) ->
    [A, _] = ?config(nodes, Config),
    ok = ?S:rpc(A, partisan_config, set, [max_unacknowledged, 5]),
    try
        Sent = [?S:rpc(A, partisan, forward_message, [?NOBODY, inbox, I, #{ack => true}])
                || I <- lists:seq(1, 6)],
        ?assertEqual([ok, ok, ok, ok, ok, {error, busy}], Sent)
    after
        ok = ?S:rpc(A, partisan_config, set, [max_unacknowledged, 65536])
    end,
    %% Given up in time, which frees the room again.
    ok = ?S:wait_until(
        fun() -> maps:get(outstanding, ?S:rpc(A, ?ACK, stats, [])) =:= 0 end, 100, 100).


%% 900 messages in batches of 100. For the first five batches the receiver's
%% server is suspended while the batch arrives, then killed with the batch in
%% its mailbox, and the sender's server is killed too: only what the sender's
%% restarted server still keeps can bring those messages back. After each of
%% the next four, the server is killed at one end or the other, in turn, at
%% whatever moment: the receiver's still knows what it delivered, so at most
%% the delivery a kill interrupted (one of two kills) is made twice. (Seven
%% kills per node: the supervisor allows ten in ten seconds.)
a_crash_of_the_server_loses_nothing(Config) ->
    [A, B] = ?config(nodes, Config),
    Send = fun(Batch) ->
        From = Batch * 100 + 1,
        ok = ?S:rpc(A, ?S, send_seq, [{inbox, B}, crashed, From, From + 99,
                                      #{ack => true}])
    end,
    lists:foreach(
        fun(Batch) ->
            Receiver = ?S:rpc(B, erlang, whereis, [?ACK]),
            ok = ?S:rpc(B, sys, suspend, [Receiver]),
            Send(Batch),
            ok = ?S:wait_until(
                fun() ->
                    {message_queue_len, N} =
                        ?S:rpc(B, erlang, process_info, [Receiver, message_queue_len]),
                    N >= 100
                end, 200, 50),
            ok = restart_server(B),
            ok = restart_server(A)
        end,
        lists:seq(0, 4)
    ),
    lists:foreach(
        fun(Batch) ->
            Send(Batch),
            ok = restart_server(case Batch rem 2 of 0 -> A; 1 -> B end)
        end,
        lists:seq(5, 8)
    ),
    _ = ?S:wait_for_messages(B, inbox, 900, 60000),
    ok = ?S:wait_until(
        fun() -> maps:get(outstanding, ?S:rpc(A, ?ACK, stats, [])) =:= 0 end, 300, 100
    ),
    timer:sleep(500),
    Got = ?S:rpc(B, ?S, collected, [inbox]),
    ?assertEqual([{seq, crashed, I} || I <- lists:seq(1, 900)], lists:usort(Got)),
    Twice = length(Got) - 900,
    ct:comment("delivered twice: ~b", [Twice]),
    ?assert(Twice =< 2).


%% Kills the acknowledgement server of Node and waits for its restart.
restart_server(Node) ->
    Old = ?S:rpc(Node, erlang, whereis, [?ACK]),
    true = ?S:rpc(Node, erlang, exit, [Old, kill]),
    ?S:wait_until(
        fun() ->
            New = ?S:rpc(Node, erlang, whereis, [?ACK]),
            is_pid(New) andalso New =/= Old
        end, 100, 20).
