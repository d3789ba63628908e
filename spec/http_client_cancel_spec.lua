-- spec/http_client_cancel_spec.lua: the HTTP client cancelled at every
-- suspension point of a request leaves no leaked connection (issue 19,
-- "Reliability").
--
-- The sweep.  For each scenario (a plain GET with a 200 KiB body; one
-- with a read_timeout; a wait for a pool slot, then a pooled connection;
-- a POST streamed from a reader function; Expect: 100-continue; a chunked
-- response read with res:read(7); a redirect whose body the client
-- discards; https; https through an aio-written CONNECT proxy) the
-- request runs in a task T of a fresh loop, against a fresh aio.http
-- server, and a stepper task watches it: the stepper yields with
-- aio.sleep(0) and after each of its passes reads T's state.  A pass runs
-- every ready entry once, T included; a woken T goes to the back of the
-- ready queue, behind the stepper (which re-queued itself earlier), so
-- the stepper sees every wake-up of T as "scheduled" before T runs, and T
-- runs at most once between two looks.  A *point* is therefore each look
-- at T "scheduled" (it was woken: an I/O completed, a sleep(0) ended) and
-- the first look of each stretch of T "waiting" (it suspended: connect,
-- handshake, read, drain, a pool slot...); its *place* is the state and
-- the luaio source lines of T's stack (task:get_stack()).  Run k cancels
-- T at its k-th point (k = 0: before it ever runs); k goes 0, 1, 2, ...
-- until a run completes before its k-th point.  The server sends its
-- answers in pieces a poll apart (next_poll, counted in scheduler passes,
-- not in time), so that the client suspends for each.
--
-- How we know every suspension point was hit: a reference run first
-- records T's points uncancelled.  The number of k values is the number
-- of points (+1 for k = 0), and every place the reference suspended at
-- must be a place where some run was cancelled.  Runs are deterministic
-- but for a wake-up or two (how much the kernel's socket buffers take
-- decides how often a big upload's drain waits): a place the index sweep
-- did not reach gets a run of its own, cancelled at the first point there
-- (SWEEP_DEBUG=1 prints the places and the counts).  A run whose T
-- completes although it was cancelled fails (a cancellation swallowed --
-- how the redirect's discarded body lost it).
--
-- At every k: T ended cancelled (CancelledError, not another error); the
-- pool holds no busy slot (connections == idle, nobody waiting); idle + 1
-- concurrent requests on the same client all succeed with the exact body
-- (so every pooled connection was clean: a half-read one would give the
-- next response the old one's bytes); then, the client and the servers
-- closed, the loop's handle count and the process's descriptors are back
-- to their values at the start, and H.run finds no task, handle, timer or
-- request left.
--
-- Last, the same bug through a deadline: a timeout expiring while a
-- redirect's body is discarded ends the request with its TimeoutError.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"
local BIG = ("0123456789abcdef"):rep(12800)          -- 200 KiB body
local CHUNK = ("u"):rep(65536)
local UPLOAD_CHUNKS = 128                             -- 8 MiB streamed up

------------------------------------------------------------------ certificates
local dir

local function sh(cmd)
  assert(os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1"),
    "command failed: " .. cmd)
end

local function make_certs()
  dir = H.tmpdir()
  sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
     "-keyout ca.key -out ca.pem -days 30 -subj '/CN=luaio test CA'")
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
     "-keyout srv.key -out srv.csr -subj '/CN=localhost'")
  local f = assert(io.open(dir .. "/srv.ext", "w"))
  f:write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  f:close()
  sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
     "-out srv.pem -days 30 -extfile srv.ext")
end

local function server_ctx()
  local ctx = aio.ssl.create_default_context("client_auth")
  ctx:load_cert_chain(dir .. "/srv.pem", dir .. "/srv.key")
  return ctx
end

local function client_ctx()
  return aio.ssl.create_default_context("server_auth", { cafile = dir .. "/ca.pem" })
end

------------------------------------------------------------------ peers
-- Lets the loop poll for I/O at least once: the scheduler runs at most
-- 4096 ready entries (LUAIO_DRAIN_BUDGET) between two polls, and each of
-- these passes runs two tasks at least (this one and the stepper).
local function next_poll()
  for _ = 1, 5000 do aio.sleep(0) end
end

-- The server every scenario talks to (one per run).  Its answers come in
-- pieces a poll apart, so that the client suspends for each: the head,
-- then the body's halves, or each chunk.
local function handler(req, res)
  local path = req.path
  if path == "/big" then
    local half = #BIG // 2
    res:write_head(200, { ["Content-Length"] = #BIG })
    res:write(BIG:sub(1, half))
    next_poll()
    res:finish(BIG:sub(half + 1))
  elseif path == "/upload" then
    next_poll()                       -- the client's drain waits meanwhile
    local body = req:body()
    return 200, {}, "got " .. #body
  elseif path == "/chunked" then
    res:write_head(200, { ["Content-Type"] = "text/plain" })
    for i = 1, 5 do
      res:write(("part %d;"):format(i))
      next_poll()
    end
    res:finish()
  elseif path == "/redirect" then
    res:write_head(302, { Location = "/big", ["Content-Length"] = 5 })
    res:write("mo")                   -- (the client's discard waits for the rest)
    next_poll()
    res:finish("ved")
  elseif path == "/check" then
    return 200, {}, "check " .. req.remote_port
  else
    return 404, {}, "no such path"
  end
end

local function start_server(ssl)
  local srv = aio.http.serve(handler, HOST, 0, { ssl = ssl, max_body = 32 * 1024 * 1024,
                                                  shutdown_timeout = 1 })
  local _, port = srv:getsockname()
  return srv, port
end

-- A CONNECT proxy written on aio streams: one tunnel per connection,
-- bytes copied both ways until either side ends (then both close).
local function start_proxy()
  local srv = aio.start_server(function(r, w)
    local line = r:readline()
    local host, port = (line or ""):match("^CONNECT ([^:]+):(%d+) HTTP/1%.1\r\n$")
    repeat local l = r:readline() until l == nil or l == "\r\n"
    if not host then
      w:write("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
      return
    end
    local ok, ur, uw = pcall(aio.open_connection, host, tonumber(port))
    if not ok then
      w:write("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
      return
    end
    w:write("HTTP/1.1 200 Connection established\r\n\r\n")
    local function copy(from, to)
      while true do
        local got, data = pcall(from.read, from, 65536)
        if not got or data == nil then break end
        if not pcall(to.write, to, data) or not pcall(to.drain, to) then break end
      end
      w:close()
      uw:close()
    end
    local up = aio.create_task(copy, r, uw)
    copy(ur, w)
    up:await()
    aio.pcall(uw.wait_closed, uw)
  end, HOST, 0)
  local _, port = srv:getsockname()
  return srv, port
end

------------------------------------------------------------------ scenarios
-- Each: start() -> env {base = URL, client = Client options, stop = fn};
-- run(client, env) is T's body; it returns what the request gave (a
-- task it starts in env.holder is awaited once T has ended).
local function plain(ssl)
  return function()
    local srv, port = start_server(ssl and server_ctx() or nil)
    local scheme = ssl and "https" or "http"
    return {
      base = ("%s://%s:%d"):format(scheme, HOST, port),
      client = { ssl = ssl and client_ctx() or nil, proxy = false },
      stop = function() srv:close(); srv:wait_closed() end,
    }
  end
end

local function proxied()
  local srv, port = start_server(server_ctx())
  local psrv, pport = start_proxy()
  return {
    base = ("https://%s:%d"):format(HOST, port),
    client = { ssl = client_ctx(), proxy = ("http://%s:%d"):format(HOST, pport) },
    stop = function()
      srv:close(); srv:wait_closed()
      psrv:close(); psrv:wait_closed()
    end,
  }
end

local function get_big(client, env)
  local res = client:get(env.base .. "/big")
  assert(res.status == 200, res.status)
  return res:body()
end

local SCENARIOS = {
  { name = "a plain GET with a 200 KiB body", start = plain(false), run = get_big,
    expect = BIG },
  { name = "a POST streamed from a reader function", start = plain(false),
    expect = "got " .. UPLOAD_CHUNKS * #CHUNK,
    run = function(client, env)
      local n = 0
      local res = client:post(env.base .. "/upload", { body = function()
        n = n + 1
        if n > UPLOAD_CHUNKS then return nil end
        if n % 32 == 0 then aio.sleep(0) end         -- the reader suspends too
        return CHUNK
      end })
      return res:body()
    end },
  { name = "Expect: 100-continue", start = plain(false), expect = "got 10000",
    run = function(client, env)
      local res = client:post(env.base .. "/upload", { body = ("e"):rep(10000),
                                                       expect_continue = true })
      return res:body()
    end },
  { name = "a chunked response read with res:read(7)", start = plain(false),
    expect = "part 1;part 2;part 3;part 4;part 5;",
    run = function(client, env)
      local res = client:get(env.base .. "/chunked")
      local parts = {}
      while true do
        local s = res:read(7)
        if s == nil then break end
        parts[#parts + 1] = s
      end
      return table.concat(parts)
    end },
  { name = "a redirect (302 with a body, then the 200 KiB body)", start = plain(false),
    expect = BIG,
    run = function(client, env)
      local res = client:get(env.base .. "/redirect")
      assert(res.status == 200 and res.url == env.base .. "/big", res.url)
      return res:body()
    end },
  { name = "a GET with a read_timeout", start = plain(false), expect = BIG,
    run = function(client, env)
      local res = client:get(env.base .. "/big", { read_timeout = 30 })
      return res:body()
    end },
  { name = "a wait for a pool slot, then a pooled connection", expect = BIG,
    start = function()
      local env = plain(false)()
      env.client.max_per_host = 1
      return env
    end,
    run = function(client, env)
      env.holder = aio.create_task(get_big, client, env)   -- takes the only slot
      aio.sleep(0)
      return get_big(client, env)
    end },
  { name = "https (the test certificates)", start = plain(true), run = get_big, expect = BIG },
  { name = "https through a CONNECT proxy", start = proxied, run = get_big, expect = BIG },
}

------------------------------------------------------------------ the sweep
local function state(t)
  local _, _, st = t:_info()
  return st
end

-- Where a suspended task is: its state and the luaio source lines of
-- its stack (the innermost eight).
local function where(t)
  local lines = {}
  for line in (t:get_stack() or ""):gmatch("[^\n]+") do
    local at = line:match("(luaio[%.%w_]*:%d+)")
    if at then lines[#lines + 1] = at end
    if #lines == 8 then break end
  end
  return state(t) .. " at " .. table.concat(lines, " < ")
end

local function wait_until(cond)
  for _ = 1, 1000 * H.SLOW do
    if cond() then return true end
    aio.sleep(0.002)
  end
  return cond()
end

-- One run of scenario sc, T cancelled at its k-th point (never when k is
-- nil; k a place: at the first point there).  -> "cancelled", "completed" (before its k-th point) or
-- "swallowed" (cancelled, and completed all the same); the places of the
-- points seen; the place where it was cancelled.
local function run_once(sc, k)
  return H.run(function()
    H.warm_up()
    local loop = aio.get_running_loop()
    local handles0, fds0 = loop:stats().handles, H.open_fds()
    local outcome, points, at
    local ok, err = pcall(aio.wait_for, function()
      local env = sc.start()
      local client = aio.http.Client(env.client)
      local t = aio.create_task(sc.run, client, env)
      points = {}
      if k == 0 then t:cancel() end
      local prev
      while not t:done() do
        aio.sleep(0)
        if t:done() then break end
        local st = state(t)
        if st == "scheduled" or prev ~= "waiting" then
          points[#points + 1] = where(t)
          if #points == k or points[#points] == k then
            t:cancel()
            at = points[#points]
          end
        end
        prev = st
      end
      if env.holder then assert(env.holder:await() == BIG) end
      if t:cancelled() then
        outcome = "cancelled"
      else
        local got, res = pcall(t.result, t)
        assert(got, "the request failed: " .. tostring(res))
        assert(res == sc.expect, "wrong answer: " .. tostring(res):sub(1, 60))
        outcome = at and "swallowed" or "completed"
      end
      -- no busy slot left; every idle connection clean
      local s = client:stats()
      assert(s.connections == s.idle and s.waiting == 0,
        ("the pool after the cancel: %d connections, %d idle, %d waiting"):format(
          s.connections, s.idle, s.waiting))
      local checks = {}
      for i = 1, s.idle + 1 do
        checks[i] = aio.create_task(function()
          local res = client:get(env.base .. "/check")
          return res.status, res:body()
        end)
      end
      for _, c in ipairs(checks) do
        local status, body = c:await()
        assert(status == 200 and body:match("^check %d+$"),
          "a later request got " .. tostring(status) .. " " .. tostring(body))
      end
      s = client:stats()
      assert(s.connections == s.idle, "a later request left a busy connection")
      client:close()
      env.stop()
    end, 20 * H.SLOW)
    assert(ok, err)
    assert(wait_until(function()
      return loop:stats().handles == handles0 and H.open_fds() == fds0
    end), ("left open after closing the client and the server: %d handles (%d before), "
      .. "%d descriptors (%d before)"):format(loop:stats().handles, handles0,
        H.open_fds(), fds0))
    return outcome, points, at
  end)
end

describe("aio.http client cancelled at every suspension point", function()
  lazy_setup(make_certs)
  lazy_teardown(function() H.rmrf(dir) end)

  for _, sc in ipairs(SCENARIOS) do
    it(sc.name .. ": no leaked connection at any point", function()
      local outcome, ref = run_once(sc, nil)
      assert.equal("completed", outcome)
      assert.is_true(#ref >= 2, "too few suspension points: " .. #ref)
      if os.getenv("SWEEP_DEBUG") then
        io.stderr:write(sc.name, ": ", #ref, " points\n  ", table.concat(ref, "\n  "), "\n")
      end
      local places = {}                 -- where some run was cancelled
      local k = 0
      while true do
        local got, _, at = run_once(sc, k)
        assert(got ~= "swallowed", ("cancelled at its point %d (%s), the request completed "
          .. "all the same"):format(k, at))
        if got == "completed" then break end
        if at then places[at] = true end
        k = k + 1
        assert(k <= 2 * #ref + 10, "still cancelled beyond the reference's " .. #ref .. " points")
      end
      -- a run that woke up less often than the reference (TLS session
      -- tickets, socket buffers) may end the sweep early: the places it
      -- did not reach get a run each, cancelled at the first point there
      local targeted = 0
      for i, place in ipairs(ref) do
        if not places[place] then
          targeted = targeted + 1
          local got, _, at = run_once(sc, place)
          assert(got ~= "swallowed", ("cancelled at %s, the request completed all the same")
            :format(at))
          if at then places[at] = true end
        end
        assert(places[place], "the reference's point " .. i .. " (" .. place .. ") was never cancelled at")
      end
      if os.getenv("SWEEP_DEBUG") then
        io.stderr:write(("  swept k = 0..%d, %d targeted run(s)\n"):format(k - 1, targeted))
      end
    end)
  end

  it("a request's deadline expiring while a redirect's body is discarded ends it", function()
    H.closes_fds(function()
      local srv = aio.http.serve(function(req, res)
        if req.path == "/stall" then        -- the body's end comes late
          res:write_head(302, { Location = "/final", ["Content-Length"] = 5 })
          res:write("mo")
          aio.sleep(1)
          res:finish("ved")
        else
          return 200, {}, "final"
        end
      end, HOST, 0, { shutdown_timeout = 0.1 })
      local _, port = srv:getsockname()
      local client = aio.http.Client()
      local url = ("http://%s:%d/stall"):format(HOST, port)
      local t0 = aio.time()
      local err = H.errof(client.get, client, url, { timeout = 0.2 })
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      assert.equal("GET " .. url .. ": no response within 0.2 s (timeout)", err.message)
      assert.is_true(aio.time() - t0 < 0.9)
      assert.same({ connections = 0, idle = 0, waiting = 0 }, client:stats())
      client:close()
      srv:close()
      srv:wait_closed()
    end, 5, H.warm_up)
  end)
end)
