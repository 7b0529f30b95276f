%% -----------------------------------------------------------------------------
%% @doc Hostile peers against one real node.
%%
%% The target is a partisan node (OTP `peer', no Distributed Erlang) with a
%% `handshake_limit' of 32 and a known `auth_secret'; a legitimate node with
%% the same secret is joined to it. The attackers are raw TCP clients written
%% here (`gen_tcp', binary, passive) that speak, or fail to speak, the wire
%% protocol of docs/wire.md: junk, wrong preambles, absurd frame lengths,
%% strangers without the secret or with another one, replayed and reflected
%% proofs, a stranger claiming the legitimate node's name, gossip floods with
%% forged removals, a flood of hellos with fresh names, slowloris and half-open
%% handshakes beyond the limit, and a peer that does know the secret and then
%% breaks the protocol.
%%
%% After every attack the suite checks, on the target: that it still serves
%% the legitimate node (an echo round trip both ways over partisan), that its
%% atom count did not move, that `erlang:memory(total)' and the OS RSS stayed
%% within ?MEMORY_BOUND, that membership and the connected nodes are those of
%% before (on both nodes), that partisan's processes are the same ones (none
%% crashed and was restarted), that nothing a stranger sent was delivered, and
%% that the transport's counters moved exactly as the attack predicts (every
%% counter in ?WATCHED that the case does not name must not move at all).
%% Every case logs its measured deltas with `ct:pal'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_hostile_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([init_per_suite/1, end_per_suite/1]).
-export([init_per_testcase/2, end_per_testcase/2]).
-export([junk_and_bad_preambles/1]).
-export([bad_frames_after_the_preamble/1]).
-export([stranger_without_the_secret/1]).
-export([wrong_secret/1]).
-export([replayed_and_reflected_proofs/1]).
-export([stranger_claims_a_members_name/1]).
-export([gossip_flood_and_forged_removals/1]).
-export([hello_name_flood/1]).
-export([slowloris/1]).
-export([half_open_handshakes_beyond_the_limit/1]).
-export([member_with_the_secret_breaks_the_protocol/1]).

-import(partisan_test_nodes, [start/4, name/1, call/4]).

-define(AGENT, partisan_drop_in_agent).
-define(PROBE, partisan_hostile_probe).
-define(IP, {127, 0, 0, 1}).
-define(SECRET, <<"partisan hostile suite secret">>).
-define(OTHER_SECRET, <<"partisan hostile suite secreT">>).
%% The target's handshake_limit.
-define(LIMIT, 32).
-define(MB, (1024 * 1024)).
-define(MEMORY_BOUND, (50 * ?MB)).
%% The node's handshake timeout (conn.rs), and how late we accept its close
%% on this busy machine.
-define(HANDSHAKE_TIMEOUT, 10000).
-define(TIMEOUT_SLACK, 5000).
%% A refusal that does not wait for the handshake timeout comes well before.
-define(PROMPT, 5000).
-define(MAX_U64, 16#FFFFFFFFFFFFFFFF).
-define(CONTROL, <<"partisan_membership">>).

-define(DATA, 1).
-define(PING, 2).
-define(GOSSIP, 4).
-define(HELLO, 16).
-define(HELLO_ACK, 17).
-define(AUTH_INIT, 18).
-define(AUTH_CHALLENGE, 19).
-define(AUTH_RESPONSE, 20).

%% Counters that say what the node refused and what reached it. A case names
%% the ones it expects to move; all the others must not move.
-define(WATCHED, [
    auth_failures, handshake_failures, handshakes_over_limit, protocol_errors,
    connections_opened, connections_closed, received, dropped_unknown_dest,
    dropped_decode, dropped_atoms, dropped_stale_pid, dropped_unknown_broadcast,
    atoms_created, refused_members, refused_duplicate, refused_unknown_channel,
    refused_removed, refused_other, ping_timeouts, closed_protocol_error
]).


suite() ->
    [{timetrap, {minutes, 3}}].


all() ->
    [
        junk_and_bad_preambles,
        bad_frames_after_the_preamble,
        stranger_without_the_secret,
        wrong_secret,
        replayed_and_reflected_proofs,
        stranger_claims_a_members_name,
        gossip_flood_and_forged_removals,
        hello_name_flood,
        slowloris,
        half_open_handshakes_beyond_the_limit,
        member_with_the_secret_breaks_the_protocol
    ].


init_per_suite(Config0) ->
    ok = partisan_ct_support:init_dist(),
    Config1 = [{group, hostile} | Config0],
    Target = start(stdio, "target",
                   #{auth_secret => ?SECRET, handshake_limit => ?LIMIT}, Config1),
    Legit = try
        start(stdio, "legit", #{auth_secret => ?SECRET}, Config1)
    catch
        C:R:S ->
            partisan_test_nodes:stop(Target),
            erlang:raise(C, R, S)
    end,
    Config = [{nodes, [Target, Legit]}, {target, Target}, {legit, Legit} | Config1],
    Spec = call(Target, partisan, node_spec, []),
    #{listen_addrs := [#{ip := ?IP, port := Port} | _]} = Spec,
    ok = call(Legit, ?AGENT, join, [Spec]),
    {ok, _} = call(Target, ?AGENT, wait_up, [name(Legit), 20000]),
    {ok, _} = call(Legit, ?AGENT, wait_up, [name(Target), 20000]),
    partisan_ct_support:wait_until(
        fully_connected,
        fun() ->
            call(Target, partisan, is_fully_connected, [name(Legit)])
                andalso call(Legit, partisan, is_fully_connected, [name(Target)])
        end,
        200, 100
    ),
    _ = call(Target, ?PROBE, start_sink, []),
    ok = call(Target, ?AGENT, capture_logs, []),
    ok = call(Target, ?PROBE, warm, []),
    ok = round_trip(Config),
    %% The first warning the target logs (that of the first failed
    %% authentication) loads the log formatter's modules (io_lib_pretty,
    %% io_lib_format, calendar: about 340 atoms, once). One stranger before
    %% any baseline, so that the cases measure the attacks and not that.
    stranger_gets_a_challenge([{port, Port} | Config]),
    partisan_ct_support:wait_until(
        warm_up_logged,
        fun() -> call(Target, ?PROBE, logged_auth_failure, []) end,
        100, 100
    ),
    ct:pal("target ~p listens on 127.0.0.1:~p; legitimate peer ~p",
           [name(Target), Port, name(Legit)]),
    [{port, Port} | Config].


end_per_suite(Config) ->
    lists:foreach(fun partisan_test_nodes:stop/1, ?config(nodes, Config)),
    ok.


init_per_testcase(Case, Config) ->
    put(tc, Case),
    Config.


end_per_testcase(_Case, _Config) ->
    ok.



%% =============================================================================
%% CASES
%% =============================================================================



%% Junk where the preamble should be: the node answers with its own preamble
%% (so a dialer of another version learns why) and closes at once.
junk_and_bad_preambles(Config) ->
    Before = snapshot(Config),
    Attempts = [
        {random_junk, crypto:strong_rand_bytes(4096)},
        {http_request, <<"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n">>},
        {tls_client_hello, <<22, 3, 1, 0, 64, 1, 0, 0, 60, 3, 3,
                             (crypto:strong_rand_bytes(58))/binary>>},
        {wrong_magic, <<"PTSX", 3>>},
        {lower_case_magic, <<"ptsn", 3>>},
        {older_version, <<"PTSN", 2>>},
        {newer_version, <<"PTSN", 4>>},
        {version_0, <<"PTSN", 0>>},
        {version_255, <<"PTSN", 255>>},
        {older_version_then_auth_init, [<<"PTSN", 2>>, auth_init(nonce())]},
        {huge_length_instead_of_preamble, <<16#FFFFFFFF:32, ?AUTH_INIT>>},
        {zero_length_instead_of_preamble, <<0:32, ?AUTH_INIT>>},
        {all_zeros, <<0:(8 * 64)>>},
        {all_ones, binary:copy(<<255>>, 64)}
    ],
    lists:foreach(
        fun({What, Bytes}) ->
            S = connect(Config),
            ok = send(S, Bytes),
            %% A close with unread bytes is a reset, which may discard the
            %% preamble before we read it: only exact 5-byte attempts are
            %% sure to get it.
            Allowed = case iolist_size(Bytes) of
                5 -> [preamble()];
                _ -> [preamble(), <<>>]
            end,
            expect_closed(What, S, Allowed, ?PROMPT)
        end,
        Attempts
    ),
    %% A preamble cut short, then the end of the stream: closed without a byte.
    S = connect(Config),
    ok = send(S, <<"PTS">>),
    ok = gen_tcp:shutdown(S, write),
    expect_closed(short_preamble, S, [<<>>], ?PROMPT),
    verify(Config, Before, #{handshake_failures => length(Attempts) + 1}).


%% A valid preamble, then frames the handshake cannot take: absurd lengths
%% (refused on the header, not after waiting for the body), empty frames,
%% unknown or out-of-turn kinds, authentication frames of the wrong size;
%% then the same after a valid AuthInit. Each closes at once.
bad_frames_after_the_preamble(Config) ->
    Before = snapshot(Config),
    First = [
        {huge_length, <<16#FFFFFFFF:32, ?AUTH_INIT>>},
        {huge_length_header_only, <<16#FFFFFFFF:32>>},
        {max_frame_size_plus_one, <<(64 * ?MB + 1):32, ?AUTH_INIT>>},
        {auth_frame_limit_plus_one, <<129:32, ?AUTH_INIT, 0:(8 * 128)>>},
        {zero_length, <<0:32>>},
        {zero_length_then_auth_init, [<<0:32>>, auth_init(nonce())]},
        {unknown_kind, frame(99, nonce())},
        {kind_0, frame(0, <<>>)},
        {data_first, data(<<"application_controller">>,
                          {'$gen_call', {hostile_sink, 1}, which_applications})},
        {hello_first, hello(fresh_name(), 1)},
        {ping_first, frame(?PING, <<1:64>>)},
        {auth_response_first, auth_response(nonce())},
        {auth_init_short, frame(?AUTH_INIT, crypto:strong_rand_bytes(31))},
        {auth_init_long, frame(?AUTH_INIT, crypto:strong_rand_bytes(33))}
    ],
    lists:foreach(
        fun({What, Bytes}) ->
            S = connect(Config),
            ok = send(S, [preamble(), Bytes]),
            expect_closed(What, S, [preamble(), <<>>], ?PROMPT)
        end,
        First
    ),
    AfterInit = [
        {huge_length, <<16#FFFFFFFF:32, ?AUTH_RESPONSE>>},
        {huge_length_header_only, <<16#FFFFFFFF:32>>},
        {zero_length, <<0:32>>},
        {auth_frame_limit_plus_one, <<129:32, ?AUTH_RESPONSE, 0:(8 * 128)>>},
        {auth_response_short, frame(?AUTH_RESPONSE, crypto:strong_rand_bytes(31))},
        {auth_response_long, frame(?AUTH_RESPONSE, crypto:strong_rand_bytes(33))},
        {second_auth_init, auth_init(nonce())},
        {unknown_kind, frame(200, <<>>)}
    ],
    lists:foreach(
        fun({What, Bytes}) ->
            #{socket := S} = challenge(Config),
            ok = send(S, Bytes),
            expect_closed({after_auth_init, What}, S, [<<>>], ?PROMPT)
        end,
        AfterInit
    ),
    verify(Config, Before,
           #{handshake_failures => length(First) + length(AfterInit)}).


%% A stranger gets the node's nonce and proof, then tries to go on without
%% proving the secret: a Hello, a '$gen_call' to application_controller (whose
%% reply would reach the sink), a message to the sink, a call that would set a
%% kernel environment key, gossip. Then the same behind a made-up proof.
stranger_without_the_secret(Config) ->
    Before = snapshot(Config),
    Name = fresh_name(),
    Attacks = [
        {hello, hello(Name, 1)},
        {gen_call_to_application_controller, gen_call_which_applications()},
        {set_env_call, gen_call_set_env()},
        {message_to_the_sink, data(<<"hostile_sink">>, {hostile_suite_mark, <<"stranger">>})},
        {gossip, gossip([{Name, 1, false, ?config(port, Config)}])}
    ],
    lists:foreach(
        fun({What, Bytes}) ->
            #{socket := S} = challenge(Config),
            ok = send(S, Bytes),
            expect_closed({instead_of_a_proof, What}, S, [<<>>], ?PROMPT)
        end,
        Attacks
    ),
    Everything = [Bytes || {_, Bytes} <- Attacks],
    lists:foreach(
        fun({What, Proof}) ->
            #{socket := S} = challenge(Config),
            ok = send(S, [auth_response(Proof) | Everything]),
            expect_closed({behind_a_made_up_proof, What}, S, [<<>>], ?PROMPT)
        end,
        [{random, nonce()}, {zeros, <<0:256>>}]
    ),
    verify(Config, Before, #{handshake_failures => length(Attacks), auth_failures => 2},
           #{never_atoms => [Name]}).


%% A dialer with another secret: it finds that the node's proof does not
%% verify under its secret (a real dialer would stop there); if it answers
%% anyway with a proof under its secret, the node closes without a byte and
%% never reads its Hello.
wrong_secret(Config) ->
    Before = snapshot(Config),
    Names = [fresh_name() || _ <- [1, 2, 3]],
    Secrets = [
        {one_letter_off, ?OTHER_SECRET},
        {empty, <<>>},
        {cookie_like, <<"NOTTHECOOKIEATALL">>}
    ],
    lists:foreach(
        fun({{What, Secret}, Name}) ->
            #{socket := S, nd := Nd, na := Na, pa := Pa} = challenge(Config),
            %% The node proves the suite's secret, not the attacker's.
            ?assertEqual(acceptor_proof(?SECRET, Nd, Na), Pa),
            ?assertNotEqual(acceptor_proof(Secret, Nd, Na), Pa),
            ok = send(S, [auth_response(dialer_proof(Secret, Na, Nd)), hello(Name, 1)]),
            expect_closed({wrong_secret, What}, S, [<<>>], ?PROMPT)
        end,
        lists:zip(Secrets, Names)
    ),
    verify(Config, Before, #{auth_failures => length(Secrets)}, #{never_atoms => Names}).


%% Proofs that were right once, or for the other side: a dialer's transcript
%% (proof and Hello, computed with the secret for the node's first nonce)
%% replayed on a second connection with the same dialer nonce; the node's own
%% proof sent back as the dialer's; the acceptor's label under the right
%% secret; the right label with the nonces swapped.
replayed_and_reflected_proofs(Config) ->
    Before = snapshot(Config),
    Name = fresh_name(),
    Nd = nonce(),
    #{socket := S1, na := Na1} = challenge(Config, Nd),
    Transcript = [auth_response(dialer_proof(?SECRET, Na1, Nd)), hello(Name, 1)],
    %% Never sent on the first connection, which ends here unfinished.
    ok = gen_tcp:close(S1),
    #{socket := S2, na := Na2} = challenge(Config, Nd),
    ?assertNotEqual(Na1, Na2),
    ok = send(S2, Transcript),
    expect_closed(replayed_transcript, S2, [<<>>], ?PROMPT),
    #{socket := S3, pa := Pa3} = challenge(Config),
    ok = send(S3, [auth_response(Pa3), hello(Name, 1)]),
    expect_closed(reflected_acceptor_proof, S3, [<<>>], ?PROMPT),
    #{socket := S4, nd := Nd4, na := Na4} = challenge(Config),
    Mislabelled = crypto:mac(hmac, sha256, ?SECRET,
                             [<<"partisan-auth-acceptor">>, Na4, Nd4]),
    ok = send(S4, [auth_response(Mislabelled), hello(Name, 1)]),
    expect_closed(acceptor_label, S4, [<<>>], ?PROMPT),
    #{socket := S5, nd := Nd5, na := Na5} = challenge(Config),
    ok = send(S5, [auth_response(dialer_proof(?SECRET, Nd5, Na5)), hello(Name, 1)]),
    expect_closed(swapped_nonces, S5, [<<>>], ?PROMPT),
    verify(Config, Before, #{handshake_failures => 1, auth_failures => 4},
           #{never_atoms => [Name]}).


%% A stranger says it is the legitimate member, at the largest incarnation
%% (which would supersede the member's connections if it were believed), on
%% the control and the data channel, with gossip that removes the member: it
%% never gets past authentication, and the member's connections stay.
stranger_claims_a_members_name(Config) ->
    Before = snapshot(Config),
    Member = atom_to_binary(name(?config(legit, Config))),
    Target = atom_to_binary(name(?config(target, Config))),
    Claim = hello(Member, ?MAX_U64),
    OnData = hello(Member, ?MAX_U64, <<"undefined">>),
    Removal = gossip([{Member, ?MAX_U64, true, 1}, {Target, ?MAX_U64, true, 1}]),
    S1 = connect(Config),
    ok = send(S1, [preamble(), Claim]),
    expect_closed(claim_without_auth, S1, [preamble(), <<>>], ?PROMPT),
    #{socket := S2} = challenge(Config),
    ok = send(S2, [Claim, Removal]),
    expect_closed(claim_instead_of_a_proof, S2, [<<>>], ?PROMPT),
    lists:foreach(
        fun({What, Bytes}) ->
            #{socket := S} = challenge(Config),
            ok = send(S, [auth_response(nonce()) | Bytes]),
            expect_closed({behind_a_made_up_proof, What}, S, [<<>>], ?PROMPT)
        end,
        [{control, [Claim, Removal]}, {data, [OnData]}, {removal, [Removal]}]
    ),
    verify(Config, Before, #{handshake_failures => 2, auth_failures => 3}).


%% Gossip floods, each frame forging the removal of the member and of the
%% target itself at the largest incarnation and adding 50 forged members:
%% straight after the preamble, after an AuthInit, and behind a made-up proof
%% on eight connections at once. None of it is read: the connections close
%% and the node's received bytes do not count it.
gossip_flood_and_forged_removals(Config) ->
    Before = snapshot(Config),
    Port = ?config(port, Config),
    Member = atom_to_binary(name(?config(legit, Config))),
    Target = atom_to_binary(name(?config(target, Config))),
    Forged = [fresh_name() || _ <- lists:seq(1, 50)],
    Frame = gossip(
        [{Member, ?MAX_U64, true, Port}, {Target, ?MAX_U64, true, Port}]
        ++ [{F, 1, false, Port} || F <- Forged]
    ),
    %% About 4 MiB per connection.
    Copies = (4 * ?MB) div byte_size(Frame),
    Flood = fun(S) -> flood(S, Frame, Copies) end,
    S1 = connect(Config),
    ok = send(S1, preamble()),
    Sent1 = Flood(S1),
    expect_closed(after_the_preamble, S1, [preamble(), <<>>], ?PROMPT),
    #{socket := S2} = challenge(Config),
    Sent2 = Flood(S2),
    expect_closed(after_auth_init, S2, [<<>>], ?PROMPT),
    Parallel = pmap(
        fun(I) ->
            #{socket := S} = challenge(Config),
            ok = send(S, auth_response(nonce())),
            Sent = Flood(S),
            expect_closed({behind_a_made_up_proof, I}, S, [<<>>], ?PROMPT),
            Sent
        end,
        lists:seq(1, 8), 8
    ),
    Pushed = Sent1 + Sent2 + lists:sum(Parallel),
    ct:pal("gossip flood: the attackers' kernels took ~p KiB of forged gossip "
           "(~p bytes a frame)", [Pushed div 1024, byte_size(Frame)]),
    Deltas = verify(Config, Before, #{handshake_failures => 2, auth_failures => 8},
                    #{never_atoms => Forged}),
    %% Only the legitimate member's own traffic (pings, periodic gossip) was
    %% read from established connections meanwhile.
    ct:pal("gossip flood: the target read ~p bytes from established connections",
           [maps:get(bytes_received, Deltas)]),
    ?assert(maps:get(bytes_received, Deltas) < 256 * 1024).


%% 1,000 connections, each with a Hello of a fresh name: half send it with no
%% authentication at all, half behind a made-up proof, 16 at a time (under
%% the handshake limit, so each is read). No name becomes an atom, a peer or
%% a member.
hello_name_flood(Config) ->
    Before = snapshot(Config),
    N = 1000,
    Names = [fresh_name() || _ <- lists:seq(1, N)],
    T0 = now_ms(),
    Results = pmap(
        fun({I, Name}) ->
            S = connect(Config),
            Bytes = case I rem 2 of
                0 -> [preamble(), hello(Name, I)];
                1 -> [preamble(), auth_init(nonce()), auth_response(nonce()),
                      hello(Name, I)]
            end,
            ok = send(S, Bytes),
            case until_closed(S, ?HANDSHAKE_TIMEOUT) of
                {closed, _, _} -> closed;
                Other -> {I, Other}
            end
        end,
        lists:zip(lists:seq(1, N), Names), 16
    ),
    ct:pal("hello flood: ~p connections in ~p ms", [N, now_ms() - T0]),
    ?assertEqual([], [R || R <- Results, R =/= closed]),
    verify(Config, Before, #{handshake_failures => N div 2, auth_failures => N div 2},
           #{never_atoms => Names}).


%% Slowloris: 16 silent connections and 16 that trickle a handshake a byte
%% every 150 ms take every handshake permit; 268 more are closed at once
%% (handshakes_over_limit). The legitimate member is served all along; the 32
%% are closed by the 10 s handshake timeout, however slowly they keep
%% sending; then the node takes handshakes again.
slowloris(Config) ->
    Before = snapshot(Config),
    Self = self(),
    Silent = [spawn_link(fun() -> silent(Self, Config) end) || _ <- lists:seq(1, 16)],
    %% The silent ones are connected (and accepted first, in order) before
    %% the tricklers start.
    [receive {connected, P} -> ok after 5000 -> ct:fail({not_connected, P}) end
     || P <- Silent],
    Tricklers = [spawn_link(fun() -> trickle(Self, Config) end) || _ <- lists:seq(1, 16)],
    %% A trickler that received the node's preamble holds a permit.
    [receive {served, P} -> ok after 5000 -> ct:fail({not_served, P}) end
     || P <- Tricklers],
    Extra = 300 - 2 * 16,
    Refused = pmap(
        fun(_) ->
            S = connect(Config),
            ok = send(S, <<"P">>),
            until_closed(S, ?PROMPT)
        end,
        lists:seq(1, Extra), 50
    ),
    ?assertEqual([], [R || R <- Refused, not match_closed(R, [<<>>])]),
    %% Every permit is held: the member is still served, memory is bounded.
    ok = round_trip(Config),
    During = snapshot(Config),
    within_memory_bound(slowloris_during, Before, During),
    Held = [receive {closed, P, What} -> What after 20000 -> ct:fail({held_open, P}) end
            || P <- Silent ++ Tricklers],
    ct:pal("slowloris: held connections closed after ~p ms (min) .. ~p ms (max)",
           [lists:min([Ms || {_, Ms} <- Held]), lists:max([Ms || {_, Ms} <- Held])]),
    [?assert(Ms >= ?HANDSHAKE_TIMEOUT - 500 andalso Ms =< ?HANDSHAKE_TIMEOUT + ?TIMEOUT_SLACK)
     || {_, Ms} <- Held],
    %% The silent ones got nothing; the tricklers got at most the preamble
    %% and the challenge (their made-up proof never completed).
    [?assertEqual(<<>>, Got) || {Got, _} <- lists:sublist(Held, 16)],
    [?assert(byte_size(Got) >= 5 andalso binary:part(Got, 0, 5) =:= preamble()
             andalso byte_size(Got) =< 74)
     || {Got, _} <- lists:nthtail(16, Held)],
    %% The permits are back.
    stranger_gets_a_challenge(Config),
    %% The round trip during the attack: one message each way.
    verify(Config, Before, #{handshakes_over_limit => Extra, handshake_failures => 32,
                             auth_failures => 1, received => 2}).


%% Half-open handshakes: 32 strangers send a preamble and an AuthInit, get
%% the node's challenge and go silent, holding every permit; 200 more are
%% closed at once without a byte. The member is served meanwhile; the 32 are
%% closed by the handshake timeout; then the node takes handshakes again.
half_open_handshakes_beyond_the_limit(Config) ->
    Before = snapshot(Config),
    Open = [begin
                #{socket := S} = challenge(Config),
                {S, now_ms()}
            end || _ <- lists:seq(1, ?LIMIT)],
    Extra = 200,
    Refused = pmap(
        fun(_) ->
            S = connect(Config),
            ok = send(S, [preamble(), auth_init(nonce())]),
            until_closed(S, ?PROMPT)
        end,
        lists:seq(1, Extra), 50
    ),
    ?assertEqual([], [R || R <- Refused, not match_closed(R, [<<>>])]),
    ok = round_trip(Config),
    During = snapshot(Config),
    within_memory_bound(half_open_during, Before, During),
    Closed = [begin
                  Left = T + ?HANDSHAKE_TIMEOUT + ?TIMEOUT_SLACK - now_ms(),
                  case until_closed(S, max(0, Left)) of
                      {closed, <<>>, _} -> now_ms() - T;
                      Other -> ct:fail({half_open_not_closed, Other})
                  end
              end || {S, T} <- Open],
    ct:pal("half-open: closed after ~p ms (min) .. ~p ms (max)",
           [lists:min(Closed), lists:max(Closed)]),
    [?assert(Ms >= ?HANDSHAKE_TIMEOUT - 500) || Ms <- Closed],
    stranger_gets_a_challenge(Config),
    verify(Config, Before, #{handshakes_over_limit => Extra, handshake_failures => ?LIMIT,
                             auth_failures => 1, received => 2}).


%% A peer with the secret is trusted as Distributed Erlang trusts a node with
%% the cookie: its Hello is admitted. When it then breaks the protocol (an
%% unknown kind, an absurd or empty length, handshake frames after the
%% handshake, gossip that does not decode) its connection is closed and
%% counted in protocol_errors; nothing else on the node is affected. It only
%% said Hello, so it is not a member. (security.md allows an admitted peer's
%% name to become an atom; none does here, and the atom count is held to
%% that.)
member_with_the_secret_breaks_the_protocol(Config) ->
    Before = snapshot(Config),
    Name = fresh_name(),
    Breaches = [
        {unknown_kind, frame(99, <<"x">>)},
        {huge_length, <<16#FFFFFFFF:32, ?DATA>>},
        {over_max_frame_size, <<(64 * ?MB + 1):32, ?GOSSIP>>},
        {zero_length, <<0:32>>},
        {hello_after_the_handshake, hello(Name, 1)},
        {auth_init_after_the_handshake, auth_init(nonce())},
        {gossip_with_a_bad_flag, frame(?GOSSIP, <<1:32, 1:64, 7, (spec(Name, 1))/binary>>)},
        {gossip_with_trailing_bytes, frame(?GOSSIP, <<0:32, "trailing">>)}
    ],
    lists:foreach(
        fun({{What, Bytes}, Incarnation}) ->
            S = trusted(Config, Name, Incarnation),
            ok = send(S, Bytes),
            %% The node may have sent gossip before it read the breach.
            case until_closed(S, ?PROMPT) of
                {closed, _, _} -> ok;
                Other -> ct:fail({not_closed, What, Other})
            end
        end,
        lists:zip(Breaches, lists:seq(1, length(Breaches)))
    ),
    %% Frames announced just under max_frame_size (64 MiB) whose bodies never
    %% come, on four trusted connections at once: the node's buffers for them
    %% are mapped or reserved, not written, so memory grows with the bytes
    %% that arrive, not with the lengths announced (security.md).
    Announced = 60 * ?MB,
    Stalled = [begin
                   S = trusted(Config, fresh_name(), 1),
                   ok = send(S, [<<Announced:32, Kind>>, Head, binary:copy(<<0>>, 1024)]),
                   S
               end || {Kind, Head} <- [{?DATA, <<0, 12, "hostile_sink">>},
                                       {?DATA, <<0, 12, "hostile_sink">>},
                                       {?GOSSIP, <<>>}, {?GOSSIP, <<>>}]],
    %% Behind the announcements on the target: the member's round trip.
    ok = round_trip(Config),
    During = snapshot(Config),
    #{memory := Mem0, rss := Rss0} = Before,
    #{memory := Mem1, rss := Rss1} = During,
    ct:pal("~p MiB announced on 4 stalled connections: memory ~s KiB, RSS ~s KiB",
           [4 * Announced div ?MB, signed((Mem1 - Mem0) div 1024),
            signed((Rss1 - Rss0) div 1024)]),
    within_memory_bound(announced_frames, Before, During),
    [ok = gen_tcp:close(S) || S <- Stalled],
    %% The control for the other cases: a peer with the secret does reach the
    %% sink, with a message and as the reply of application_controller to a
    %% '$gen_call', so the strangers' empty sink means something.
    Sink = maps:get(sink, Before),
    Control = trusted(Config, fresh_name(), 1),
    ok = send(Control, [data(<<"hostile_sink">>, {hostile_suite_mark, <<"member">>}),
                        gen_call_which_applications()]),
    partisan_ct_support:wait_until(
        sink_reached,
        fun() -> call(?config(target, Config), ?PROBE, sink_count, []) =:= Sink + 2 end,
        100, 100
    ),
    ok = gen_tcp:close(Control),
    N = length(Breaches),
    M = length(Stalled) + 1,
    %% received: the two messages to the sink, and the round trip's two.
    verify(Config, Before, #{protocol_errors => N, closed_protocol_error => N,
                             connections_opened => N + M, connections_closed => N + M,
                             received => 4},
           #{sink => 2}).



%% =============================================================================
%% ATTACKERS
%% =============================================================================



%% Connects and sends nothing until the node closes the connection.
silent(Parent, Config) ->
    S = connect(Config),
    T = now_ms(),
    Parent ! {connected, self()},
    {closed, Got, _} = until_closed(S, ?HANDSHAKE_TIMEOUT + ?TIMEOUT_SLACK),
    Parent ! {closed, self(), {Got, now_ms() - T}}.


%% Sends a handshake with a made-up proof a byte every 150 ms (its last byte
%% would go out after about 12 s), reading what comes back meanwhile.
trickle(Parent, Config) ->
    S = connect(Config),
    T = now_ms(),
    Bytes = iolist_to_binary([preamble(), auth_init(nonce()), auth_response(nonce())]),
    trickle(Parent, S, T, Bytes, <<>>).

trickle(Parent, S, T, Bytes, Got) ->
    _ = byte_size(Bytes) > 0 andalso gen_tcp:send(S, binary:part(Bytes, 0, 1)),
    Rest = case Bytes of <<_, R/binary>> -> R; <<>> -> <<>> end,
    case gen_tcp:recv(S, 0, 150) of
        {ok, More} ->
            _ = byte_size(Got) < 5 andalso byte_size(Got) + byte_size(More) >= 5
                andalso (Parent ! {served, self()}),
            trickle(Parent, S, T, Rest, <<Got/binary, More/binary>>);
        {error, timeout} ->
            trickle(Parent, S, T, Rest, Got);
        {error, _} ->
            gen_tcp:close(S),
            Parent ! {closed, self(), {Got, now_ms() - T}}
    end.


%% Sends `Copies' of `Frame' (in chunks of 64 frames) until the node stops
%% taking them; returns the bytes the local kernel took.
flood(S, Frame, Copies) ->
    Chunk = binary:copy(Frame, 64),
    flood(S, Chunk, Copies div 64, 0).

flood(_S, _Chunk, 0, Sent) ->
    Sent;

flood(S, Chunk, N, Sent) ->
    case gen_tcp:send(S, Chunk) of
        ok -> flood(S, Chunk, N - 1, Sent + byte_size(Chunk));
        {error, _} -> Sent
    end.


%% After the limit's permits are back: a new stranger is served (preamble and
%% challenge) and then refused for its made-up proof.
stranger_gets_a_challenge(Config) ->
    #{socket := S} = challenge(Config),
    ok = send(S, auth_response(nonce())),
    expect_closed(fresh_stranger, S, [<<>>], ?PROMPT).


%% A dialer that knows the secret: checks the node's proof, proves its own,
%% says Hello on the control channel and gets it accepted. Returns the socket.
trusted(Config, Name, Incarnation) ->
    #{socket := S, nd := Nd, na := Na, pa := Pa} = challenge(Config),
    ?assertEqual(acceptor_proof(?SECRET, Nd, Na), Pa),
    ok = send(S, [auth_response(dialer_proof(?SECRET, Na, Nd)), hello(Name, Incarnation)]),
    {ok, <<Len:32, ?HELLO_ACK>>} = gen_tcp:recv(S, 5, ?PROMPT),
    {ok, <<Status, NameLen, AckName:NameLen/binary, _/binary>>} =
        gen_tcp:recv(S, Len - 1, ?PROMPT),
    ?assertEqual({0, atom_to_binary(name(?config(target, Config)))}, {Status, AckName}),
    S.



%% =============================================================================
%% CHECKS
%% =============================================================================



%% After an attack: waits until the counters in `Expected' grew by at least
%% their value, then checks that every counter of ?WATCHED grew by exactly its
%% expected value (0 if not named); checks that the legitimate member is
%% served both ways; then that the atom count is what it was, memory and RSS
%% are within ?MEMORY_BOUND, membership and connected nodes are unchanged,
%% nothing set the mark, the sink got `sink' messages (0 unless named), and
%% none of `never_atoms' exists as an atom on the target. Returns the
%% counters' deltas.
verify(Config, Before, Expected) ->
    verify(Config, Before, Expected, #{}).

verify(Config, Before, Expected, Opts) ->
    Target = ?config(target, Config),
    partisan_ct_support:wait_until(
        {counters, Expected},
        fun() ->
            Deltas = deltas(Before, snapshot(Config)),
            Short = [{K, maps:get(K, Deltas), V}
                     || {K, V} <- maps:to_list(Expected), maps:get(K, Deltas) < V],
            Short =:= [] orelse {false, Short}
        end,
        100, 200
    ),
    Mid = snapshot(Config),
    Deltas = deltas(Before, Mid),
    ?assertEqual(
        maps:from_list([{K, maps:get(K, Expected, 0)} || K <- ?WATCHED]),
        maps:with(?WATCHED, Deltas)
    ),
    ok = round_trip(Config),
    After = snapshot(Config),
    #{atoms := Atoms0, memory := Mem0, rss := Rss0} = Before,
    #{atoms := Atoms1, memory := Mem1, rss := Rss1} = After,
    ct:pal("~p: atoms ~s, memory ~s KiB, RSS ~s KiB; counters ~w",
           [case get(tc) of undefined -> ?MODULE; Tc -> Tc end,
            signed(Atoms1 - Atoms0), signed((Mem1 - Mem0) div 1024),
            signed((Rss1 - Rss0) div 1024),
            maps:filter(fun(_, V) -> V =/= 0 end, maps:with(?WATCHED, Deltas))]),
    %% Code loaded meanwhile makes atoms too: say which, if any.
    ?assertEqual(Atoms0, Atoms1,
                 {modules_loaded, maps:get(loaded, After) -- maps:get(loaded, Before)}),
    within_memory_bound(after_attack, Before, After),
    [?assertEqual(maps:get(K, Before), maps:get(K, After), K)
     || K <- [members, nodes, connected, mark, processes]],
    ?assertEqual(maps:get(sink, Before) + maps:get(sink, Opts, 0), maps:get(sink, After)),
    %% The member sees the same cluster.
    Legit = ?config(legit, Config),
    ?assertEqual(maps:get(members, Before), call(Legit, partisan_peer_service, members, [])),
    ?assertEqual([name(Target)], call(Legit, partisan, nodes, [])),
    ?assertEqual([], call(Target, ?PROBE, existing_atoms,
                          [maps:get(never_atoms, Opts, [])])),
    Deltas.


signed(N) when N >= 0 -> [$+ | integer_to_list(N)];
signed(N) -> integer_to_list(N).


within_memory_bound(When, Before, Now) ->
    #{memory := Mem0, rss := Rss0} = Before,
    #{memory := Mem1, rss := Rss1} = Now,
    ?assert(Mem1 - Mem0 =< ?MEMORY_BOUND, {When, memory, Mem1 - Mem0}),
    ?assert(Rss1 - Rss0 =< ?MEMORY_BOUND, {When, rss, Rss1 - Rss0}).


snapshot(Config) ->
    call(?config(target, Config), ?PROBE, snapshot, []).


deltas(#{stats := S0}, #{stats := S1}) ->
    maps:map(fun(K, V) -> V - maps:get(K, S0, 0) end, S1).


%% An echo round trip from the legitimate member to the target and one the
%% other way, over partisan. The payload has no atom the nodes lack.
round_trip(Config) ->
    Target = ?config(target, Config),
    Legit = ?config(legit, Config),
    Payload = {<<"served">>, erlang:unique_integer([positive])},
    ?assertEqual({echoed, Payload}, call(Legit, ?AGENT, ask_echo, [name(Target), echo, Payload])),
    ?assertEqual({echoed, Payload}, call(Target, ?AGENT, ask_echo, [name(Legit), echo, Payload])),
    ok.



%% =============================================================================
%% WIRE (docs/wire.md)
%% =============================================================================



preamble() ->
    <<"PTSN", 3>>.


frame(Kind, Body) ->
    B = iolist_to_binary(Body),
    <<(byte_size(B) + 1):32, Kind:8, B/binary>>.


short(Text) ->
    <<(byte_size(Text)):8, Text/binary>>.


%% A node spec with no channel and one address on 127.0.0.1 (none for port 0).
spec(Name, 0) ->
    <<(short(Name))/binary, 0, 0>>;

spec(Name, Port) ->
    <<(short(Name))/binary, 1, 4, 127, 0, 0, 1, Port:16, 0>>.


hello(Name, Incarnation) ->
    hello(Name, Incarnation, ?CONTROL).

hello(Name, Incarnation, Channel) ->
    frame(?HELLO, [
        spec(Name, 0),
        <<Incarnation:64>>,
        %% PidNaming: the VM's name and creation, the wire creation
        short(Name), <<1:32, 1:32>>,
        short(Channel), <<0:16>>,
        %% capabilities: untagged
        <<0:32>>
    ]).


gossip(Entries) ->
    frame(?GOSSIP, [
        <<(length(Entries)):32>>
        | [[<<Incarnation:64, (flag(Removed))>>, spec(Name, Port)]
           || {Name, Incarnation, Removed, Port} <- Entries]
    ]).


flag(true) -> 1;
flag(false) -> 0.


%% A data frame to the registered name `Name'.
data(Name, Term) ->
    frame(?DATA, [<<0, (byte_size(Name))>>, Name, term_to_binary(Term)]).


%% A call whose reply, were it ever delivered, would reach the sink.
gen_call_which_applications() ->
    data(<<"application_controller">>,
         {'$gen_call', {hostile_sink, 2}, which_applications}).


%% application:set_env(kernel, hostile_suite_mark, true) as a raw call.
gen_call_set_env() ->
    data(<<"application_controller">>,
         {'$gen_call', {hostile_sink, 3}, {set_env, kernel, hostile_suite_mark, true, []}}).


auth_init(Nonce) ->
    frame(?AUTH_INIT, Nonce).


auth_response(Proof) ->
    frame(?AUTH_RESPONSE, Proof).


%% native/partisan_core/src/wire/auth.rs: each side's proof is over the other
%% side's nonce first, then its own, behind the side's label.
acceptor_proof(Secret, DialerNonce, AcceptorNonce) ->
    crypto:mac(hmac, sha256, Secret,
               [<<"partisan-auth-acceptor">>, DialerNonce, AcceptorNonce]).


dialer_proof(Secret, AcceptorNonce, DialerNonce) ->
    crypto:mac(hmac, sha256, Secret,
               [<<"partisan-auth-dialer">>, AcceptorNonce, DialerNonce]).


nonce() ->
    crypto:strong_rand_bytes(32).


%% A node name never seen anywhere: a binary here, never an atom.
fresh_name() ->
    iolist_to_binary([
        "hostile_", integer_to_list(erlang:unique_integer([positive])), "_",
        integer_to_list(rand:uniform(1 bsl 30)), "@127.0.0.1"
    ]).



%% =============================================================================
%% SOCKETS
%% =============================================================================



connect(Config) ->
    Opts = [binary, {active, false}, {nodelay, true},
            {send_timeout, 5000}, {send_timeout_close, true}],
    {ok, S} = gen_tcp:connect(?IP, ?config(port, Config), Opts, 5000),
    S.


%% The node may already have closed the connection: a failed send is part of
%% the attack, what counts is what the node does.
send(S, Bytes) ->
    _ = gen_tcp:send(S, Bytes),
    ok.


%% Preamble and AuthInit; checks the node's preamble and reads its challenge.
challenge(Config) ->
    challenge(Config, nonce()).

challenge(Config, Nd) ->
    S = connect(Config),
    ok = gen_tcp:send(S, [preamble(), auth_init(Nd)]),
    {ok, <<"PTSN", 3, 65:32, ?AUTH_CHALLENGE, Na:32/binary, Pa:32/binary>>} =
        gen_tcp:recv(S, 74, ?PROMPT),
    #{socket => S, nd => Nd, na => Na, pa => Pa}.


%% Reads until the node closes the connection (`{closed, Bytes, Ms}') or
%% `Timeout' ms pass (`{open, Bytes}'); closes the socket either way.
until_closed(S, Timeout) ->
    T0 = now_ms(),
    until_closed(S, T0 + Timeout, T0, <<>>).

until_closed(S, Deadline, T0, Acc) ->
    case gen_tcp:recv(S, 0, max(0, Deadline - now_ms())) of
        {ok, Bytes} ->
            until_closed(S, Deadline, T0, <<Acc/binary, Bytes/binary>>);
        {error, timeout} ->
            gen_tcp:close(S),
            {open, Acc};
        {error, _} ->
            gen_tcp:close(S),
            {closed, Acc, now_ms() - T0}
    end.


match_closed({closed, Got, _}, Allowed) -> lists:member(Got, Allowed);
match_closed(_, _) -> false.


expect_closed(What, S, Allowed, Timeout) ->
    case until_closed(S, Timeout) of
        {closed, Got, _} = R ->
            lists:member(Got, Allowed) orelse ct:fail({unexpected_bytes, What, R}),
            ok;
        Other ->
            ct:fail({not_closed, What, Other})
    end.


now_ms() ->
    erlang:monotonic_time(millisecond).


%% Runs `Fun' on every element, at most `Width' at once; results in order.
pmap(Fun, List, Width) ->
    Parent = self(),
    Indexed = lists:zip(lists:seq(1, length(List)), List),
    pmap(Fun, Indexed, Width, Parent, 0, #{}).

pmap(_Fun, [], _Width, _Parent, 0, Done) ->
    [V || {_, V} <- lists:sort(maps:to_list(Done))];

pmap(Fun, [{I, X} | Rest], Width, Parent, Running, Done) when Running < Width ->
    _ = spawn_link(fun() -> Parent ! {pmap, I, Fun(X)} end),
    pmap(Fun, Rest, Width, Parent, Running + 1, Done);

pmap(Fun, Todo, Width, Parent, Running, Done) ->
    receive
        {pmap, I, V} -> pmap(Fun, Todo, Width, Parent, Running - 1, Done#{I => V})
    after 60000 ->
        ct:fail(pmap_timeout)
    end.
