-- spec/server_resilience_spec.lua: a server keeps serving when its
-- handlers fail or forget close() (issue 18):
--   * a connection's streams are closed when its handler's task ends,
--     however it ends (returned, raised, cancelled), as writer:close()
--     does: what the handler wrote still goes out.
-- The collector is stopped where a collection would hide the bug: a small
-- Lua heap never starts one, and none of this may depend on one.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

-- Runs fn with the collector stopped (restarted however fn ends).
local function without_gc(fn)
  collectgarbage("stop")
  local ok, err = pcall(fn)
  collectgarbage("restart")
  if not ok then error(err, 0) end
end

-- Runs fn as the main task of a fresh loop with a watchdog; returns the
-- contexts the loop's exception handler was given (also at loop close).
local function reports_of(fn, limit)
  return H.reports(function()
    local ok, err = pcall(aio.wait_for, fn, (limit or 5) * H.SLOW)
    if not ok and aio.is(err, aio.TimeoutError) then
      error("watchdog: the test was stuck", 0)
    end
    if not ok then error(err, 0) end
  end)
end

-- Waits (a little) until this process has at most n descriptors open.
local function fds_back_to(n)
  local now
  for _ = 1, 50 * H.SLOW do
    now = H.open_fds()
    if now <= n then return now end
    aio.sleep(0.01)
  end
  return now
end

-- libuv keeps one spare descriptor per loop from its first stream on:
-- open it before counting.
local function warm_up()
  local s = aio.start_server(function() end, HOST, 0)
  s:close()
  s:wait_closed()
end

-- Sends line, returns the reply line (nil at EOF) and then what follows
-- it up to EOF.
local function ask(port, line)
  local r, w = aio.open_connection(HOST, port)
  w:write(line)
  local reply = r:readline()
  local rest = r:read()
  w:close()
  w:wait_closed()
  return reply, rest
end

-- Sends line, returns everything the server sends back up to EOF.
local function fetch(port, line)
  local r, w = aio.open_connection(HOST, port)
  w:write(line)
  local all = r:read()
  w:close()
  w:wait_closed()
  return all
end

describe("a connection's streams are closed when its handler ends", function()
  it("when the handler raised: no descriptor is kept, later clients are served, "
     .. "and the error still reaches the exception handler", function()
    local reports = reports_of(function()
      without_gc(function()
        warm_up()
        local srv = aio.start_server(function(r, w)
          local line = r:readline()
          w:write("got " .. line)
          if line == "fail\n" then error("the handler failed on purpose") end
          w:close()
        end, HOST, 0)
        local _, port = srv:getsockname()
        local fds = H.open_fds()
        for _ = 1, 20 do
          local reply, rest = ask(port, "fail\n")
          assert.equal("got fail\n", reply)   -- written before the error: sent
          assert.equal("", rest)              -- then EOF: the server closed it
        end
        local now = fds_back_to(fds)
        assert.is_true(now <= fds, ("descriptors kept: %d before, %d after"):format(fds, now))
        for i = 1, 5 do
          assert.equal("got ok " .. i .. "\n", (ask(port, "ok " .. i .. "\n")))
        end
        srv:close()
        srv:wait_closed()
      end)
    end)
    local failed = 0
    for _, ctx in ipairs(reports) do
      assert.equal("Task exception was never retrieved", ctx.message)
      assert.matches("the handler failed on purpose", tostring(ctx.exception))
      failed = failed + 1
    end
    assert.equal(20, failed)
  end)

  it("when the handler returned without close(): everything it wrote arrives, "
     .. "then EOF; wait_closed() returns", function()
    local big = ("0123456789abcdef"):rep(64 * 1024)     -- 1 MiB, not drained
    H.closes_fds(function()
      without_gc(function()
        local srv = aio.start_server(function(r, w)
          if r:readline() == "big\n" then w:write(big) else w:write("small\n") end
        end, HOST, 0)
        local _, port = srv:getsockname()
        for _ = 1, 3 do
          local all = fetch(port, "big\n")
          assert.equal(#big, #all)
          assert.is_true(all == big, "the data arrived intact")
          assert.equal("small\n", (ask(port, "hi\n")))
        end
        srv:close()
        srv:wait_closed()                     -- its connections are closed too
      end)
    end, 10, warm_up)
  end)

  it("when the handler was cancelled: what it wrote arrives, then EOF", function()
    H.closes_fds(function()
      without_gc(function()
        local handlers = {}
        local srv = aio.start_server(function(r, w)
          handlers[#handlers + 1] = aio.current_task()
          w:write("hello\n")
          r:readline()                        -- cancelled here
        end, HOST, 0)
        local _, port = srv:getsockname()
        local r, w = aio.open_connection(HOST, port)
        assert.equal("hello\n", r:readline())
        handlers[1]:cancel()
        assert.is_nil(r:readline())           -- EOF
        assert.is_true(handlers[1]:cancelled())
        w:close()
        w:wait_closed()
        srv:close()
        srv:wait_closed()
      end)
    end, nil, warm_up)
  end)

  it("a handler's own close() and wait_closed() are not disturbed", function()
    local reports = reports_of(function()
      local srv = aio.start_server(function(r, w)
        w:write("bye " .. r:readline())
        w:close()
        w:wait_closed()
        assert.is_true(w:is_closing())
      end, HOST, 0)
      local _, port = srv:getsockname()
      assert.equal("bye now\n", (ask(port, "now\n")))
      srv:close()
      srv:wait_closed()
    end)
    assert.same({}, reports)
  end)

  it("a handler that waits for the task it handed its streams to is served", function()
    H.closes_fds(function()
      local srv = aio.start_server(function(r, w)
        aio.create_task(function()
          aio.sleep(0.01)
          w:write("later " .. r:readline())
        end):await()
      end, HOST, 0)
      local _, port = srv:getsockname()
      assert.equal("later on\n", (ask(port, "on\n")))
      srv:close()
      srv:wait_closed()
    end, nil, warm_up)
  end)
end)
