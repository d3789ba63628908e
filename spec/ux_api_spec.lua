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

describe("a method called with '.' instead of ':'", function()
  -- The method table behind obj's metatable: __index itself, or the
  -- upvalue named `up` of an __index function.
  local function methods_of(obj, up)
    local idx = rawget(getmetatable(obj), "__index")
    if type(idx) == "table" then return idx end
    for i = 1, math.huge do
      local name, v = debug.getupvalue(idx, i)
      if name == nil then break end
      if name == up and type(v) == "table" then return v end
    end
    error("no method table for " .. tostring(obj))
  end

  -- A self-signed certificate for localhost (openssl CLI).
  local function cert(dir)
    assert(os.execute(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      .. "-nodes -keyout k.pem -out c.pem -days 2 -subj /CN=localhost "
      .. "-addext subjectAltName=DNS:localhost >/dev/null 2>&1"):format(H.quote(dir))))
    return dir .. "/c.pem", dir .. "/k.pem"
  end

  -- Real objects of every public class: name -> { object, message name
  -- (nil: the name), upvalue holding the methods of an __index function,
  -- the parent whose name the methods it inherits give }.
  local function objects(dir, got)
    local o = {}
    local loop = aio.get_running_loop()
    o.Task = { aio.current_task() }
    o.Future = { aio.Future() }
    o.Loop = { loop }
    o.Handle = { loop:call_later(10, print) }
    o.TaskGroup = { aio.TaskGroup() }
    o.Timeout = { aio.timeout(nil) }
    for _, c in ipairs { "Lock", "Event", "Condition", "Semaphore" } do
      o[c] = { aio[c]() }
    end
    o.BoundedSemaphore = { aio.BoundedSemaphore(), nil, nil, "Semaphore" }   -- (its parent)
    o.Barrier = { aio.Barrier(2) }
    o.Queue = { aio.Queue() }
    o.LifoQueue = { aio.LifoQueue(), "Queue" }
    o.PriorityQueue = { aio.PriorityQueue(), "Queue" }
    o.Runner = { aio.Runner() }
    o.ContextVar = { aio.ContextVar("v") }
    o.ExceptionGroup = { aio.ExceptionGroup("eg", { aio.Error("e") }) }
    o.File = { aio.fs.open(dir .. "/f", "w") }
    o.Process = { aio.create_subprocess_exec("true"), nil, "Process" }
    o.UDPSocket = { aio.open_udp() }
    o.Headers = { aio.http.Headers() }
    o.Client = { aio.http.Client() }
    -- TLS: a context, a server, a connection and its SSLObject
    local c, k = cert(dir)
    local sctx = aio.ssl.create_default_context("client_auth")
    sctx:load_cert_chain(c, k)
    o.SSLContext = { sctx, nil, "" }      -- (the upvalue of a C closure)
    local srv = aio.start_server(function(r, w) got.w = w; r:read() end, "127.0.0.1", 0, { ssl = sctx })
    o.Server = { srv }
    local r, w = aio.open_connection("127.0.0.1", select(2, srv:getsockname()), {
      ssl = aio.ssl.create_default_context("server_auth", { cafile = c }),
      server_hostname = "localhost" })
    o.StreamReader, o.StreamWriter = { r }, { w }
    o.SSLObject = { w:get_extra_info("ssl_object") }
    -- HTTP: a server, a request and response it handles, a client response
    local hsrv = aio.http.serve(function(req, res)
      got.req, got.res = req, res
      return 200, nil, "ok"
    end, "127.0.0.1", 0)
    o.HttpServer = { hsrv }
    local resp = o.Client[1]:get(("http://127.0.0.1:%d/"):format(select(2, hsrv:getsockname())))
    o.Response = { resp }
    o.HttpRequest = { got.req, nil, "Request" }
    o.HttpResponse = { got.res }
    return o, function()
      resp:close()
      o.Client[1]:close()
      hsrv:close()
      hsrv:wait_closed()
      w:close()
      w:wait_closed()
      srv:close()
      srv:wait_closed()
      o.UDPSocket[1]:close()
      o.File[1]:close()
      o.Process[1]:wait()
      o.Handle[1]:cancel()
    end
  end

  local INTERNAL = { ["luaio.WaitList"] = true, ["luaio.HttpParser"] = true,
                     ["luaio.Process"] = true }

  it("says which method and suggests ':', for every method of every class", function()
    local dir = H.tmpdir()
    H.run(function()
      local got = {}
      local o, close = objects(dir, got)
      local covered, wrong, n = {}, {}, 0
      for name, spec in pairs(o) do
        local obj, up, parent = spec[1], spec[3], spec[4]
        assert(obj ~= nil, name)
        covered[getmetatable(obj)] = true
        local other = name == "Lock" and o.Event[1] or o.Lock[1]
        local bad = { n = 3, nil, 42, other }
        local gotname = { "nil", "number", name == "Lock" and "Event" or "Lock" }
        for m, f in pairs(methods_of(obj, up)) do
          if type(m) == "string" and m:sub(1, 1) ~= "_" and type(f) == "function" then
            for i = 1, bad.n do
              n = n + 1
              local ok, err = pcall(function() f(bad[i]) end)   -- (no tail call)
              local cls = spec[2] or name
              if parent and methods_of(o[parent][1])[m] == f then cls = parent end
              local want = ("calling '%s:%s' on bad self (%s expected, got %s); call it with ':'")
                :format(cls, m, cls, gotname[i])
              local where, msg
              if type(err) == "string" then where, msg = err:match("^(.-:%d+: )(.*)$") end
              if ok or msg ~= want or not where:find("ux_api_spec.lua", 1, true) then
                wrong[#wrong + 1] = ("%s.%s(%s): %s"):format(name, m, gotname[i],
                  ok and "no error" or tostring(err))
              end
            end
          end
        end
      end
      close()
      aio.sleep(0.05)   -- (the closed handles' callbacks)
      -- every class the core registers is one of the above (or internal)
      for k, mt in pairs(debug.getregistry()) do
        if type(k) == "string" and k:match("^luaio%.") and type(mt) == "table"
            and type(rawget(mt, "__index")) == "table" and not INTERNAL[k] then
          local seen = covered[mt]
          for c in pairs(covered) do if rawget(c, "__index") == rawget(mt, "__index") then seen = true end end
          if not seen and k ~= "luaio.Queue" then wrong[#wrong + 1] = "not covered: " .. k end
        end
      end
      table.sort(wrong)
      assert.same({}, wrong)
      assert.is_true(n > 500, "methods checked: " .. n)
    end)
    H.rmrf(dir)
  end)
end)
