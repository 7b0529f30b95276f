%% Makes etf_samples.txt, the real external-term-format samples of the seed generator:
%%   erlc etf_samples.erl && { erl -noshell -eval 'etf_samples:main(), halt().';
%%     erl -noshell -name a@127.0.0.1 -eval 'etf_samples:main(), halt().'; } >> etf_samples.txt
-module(etf_samples).
-export([main/0]).
hex(B) -> lists:flatten([io_lib:format("~2.16.0b", [X]) || <<X>> <= B]).
main() ->
    Self = self(),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    Fun = fun(X) -> {X, Self} end,
    Terms = [
      {"pid", Self},
      {"ref", Ref},
      {"port", Port},
      {"fun_with_pid", Fun},
      {"export", fun lists:map/2},
      {"tuple_mixed", {hello, 42, -7, 1.5, "str", <<1,2,3>>, <<1:3>>, [a|b], #{k => v, 1 => [Self]}}},
      {"big_ints", {1 bsl 70, -(1 bsl 300), 123456789012}},
      {"unicode_atom", {'ατομο', <<"ü"/utf8>>}},
      {"nested_list", [[Self, Ref], {Port}, [], [1,2,3]]},
      {"large_tuple", list_to_tuple(lists:seq(1, 300))},
      {"long_atom", list_to_atom(lists:duplicate(255, $a))},
      {"map_big", maps:from_list([{I, Self} || I <- lists:seq(1, 40)])},
      {"gen_call", {'$gen_call', {Self, Ref}, {get, key}}},
      {"partisan_msg", {partisan_payload, {meta, 1}, <<0:512>>}}
    ],
    Node = atom_to_list(node()),
    [io:format("~s ~s ~s~n", [Node, Name, hex(term_to_binary(T, [{minor_version, 2}]))]) || {Name, T} <- Terms],
    io:format("~s ~s ~s~n", [Node, "compressed_list", hex(term_to_binary(lists:duplicate(500, {x, Self}), [compressed]))]),
    io:format("~s ~s ~s~n", [Node, "compressed_big_binary", hex(term_to_binary({meta, {small, <<0:(70000*8)>>}}, [{compressed, 9}]))]),
    io:format("~s ~s ~s~n", [Node, "old_encodings", hex(term_to_binary({Self, Ref}, [{minor_version, 0}]))]),
    ok.
