%% EUnit tests of partisan_remote_ref: the three formats, the predicates and
%% the rule that no atom is created from a reference's node text.
%% They need no native library.
-module(partisan_remote_ref_tests).

-include_lib("eunit/include/eunit.hrl").

%% Improper lists are the default remote reference format; bad input is
%% passed on purpose.
-dialyzer([no_improper_lists, {nowarn_function, not_a_reference/0}]).

-define(NODE, 'test@127.0.0.1').
-define(OTHER, 'other@127.0.0.1').
-define(FORMATS, [improper_list, tuple, uri]).


%% =============================================================================
%% FIXTURE
%% =============================================================================


remote_ref_test_() ->
    {foreach, fun setup/0, fun cleanup/1, [
        {"local pid, every format", fun local_pid/0},
        {"local name, every format", fun local_name/0},
        {"local reference, every format", fun local_reference/0},
        {"remote name", fun remote_name/0},
        {"pid of another node", fun pid_of_another_node/0},
        {"reference of another node is refused", fun foreign_reference/0},
        {"documented shapes", fun shapes/0},
        {"remote targets", fun remote_targets/0},
        {"delivery targets", fun delivery_targets/0},
        {"unknown node creates no atom", fun unknown_node_creates_no_atom/0},
        {"unknown name creates no atom", fun unknown_name_creates_no_atom/0},
        {"identity across formats", fun identity/0},
        {"is_name/2", fun is_name_2/0},
        {"uri padding", fun uri_padding/0},
        {"not a reference", fun not_a_reference/0}
    ]}.


setup() ->
    [application:unset_env(partisan, Key)
        || {Key, _} <- application:get_all_env(partisan)],
    ok = application:set_env(partisan, name, ?NODE),
    ok = partisan_config:init(),
    %% Distributed Erlang's name would win; these tests need a known one.
    ok = partisan_config:set(name, ?NODE).


cleanup(_) ->
    [application:unset_env(partisan, Key)
        || {Key, _} <- application:get_all_env(partisan)],
    ok.


in_each_format(Fun) ->
    lists:foreach(
        fun(Format) ->
            ok = partisan_config:set(remote_ref_format, Format),
            Fun(Format)
        end,
        ?FORMATS
    ).


%% =============================================================================
%% TESTS
%% =============================================================================


local_pid() ->
    in_each_format(fun(Format) ->
        Ref = partisan_remote_ref:from_term(self()),
        ?assertEqual(Format, format_of(Ref)),
        ?assert(partisan_remote_ref:is_pid(Ref)),
        ?assertNot(partisan_remote_ref:is_reference(Ref)),
        ?assertNot(partisan_remote_ref:is_name(Ref)),
        ?assert(partisan_remote_ref:is_type(Ref)),
        ?assert(partisan_remote_ref:is_local(Ref)),
        ?assert(partisan_remote_ref:is_local(Ref, ?NODE)),
        ?assertNot(partisan_remote_ref:is_local(Ref, ?OTHER)),
        ?assert(partisan_remote_ref:is_local_pid(Ref)),
        ?assert(partisan_remote_ref:is_local_pid(Ref, self())),
        ?assertNot(partisan_remote_ref:is_local_pid(Ref, spawn(fun() -> ok end))),
        ?assertNot(partisan_remote_ref:is_local_name(Ref)),
        ?assertNot(partisan_remote_ref:is_local_reference(Ref)),
        ?assertEqual(?NODE, partisan_remote_ref:node(Ref)),
        ?assertEqual(<<"test@127.0.0.1">>, partisan_remote_ref:nodestring(Ref)),
        ?assertEqual(self(), partisan_remote_ref:to_term(Ref)),
        ?assertEqual(self(), partisan_remote_ref:to_pid(Ref)),
        ?assertEqual(self(), partisan_remote_ref:to_pid_or_name(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_name(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_reference(Ref)),
        ?assertEqual(
            {encoded_pid, pid_to_list(self())},
            partisan_remote_ref:target(Ref)
        ),
        ?assert(partisan:is_self(Ref))
    end).


local_name() ->
    in_each_format(fun(_) ->
        Ref = partisan_remote_ref:from_term(foo),
        ?assertNot(partisan_remote_ref:is_pid(Ref)),
        ?assertNot(partisan_remote_ref:is_reference(Ref)),
        ?assert(partisan_remote_ref:is_name(Ref)),
        ?assert(partisan_remote_ref:is_type(Ref)),
        ?assert(partisan_remote_ref:is_local(Ref)),
        ?assert(partisan_remote_ref:is_local_name(Ref)),
        ?assert(partisan_remote_ref:is_local_name(Ref, foo)),
        ?assertNot(partisan_remote_ref:is_local_name(Ref, bar)),
        ?assertEqual(?NODE, partisan_remote_ref:node(Ref)),
        ?assertEqual(foo, partisan_remote_ref:to_term(Ref)),
        ?assertEqual(foo, partisan_remote_ref:to_name(Ref)),
        ?assertEqual(foo, partisan_remote_ref:to_pid_or_name(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_pid(Ref)),
        ?assertEqual({encoded_name, "foo"}, partisan_remote_ref:target(Ref)),
        ?assertEqual(Ref, partisan_remote_ref:from_term({foo, ?NODE}))
    end).


local_reference() ->
    in_each_format(fun(_) ->
        Local = make_ref(),
        Ref = partisan_remote_ref:from_term(Local),
        ?assertNot(partisan_remote_ref:is_pid(Ref)),
        ?assert(partisan_remote_ref:is_reference(Ref)),
        ?assertNot(partisan_remote_ref:is_name(Ref)),
        ?assert(partisan_remote_ref:is_local(Ref)),
        ?assert(partisan_remote_ref:is_local_reference(Ref)),
        ?assert(partisan_remote_ref:is_local_reference(Ref, Local)),
        ?assertNot(partisan_remote_ref:is_local_reference(Ref, make_ref())),
        ?assertEqual(Local, partisan_remote_ref:to_term(Ref)),
        ?assertEqual(Local, partisan_remote_ref:to_reference(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_pid_or_name(Ref)),
        ?assertEqual(
            {encoded_ref, ref_to_list(Local)},
            partisan_remote_ref:target(Ref)
        ),
        ?assert(partisan:is_reference(Ref)),
        ?assert(partisan:is_local_reference(Ref, Local))
    end).


remote_name() ->
    in_each_format(fun(_) ->
        Ref = partisan_remote_ref:from_term(foo, ?OTHER),
        ?assert(partisan_remote_ref:is_type(Ref)),
        ?assert(partisan_remote_ref:is_name(Ref)),
        ?assertNot(partisan_remote_ref:is_local(Ref)),
        ?assert(partisan_remote_ref:is_local(Ref, ?OTHER)),
        ?assertNot(partisan_remote_ref:is_local_name(Ref)),
        ?assertNot(partisan_remote_ref:is_local_name(Ref, foo)),
        ?assertEqual(?OTHER, partisan_remote_ref:node(Ref)),
        ?assertEqual(<<"other@127.0.0.1">>, partisan_remote_ref:nodestring(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_term(Ref)),
        ?assertEqual({encoded_name, "foo"}, partisan_remote_ref:target(Ref))
    end).


pid_of_another_node() ->
    Pid = foreign_pid(?OTHER, 42, 7),
    in_each_format(fun(_) ->
        Ref = partisan_remote_ref:from_term(Pid),
        ?assertEqual(?OTHER, partisan_remote_ref:node(Ref)),
        ?assertNot(partisan_remote_ref:is_local(Ref)),
        ?assertNot(partisan_remote_ref:is_local_pid(Ref)),
        ?assertEqual({encoded_pid, "<0.42.7>"}, partisan_remote_ref:target(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_term(Ref))
    end).


foreign_reference() ->
    in_each_format(fun(_) ->
        ?assertError(badarg, partisan_remote_ref:from_term(make_ref(), ?OTHER))
    end).


shapes() ->
    Pid = self(),
    PidText = pid_to_list(Pid),
    "<" ++ Inner0 = PidText,
    Inner = lists:droplast(Inner0),
    ok = partisan_config:set(remote_ref_format, improper_list),
    ?assertEqual(
        [?NODE | list_to_binary("#Pid" ++ PidText)],
        partisan_remote_ref:from_term(Pid)
    ),
    ?assertEqual([?NODE | <<"#Namefoo">>], partisan_remote_ref:from_term(foo)),
    ok = partisan_config:set(remote_ref_format, tuple),
    ?assertEqual(
        {partisan_remote_ref, ?NODE, {encoded_pid, PidText}},
        partisan_remote_ref:from_term(Pid)
    ),
    ok = partisan_config:set(remote_ref_format, uri),
    ?assertEqual(
        list_to_binary("partisan:pid:test@127.0.0.1:" ++ Inner),
        partisan_remote_ref:from_term(Pid)
    ),
    ?assertEqual(
        <<"partisan:name:test@127.0.0.1:foo">>,
        partisan_remote_ref:from_term(foo)
    ).


remote_targets() ->
    Uri = <<"partisan:pid:other@127.0.0.1:0.800.0">>,
    ?assertError(badarg, partisan_remote_ref:to_term(Uri)),
    ?assertEqual({encoded_pid, "<0.800.0>"}, partisan_remote_ref:target(Uri)),
    ?assertEqual(?OTHER, partisan_remote_ref:node(Uri)),
    Tuple = {partisan_remote_ref, ?OTHER, {encoded_pid, "<0.800.0>"}},
    ?assertEqual({encoded_pid, "<0.800.0>"}, partisan_remote_ref:target(Tuple)).


delivery_targets() ->
    Pid = foreign_pid(?OTHER, 800, 0),
    in_each_format(fun(_) ->
        PidRef = partisan_remote_ref:from_term(Pid),
        ?assertEqual(<<"<0.800.0>">>, partisan_remote_ref:delivery_target(PidRef)),
        NameRef = partisan_remote_ref:from_term(foo, ?OTHER),
        ?assertEqual(foo, partisan_remote_ref:delivery_target(NameRef)),
        RefRef = partisan_remote_ref:from_term(make_ref()),
        ?assertError(badarg, partisan_remote_ref:delivery_target(RefRef))
    end).


unknown_node_creates_no_atom() ->
    NodeText = <<"never_seen_node_4f1c9e@10.9.8.7">>,
    Refs = [
        <<"partisan:pid:", NodeText/binary, ":0.1.2">>,
        <<"partisan:name:", NodeText/binary, ":foo">>,
        <<"partisan:ref:", NodeText/binary, ":0.1.2.3">>
    ],
    Before = erlang:system_info(atom_count),
    lists:foreach(
        fun(Ref) ->
            ?assert(partisan_remote_ref:is_type(Ref)),
            ?assertNot(partisan_remote_ref:is_local(Ref)),
            ?assertEqual(NodeText, partisan_remote_ref:nodestring(Ref)),
            ?assertError(badarg, partisan_remote_ref:node(Ref)),
            ?assertError(badarg, partisan:node(Ref)),
            ?assertError(badarg, partisan:forward_message(Ref, hello))
        end,
        Refs
    ),
    ?assertEqual(Before, erlang:system_info(atom_count)),
    ?assertError(badarg, binary_to_existing_atom(NodeText, utf8)).


unknown_name_creates_no_atom() ->
    Name = <<"never_registered_name_81d2aa">>,
    in_each_format(fun(_) ->
        Ref = local_name_ref(Name),
        Before = erlang:system_info(atom_count),
        ?assert(partisan_remote_ref:is_local_name(Ref)),
        ?assertError(badarg, partisan_remote_ref:to_term(Ref)),
        ?assertEqual(undefined, partisan:whereis(Ref)),
        ?assertEqual(ok, partisan:forward_message(Ref, hello)),
        ?assertEqual(Before, erlang:system_info(atom_count))
    end),
    ?assertError(badarg, binary_to_existing_atom(Name, utf8)).


identity() ->
    true = register(remote_ref_tests_identity, self()),
    try
        in_each_format(fun(_) ->
            A = partisan_remote_ref:from_term(self()),
            B = partisan_remote_ref:from_term(remote_ref_tests_identity),
            ?assert(partisan_remote_ref:is_identical(A, A)),
            ?assert(partisan_remote_ref:is_identical(A, B)),
            ?assert(partisan_remote_ref:is_identical(B, A)),
            ?assertNot(
                partisan_remote_ref:is_identical(A, partisan_remote_ref:from_term(bar))
            ),
            ?assert(partisan_remote_ref:is_local_pid(B, self()))
        end),
        Tuple = {partisan_remote_ref, ?NODE, {encoded_pid, pid_to_list(self())}},
        Improper = [?NODE | list_to_binary("#Pid" ++ pid_to_list(self()))],
        ?assert(partisan_remote_ref:is_identical(Tuple, Improper))
    after
        unregister(remote_ref_tests_identity)
    end.


is_name_2() ->
    in_each_format(fun(_) ->
        ?assert(partisan_remote_ref:is_name(partisan_remote_ref:from_term(foo), foo)),
        ?assertNot(partisan_remote_ref:is_name(partisan_remote_ref:from_term(foo), bar)),
        ?assertNot(partisan_remote_ref:is_name(partisan_remote_ref:from_term(self()), bar))
    end),
    ?assert(partisan_remote_ref:is_name({encoded_name, "foo"}, foo)).


uri_padding() ->
    ok = partisan_config:set(remote_ref_format, uri),
    ok = partisan_config:set(remote_ref_binary_padding, true),
    ?assert(partisan_config:get(remote_ref_uri_padding)),
    Ref = partisan_remote_ref:from_term(self()),
    ?assert(byte_size(Ref) > 64),
    ?assertEqual(self(), partisan_remote_ref:to_term(Ref)),
    ?assertEqual({encoded_pid, pid_to_list(self())}, partisan_remote_ref:target(Ref)),
    Name = partisan_remote_ref:from_term(foo),
    ?assert(byte_size(Name) > 64),
    ?assertEqual(foo, partisan_remote_ref:to_term(Name)),
    ?assert(partisan_remote_ref:is_local_name(Name, foo)).


not_a_reference() ->
    lists:foreach(
        fun(Term) ->
            ?assertNot(partisan_remote_ref:is_type(Term)),
            ?assertNot(partisan_remote_ref:is_pid(Term)),
            ?assertError(badarg, partisan_remote_ref:node(Term)),
            ?assertError(badarg, partisan_remote_ref:to_term(Term)),
            ?assertError(badarg, partisan_remote_ref:is_local(Term))
        end,
        [foo, <<"partisan:pid">>, <<"partisan:pid::0.1.2">>, [a | b], {a, b, c},
         {partisan_remote_ref, "node", {encoded_pid, "<0.1.2>"}}, 42]
    ),
    ?assertError(badarg, partisan_remote_ref:from_term("text")),
    ?assertError(badarg, partisan_remote_ref:to_term([?NODE | <<"#Pid<bad>">>])).


%% =============================================================================
%% HELPERS
%% =============================================================================


format_of([_ | Bin]) when is_binary(Bin) -> improper_list;
format_of({partisan_remote_ref, _, _}) -> tuple;
format_of(Bin) when is_binary(Bin) -> uri.


%% A pid of another node, as Distributed Erlang would decode it (NEW_PID_EXT).
foreign_pid(Node, Number, Serial) ->
    NodeBin = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(NodeBin)), NodeBin/binary,
                     Number:32, Serial:32, 1:32>>).


%% A name reference of this node for a name given as text (no atom made).
local_name_ref(Name) ->
    case partisan_config:get(remote_ref_format) of
        improper_list -> [?NODE | <<"#Name", Name/binary>>];
        tuple -> {partisan_remote_ref, ?NODE, {encoded_name, binary_to_list(Name)}};
        uri -> <<"partisan:name:test@127.0.0.1:", Name/binary>>
    end.
