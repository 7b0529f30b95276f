defmodule Partisan do
  @moduledoc """
  Elixir interface to partisan, a Partisan 5 compatible distribution library
  whose transport is a Rust NIF.

  Every function delegates to the Erlang API (`:partisan`, and
  `:partisan_peer_service` for cluster membership) and returns what it returns.
  Predicates get Elixir names (`connected?/1` for `:partisan.is_connected/1`);
  the Erlang names are kept as well, so code ported from Erlang reads the same.

      # on each node (listen on an ephemeral port on the loopback)
      Application.put_env(:partisan, :listen_addrs, [%{ip: {127, 0, 0, 1}, port: 0}])
      {:ok, _} = Partisan.start()

      # on node b, with spec_a = Partisan.node_spec() from node a
      :ok = Partisan.join(spec_a)

      # anywhere in the cluster
      Partisan.forward_message({:my_server, :"a@127.0.0.1"}, {:hello, Partisan.node()})
  """

  # Partisan mirrors erlang:node/0, self/0, send/2 and make_ref/0.
  import Kernel, except: [node: 0, node: 1, self: 0, send: 2, make_ref: 0]

  @typedoc "A channel name; `:undefined` is the default channel."
  @type channel :: atom()

  @typedoc "Options of a channel (`channels` application env)."
  @type channel_opts :: %{
          optional(:parallelism) => pos_integer(),
          optional(:monotonic) => boolean(),
          optional(:compression) => boolean() | 0..9
        }

  @typedoc "An address a node listens on."
  @type listen_addr :: %{ip: :inet.ip_address(), port: :inet.port_number()}

  @typedoc "What another node needs to connect to this one (see `node_spec/0`)."
  @type node_spec :: %{
          required(:name) => node(),
          required(:listen_addrs) => [listen_addr()],
          required(:channels) => %{channel() => channel_opts()}
        }

  @typedoc "A partisan remote reference (a pid, reference or name valid across the cluster)."
  @type remote_ref :: binary() | tuple()

  @typedoc "A message destination."
  @type server_ref ::
          pid()
          | atom()
          | remote_ref()
          | {atom(), node()}
          | {:global, atom()}
          | {:via, module(), atom()}

  @typedoc "Options of `forward_message/3` (`channel`, `partition_key`, `ack`, ...)."
  @type forward_opts :: map() | keyword()

  @typedoc "Node kinds for `nodes/1`."
  @type node_type :: :this | :known | :visible | :connected | :hidden

  ## Application

  @doc "Starts the partisan application and what it needs."
  @spec start() :: {:ok, [atom()]} | {:error, term()}
  defdelegate start(), to: :partisan

  @doc "Stops the partisan application."
  @spec stop() :: :ok | {:error, term()}
  defdelegate stop(), to: :partisan

  ## This node

  @doc "The partisan name of this node."
  @spec node() :: node()
  defdelegate node(), to: :partisan

  @doc "The node of a pid, reference, port or remote reference."
  @spec node(pid() | reference() | port() | remote_ref() | node()) :: node()
  defdelegate node(term), to: :partisan

  @doc "The name of this node as a binary."
  @spec nodestring() :: binary()
  defdelegate nodestring(), to: :partisan

  @doc "This node's spec: give it to `join/1` on another node."
  @spec node_spec() :: node_spec()
  defdelegate node_spec(), to: :partisan

  @doc "The spec of another node, asked for over Distributed Erlang (as Partisan 5 does)."
  @spec node_spec(node() | binary() | charlist()) :: {:ok, node_spec()} | {:error, term()}
  defdelegate node_spec(node), to: :partisan

  @doc "The calling process as a partisan remote reference."
  @spec self() :: remote_ref()
  defdelegate self(), to: :partisan

  @doc "A new reference, as a partisan remote reference."
  @spec make_ref() :: remote_ref()
  defdelegate make_ref(), to: :partisan

  @doc "Whether partisan is running on this node."
  @spec alive?() :: boolean()
  defdelegate alive?(), to: :partisan, as: :is_alive

  @doc "Same as `alive?/0`."
  @spec is_alive() :: boolean()
  defdelegate is_alive(), to: :partisan

  @doc "The default channel (`:undefined`)."
  @spec default_channel() :: channel()
  defdelegate default_channel(), to: :partisan

  ## Cluster

  @doc "The nodes this node is connected to (not itself)."
  @spec nodes() :: [node()]
  defdelegate nodes(), to: :partisan

  @doc "Nodes of the given kind, as `:erlang.nodes/1`."
  @spec nodes(node_type() | [node_type()]) :: [node()]
  defdelegate nodes(type), to: :partisan

  @doc "Joins the cluster that the node described by `node_spec` is part of."
  @spec join(node_spec()) :: :ok | {:error, term()}
  defdelegate join(node_spec), to: :partisan_peer_service

  @doc "Makes this node leave the cluster."
  @spec leave() :: :ok
  defdelegate leave(), to: :partisan_peer_service

  @doc "The cluster members, this node included."
  @spec members() :: {:ok, [node()]}
  defdelegate members(), to: :partisan_peer_service

  @doc "Whether at least one connection to `node` is up."
  @spec connected?(node() | node_spec()) :: boolean()
  defdelegate connected?(node), to: :partisan, as: :is_connected

  @doc "Whether at least one connection to `node` on `channel` is up."
  @spec connected?(node() | node_spec(), channel()) :: boolean()
  defdelegate connected?(node, channel), to: :partisan, as: :is_connected

  @doc "Same as `connected?/1`."
  @spec is_connected(node() | node_spec()) :: boolean()
  defdelegate is_connected(node), to: :partisan

  @doc "Same as `connected?/2`."
  @spec is_connected(node() | node_spec(), channel()) :: boolean()
  defdelegate is_connected(node, channel), to: :partisan

  @doc "Whether every connection (each channel times its parallelism) to `node` is up."
  @spec fully_connected?(node() | node_spec()) :: boolean()
  defdelegate fully_connected?(node), to: :partisan, as: :is_fully_connected

  @doc "Same as `fully_connected?/1`."
  @spec is_fully_connected(node() | node_spec()) :: boolean()
  defdelegate is_fully_connected(node), to: :partisan

  @doc "Closes every connection to the given nodes (members reconnect)."
  @spec kill_connections(node() | [node()]) :: :ok
  defdelegate kill_connections(nodes), to: :partisan

  ## Messages

  @doc """
  Sends `message` to `server_ref` over partisan, asynchronously; returns `:ok`.
  `server_ref` is a pid, a registered name, `{name, node}` or a remote reference.
  """
  @spec forward_message(server_ref(), term()) :: :ok
  defdelegate forward_message(server_ref, message), to: :partisan

  @doc "`forward_message/2` with options: `channel`, `partition_key`, `ack`, ..."
  @spec forward_message(server_ref(), term(), forward_opts()) :: :ok
  defdelegate forward_message(server_ref, message, opts), to: :partisan

  @doc "Sends `message` to `server_ref` on `node`."
  @spec forward_message(node(), server_ref(), term(), forward_opts()) :: :ok
  defdelegate forward_message(node, server_ref, message, opts), to: :partisan

  @doc "Sends `{:\"$gen_cast\", message}` to `server_ref`, for `partisan_gen_server`."
  @spec cast_message(server_ref(), term()) :: :ok
  defdelegate cast_message(server_ref, message), to: :partisan

  @doc "`cast_message/2` with options."
  @spec cast_message(server_ref(), term(), forward_opts()) :: :ok
  defdelegate cast_message(server_ref, message, opts), to: :partisan

  @doc "`cast_message/3` to `server_ref` on `node`."
  @spec cast_message(node(), server_ref(), term(), forward_opts()) :: :ok
  defdelegate cast_message(node, server_ref, message, opts), to: :partisan

  @doc "Like `Kernel.send/2` but over partisan; returns `message`."
  @spec send(server_ref(), term()) :: term()
  defdelegate send(dest, message), to: :partisan

  @doc "Like `:erlang.send/3` but over partisan."
  @spec send(server_ref(), term(), forward_opts()) :: :ok | :nosuspend | :noconnect
  defdelegate send(dest, message, opts), to: :partisan

  @doc "The local pid registered as `name` (an atom or a remote name)."
  @spec whereis(atom() | remote_ref()) :: pid() | port() | :undefined
  defdelegate whereis(name), to: :partisan

  ## Monitors

  @doc "Monitors a process on any node over partisan (see `:partisan.monitor/3`)."
  @spec monitor(term()) :: reference()
  defdelegate monitor(target), to: :partisan

  @doc "Like `:erlang.monitor/2`, for processes on any node over partisan."
  @spec monitor(:process | :port | :time_offset, term()) :: reference()
  defdelegate monitor(type, target), to: :partisan

  @doc "Like `:erlang.monitor/3`; options also `{:channel, c}` and `{:channel_fallback, bool}`."
  @spec monitor(:process | :port | :time_offset, term(), list()) :: reference()
  defdelegate monitor(type, target, opts), to: :partisan

  @doc "Removes a monitor made by `monitor/1,2,3`."
  @spec demonitor(reference()) :: true
  defdelegate demonitor(ref), to: :partisan

  @doc "Like `:erlang.demonitor/2` (`:flush`, `:info`)."
  @spec demonitor(reference(), [:flush | :info]) :: boolean()
  defdelegate demonitor(ref, opts), to: :partisan

  @doc "Like `:erlang.monitor_node/2`, over partisan's connections."
  @spec monitor_node(node() | node_spec(), boolean()) :: true
  defdelegate monitor_node(node, flag), to: :partisan

  @doc "Like `:net_kernel.monitor_nodes/1`, over partisan's connections."
  @spec monitor_nodes(boolean()) :: :ok | :error
  defdelegate monitor_nodes(flag), to: :partisan

  @doc "Like `:net_kernel.monitor_nodes/2` (`:nodedown_reason`, `{:node_type, t}`)."
  @spec monitor_nodes(boolean(), list()) :: :ok | :error
  defdelegate monitor_nodes(flag, opts), to: :partisan
end
