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
