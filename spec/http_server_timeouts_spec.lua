-- spec/http_server_timeouts_spec.lua: aio.http.serve's write_timeout
-- (issue 19) -- a client that never reads its response is cut off once
-- no bytes have gone to it for write_timeout seconds, whether the
-- handler streams (res:write + res:drain) or returns a large body; a
-- client that reads slowly but steadily is not; graceful shutdown ends
-- such connections by its deadline.  Raw luaio sockets are the clients
-- that do not read, curl the one served meanwhile.  Every test checks
-- that no task, handle, timer or descriptor is left.
--
-- Socket buffers are not assumed (tcp_rmem goes up to 32 MiB here): the
-- streaming handler writes until its drain blocks, which it observes;
-- the returned bodies are 32 MiB, more than the kernel holds for a
-- client that reads nothing (its receive window does not grow).
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"
local CHUNK = string.rep("x", 64 * 1024)
local BIG = string.rep("0123456789abcdef", 2 * 1024 * 1024)     -- 32 MiB

------------------------------------------------------------------ helpers
-- libuv keeps a spare descriptor per loop from its first listen on, and
-- opens its signal pipe on the first child: both before counting.
local function warm_up()
  H.warm_up()
  aio.create_subprocess_exec("true", {}):wait()
end

local function run(fn, limit)
  return H.closes_fds(fn, limit or 10, warm_up)
end

local function now() return aio.get_running_loop():time() end

-- An HTTP server on 127.0.0.1:<free port> whose exception reports are
-- collected: -> server, port, stop (closes it, waits until every
-- connection is closed, and returns the reports).
local function serve(handler, opts)
  local reports = {}
  aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
  local srv = aio.http.serve(handler, HOST, 0, opts)
  local _, port = srv:getsockname()
  return srv, port, function()
    srv:close()
    srv:wait_closed()
    aio.get_running_loop():set_exception_handler(nil)
    return reports
  end
end

local function get(target, ...)
  local lines = { "GET " .. target .. " HTTP/1.1", "Host: test", ... }
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- A client that sends data and then reads nothing: -> reader, writer.
local function deaf_client(port, data)
  local r, w = aio.open_connection(HOST, port)
  w:write(data)
  return r, w
end

-- Reads r to its end (EOF, or a reset): -> how many bytes came.
local function read_to_end(r)
  local n = 0
  while true do
    local ok, s = pcall(r.read, r, 1024 * 1024)
    if not ok then
      assert(aio.is(s, aio.OSError), tostring(s))
      return n
    end
    if s == nil then return n end
    n = n + #s
  end
end

-- The number of connections the server holds.
local function conns(srv)
  return tonumber(tostring(srv):match("^HttpServer%((%d+) connection"))
end

local function wait_until(pred, limit)
  local t0 = now()
  while not pred() do
    assert(now() - t0 < limit, "not within " .. limit .. " s")
    aio.sleep(0.01)
  end
  return now() - t0
end

local function curl_get(port, target)
  local p = aio.create_subprocess_exec("curl", {
    "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}",
    ("http://%s:%d%s"):format(HOST, port, target),
  }, { stdout = aio.PIPE, stderr = aio.PIPE })
  local out, err = p:communicate()
  assert.equal(0, p:wait(), err)
  return out
end

-- A handler streaming 64 KiB pieces, each followed by res:drain(), until
-- a drain raises (st.err) or total bytes are written; st.waited is how
-- long the last drain waited, st.written what was written.
local function streamer(st, total)
  st.done, st.written = aio.Event(), 0
  return function(rq, res)
    if rq.path == "/small" then return 200, nil, "small" end
    res:write_head(200, { ["Content-Type"] = "application/octet-stream" })
    local t0
    local ok, err = pcall(function()
      while not total or st.written < total do
        res:write(CHUNK)
        st.written = st.written + #CHUNK
        t0 = now()
        res:drain()
      end
      res:finish()
    end)
    st.waited = now() - t0
    if not ok then st.err = err end
    st.done:set()
    if not ok then error(err, 0) end
  end
end

-- Until the streaming handler of st waits in a drain: no write for 0.1 s.
local function blocked(st)
  repeat
    local before = st.written
    aio.sleep(0.1)
  until st.written == before and before > 0
end

-- The message of the write timeout's error.
local function timeout_message(s)
  return ("drain: the client took no data for %g s (write_timeout); the connection is closed"):format(s)
end

------------------------------------------------------------------ specs
describe("aio.http.serve's write_timeout", function()
  it("cuts off a client that reads nothing of a streamed response; res:drain raises TimeoutError", function()
    run(function()
      local WT = 1.5
      local st = {}
      local srv, port, stop = serve(streamer(st), { write_timeout = WT })
      local r, w = deaf_client(port, get("/stream"))
      blocked(st)                          -- the buffers are full: a drain waits
      -- the server goes on serving others meanwhile
      assert.equal("200", curl_get(port, "/small"))
      assert.is_nil(st.err)                -- (still waiting)
      st.done:wait()
      assert.is_true(aio.is(st.err, aio.TimeoutError), tostring(st.err))
      assert.equal(timeout_message(WT), st.err.message)
      -- within write_timeout of the drain that waited, plus the timer's
      -- quarter-timeout ticks
      assert.is_true(st.waited >= WT - 0.01 and st.waited < WT + 0.75 * H.SLOW,
        "the drain waited " .. st.waited .. " s")
      -- the connection is closed: the client reads what the kernel held,
      -- then the end; what was still queued was dropped
      local got = read_to_end(r)
      assert.is_true(got < st.written, ("read %d of %d bytes"):format(got, st.written))
      w:close()
      wait_until(function() return conns(srv) == 0 end, 1)
      assert.same({}, stop())              -- a client cut off is not an error
    end)
  end)

  it("cuts off a client that reads nothing of a returned 32 MiB body, keep-alive or not", function()
    run(function()
      local WT = 0.5
      local returned, second = aio.Event(), false
      local srv, port, stop = serve(function(rq)
        if rq.path == "/second" then second = true; return 200, nil, "second" end
        returned:set()
        return 200, { ["Content-Type"] = "application/octet-stream" }, BIG
      end, { write_timeout = WT })
      for _, close in ipairs { false, true } do
        returned:clear()
        -- (a pipelined request behind it: not served once the client is cut off)
        local r, w = deaf_client(port, get("/big", close and "Connection: close" or nil)
          .. get("/second"))
        returned:wait()
        local took = wait_until(function() return conns(srv) == 0 end, WT + 1.5 * H.SLOW)
        assert.is_true(took >= WT - 0.01, "closed after " .. took .. " s")
        local got = read_to_end(r)
        assert.is_true(got < #BIG, ("read %d of %d bytes"):format(got, #BIG))
        w:close()
        assert.is_false(second)
      end
      assert.equal("200", curl_get(port, "/second"))
      assert.same({}, stop())
    end)
  end)

  it("does not cut off a client that reads slowly but steadily (no progress is what counts)", function()
    run(function()
      local WT = 1
      local st = {}
      local stream = streamer(st, #BIG)
      local _, port, stop = serve(function(rq, res)
        if rq.path == "/stream" then return stream(rq, res) end
        return 200, nil, BIG
      end, { write_timeout = WT })
      -- reads 128 KiB every 10 ms at most: each transfer takes more than
      -- two write_timeouts, one returned body in a single drain of the
      -- server's
      for _, case in ipairs { { "/big", #BIG }, { "/stream", #BIG } } do
        local r, w = deaf_client(port, get(case[1], "Connection: close"))
        local t0, got, head = now(), 0, nil
        while true do
          local s = r:read(128 * 1024)
          if s == nil then break end
          if head == nil then
            head = s:match("^(.-\r\n\r\n)")
            got = got - #head
          end
          got = got + #s
          aio.sleep(0.01)
        end
        local took = now() - t0
        w:close()
        assert.matches("^HTTP/1.1 200 OK\r\n", head)
        if case[1] == "/big" then
          assert.equal(#BIG, got)
        else
          assert.is_nil(st.err)
          assert.is_true(st.done:is_set())
          assert.is_true(got > case[2])       -- (with the chunks' framing)
        end
        assert.is_true(took > 2 * WT, case[1] .. " took only " .. took .. " s")
      end
      assert.same({}, stop())
    end, 30)
  end)

  it("graceful shutdown closes connections stuck on a deaf client by its deadline", function()
    run(function()
      local st = {}
      local stream = streamer(st)
      local srv, port, stop = serve(function(rq, res)
        if rq.path == "/stream" then return stream(rq, res) end
        return 200, nil, BIG
      end)                                   -- write_timeout: 30 s
      local clients = {
        { deaf_client(port, get("/stream")) },
        { deaf_client(port, get("/big")) },
        { deaf_client(port, get("/big", "Connection: close")) },
      }
      blocked(st)
      wait_until(function() return conns(srv) == 3 end, 1)
      aio.sleep(0.1)                         -- (the returned bodies are queued)
      local t0 = now()
      srv:close(0.3)
      srv:wait_closed()
      local took = now() - t0
      assert.is_true(took >= 0.25 and took < 1.5 * H.SLOW, "took " .. took .. " s")
      assert.is_true(aio.is(st.err, aio.CancelledError), tostring(st.err))
      for _, c in ipairs(clients) do
        read_to_end(c[1])
        c[2]:close()
      end
      assert.same({}, stop())
    end)
  end)

  it("refuses a write_timeout that is not a positive number of seconds", function()
    run(function()
      local f = function() end
      for _, v in ipairs { 0, -1, "5", 0 / 0, true } do
        local err = H.errof(aio.http.serve, f, HOST, 0, { write_timeout = v })
        assert.equal("serve: option 'write_timeout' must be a positive number of seconds", err)
      end
      local srv = aio.http.serve(f, HOST, 0, { write_timeout = 0.25 })
      srv:close()
      srv:wait_closed()
    end)
  end)
end)
