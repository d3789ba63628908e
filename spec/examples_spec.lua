-- spec/examples_spec.lua: every examples/*.lua runs through the CLI, exits
-- 0 and prints what it is meant to.
--
-- New examples are picked up automatically. Each one must exit 0, print
-- something on stdout and no traceback on stderr. What it must print is
-- checked from:
--   * the `expected` table below (known examples), and
--   * lines in the example itself of the form
--       -- expect: <Lua pattern matched against stdout>
--     (any number of them; the example's author states its output).
-- An example that cannot run unattended (a server waiting for clients, ...)
-- says so with a line `-- spec: skip` and is only compiled.
local H = require "helper"

local ROOT = H.ROOT

-- Plain substrings (not patterns) that each known example prints, in order.
local expected = {
  ["hello.lua"] = {
    "started two tasks; the main chunk is a task too\n",
    "fast   step 1 at",
    "fast   step 4 at",
    "slow   step 2 at",
    "fast done\tslow done\n",
    "sleeper woke:\tcancelled\n",
    "sleeper cancelled:\ttrue\n",
  },
  ["taskgroup.lua"] = {
    "group: page1:30ms page2:10ms page3:20ms\n",
    "failed: true, cannot fetch broken\n",
    "timed out: true\n",
    "gather: a:10ms | cannot fetch broken\n",
    "first: r2:10ms",
  },
}

local function list_examples()
  local names = {}
  local p = assert(io.popen("ls " .. H.quote(ROOT .. "/examples") .. " 2>/dev/null"))
  for name in p:lines() do
    if name:match("%.lua$") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Checks that each plain substring occurs in s, in the given order.
local function assert_in_order(s, parts, what)
  local pos = 1
  for _, part in ipairs(parts) do
    local a, b = s:find(part, pos, true)
    assert(a, ("%s: expected %q (in order) in its output:\n%s"):format(what, part, s))
    pos = b + 1
  end
end

describe("examples", function()
  local names = list_examples()

  it("directory holds at least hello.lua", function()
    local found = false
    for _, n in ipairs(names) do if n == "hello.lua" then found = true end end
    assert.is_true(found, "examples/hello.lua is missing (ROOT = " .. ROOT .. ")")
  end)

  it("every known example with expectations still exists", function()
    local have = {}
    for _, n in ipairs(names) do have[n] = true end
    for n in pairs(expected) do
      assert.is_true(have[n] == true, "examples/" .. n .. " is gone; update examples_spec")
    end
  end)

  for _, name in ipairs(names) do
    local path = ROOT .. "/examples/" .. name
    it(name .. " runs through the CLI, exits 0 and prints what it should", function()
      local src = readfile(path)
      if src:match("\n%-%- spec: skip") or src:match("^%-%- spec: skip") then
        assert(loadfile(path))
        return
      end
      local r = H.cli({ "examples/" .. name }, { cwd = ROOT })
      assert.equal(0, r.status, name .. " failed:\n" .. r.stderr)
      assert.is_true(#r.stdout > 0, name .. " printed nothing")
      assert.not_matches("stack traceback:", r.stderr, 1, true)
      assert.not_matches("never retrieved", r.stderr, 1, true)
      if expected[name] then assert_in_order(r.stdout, expected[name], name) end
      for pat in src:gmatch("%-%- expect: ([^\n]*)") do
        assert(r.stdout:match(pat), ("%s: no match for '-- expect: %s' in:\n%s"):format(name, pat, r.stdout))
      end
    end)
  end
end)
