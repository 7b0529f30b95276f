defmodule Mix.Tasks.Compile.PartisanNif do
  @moduledoc """
  Builds the Rust NIF (`native/partisan_nif`, a Cargo workspace member) with
  cargo and installs it as `priv/libpartisan_nif.so`.

  It runs `scripts/build_nif.sh`, the same script rebar3's hook runs, so both
  build tools produce the same library. The script needs `cargo` (rustup).
  Set `PARTISAN_NIF_SKIP_BUILD=1` to only install a library that is already built.
  """
  use Mix.Task.Compiler

  @root Path.dirname(__ENV__.file)

  @impl Mix.Task.Compiler
  def run(_args) do
    script = Path.join(@root, "scripts/build_nif.sh")

    case System.cmd("bash", [script],
           cd: @root,
           stderr_to_stdout: true,
           into: IO.stream(:stdio, :line)
         ) do
      {_, 0} ->
        link_priv()
        {:ok, []}

      {_, status} ->
        Mix.shell().error("partisan: building the NIF failed (#{script} exited with #{status})")
        {:error, []}
    end
  end

  @impl Mix.Task.Compiler
  def clean do
    File.rm(Path.join([@root, "priv", "libpartisan_nif.so"]))
    :ok
  end

  # Mix links priv/ into _build/<env>/lib/partisan only when priv/ exists
  # before compilers run; on a fresh checkout the script has just created it.
  defp link_priv do
    if not File.exists?(Path.join(Mix.Project.app_path(), "priv")) do
      Mix.Project.build_structure()
    end

    :ok
  end
end

defmodule Partisan.MixProject do
  use Mix.Project

  # The OTP application is described once, in src/partisan.app.src (rebar3's
  # source of truth); mix reads it so both tools build the same application.
  @app_src Path.join(Path.dirname(__ENV__.file), "src/partisan.app.src")
  @external_resource @app_src

  def project do
    [
      app: :partisan,
      version: version(),
      elixir: "~> 1.14",
      description: description(),
      # :partisan_nif runs cargo first so priv/libpartisan_nif.so exists.
      compilers: [:partisan_nif | Mix.compilers()],
      erlc_paths: ["src"],
      erlc_include_path: "include",
      erlc_options: [:debug_info, :warn_export_vars, :warn_shadow_vars, :warn_obsolete_guard],
      elixirc_paths: elixirc_paths(Mix.env()),
      # rebar3's test profile builds into _build/test; keep mix's output apart.
      # (When partisan is a dependency, the parent project's build path wins.)
      build_path: "_build/mix",
      test_paths: ["test"],
      test_pattern: "*_test.exs",
      deps: [],
      # The tests start partisan on peer nodes, not on the test runner.
      aliases: [test: "test --no-start"],
      docs: [main: "readme", extras: ["README.md", "CHANGELOG.md"]]
    ]
  end

  def application do
    props = app_src()
    otp_builtin = [:kernel, :stdlib, :elixir]

    [extra_applications: Keyword.get(props, :applications, []) -- otp_builtin]
    |> put_present(:mod, props[:mod])
    |> put_present(:env, props[:env])
    |> put_present(:registered, props[:registered])
    |> put_present(:included_applications, props[:included_applications])
  end

  # test/support holds modules that the tests load on their peer nodes.
  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp version do
    with vsn when is_list(vsn) <- Keyword.get(app_src(), :vsn),
         {:ok, version} <- Version.parse(List.to_string(vsn)) do
      to_string(version)
    else
      _ -> "0.1.0"
    end
  end

  defp description do
    case Keyword.get(app_src(), :description) do
      text when is_list(text) -> List.to_string(text)
      _ -> "Partisan 5 compatible distribution library with a Rust (NIF) transport"
    end
  end

  defp app_src do
    case :file.consult(String.to_charlist(@app_src)) do
      {:ok, [{:application, :partisan, props}]} -> props
      _ -> []
    end
  end

  defp put_present(keyword, _key, nil), do: keyword
  defp put_present(keyword, key, value), do: Keyword.put(keyword, key, value)
end
