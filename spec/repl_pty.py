# Drives the luaio REPL through a pseudo-terminal (spec/repl_spec.lua):
# background output while the prompt waits, Ctrl-C cancelling a running
# line, history (up arrow), Ctrl-D leaving.  Usage: python3 repl_pty.py path/to/luaio
import os, pty, time, select, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], ["luaio"])
out = b""
def drain(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: out += os.read(fd, 4096)
            except OSError: return
drain(0.3)
os.write(fd, b'aio = require "luaio"\n'); drain(0.2)
os.write(fd, b'aio.create_task(function() aio.sleep(0.3) print("tick from background") end)\n'); drain(0.8)
os.write(fd, b'aio.sleep(5)\n'); drain(0.3)
os.write(fd, b'\x03'); drain(0.3)
os.write(fd, b'1+2\n'); drain(0.3)
os.write(fd, b'\x1b[A\n'); drain(0.3)   # up arrow: readline's history
os.write(fd, b'\x04'); drain(0.5)
_, status = os.waitpid(pid, 0)
print(out.decode(errors="replace"))
print("exit", os.WEXITSTATUS(status))
