%% -----------------------------------------------------------------------------
%% @doc A `gen_statem' callback module written for plain OTP in the
%% `handle_event_function' mode, used unchanged by `partisan_gen_statem_SUITE':
%% a light that toggles on calls and counts casts.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_test_light).

-behaviour(gen_statem).

-export([start/1]).
-export([init/1, callback_mode/0, handle_event/4]).

%% @doc Starts an unlinked light registered as `Name' (for peer calls).
-spec start(atom()) -> {ok, pid()}.
start(Name) ->
    partisan_gen_statem:start({local, Name}, ?MODULE, [], []).

init([]) ->
    {ok, off, 0}.

callback_mode() ->
    handle_event_function.

handle_event({call, From}, toggle, off, N) ->
    {next_state, on, N, [{reply, From, on}]};
handle_event({call, From}, toggle, on, N) ->
    {next_state, off, N, [{reply, From, off}]};
handle_event({call, From}, get, State, N) ->
    {keep_state_and_data, [{reply, From, {State, N}}]};
handle_event(cast, bump, _, N) ->
    {keep_state, N + 1};
handle_event(info, _, _, _) ->
    keep_state_and_data.
