-- spec/dns_spec.lua: aio.getaddrinfo (asyncio loop.getaddrinfo), resolved
-- off the loop thread.  Only names that resolve locally are used
-- ("localhost" from /etc/hosts, numeric addresses): no DNS traffic.
local aio = require "luaio"
local H = require "helper"

local function run(fn, opts)
  return H.guarded(fn, opts, 3)
end

local errof = H.errof

local function check_entry(e)
  assert.is_table(e)
  assert.is_true(e.family == "inet" or e.family == "inet6", tostring(e.family))
  assert.is_string(e.addr)
  assert.equal("integer", math.type(e.port))
  assert.is_true(e.socktype == "stream" or e.socktype == "dgram", tostring(e.socktype))
end

local function addrs(list)
  local set = {}
  for _, e in ipairs(list) do set[e.addr] = true end
  return set
end

describe("getaddrinfo", function()
  it("resolves localhost to loopback addresses", function()
    run(function()
      local list = aio.getaddrinfo("localhost")
      assert.is_true(#list >= 1)
      for _, e in ipairs(list) do check_entry(e) end
      local set = addrs(list)
      assert.is_true(set["127.0.0.1"] or set["::1"], "no loopback address")
      for a in pairs(set) do
        assert.is_true(a == "::1" or a:match("^127%.") ~= nil, a)
      end
    end)
  end)

  it("gives one entry per address by default (no stream/dgram duplicates)", function()
    run(function()
      local seen = {}
      for _, e in ipairs(aio.getaddrinfo("localhost")) do
        local k = e.family .. " " .. e.addr
        assert.is_nil(seen[k], "duplicate entry " .. k)
        seen[k] = true
      end
    end)
  end)

  it("puts the port in every entry (integer or numeric string)", function()
    run(function()
      for _, e in ipairs(aio.getaddrinfo("localhost", 8080)) do
        assert.equal(8080, e.port)
      end
      for _, e in ipairs(aio.getaddrinfo("localhost", "8081")) do
        assert.equal(8081, e.port)
      end
      for _, e in ipairs(aio.getaddrinfo("localhost")) do
        assert.equal(0, e.port)
      end
    end)
  end)

  it("filters by family", function()
    run(function()
      local list = aio.getaddrinfo("localhost", nil, { family = "inet" })
      assert.is_true(#list >= 1)
      for _, e in ipairs(list) do assert.equal("inet", e.family) end
      assert.is_true(addrs(list)["127.0.0.1"])
      list = aio.getaddrinfo("::1", 80, { family = "inet6" })
      assert.equal(1, #list)
      assert.equal("inet6", list[1].family)
      assert.equal("::1", list[1].addr)
      assert.equal(80, list[1].port)
    end)
  end)

  it("filters by socket type", function()
    run(function()
      local list = aio.getaddrinfo("localhost", 53, { type = "dgram" })
      assert.is_true(#list >= 1)
      for _, e in ipairs(list) do assert.equal("dgram", e.socktype) end
      list = aio.getaddrinfo("localhost", 80, { type = "stream" })
      for _, e in ipairs(list) do assert.equal("stream", e.socktype) end
    end)
  end)

  it("passes numeric addresses through", function()
    run(function()
      local list = aio.getaddrinfo("127.0.0.1", 7)
      assert.equal(1, #list)
      assert.same({ family = "inet", addr = "127.0.0.1", port = 7, socktype = "stream" }, list[1])
    end)
  end)

  it("a lookup failure raises OSError with the libuv EAI_ code", function()
    run(function()
      -- an IPv6 literal asked for as IPv4 fails without any DNS traffic
      local err = errof(aio.getaddrinfo, "::1", nil, { family = "inet" })
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.is_string(err.code)
      assert.matches("^EAI_", err.code)
      assert.equal("number", type(err.errno))
      assert.matches("::1", tostring(err), 1, true)
    end)
  end)

  it("runs many lookups concurrently", function()
    run(function()
      local fs = {}
      for i = 1, 20 do
        fs[i] = function() return aio.getaddrinfo("localhost", i) end
      end
      local res = aio.gather(fs)
      for i = 1, 20 do
        assert.is_true(#res[i] >= 1)
        assert.equal(i, res[i][1].port)
      end
    end)
  end)

  it("a cancelled lookup leaves no request behind; the next one works", function()
    run(function()
      local loop = aio.get_running_loop()
      for _ = 1, 5 do
        local t = aio.create_task(aio.getaddrinfo, "localhost")
        aio.sleep(0)
        t:cancel()
        local ok, err = pcall(aio.await, t)
        if not ok then assert.is_true(aio.is(err, aio.CancelledError), tostring(err)) end
      end
      for _ = 1, 100 do
        if loop:stats().requests == 0 then break end
        aio.sleep(0.01)
      end
      assert.equal(0, loop:stats().requests)
      assert.is_true(#aio.getaddrinfo("localhost") >= 1)
    end)
  end)

  it("the virtual clock does not jump while a lookup is outstanding", function()
    run(function()
      local t0 = aio.time()
      local sleeper = aio.create_task(aio.sleep, 10)
      local list = aio.getaddrinfo("localhost")
      assert.is_true(#list >= 1)
      assert.is_true(aio.time() - t0 < 10, "virtual time jumped past a pending lookup")
      assert.is_false(sleeper:done())
      sleeper:cancel()
      pcall(aio.await, sleeper)
    end, { clock = "virtual" })
  end)

  it("rejects bad arguments in the lauxlib form", function()
    run(function()
      local cases = {
        function() return aio.getaddrinfo(nil) end,
        function() return aio.getaddrinfo(42) end,
        function() return aio.getaddrinfo("localhost", {}) end,
        function() return aio.getaddrinfo("localhost", 70000) end,
        function() return aio.getaddrinfo("localhost", -1) end,
        function() return aio.getaddrinfo("localhost", nil, "inet") end,
        function() return aio.getaddrinfo("localhost", nil, { family = "bogus" }) end,
        function() return aio.getaddrinfo("localhost", nil, { type = "bogus" }) end,
      }
      for i, f in ipairs(cases) do
        local err = tostring(errof(f))
        assert.matches("bad argument #%d to 'getaddrinfo'", err, nil, false, "case " .. i)
      end
    end)
  end)

  it("needs a running task", function()
    run(function()
      local res
      aio.get_running_loop():call_soon(function()
        res = table.pack(pcall(aio.getaddrinfo, "localhost"))
      end)
      for _ = 1, 3 do aio.sleep(0) end
      assert.is_false(res[1])
      assert.matches("getaddrinfo", tostring(res[2]), 1, true)
      assert.matches("running task", tostring(res[2]), 1, true)
    end)
  end)
end)
