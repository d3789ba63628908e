# Drives the luaio REPL through a pseudo-terminal (spec/repl_spec.lua):
# background output while the prompt waits, Ctrl-C cancelling a running
# line, history (up arrow), Ctrl-D leaving.  Usage: python3 repl_pty.py path/to/luaio
# Each step waits for what the REPL shows (a prompt, a result) rather than
# for a fixed time, so a slow machine (a sanitizer build on a loaded CI
# host) only makes it slower.
import os, pty, time, select, sys
os.environ["LUAIO_HISTORY"] = ""   # no history file (repl_pty_more.py tests it)
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], ["luaio"])
out = b""
pos = 0          # what expect() has already matched

def read_for(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: out += os.read(fd, 4096)
            except OSError: return False
    return True

def expect(text, t=15):
    """Waits until text shows after what was matched before."""
    global pos
    end = time.time() + t
    while True:
        i = out.find(text, pos)
        if i >= 0:
            pos = i + len(text)
            return
        if time.time() > end or not read_for(0.05):
            return        # the final checks in repl_spec.lua say what is missing

expect(b"> ")
os.write(fd, b'aio = require "luaio"\n'); expect(b"> ")
os.write(fd, b'aio.create_task(function() aio.sleep(0.3) print("tick from background") end)\n')
expect(b"> "); expect(b"tick from background")
os.write(fd, b'aio.sleep(5)\n'); expect(b"aio.sleep(5)"); read_for(0.5)   # running now
os.write(fd, b'\x03'); expect(b"interrupted"); expect(b"> ")
os.write(fd, b'1+2\n'); expect(b"3"); expect(b"> ")
os.write(fd, b'\x1b[A\n'); expect(b"3"); expect(b"> ")   # up arrow: readline's history
os.write(fd, b'\x04')
read_for(0.2)
_, status = os.waitpid(pid, 0)
read_for(0.1)
print(out.decode(errors="replace"))
print("exit", os.WEXITSTATUS(status))
