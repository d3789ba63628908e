# Drives the luaio REPL through a pseudo-terminal for spec/repl_spec.lua:
#   python3 repl_pty_more.py LUAIO continuation   Ctrl-C at ">> " drops the lines
#   python3 repl_pty_more.py LUAIO background     a task's output above the prompt
#   python3 repl_pty_more.py LUAIO history DIR    history kept in a file
#   python3 repl_pty_more.py LUAIO badhistory DIR a history file that cannot be made
# Prints what the terminal showed, then "exit N" for each session.  Each
# step waits for what the REPL shows (as repl_pty.py does), never for a
# fixed time only.
import os, pty, time, select, sys

luaio, scenario = sys.argv[1], sys.argv[2]


class Session:
    def __init__(self, env):
        self.out, self.pos = b"", 0
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(luaio, ["luaio"], env)

    def read_for(self, t):
        end = time.time() + t
        while time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    return False
        return True

    def expect(self, text, t=15):
        end = time.time() + t
        while True:
            i = self.out.find(text, self.pos)
            if i >= 0:
                self.pos = i + len(text)
                return
            if time.time() > end or not self.read_for(0.05):
                return    # the checks in repl_spec.lua say what is missing

    def send(self, data):
        os.write(self.fd, data)

    def finish(self):
        self.send(b"\x04")
        self.read_for(0.2)
        _, status = os.waitpid(self.pid, 0)
        self.read_for(0.1)
        print(self.out.decode(errors="replace"))
        print("exit", os.WEXITSTATUS(status))


def env(**kw):
    e = dict(os.environ)
    e.update(kw)
    return {k: v for k, v in e.items() if v is not None}


if scenario == "continuation":
    s = Session(env(LUAIO_HISTORY=""))
    s.expect(b"> ")
    s.send(b"for i = 1, 2 do\n"); s.expect(b">> ")
    s.send(b"x = i\n"); s.expect(b">> ")
    s.send(b"\x03"); s.expect(b"> ")
    s.send(b'print("fr" .. "esh")\n'); s.expect(b"fresh"); s.expect(b"> ")
    s.finish()
elif scenario == "background":
    s = Session(env(LUAIO_HISTORY=""))
    s.expect(b"> ")
    # aio is there without a require
    s.send(b'aio.create_task(function() aio.sleep(0.5) print("bg" .. "out") end)\n')
    s.expect(b"> ")
    s.send(b"12")                   # typed, not entered, when the task prints
    s.expect(b"bgout"); s.read_for(0.3)
    s.send(b"+1\n"); s.expect(b"13"); s.expect(b"> ")
    s.finish()
elif scenario == "history":
    d = sys.argv[3]
    # 1: LUAIO_HISTORY names the file
    s = Session(env(LUAIO_HISTORY=d + "/hist"))
    s.expect(b"> ")
    s.send(b"40+2\n"); s.expect(b"42"); s.expect(b"> ")
    s.finish()
    # 2: a new session recalls it with the up arrow
    s = Session(env(LUAIO_HISTORY=d + "/hist"))
    s.expect(b"> ")
    s.send(b"\x1b[A\n"); s.expect(b"42"); s.expect(b"> ")
    s.finish()
    # 3: by default ~/.luaio_history
    s = Session(env(LUAIO_HISTORY=None, XDG_STATE_HOME=None, HOME=d + "/home"))
    s.expect(b"> ")
    s.send(b"'in the home'\n"); s.expect(b"in the home"); s.expect(b"> ")
    s.finish()
    # 4: LUAIO_HISTORY= (empty) keeps none
    s = Session(env(LUAIO_HISTORY="", HOME=d + "/none"))
    s.expect(b"> ")
    s.send(b"1\n"); s.expect(b"1"); s.expect(b"> ")
    s.finish()
elif scenario == "badhistory":
    s = Session(env(LUAIO_HISTORY=sys.argv[3] + "/no/such/dir/hist"))
    s.expect(b"> ")
    s.send(b"1+1\n"); s.expect(b"2"); s.expect(b"> ")
    s.finish()
