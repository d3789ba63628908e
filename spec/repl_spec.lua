-- The interactive prompt: `luaio -i`, and `luaio` on a terminal.
local H = require "helper"

local function repl(input)
  return H.cli({ "-i" }, { stdin = input })
end

describe("the REPL", function()
  it("prints the values of expressions and keeps globals between lines", function()
    local r = repl("1 + 1\nx = 10\nx * 2\n'a', nil, 3\n")
    assert.equal(0, r.status, r.stderr)
    assert.matches("> 2\n", r.stdout, 1, true)
    assert.matches("> 20\n", r.stdout, 1, true)
    assert.matches("a\tnil\t3\n", r.stdout, 1, true)
  end)

  it("reads a statement over several lines", function()
    local r = repl("function f(a)\n  return a * 3\nend\nf(5)\n")
    assert.equal(0, r.status, r.stderr)
    assert.matches(">> ", r.stdout, 1, true)
    assert.matches("15\n", r.stdout, 1, true)
  end)

  it("runs each line as a task: aio.sleep at the prompt works", function()
    local r = repl('aio = require "luaio"\nt0 = aio.time()\naio.sleep(0.05)\naio.time() - t0 >= 0.05\n')
    assert.equal(0, r.status, r.stderr)
    assert.matches("true\n", r.stdout, 1, true)
  end)

  it("keeps tasks started at the prompt running across lines", function()
    local r = repl('aio = require "luaio"\n'
      .. 'aio.create_task(function() aio.sleep(0.02) print("background done") end)\n'
      .. 'aio.sleep(0.1)\nprint("after")\n')
    assert.equal(0, r.status, r.stderr)
    local bg = r.stdout:find("background done", 1, true)
    local after = r.stdout:find("after", 1, true)
    assert.is_truthy(bg and after and bg < after)
  end)

  it("reports an error and goes on", function()
    local r = repl('error("oops")\nprint("still here")\nlocal x = = 1\nprint("and here")\n')
    assert.equal(0, r.status)
    assert.matches("oops", r.stderr, 1, true)
    assert.matches("unexpected symbol", r.stderr, 1, true)
    assert.matches("still here", r.stdout, 1, true)
    assert.matches("and here", r.stdout, 1, true)
  end)

  it("runs a script first with -i, then prompts", function()
    local path = H.script("greeting = 'hi from the script'\n")
    local r = H.cli({ "-i", path }, { stdin = "greeting\n" })
    os.remove(path)
    assert.equal(0, r.status, r.stderr)
    assert.matches("hi from the script", r.stdout, 1, true)
  end)

  it("on a terminal: background output while waiting, Ctrl-C cancels the line, history (readline, loaded on first use), Ctrl-D leaves", function()
    if not os.execute("command -v python3 >/dev/null 2>&1") then
      pending("python3 is needed to drive a pseudo-terminal")
      return
    end
    local script = H.ROOT .. "/spec/repl_pty.py"
    local p = io.popen("timeout 60 python3 " .. H.quote(script) .. " " .. H.quote(H.LUAIO) .. " 2>&1")
    local out = p:read("a")
    p:close()
    out = out:gsub("\27%[[%?%d;]*%a", "")   -- readline's terminal escapes
    assert.matches("tick from background", out, 1, true)
    assert.matches("interrupted", out, 1, true)
    assert.matches("> 1%+2[\r\n]+3[\r\n]+> 1%+2[\r\n]+3", out)   -- recalled by the up arrow
    assert.matches("exit 0", out, 1, true)
  end)
end)

-- Issue 22: aio at the prompt, Ctrl-C at ">> ", output above the prompt,
-- history in a file (spec/repl_pty_more.py drives a pseudo-terminal).
describe("the REPL (issue 22)", function()
  local function pty(...)
    local args = { H.ROOT .. "/spec/repl_pty_more.py", H.LUAIO, ... }
    for i, a in ipairs(args) do args[i] = H.quote(a) end
    local p = io.popen("timeout 90 python3 " .. table.concat(args, " ") .. " 2>&1")
    local out = p:read("a")
    p:close()
    return out, out:gsub("\27%[[%?%d;]*%a", "")   -- raw, and without escapes
  end

  it("has aio at the prompt without a require", function()
    local r = H.cli({ "-i" }, { stdin = "print(type(aio), aio == require 'luaio')\n"
      .. "t0 = aio.time(); aio.sleep(0.02); print(aio.time() - t0 >= 0.02)\n" })
    assert.equal(0, r.status, r.stderr)
    assert.matches("table\ttrue\n", r.stdout, 1, true)
    assert.matches("true\n", r.stdout, 1, true)
    -- a global aio of the user's own is left alone
    r = H.cli({ "-i", "-e", "aio = 'mine'" }, { stdin = "print(aio)\n" })
    assert.matches("mine\n", r.stdout, 1, true)
  end)

  it("Ctrl-C at the '>>' prompt drops the unfinished statement", function()
    local _, out = pty("continuation")
    assert.matches(">> x = i[\r\n]+>> [\r\n]+> print", out)   -- back to '> '
    assert.matches("[\r\n]fresh\r?\n", out)
    assert.not_matches("expected", out, 1, true)              -- no error from a joined chunk
    assert.matches("exit 0", out, 1, true)
  end)

  it("a task's output goes above the prompt, which is drawn again with the line being typed", function()
    local raw, out = pty("background")
    -- the line is cleared (\r, erase), the output written, the prompt and '12' again
    assert.matches("> 12\r\27[K", raw, 1, true)
    assert.matches("bgout\r?\n> 12%+1", out)
    assert.matches("[\r\n]13\r?\n", out)
    assert.matches("exit 0", out, 1, true)
  end)

  it("keeps the history in a file between sessions (LUAIO_HISTORY, ~/.luaio_history, none)", function()
    local dir = H.tmpdir()
    assert(os.execute("mkdir -p " .. H.quote(dir .. "/home") .. " " .. H.quote(dir .. "/none")))
    local _, out = pty("history", dir)
    local function read(path)
      local f = io.open(path)
      if not f then return nil end
      local s = f:read("a")
      f:close()
      return s
    end
    local hist, home, none = read(dir .. "/hist"), read(dir .. "/home/.luaio_history"),
      read(dir .. "/none/.luaio_history")
    H.rmrf(dir)
    -- the second session recalled "40+2" with the up arrow
    local first = out:find("42", 1, true)
    assert.is_truthy(first and out:find("> 40%+2[\r\n]+42", first + 2), out)
    assert.equal("40+2\n40+2\n", hist)
    assert.equal("'in the home'\n", home)
    assert.is_nil(none)
    local _, n = out:gsub("exit 0", "")
    assert.equal(4, n)
  end)

  it("says once that a history file cannot be made, and goes on", function()
    local dir = H.tmpdir()
    local _, out = pty("badhistory", dir)
    H.rmrf(dir)
    assert.matches("luaio: history not kept: " .. dir .. "/no/such/dir/hist: No such file or directory",
      out, 1, true)
    assert.matches("> 1%+1[\r\n]+2", out)
    assert.matches("exit 0", out, 1, true)
  end)
end)

describe("the REPL on a pipe (issue 22)", function()
  it("Ctrl-C (SIGINT) while a statement is unfinished drops its lines", function()
    H.guarded(function()
      local aio = require "luaio"
      local p = aio.create_subprocess_exec(H.LUAIO, { "-i" },
        { stdin = aio.PIPE, stdout = aio.PIPE, stderr = aio.PIPE })
      p.stdin:write("for i = 1, 2 do\n")
      p.stdout:readuntil(">> ")
      p:send_signal("SIGINT")
      p.stdout:readuntil("\n> ")                -- the first prompt again
      p.stdin:write('print("fr" .. "esh")\n')
      local out, err = p:communicate()
      assert.equal(0, p.returncode, err)
      assert.matches("^fresh\n", out)
      assert.equal("", err)
    end, nil, 5)
  end)
end)
