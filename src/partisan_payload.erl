%% -----------------------------------------------------------------------------
%% @doc How a message becomes the payload of a frame: the external term format,
%% as `term_to_binary/2' makes it, except that large binaries stay where they
%% are.
%%
%% A message that is a large binary, or a small tuple holding one (directly or
%% in a small tuple inside it), is encoded as a list of binaries whose
%% concatenation is the external format of the message. The large binaries are
%% elements of that list as they are, so the engine writes them to the socket
%% from the sender's memory rather than from a copy made by the encoding. This
%% is what Distributed Erlang does for large binaries, and it halves the memory
%% traffic of a large message. Every other message, and every message on a
%% compressed channel, is a single `term_to_binary/2'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_payload).

-export([encode/2]).

-export_type([t/0]).

%% Binaries from this size are spliced in rather than encoded.
-define(SPLICE_MIN, 65536).
%% Tuples larger than this are encoded whole: looking through them costs every
%% message more than splicing saves the rare ones.
-define(MAX_ARITY, 8).
%% How deep in nested tuples large binaries are looked for.
-define(MAX_DEPTH, 2).

-define(VERSION, 131).
-define(SMALL_TUPLE_EXT, 104).
-define(BINARY_EXT, 109).

-type t() :: binary() | [binary()].



%% =============================================================================
%% API
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Encodes `Msg' with the `term_to_binary/2' options `Opts' (those of its
%% channel). Returns a binary, or a flat list of binaries whose concatenation
%% is the encoding; either decodes with `binary_to_term/1' to `Msg'.
%% @end
%% -----------------------------------------------------------------------------
-spec encode(Msg :: term(), Opts :: list()) -> t().

encode(Msg, []) when is_binary(Msg), byte_size(Msg) >= ?SPLICE_MIN ->
    [<<?VERSION, ?BINARY_EXT, (byte_size(Msg)):32>>, Msg];

encode(Msg, []) when tuple_size(Msg) =< ?MAX_ARITY ->
    case holds_large(Msg, tuple_size(Msg), ?MAX_DEPTH) of
        true ->
            [<<?VERSION>> | lists:reverse(parts(Msg, ?MAX_DEPTH, []))];
        false ->
            term_to_binary(Msg)
    end;

encode(Msg, Opts) ->
    term_to_binary(Msg, Opts).



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% True if element I or an earlier one of tuple T is a large binary, or (while
%% Depth allows) a small tuple that holds one.
holds_large(_, 0, _) ->
    false;

holds_large(T, I, Depth) ->
    case element(I, T) of
        B when is_binary(B), byte_size(B) >= ?SPLICE_MIN ->
            true;
        E when Depth > 1, tuple_size(E) =< ?MAX_ARITY ->
            holds_large(E, tuple_size(E), Depth - 1)
                orelse holds_large(T, I - 1, Depth);
        _ ->
            holds_large(T, I - 1, Depth)
    end.


%% Prepends the encoding of Term without the version byte to Acc, as binaries
%% in reverse order.
parts(B, _, Acc) when is_binary(B), byte_size(B) >= ?SPLICE_MIN ->
    [B, <<?BINARY_EXT, (byte_size(B)):32>> | Acc];

parts(T, Depth, Acc)
when Depth > 0, tuple_size(T) =< ?MAX_ARITY ->
    case holds_large(T, tuple_size(T), Depth) of
        true ->
            lists:foldl(
                fun(E, A) -> parts(E, Depth - 1, A) end,
                [<<?SMALL_TUPLE_EXT, (tuple_size(T))>> | Acc],
                tuple_to_list(T)
            );
        false ->
            [without_version(term_to_binary(T)) | Acc]
    end;

parts(Term, _, Acc) ->
    [without_version(term_to_binary(Term)) | Acc].


without_version(<<?VERSION, Rest/binary>>) ->
    Rest.
