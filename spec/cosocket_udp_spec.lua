-- spec/cosocket_udp_spec.lua: aio.ngx's ngx.socket.udp (luaio.ngx_udp)
-- against luaio UDP peers on loopback -- its values and OpenResty's error
-- strings, peer filtering, timeouts, cancellation -- and Debian's
-- lua-nginx-dns (lua-resty-dns, /usr/share/lua/5.1/nginx/dns/resolver.lua)
-- unchanged against a real dnsmasq that each test starts (spec/dns_server):
-- A and AAAA answers, NXDOMAIN, a server that never answers, the TCP
-- fallback, hundreds of concurrent queries.
local aio = require "luaio"
local H = require "helper"
local D = require "dns_server"

local ngx = aio.ngx
ngx.install()     -- lua-resty-dns reads ngx.socket.udp, ngx.re and bit when loaded
package.path = "/usr/share/lua/5.1/nginx/?.lua;" .. package.path
local resolver = require "dns.resolver"

local HOST = "127.0.0.1"
local errof = H.errof

local function bound()
  local s = aio.open_udp { host = HOST, port = 0 }
  local _, port = s:getsockname()
  return s, port
end

-- A peer answering each datagram with "re:" .. it; stop() closes it.
local function echo_peer()
  local s, port = bound()
  local t = aio.create_task(function()
    while true do
      local data, ip, p = s:recvfrom()
      s:sendto("re:" .. data, ip, p)
    end
  end)
  return port, function()
    t:cancel()
    pcall(aio.await, t)
    s:close()
  end
end

local function connected(port)
  local sock = ngx.socket.udp()
  assert.equal(1, sock:setpeername(HOST, port))
  return sock
end

describe("ngx.socket.udp", function()
  it("sends strings, numbers and nested arrays; receive gives the peer's datagram", function()
    H.closes_fds(function()
      local port, stop = echo_peer()
      local sock = connected(port)
      assert.equal(1, sock:send("ping"))
      assert.equal("re:ping", sock:receive())
      assert.equal(1, sock:send({ "a", { "b", 42 }, 1.5 }))
      assert.equal("re:ab421.5", sock:receive())
      assert.equal(1, sock:send(7))
      assert.equal("re:7", sock:receive(8192))
      assert.equal(1, sock:close())
      stop()
    end)
  end)

  it("receive(size) cuts the datagram to size", function()
    H.closes_fds(function()
      local port, stop = echo_peer()
      local sock = connected(port)
      sock:send(string.rep("x", 100))
      assert.equal("re:xx", sock:receive(5))
      sock:close()
      stop()
    end)
  end)

  it("keeps only the peer's datagrams", function()
    H.closes_fds(function()
      local peer, pport = bound()
      local other = bound()
      local sock = connected(pport)
      sock:send("hello")
      local _, ip, cport = peer:recvfrom()
      other:sendto("intruder", ip, cport)
      aio.sleep(0.02)                       -- (it arrives first)
      peer:sendto("from the peer", ip, cport)
      assert.equal("from the peer", sock:receive())
      sock:close()
      peer:close()
      other:close()
    end)
  end)

  it("says \"closed\" before setpeername, after close, and on a second close", function()
    H.closes_fds(function()
      local sock = ngx.socket.udp()
      assert.same({ nil, "closed" }, { sock:send("x") })
      assert.same({ nil, "closed" }, { sock:receive() })
      assert.same({ nil, "closed" }, { sock:close() })
      local port, stop = echo_peer()
      assert.equal(1, sock:setpeername(HOST, port))
      assert.equal(1, sock:close())
      assert.same({ nil, "closed" }, { sock:send("x") })
      assert.same({ nil, "closed" }, { sock:receive() })
      assert.same({ nil, "closed" }, { sock:close() })
      stop()
    end)
  end)

  it("times out with \"timeout\" and stays usable", function()
    H.closes_fds(function()
      local peer, pport = bound()
      local sock = connected(pport)
      sock:settimeout(50)
      local t0 = aio.time()
      assert.same({ nil, "timeout" }, { sock:receive() })
      assert.is_true(aio.time() - t0 >= 0.045)
      sock:send("late")
      local _, ip, cport = peer:recvfrom()
      peer:sendto("answer", ip, cport)
      assert.equal("answer", sock:receive())
      sock:close()
      peer:close()
    end)
  end)

  it("a second receiver gets \"socket busy\"", function()
    H.closes_fds(function()
      local peer, pport = bound()
      local sock = connected(pport)
      local t = aio.create_task(sock.receive, sock)
      aio.sleep(0)
      assert.same({ nil, "socket busy" }, { sock:receive() })
      sock:send("hi")
      local _, ip, cport = peer:recvfrom()
      peer:sendto("one", ip, cport)
      assert.equal("one", aio.await(t))
      sock:close()
      peer:close()
    end)
  end)

  it("closing it under a receiver wakes the receiver with \"closed\"", function()
    H.closes_fds(function()
      local peer, pport = bound()
      local sock = connected(pport)
      local t = aio.create_task(function() return table.pack(sock:receive()) end)
      aio.sleep(0)
      assert.equal(1, sock:close())
      local r = aio.await(t)
      assert.same({ n = 2, nil, "closed" }, r)
      peer:close()
    end)
  end)

  it("a task cancelled in receive gets CancelledError; no datagram is lost", function()
    H.closes_fds(function()
      local peer, pport = bound()
      local sock = connected(pport)
      local t = aio.create_task(sock.receive, sock)
      aio.sleep(0)
      sock:send("hi")
      local _, ip, cport = peer:recvfrom()
      peer:sendto("kept", ip, cport)
      t:cancel()                    -- (before the receiver could run again)
      local ok, err = pcall(aio.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
      assert.equal("kept", sock:receive())
      sock:close()
      peer:close()
    end)
  end)

  it("setpeername again moves to the new peer (the old socket is closed)", function()
    H.closes_fds(function()
      local p1, stop1 = echo_peer()
      local p2, stop2 = echo_peer()
      local sock = connected(p1)
      sock:send("a")
      assert.equal("re:a", sock:receive())
      assert.equal(1, sock:setpeername(HOST, p2))
      sock:send("b")
      assert.equal("re:b", sock:receive())
      sock:close()
      stop1()
      stop2()
    end)
  end)

  it("resolves names: localhost, and OpenResty's words for one that does not resolve", function()
    H.closes_fds(function()
      local port, stop = echo_peer()
      local sock = ngx.socket.udp()
      assert.equal(1, sock:setpeername("localhost", port))
      sock:send("n")
      assert.equal("re:n", sock:receive())
      sock:close()
      local ok, err = ngx.socket.udp():setpeername("nosuch.invalid", 53)
      assert.is_nil(ok)
      assert.is_true(err == "nosuch.invalid could not be resolved (3: Host not found)"
        or err == "nosuch.invalid could not be resolved (2: Server failure)", err)
      stop()
    end)
  end)

  it("bad arguments and calls outside a task raise OpenResty's messages", function()
    local sock = ngx.socket.udp()
    assert.equal("ngx.socket.udp setpeername: expecting 2 or 3 arguments (including the object), but seen 1",
      errof(sock.setpeername, sock))
    assert.equal("bad argument #2 to 'setpeername' (number expected, got string)",
      errof(sock.setpeername, sock, HOST, "x"))
    assert.same({ nil, "bad port number: 70000" }, { sock:setpeername(HOST, 70000) })
    assert.equal("bad timeout value", errof(sock.settimeout, sock, -1))
    assert.equal("bad argument #1 to 'send' (bad data type boolean found)",
      errof(sock.send, sock, { true }))
    assert.equal("bad argument #1 to 'send' (string, number, boolean, nil, or array table expected, got function)",
      errof(sock.send, sock, print))
    assert.equal("bad argument #1 to 'receive' (number expected, got string)",
      errof(sock.receive, sock, "*l"))
    assert.equal("bad argument #1 to 'close' (ngx.socket.udp object expected, got table)",
      errof(sock.close, {}))
    assert.same({ nil, "unix domain sockets are not supported by luaio's ngx.socket.udp" },
      { sock:setpeername("unix:/tmp/x.sock") })
    H.run(function()           -- (a loop callback: not a task)
      local res = H.in_callback(sock.setpeername, sock, HOST, 53)
      assert.same({ false, "setpeername: needs a running task (called outside a task)", n = 2 }, res)
      assert.equal(1, sock:setpeername(HOST, 53))
      res = H.in_callback(sock.receive, sock)
      assert.same({ false, "receive: needs a running task (called outside a task)", n = 2 }, res)
      sock:close()
    end)
  end)
end)

describe("LuaJIT's bit (luaio.ngx_bit), which install() provides", function()
  it("gives LuaJIT's 32-bit results", function()
    local bit = require "bit"
    assert.equal(require "luaio.ngx_bit", bit)
    assert.equal(-1, bit.tobit(0xffffffff))
    assert.equal(5, bit.tobit(2^32 + 5))
    assert.equal(0x78, bit.band(0x12345678, 0xff))
    assert.equal(7, bit.bor(1, 2, 4))
    assert.equal(2, bit.bxor(1, 3))
    assert.equal(-1, bit.bnot(0))
    assert.equal(-2147483648, bit.lshift(1, 31))
    assert.equal(15, bit.rshift(-1, 28))
    assert.equal(-16, bit.arshift(-256, 4))
    assert.equal(0x45678123, bit.rol(0x12345678, 12))
    assert.equal(0x67812345, bit.ror(0x12345678, 12))
    assert.equal(0x78563412, bit.bswap(0x12345678))
    assert.equal("000000ff", bit.tohex(255))
    assert.equal("FFFF", bit.tohex(-1, -4))
    assert.equal("bad argument #1 to 'tobit' (number expected, got string)",
      errof(bit.tobit, "x"))
  end)
end)

describe("lua-resty-dns on ngx.socket.udp, against dnsmasq", function()
  local function new(port, opts)
    opts = opts or {}
    opts.nameservers = { { HOST, port } }
    return assert(resolver:new(opts))
  end

  -- (a resolver's UDP sockets live as long as it: OpenResty closes them
  -- when the request ends)
  local function done(r)
    for _, s in ipairs(r.socks) do s:close() end
  end

  it("answers A and AAAA queries", function()
    D.with_server(function(srv)
      local r = new(srv.port)
      local ans = assert(r:query("a.test.example", { qtype = r.TYPE_A }))
      assert.equal(1, #ans)
      assert.equal("10.1.2.3", ans[1].address)
      assert.equal("a.test.example", ans[1].name)
      assert.equal(r.TYPE_A, ans[1].type)
      ans = assert(r:query("a.test.example", { qtype = r.TYPE_AAAA }))
      assert.equal(1, #ans)
      assert.equal("fd00:0:0:0:0:1:2:3", ans[1].address)
      assert.equal(r.TYPE_AAAA, ans[1].type)
      done(r)
    end)
  end)

  it("reports NXDOMAIN as errcode 3, \"name error\"", function()
    D.with_server(function(srv)
      local r = new(srv.port)
      local ans = assert(r:query("nosuch.test.example"))
      assert.equal(3, ans.errcode)
      assert.equal("name error", ans.errstr)
      done(r)
    end)
  end)

  it("the TCP fallback (tcp_query) answers too", function()
    D.with_server(function(srv)
      local r = new(srv.port)
      local ans = assert(r:tcp_query("a.test.example", { qtype = r.TYPE_A }))
      assert.equal("10.1.2.3", ans[1].address)
      done(r)
    end)
  end)

  it("a server that never answers: each try times out, then the query fails", function()
    H.closes_fds(function()
      local silent, port = bound()            -- (bound: no ICMP error either)
      local r = new(port, { timeout = 50, retrans = 3 })
      local t0 = aio.time()
      local ans, err = r:query("a.test.example")
      local took = aio.time() - t0
      assert.is_nil(ans)
      assert.equal(("failed to receive reply from UDP server %s:%d: timeout"):format(HOST, port), err)
      assert.is_true(took >= 0.14 and took < 1, tostring(took))
      local n = 0
      while pcall(aio.wait_for, function() return silent:recvfrom() end, 0.01) do n = n + 1 end
      assert.equal(3, n)                      -- one datagram per try
      done(r)
      silent:close()
    end)
  end)

  it("300 concurrent queries, each on its own resolver, all answered", function()
    D.with_server(function(srv)
      local ts = {}
      for i = 1, 300 do
        ts[i] = aio.create_task(function()
          local r = new(srv.port, { timeout = 2000 })
          local ans, err = r:query(("n%d.test.example"):format(i), { qtype = r.TYPE_A })
          assert(ans, err)
          done(r)
          return ans[1].address
        end)
      end
      local got = aio.gather(ts)
      for i = 1, 300 do
        assert.equal(("10.0.%d.%d"):format(i // 256, i % 256), got[i])
      end
    end, 10)
  end)
end)
