%% -----------------------------------------------------------------------------
%% @private
%% @doc Owns the tables of `partisan_acknowledgement' (the messages kept until
%% acknowledged, and what was delivered of each sender) and does nothing else:
%% so a crash of that server, restarted by the supervisor, loses no message it
%% kept and forgets no delivery but the one it may have been making.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_acknowledgement_tables).

-behaviour(gen_server).

-export([start_link/0]).

-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).



%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.

start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).


%% @private
init([]) ->
    ok = partisan_acknowledgement:new_tables(),
    {ok, undefined}.


%% @private
handle_call(_, _From, State) ->
    {reply, {error, unknown_call}, State}.


%% @private
handle_cast(_, State) ->
    {noreply, State}.
