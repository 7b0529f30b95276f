%% -----------------------------------------------------------------------------
%% @private
%% @doc The secret of the authenticated handshake: the `auth_secret' key, else
%% the Erlang cookie as Distributed Erlang finds it (this node's cookie when it
%% is alive, else `~/.erlang.cookie', created with random content and mode 0400
%% when missing, as `erl' does). Empty when `authentication' is `false'.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_auth).

-export([secret/0]).

-define(COOKIE_LEN, 20).


%% @doc The secret the engine proves and checks in every handshake.
-spec secret() -> binary().

secret() ->
    case partisan_config:get(authentication, true) of
        false ->
            <<>>;
        true ->
            case partisan_config:get(auth_secret, undefined) of
                undefined -> cookie();
                Secret -> Secret
            end
    end.


cookie() ->
    case erlang:is_alive() andalso erlang:get_cookie() of
        Cookie when is_atom(Cookie), Cookie =/= nocookie, Cookie =/= false ->
            atom_to_binary(Cookie, utf8);
        _ ->
            cookie_file()
    end.


cookie_file() ->
    Path = filename:join(home(), ".erlang.cookie"),
    case file:read_file(Path) of
        {ok, Content} ->
            %% As erl does: the first line, without trailing blanks.
            [Line | _] = binary:split(Content, [<<"\n">>, <<"\r">>]),
            string:trim(Line, trailing);
        {error, enoent} ->
            create_cookie(Path);
        {error, Reason} ->
            erlang:error({cannot_read_cookie, Path, Reason})
    end.


create_cookie(Path) ->
    Cookie = << <<($A + rand:uniform(26) - 1)>> || _ <- lists:seq(1, ?COOKIE_LEN) >>,
    ok = file:write_file(Path, Cookie),
    ok = file:change_mode(Path, 8#400),
    Cookie.


home() ->
    case init:get_argument(home) of
        {ok, [[Home | _] | _]} -> Home;
        _ -> os:getenv("HOME", ".")
    end.
