-- spec/exit_flush_spec.lua: what a script wrote is written when the run
-- ends (issue 18).  A client writes 20 MiB to a peer that starts reading
-- only later, and ends -- the end of the CLI's main task, of aio.run, of
-- a Runner, os.exit() -- with or without close(): every byte arrives.
-- A peer that reads nothing gets what it can in shutdown_timeout; the
-- rest is dropped with one report naming the bytes, and the exit status
-- is unchanged.
--
-- The peer is a server in this spec's loop; the client is a child
-- process (the CLI or stock lua5.4) on a real socket.
local aio = require "luaio"
local H = require "helper"

local SIZE = 20 * 1024 * 1024

-- The client: connects to arg[1], writes SIZE bytes, then does what
-- `ending` says, inside body(); `wrap` runs body (the CLI's main task
-- when empty).
local function client(ending, wrap)
  return ([[
    local aio = require "luaio"
    local function body()
      local _, w = aio.open_connection("127.0.0.1", tonumber(arg[1]))
      w:write(("x"):rep(%d))
      %s
    end
    %s
  ]]):format(SIZE, ending, wrap or "body()")
end

-- Runs the client script src with prog (and env, a list of NAME=value)
-- against a peer that starts reading `delay` seconds after it connects
-- (false: once the client has exited), reading slowly when `slow`.
-- -> exit status, the client's stderr, bytes the peer got, seconds the
-- client took.
local function transfer(prog, src, delay, env, slow)
  local path = H.script(src)
  local exited, got = aio.Event(), aio.Future()
  local srv = aio.start_server(function(r, w)
    if delay then aio.sleep(delay) else exited:wait() end
    local n = 0
    while true do
      local data = r:read(65536)
      if not data then break end
      n = n + #data
      if slow then aio.sleep(0.001) end
    end
    got:set_result(n)
    w:close()
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  local args = { tostring(20 * H.SLOW), "env" }  -- (a hang fails: 124)
  for _, e in ipairs(env or {}) do args[#args + 1] = e end
  args[#args + 1] = prog
  args[#args + 1] = path
  args[#args + 1] = tostring(port)
  local t0 = aio.time()
  local p = aio.create_subprocess_exec("timeout", args, { stderr = aio.PIPE })
  local _, err = p:communicate()
  local status = p:wait()
  local took = aio.time() - t0
  exited:set()
  local n = aio.wait_for(got, 10 * H.SLOW)
  srv:close()
  srv:wait_closed()
  os.remove(path)
  return status, err, n, took
end

-- The bytes the report in err says were not sent ("at loop close" or
-- "at exit"), after a bound of `bound` seconds.
local function unsent(err, when, bound)
  local n = err:match("1 stream%(s%) still writing " .. when .. ": (%d+) "
    .. "bytes not sent %(gave up after " .. bound:gsub("%.", "%%.")
    .. " s, the shutdown_timeout%)\n")
  assert(n, "no report in stderr: " .. err)
  return tonumber(n)
end

describe("queued writes at the end of a run", function()
  it("reach a peer that reads late: the CLI's main task ends after close()", function()
    H.run(function()
      local status, err, n = transfer(H.LUAIO, client("w:close()"), 0.5)
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(SIZE, n)
    end)
  end)

  it("reach a peer that reads late: the CLI's main task ends, the writer never closed", function()
    H.run(function()
      local status, err, n = transfer(H.LUAIO, client(""), 0.5)
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(SIZE, n)
    end)
  end)

  it("reach a peer that reads late: os.exit(0), after close() or not (CLI and stock lua5.4)", function()
    H.run(function()
      for _, ending in ipairs { "w:close() os.exit(0)", "os.exit(0)" } do
        for _, prog in ipairs { H.LUAIO, "lua5.4" } do
          local status, err, n = transfer(prog, client(ending, "aio.run(body)"), 0.5)
          assert.equal(0, status)
          assert.equal("", err)
          assert.equal(SIZE, n, prog .. ": " .. ending)
        end
      end
    end)
  end)

  it("reach a peer that reads late: aio.run in stock lua5.4", function()
    H.run(function()
      local status, err, n = transfer("lua5.4", client("w:close()", "aio.run(body)"), 0.5)
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(SIZE, n)
    end)
  end)

  it("reach a peer that reads late: a Runner's close(), the writer never closed", function()
    H.run(function()
      local status, err, n = transfer("lua5.4", client("", [[
        local r = aio.Runner()
        r:run(body)
        r:close()
      ]]), 0.5)
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(SIZE, n)
    end)
  end)

  it("reach a peer that reads slowly but steadily (within shutdown_timeout)", function()
    H.run(function()
      local status, err, n = transfer(H.LUAIO, client("w:close()"), 0.1, nil, true)
      assert.equal(0, status)
      assert.equal("", err)
      assert.equal(SIZE, n)
    end)
  end)

  it("to a peer that reads nothing are dropped after shutdown_timeout, with one report (CLI)", function()
    H.run(function()
      local status, err, n, took = transfer(H.LUAIO, client("w:close()"), false,
        { "LUAIO_SHUTDOWN_TIMEOUT=0.3" })
      assert.equal(0, status)
      local lost = unsent(err, "at loop close", "0.3")
      assert.is_true(lost > 0)
      assert.equal(SIZE, n + lost)        -- what was not dropped arrived
      assert.is_true(took >= 0.3 and took < 3 * H.SLOW, "took " .. took)
    end)
  end)

  it("to a peer that reads nothing are dropped after a Runner's shutdown_timeout, with one report", function()
    H.run(function()
      local status, err, n, took = transfer("lua5.4", client("", [[
        local r = aio.Runner { shutdown_timeout = 0.2 }
        r:run(body)
        r:close()
      ]]), false)
      assert.equal(0, status)
      local lost = unsent(err, "at loop close", "0.2")
      assert.equal(SIZE, n + lost)
      assert.is_true(took >= 0.2 and took < 3 * H.SLOW, "took " .. took)
    end)
  end)

  it("to a peer that reads nothing are dropped by os.exit(0) after shutdown_timeout, with one report", function()
    H.run(function()
      for _, prog in ipairs { H.LUAIO, "lua5.4" } do
        local status, err, n, took = transfer(prog, client("os.exit(0)", "aio.run(body)"),
          false, { "LUAIO_SHUTDOWN_TIMEOUT=0.3" })
        assert.equal(0, status)
        local lost = unsent(err, "at exit", "0.3")
        assert.equal(SIZE, n + lost)
        assert.is_true(took >= 0.3 and took < 3 * H.SLOW, "took " .. took)
      end
    end)
  end)

  it("an exception handler that makes a loop while the report at exit runs does not hang", function()
    H.run(function()
      local status, err, n = transfer(H.LUAIO, client([[
        aio.get_running_loop():set_exception_handler(function(_, ctx)
          local ok, e = pcall(aio.run, function() end)
          io.stderr:write(ctx.message, "\n", tostring(ok), " ", e, "\n")
        end)
        os.exit(0)
      ]], "aio.run(body)"), false, { "LUAIO_SHUTDOWN_TIMEOUT=0.2" })
      assert.equal(0, status)
      local lost = unsent(err, "at exit", "0.2")
      assert.equal(SIZE, n + lost)
      assert.matches("\nfalse [^\n]*aio%.run: a loop is already running\n$", err)
    end)
  end)

  it("LUAIO_SHUTDOWN_TIMEOUT must be a number of seconds", function()
    local r = H.cli({ "-e", "print(1)" }, { env = "LUAIO_SHUTDOWN_TIMEOUT=soon" })
    assert.equal(1, r.status)
    assert.matches('LUAIO_SHUTDOWN_TIMEOUT must be a number of seconds >= 0 (got "soon")', r.stderr, 1, true)
    assert.equal("", r.stdout)
    r = H.cli({ "-e", "print(1)" }, { env = "LUAIO_SHUTDOWN_TIMEOUT=-1" })
    assert.matches('LUAIO_SHUTDOWN_TIMEOUT must be a number of seconds >= 0 (got "-1")', r.stderr, 1, true)
  end)
end)
