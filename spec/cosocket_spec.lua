-- spec/cosocket_spec.lua: aio.ngx's cosocket (ngx.socket.tcp, luaio.ngx_tcp
-- and its pools, luaio.ngx_pool) against luaio servers in the same process,
-- and the rest of aio.ngx.  Every test runs in a fresh loop that must end
-- with nothing left behind and every descriptor closed again.
local aio = require "luaio"
local H = require "helper"

local ngx = aio.ngx

-- err ends with tail (errors raised with a position carry it in front)
local function ends(err, tail)
  err = tostring(err)
  assert(err:sub(-#tail) == tail, ("expected an error ending with %q, got %q"):format(tail, err))
end

-- H.closes_fds with the pools closed at the end
local function run(fn, limit)
  return H.closes_fds(function()
    local ok, err = pcall(fn)
    ngx.close_pools()
    if not ok then error(err, 0) end
  end, limit, H.warm_up)
end

-- A server writing `script` (a list: strings to send, numbers to sleep)
-- then closing; -> port, stop
local function scripted(script)
  local _, port, stop = H.serve(function(_, w)
    for _, step in ipairs(script) do
      if type(step) == "number" then aio.sleep(step) else w:write(step) end
    end
  end)
  return port, stop
end

local function connected(port)
  local sock = ngx.socket.tcp()
  assert.equal(1, sock:connect("127.0.0.1", port))
  return sock
end

describe("cosocket receive", function()
  it("reads lines without their \\n and every \\r, then nil, 'closed', the partial line", function()
    run(function()
      local port, stop = scripted { "one\r\ntw", 0.01, "o\n\r\nthr\ree\nlast" }
      local sock = connected(port)
      assert.equal("one", sock:receive())
      assert.equal("two", sock:receive("*l"))
      assert.equal("", sock:receive())
      assert.equal("three", sock:receive())
      assert.same({ nil, "closed", "last" }, { sock:receive() })
      assert.same({ nil, "closed" }, { sock:receive() })
      assert.equal(1, sock:close())
      assert.same({ nil, "closed" }, { sock:close() })
      stop()
    end)
  end)

  it("reads n bytes, everything with '*a', and gives the partial bytes at EOF", function()
    run(function()
      local port, stop = scripted { "abc", 0.01, "defgh", "ij" }
      local sock = connected(port)
      assert.equal("", sock:receive(0))
      assert.equal("abcd", sock:receive(4))
      assert.equal("ef", sock:receive("2"))
      assert.equal("ghij", sock:receive("*a"))
      assert.equal("", sock:receive("*a"))
      sock:close()
      stop()
      local port2, stop2 = scripted { "xyz" }
      sock = connected(port2)
      assert.same({ nil, "closed", "xyz" }, { sock:receive(10) })
      sock:close()
      stop2()
    end)
  end)

  it("receiveany returns what has come, at most max bytes", function()
    run(function()
      local port, stop = scripted { "hello world" }
      local sock = connected(port)
      assert.equal("hello", sock:receiveany(5))
      assert.equal(" world", sock:receiveany(100))
      assert.same({ nil, "closed", "" }, { sock:receiveany(1) })
      ends(H.errof(sock.receiveany, sock, 0), "bad argument #1 to 'receiveany' (bad max argument)")
      ends(H.errof(sock.receiveany, sock, "x"), "bad argument #1 to 'receiveany' (bad max argument)")
      sock:close()
      stop()
    end)
  end)

  it("refuses bad patterns with OpenResty's messages", function()
    run(function()
      local port, stop = scripted {}
      local sock = connected(port)
      ends(H.errof(sock.receive, sock, "*x"), "bad argument #1 to 'receive' (bad pattern argument: *x)")
      ends(H.errof(sock.receive, sock, {}), "bad argument #1 to 'receive' (bad argument)")
      ends(H.errof(sock.receive, sock, -1), "bad argument #1 to 'receive' (bad number argument)")
      ends(H.errof(sock.receive, nil), "bad argument #1 to 'receive' (ngx.socket.tcp object expected, got no value)")
      sock:close()
      stop()
    end)
  end)
end)

describe("cosocket receiveuntil", function()
  local DATA = "hello, world! -agentzh\r\n--abcedhb blah blah"

  it("reads up to the pattern, in pieces of size bytes, then nil (OpenResty's example)", function()
    run(function()
      local port, stop = scripted { DATA }
      local sock = connected(port)
      local reader = sock:receiveuntil("\r\n--abcedhb")
      local got = {}
      while true do
        local data, err = reader(4)
        assert.is_nil(err)
        if not data then break end
        got[#got + 1] = data
      end
      assert.same({ "hell", "o, w", "orld", "! -a", "gent", "zh" }, got)
      assert.equal(" blah blah", sock:receive("*a"))
      sock:close()
      stop()
    end)
  end)

  it("finds a pattern split across packets; inclusive keeps it; EOF gives the partial data", function()
    run(function()
      local port, stop = scripted { "ab--", 0.01, "-x", 0.01, "y--", 0.01, "-rest" }
      local sock = connected(port)
      local until_dashes = sock:receiveuntil("---")
      assert.equal("ab", until_dashes())
      local inclusive = sock:receiveuntil("---", { inclusive = true })
      assert.equal("xy---", inclusive())
      assert.same({ nil, "closed", "rest" }, { until_dashes() })
      sock:close()
      stop()
    end)
  end)

  it("with size and inclusive, the pattern is in the pieces; the iterator can go on to the next one", function()
    run(function()
      local port, stop = scripted { "abcdefXYghXYij" }
      local sock = connected(port)
      local it = sock:receiveuntil("XY", { inclusive = true })
      assert.equal("abcd", it(4))
      assert.equal("efXY", it(4))
      assert.is_nil(it(4))
      assert.equal("ghXY", it())
      assert.equal("ij", sock:receive(2))
      sock:close()
      stop()
    end)
  end)

  it("refuses an empty pattern and a bad inclusive option", function()
    run(function()
      local port, stop = scripted {}
      local sock = connected(port)
      assert.same({ nil, "pattern is empty" }, { sock:receiveuntil("") })
      ends(H.errof(sock.receiveuntil, sock, "x", { inclusive = 1 }), "bad \"inclusive\" option value type: number")
      sock:close()
      stop()
    end)
  end)
end)

describe("cosocket send", function()
  it("sends strings, numbers and nested arrays of them; returns the byte count", function()
    run(function()
      local got = aio.Future()
      local _, port, stop = H.serve(function(r) got:set_result(r:read()) end)
      local sock = connected(port)
      assert.equal(3, sock:send("abc"))
      assert.equal(2, sock:send(42))
      assert.equal(8, sock:send { "x", { "y", 1, { 2.5, 3.0 } }, "z", {} })
      assert.equal(0, sock:send(""))
      assert.equal(4, sock:send(true))
      sock:close()
      assert.equal("abc42xy12.53ztrue", aio.await(got))
      stop()
    end)
  end)

  it("refuses other types with OpenResty's messages", function()
    run(function()
      local _, port, stop = H.serve(function(r) r:read() end)
      local sock = connected(port)
      ends(H.errof(sock.send, sock, print), "bad argument #1 to 'send' (string, number, boolean, nil, or array table expected, got function)")
      ends(H.errof(sock.send, sock, { "a", true }), "bad argument #1 to 'send' (bad data type boolean found)")
      ends(H.errof(sock.send, sock, { "a", nil, "b" }), "bad argument #1 to 'send' (bad data type nil found)")
      ends(H.errof(sock.send, sock, { a = 1 }), "bad argument #1 to 'send' (non-array table found)")
      sock:close()
      assert.same({ nil, "closed" }, { sock:send("x") })
      stop()
    end)
  end)

  it("gives the system's error once the peer is gone, and closes the socket", function()
    run(function()
      local _, port, stop = H.serve(function() end)
      local sock = connected(port)
      stop()
      local ok, err
      for _ = 1, 100 do
        ok, err = sock:send(string.rep("x", 65536))
        if not ok then break end
        aio.sleep(0.01)
      end
      assert.is_nil(ok)
      assert.is_true(err == "broken pipe" or err == "connection reset by peer", err)
      assert.same({ nil, "closed" }, { sock:send("x") })
      assert.same({ nil, "closed" }, { sock:close() })
    end)
  end)
end)

describe("cosocket connect", function()
  it("gives OpenResty's errors", function()
    run(function()
      local srv = aio.start_server(function() end, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      srv:close()
      srv:wait_closed()
      local sock = ngx.socket.tcp()
      assert.same({ nil, "connection refused" }, { sock:connect("127.0.0.1", port) })
      assert.same({ nil, "no such file or directory" }, { sock:connect("unix:/nonexistent/luaio.sock") })
      assert.same({ nil, "missing the port number" }, { sock:connect("127.0.0.1") })
      assert.same({ nil, "bad port number: 70000" }, { sock:connect("127.0.0.1", 70000) })
      assert.same({ nil, "no-such-host.invalid could not be resolved (3: Host not found)" },
                  { sock:connect("no-such-host.invalid", 80) })
      assert.same({ nil, "closed" }, { sock:receive() })
      ends(H.errof(sock.connect, sock, nil), "bad argument #1 to 'connect' (string expected, got no value)")
      ends(H.errof(sock.connect, sock, "127.0.0.1", 1, { pool_size = 0 }), "bad argument #3 to 'connect' (bad \"pool_size\" option value: 0)")
      ends(H.errof(sock.connect, sock, "127.0.0.1", 1, { pool = true }), "bad argument #3 to 'connect' (bad \"pool\" option type: boolean)")
    end)
  end)

  it("connects to unix sockets; ngx.socket.connect returns a connected socket", function()
    run(function()
      local dir = H.tmpdir()
      local path = dir .. "/s.sock"
      local srv = aio.start_unix_server(function(r, w) w:write(r:readline()) w:close() end, path)
      local sock = assert(ngx.socket.connect("unix:" .. path))
      assert.equal(5, sock:send("ping\n"))
      assert.equal("ping", sock:receive())
      sock:close()
      srv:close()
      srv:wait_closed()
      H.rmrf(dir)
    end)
  end)

  it("needs a task", function()
    H.run(function()
      local sock = ngx.socket.tcp()
      local res = H.in_callback(sock.connect, sock, "127.0.0.1", 1)
      assert.is_false(res[1])
      ends(res[2], "connect: needs a running task (called outside a task)")
    end)
  end)
end)

describe("cosocket timeouts", function()
  it("a read timeout gives nil, 'timeout', the partial data, and the socket stays usable", function()
    run(function()
      local port, stop = scripted { "abc", 0.3, "def\n" }
      local sock = connected(port)
      sock:settimeout(100)
      local t0 = aio.time()
      assert.same({ nil, "timeout", "abc" }, { sock:receive() })
      local dt = aio.time() - t0
      assert.is_true(dt >= 0.09, tostring(dt))   -- (and before "def" came: the partial is "abc")
      sock:settimeouts(1000, 1000, 1000)
      assert.equal("def", sock:receive())
      -- a connection that timed out is never pooled
      assert.same({ nil, "invalid connection" }, { sock:setkeepalive() })
      assert.same({ nil, "closed" }, { sock:close() })
      stop()
    end)
  end)

  it("settimeout refuses negative values", function()
    local sock = ngx.socket.tcp()
    ends(H.errof(sock.settimeout, sock, -1), "bad timeout value")
    ends(H.errof(sock.settimeouts, sock, 1, -1, 1), "bad timeout value")
  end)

  it("times out receiveuntil and receiveany too", function()
    run(function()
      local port, stop = scripted { "ab-", 0.3 }
      local sock = connected(port)
      sock:settimeout(50)
      local it = sock:receiveuntil("--")
      assert.same({ nil, "timeout", "ab-" }, { it() })
      assert.same({ nil, "timeout", "" }, { sock:receiveany(10) })
      sock:close()
      stop()
    end)
  end)
end)

describe("cosocket cancellation", function()
  it("a task cancelled in a receive closes its connection (the peer sees EOF) and never pools it", function()
    run(function()
      local eof = aio.Future()
      local _, port, stop = H.serve(function(r) eof:set_result(r:read()) end)
      local sock = connected(port)
      local t = aio.create_task(function() return sock:receive() end)
      H.spin()
      t:cancel()
      assert.is_true(aio.is(H.errof(aio.await, t), aio.CancelledError))
      assert.equal("", aio.await(eof))
      assert.same({ nil, "closed" }, { sock:setkeepalive() })
      local idle, total = ngx.pool_count("127.0.0.1:" .. port)
      assert.equal(0, idle)
      assert.equal(0, total)
      stop()
    end)
  end)

  it("a second reader gets 'socket busy reading'", function()
    run(function()
      local port, stop = scripted { 0.1, "x\n" }
      local sock = connected(port)
      local t = aio.create_task(function() return sock:receive() end)
      H.spin()
      assert.same({ nil, "socket busy reading" }, { sock:receive() })
      assert.equal("x", aio.await(t))
      sock:close()
      stop()
    end)
  end)
end)

describe("cosocket pools", function()
  -- a server that answers each line with the number of its connection
  local function counting()
    local n = 0
    local _, port, stop = H.serve(function(r, w)
      n = n + 1
      local id = n
      while true do
        local line = r:readline()
        if not line then return end
        w:write(id .. "\n")
      end
    end)
    return port, stop
  end

  it("setkeepalive puts the connection back; connect takes it again (getreusedtimes counts)", function()
    run(function()
      local port, stop = counting()
      for i = 0, 3 do
        local sock = connected(port)
        assert.equal(i, sock:getreusedtimes())
        sock:send("x\n")
        assert.equal("1", sock:receive())
        assert.equal(1, sock:setkeepalive(10000, 5))
        assert.same({ nil, "closed" }, { sock:send("y") })
      end
      ngx.close_pools()
      assert.equal(1, stop())
    end)
  end)

  it("closes a connection with unread data instead of pooling it", function()
    run(function()
      local port, stop = scripted { "a\nb\n", 1 }
      local sock = connected(port)
      assert.equal("a", sock:receive())
      aio.sleep(0.02)
      assert.same({ nil, "unread data in buffer" }, { sock:setkeepalive() })
      assert.same({ nil, "closed" }, { sock:receive() })
      local idle, total = ngx.pool_count("127.0.0.1:" .. port)
      assert.equal(0, idle + total)
      stop()
    end)
  end)

  it("never hands out a connection the server closed while it was idle", function()
    run(function()
      local n = 0
      local _, port, stop = H.serve(function(r, w)
        n = n + 1
        w:write(r:readline())
      end)   -- answers one line, then closes
      local sock = connected(port)
      sock:send("a\n")
      assert.equal("a", sock:receive())
      assert.equal(1, sock:setkeepalive())
      aio.sleep(0.05)
      sock = connected(port)
      assert.equal(0, sock:getreusedtimes())
      sock:send("b\n")
      assert.equal("b", sock:receive())
      sock:close()
      assert.equal(2, n)
      stop()
    end)
  end)

  it("closes idle connections after their keepalive timeout, and the least recent beyond pool_size", function()
    run(function()
      local port, stop = counting()
      local socks = {}
      for i = 1, 3 do socks[i] = connected(port) end
      for i = 1, 3 do
        socks[i]:send("x\n")
        socks[i]:receive()
      end
      for i = 1, 3 do assert.equal(1, socks[i]:setkeepalive(i == 3 and 100 or 10000, 2)) end
      local key = "127.0.0.1:" .. port
      assert.same({ 2, 2 }, { ngx.pool_count(key) })
      aio.sleep(0.2)
      assert.same({ 1, 1 }, { ngx.pool_count(key) })
      local sock = connected(port)
      assert.equal(1, sock:getreusedtimes())
      sock:send("x\n")
      assert.equal("2", sock:receive())   -- the second connection: the first was the least recent
      sock:close()
      assert.equal(3, stop())
    end)
  end)

  it("with a backlog, at most pool_size connections exist; connects wait, time out or are refused", function()
    run(function()
      local port, stop = counting()
      local opts = { pool_size = 2, backlog = 1 }
      local a, b = ngx.socket.tcp(), ngx.socket.tcp()
      assert.equal(1, a:connect("127.0.0.1", port, opts))
      assert.equal(1, b:connect("127.0.0.1", port, opts))
      local waiter = aio.create_task(function()
        local c = ngx.socket.tcp()
        assert.equal(1, c:connect("127.0.0.1", port, opts))
        return c
      end)
      H.spin()
      local d = ngx.socket.tcp()
      assert.same({ nil, "too many waiting connect operations" }, { d:connect("127.0.0.1", port, opts) })
      a:send("x\n")
      a:receive()
      assert.equal(1, a:setkeepalive())
      local c = aio.await(waiter)
      assert.equal(1, c:getreusedtimes())
      d:settimeout(50)
      assert.same({ nil, "timeout" }, { d:connect("127.0.0.1", port, opts) })
      b:close()
      assert.equal(1, d:connect("127.0.0.1", port, opts))
      c:close()
      d:close()
      assert.equal(3, stop())
    end)
  end)
end)

describe("cosocket pools and the garbage collector", function()
  it("a socket dropped while connected gives its pool slot back", function()
    run(function()
      local _, port, stop = H.serve(function(r) r:read() end)
      local opts = { pool_size = 1, backlog = 0 }
      local sock = ngx.socket.tcp()
      assert.equal(1, sock:connect("127.0.0.1", port, opts))
      sock = ngx.socket.tcp()
      assert.same({ nil, "too many waiting connect operations" }, { sock:connect("127.0.0.1", port, opts) })
      sock = nil      -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      sock = ngx.socket.tcp()
      assert.equal(1, sock:connect("127.0.0.1", port, opts))
      sock:close()
      stop()
    end)
  end)
end)

describe("aio.ngx", function()
  it("install() sets the global ngx, unpack and table.clear", function()
    local saved_ngx, saved_unpack, saved_clear = rawget(_G, "ngx"), rawget(_G, "unpack"), rawget(table, "clear")
    rawset(_G, "unpack", nil)
    rawset(table, "clear", nil)
    assert.equal(ngx, ngx.install())
    assert.equal(ngx, rawget(_G, "ngx"))
    assert.equal(table.unpack, rawget(_G, "unpack"))
    local t = { 1, 2, a = 3 }
    rawget(table, "clear")(t)
    assert.is_nil(next(t))
    rawset(_G, "ngx", saved_ngx)
    rawset(_G, "unpack", saved_unpack)
    rawset(table, "clear", saved_clear)
  end)

  it("ngx.log goes to the loop's exception handler, at ngx.ERR and more severe only", function()
    local got = H.reports(function()
      ngx.log(ngx.ERR, "failed: ", 42, " ", ngx.null, " ", nil, true)
      ngx.log(ngx.INFO, "dropped")
    end)
    assert.equal(1, #got)
    assert.equal("[error] failed: 42 null niltrue", got[1].message)
    assert.equal(ngx.ERR, got[1].ngx_log_level)
    ends(H.errof(ngx.log, 42, "x"), "bad argument #1 to 'log' (bad log level)")
  end)

  it("threads are tasks; timers run as tasks; ngx.now and ngx.sleep", function()
    H.guarded(function()
      local t1 = ngx.thread.spawn(function(x) ngx.sleep(0.05) return x, "slow" end, 1)
      local t2 = ngx.thread.spawn(function(x) return x, "fast" end, 2)
      assert.same({ true, 2, "fast" }, { ngx.thread.wait(t1, t2) })
      assert.same({ true, 1, "slow" }, { ngx.thread.wait(t1) })
      local t3 = ngx.thread.spawn(function() error("boom", 0) end)
      assert.same({ false, "boom" }, { ngx.thread.wait(t3) })
      local t4 = ngx.thread.spawn(function() ngx.sleep(10) end)
      assert.is_true(ngx.thread.kill(t4))
      assert.same({ false, "killed" }, { ngx.thread.wait(t4) })
      local fired = aio.Future()
      local t0 = ngx.now()
      assert.is_true(ngx.timer.at(0.05, function(premature, a) fired:set_result({ premature, a }) end, "arg"))
      assert.same({ false, "arg" }, aio.await(fired))
      local dt = ngx.now() - t0
      assert.is_true(dt >= 0.04 and dt < 1, tostring(dt))
      assert.is_true(math.abs(ngx.now() - os.time()) <= 1)
    end)
  end)

  it("ngx.shared dictionaries: set/get/add/replace/incr/delete, expiry", function()
    H.guarded(function()
      local d = ngx.shared.cosocket_spec
      assert.equal(d, ngx.shared.cosocket_spec)
      assert.same({ true, nil, false }, { d:set("a", "x", 0, 7) })
      assert.same({ "x", 7 }, { d:get("a") })
      assert.same({ false, "exists", false }, { d:add("a", "y") })
      assert.same({ false, "not found", false }, { d:replace("b", "y") })
      assert.same({ nil, "not found" }, { d:incr("n", 1) })
      assert.equal(5, d:incr("n", 5, 0))
      assert.equal(6, d:incr("n", 1))
      d:set("short", 1, 0.05)
      aio.sleep(0.1)
      assert.is_nil(d:get("short"))
      d:delete("a")
      assert.is_nil(d:get("a"))
      assert.same({ "n" }, d:get_keys())
      d:flush_all()
      assert.same({}, d:get_keys())
    end)
  end)
end)

describe("cosocket sslhandshake", function()
  local dir

  setup(function()
    dir = H.tmpdir()
    local function sh(cmd)
      assert(os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1"), cmd)
    end
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
       "-keyout ca.key -out ca.pem -days 30 -subj '/CN=cosocket CA'")
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
       "-keyout srv.key -out srv.csr -subj '/CN=localhost'")
    local f = assert(io.open(dir .. "/srv.ext", "w"))
    f:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    f:close()
    sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
       "-out srv.pem -days 30 -extfile srv.ext")
  end)

  teardown(function()
    ngx.ssl_context = nil
    H.rmrf(dir)
  end)

  -- a TLS echo server of lines
  local function tls_server()
    local ctx = aio.ssl.create_default_context("client_auth")
    ctx:load_cert_chain(dir .. "/srv.pem", dir .. "/srv.key")
    local _, port, stop = H.serve(function(r, w)
      while true do
        local line = r:readline()
        if not line then return end
        w:write(line)
      end
    end, { ssl = ctx })
    return port, stop
  end

  it("does the TLS handshake on luaio's TLS: verify off (the default), on, host names", function()
    if not aio.ssl.HAS_TLS then
      pending("built without TLS")
      return
    end
    run(function()
      local port, stop = tls_server()
      local sock = connected(port)
      local session = sock:sslhandshake(nil, "localhost")
      assert.equal("ngx.ssl.session", getmetatable(session).__name)
      sock:send("hello\n")
      assert.equal("hello", sock:receive())
      assert.equal(1, sock:setkeepalive())
      -- pooled: already TLS, no second handshake
      sock = connected(port)
      assert.equal(1, sock:getreusedtimes())
      assert.is_true(sock:sslhandshake(false, "localhost"))
      sock:send("again\n")
      assert.equal("again", sock:receive())
      sock:close()
      -- verify with the system's trust store: our CA is not in it
      sock = connected(port)
      assert.same({ nil, "20: unable to get local issuer certificate" },
                  { sock:sslhandshake(false, "localhost", true) })
      assert.same({ nil, "closed" }, { sock:send("x") })
      -- verify with aio.ngx.ssl_context (OpenResty's lua_ssl_trusted_certificate)
      ngx.ssl_context = aio.ssl.create_default_context("server_auth", { cafile = dir .. "/ca.pem" })
      sock = connected(port)
      assert.is_true(sock:sslhandshake(false, "localhost", true))
      sock:close()
      sock = connected(port)
      assert.same({ nil, "certificate host mismatch" },
                  { sock:sslhandshake(false, "wrong.example", true) })
      ngx.ssl_context = nil
      stop()
    end)
  end)
end)

describe("cosocket bad input", function()
  local BAD = { n = 12, nil, true, 42, -1, 0 / 0, math.huge, -2 ^ 62, "str", {},
    function() end, coroutine.create(function() end), ("x"):rep(5000) }
  local METHODS = { "connect", "send", "receive", "receiveany", "receiveuntil",
    "settimeout", "settimeouts", "setkeepalive", "getreusedtimes", "sslhandshake", "close" }

  -- an error that blames the module's own code instead of its caller (a
  -- raw Lua runtime error, or a check made a level too deep)
  local function raw(err)
    return type(err) == "string"
      and (err:find("ngx_tcp", 1, true) ~= nil or err:find("ngx_pool", 1, true) ~= nil)
  end

  local function try(f, ...)
    local args = table.pack(...)
    local ok, a, b = pcall(aio.wait_for, function()
      return pcall(f, table.unpack(args, 1, args.n))
    end, 0.05)
    if not ok then
      if aio.is(a, aio.TimeoutError) then return nil end
      return a
    end
    if not a then return b end
    return nil
  end

  it("every method, with each bad value as its argument or as self, fails cleanly or not at all", function()
    run(function()
      local _, port, stop = H.serve(function(r) r:read() end)
      for _, m in ipairs(METHODS) do
        for i = 1, BAD.n do
          local sock = connected(port)
          local err = try(sock[m], sock, BAD[i], BAD[i], BAD[i])
          assert(not raw(err), ("%s(%s): %s"):format(m, tostring(BAD[i]), tostring(err)))
          err = try(sock[m], BAD[i])
          assert(err ~= nil and not raw(err), ("%s on self %s: %s"):format(m, tostring(BAD[i]), tostring(err)))
          if sock._w then sock:close() end
        end
      end
      local sock = connected(port)
      local it = sock:receiveuntil("--")
      for i = 1, BAD.n do
        local err = try(it, BAD[i])
        assert(not raw(err), ("iterator(%s): %s"):format(tostring(BAD[i]), tostring(err)))
      end
      sock:close()
      stop()
    end, 20)
  end)
end)
