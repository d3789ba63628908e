-- spec/ux_api_spec.lua: what a new user trips over in the API (issue 22:
-- lazily loaded parts that bring their objects' methods, the "call it
-- with ':'" message on every method, unknown option keys, OSErrors that
-- name the address).
local aio = require "luaio"
local H = require "helper"

-- Runs a Lua script in a fresh interpreter (prog: the CLI or stock
-- lua5.4, with this tree's LUA_PATH/LUA_CPATH); returns its stdout and
-- whether it succeeded.
local function fresh(prog, src)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  local p = assert(io.popen(H.quote(prog) .. " " .. H.quote(path) .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  os.remove(path)
  return out, ok
end

local PROGS = { H.LUAIO, "lua5.4" }

describe("lazily loaded parts", function()
  it("a subprocess's pipes have lines() with nothing else loaded (CLI and lua5.4)", function()
    local src = [[
      local aio = require "luaio"
      aio.run(function()
        assert(package.loaded["luaio.streams"] == nil, "streams already loaded")
        local p = aio.create_subprocess_exec("printf", { "a\nb\n" }, { stdout = aio.PIPE })
        local got = {}
        for line in p.stdout:lines() do got[#got + 1] = line end
        p:wait()
        io.write(table.concat(got, ","))
      end)
    ]]
    for _, prog in ipairs(PROGS) do
      local out, ok = fresh(prog, src)
      assert.equal("a,b", out, prog)
      assert.is_true(ok, prog)
    end
  end)

  -- Every part, loaded alone in a fresh interpreter, reaches every method
  -- the whole library defines for the core's classes (Lua-written ones
  -- included): whatever part made an object, its methods are there.
  it("each part alone reaches every method of the core's classes", function()
    local parts_src = [[
      local aio = require "luaio"
      local eager = {}
      for k in next, aio do eager[k] = true end
      for k in pairs(aio) do if not eager[k] then io.write(k, "\n") end end
    ]]
    local methods_src = [[
      local aio = require "luaio"
      local core = require "luaio.core"
      local part = %q
      if part == "" then for _ in pairs(aio) do end else local _ = aio[part] end
      -- the methods of the full library, "Class.method" lines in a file
      local missing = {}
      for line in io.lines(%q) do
        local cls, m = line:match("^(.-)%%.(.*)$")
        if core[cls][m] == nil then missing[#missing + 1] = line end
      end
      io.write(table.concat(missing, " "))
    ]]
    for _, prog in ipairs(PROGS) do
      local out = fresh(prog, parts_src)
      local parts = {}
      for k in out:gmatch("[^\n]+") do parts[#parts + 1] = k end
      assert.is_true(#parts > 20, prog .. ": " .. out)
      -- the full set, everything loaded
      local full = os.tmpname()
      local all = fresh(prog, ([[
        local aio = require "luaio"
        local core = require "luaio.core"
        for _ in pairs(aio) do end
        for k, v in pairs(core) do
          if type(k) == "string" and (k:match("Methods$") or k == "Loop") and type(v) == "table" then
            for m, f in next, v do
              if type(m) == "string" and type(f) == "function" then io.write(k, ".", m, "\n") end
            end
          end
        end
      ]]))
      local f = assert(io.open(full, "wb"))
      f:write(all)
      f:close()
      assert.matches("ReaderMethods.lines\n", all, 1, true)
      for _, part in ipairs(parts) do
        local missing, ok = fresh(prog, methods_src:format(part, full))
        assert.is_true(ok, missing)
        assert.equal("", missing, prog .. ": aio." .. part .. " loaded alone")
      end
      os.remove(full)
    end
  end)
end)
