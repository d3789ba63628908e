-- spec/limits_spec.lua: resource limits end in a clean error or in the
-- death stock lua5.4 would die, never in a panic, an abort or a spin.
-- Each case runs a child process -- the CLI and stock lua5.4 with the
-- module -- under a real limit (ulimit -v) or a real closed pipe.
local H = require "helper"

local quote = H.quote

-- ASan reserves terabytes of address space: under `ulimit -v` an ASan
-- build cannot start at all.  The cases below that run the CLI under
-- `ulimit -v` are therefore left out when H.LUAIO is an ASan build (they
-- run in the plain build); the stock lua5.4 children load the plain
-- module and always run.
local function has_asan(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local s = f:read("a")
  f:close()
  return s:find("__asan_init", 1, true) ~= nil
end
local ASAN = has_asan(H.LUAIO)

-- The interpreters a child runs under: the CLI (unless ASan) and lua5.4.
local function interpreters(limited)
  local list = {}
  if not (limited and ASAN) then list[#list + 1] = { name = "the CLI", cmd = quote(H.LUAIO) } end
  list[#list + 1] = { name = "lua5.4", cmd = "lua5.4" }
  return list
end

-- Runs `cmd` (a shell command) under `ulimit -v kb`; -> status, stdout, stderr.
local function under_limit(kb, cmd)
  local out, err = os.tmpname(), os.tmpname()
  local _, _, code = os.execute(("timeout 20 sh -c %s </dev/null >%s 2>%s"):format(
    quote(("ulimit -v %d; exec %s"):format(kb, cmd)), quote(out), quote(err)))
  local r = { status = code, stdout = H.readall(out), stderr = H.readall(err) }
  os.remove(out); os.remove(err)
  return r
end

-- A script that calls to_thread in a loop (the first call starts libuv's
-- thread pool and a worker state) and prints "ok" or "ERR <error>".
local LOOP = [[
local aio = require "luaio"
local ok, err = pcall(aio.run, function()
  for i = 1, 20 do
    assert(aio.to_thread(function(x) return x + 1 end, i) == i + 1)
  end
end)
print(ok and "ok" or "ERR " .. tostring(err))
]]

-- What one run under a limit came to: "thread" (the pool could not
-- start), "worker" (no memory for a worker's state), "ok", "nomem" (some
-- other clean "not enough memory", the interpreter's own start included),
-- "nostart" (the dynamic linker could not map a library), or "bad".
local function classify(r)
  if r.stderr:find("PANIC", 1, true) then return "bad" end
  if r.status == 0 then
    if r.stdout == "ok\n" then return "ok" end
    if r.stdout:find("^ERR OSError: to_thread: can't start new thread: resource temporarily unavailable\n$") then
      return "thread"
    end
    if r.stdout:find("to_thread: not enough memory to start a worker\n$") then return "worker" end
    if r.stdout:find("^ERR not enough memory\n$") then return "nomem" end
    return "bad"
  end
  if r.status == 1 and r.stderr:find("not enough memory", 1, true) then return "nomem" end
  if r.status == 127 and r.stderr:find("failed to map", 1, true) then return "nostart" end
  if r.status == 1 and r.stderr:find("failed to map", 1, true) then return "nostart" end
  return "bad"
end

-- Runs LOOP under growing limits until it passes: every run must end
-- cleanly.  -> the kinds seen, the highest "thread" limit, a log.
local function sweep(cmd, script)
  local seen, last_thread, log = {}, nil, {}
  local function try(kb)
    local r = under_limit(kb, cmd .. " " .. quote(script))
    local kind = classify(r)
    seen[kind] = true
    log[#log + 1] = ("%d KB: %s (status %s) %s%s"):format(kb, kind, tostring(r.status),
      r.stdout:gsub("\n", " "), r.stderr:sub(1, 200))
    if kind == "thread" then last_thread = kb end
    return kind
  end
  local kb, kind = 16 * 1024, nil
  while kb <= 256 * 1024 do
    kind = try(kb)
    if kind == "ok" or kind == "bad" then break end
    kb = kb + 2048
  end
  -- the step from "thread" to "ok" may jump over the narrow band where
  -- the threads start but a worker's state does not: look closer
  -- (halving the gap down to 1 KB: the band is a few KB wide since each
  -- call makes its worker state afresh)
  if kind == "ok" and not seen.worker and last_thread then
    local lo, hi = last_thread, kb
    while hi - lo > 1 and not seen.worker do
      local mid = (lo + hi) // 2
      local k = try(mid)
      if k == "thread" then lo = mid elseif k == "ok" then hi = mid else break end
    end
  end
  return seen, last_thread, table.concat(log, "\n")
end

describe("to_thread and the thread pool under resource limits", function()
  for _, interp in ipairs(interpreters(true)) do
    it("ends in a clean error, never a panic or an abort (" .. interp.name .. " under ulimit -v)", function()
      local script = H.script(LOOP)
      local seen, last_thread, log = sweep(interp.cmd, script)
      os.remove(script)
      assert.is_nil(seen.bad, "a run did not end cleanly:\n" .. log)
      -- libuv's pool could not make its threads: a clean aio.OSError
      assert.is_true(seen.thread == true, "thread creation never failed:\n" .. log)
      -- the threads started but a worker's Lua state could not be made
      assert.is_true(seen.worker == true, "a worker's state never failed to start:\n" .. log)
      assert.is_true(seen.ok == true, "never passed:\n" .. log)

      -- getaddrinfo and file requests use the same pool: the same check
      script = H.script([[
        local aio = require "luaio"
        aio.run(function()
          local ok, err = pcall(aio.fs.stat, "/")
          print(ok, tostring(err), type(err) == "table" and err.code)
          ok, err = pcall(aio.getaddrinfo, "localhost", 80)
          print(ok, tostring(err), type(err) == "table" and err.code)
        end)
      ]])
      local r = under_limit(last_thread, interp.cmd .. " " .. quote(script))
      os.remove(script)
      assert.equal(0, r.status, r.stderr)
      assert.equal("false\tOSError: stat: can't start new thread: resource temporarily unavailable\tEAGAIN\n"
        .. "false\tOSError: getaddrinfo: can't start new thread: resource temporarily unavailable\tEAGAIN\n", r.stdout)
    end)

    it("in a mixed workload of concurrent calls ends cleanly at every limit (" .. interp.name .. ")", function()
      local script = H.script([[
        local aio = require "luaio"
        local errors = {}
        aio.run(function()
          for _ = 1, 3 do
            local ts = {}
            for j = 1, 8 do
              ts[j] = aio.create_task(function()
                return aio.to_thread(function(x)
                  local t = {}
                  for k = 1, 500 do t[k] = tostring(k) end
                  return x + #t
                end, j)
              end)
            end
            for _, t in ipairs(ts) do
              local ok, err = pcall(aio.wait_for, t, 10)
              if not ok then errors[tostring(err):gsub("^.-:%d+: ", "")] = true end
            end
          end
        end)
        for e in pairs(errors) do print(e) end
        print("done")
      ]])
      local seen, log = {}, {}
      for kb = 32 * 1024, 72 * 1024, 4 * 1024 do
        local r = under_limit(kb, interp.cmd .. " " .. quote(script))
        local ok = not r.stderr:find("PANIC", 1, true)
        if r.status == 0 then
          for line in r.stdout:gmatch("[^\n]+") do
            seen[line] = true
            if line ~= "done"
              and not line:find("^OSError: to_thread: can't start new thread: resource temporarily unavailable$")
              and not line:find("^to_thread: not enough memory to start a worker$")
              and not line:find("^to_thread: not enough memory$")
              and not line:find("^to_thread: not enough memory for the results$")
              and not line:find("^not enough memory$") then
              ok = false
            end
          end
          ok = ok and r.stdout:find("done\n$") ~= nil
        elseif not (r.status == 1 and r.stderr:find("not enough memory", 1, true)) then
          ok = false
        end
        log[#log + 1] = ("%d KB: status %s %s %s"):format(kb, tostring(r.status),
          r.stdout:gsub("\n", " | "), r.stderr:sub(1, 300))
        assert.is_true(ok, "did not end cleanly:\n" .. table.concat(log, "\n"))
      end
      os.remove(script)
      assert.is_true(seen.done == true, table.concat(log, "\n"))
    end)
  end

  -- RLIMIT_NPROC counts the processes and threads of a user; root is
  -- exempt, so the child runs as nobody, with a limit of 1: itself.
  local as_nobody = os.execute("[ \"$(id -u)\" = 0 ] && command -v setpriv >/dev/null && command -v prlimit >/dev/null")
  for _, interp in ipairs(interpreters(false)) do
    it("raises 'can't start new thread' when RLIMIT_NPROC forbids threads (" .. interp.name .. " as nobody)", function()
      assert.is_true(as_nobody == true, "needs root, setpriv and prlimit (util-linux) to run a child as nobody")
      local script = H.script(LOOP)
      assert(os.execute("chmod 644 " .. quote(script)))
      local out, err = os.tmpname(), os.tmpname()
      local _, _, code = os.execute(("timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups prlimit --nproc=1 %s %s </dev/null >%s 2>%s"):format(
        interp.cmd, quote(script), quote(out), quote(err)))
      local r = { status = code, stdout = H.readall(out), stderr = H.readall(err) }
      os.remove(out); os.remove(err); os.remove(script)
      assert.equal(0, r.status, r.stderr)
      assert.equal("ERR OSError: to_thread: can't start new thread: resource temporarily unavailable\n", r.stdout)
      assert.equal("", r.stderr)
    end)
  end

  if ASAN then
    it("runs the CLI's ulimit -v cases only in a plain build (this CLI is built with ASan)", function()
      assert.is_true(ASAN)
    end)
  end
end)

-- Runs the shell command `cmd` with its standard output into `head -1`
-- (which exits after one line, closing the pipe) and SIGPIPE at its
-- default (this busted process ignores it, and children inherit that);
-- -> what head printed, cmd's exit status (128 + n: killed by signal n;
-- 124: still running after the watchdog's 20 s), cmd's stderr.
-- (opts.stderr: its standard error into head instead, its output to
-- /dev/null; opts.ignored: SIGPIPE ignored, as by a parent process.)
local function into_head(cmd, opts)
  opts = opts or {}
  local errf = os.tmpname()
  local sig = opts.ignored and "env --ignore-signal=PIPE " or "env --default-signal=PIPE "
  local redir = opts.stderr and "2>&1 >/dev/null" or "2>" .. quote(errf)
  local p = assert(io.popen(("bash -c %s"):format(quote(
    ("timeout 20 %s%s %s | head -1; echo \"status=${PIPESTATUS[0]}\""):format(sig, cmd, redir)))))
  local out = p:read("a")
  p:close()
  local stderr = H.readall(errf)
  os.remove(errf)
  local status = tonumber(out:match("status=(%d+)\n$"))
  return (out:gsub("status=%d+\n$", "")), status, stderr
end

-- The commands that run Lua code `src` with luaio loaded.
local function runners(src)
  return {
    { name = "the CLI", cmd = quote(H.LUAIO) .. " -e " .. quote(src) },
    { name = "lua5.4", cmd = "lua5.4 -e " .. quote("require 'luaio'") .. " -e " .. quote(src) },
  }
end

describe("writing to a closed standard output", function()
  local cases = {
    { "print", "for i = 1, 1e7 do print(i) end" },
    { "io.write", "for i = 1, 1e7 do io.write(i, '\\n') end" },
    { "io.stdout:write", "for i = 1, 1e7 do io.stdout:write(i, '\\n') end" },
    { "print inside aio.run", "require('luaio').run(function() for i = 1, 1e7 do print(i) end end)" },
    { "io.write between suspensions in a task",
      "local aio = require 'luaio' aio.run(function() for i = 1, 1e7 do io.write(i, '\\n'); aio.sleep(0) end end)" },
    { "io.write then io.flush",
      "for i = 1, 1e7 do io.write(i, '\\n'); io.flush() end" },
  }
  for _, case in ipairs(cases) do
    for _, run in ipairs(runners(case[2])) do
      it("with " .. case[1] .. " ends the program by SIGPIPE as lua5.4 does (" .. run.name .. ")", function()
        local out, status, stderr = into_head(run.cmd)
        assert.equal("1\n", out)
        assert.equal(141, status, stderr)      -- 128 + SIGPIPE, not 124: no spin
        assert.equal("", stderr)
      end)
    end
  end

  for _, run in ipairs(runners("while true do io.stderr:write('x\\n') end")) do
    it("with io.stderr:write to a closed standard error ends the same way (" .. run.name .. ")", function()
      local out, status = into_head(run.cmd, { stderr = true })
      assert.equal("x\n", out)
      assert.equal(141, status)
    end)
  end

  -- A pipe and a socket whose readers are gone raise EPIPE (the process
  -- lives on); then standard output, closed too, ends the process.
  local PEERS = [[
    local aio = require "luaio"
    aio.run(function()
      local p = aio.create_subprocess_exec("true", {}, { stdin = aio.PIPE })
      p:wait()
      local ok, err = pcall(function()
        for _ = 1, 3 do p.stdin:write("x"); p.stdin:drain() end
      end)
      io.stderr:write("pipe: ", tostring(ok), " ", tostring(err.code), "\n")
      p.stdin:close()
      local srv = aio.start_server(function(_, w) w:close() end, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      local r, w = aio.open_connection("127.0.0.1", port)
      assert(r:read(100) == nil)              -- the peer closed
      ok, err = pcall(function()
        for _ = 1, 100 do w:write(("x"):rep(65536)); w:drain() end
      end)
      local code = err.code == "ECONNRESET" and "EPIPE" or err.code
      io.stderr:write("socket: ", tostring(ok), " ", tostring(code), "\n")
      w:close()
      srv:close()
    end)
    io.stderr:write("alive\n")
    while true do print("line") end
  ]]
  for _, run in ipairs(runners(PEERS)) do
    it("keeps EPIPE from pipes and sockets an error, in the same process (" .. run.name .. ")", function()
      local out, status, stderr = into_head(run.cmd)
      assert.equal("line\n", out)
      assert.equal("pipe: false EPIPE\nsocket: false EPIPE\nalive\n", stderr)
      assert.equal(141, status, stderr)
    end)
  end

  -- A process started with SIGPIPE ignored keeps lua5.4's behaviour: the
  -- write fails and says so; nothing dies.
  local IGNORED = [[
    io.stdout:setvbuf("no")
    for i = 1, 1e4 do print(i) end
    local a, b = { io.write("x") }, { io.stdout:write("x") }
    io.stderr:write(tostring(a[3]), " ", tostring(b[3]), "\n")
  ]]
  for _, run in ipairs(runners(IGNORED)) do
    it("leaves a SIGPIPE the process ignored itself alone (" .. run.name .. ")", function()
      local out, status, stderr = into_head(run.cmd, { ignored = true })
      assert.equal("1\n", out)
      assert.equal(0, status, stderr)
      assert.equal("32 32\n", stderr)          -- EPIPE
    end)
  end
end)
