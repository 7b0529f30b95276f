%% -----------------------------------------------------------------------------
%% @doc The output of `make bench': the table (stdout and Markdown) and the
%% chart (SVG, written by hand), from the rows `partisan_bench' summarized.
%%
%% A row holds, per transport, the values of its figure in each round; the
%% table shows the median and the range (min–max), the ratio of the medians
%% (partisan / Distributed Erlang) and which side it favours. The chart shows
%% that factor per row on a log scale around 1.
%% @end
%% -----------------------------------------------------------------------------
-module(partisan_bench_report).

-export([workload_label/1]).
-export([headline/2]).
-export([machine/2]).
-export([write/3]).

-define(SAME, 0.03).


%% =============================================================================
%% LABELS
%% =============================================================================


%% @doc The name of a workload in the table.
-spec workload_label(term()) -> string().
workload_label({flow, N, Size, W}) ->
    flat("flow ~b×~ts, W=~b", [N, size_label(Size), W]);
workload_label({flow_names, N, Size, W}) ->
    flat("flow ~b×~ts names, W=~b", [N, size_label(Size), W]);
workload_label({flow_pid_ref, N, Size, W}) ->
    flat("flow ~b×~ts pid+ref, W=~b", [N, size_label(Size), W]);
workload_label({burst, N, M}) ->
    flat("burst ~b×~ts msgs of 64 B", [N, count(M)]);
workload_label(latency) -> "latency 64 B ping-pong";
workload_label({sparse, Gap}) -> flat("sparse 64 B ping-pong, ~b ms gaps", [Gap]);
workload_label(hol) -> "HOL: 64 B ping-pong beside 8 MiB stream";
workload_label({call, message, N}) -> flat("request/reply ~b×64 B", [N]);
workload_label({call, gen_server, N}) -> flat("gen_server:call ~b×64 B", [N]);
workload_label({call, rpc, N}) -> flat("rpc:call ~b×64 B", [N]);
workload_label(warm_up) -> "warm-up".


size_label(Bytes) when Bytes >= 1048576 -> flat("~b MiB", [Bytes div 1048576]);
size_label(Bytes) when Bytes >= 1024 -> flat("~b KiB", [Bytes div 1024]);
size_label(Bytes) -> flat("~b B", [Bytes]).


count(N) when N >= 1000, N rem 1000 =:= 0 -> flat("~bk", [N div 1000]);
count(N) -> integer_to_list(N).


%% @doc One line about one run, for the progress log.
-spec headline(term(), map() | {error, term()}) -> string().
headline(_, {error, {stalled, Info}}) ->
    "STALLED: " ++ stalled_text(Info);
headline(_, {error, Reason}) ->
    flat("FAILED: ~P", [Reason, 8]);
headline(_, #{msgs_per_s := R, mb_per_s := M} = Metrics) ->
    flat("~ts msg/s, ~ts MB/s~ts", [num(R), num(M), lost_note(Metrics)]);
headline(_, #{p50 := P50, p99 := P99, p999 := P999} = Metrics) ->
    Bulk = case Metrics of
        #{bulk_mb_per_s := B} -> flat(", bulk ~ts MB/s", [num(B)]);
        _ -> ""
    end,
    flat("p50 ~ts µs, p99 ~ts µs, p99.9 ~ts µs~ts", [num(P50), num(P99), num(P999), Bulk]);
headline(_, #{calls_per_s := R}) ->
    flat("~ts calls/s", [num(R)]).


lost_note(#{lost := 0}) -> "";
lost_note(#{lost := N} = Metrics) ->
    flat(" (~b lost~ts)", [N, drops_text(maps:get(dropped, Metrics, #{}))]).


%% A run whose receivers got none of the messages sent (a flow stops at its
%% window, then at the wall-clock cap), and what the receiving engine dropped.
stalled_text(#{sent := Sent, delivered := Got, dropped := Dropped}) ->
    flat("~b of ~b messages delivered before the wall-clock cap~ts", [Got, Sent, drops_text(Dropped)]).


drops_text(Dropped) when map_size(Dropped) =:= 0 -> "";
drops_text(Dropped) ->
    flat("; the receiving engine dropped ~ts",
         [lists:join(", ", [flat("~b (~ts)", [N, K]) || {K, N} <- lists:sort(maps:to_list(Dropped))])]).


%% =============================================================================
%% MACHINE
%% =============================================================================


%% @doc What the run runs on, and when it started, plus `Extra' (mode, rounds).
-spec machine(file:filename(), map()) -> map().
machine(Root, Extra) ->
    Extra#{
        time => calendar:system_time_to_rfc3339(erlang:system_time(second),
                                                [{offset, "Z"}]),
        stamp => stamp(),
        nproc => string:trim(os:cmd("nproc")),
        cpu => cpu_model(),
        memory => mem_total(),
        otp => otp_version(),
        git => git(Root)
    }.


stamp() ->
    {{Y, Mo, D}, {H, Mi, S}} = calendar:universal_time(),
    flat("~4..0b~2..0b~2..0bT~2..0b~2..0b~2..0bZ", [Y, Mo, D, H, Mi, S]).


cpu_model() ->
    proc_field("/proc/cpuinfo", "model name", "unknown").


mem_total() ->
    case string:to_integer(proc_field("/proc/meminfo", "MemTotal", "")) of
        {Kb, _} when is_integer(Kb) -> flat("~.1f GiB", [Kb / 1048576]);
        _ -> "unknown"
    end.


proc_field(File, Key, Default) ->
    case file:read_file(File) of
        {ok, Text} ->
            Lines = string:split(binary_to_list(Text), "\n", all),
            Values = [string:trim(V) || L <- Lines, [K, V] <- [string:split(L, ":")],
                                        string:trim(K) =:= Key],
            case Values of [V | _] -> V; [] -> Default end;
        {error, _} ->
            Default
    end.


otp_version() ->
    Release = erlang:system_info(otp_release),
    File = filename:join([code:root_dir(), "releases", Release, "OTP_VERSION"]),
    Version = case file:read_file(File) of
        {ok, V} -> string:trim(binary_to_list(V));
        {error, _} -> Release
    end,
    flat("~ts (erts ~ts)", [Version, erlang:system_info(version)]).


git(Root) ->
    Commit = string:trim(os:cmd("git -C '" ++ Root ++ "' rev-parse --short HEAD 2>/dev/null")),
    %% The bench's own output (bench/results) does not make the source dirty.
    Dirty = os:cmd("git -C '" ++ Root ++ "' status --porcelain -- . ':!bench/results' 2>/dev/null")
        =/= "",
    case Commit of
        "" -> "unknown";
        _ when Dirty -> Commit ++ " (dirty)";
        _ -> Commit
    end.


%% =============================================================================
%% OUTPUT
%% =============================================================================


%% Partial runs (BENCH_ONLY) and quick ones are named apart (and not kept in git).
suffix(_, Only) when is_list(Only) -> "-partial";
suffix(quick, false) -> "-quick";
suffix(tls, false) -> "-tls";
suffix(full, false) -> "".


%% @doc Prints the table and writes `<stamp>.md' and `<stamp>.svg' in `Dir';
%% a full run also writes them as `latest.md' and `latest.svg' (quick and
%% partial runs leave those alone).
-spec write([map()], map(), file:filename()) -> ok.
write(Rows, #{stamp := Stamp0, mode := Mode} = Meta, Dir) ->
    Suffix = suffix(Mode, os:getenv("BENCH_ONLY")),
    Stamp = Stamp0 ++ Suffix,
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Svg = svg(Rows, Meta),
    io:put_chars(markdown(Rows, Meta, Stamp ++ ".svg")),
    Latest = case Suffix of
        "" -> [{"latest.md", markdown(Rows, Meta, "latest.svg")}, {"latest.svg", Svg}];
        _ -> []
    end,
    Files = [{Stamp ++ ".md", markdown(Rows, Meta, Stamp ++ ".svg")},
             {Stamp ++ ".svg", Svg} | Latest],
    [ok = file:write_file(filename:join(Dir, F), unicode:characters_to_binary(Body)) ||
        {F, Body} <- Files],
    io:format("~nwritten: ~ts~n", [string:join([filename:join(Dir, F) || {F, _} <- Files], ", ")]).


%% =============================================================================
%% MARKDOWN
%% =============================================================================


markdown(Rows, Meta, SvgName) ->
    [header(Meta), "\n", machine_table(Meta), "\n", table(Rows, Meta), "\n",
     notes(Rows), "\n", "![partisan / Distributed Erlang per row](", SvgName, ")\n"].


header(#{time := Time, mode := Mode, rounds := Rounds, elapsed_ms := Ms}) ->
    Command = case Mode of
        full -> "make bench";
        quick -> "make bench-quick";
        tls -> "make bench-tls (both transports over TLS)"
    end,
    flat("# partisan vs Distributed Erlang~n~n"
         "Started ~ts, `~ts`: ~b round~ts, each workload over both transports in turn; "
         "total time ~ts.~n", [Time, Command, Rounds, plural(Rounds), duration(Ms)]).


machine_table(#{nproc := N, cpu := Cpu, memory := Mem, otp := Otp, git := Git}) ->
    [md_row(["machine", ""]), md_row(["---", "---"]),
     md_row(["CPUs (nproc)", N]), md_row(["CPU", Cpu]), md_row(["memory", Mem]),
     md_row(["Erlang/OTP", Otp]), md_row(["git", Git])].


md_row(Cells) ->
    ["| ", lists:join(" | ", Cells), " |\n"].


table(Rows, #{rounds := Rounds}) ->
    Spread = case Rounds of 1 -> ""; _ -> " median [min–max]" end,
    Header = ["workload", "unit", "disterl" ++ Spread, "partisan" ++ Spread,
              "partisan / disterl", "partisan is", "long_schedule > 10 ms (disterl / partisan)",
              "sender peak erlang:memory, MB (d / p)", "sender peak RSS, MB (d / p)"],
    Body = [row_cells(Row) || Row <- Rows],
    aligned([Header, [dashes(H) || H <- Header] | Body]).


dashes(_) -> "---".


%% Pads every column to its widest cell, so the Markdown reads as a table on a
%% terminal too.
aligned(Lines) ->
    Widths = lists:foldl(fun(Cells, Ws) -> [max(W, string:length(C)) || {W, C} <- lists:zip(Ws, Cells)] end,
                         [0 || _ <- hd(Lines)], Lines),
    [["| ", lists:join(" | ", [pad(C, W) || {C, W} <- lists:zip(Cells, Widths)]), " |\n"] ||
        Cells <- fill_dashes(Lines, Widths)].


fill_dashes([H, D | Rest], Widths) ->
    [H, [lists:duplicate(W, $-) || {_, W} <- lists:zip(D, Widths)] | Rest].


pad(Cell, Width) ->
    Cell ++ lists:duplicate(Width - string:length(Cell), $\s).


row_cells(#{label := Label, unit := Unit, na := Why}) ->
    [Label, Unit, "", Why, "", "", "", "", ""];
row_cells(#{label := Label, unit := Unit, disterl := D, partisan := P} = Row) ->
    Ratio = ratio(Row),
    [Label, Unit, value_cell(D), value_cell(P),
     case Ratio of none -> "–"; _ -> flat("~.2f", [Ratio]) end,
     verdict(advantage(Ratio, Row)),
     first_only(Row, fun() -> long_cell(D, P) end),
     first_only(Row, fun() -> mem_cell(peak_memory, D, P) end),
     first_only(Row, fun() -> mem_cell(peak_rss, D, P) end)].


first_only(#{first := true}, Fun) -> Fun();
first_only(_, _) -> "″".


%% A transport left out (BENCH_TRANSPORTS) ran nothing.
value_cell(#{values := [], errors := [], runs := 0}) ->
    "not run";
value_cell(#{values := [], errors := [_ | _] = Errors} = S) ->
    case [Sent || {stalled, #{sent := Sent}} <- Errors] of
        [Sent | _] when length(Errors) =:= map_get(runs, S) ->
            flat("stalled (0 of ~ts delivered)", [num(Sent)]);
        _ ->
            "failed" ++ markers(S)
    end;
value_cell(#{values := []} = S) ->
    "failed" ++ markers(S);
value_cell(#{values := Values} = S) ->
    Main = case Values of
        [V] -> num(V);
        _ -> flat("~ts [~ts–~ts]", [num(median(Values)), num(lists:min(Values)),
                                    num(lists:max(Values))])
    end,
    Extra = case maps:get(extra, S) of
        [] -> "";
        Mb -> flat(", ~ts MB/s", [num(median(Mb))])
    end,
    Main ++ Extra ++ markers(S).


markers(#{capped := Capped, lost := Lost, errors := Errors, values := Values, runs := Runs}) ->
    lists:append([" *" || Capped] ++ [" †" || Lost > 0] ++
                 [flat(" (~b/~b runs)", [length(Values), Runs]) || Errors =/= [], Values =/= []]).


long_cell(D, P) ->
    Count = fun(#{long := L}) -> lists:sum(maps:values(L)) end,
    Top = top_location(maps:get(long, P), maps:get(long, D)),
    %% partisan's send NIF calls over 1 ms of wall clock, during partisan's runs.
    Slow = case maps:get(slow_sends, P, 0) of
        0 -> "";
        N -> flat("; ~b NIF sends over 1 ms", [N])
    end,
    flat("~b / ~b~ts~ts", [Count(D), Count(P), Top, Slow]).


top_location(Partisan, Disterl) ->
    case lists:reverse(lists:keysort(2, maps:to_list(Partisan))) ++
         lists:reverse(lists:keysort(2, maps:to_list(Disterl))) of
        [] -> "";
        [{Loc, N} | _] -> flat(", top: ~ts (~b)", [location(Loc), N])
    end.


%% {Node role (a: sender side, b: receiver side), where}.
location({Role, Where}) -> flat("~ts: ~ts", [Role, where(Where)]).


where({M, F, A}) -> flat("~ts:~ts/~b", [M, F, A]);
where({port_op, Op}) -> flat("port ~p", [Op]);
where({near, MFA}) -> "near " ++ where(MFA);
where(unknown) -> "unknown code".


mem_cell(Key, D, P) ->
    flat("~b / ~b", [round(maps:get(Key, D) / 1.0e6), round(maps:get(Key, P) / 1.0e6)]).


notes(Rows) ->
    Errors = [{L, T, E} || #{label := L} = R <- Rows, T <- [disterl, partisan],
                           #{errors := Es} <- [maps:get(T, R, #{errors => []})], E <- Es],
    ["Reading it: *partisan / disterl* is the ratio of the medians; *partisan is* turns it into a "
     "factor in the row's favourable direction (more msg/s, fewer µs). "
     "`*` a run stopped at its wall-clock cap before it was done (figures are over what it "
     "measured); `†` messages lost (sent but not received); "
     "long_schedule counts `long_schedule` events over 10 ms on both nodes, all rounds together "
     "(″: same workload as above), and says how many of partisan's `send` NIF calls took over "
     "1 ms of wall clock meanwhile (none: the events are not our NIF's). See bench/README.md.\n" |
     [error_note(L, T, E) || {L, T, E} <- Errors]].


error_note(Label, Transport, {stalled, Info}) ->
    flat("~nstalled: ~ts over ~ts: ~ts~n", [Label, Transport, stalled_text(Info)]);
error_note(Label, Transport, {error, {bench_not_the_sender, Info}}) ->
    #{pid := Pid, pid_node := PidNode, ref_node := RefNode, sender_node := SenderNode} = Info,
    flat("~nerror: ~ts over ~ts: a message carried the pid ~p, of node ~p, and a reference of "
         "node ~p; the receiver expected its sender, a process of node ~p~n",
         [Label, Transport, Pid, PidNode, RefNode, SenderNode]);
error_note(Label, Transport, Error) ->
    flat("~nerror: ~ts over ~ts: ~P~n", [Label, Transport, Error, 12]).


%% =============================================================================
%% SVG
%% =============================================================================

-define(W, 980).
-define(X0, 330).
-define(X1, 900).
-define(TOP, 92).
-define(ROW_H, 24).


svg(Rows, Meta) ->
    Bound = bound(Rows),
    Height = ?TOP + length(Rows) * ?ROW_H + 64,
    Scale = fun(V) -> x(V, Bound) end,
    [flat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"~b\" height=\"~b\" "
          "viewBox=\"0 0 ~b ~b\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">~n",
          [?W, Height, ?W, Height]),
     flat("<rect width=\"~b\" height=\"~b\" fill=\"white\"/>~n", [?W, Height]),
     svg_title(Meta),
     svg_rows(Rows, Scale),
     svg_axis(Bound, Scale, ?TOP + length(Rows) * ?ROW_H),
     svg_legend(?TOP + length(Rows) * ?ROW_H + 40),
     "</svg>\n"].


svg_title(#{time := Time, mode := Mode, rounds := Rounds, nproc := N, cpu := Cpu, otp := Otp,
            git := Git}) ->
    [text(20, 26, "partisan vs Distributed Erlang: how many times better partisan is, per row",
          "font-size=\"17\" font-weight=\"bold\""),
     text(20, 46, flat("~ts · ~ts, median of ~b round~ts, whiskers: per-round range · "
                       "~ts CPUs, ~ts · OTP ~ts · ~ts",
                       [Time, Mode, Rounds, plural(Rounds), N, Cpu, Otp, Git]),
          "fill=\"#555\"")].


svg_rows(Rows, Scale) ->
    Indexed = lists:zip(lists:seq(0, length(Rows) - 1), Rows),
    [svg_row(I, Row, Scale) || {I, Row} <- Indexed].


svg_row(I, Row, Scale) ->
    Y = ?TOP + I * ?ROW_H,
    Mid = Y + ?ROW_H div 2,
    Band = case I rem 2 of
        0 -> flat("<rect x=\"10\" y=\"~b\" width=\"~b\" height=\"~b\" fill=\"#f4f4f4\"/>~n",
                  [Y, ?W - 20, ?ROW_H]);
        1 -> ""
    end,
    Label = text(?X0 - 10, Mid + 4, maps:get(label, Row) ++ " (" ++ maps:get(unit, Row) ++ ")",
                 "text-anchor=\"end\""),
    [Band, Label, svg_bar(Row, Mid, Scale)].


svg_bar(#{na := Why}, Mid, Scale) ->
    text(Scale(1.0) + 8, Mid + 4, Why, "fill=\"#888\" font-style=\"italic\"");
svg_bar(Row, Mid, Scale) ->
    case advantage(ratio(Row), Row) of
        none ->
            text(Scale(1.0) + 8, Mid + 4, no_result(Row), "fill=\"#888\" font-style=\"italic\"");
        Adv ->
            Whiskers = [advantage(R, Row) || R <- maps:get(ratios, Row)],
            [bar(Adv, Mid, Scale), whisker(Whiskers, Mid, Scale), bar_label(Adv, Whiskers, Mid, Scale)]
    end.


%% Why a row has no bar: a transport stalled, or no result at all.
no_result(Row) ->
    Stalled = [T || T <- [disterl, partisan],
                    #{errors := Es} <- [maps:get(T, Row, #{errors => []})],
                    lists:any(fun({stalled, _}) -> true; (_) -> false end, Es)],
    case Stalled of
        [] -> "no result";
        _ -> flat("no result: ~ts stalled", [lists:join(" and ", [atom_to_list(T) || T <- Stalled])])
    end.


bar(Adv, Mid, Scale) ->
    {XA, XB} = {Scale(1.0), Scale(Adv)},
    Color = case Adv >= 1 of true -> "#2e7d32"; false -> "#c62828" end,
    flat("<rect x=\"~.1f\" y=\"~b\" width=\"~.1f\" height=\"14\" fill=\"~ts\" opacity=\"0.85\"/>~n",
         [min(XA, XB), Mid - 7, max(1.0, abs(XB - XA)), Color]).


whisker(Advs, _Mid, _Scale) when length(Advs) < 2 ->
    "";
whisker(Advs, Mid, Scale) ->
    {Lo, Hi} = {Scale(lists:min(Advs)), Scale(lists:max(Advs))},
    [line(Lo, Mid, Hi, Mid, "#222"), line(Lo, Mid - 4, Lo, Mid + 4, "#222"),
     line(Hi, Mid - 4, Hi, Mid + 4, "#222")].


bar_label(Adv, Whiskers, Mid, Scale) ->
    Label = verdict(Adv),
    case Adv >= 1 of
        true -> text(Scale(lists:max([Adv | Whiskers])) + 6, Mid + 4, Label, "");
        false -> text(Scale(lists:min([Adv | Whiskers])) - 6, Mid + 4, Label, "text-anchor=\"end\"")
    end.


svg_axis(Bound, Scale, Bottom) ->
    Ticks = ticks(Bound),
    [[[line(Scale(T), ?TOP - 6, Scale(T), Bottom, "#ccc"),
       text(Scale(T), ?TOP - 10, tick_label(T), "text-anchor=\"middle\" fill=\"#555\""),
       text(Scale(T), Bottom + 16, tick_label(T), "text-anchor=\"middle\" fill=\"#555\"")]
      || T <- Ticks],
     flat("<line x1=\"~.1f\" y1=\"~b\" x2=\"~.1f\" y2=\"~b\" stroke=\"#000\" stroke-width=\"2\"/>~n",
          [Scale(1.0), ?TOP - 6, Scale(1.0), Bottom]),
     text(?X0 + 4, ?TOP - 26, "◀ Distributed Erlang better", "fill=\"#c62828\""),
     text(?X1 - 4, ?TOP - 26, "partisan better ▶", "text-anchor=\"end\" fill=\"#2e7d32\"")].


svg_legend(Y) ->
    text(20, Y, "Bar: median of partisan / Distributed Erlang, turned so that right is better for "
                "partisan (more msg/s, fewer µs); log scale, the black line is 1× (equal).",
         "fill=\"#555\"").


%% The scale runs from 1/Bound to Bound.
bound(Rows) ->
    Advs = lists:append([[advantage(R, Row) || R <- [ratio(Row) | maps:get(ratios, Row, [])]]
                         || Row <- Rows, not maps:is_key(na, Row)]),
    Extreme = lists:max([1.0 | [max(A, 1 / A) || A <- Advs, is_number(A), A > 0]]),
    hd([B || B <- [2, 5, 10, 20, 50, 100, 200, 500, 1000], B >= Extreme * 1.15] ++ [1000]).


%% 1-2-5 steps (and 1.5 near 1 on a narrow scale); powers of ten and 2 on a
%% wide one.
ticks(Bound) ->
    Steps = case Bound of
        B when B =< 5 -> [1, 1.5, 2, 5];
        B when B =< 100 -> [1, 2, 5];
        _ -> [1]
    end,
    Up = lists:usort([2 | [S * math:pow(10, E) || E <- lists:seq(0, 3), S <- Steps]]),
    All = lists:usort(Up ++ [1 / T || T <- Up]),
    [nice(T) || T <- All, T >= 1 / Bound * 0.999, T =< Bound * 1.001].


nice(T) when T >= 1, T == round(T) -> round(T);
nice(T) -> T.


x(V, Bound) ->
    L = math:log10(Bound),
    Clamped = max(1 / Bound, min(Bound, V)),
    ?X0 + (math:log10(Clamped) + L) / (2 * L) * (?X1 - ?X0).


text(X, Y, Text, Attrs) ->
    flat("<text x=\"~.1f\" y=\"~b\" ~ts>~ts</text>~n", [float(X), Y, Attrs, escape(Text)]).


line(X1, Y1, X2, Y2, Color) ->
    flat("<line x1=\"~.1f\" y1=\"~b\" x2=\"~.1f\" y2=\"~b\" stroke=\"~ts\"/>~n",
         [float(X1), Y1, float(X2), Y2, Color]).


escape(Text) ->
    lists:append([escape_char(C) || C <- Text]).


escape_char($&) -> "&amp;";
escape_char($<) -> "&lt;";
escape_char($>) -> "&gt;";
escape_char($") -> "&quot;";
escape_char(C) -> [C].


%% =============================================================================
%% NUMBERS
%% =============================================================================


%% partisan / disterl, of the medians.
ratio(#{disterl := #{values := [_ | _] = D}, partisan := #{values := [_ | _] = P}}) ->
    case median(D) of
        Zero when Zero == 0 -> none;
        MD -> median(P) / MD
    end;
ratio(_) ->
    none.


%% The ratio in the row's favourable direction: > 1 when partisan is better.
advantage(none, _) -> none;
advantage(Ratio, _) when Ratio == 0 -> none;
advantage(Ratio, #{better := higher}) -> Ratio;
advantage(Ratio, #{better := lower}) -> 1 / Ratio.


verdict(none) -> "–";
verdict(Adv) when abs(Adv - 1) < ?SAME -> "about the same";
verdict(Adv) when Adv > 1 -> flat("~ts× better", [factor(Adv)]);
verdict(Adv) -> flat("~ts× worse", [factor(1 / Adv)]).


factor(F) when F >= 10 -> flat("~b", [round(F)]);
factor(F) when F >= 1 -> flat("~.2f", [float(F)]);
factor(F) -> flat("~.3g", [float(F)]).


tick_label(T) when is_integer(T) -> integer_to_list(T) ++ "×";
tick_label(T) -> float_to_list(T, [{decimals, 3}, compact]) ++ "×".


median(Values) ->
    Sorted = lists:sort(Values),
    N = length(Sorted),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, Sorted);
        0 -> (lists:nth(N div 2, Sorted) + lists:nth(N div 2 + 1, Sorted)) / 2
    end.


%% Three significant digits, with k / M / G for large numbers.
num(V) when V >= 1.0e9 -> flat("~tsG", [sig3(V / 1.0e9)]);
num(V) when V >= 1.0e6 -> flat("~tsM", [sig3(V / 1.0e6)]);
num(V) when V >= 1.0e4 -> flat("~tsk", [sig3(V / 1.0e3)]);
num(V) when V >= 100 -> integer_to_list(round(V));
num(V) -> sig3(V).


sig3(V) when V >= 100 -> integer_to_list(round(V));
sig3(V) when V >= 10 -> flat("~.1f", [float(V)]);
sig3(V) -> flat("~.2f", [float(V)]).


duration(Ms) when Ms >= 60000 -> flat("~b min ~b s", [Ms div 60000, (Ms rem 60000) div 1000]);
duration(Ms) -> flat("~.1f s", [Ms / 1000]).


plural(1) -> "";
plural(_) -> "s".


flat(Fmt, Args) ->
    lists:flatten(io_lib:format(Fmt, Args)).
