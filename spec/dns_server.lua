-- spec/dns_server.lua: a real DNS server for specs -- Debian's dnsmasq,
-- started by the test on a free loopback port with no upstream, its
-- names from a hosts file in a temporary directory:
--   a.test.example      10.1.2.3 and fd00::1:2:3
--   n<i>.test.example   10.0.<i // 256>.<i % 256> for i = 1 .. 300
-- Everything else under test.example is NXDOMAIN (--local).
--   local D = require "dns_server"
--   local srv = D.start()   -- in a task; srv.port; D.stop(srv)
local aio = require "luaio"
local H = require "helper"

local D = {}

-- The lowest port of the kernel's ephemeral range.
local function ephemeral_low()
  local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
  local lo = f and tonumber((f:read("l") or ""):match("^%s*(%d+)"))
  if f then f:close() end
  return lo or 32768
end

-- Can a server bind port on 127.0.0.1 for UDP and for TCP now?
local function bindable(port)
  local ok, s = pcall(aio.open_udp, { host = "127.0.0.1", port = port })
  if not ok or not s then return false end
  s:close()
  local ok2, srv = pcall(aio.start_server, function() end, "127.0.0.1", port)
  if not ok2 or not srv then return false end
  srv:close()
  srv:wait_closed()
  return true
end

-- A free loopback port for dnsmasq, below the ephemeral range.  dnsmasq
-- listens on TCP too, without SO_REUSEADDR: a port that an earlier
-- spec's connection left in TIME_WAIT makes it exit with "Address
-- already in use".  After the TCP-heavy specs many ports of the ephemeral
-- range are in that state, and a port the kernel picks for port 0 comes
-- from that range (five picks in a row failed once in CI).  Outgoing
-- connections take their local ports only from that range, so a port
-- below it is not left in TIME_WAIT by them.  (The race with another process
-- taking the port first is the usual one.)
local function free_port()
  local lo = ephemeral_low()
  if lo > 11000 then
    for _ = 1, 100 do
      local port = math.random(10000, lo - 1)
      if bindable(port) then return port end
    end
  end
  local s = aio.open_udp { host = "127.0.0.1", port = 0 }
  local _, port = s:getsockname()
  s:close()
  return port
end

-- The bytes of a DNS query for name (type A), id 0x1234.
local function query(name)
  local q = { string.pack(">I2I2I2I2I2I2", 0x1234, 0x0100, 1, 0, 0, 0) }
  for label in name:gmatch("[^.]+") do q[#q + 1] = string.char(#label) .. label end
  q[#q + 1] = "\0" .. string.pack(">I2I2", 1, 1)
  return table.concat(q)
end
D.query = query

-- Does the server on port answer a query?
local function answers(port)
  local s = aio.open_udp { host = "127.0.0.1", port = 0 }
  s:sendto(query("a.test.example"), "127.0.0.1", port)
  local ok = pcall(aio.wait_for, function() return s:recvfrom() end, 0.1)
  s:close()
  return ok
end

-- Starts dnsmasq on a free port in dir: srv | nil, what it said when it
-- exited at once (its port taken meanwhile, for TCP or UDP).
local function try_start(dir)
  local port = free_port()
  local proc = aio.create_subprocess_exec("dnsmasq", {
    "--no-daemon", "--conf-file=/dev/null", "--port=" .. port,
    "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
    "--addn-hosts=" .. dir .. "/hosts", "--local=/test.example/", "--pid-file=",
    "--log-facility=" .. dir .. "/log", "--cache-size=0",
  }, { stdin = aio.DEVNULL, stdout = aio.DEVNULL, stderr = aio.PIPE })
  for _ = 1, 200 do
    if answers(port) then return { proc = proc, dir = dir, port = port } end
    if proc.returncode then return nil, proc.stderr:read() end
    aio.sleep(0.01)
  end
  pcall(proc.kill, proc)
  proc:wait()
  error("dnsmasq did not answer: " .. tostring(H.readall(dir .. "/log")))
end

function D.start()
  local dir = H.tmpdir()
  local f = assert(io.open(dir .. "/hosts", "w"))
  f:write("10.1.2.3 a.test.example\nfd00::1:2:3 a.test.example\n")
  for i = 1, 300 do f:write(("10.0.%d.%d n%d.test.example\n"):format(i // 256, i % 256, i)) end
  f:close()
  local why
  for _ = 1, 5 do
    local srv
    srv, why = try_start(dir)
    if srv then return srv end
  end
  H.rmrf(dir)
  error("dnsmasq did not start (5 ports tried): " .. tostring(why))
end

function D.stop(srv)
  if srv.proc.returncode == nil then pcall(srv.proc.kill, srv.proc) end
  srv.proc:wait()
  H.rmrf(srv.dir)
end

-- Runs fn(srv) in a guarded loop with a fresh dnsmasq, stopped however
-- fn ends.
function D.with_server(fn, limit)
  H.guarded(function()
    local srv = D.start()
    local ok, err = pcall(fn, srv)
    D.stop(srv)
    if not ok then error(err, 0) end
  end, nil, limit or 5)
end

return D
