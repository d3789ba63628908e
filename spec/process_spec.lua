-- spec/process_spec.lua: aio.create_subprocess_exec / _shell (SPEC
-- "Processes, signals, files, threads"; asyncio.subprocess semantics).
local aio = require "luaio"
local H = require "helper"

local exec, shell = aio.create_subprocess_exec, aio.create_subprocess_shell
local PIPE, DEVNULL, STDOUT = aio.PIPE, aio.DEVNULL, aio.STDOUT

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local fails = H.errof

local tmpdir = H.tmpdir

local rmrf = H.rmrf

describe("subprocesses", function()
  it("exec with a piped stdout: communicate gives its output and the code", function()
    H.run(function()
      local p = exec("echo", { "hello", "world" }, { stdout = PIPE })
      assert.is_true(math.type(p.pid) == "integer" and p.pid > 0)
      assert.is_nil(p.stdin)
      assert.is_nil(p.stderr)
      local out, err = p:communicate()
      assert.equal("hello world\n", out)
      assert.is_nil(err)            -- stderr not piped
      assert.equal(0, p.returncode)
      assert.equal(0, p:wait())     -- waiting again is fine
    end)
  end)

  it("args may be omitted; arguments are not split or interpreted by a shell", function()
    H.run(function()
      local p = exec("printf", { "%s|", "a b", "$HOME", "'q'" }, { stdout = PIPE })
      assert.equal("a b|$HOME|'q'|", (p:communicate()))
      p = exec("true")
      assert.equal(0, p:wait())
    end)
  end)

  it("shell runs through /bin/sh -c", function()
    H.run(function()
      local p = shell("echo $((6*7)) | tr 4 x; exit 5", { stdout = PIPE })
      local out = p:communicate()
      assert.equal("x2\n", out)
      assert.equal(5, p.returncode)
    end)
  end)

  it("communicate returns \"\" for an empty pipe and nil for one not piped", function()
    H.run(function()
      local p = exec("true", {}, { stdout = PIPE, stderr = PIPE })
      local out, err = p:communicate()
      assert.equal("", out)
      assert.equal("", err)
      p = exec("true", {}, { stderr = PIPE, stdout = DEVNULL })
      out, err = p:communicate()
      assert.is_nil(out)
      assert.equal("", err)
    end)
  end)

  it("communicate reads 1 MiB from stdout and stderr at once without deadlock", function()
    H.run(function()
      -- interleaved writes: a reader that drains one pipe first deadlocks
      local prog = "for i = 1, 1024 do io.stdout:write(('o'):rep(1024)) io.stdout:flush() "
        .. "io.stderr:write(('e'):rep(1024)) end"
      local p = exec("lua5.4", { "-e", prog }, { stdout = PIPE, stderr = PIPE })
      local out, err = aio.wait_for(aio.spawn(p.communicate, p), 10)
      assert.equal(1024 * 1024, #out)
      assert.equal(1024 * 1024, #err)
      assert.is_nil(out:find("[^o]"))
      assert.is_nil(err:find("[^e]"))
      assert.equal(0, p.returncode)
    end)
  end)

  it("communicate feeds input while reading the output (no deadlock on big data)", function()
    H.run(function()
      local chunk = {}
      for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
      local input = table.concat(chunk):rep(4096)   -- 1 MiB, binary
      local p = exec("cat", {}, { stdin = PIPE, stdout = PIPE })
      local out, err = aio.wait_for(aio.spawn(p.communicate, p, input), 10)
      assert.is_true(out == input, "cat echoed different data")
      assert.is_nil(err)
      assert.equal(0, p.returncode)
      -- stdin is closed: the child sees EOF
      p = exec("wc", { "-c" }, { stdin = PIPE, stdout = PIPE })
      out = p:communicate("12345")
      assert.equal("5", out:match("%d+"))
      -- no input: stdin is still closed, so the child does not hang
      p = exec("cat", {}, { stdin = PIPE, stdout = PIPE })
      out = aio.wait_for(aio.spawn(p.communicate, p), 5)
      assert.equal("", out)
    end)
  end)

  it("writing to the stdin of a child that has exited raises EPIPE from write", function()
    H.run(function()
      local p = exec("true", {}, { stdin = PIPE })
      p:wait()
      local ok, err = pcall(function()
        for _ = 1, 3 do p.stdin:write("x") end   -- a child's pipe is never held
      end)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("EPIPE", err.code)
      p.stdin:close()
    end)
  end)

  it("communicate ignores a child that exits without reading its input", function()
    H.run(function()
      local p = exec("true", {}, { stdin = PIPE, stdout = PIPE })
      local out = p:communicate(("x"):rep(4 * 1024 * 1024))
      assert.equal("", out)
      assert.equal(0, p.returncode)
    end)
  end)

  it("communicate with input but no stdin pipe, or a non-string input, is an error", function()
    H.run(function()
      local p = exec("true", {}, { stdout = PIPE })
      local err = fails(p.communicate, p, "data")
      assert.matches("stdin", tostring(err))
      p:wait()
      p = exec("cat", {}, { stdin = PIPE, stdout = PIPE })
      err = fails(p.communicate, p, 42)
      assert.matches("communicate", tostring(err))
      p.stdin:close()
      assert.equal("", (p:communicate()))
    end)
  end)

  it("stdin/stdout streams can be used directly", function()
    H.run(function()
      local p = exec("cat", {}, { stdin = PIPE, stdout = PIPE })
      p.stdin:write("line 1\nline 2\n")
      p.stdin:drain()
      assert.equal("line 1\n", p.stdout:readline())
      p.stdin:close()
      assert.equal("line 2\n", p.stdout:read())
      assert.equal("", p.stdout:read())
      assert.equal(0, p:wait())
    end)
  end)

  it("communicate, and reading a pipe to EOF, release the pipes (no handle left open)", function()
    H.run(function()
      local loop = aio.get_running_loop()
      local p = exec("sh", { "-c", "cat; echo err >&2" }, { stdin = PIPE, stdout = PIPE, stderr = PIPE })
      local out, err = p:communicate("in")
      assert.same({ "in", "err\n" }, { out, err })
      aio.sleep(0.01)      -- closing a handle takes a turn of the loop
      assert.equal(0, loop:stats().handles, "pipes still open after communicate")

      local p2 = exec("echo", { "x" }, { stdout = PIPE })
      assert.equal("x\n", p2.stdout:read())
      assert.equal(0, p2:wait())
      aio.sleep(0.01)
      assert.equal(0, loop:stats().handles, "stdout pipe still open after EOF")
      -- keep the objects alive so that collection cannot close the pipes
      assert.is_table(p)
      assert.is_table(p2)
    end)
  end)

  it("exit codes", function()
    H.run(function()
      for _, code in ipairs { 0, 1, 2, 42, 255 } do
        local p = exec("sh", { "-c", "exit " .. code })
        assert.equal(code, p:wait())
        assert.equal(code, p.returncode)
      end
    end)
  end)

  it("returncode is nil while the child runs", function()
    H.run(function()
      local p = exec("sleep", { "0.1" })
      assert.is_nil(p.returncode)
      aio.sleep(0.01)
      assert.is_nil(p.returncode)
      assert.equal(0, p:wait())
      assert.equal(0, p.returncode)
      assert.matches("Process%(pid=" .. p.pid, tostring(p))
    end)
  end)

  it("terminate gives -15, kill gives -9, send_signal by name or number", function()
    H.run(function()
      local p = exec("sleep", { "10" })
      p:terminate()
      assert.equal(-15, p:wait())
      assert.equal(-15, p.returncode)

      p = exec("sleep", { "10" })
      p:kill()
      assert.equal(-9, p:wait())

      p = exec("sleep", { "10" })
      p:send_signal("SIGINT")
      assert.equal(-2, p:wait())

      p = exec("sleep", { "10" })
      p:send_signal(15)
      assert.equal(-15, p:wait())

      -- a child killing itself with a signal
      p = shell("kill -TERM $$; sleep 5")
      assert.equal(-15, p:wait())
    end)
  end)

  it("a signal the child handles is not a signal death", function()
    H.run(function()
      local p = shell("trap 'exit 7' TERM; while :; do sleep 0.01; done",
        { stdout = PIPE })
      aio.sleep(0.1)                  -- let the shell install its trap
      p:terminate()
      assert.equal(7, p:wait())
    end)
  end)

  it("send_signal with a bad signal is an error", function()
    H.run(function()
      local p = exec("sleep", { "10" })
      local err = fails(p.send_signal, p, "SIGNOPE")
      assert.matches("SIGNOPE", tostring(err))
      assert.matches("bad argument #1 to 'send_signal' (signal number or name expected, got table)",
        fails(p.send_signal, p, {}), 1, true)
      p:kill()
      p:wait()
    end)
  end)

  it("send_signal, terminate and kill after the child exited raise OSError ESRCH", function()
    H.run(function()
      local p = exec("true")
      p:wait()
      for _, f in ipairs {
        function() p:send_signal("SIGTERM") end,
        function() p:terminate() end,
        function() p:kill() end,
      } do
        local err = fails(f)
        assert.is_true(aio.is(err, aio.OSError), tostring(err))
        assert.equal("ESRCH", err.code)
      end
    end)
  end)

  it("env replaces the environment", function()
    H.run(function()
      local p = exec("/usr/bin/env", {}, { env = { FOO = "bar baz", N = 5 }, stdout = PIPE })
      local out = p:communicate()
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      table.sort(lines)
      assert.same({ "FOO=bar baz", "N=5" }, lines)

      -- empty table: no variables at all
      p = exec("/usr/bin/env", {}, { env = {}, stdout = PIPE })
      assert.equal("", (p:communicate()))

      -- without env the parent's environment is inherited
      p = shell("echo \"$HOME\"", { stdout = PIPE })
      assert.equal((os.getenv("HOME") or "") .. "\n", (p:communicate()))
    end)
  end)

  it("bad env and options are errors at the call", function()
    H.run(function()
      assert.matches("env", tostring(fails(exec, "true", {}, { env = "FOO=1" })))
      assert.matches("env", tostring(fails(exec, "true", {}, { env = { FOO = {} } })))
      assert.matches("stdin", tostring(fails(exec, "true", {}, { stdin = "bogus" })))
      assert.matches("STDOUT", tostring(fails(exec, "true", {}, { stdout = STDOUT })))
      assert.matches("bad argument #1", tostring(fails(exec, 42)))
      assert.matches("bad argument #1", tostring(fails(shell, nil)))
      assert.matches("cwd", tostring(fails(exec, "true", {}, { cwd = 1 })))
    end)
  end)

  it("cwd sets the child's working directory", function()
    local d = tmpdir()
    local ok, err = pcall(H.run, function()
      local real = io.popen("cd " .. H.quote(d) .. " && pwd -P"):read("l")
      local p = exec("pwd", { "-P" }, { cwd = d, stdout = PIPE })
      assert.equal(real .. "\n", (p:communicate()))
      p = shell("touch made-here", { cwd = d })
      assert.equal(0, p:wait())
      assert.is_true(exists(d .. "/made-here"))
    end)
    rmrf(d)
    assert(ok, err)
  end)

  it("a missing cwd raises OSError", function()
    H.run(function()
      local err = fails(exec, "true", {}, { cwd = "/nonexistent/luaio/dir" })
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("ENOENT", err.code)
    end)
  end)

  it("a missing program raises OSError ENOENT and leaves nothing open", function()
    H.run(function()
      local err = fails(exec, "/nonexistent/luaio-no-such-program", {}, { stdout = PIPE, stderr = PIPE })
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.equal("ENOENT", err.code)
      assert.is_number(err.errno)
      err = fails(exec, "luaio-no-such-program-on-path", {}, { stdin = PIPE })
      assert.equal("ENOENT", err.code)
      -- merged stderr path too
      err = fails(exec, "luaio-no-such-program-on-path", {}, { stdout = PIPE, stderr = STDOUT })
      assert.equal("ENOENT", err.code)
      -- shell: the shell runs and reports 127
      local p = shell("luaio-no-such-program-on-path", { stderr = DEVNULL })
      assert.equal(127, p:wait())
    end)
  end)

  it("stderr = STDOUT merges both streams into stdout", function()
    H.run(function()
      local p = shell("echo out; echo err >&2; echo out2", { stdout = PIPE, stderr = STDOUT })
      assert.is_nil(p.stderr)
      local out, err = p:communicate()
      assert.equal("out\nerr\nout2\n", out)
      assert.is_nil(err)
      assert.equal(0, p.returncode)
    end)
  end)

  it("stderr = STDOUT with stdout = DEVNULL sends both to /dev/null", function()
    local f = os.tmpname()
    local ok, err = pcall(H.run, function()
      local p = shell("(readlink /proc/$$/fd/1 /proc/$$/fd/2 > " .. H.quote(f) .. "); :",
        { stdout = DEVNULL, stderr = STDOUT })
      assert.is_nil(p.stdout)
      assert.is_nil(p.stderr)
      assert.equal(0, p:wait())
    end)
    local got = io.open(f):read("a")
    os.remove(f)
    assert(ok, err)
    assert.equal("/dev/null\n/dev/null\n", got)
  end)

  it("DEVNULL connects a stream to /dev/null", function()
    H.run(function()
      local p = shell("(readlink /proc/$$/fd/0 /proc/$$/fd/1 >&2); :", { stdin = DEVNULL, stdout = DEVNULL, stderr = PIPE })
      local out, err = p:communicate()
      assert.is_nil(out)
      assert.equal("/dev/null\n/dev/null\n", err)
      assert.is_nil(p.stdin)
      assert.is_nil(p.stdout)
      -- reading a DEVNULL stdin gives EOF at once
      p = exec("cat", {}, { stdin = DEVNULL, stdout = PIPE })
      assert.equal("", (p:communicate()))
      assert.equal(0, p.returncode)
    end)
  end)

  it("runs 100 subprocesses concurrently", function()
    H.run(function()
      local t0 = aio.time()
      local jobs = {}
      for i = 1, 100 do
        jobs[i] = function()
          local p = exec("sh", { "-c", "sleep 0.2; echo $0", tostring(i) }, { stdout = PIPE })
          local out = p:communicate()
          return out, p.returncode
        end
      end
      local res = aio.gather(jobs)
      for i = 1, 100 do assert.equal(i .. "\n", res[i]) end
      -- they overlapped: 100 sequential sleeps would take 20 s.  The bound
      -- is loose on purpose: 100 forks of an ASan build on a loaded CI
      -- machine took 2.8 s once (0.3 s here).
      assert.is_true(aio.time() - t0 < 10, "took " .. (aio.time() - t0))
    end)
  end)

  it("a cancelled wait() leaves no zombie and a later wait() gets the code", function()
    H.run(function()
      local p = shell("sleep 0.1; exit 3")
      local t = aio.spawn(p.wait, p)
      aio.sleep(0.01)
      t:cancel()
      local ok, err = pcall(t.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError))
      assert.is_nil(p.returncode)
      assert.is_true(exists("/proc/" .. p.pid .. "/stat"))
      assert.equal(3, p:wait())
      assert.is_false(exists("/proc/" .. p.pid .. "/stat"), "child not reaped")
    end)
  end)

  it("a child whose wait was cancelled is reaped when it exits, even if nobody waits again", function()
    H.run(function()
      local p = exec("sleep", { "0.05" })
      local t = aio.spawn(p.wait, p)
      aio.sleep(0)
      t:cancel()
      local err = fails(t.await, t)
      assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
      local deadline = aio.time() + 2
      while p.returncode == nil and aio.time() < deadline do aio.sleep(0.01) end
      assert.equal(0, p.returncode)
      assert.is_false(exists("/proc/" .. p.pid .. "/stat"), "child not reaped")
    end)
  end)

  it("several tasks may wait for the same process", function()
    H.run(function()
      local p = shell("sleep 0.05; exit 9")
      local res = aio.gather { function() return p:wait() end, function() return p:wait() end }
      assert.same({ 9, 9 }, { res[1], res[2] })
    end)
  end)

  it("cancelling communicate leaves the child running and usable", function()
    H.run(function()
      local p = exec("sleep", { "10" }, { stdout = PIPE, stderr = PIPE })
      local ok, err = pcall(aio.wait_for, aio.spawn(p.communicate, p), 0.05)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      assert.is_nil(p.returncode)
      p:kill()
      assert.equal(-9, p:wait())
      p.stdout:read(); p.stderr:read()
    end)
  end)

end)
