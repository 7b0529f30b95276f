%% -----------------------------------------------------------------------------
%% @doc Partisan remote references: how a process identifier, a reference or a
%% registered name of one node is represented on another node.
%%
%% Distributed Erlang rewrites pids and references when they cross nodes;
%% Partisan does not use it, so it carries them as remote references, in one
%% of three formats chosen by the option `remote_ref_format':
%% <ul>
%% <li>`improper_list' (default): `[Node|<<"#Pid<0.N.S>">>]',
%% `[Node|<<"#Ref<0.A.B.C>">>]', `[Node|<<"#Name", Name/binary>>]';</li>
%% <li>`uri': `<<"partisan:pid:Node:0.N.S">>', `<<"partisan:ref:Node:0.A.B.C">>',
%% `<<"partisan:name:Node:Name">>', padded to more than 64 bytes when
%% `remote_ref_uri_padding' is `true' (so that it is stored off-heap);</li>
%% <li>`tuple': `{partisan_remote_ref, Node, {encoded_pid, "<0.N.S>"}}', with
%% `encoded_ref' and `encoded_name' for the other kinds.</li>
%% </ul>
%% Every function accepts all three formats, whatever the option says.
%%
%% A URI carries its node as text. No function of this module turns that text
%% into a new atom: a node this VM has never heard of cannot be a member, so
%% {@link node/1} fails with `badarg' for it.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_remote_ref).

-define(SEP, $:).
%% Partisan's padding: a separator, then this character up to the size.
-define(PAD, 25).
-define(MIN_OFF_HEAP_SIZE, 65).

-type t() :: p() | r() | n().
-type p() :: improper_ref() | tuple_ref(encoded_pid()) | uri().
-type r() :: improper_ref() | tuple_ref(encoded_ref()) | uri().
-type n() :: improper_ref() | tuple_ref(encoded_name()) | uri().
-type improper_ref() :: nonempty_improper_list(node(), binary()).
-type uri() :: <<_:64, _:_*8>>.
-type tuple_ref(T) :: {partisan_remote_ref, node(), T}.
-type target() :: encoded_pid() | encoded_ref() | encoded_name().
-type encoded_pid() :: {encoded_pid, string()}.
-type encoded_ref() :: {encoded_ref, string()}.
-type encoded_name() :: {encoded_name, string()}.
-type format() :: improper_list | tuple | uri.
-type kind() :: pid | ref | name.
%% A node as found in a reference: an atom, or the text of a URI.
-type node_id() :: node() | binary().

-export_type([t/0]).
-export_type([p/0]).
-export_type([r/0]).
-export_type([n/0]).
-export_type([format/0]).
-export_type([target/0]).
-export_type([encoded_pid/0]).
-export_type([encoded_ref/0]).
-export_type([encoded_name/0]).

-export([delivery_target/1]).
-export([from_term/1]).
-export([from_term/2]).
-export([is_identical/2]).
-export([is_local/1]).
-export([is_local/2]).
-export([is_local_name/1]).
-export([is_local_name/2]).
-export([is_local_pid/1]).
-export([is_local_pid/2]).
-export([is_local_reference/1]).
-export([is_local_reference/2]).
-export([is_name/1]).
-export([is_name/2]).
-export([is_pid/1]).
-export([is_reference/1]).
-export([is_type/1]).
-export([node/1]).
-export([nodestring/1]).
-export([target/1]).
-export([to_name/1]).
-export([to_pid/1]).
-export([to_pid_or_name/1]).
-export([to_reference/1]).
-export([to_term/1]).

-compile({no_auto_import, [is_pid/1, is_reference/1, node/1]}).
-dialyzer(no_improper_lists).



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Returns the remote reference of a pid, a reference, a registered name
%% of this node, or `{Name, Node}'. A pid or reference belongs to the node it
%% comes from (this node unless it came through Distributed Erlang). Fails with
%% `badarg' for a reference of another node.
%% @end
%% -----------------------------------------------------------------------------
-spec from_term(pid() | reference() | atom() | {atom(), node()}) ->
    t() | no_return().

from_term({Name, Node}) ->
    from_term(Name, Node);

from_term(Term) when erlang:is_pid(Term); erlang:is_reference(Term) ->
    encode(Term, home_node(Term));

from_term(Name) when is_atom(Name) ->
    encode(Name, partisan:node());

from_term(Term) ->
    erlang:error(badarg, [Term]).


%% -----------------------------------------------------------------------------
%% @doc Returns the remote reference of `Term' located at `Node'. The name is
%% not checked to be registered. A reference can only be encoded for this node.
%% @end
%% -----------------------------------------------------------------------------
-spec from_term(pid() | reference() | atom(), node()) -> t() | no_return().

from_term(Term, Node)
when is_atom(Node), (erlang:is_pid(Term) orelse is_atom(Term)) ->
    encode(Term, Node);

from_term(Term, Node) when is_atom(Node), erlang:is_reference(Term) ->
    Node =:= partisan:node() orelse erlang:error(badarg, [Term, Node]),
    encode(Term, Node);

from_term(Term, Node) ->
    erlang:error(badarg, [Term, Node]).


%% -----------------------------------------------------------------------------
%% @doc Returns the local pid, reference or registered name `Ref' stands for.
%% Fails with `badarg' if `Ref' is not a remote reference of this node (or
%% names an atom that does not exist).
%% @end
%% -----------------------------------------------------------------------------
-spec to_term(t()) -> pid() | reference() | atom() | no_return().

to_term(Ref) ->
    case parse(Ref) of
        {Kind, Node, Id} ->
            is_this_node(Node) orelse erlang:error(badarg, [Ref]),
            decode(Kind, Id, Ref);
        error ->
            erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Like {@link to_term/1} but fails with `badarg' unless the result is a
%% pid.
%% @end
%% -----------------------------------------------------------------------------
-spec to_pid(p()) -> pid() | no_return().

to_pid(Ref) ->
    case to_term(Ref) of
        Pid when erlang:is_pid(Pid) -> Pid;
        _ -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Like {@link to_term/1} but fails with `badarg' unless the result is a
%% registered name.
%% @end
%% -----------------------------------------------------------------------------
-spec to_name(n()) -> atom() | no_return().

to_name(Ref) ->
    case to_term(Ref) of
        Name when is_atom(Name) -> Name;
        _ -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Like {@link to_term/1} but fails with `badarg' unless the result is a
%% pid or a registered name.
%% @end
%% -----------------------------------------------------------------------------
-spec to_pid_or_name(p() | n()) -> pid() | atom() | no_return().

to_pid_or_name(Ref) ->
    case to_term(Ref) of
        Dest when erlang:is_pid(Dest); is_atom(Dest) -> Dest;
        _ -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Like {@link to_term/1} but fails with `badarg' unless the result is a
%% reference.
%% @end
%% -----------------------------------------------------------------------------
-spec to_reference(r()) -> reference() | no_return().

to_reference(Ref) ->
    case to_term(Ref) of
        Reference when erlang:is_reference(Reference) -> Reference;
        _ -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns what `Ref' designates on its node, as text:
%% `{encoded_pid, "<0.N.S>"}', `{encoded_ref, "#Ref<...>"}' or
%% `{encoded_name, "name"}'. Works for any node.
%% @end
%% -----------------------------------------------------------------------------
-spec target(t()) -> target() | no_return().

target(Ref) ->
    case parse(Ref) of
        {pid, _, Id} -> {encoded_pid, binary_to_list(Id)};
        {ref, _, Id} -> {encoded_ref, binary_to_list(Id)};
        {name, _, Id} -> {encoded_name, binary_to_list(Id)};
        error -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns the destination of a pid or name reference in the form the
%% transport takes: the pid text `<<"<0.N.S>">>' or the name as an atom.
%%
%% The name atom is created if needed: the caller chose to send to it, so it
%% is local input, not peer input. Fails with `badarg' for a reference
%% (`reference()' kind) or a malformed term.
%% @end
%% -----------------------------------------------------------------------------
-spec delivery_target(p() | n()) -> binary() | atom() | no_return().

delivery_target([Node|<<"#Pid", Pid/binary>>]) when is_atom(Node) ->
    Pid;

delivery_target([Node|<<"#Name", Name/binary>>]) when is_atom(Node) ->
    binary_to_atom(Name, utf8);

delivery_target(Ref) ->
    case parse(Ref) of
        {pid, _, Pid} ->
            Pid;
        {name, _, Name} ->
            binary_to_atom(Name, utf8);
        _ ->
            erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns the node of `Ref'. Fails with `badarg' if `Ref' is not a
%% remote reference, or if it is a URI whose node is not an existing atom.
%% @end
%% -----------------------------------------------------------------------------
-spec node(t()) -> node() | no_return().

node([Node|Bin]) when is_atom(Node), is_binary(Bin) ->
    Node;

node(Ref) ->
    case parse(Ref) of
        {_, Node, _} when is_atom(Node) ->
            Node;
        {_, Nodestring, _} ->
            existing_node(Nodestring, Ref);
        error ->
            erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns the node of `Ref' as a binary string.
%% @end
%% -----------------------------------------------------------------------------
-spec nodestring(t()) -> binary() | no_return().

nodestring(Ref) ->
    case parse(Ref) of
        {_, Node, _} when is_atom(Node) ->
            atom_to_binary(Node, utf8);
        {_, Nodestring, _} ->
            Nodestring;
        error ->
            erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' belongs to this node. Fails with `badarg' if it
%% is not a remote reference.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local(t()) -> boolean() | no_return().

is_local([Node|Bin]) when is_atom(Node), is_binary(Bin) ->
    Node =:= partisan:node();

is_local(Ref) ->
    case parse(Ref) of
        {_, Node, _} -> is_this_node(Node);
        error -> erlang:error(badarg, [Ref])
    end.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' belongs to node `Node'. Fails with `badarg' if it
%% is not a remote reference.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local(t(), node()) -> boolean() | no_return().

is_local(Ref, Node) when is_atom(Node) ->
    case parse(Ref) of
        {_, RefNode, _} -> is_same_node(RefNode, Node);
        error -> erlang:error(badarg, [Ref, Node])
    end;

is_local(Ref, Node) ->
    erlang:error(badarg, [Ref, Node]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' is a pid reference of this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_pid(term()) -> boolean().

is_local_pid(Ref) ->
    is_local_kind(pid, Ref).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' designates the local process `Pid': a pid
%% reference of it, or a name reference of this node under which `Pid' is
%% registered.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_pid(term(), pid()) -> boolean().

is_local_pid(Ref, Pid) when erlang:is_pid(Pid) ->
    case parse(Ref) of
        {pid, Node, Id} ->
            is_this_node(Node) andalso Id =:= pid_text(Pid);
        {name, Node, Id} ->
            is_this_node(Node) andalso is_registered_as(Id, Pid);
        _ ->
            false
    end;

is_local_pid(Ref, Pid) ->
    erlang:error(badarg, [Ref, Pid]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' is a reference (`reference()' kind) of this
%% node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_reference(term()) -> boolean().

is_local_reference(Ref) ->
    is_local_kind(ref, Ref).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' stands for the local reference `LocalRef'.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_reference(term(), reference()) -> boolean().

is_local_reference(Ref, LocalRef) when erlang:is_reference(LocalRef) ->
    case parse(Ref) of
        {ref, Node, Id} ->
            is_this_node(Node)
                andalso Id =:= list_to_binary(ref_to_list(LocalRef));
        _ ->
            false
    end;

is_local_reference(Ref, LocalRef) ->
    erlang:error(badarg, [Ref, LocalRef]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' is a registered name reference of this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_name(term()) -> boolean().

is_local_name(Ref) ->
    is_local_kind(name, Ref).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Ref' is the reference of name `Name' on this node.
%% @end
%% -----------------------------------------------------------------------------
-spec is_local_name(term(), atom()) -> boolean().

is_local_name(Ref, Name) when is_atom(Name) ->
    case parse(Ref) of
        {name, Node, Id} ->
            is_this_node(Node) andalso Id =:= atom_to_binary(Name, utf8);
        _ ->
            false
    end;

is_local_name(Ref, Name) ->
    erlang:error(badarg, [Ref, Name]).


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Term' is a remote reference of any kind.
%% @end
%% -----------------------------------------------------------------------------
-spec is_type(term()) -> boolean().

is_type(Term) ->
    parse(Term) =/= error.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Term' is a pid reference (or an `encoded_pid'
%% target).
%% @end
%% -----------------------------------------------------------------------------
-spec is_pid(term()) -> boolean().

is_pid(Term) ->
    kind(Term) =:= pid.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Term' is a reference of the `reference()' kind (or an
%% `encoded_ref' target).
%% @end
%% -----------------------------------------------------------------------------
-spec is_reference(term()) -> boolean().

is_reference(Term) ->
    kind(Term) =:= ref.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Term' is a registered name reference (or an
%% `encoded_name' target).
%% @end
%% -----------------------------------------------------------------------------
-spec is_name(term()) -> boolean().

is_name(Term) ->
    kind(Term) =:= name.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `Term' is a reference of the registered name `Name'
%% (on any node).
%% @end
%% -----------------------------------------------------------------------------
-spec is_name(term(), atom()) -> boolean().

is_name({encoded_name, Text}, Name) when is_atom(Name) ->
    Text =:= atom_to_list(Name);

is_name(Term, Name) when is_atom(Name) ->
    case parse(Term) of
        {name, _, Id} -> Id =:= atom_to_binary(Name, utf8);
        _ -> false
    end;

is_name(_, _) ->
    false.


%% -----------------------------------------------------------------------------
%% @doc Returns whether `A' and `B' designate the same thing: equal terms,
%% the same target on the same node in any two formats, or (on this node) a
%% pid and a name under which that pid is registered.
%% @end
%% -----------------------------------------------------------------------------
-spec is_identical(t(), t()) -> boolean().

is_identical(A, A) ->
    true;

is_identical(A, B) ->
    case {parse(A), parse(B)} of
        {{_, NodeA, _} = PA, {_, NodeB, _} = PB} ->
            nodestring_of(NodeA) =:= nodestring_of(NodeB)
                andalso is_same_target(PA, PB);
        _ ->
            false
    end.



%% =============================================================================
%% PRIVATE: encoding
%% =============================================================================



%% The node a pid or reference comes from; local ones carry `nonode@nohost'
%% when Distributed Erlang is off.
home_node(Term) ->
    case erlang:node(Term) of
        nonode@nohost -> partisan:node();
        Node -> Node
    end.


encode(Term, Node) ->
    encode(Term, Node, partisan_config:get(remote_ref_format, improper_list)).


encode(Pid, Node, Format) when erlang:is_pid(Pid) ->
    build(pid, Node, pid_text(Pid), Format);

encode(Ref, Node, Format) when erlang:is_reference(Ref) ->
    is_local_term(Ref) orelse erlang:error(badarg, [Ref, Node]),
    build(ref, Node, list_to_binary(ref_to_list(Ref)), Format);

encode(Name, Node, Format) when is_atom(Name) ->
    build(name, Node, atom_to_binary(Name, utf8), Format).


%% Id is the canonical text: <<"<0.N.S>">>, <<"#Ref<0.A.B.C>">> or the name.
build(pid, Node, Id, improper_list) -> [Node|<<"#Pid", Id/binary>>];
build(ref, Node, Id, improper_list) -> [Node|Id];
build(name, Node, Id, improper_list) -> [Node|<<"#Name", Id/binary>>];
build(Kind, Node, Id, tuple) ->
    {partisan_remote_ref, Node, {tuple_tag(Kind), binary_to_list(Id)}};
build(Kind, Node, Id, uri) ->
    Nodestring = atom_to_binary(Node, utf8),
    maybe_pad(<<"partisan:", (uri_kind(Kind))/binary, ?SEP,
                Nodestring/binary, ?SEP, (uri_id(Kind, Id))/binary>>).


tuple_tag(pid) -> encoded_pid;
tuple_tag(ref) -> encoded_ref;
tuple_tag(name) -> encoded_name.


uri_kind(pid) -> <<"pid">>;
uri_kind(ref) -> <<"ref">>;
uri_kind(name) -> <<"name">>.


%% URIs carry pids and references without their decoration.
uri_id(pid, <<"<", Rest/binary>>) -> strip_closing(Rest);
uri_id(ref, <<"#Ref<", Rest/binary>>) -> strip_closing(Rest);
uri_id(name, Name) -> Name.


strip_closing(Bin) ->
    binary:part(Bin, 0, byte_size(Bin) - 1).


maybe_pad(Uri) when byte_size(Uri) < ?MIN_OFF_HEAP_SIZE ->
    case partisan_config:get(remote_ref_uri_padding, false) of
        true ->
            PadSize = ?MIN_OFF_HEAP_SIZE - byte_size(Uri) - 1,
            <<Uri/binary, ?SEP, (binary:copy(<<?PAD>>, max(PadSize, 1)))/binary>>;
        false ->
            Uri
    end;

maybe_pad(Uri) ->
    Uri.


%% A pid's text as on its own node: "<0.N.S>". Pids that came through
%% Distributed Erlang print a local node index instead of 0.
pid_text(Pid) ->
    [$< | Rest] = pid_to_list(Pid),
    [_Index, Number, Serial] = string:split(Rest, ".", all),
    iolist_to_binary(["<0.", Number, ".", Serial]).


is_local_term(Term) ->
    Node = erlang:node(Term),
    Node =:= erlang:node() orelse Node =:= nonode@nohost.



%% =============================================================================
%% PRIVATE: decoding
%% =============================================================================



%% Node is an atom, or the node text of a URI; Id is the canonical text of the
%% target (see build/4).
-spec parse(term()) -> {kind(), node_id(), binary()} | error.

parse([Node|<<"#Pid", Id/binary>>]) when is_atom(Node) ->
    {pid, Node, Id};

parse([Node|<<"#Ref", _/binary>> = Id]) when is_atom(Node) ->
    {ref, Node, Id};

parse([Node|<<"#Name", Id/binary>>]) when is_atom(Node) ->
    {name, Node, Id};

parse(<<"partisan:pid:", Rest/binary>>) ->
    parse_uri(pid, Rest);

parse(<<"partisan:ref:", Rest/binary>>) ->
    parse_uri(ref, Rest);

parse(<<"partisan:name:", Rest/binary>>) ->
    parse_uri(name, Rest);

parse({partisan_remote_ref, Node, {Tag, Text}})
when is_atom(Node), is_list(Text) ->
    case tuple_kind(Tag) of
        error ->
            error;
        Kind ->
            try {Kind, Node, unicode:characters_to_binary(Text)} of
                {_, _, Id} = Parsed when is_binary(Id) -> Parsed;
                _ -> error
            catch
                error:badarg -> error
            end
    end;

parse(_) ->
    error.


tuple_kind(encoded_pid) -> pid;
tuple_kind(encoded_ref) -> ref;
tuple_kind(encoded_name) -> name;
tuple_kind(_) -> error.


parse_uri(Kind, Rest) ->
    case binary:split(Rest, <<?SEP>>) of
        [Nodestring, Tail] when Nodestring =/= <<>> ->
            {Kind, Nodestring, uri_target(Kind, unpad(Tail))};
        _ ->
            error
    end.


unpad(Tail) ->
    [Unpadded | _] = binary:split(Tail, <<?SEP, ?PAD>>),
    Unpadded.


uri_target(pid, Id) -> <<"<", Id/binary, ">">>;
uri_target(ref, Id) -> <<"#Ref<", Id/binary, ">">>;
uri_target(name, Id) -> Id.


%% Like parse/1 but also accepts a bare target ({encoded_pid, _}, ...).
kind({Tag, Text}) when is_list(Text) ->
    case tuple_kind(Tag) of
        error -> undefined;
        Kind -> Kind
    end;

kind(Term) ->
    case parse(Term) of
        {Kind, _, _} -> Kind;
        error -> undefined
    end.


%% Only called for this node's references, so atoms are never created.
decode(pid, <<"<0.", _/binary>> = Id, _) ->
    list_to_pid(binary_to_list(Id));

decode(ref, Id, _) ->
    list_to_ref(binary_to_list(Id));

decode(name, Id, _) ->
    binary_to_existing_atom(Id, utf8);

decode(_, _, Ref) ->
    erlang:error(badarg, [Ref]).


-spec existing_node(binary(), term()) -> node() | no_return().

existing_node(Nodestring, Ref) ->
    try
        binary_to_existing_atom(Nodestring, utf8)
    catch
        error:badarg ->
            erlang:error(badarg, [Ref])
    end.


is_local_kind(Kind, Ref) ->
    case parse(Ref) of
        {Kind, Node, _} -> is_this_node(Node);
        _ -> false
    end.


-spec is_this_node(node_id()) -> boolean().

is_this_node(Node) when is_atom(Node) ->
    Node =:= partisan:node();

is_this_node(Nodestring) ->
    Nodestring =:= partisan:nodestring().


is_same_node(Node, Node) ->
    true;

is_same_node(Nodestring, Node) when is_binary(Nodestring) ->
    Nodestring =:= atom_to_binary(Node, utf8);

is_same_node(_, _) ->
    false.


nodestring_of(Node) when is_atom(Node) ->
    atom_to_binary(Node, utf8);

nodestring_of(Nodestring) ->
    Nodestring.


is_same_target({Kind, _, Id}, {Kind, _, Id}) ->
    true;

is_same_target({pid, Node, Pid}, {name, _, Name}) ->
    is_this_node(Node) andalso is_registered_pid_text(Name, Pid);

is_same_target({name, _, _} = A, {pid, _, _} = B) ->
    is_same_target(B, A);

is_same_target(_, _) ->
    false.


is_registered_pid_text(Name, PidText) ->
    case registered_pid(Name) of
        undefined -> false;
        Pid -> pid_text(Pid) =:= PidText
    end.


is_registered_as(Name, Pid) ->
    registered_pid(Name) =:= Pid.


%% The pid registered under the name with text Name, without creating atoms.
registered_pid(Name) ->
    try binary_to_existing_atom(Name, utf8) of
        Atom ->
            case erlang:whereis(Atom) of
                Pid when erlang:is_pid(Pid) -> Pid;
                _ -> undefined
            end
    catch
        error:badarg ->
            undefined
    end.
