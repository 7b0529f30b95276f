%% -----------------------------------------------------------------------------
%% @doc A `gen_statem' callback module written for plain OTP (state functions
%% with state enter calls), used unchanged by `partisan_gen_statem_SUITE': a
%% door that unlocks with a code, locks again on a state timeout, notes an
%% event timeout, postpones entries while locked, defers replies and stops
%% on request.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_test_door).

-behaviour(partisan_gen_statem).

-export([start/2]).
-export([init/1, callback_mode/0, terminate/3, code_change/4]).
-export([locked/3, open/3]).

%% @doc Starts an unlinked door registered as `Name' (for peer calls).
-spec start(atom(), term()) -> {ok, pid()}.
start(Name, Code) ->
    partisan_gen_statem:start({local, Name}, ?MODULE, Code, []).

init(Code) ->
    {ok, locked, #{code => Code, opened => 0, idle => false}}.

callback_mode() ->
    [state_functions, state_enter].

locked(enter, _, _) ->
    keep_state_and_data;
locked({call, From}, {unlock, Code}, #{code := Code, opened := N} = D) ->
    {next_state, open, D#{opened := N + 1}, [{reply, From, ok}]};
locked({call, From}, {unlock, _}, _) ->
    {keep_state_and_data, [{reply, From, wrong_code}]};
locked({call, _}, enter, _) ->
    %% Nobody enters a locked door: the call waits until it opens.
    {keep_state_and_data, [postpone]};
locked(cast, {idle_after, Ms}, D) ->
    {keep_state, D#{idle := false}, [{timeout, Ms, idle}]};
locked(timeout, idle, D) ->
    {keep_state, D#{idle := true}};
locked(EventType, Event, D) ->
    any(EventType, Event, locked, D).

open(enter, locked, _) ->
    {keep_state_and_data, [{state_timeout, 300, lock}]};
open(state_timeout, lock, D) ->
    {next_state, locked, D};
open({call, From}, enter, _) ->
    {keep_state_and_data, [{reply, From, entered}]};
open(EventType, Event, D) ->
    any(EventType, Event, open, D).

any({call, From}, state, State, D) ->
    {keep_state_and_data, [{reply, From, {State, D}}]};
any({call, From}, {later, Ms}, _, _) ->
    %% A deferred reply, from another process, with the From given.
    _ = spawn(fun() -> timer:sleep(Ms), partisan_gen_statem:reply(From, late) end),
    keep_state_and_data;
any({call, _}, never, _, _) ->
    keep_state_and_data;
any({call, From}, {stop, Reason}, _, D) ->
    {stop_and_reply, Reason, [{reply, From, stopping}], D};
any({call, _}, crash, _, _) ->
    erlang:error(crashed);
any(cast, {set_code, Code}, _, D) ->
    {keep_state, D#{code := Code}};
any(info, _, _, _) ->
    keep_state_and_data.

terminate(_, _, _) ->
    ok.

code_change(_, State, D, _) ->
    {ok, State, D}.
