# The tests start partisan on peer nodes (OTP's :peer). Distributed Erlang is
# used only to orchestrate them (start nodes, run calls, collect results); the
# messages under test travel over partisan. So this node must be distributed,
# which needs epmd.
epmd =
  System.find_executable("epmd") ||
    Path.join([to_string(:code.root_dir()), "bin", "epmd"])

{_, 0} = System.cmd(epmd, ["-daemon"])

unless Node.alive?() do
  name = :"exunit_#{System.pid()}@127.0.0.1"
  {:ok, _} = :net_kernel.start([name, :longnames])
end

ExUnit.start(timeout: 120_000)
