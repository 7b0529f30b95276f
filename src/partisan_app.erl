%% -----------------------------------------------------------------------------
%% @doc The `partisan' application: reads the configuration, loads the native
%% library and starts the supervision tree.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_app).

-behaviour(application).

-export([start/2]).
-export([stop/1]).



%% =============================================================================
%% APPLICATION CALLBACKS
%% =============================================================================



%% -----------------------------------------------------------------------------
%% @doc Starts the application. Returns `{error, {invalid_config, Reason}}' if
%% the configuration is invalid and `{error, {partisan_nif_not_loaded,
%% Reason}}' if the native library cannot be loaded.
%% @end
%% -----------------------------------------------------------------------------
-spec start(application:start_type(), term()) ->
    {ok, pid()} | {error, term()}.

start(_StartType, _StartArgs) ->
    case init_config() of
        ok -> check_tls_and_start();
        {error, _} = Error -> Error
    end.


%% -----------------------------------------------------------------------------
%% @doc Called after the application has stopped; nothing is left to clean:
%% the peer service manager stopped the engine when it terminated.
%% @end
%% -----------------------------------------------------------------------------
-spec stop(term()) -> ok.

stop(_State) ->
    ok.



%% =============================================================================
%% PRIVATE
%% =============================================================================



%% TLS options are checked (and their files read) before anything starts, so
%% that one the engine cannot honour stops the application with
%% `{error, {bad_option, Option}}' rather than a crashed supervisor.
check_tls_and_start() ->
    case partisan_tls:engine_options() of
        {ok, _} ->
            load_and_start();
        {error, Reason} = Error ->
            logger:error(#{
                description => "Invalid partisan TLS options: the application does not start",
                reason => Reason
            }),
            Error
    end.


init_config() ->
    try
        partisan_config:init()
    catch
        error:Reason:Stacktrace ->
            Invalid = invalid_value(Reason, Stacktrace),
            log_invalid(Invalid),
            {error, {invalid_config, Invalid}}
    end.


log_invalid({Key, Value}) when is_atom(Key) ->
    logger:error(#{
        description => "Invalid partisan configuration: the application does not start",
        key => Key,
        value => Value,
        accepted => partisan_config:accepted(Key)
    });

log_invalid(Reason) ->
    logger:error(#{
        description => "Invalid partisan configuration: the application does not start",
        reason => Reason
    }).


%% For a rejected option, report the option and its value.
invalid_value(badarg, [{partisan_config, _, [Key, Value], _} | _]) ->
    {Key, Value};

invalid_value(Reason, _) ->
    Reason.


load_and_start() ->
    case partisan_nif:load() of
        ok -> start_supervisor();
        {error, Reason} -> {error, {partisan_nif_not_loaded, Reason}}
    end.


start_supervisor() ->
    case partisan_sup:start_link() of
        {ok, _} = Started -> Started;
        ignore -> {error, ignore};
        {error, _} = Error -> Error
    end.
