-- The REPL's prompt (GNU readline, an async C function of the CLI) when
-- the task waiting at it is cancelled: the cancel hook resolves the
-- pending, so the CLI's exit does not wait shutdown_timeout for it and
-- reports nothing left unresolved.
local H = require "helper"

local PTY = [[
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.environ["LUAIO_SHUTDOWN_TIMEOUT"] = "3"
    os.execv(sys.argv[1], ["luaio", "-i"])
out = b""
def read_for(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: d = os.read(fd, 4096)
            except OSError: return False
            if not d: return False
            out += d
    return True
def expect(text, t=15):
    end = time.time() + t
    while text not in out and time.time() < end and read_for(0.05): pass
expect(b"> ")
# cancels the REPL's own task (the one at the prompt) 0.1 s from now
os.write(fd, b'local aio = require "luaio" local me = aio.current_task() '
             b'for _, t in ipairs(aio.all_tasks()) do if t ~= me then '
             b'aio.get_running_loop():call_later(0.1, function() t:cancel() end) '
             b'end end\n')
t0 = time.time()
while read_for(0.05) and time.time() - t0 < 20: pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
print("\nexit %d after %.2f s" % (os.WEXITSTATUS(status), time.time() - t0))
]]

describe("the REPL's prompt when its task is cancelled", function()
  it("resolves the readline pending: the exit neither waits nor reports it", function()
    if not os.execute("command -v python3 >/dev/null 2>&1") then
      pending("python3 is needed to drive a pseudo-terminal")
      return
    end
    local script = H.script(PTY)
    local p = io.popen("timeout 60 python3 " .. H.quote(script) .. " " .. H.quote(H.LUAIO) .. " 2>&1")
    local out = p:read("a")
    p:close()
    os.remove(script)
    out = out:gsub("\27%[[%?%d;]*%a", "")
    assert.matches("CancelledError", out, 1, true)
    local code, dt = out:match("exit (%d+) after ([%d.]+) s")
    assert.equal("1", code, out)
    assert.is_true(tonumber(dt) < 2, out)
    assert.is_nil(out:find("async C operation", 1, true), out)
  end)
end)
