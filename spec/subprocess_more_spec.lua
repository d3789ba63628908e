-- spec/subprocess_more_spec.lua: sessions and process groups
-- (start_new_session, process:killpg), descriptors kept open in the child
-- (pass_fds), and pipelines whose bytes never pass through Lua (a pipe
-- end handed to the next process as its stdin or stdout).
local aio = require "luaio"
local H = require "helper"

local fails = H.errof

-- The process group and session ids of pid (fields 5 and 6 of
-- /proc/<pid>/stat, after the parenthesised command name).
local function ids(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  local state, pgrp, sid = stat:match("%) (%a) %d+ (%d+) (%d+)")
  return tonumber(pgrp), tonumber(sid), state
end

-- Whether pid is gone or a zombie, waiting up to 5 s for it.
local function dies(pid)
  local deadline = aio.time() + 5
  repeat
    local _, _, state = ids(pid)
    if state == nil or state == "Z" then return true end
    aio.sleep(0.01)
  until aio.time() > deadline
  return false
end

describe("start_new_session and process groups", function()
  it("start_new_session = true: the child leads a session and a group of its own", function()
    H.run(function()
      local p = aio.create_subprocess_exec("sleep", { "5" }, { start_new_session = true })
      local pgrp, sid = ids(p.pid)
      assert.equal(p.pid, pgrp)
      assert.equal(p.pid, sid)
      p:kill()
      p:wait()
      -- without it, the child is in our group
      local q = aio.create_subprocess_exec("sleep", { "5" })
      local my_pgrp = ids("self")
      assert.equal(my_pgrp, (ids(q.pid)))
      q:kill()
      q:wait()
    end)
  end)

  it("killpg signals the whole group: the child and its children", function()
    H.run(function()
      local p = aio.create_subprocess_shell("sleep 30 & echo $!; wait",
        { start_new_session = true, stdout = aio.PIPE })
      local grandchild = tonumber(p.stdout:readline())
      assert.equal(p.pid, (ids(grandchild)))
      p:killpg("SIGTERM")
      assert.equal(-15, p:wait())
      assert.is_true(dies(grandchild))
    end)
  end)

  it("killpg reaches what is left of the group after its leader exited", function()
    H.run(function()
      local p = aio.create_subprocess_shell("sleep 30 >/dev/null 2>&1 & echo $!",
        { start_new_session = true, stdout = aio.PIPE })
      local grandchild = tonumber(p.stdout:readline())
      assert.equal(0, p:wait())
      local _, _, state = ids(grandchild)
      assert.is_truthy(state and state ~= "Z", "the grandchild is still running")
      p:killpg("SIGKILL")
      assert.is_true(dies(grandchild))
    end)
  end)

  it("killpg refuses a process that does not lead its own group, and bad signals", function()
    H.run(function()
      local p = aio.create_subprocess_exec("sleep", { "5" })
      assert.equal("killpg: the process does not lead a process group of its own "
        .. "(start it with start_new_session = true)", fails(p.killpg, p, "SIGTERM"))
      p:kill()
      p:wait()
      local q = aio.create_subprocess_exec("true", {}, { start_new_session = true })
      q:wait()
      assert.matches("bad argument #1 to 'killpg'", fails(q.killpg, q, "SIGNOPE"), 1, true)
      assert.equal("create_subprocess_exec: option 'start_new_session' must be a boolean",
        fails(aio.create_subprocess_exec, "true", {}, { start_new_session = 1 }))
    end)
  end)
end)

describe("pass_fds", function()
  it("keeps the listed descriptors open in the child, at the same numbers", function()
    local dir = H.tmpdir()
    H.run(function()
      local f = aio.fs.open(dir .. "/out", "w")
      local fd = f:fileno()
      assert.is_true(math.type(fd) == "integer" and fd > 2)
      -- luaio's descriptors are close-on-exec: not passed, the child does
      -- not have it (asked of /proc with no redirection: bash keeps copies
      -- of the descriptors a redirection replaces at 10 and above, which
      -- could be fd's number)
      local p = aio.create_subprocess_exec("bash", { "-c", "[ -e /proc/$$/fd/" .. fd .. " ]" })
      assert.equal(1, p:wait())
      p = aio.create_subprocess_exec("bash", { "-c", "echo passed >&" .. fd }, { pass_fds = { fd } })
      assert.equal(0, p:wait())
      f:close()
      assert.equal("passed\n", aio.fs.read_file(dir .. "/out"))
    end)
    H.rmrf(dir)
  end)

  it("refuses what is not an open descriptor above the standard three", function()
    H.run(function()
      local exec = aio.create_subprocess_exec
      assert.equal("create_subprocess_exec: option 'pass_fds' must be a list of descriptors (integers)",
        fails(exec, "true", {}, { pass_fds = 3 }))
      assert.equal("create_subprocess_exec: option 'pass_fds' must be a list of descriptors (integers)",
        fails(exec, "true", {}, { pass_fds = { "3" } }))
      assert.equal("create_subprocess_exec: pass_fds: descriptor 1 is a standard one "
        .. "(use the stdin, stdout and stderr options)", fails(exec, "true", {}, { pass_fds = { 1 } }))
      assert.equal("create_subprocess_exec: pass_fds: descriptor 999 is not open",
        fails(exec, "true", {}, { pass_fds = { 999 } }))
    end)
  end)
end)

describe("a descriptor as stdin, stdout or stderr", function()
  it("gives the child a copy of it; ours stays open", function()
    local dir = H.tmpdir()
    H.run(function()
      aio.fs.write_file(dir .. "/in", "from a file\n")
      local fin = aio.fs.open(dir .. "/in")
      local fout = aio.fs.open(dir .. "/out", "a")   -- (aio.fs writes at its own position otherwise)
      local p = aio.create_subprocess_exec("cat", {}, { stdin = fin:fileno(), stdout = fout:fileno() })
      assert.equal(0, p:wait())
      p = aio.create_subprocess_shell("echo again >&2", { stderr = fout:fileno() })
      assert.equal(0, p:wait())
      fout:write("ours\n")                     -- still open here
      fin:close()
      fout:close()
      assert.equal("from a file\nagain\nours\n", aio.fs.read_file(dir .. "/out"))
      assert.equal("create_subprocess_exec: option 'stdout': descriptor 999 is not open",
        fails(aio.create_subprocess_exec, "true", {}, { stdout = 999 }))
      assert.equal("create_subprocess_exec: option 'stdin' must be aio.PIPE, aio.DEVNULL, "
        .. "a StreamReader, a descriptor or nil", fails(aio.create_subprocess_exec, "true", {}, { stdin = -1 }))
    end)
    H.rmrf(dir)
  end)
end)

describe("pipelines: one process's output straight into another's input", function()
  it("stdin = p1.stdout: the reader is handed to the second process", function()
    H.run(function()
      local p1 = aio.create_subprocess_exec("printf", { "b\\na\\nc\\n" }, { stdout = aio.PIPE })
      local out = p1.stdout
      local p2 = aio.create_subprocess_exec("sort", {}, { stdin = p1.stdout, stdout = aio.PIPE })
      assert.is_nil(p1.stdout)                  -- no longer ours
      assert.has_error(function() out:read() end, "the stream is closed")
      assert.equal("a\nb\nc\n", (p2:communicate()))
      assert.equal(0, p1:wait())
    end)
  end)

  it("stdout = p2.stdin: the writer is handed to the first process", function()
    H.run(function()
      local p2 = aio.create_subprocess_exec("wc", { "-c" }, { stdin = aio.PIPE, stdout = aio.PIPE })
      local p1 = aio.create_subprocess_exec("head", { "-c", "12345", "/dev/zero" }, { stdout = p2.stdin })
      assert.is_nil(p2.stdin)
      -- wc sees EOF when head exits: nobody else holds the pipe's write end
      assert.equal("12345", p2:communicate():match("%d+"))
      assert.equal(0, p1:wait())
    end)
  end)

  it("a three-stage pipeline moves 20 MB without Lua seeing it, and closes every descriptor", function()
    H.closes_fds(function()
      local p1 = aio.create_subprocess_exec("head", { "-c", "20000000", "/dev/zero" }, { stdout = aio.PIPE })
      local p2 = aio.create_subprocess_exec("tr", { "\\0", "x" }, { stdin = p1.stdout, stdout = aio.PIPE })
      local p3 = aio.create_subprocess_exec("wc", { "-c" }, { stdin = p2.stdout, stdout = aio.PIPE })
      assert.equal("20000000", p3:communicate():match("%d+"))
      assert.equal(0, p1:wait())
      assert.equal(0, p2:wait())
    end, nil, function()
      -- (the first child with a pipe leaves a descriptor open for good:
      -- started before the count)
      local p = aio.create_subprocess_exec("true", {}, { stdout = aio.PIPE })
      p:communicate()
    end)
  end)

  it("refuses a reader that has read already, the wrong end, a closed stream", function()
    H.run(function()
      local exec = aio.create_subprocess_exec
      -- one write of two lines: one read takes both, the second stays buffered
      local p1 = aio.create_subprocess_shell("printf 'one\\ntwo\\n'; exec sleep 5", { stdout = aio.PIPE })
      assert.equal("one\n", p1.stdout:readline())
      assert.equal("create_subprocess_exec: option 'stdin': the StreamReader has read "
        .. "data already (hand it over before reading from it)",
        fails(exec, "cat", {}, { stdin = p1.stdout }))
      p1:kill()
      p1:wait()
      assert.equal("two\n", p1.stdout:read())   -- still ours
      assert.equal("create_subprocess_exec: option 'stdout': aio.STDOUT is only for stderr",
        fails(exec, "true", {}, { stdout = aio.STDOUT }))
      local p2 = exec("cat", {}, { stdin = aio.PIPE, stdout = aio.PIPE })
      assert.equal("create_subprocess_exec: option 'stdin' must be aio.PIPE, aio.DEVNULL, "
        .. "a StreamReader, a descriptor or nil", fails(exec, "true", {}, { stdin = p2.stdin }))
      assert.equal("create_subprocess_exec: option 'stdout' must be aio.PIPE, aio.DEVNULL, "
        .. "a StreamWriter, a descriptor or nil", fails(exec, "true", {}, { stdout = p2.stdout }))
      -- a connection's reader or writer: the socket is shared by both
      local srv = aio.start_server(function(_, cw) cw:close() end, "127.0.0.1", 0)
      local r, cw = aio.open_connection("127.0.0.1", select(2, srv:getsockname()))
      assert.equal("create_subprocess_exec: option 'stdin': the StreamReader is not a "
        .. "process's pipe (only those can be handed over)", fails(exec, "true", {}, { stdin = r }))
      assert.equal("create_subprocess_exec: option 'stdout': the StreamWriter is not a "
        .. "process's pipe (only those can be handed over)", fails(exec, "true", {}, { stdout = cw }))
      cw:close()
      srv:close()
      srv:wait_closed()
      local w = p2.stdin
      w:close()
      assert.equal("create_subprocess_exec: option 'stdout': the StreamWriter is closed",
        fails(exec, "true", {}, { stdout = w }))
      p2:communicate()
    end)
  end)
end)
