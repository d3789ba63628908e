-- spec/nul_bytes_spec.lua: input that the system would silently truncate
-- (issue 18, item 6).  A '\0' inside a path, a program argument, an
-- environment entry, a host name or a unix socket path is refused with
-- "embedded null byte" instead of reaching a system call that would cut
-- the string there; environment names with '=' (or empty) are refused;
-- a unix socket path longer than sun_path holds is refused ("AF_UNIX
-- path too long") instead of being cut at byte 107; a Semaphore's value
-- never wraps around; getaddrinfo under EMFILE names the real cause; TLS
-- certificate and CA file names and key passwords are refused likewise.
local aio = require "luaio"
local H = require "helper"

local errof = H.errof

local function nul_error(err, fname, n)
  assert.is_string(err)
  assert.matches(("bad argument #%d to '%s' %%(embedded null byte%%)"):format(n, fname),
    err, 1, false)
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local tmpdir = H.tmpdir

local rmrf = H.rmrf

-- H.closes_fds with a watchdog: libuv keeps one spare fd per loop from
-- its first listen on, so one is opened before counting.
local function run(fn)
  return H.closes_fds(fn, nil, function()
    local s = aio.start_server(function() end, "127.0.0.1", 0)
    s:close()
    s:wait_closed()
  end)
end

------------------------------------------------------------------ files
describe("a NUL in a file path", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmrf(dir) end)

  it("write_file(\"a.txt\\0.jpg\") raises and creates nothing", function()
    H.run(function()
      local err = errof(aio.fs.write_file, dir .. "/a.txt\0.jpg", "data")
      nul_error(err, "open", 1)
      assert.is_false(exists(dir .. "/a.txt"))
      assert.same({}, aio.fs.scandir(dir))
    end)
  end)

  it("read_file and open refuse it instead of opening the prefix", function()
    H.run(function()
      aio.fs.write_file(dir .. "/a.txt", "secret")
      nul_error(errof(aio.fs.read_file, dir .. "/a.txt\0.jpg"), "open", 1)
      nul_error(errof(aio.fs.open, dir .. "/a.txt\0.jpg", "r"), "open", 1)
      nul_error(errof(aio.fs.open, dir .. "/b.txt\0", "w"), "open", 1)
      assert.is_false(exists(dir .. "/b.txt"))
    end)
  end)

  it("stat, mkdir, rmdir, unlink, scandir and rename refuse it and change nothing", function()
    H.run(function()
      aio.fs.write_file(dir .. "/f", "x")
      aio.fs.mkdir(dir .. "/d")
      nul_error(errof(aio.fs.stat, dir .. "/f\0x"), "stat", 1)
      nul_error(errof(aio.fs.mkdir, dir .. "/new\0x"), "mkdir", 1)
      assert.is_false(exists(dir .. "/new"))
      nul_error(errof(aio.fs.rmdir, dir .. "/d\0x"), "rmdir", 1)
      nul_error(errof(aio.fs.unlink, dir .. "/f\0x"), "unlink", 1)
      nul_error(errof(aio.fs.scandir, dir .. "\0x"), "scandir", 1)
      nul_error(errof(aio.fs.rename, dir .. "/f\0x", dir .. "/g"), "rename", 1)
      nul_error(errof(aio.fs.rename, dir .. "/f", dir .. "/g\0x"), "rename", 2)
      assert.equal("directory", aio.fs.stat(dir .. "/d").type)
      assert.equal("x", aio.fs.read_file(dir .. "/f"))
      assert.is_false(exists(dir .. "/g"))
    end)
  end)
end)

------------------------------------------------------------------ processes
describe("a NUL in what a child process is started with", function()
  local exec, shell, PIPE = aio.create_subprocess_exec, aio.create_subprocess_shell, aio.PIPE
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmrf(dir) end)

  it("the program", function()
    H.run(function()
      nul_error(errof(exec, "/bin/echo\0evil", {}), "create_subprocess", 1)
    end)
  end)

  it("an argument: nothing runs", function()
    H.run(function()
      local err = errof(exec, "touch", { dir .. "/made\0evil" })
      assert.matches("create_subprocess: argument 1 has an embedded null byte", err, 1, true)
      err = errof(shell, "touch " .. dir .. "/made\0; evil")
      assert.matches("create_subprocess: argument 2 has an embedded null byte", err, 1, true)
      aio.sleep(0.05)
      assert.is_false(exists(dir .. "/made"))
    end)
  end)

  it("an environment name or value", function()
    H.run(function()
      local err = errof(exec, "env", {}, { env = { A = "1\0B=2" }, stdout = PIPE })
      assert.matches("create_subprocess: option 'env' has an embedded null byte (variable 'A')",
        err, 1, true)
      err = errof(exec, "env", {}, { env = { ["A\0B"] = "1" }, stdout = PIPE })
      assert.matches("create_subprocess: option 'env' has an embedded null byte", err, 1, true)
    end)
  end)

  it("an environment name with '=' or an empty one", function()
    H.run(function()
      local err = errof(exec, "env", {}, { env = { ["A=B"] = "1" }, stdout = PIPE })
      assert.matches("create_subprocess_exec: option 'env' has an invalid variable name 'A=B'",
        err, 1, true)
      err = errof(shell, "env", { env = { [""] = "1" }, stdout = PIPE })
      assert.matches("create_subprocess_shell: option 'env' has an invalid variable name ''",
        err, 1, true)
      -- '=' in a value is fine
      local p = exec("env", {}, { env = { A = "B=C" }, stdout = PIPE })
      assert.equal("A=B=C\n", (p:communicate()))
    end)
  end)

  it("the working directory", function()
    H.run(function()
      local err = errof(exec, "pwd", {}, { cwd = dir .. "\0/etc", stdout = PIPE })
      assert.matches("create_subprocess: option 'cwd' has an embedded null byte", err, 1, true)
    end)
  end)
end)

------------------------------------------------------------------ hosts
describe("a NUL in a host name", function()
  it("open_connection(\"127.0.0.1\\0evil\", port) raises and connects nowhere", function()
    run(function()
      local srv, port, stop = H.serve(function() end)
      nul_error(errof(aio.open_connection, "127.0.0.1\0evil", port), "open_connection", 1)
      nul_error(errof(aio.open_connection, "localhost\0evil", port), "open_connection", 1)
      H.spin(5)
      assert.equal(0, stop())
      assert.is_false(srv:is_serving())
    end)
  end)

  it("start_server", function()
    run(function()
      nul_error(errof(aio.start_server, function() end, "127.0.0.1\0evil", 0),
        "start_server", 2)
      nul_error(errof(aio.start_server, function() end, "localhost\0evil", 0),
        "start_server", 2)
    end)
  end)

  it("getaddrinfo, host or port", function()
    H.run(function()
      nul_error(errof(aio.getaddrinfo, "localhost\0.evil.example"), "getaddrinfo", 1)
      nul_error(errof(require("luaio.core").getaddrinfo, "localhost", "80\0x"),
        "getaddrinfo", 2)
    end)
  end)

  it("open_udp's host and sendto's address: nothing is sent", function()
    run(function()
      nul_error(errof(aio.open_udp, { host = "127.0.0.1\0evil", port = 0 }), "open_udp", 1)
      local rx = aio.open_udp { host = "127.0.0.1", port = 0 }
      local _, port = rx:getsockname()
      local tx = aio.open_udp()
      nul_error(errof(function() tx:sendto("x", "127.0.0.1\0evil", port) end), "sendto", 2)
      tx:sendto("ok", "127.0.0.1", port)
      assert.equal("ok", (rx:recvfrom()))   -- the first datagram to arrive
      tx:close()
      rx:close()
    end)
  end)
end)

describe("a NUL below the Lua checks", function()
  local core = require "luaio.core"
  it("the core's connect, listen and bind refuse it too", function()
    run(function()
      local srv, port, stop = H.serve(function() end)
      nul_error(errof(core.tcp_connect, "127.0.0.1\0evil", port), "open_connection", 1)
      nul_error(errof(core.tcp_listen, "127.0.0.1\0evil", 0, nil, nil, print),
        "start_server", 1)
      nul_error(errof(core.udp_open, "127.0.0.1\0evil", 0), "open_udp", 1)
      H.spin(5)
      assert.equal(0, stop())
      assert.is_false(srv:is_serving())
    end)
  end)
end)

describe("a NUL in server_hostname", function()
  it("open_connection and start_tls refuse it before connecting or wrapping", function()
    if not aio.ssl.HAS_TLS then return end   -- a TLS=0 build
    run(function()
      local ctx = aio.ssl.create_default_context()
      local _, port, stop = H.serve(function(r) r:read() end)
      local err = errof(aio.open_connection, "127.0.0.1", port,
        { ssl = ctx, server_hostname = "good.example\0.evil.example" })
      assert.matches("open_connection: option 'server_hostname' has an embedded null byte",
        err, 1, true)
      H.spin(5)
      local _, w = aio.open_connection("127.0.0.1", port)
      err = errof(w.start_tls, w, ctx, { server_hostname = "good.example\0.evil" })
      assert.matches("start_tls: option 'server_hostname' has an embedded null byte",
        err, 1, true)
      assert.is_nil(w:get_extra_info("ssl_object"))   -- still plain
      w:close()
      w:wait_closed()
      assert.equal(1, stop())          -- only the plain connection reached it
    end)
  end)
end)

------------------------------------------------------------------ unix sockets
describe("a NUL in a TLS file name or password", function()
  it("load_cert_chain and load_verify_locations refuse it before OpenSSL sees it", function()
    local ctx = aio.ssl.create_default_context("client_auth")
    -- the files need not exist: the name is refused before it is looked up
    nul_error(errof(function() ctx:load_cert_chain("/etc/hostname\0.pem") end),
      "load_cert_chain", 1)
    nul_error(errof(function() ctx:load_cert_chain("/etc/hostname", "k\0.key") end),
      "load_cert_chain", 2)
    nul_error(errof(function() ctx:load_cert_chain("/etc/hostname", "/etc/hostname", "p\0w") end),
      "load_cert_chain", 3)
    nul_error(errof(function() ctx:load_verify_locations("/etc/hostname\0") end),
      "load_verify_locations", 1)
    nul_error(errof(function() ctx:load_verify_locations(nil, "/etc\0/ssl") end),
      "load_verify_locations", 2)
  end)
end)

describe("unix socket paths", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmrf(dir) end)

  it("with a NUL: start_unix_server creates nothing, open_unix_connection connects nowhere", function()
    run(function()
      local path = dir .. "/s"
      nul_error(errof(aio.start_unix_server, function() end, path .. "\0evil"),
        "start_unix_server", 2)
      assert.is_false(exists(path))
      local n = 0
      local srv = aio.start_unix_server(function(_, w) n = n + 1; w:close() end, path)
      nul_error(errof(aio.open_unix_connection, path .. "\0evil"), "open_unix_connection", 1)
      H.spin(5)
      srv:close()
      srv:wait_closed()
      assert.equal(0, n)
    end)
  end)

  it("longer than sun_path holds: two paths differing after byte 107 are refused", function()
    run(function()
      local base = dir .. "/"
      local prefix = base .. ("p"):rep(107 - #base)        -- 107 bytes: fits
      assert.equal(107, #prefix)
      local a, b = prefix .. "-one", prefix .. "-two"      -- cut, both would be prefix
      local n = 0
      local err = errof(aio.start_unix_server, function(_, w) n = n + 1; w:close() end, a)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("ENAMETOOLONG", err.code)
      assert.matches("start_unix_server: AF_UNIX path too long (111 bytes, at most 107)",
        err.message, 1, true)
      assert.is_false(exists(prefix))
      -- a server on the 107-byte prefix: a longer path must not reach it
      local srv = aio.start_unix_server(function(_, w) n = n + 1; w:close() end, prefix)
      err = errof(aio.open_unix_connection, b)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("ENAMETOOLONG", err.code)
      assert.matches("open_unix_connection: AF_UNIX path too long (111 bytes, at most 107)",
        err.message, 1, true)
      local _, w = aio.open_unix_connection(prefix)   -- the longest that fits works
      w:close()
      w:wait_closed()
      H.spin(5)
      srv:close()
      srv:wait_closed()
      assert.equal(1, n)
    end)
  end)
end)

------------------------------------------------------------------ Semaphore
describe("Semaphore", function()
  it("release past math.maxinteger raises instead of wrapping around", function()
    H.run(function()
      local s = aio.Semaphore(math.maxinteger)
      local err = errof(s.release, s)
      assert.matches("release: the Semaphore's value would overflow", err, 1, true)
      assert.is_false(s:locked())
      s:acquire()                       -- the value is intact
      s:release()
      err = errof(s.release, s)
      assert.matches("release: the Semaphore's value would overflow", err, 1, true)
      -- a BoundedSemaphore is bounded before that
      local b = aio.BoundedSemaphore(math.maxinteger)
      assert.matches("BoundedSemaphore released too many times", errof(b.release, b), 1, true)
    end)
  end)
end)

------------------------------------------------------------------ EMFILE
describe("getaddrinfo out of file descriptors", function()
  it("names the real cause (EMFILE), not 'unknown node or service'", function()
    local script = H.script([[
      local aio = require "luaio"
      aio.run(function()
        local files = {}
        while true do
          local f = io.open("/dev/null")
          if not f then break end
          files[#files + 1] = f
        end
        local ok, err = pcall(aio.getaddrinfo, "localhost", 80)
        for _, f in ipairs(files) do f:close() end
        print(ok, aio.is(err, aio.OSError), err.code, err.message)
      end)
    ]])
    local p = assert(io.popen("ulimit -n 64 && " .. H.quote(H.LUAIO) .. " " .. H.quote(script)
      .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(script)
    assert.matches("^false\ttrue\tEMFILE\tgetaddrinfo 'localhost': too many open files\n$", out)
  end)
end)
