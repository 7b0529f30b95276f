%% -----------------------------------------------------------------------------
%% @doc What `partisan_hostile_SUITE' runs on the node under attack: one call
%% that reads everything the suite compares before and after an attack, and a
%% check of which texts exist as atoms there.
%%
%% The atoms the suite needs on the target (the sink's name, the marker the
%% stranger's messages carry) are in this module, so loading it creates them
%% before any baseline is taken.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_hostile_probe).

-export([snapshot/0]).
-export([existing_atoms/1]).
-export([start_sink/0]).
-export([sink_count/0]).
-export([warm/0]).
-export([logged_auth_failure/0]).

-define(SINK, hostile_sink).


%% @doc Everything the suite compares, read after collecting garbage in every
%% process: the atom count (read last, so that nothing this function does
%% after it could move it unseen), `erlang:memory(total)', the OS RSS, the
%% membership, the connected nodes, the transport's counters, whether a
%% stranger managed to set the kernel environment key `hostile_suite_mark' or
%% reach the sink, the modules loaded, and the pids of partisan's processes.
-spec snapshot() -> map().

snapshot() ->
    #{memory := Memory, rss := Rss} = partisan_ct_support:resource_usage(),
    Nodes = lists:sort(partisan:nodes()),
    Snapshot = #{
        memory => Memory,
        rss => Rss,
        members => partisan_peer_service:members(),
        nodes => Nodes,
        connected => [N || N <- Nodes, partisan:is_fully_connected(N)],
        stats => partisan_nif:stats(partisan_nif:engine()),
        mark => application:get_env(kernel, hostile_suite_mark),
        sink => sink_count(),
        loaded => lists:sort([M || {M, _} <- code:all_loaded()]),
        %% A restarted process would be a crash survived, not an attack
        %% shrugged off.
        processes => [{partisan_sup, whereis(partisan_sup)}
                      | lists:sort([{Id, Pid} || {Id, Pid, _, _}
                                                 <- supervisor:which_children(partisan_sup)])]
    },
    Snapshot#{atoms => erlang:system_info(atom_count)}.


%% @doc The texts among `Texts' that exist as atoms on this node.
-spec existing_atoms([binary()]) -> [binary()].

existing_atoms(Texts) ->
    [T || T <- Texts, exists(T)].


exists(Text) ->
    try binary_to_existing_atom(Text, utf8) of
        _ -> true
    catch
        error:badarg -> false
    end.


%% @doc Registers the sink: a collector that strangers' messages would reach.
-spec start_sink() -> pid().

start_sink() ->
    partisan_ct_support:start_collector(?SINK).


%% @doc How many messages the sink received.
-spec sink_count() -> non_neg_integer().

sink_count() ->
    partisan_ct_support:collected_count(?SINK).


%% @doc Runs every function above once, so that the code (and the atoms) they
%% load are there before the first baseline.
-spec warm() -> ok.

warm() ->
    _ = snapshot(),
    _ = existing_atoms([<<"hostile_suite_mark">>]),
    ok.


%% @doc Whether the peer service manager logged a failed authentication (in
%% the warnings `partisan_drop_in_agent:capture_logs/0' keeps), and is done
%% logging it: a call to it returns only after the handle_info that logged.
-spec logged_auth_failure() -> boolean().

logged_auth_failure() ->
    Logged = [R || #{description := "A handshake failed authentication" ++ _} = R
                   <- partisan_drop_in_agent:captured_logs()],
    _ = sys:get_state(partisan_pluggable_peer_service_manager),
    Logged =/= [].
