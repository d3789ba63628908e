-- spec/udp_spec.lua: aio.open_udp (asyncio datagram endpoints, the Lua
-- way): binding, sendto/recvfrom round trips, datagram boundaries,
-- blocking and cancellation, closing, errors.  Loopback only.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

------------------------------------------------------------------ helpers
-- H.run with a watchdog and a check that every socket was closed.
local run = H.closes_fds

local errof = H.errof

local function bound()
  local s = aio.open_udp { host = HOST, port = 0 }
  local _, port = s:getsockname()
  return s, port
end

local function cancelled(t)
  local ok, err = pcall(aio.await, t)
  assert.is_false(ok)
  assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
end

------------------------------------------------------------------ round trips
describe("UDP", function()
  it("binds to 127.0.0.1 with port 0 = any free port", function()
    run(function()
      local s = aio.open_udp { host = HOST, port = 0 }
      local host, port = s:getsockname()
      assert.equal(HOST, host)
      assert.equal("integer", math.type(port))
      assert.is_true(port > 0)
      s:close()
    end)
  end)

  it("round trip: recvfrom gives the data and the sender's address", function()
    run(function()
      local a, pa = bound()
      local b, pb = bound()
      assert.are_not.equal(pa, pb)
      a:sendto("ping", HOST, pb)
      local data, host, port = b:recvfrom()
      assert.equal("ping", data)
      assert.equal(HOST, host)
      assert.equal(pa, port)
      b:sendto("pong", host, port)
      data, host, port = a:recvfrom()
      assert.equal("pong", data)
      assert.equal(HOST, host)
      assert.equal(pb, port)
      a:close()
      b:close()
    end)
  end)

  it("an unbound socket can send, and receives replies at its implicit address", function()
    run(function()
      local server, sp = bound()
      local client = aio.open_udp()
      client:sendto("hello", HOST, sp)
      local data, host, port = server:recvfrom()
      assert.equal("hello", data)
      assert.equal(HOST, host)
      local _, cport = client:getsockname()
      assert.equal(cport, port)
      server:sendto("HELLO", host, port)
      assert.equal("HELLO", (client:recvfrom()))
      client:close()
      server:close()
    end)
  end)

  it("keeps datagram boundaries and order, including empty datagrams", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      local sent = { "a", "bb", "", "ccc", ("d"):rep(1000) }
      for _, d in ipairs(sent) do a:sendto(d, HOST, pb) end
      local got = {}
      for i = 1, #sent do got[i] = (b:recvfrom()) end
      assert.same(sent, got)
      a:close()
      b:close()
    end)
  end)

  it("carries a 60000-byte datagram whole", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      local big = ("0123456789"):rep(6000)
      a:sendto(big, HOST, pb)
      local got = b:recvfrom()
      assert.equal(#big, #got)
      assert.is_true(got == big)
      a:close()
      b:close()
    end)
  end)

  it("delivers 100 datagrams sent in a burst, in order", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      -- (a burst much larger than this may overflow the kernel's
      -- receive buffer: UDP drops, as it should)
      for i = 1, 100 do a:sendto(tostring(i), HOST, pb) end
      for i = 1, 100 do assert.equal(tostring(i), (b:recvfrom())) end
      a:close()
      b:close()
    end)
  end)

  it("works over ::1 when available", function()
    local ok = pcall(H.run, function() aio.open_udp({ host = "::1", port = 0 }):close() end)
    if not ok then return end             -- no IPv6 loopback here
    run(function()
      local a = aio.open_udp { host = "::1", port = 0 }
      local b = aio.open_udp { host = "::1", port = 0 }
      local _, pa = a:getsockname()
      local host, pb = b:getsockname()
      assert.equal("::1", host)
      a:sendto("six", "::1", pb)
      local data, from, port = b:recvfrom()
      assert.equal("six", data)
      assert.equal("::1", from)
      assert.equal(pa, port)
      a:close()
      b:close()
    end)
  end)

  it("is a to-be-closed guard", function()
    run(function()
      local keep
      do
        local s <close> = aio.open_udp { host = HOST, port = 0 }
        keep = s
      end
      assert.equal("the UDP socket is closed", errof(keep.sendto, keep, "x", HOST, 9))
    end)
  end)

  it("outlives its loop: a socket collected after the loop closed is safe", function()
    -- (a use-after-free that ASan found in `make check`)
    local kept = {}
    for _ = 1, 3 do
      local r = aio.Runner()
      r:run(function() kept[#kept + 1] = aio.open_udp { host = HOST, port = 0 } end)
      r:close()
    end
    assert.equal("the UDP socket is closed", errof(kept[1].sendto, kept[1], "x", HOST, 9))
    kept = nil
    collectgarbage()
    collectgarbage()
    run(function()
      local s = aio.open_udp { host = HOST, port = 0 }
      assert.is_number(select(2, s:getsockname()))
      s:close()
    end)
  end)
end)

------------------------------------------------------------------ waiting
describe("UDP recvfrom", function()
  it("waits until a datagram arrives", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      local t = aio.create_task(b.recvfrom, b)
      aio.sleep(0.02)
      assert.is_false(t:done())
      a:sendto("late", HOST, pb)
      assert.equal("late", (t:await()))
      a:close()
      b:close()
    end)
  end)

  it("a cancelled recvfrom loses no datagram", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      local t = aio.create_task(b.recvfrom, b)
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      a:sendto("kept", HOST, pb)
      assert.equal("kept", (b:recvfrom()))
      -- timed out by wait_for: same
      local ok, err = pcall(aio.wait_for, function() return b:recvfrom() end, 0.02)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      a:sendto("kept too", HOST, pb)
      assert.equal("kept too", (b:recvfrom()))
      a:close()
      b:close()
    end)
  end)

  it("refuses a second concurrent receiver", function()
    run(function()
      local a = bound()
      local b, pb = bound()
      local t = aio.create_task(b.recvfrom, b)
      aio.sleep(0.01)
      assert.matches("already", tostring(errof(b.recvfrom, b)))
      a:sendto("one", HOST, pb)
      assert.equal("one", (t:await()))
      a:close()
      b:close()
    end)
  end)

  it("closing the socket wakes a blocked recvfrom with an error", function()
    run(function()
      local b = bound()
      local t = aio.create_task(b.recvfrom, b)
      aio.sleep(0.01)
      b:close()
      assert.equal("the UDP socket is closed", errof(aio.await, t))
    end)
  end)
end)

------------------------------------------------------------------ errors
describe("UDP errors", function()
  it("a closed socket raises on use; close is idempotent", function()
    run(function()
      local s = bound()
      s:close()
      s:close()
      assert.equal("the UDP socket is closed", errof(s.sendto, s, "x", HOST, 9))
      assert.equal("the UDP socket is closed", errof(s.recvfrom, s))
      assert.equal("the UDP socket is closed", errof(s.getsockname, s))
    end)
  end)

  it("binding a port in use raises OSError EADDRINUSE", function()
    run(function()
      local a, pa = bound()
      local err = errof(aio.open_udp, { host = HOST, port = pa })
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("EADDRINUSE", err.code)
      assert.equal("number", type(err.errno))
      a:close()
    end)
  end)

  it("rejects bad arguments", function()
    run(function()
      local s = bound()
      assert.matches("bad argument", tostring(errof(aio.open_udp, "x")))
      assert.matches("bad argument", tostring(errof(aio.open_udp, { host = HOST, port = "x" })))
      assert.matches("bad argument", tostring(errof(aio.open_udp, { host = HOST, port = 70000 })))
      assert.matches("bad argument", tostring(errof(aio.open_udp, { host = 42 })))
      assert.matches("bad argument", tostring(errof(s.sendto, s, 42, HOST, 9)))
      assert.matches("bad argument", tostring(errof(s.sendto, s, "x", HOST, "nine")))
      assert.matches("bad argument", tostring(errof(s.sendto, s, "x", HOST, 70000)))
      assert.matches("bad argument", tostring(errof(s.sendto, s, "x", nil, 9)))
      s:close()
    end)
  end)
end)
