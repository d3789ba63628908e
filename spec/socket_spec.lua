-- spec/socket_spec.lua: luaio.socket, LuaSocket's API over luaio's
-- streams -- receive patterns and partial results, timeouts in both
-- modes, send ranges, closed sockets, servers (bind/accept), select,
-- dns, try/protect, cancellation that loses nothing, calls outside a
-- task -- and LuaSocket's own socket.http (Debian's lua-socket) run
-- unchanged over it, concurrently, against aio.http.serve; LuaSec's
-- ssl.https (Debian's lua-sec) over socket.ssl, with certificates made
-- by the openssl CLI.
local aio = require "luaio"
local socket = require "luaio.socket"
local H = require "helper"

-- A server that writes each of steps (a string, a number of seconds to
-- sleep, or EOF: wait until the client closes) and then closes;
-- -> port, stop
local EOF = {}
local function script(steps)
  local _, port, stop = H.serve(function(r, w)
    for _, s in ipairs(steps) do
      if s == EOF then
        repeat until r:read() == ""           -- (reads to the end)
      elseif type(s) == "number" then
        aio.sleep(s)
      elseif not pcall(w.write, w, s) then   -- (the client may have gone)
        return
      end
    end
  end)
  return port, stop
end

describe("luaio.socket", function()
  it("receives lines (CRs dropped), counts, the rest, then closed with the partial", function()
    H.closes_fds(function()
      local port, stop = script { "one\r\ntwo\nthree", 0.05, "four" }
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal("one", c:receive())
      assert.equal("two", c:receive("*l"))
      assert.equal("th", c:receive(2))
      assert.equal(">reefour", c:receive("*a", ">"))
      assert.same({ nil, "closed", "" }, { c:receive() })
      assert.same({ nil, "closed", "" }, { c:receive(5) })
      c:close()
      stop()
    end, nil, H.warm_up)
  end)

  it("gives the partial line and the partial count at the end of the stream", function()
    H.run(function()
      local port, stop = script { "no end" }
      local c = assert(socket.connect("127.0.0.1", port))
      assert.same({ nil, "closed", "no end" }, { c:receive("*l") })
      c:close()
      stop()
      port, stop = script { "abc" }
      c = assert(socket.connect("127.0.0.1", port))
      assert.same({ nil, "closed", "pre-abc" }, { c:receive(10, "pre-") })
      c:close()
      stop()
    end)
  end)

  it("times out with the partial, which is then consumed, and reads on after", function()
    H.run(function()
      local port, stop = script { "par", 0.3, "tial\n" }
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal(1, c:settimeout(0.05))
      local t0 = aio.time()
      assert.same({ nil, "timeout", "par" }, { c:receive("*l") })
      assert.is_true(aio.time() - t0 < 0.25)
      c:settimeout(nil)
      assert.equal("tial", c:receive())
      c:close()
      stop()
    end)
  end)

  it("settimeout(0) never waits; 'b' bounds each wait, 't' the whole call", function()
    H.run(function()
      local port, stop = script { 0.1, "a", 0.1, "b", 0.1, "c", EOF }
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(0)
      local t0 = aio.time()
      assert.same({ nil, "timeout", "" }, { c:receive(1) })
      assert.is_true(aio.time() - t0 < 0.05)
      c:settimeout(0.15)                            -- "b": each wait < 0.15
      assert.equal("abc", c:receive(3))
      c:close()
      stop()
      port, stop = script { 0.1, "a", 0.1, "b", 0.1, "c", EOF }
      c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(0.15, "t")                       -- "t": all within 0.15
      assert.same({ nil, "timeout", "a" }, { c:receive(3) })
      c:close()
      stop()
    end)
  end)

  it("sends ranges as string.sub does, returning the last index", function()
    H.run(function()
      local got = {}
      local _, port, stop = H.serve(function(r) got[#got + 1] = r:read() end)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal(5, c:send("hello"))
      assert.equal(4, c:send("0123456789", 2, 4))
      assert.equal(10, c:send("0123456789", -2))
      assert.equal(2, c:send(42))
      assert.equal(1, c:close())
      assert.same({ nil, "closed", 0 }, { c:send("late") })
      stop()
      assert.equal("hello12389" .. "42", got[1])
    end)
  end)

  it("says connection refused, and a host that does not resolve", function()
    H.run(function()
      assert.same({ nil, "connection refused" }, { socket.connect("127.0.0.1", 1) })
      local m = socket.tcp()
      assert.same({ nil, "host or service not provided, or not known" },
        { m:connect("no-such-host.invalid", 80) })
      assert.same({ nil, "host or service not provided, or not known" },
        { socket.dns.toip("no-such-host.invalid") })
    end)
  end)

  it("serves: bind, accept, getsockname, an accept that times out", function()
    H.closes_fds(function()
      local s = assert(socket.bind("127.0.0.1", 0))
      local host, port, family = s:getsockname()
      assert.equal("127.0.0.1", host)
      assert.equal("inet", family)
      local client = aio.create_task(function()
        local c = assert(socket.connect(host, port))
        c:send("ping\n")
        local answer = c:receive()
        c:close()
        return answer
      end)
      local a = assert(s:accept())
      assert.equal("tcp{client}", getmetatable(a).__name)
      assert.equal("ping", a:receive())
      local peer, pport = a:getpeername()
      assert.equal("127.0.0.1", peer)
      assert.is_true(pport > 0)
      a:send("pong\n")
      assert.equal("pong", client:await())
      assert.same({ nil, "closed", "" }, { a:receive() })
      a:close()
      s:settimeout(0.02)
      assert.same({ nil, "timeout" }, { s:accept() })
      s:close()
      assert.same({ nil, "closed" }, { s:accept() })
      s._server:wait_closed()        -- (the listener's handle closes a pass later)
    end, nil, H.warm_up)
  end)

  it("select gives the sockets with data, and times out", function()
    H.run(function()
      local quiet, stop1 = script { EOF }
      local talks, stop2 = script { 0.05, "x\n", EOF }
      local a = assert(socket.connect("127.0.0.1", quiet))
      local b = assert(socket.connect("127.0.0.1", talks))
      local r, w, err = socket.select({ a, b }, nil, 0.5)
      assert.is_nil(err)
      assert.same({ b, [b] = true }, r)
      assert.same({}, w)
      assert.is_true(b:dirty())
      assert.equal("x", b:receive())
      r, w, err = socket.select({ a, b }, { a }, 0)
      assert.same({}, r)
      assert.same({ a, [a] = true }, w)
      assert.is_nil(err)
      r, w, err = socket.select({ a, b }, nil, 0.05)
      assert.same({}, r)
      assert.same({}, w)
      assert.equal("timeout", err)
      a:close()
      b:close()
      stop1()
      stop2()
    end)
  end)

  it("a task cancelled in receive loses no byte", function()
    H.run(function()
      local port, stop = script { "ab", 0.1, "cd\n" }
      local c = assert(socket.connect("127.0.0.1", port))
      local t = aio.create_task(function() return c:receive() end)
      aio.sleep(0.03)
      t:cancel()
      assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
      assert.equal("abcd", c:receive())
      c:close()
      stop()
    end)
  end)

  it("dns: toip, getaddrinfo, gethostname; gettime is the system clock", function()
    H.run(function()
      local ip, info = socket.dns.toip("localhost")
      assert.equal("127.0.0.1", ip)
      assert.equal("localhost", info.name)
      local list = assert(socket.dns.getaddrinfo("127.0.0.1"))
      assert.same({ family = "inet", addr = "127.0.0.1" }, list[1])
      local p = io.popen("hostname")
      local name = p:read("l")
      p:close()
      assert.equal(name, socket.dns.gethostname())
      assert.is_true(math.abs(socket.gettime() - os.time()) <= 1)
      assert.is_true(socket.gettime() % 1 ~= 0 or socket.gettime() % 1 ~= 0)
    end)
  end)

  it("try, newtry (with its finalizer) and protect", function()
    local finalized = false
    local try = socket.newtry(function() finalized = true end)
    local f = socket.protect(function(x)
      assert.equal(x, try(x, "unused"))
      try(nil, "boom")
      error("not reached")
    end)
    assert.same({ nil, "boom" }, { f(1) })
    assert.is_true(finalized)
    assert.equal("other", H.errof(socket.protect(function() error("other", 0) end)))
    assert.same({ 1, 2 }, { socket.protect(function() return 1, 2 end)() })
    assert.same({ "c" }, { socket.skip(2, "a", "b", "c") })
  end)

  it("bad arguments and calls outside a task say what is wrong", function()
    H.run(function()
      local port, stop = script { "x\n" }
      local c = assert(socket.connect("127.0.0.1", port))
      assert.equal("bad argument #1 to 'receive' (invalid receive pattern)",
        H.errof(c.receive, c, "*x"))
      assert.equal("bad argument #1 to 'send' (string expected, got table)",
        H.errof(c.send, c, {}))
      assert.equal("bad argument #2 to 'settimeout' (invalid timeout mode)",
        H.errof(c.settimeout, c, 1, "q"))
      assert.equal("calling 'receive' on bad self (tcp{client} expected, got tcp{master})",
        H.errof(c.receive, socket.tcp()))
      assert.equal("install: unknown option 'sll' (did you mean 'ssl'?)",
        H.errof(socket.install, { sll = true }))
      assert.same({ nil, "unsupported option" }, { c:setoption("bogus", true) })
      assert.equal(1, c:setoption("keepalive", true))
      assert.is_true(c:getoption("keepalive"))
      c:close()
      stop()
    end)
    -- outside a loop (stock lua5.4; the CLI's script is itself a task)
    local co = coroutine.wrap(function()
      return H.errof(socket.connect, "127.0.0.1", 1)
    end)
    if aio.current_task() == nil then
      assert.equal("luaio.socket: connect needs a running task (call it inside aio.run)", co())
    end
  end)

  describe("LuaSocket's socket.http over install()", function()
    local saved
    before_each(function()
      saved = { socket = package.loaded.socket, core = package.loaded["socket.core"],
                http = package.loaded["socket.http"] }
      package.loaded["socket.http"] = nil
    end)
    after_each(function()
      package.loaded.socket, package.loaded["socket.core"] = saved.socket, saved.core
      package.loaded["socket.http"] = saved.http
    end)

    it("fetches concurrently, posts a source, and reports a refused connection", function()
      assert.equal(socket, socket.install())
      assert.equal(socket, require "socket")
      local http = require "socket.http"
      local ltn12 = require "ltn12"
      H.run(function()
        local server = aio.http.serve(function(req)
          if req.method == "POST" then return 201, { ["X-Len"] = #req:body() }, "got " .. req:body() end
          aio.sleep(0.2)
          return 200, { ["X-Path"] = req.path }, "hello " .. req.path
        end, "127.0.0.1", 0)
        local _, port = server:getsockname()
        local t0 = aio.time()
        local tasks = {}
        for i = 1, 20 do
          tasks[i] = aio.create_task(function()
            local body, code, headers = http.request(("http://127.0.0.1:%d/p%d"):format(port, i))
            return body, code, headers["x-path"]
          end)
        end
        for i = 1, 20 do
          assert.same({ "hello /p" .. i, 200, "/p" .. i }, { tasks[i]:await() })
        end
        -- twenty requests that each wait 0.2 s, at once
        assert.is_true(aio.time() - t0 < 1.5, "not concurrent")
        local out = {}
        local ok, code, headers = http.request {
          url = ("http://127.0.0.1:%d/up"):format(port), method = "POST",
          source = ltn12.source.string("data!"), headers = { ["content-length"] = 5 },
          sink = ltn12.sink.table(out),
        }
        assert.same({ 1, 201, "5", "got data!" }, { ok, code, headers["x-len"], table.concat(out) })
        assert.same({ nil, "connection refused" }, { http.request("http://127.0.0.1:1/") })
        server:shutdown()
      end)
    end)
  end)

  describe("LuaSec's ssl.https over install{ssl = true}", function()
    local saved, dir
    local function sh(cmd)
      assert(os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1"), cmd)
    end
    setup(function()
      dir = H.tmpdir()
      local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      sh("openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 30 -subj /CN=ca")
      sh("openssl req " .. ec .. " -keyout srv.key -out srv.csr -subj /CN=localhost")
      sh("echo subjectAltName=DNS:localhost,IP:127.0.0.1 > srv.ext")
      sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
         "-out srv.pem -days 30 -extfile srv.ext")
    end)
    teardown(function() H.rmrf(dir) end)
    before_each(function()
      saved = {}
      for _, k in ipairs { "socket", "socket.core", "socket.http", "ssl", "ssl.https" } do
        saved[k] = package.loaded[k]
        if k == "socket.http" or k == "ssl.https" then package.loaded[k] = nil end
      end
    end)
    after_each(function()
      for _, k in ipairs { "socket", "socket.core", "socket.http", "ssl", "ssl.https" } do
        package.loaded[k] = saved[k]
      end
    end)

    it("fetches over TLS, verifies when asked, and says why it refuses", function()
      socket.install { ssl = true }
      assert.equal(socket.ssl, require "ssl")
      local https = require "ssl.https"
      local ltn12 = require "ltn12"
      H.run(function()
        local sctx = aio.ssl.create_default_context("client_auth")
        sctx:load_cert_chain(dir .. "/srv.pem", dir .. "/srv.key")
        local server = aio.http.serve(function(req)
          return 200, {}, "secure " .. req.path
        end, "127.0.0.1", 0, { ssl = sctx })
        local _, port = server:getsockname()
        local url = ("https://localhost:%d/"):format(port)
        -- LuaSec's own default: no verification
        local body, code = https.request(url .. "a")
        assert.same({ "secure /a", 200 }, { body, code })
        local out = {}
        local ok, code2 = https.request { url = url .. "b", sink = ltn12.sink.table(out),
          verify = "peer", cafile = dir .. "/ca.pem" }
        assert.same({ 1, 200, "secure /b" }, { ok, code2, table.concat(out) })
        local no, err = https.request { url = url .. "c", verify = "peer" }
        assert.is_nil(no)
        assert.matches("certificate verify failed", err, 1, true)
        server:shutdown()
      end)
      assert.same({ nil, "invalid mode" }, { socket.ssl.newcontext { mode = "both" } })
    end)
  end)
end)
