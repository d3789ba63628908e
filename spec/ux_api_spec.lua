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

-- The message of err without its location, checking that the location is
-- this file (the user's call, not luaio's insides).
local function here(err)
  assert.is_string(err)
  local where, msg = err:match("^(.-:%d+: )(.*)$")
  assert(where and where:find("ux_api_spec.lua", 1, true), "not located here: " .. err)
  return msg
end

describe("unknown option keys", function()
  local function unknown(expected, f)
    assert.equal(expected, here(H.errof(f)))
  end

  it("raise '<function>: unknown option' with a did-you-mean, for every options table", function()
    H.run(function()
      local path = H.tmpdir() .. "/s"
      unknown("Runner: unknown option 'debg' (did you mean 'debug'?)",
        function() aio.Runner { debg = true } end)
      unknown("gather: unknown option 'return_exception' (did you mean 'return_exceptions'?)",
        function() aio.gather({}, { return_exception = true }) end)
      local done = aio.Future()
      done:set_result(1)
      unknown("wait: unknown option 'timout' (did you mean 'timeout'?)",
        function() aio.wait({ done }, { timout = 1 }) end)
      unknown("as_completed: unknown option 'retur_when'",
        function() aio.as_completed({ done }, { retur_when = 1 }) end)
      unknown("open_connection: unknown option 'timeout'",
        function() aio.open_connection("127.0.0.1", 1, { timeout = 1 }) end)
      unknown("start_server: unknown option 'reuse_address'",
        function() aio.start_server(print, "127.0.0.1", 0, { reuse_address = true }) end)
      unknown("open_unix_connection: unknown option 'limt' (did you mean 'limit'?)",
        function() aio.open_unix_connection(path, { limt = 10 }) end)
      unknown("start_unix_server: unknown option 'backlg' (did you mean 'backlog'?)",
        function() aio.start_unix_server(print, path, { backlg = 5 }) end)
      unknown("getaddrinfo: unknown option 'famly' (did you mean 'family'?)",
        function() aio.getaddrinfo("localhost", nil, { famly = "inet" }) end)
      unknown("open_udp: unknown option 'hots' (did you mean 'host'?)",
        function() aio.open_udp { hots = "127.0.0.1" } end)
      unknown("open_udp: unknown option '1'",
        function() aio.open_udp { "127.0.0.1" } end)
      unknown("create_subprocess_exec: unknown option 'stdot' (did you mean 'stdout'?)",
        function() aio.create_subprocess_exec("true", {}, { stdot = aio.PIPE }) end)
      unknown("create_subprocess_shell: unknown option 'cwdd' (did you mean 'cwd'?)",
        function() aio.create_subprocess_shell("true", { cwdd = "/" }) end)
      unknown("create_default_context: unknown option 'cafil' (did you mean 'cafile'?)",
        function() aio.ssl.create_default_context(nil, { cafil = "x" }) end)
      unknown("async: unknown option 'check_leftover' (did you mean 'check_leftovers'?)",
        function() require("luaio.testing").async(print, { check_leftover = false }) end)
      unknown("serve: unknown option 'max_bodyy' (did you mean 'max_body'?)",
        function() aio.http.serve(print, "127.0.0.1", 0, { max_bodyy = 1 }) end)
      unknown("get: unknown option 'timout' (did you mean 'timeout'?)",
        function() aio.http.get("http://127.0.0.1:1/", { timout = 1 }) end)
      unknown("Client: unknown option 'max_total_' (did you mean 'max_total'?)",
        function() aio.http.Client { max_total_ = 1 } end)
      H.rmrf(path:match("^(.*)/"))
    end)
  end)

  it("start_tls checks its options too", function()
    H.run(function()
      local srv = aio.start_server(function(r) r:read() end, "127.0.0.1", 0)
      local _, w = aio.open_connection("127.0.0.1", select(2, srv:getsockname()))
      local ctx = aio.ssl.create_default_context()
      assert.equal("start_tls: unknown option 'server_hostnme' (did you mean 'server_hostname'?)",
        here(H.errof(function() w:start_tls(ctx, { server_hostnme = "x" }) end)))
      w:close()
      srv:close()
      srv:wait_closed()
    end)
  end)
end)

describe("OSErrors", function()
  local function oserror(f, ...)
    local err = H.errof(f, ...)
    assert.is_true(aio.is(err, aio.OSError), tostring(err))
    assert.is_true(math.type(err.errno) == "integer" and err.errno > 0)
    return err
  end

  it("name the host and port they were about (connect, start_server, open_udp)", function()
    H.run(function()
      local srv = aio.start_server(print, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      local err = oserror(aio.start_server, print, "127.0.0.1", port)
      assert.equal(("start_server: address already in use (127.0.0.1:%d)"):format(port), err.message)
      assert.equal("EADDRINUSE", err.code)
      srv:close()
      srv:wait_closed()
      err = oserror(aio.open_connection, "127.0.0.1", port)
      assert.equal(("connect: connection refused (127.0.0.1:%d)"):format(port), err.message)
      assert.equal("ECONNREFUSED", err.code)

      local u = aio.open_udp { host = "127.0.0.1", port = 0 }
      local _, uport = u:getsockname()
      err = oserror(aio.open_udp, { host = "127.0.0.1", port = uport })
      assert.equal(("open_udp: address already in use (127.0.0.1:%d)"):format(uport), err.message)
      u:close()
    end)
  end)

  it("write an IPv6 address in brackets", function()
    H.run(function()
      local ok, srv = pcall(aio.start_server, print, "::1", 0)
      if not ok then   -- no IPv6 loopback here: that error names it too
        assert.equal("start_server: " .. srv.message:match("^start_server: (.-) %(")
          .. " ([::1]:0)", srv.message)
        return
      end
      local _, port = srv:getsockname()
      local err = oserror(aio.start_server, print, "::1", port)
      assert.equal(("start_server: address already in use ([::1]:%d)"):format(port), err.message)
      srv:close()
      srv:wait_closed()
    end)
  end)

  it("name the path of a unix socket", function()
    local dir = H.tmpdir()
    H.run(function()
      local path = dir .. "/s.sock"
      local err = oserror(aio.open_unix_connection, path)
      assert.equal(("connect: no such file or directory (%s)"):format(path), err.message)
      assert.equal("ENOENT", err.code)
      local srv = aio.start_unix_server(print, path)
      err = oserror(aio.start_unix_server, print, path)
      assert.equal(("start_unix_server: address already in use (%s)"):format(path), err.message)
      srv:close()
      srv:wait_closed()
    end)
    H.rmrf(dir)
  end)
end)
