-module(partisan_payload_tests).

-include_lib("eunit/include/eunit.hrl").

-define(BIG, 65536).


big(N) ->
    binary:copy(<<N:8>>, ?BIG + N).


%% Every shape decodes back to the message, spliced or not.
round_trip_test_() ->
    Big = big(1),
    Other = big(2),
    Sub = binary_part(big(30), 10, ?BIG),
    Msgs = [
        Big,
        Sub,
        <<"small">>,
        {bench_data, Big},
        {a, Big, 1, Other},
        {tag, {inner, Big}, [1, 2, 3], #{k => v}},
        {Big},
        {x, {y, {z, Big}}},
        {1, 2, 3, 4, 5, 6, 7, 8, 9, Big},
        [Big],
        #{data => Big},
        {},
        {self(), make_ref(), 1.5, -(1 bsl 70), "str", Big},
        <<1:3>>,
        {<<1:3>>, Big}
    ],
    [?_assertEqual(M, decode(partisan_payload:encode(M, []))) || M <- Msgs].


%% Large binaries are parts of the list as themselves (the same memory).
splices_large_binaries_test() ->
    Big = big(1),
    Parts = partisan_payload:encode({bench_data, Big}, []),
    ?assert(is_list(Parts)),
    ?assert(lists:any(fun(P) -> P =:= Big end, Parts)),
    ?assertEqual(term_to_binary({bench_data, Big}), iolist_to_binary(Parts)),
    Nested = partisan_payload:encode({t, {u, Big}}, []),
    ?assert(is_list(Nested)),
    ?assertEqual(term_to_binary({t, {u, Big}}), iolist_to_binary(Nested)).


%% Below the size, past the depth, beyond the arity, and when compressing:
%% one term_to_binary.
whole_encodings_test() ->
    Big = big(1),
    ?assertEqual(term_to_binary({a, <<"x">>}), partisan_payload:encode({a, <<"x">>}, [])),
    ?assert(is_binary(partisan_payload:encode({x, {y, {z, Big}}}, []))),
    ?assert(is_binary(partisan_payload:encode({1, 2, 3, 4, 5, 6, 7, 8, 9, Big}, []))),
    ?assert(is_binary(partisan_payload:encode([Big], []))),
    Compressed = partisan_payload:encode({a, Big}, [{compressed, 6}]),
    ?assert(is_binary(Compressed)),
    ?assert(byte_size(Compressed) < ?BIG).


decode(Payload) ->
    binary_to_term(iolist_to_binary(Payload)).
