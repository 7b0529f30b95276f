%% The receiver's window of acknowledged sends (partisan_acknowledgement:accept/3)
%% against a model of the sender and a network that loses, duplicates and
%% reorders: every message is delivered exactly once, and once the sender
%% keeps nothing the window holds at most the ids from the last floor on.
-module(partisan_acknowledgement_tests).

-include_lib("eunit/include/eunit.hrl").

exactly_once_through_loss_duplication_and_reordering_test() ->
    [run(Seed) || Seed <- lists:seq(1, 300)],
    ok.

duplicates_and_ids_below_the_floor_are_refused_test() ->
    {true, W1} = partisan_acknowledgement:accept(5, 5, undefined),
    ?assertMatch({false, _}, partisan_acknowledgement:accept(5, 5, W1)),
    %% A later message says everything below 7 was acknowledged: 6, arriving
    %% late (a retransmission), was delivered before.
    {true, W2} = partisan_acknowledgement:accept(9, 7, W1),
    ?assertMatch({false, _}, partisan_acknowledgement:accept(6, 5, W2)),
    ?assertMatch({true, _}, partisan_acknowledgement:accept(8, 5, W2)).


%% One random run: the sender sends 60 messages, the network loses a fifth
%% of what it carries (both ways), retransmits are due at random moments,
%% and copies arrive in any order; then the network turns reliable until the
%% sender keeps nothing.
run(Seed) ->
    rand:seed(exsss, {Seed, Seed * 7, Seed * 13}),
    S0 = #{next => 1, kept => [], flight => [], acks => [], window => undefined,
           delivered => [], last_floor => 1},
    S1 = steps(400, S0),
    S = drain(S1, 0),
    Delivered = lists:sort(maps:get(delivered, S)),
    ?assertEqual({Seed, lists:seq(1, maps:get(next, S) - 1)}, {Seed, Delivered}),
    {_, Seen} = maps:get(window, S),
    ?assert(gb_sets:size(Seen) =< maps:get(next, S) - maps:get(last_floor, S)).

steps(0, S) -> S;
steps(N, S) -> steps(N - 1, step(rand:uniform(6), S)).

%% Send a new message (at most 60).
step(1, #{next := Id} = S) when Id =< 60 ->
    send(Id, S#{next := Id + 1, kept := maps:get(kept, S) ++ [Id]});
%% Retransmit one kept message.
step(2, #{kept := [_ | _] = Kept} = S) ->
    send(pick(Kept), S);
%% Deliver one copy in flight, in any order; a fifth are lost.
step(3, #{flight := [_ | _] = Flight} = S) ->
    {Id, Floor} = Copy = pick(Flight),
    S1 = S#{flight := Flight -- [Copy]},
    case rand:uniform(5) of
        1 -> S1;
        _ -> receive_copy(Id, Floor, S1)
    end;
%% Deliver one acknowledgement; a fifth are lost.
step(4, #{acks := [_ | _] = Acks} = S) ->
    Id = pick(Acks),
    S1 = S#{acks := Acks -- [Id]},
    case rand:uniform(5) of
        1 -> S1;
        _ -> S1#{kept := maps:get(kept, S1) -- [Id]}
    end;
step(_, S) ->
    S.

%% Until the sender keeps nothing: retransmit everything, deliver every copy
%% and every acknowledgement.
drain(#{kept := [], flight := [], acks := []} = S, _) ->
    S;
drain(S0, Round) when Round < 100 ->
    S1 = lists:foldl(fun send/2, S0, maps:get(kept, S0)),
    S2 = lists:foldl(fun({Id, Floor}, Acc) -> receive_copy(Id, Floor, Acc) end,
                     S1#{flight := []}, shuffle(maps:get(flight, S1))),
    Acks = maps:get(acks, S2),
    drain(S2#{acks := [], kept := maps:get(kept, S2) -- Acks}, Round + 1).

send(Id, #{kept := Kept} = S) ->
    Floor = lists:min(Kept),
    S#{flight := [{Id, Floor} | maps:get(flight, S)]}.

receive_copy(Id, Floor, #{window := W0} = S) ->
    {Fresh, W} = partisan_acknowledgement:accept(Id, Floor, W0),
    Delivered = case Fresh of
        true -> [Id | maps:get(delivered, S)];
        false -> maps:get(delivered, S)
    end,
    S#{window := W, delivered := Delivered, acks := [Id | maps:get(acks, S)],
       last_floor := max(Floor, maps:get(last_floor, S))}.

pick(List) ->
    lists:nth(rand:uniform(length(List)), List).

shuffle(List) ->
    [X || {_, X} <- lists:sort([{rand:uniform(), X} || X <- List])].
