-- spec/fs_spec.lua: aio.fs (SPEC "Processes, signals, files, threads":
-- files on libuv's thread pool, following the conventions of Lua's io).
local aio = require "luaio"
local H = require "helper"

local fs = aio.fs

local fails = H.errof

local function oserror(code, f, ...)
  local err = fails(f, ...)
  assert(aio.is(err, aio.OSError), "not an OSError: " .. tostring(err))
  assert.equal(code, err.code)
  assert.is_number(err.errno)
  return err
end

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

-- Each test gets a fresh directory `dir`, removed afterwards.
local dir
local function path(name) return dir .. "/" .. name end

local function put(name, data)   -- synchronous, for setting up
  local f = assert(io.open(path(name), "wb"))
  f:write(data)
  f:close()
end

local function get(name)
  local f = io.open(path(name), "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

describe("aio.fs", function()
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. H.quote(dir)))
  end)
  after_each(function()
    os.execute("chmod -R u+rwx " .. H.quote(dir) .. " 2>/dev/null; rm -rf " .. H.quote(dir))
  end)

  describe("read_file / write_file", function()
    it("round-trip binary data of many sizes", function()
      H.run(function()
        local bytes = {}
        for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
        bytes = table.concat(bytes)
        for _, size in ipairs { 0, 1, 255, 65535, 65536, 65537, 1024 * 1024 + 3 } do
          local data = bytes:rep(size // 256 + 1):sub(1, size)
          fs.write_file(path("f"), data)
          assert.equal(size, #get("f"))
          assert.is_true(get("f") == data)
          assert.is_true(fs.read_file(path("f")) == data, "size " .. size)
        end
      end)
    end)

    it("write_file truncates an existing file", function()
      put("f", "a long old content\n")
      H.run(function()
        fs.write_file(path("f"), "new")
        assert.equal("new", get("f"))
        assert.equal("new", fs.read_file(path("f")))
      end)
    end)

    it("missing files raise OSError ENOENT", function()
      H.run(function()
        local err = oserror("ENOENT", fs.read_file, path("missing"))
        assert.is_true(aio.is(err, aio.Error))
        assert.is_string(tostring(err))
        oserror("ENOENT", fs.write_file, path("no/such/dir/f"), "x")
      end)
    end)

    it("a path through a file raises ENOTDIR; a directory raises EISDIR", function()
      put("plain", "x")
      H.run(function()
        oserror("ENOTDIR", fs.read_file, path("plain/sub"))
        oserror("ENOTDIR", fs.write_file, path("plain/sub"), "x")
        oserror("EISDIR", fs.read_file, dir)
      end)
    end)

    it("permission denied raises EACCES (skipped as root)", function()
      if is_root() then return end
      put("secret", "x")
      os.execute("chmod 000 " .. H.quote(path("secret")))
      H.run(function()
        oserror("EACCES", fs.read_file, path("secret"))
        oserror("EACCES", fs.open, path("secret"), "r+")
      end)
    end)

    it("bad arguments fail at the call", function()
      H.run(function()
        assert.matches("bad argument #1 to 'read_file'", fails(fs.read_file, 42))
        assert.matches("bad argument #1 to 'write_file'", fails(fs.write_file, nil, "x"))
        assert.matches("bad argument #2 to 'write_file'", fails(fs.write_file, path("f"), {}))
        assert.matches("bad argument #1 to 'open'", fails(fs.open, 1))
        assert.matches("mode", fails(fs.open, path("f"), "rw"))
        assert.matches("mode", fails(fs.open, path("f"), "x"))
        assert.is_nil(get("f"))
      end)
    end)

    it("outside a task (in a callback) is an error naming the function", function()
      put("f", "x")
      H.run(function()
        local ok, err
        aio.get_running_loop():call_soon(function()
          ok, err = pcall(fs.read_file, path("f"))
        end)
        aio.sleep(0.01)
        assert.is_false(ok)
        assert.matches("task", tostring(err))
        assert.matches("read_file", tostring(err))
      end)
    end)

    it("many concurrent reads and writes", function()
      H.run(function()
        local jobs = {}
        for i = 1, 50 do
          jobs[i] = function()
            local name = path("f" .. i)
            fs.write_file(name, ("%d\n"):format(i):rep(i))
            return fs.read_file(name)
          end
        end
        local res = aio.gather(jobs)
        for i = 1, 50 do assert.equal(("%d\n"):format(i):rep(i), res[i]) end
      end)
    end)

    it("does not block the loop: other tasks run while files are read #timing", function()
      put("big", ("x"):rep(4 * 1024 * 1024))
      H.run(function()
        local ticks = 0
        local t = aio.spawn(function()
          while true do ticks = ticks + 1; aio.sleep(0) end
        end)
        for _ = 1, 5 do fs.read_file(path("big")) end
        t:cancel()
        pcall(t.await, t)
        assert.is_true(ticks > 5, "ticks = " .. ticks)
      end)
    end)

    it("a cancelled call is abandoned safely", function()
      put("big", ("y"):rep(2 * 1024 * 1024))
      H.run(function()
        local loop = aio.get_running_loop()
        for _ = 1, 10 do
          local t = aio.spawn(fs.read_file, path("big"))
          aio.sleep(0)
          t:cancel()
          local ok, err = pcall(t.await, t)
          if not ok then assert.is_true(aio.is(err, aio.CancelledError), tostring(err)) end
        end
        -- abandoned requests finish on their own
        local deadline = aio.time() + 2
        while loop:stats().requests > 0 and aio.time() < deadline do aio.sleep(0.005) end
        assert.equal(0, loop:stats().requests)
        -- the loop still works
        assert.equal(2 * 1024 * 1024, #fs.read_file(path("big")))
      end)
    end)
  end)

  describe("open", function()
    it("\"r\" on a missing file and \"r+\" on a missing file raise ENOENT", function()
      H.run(function()
        oserror("ENOENT", fs.open, path("missing"))
        oserror("ENOENT", fs.open, path("missing"), "r")
        oserror("ENOENT", fs.open, path("missing"), "r+")
        assert.is_nil(get("missing"))
      end)
    end)

    it("\"w\" creates and truncates", function()
      put("f", "0123456789")
      H.run(function()
        local f = fs.open(path("f"), "w")
        assert.equal(f, f:write("ab", 12, "c"))
        assert.is_true(f:close())
        assert.equal("ab12c", get("f"))
        f = fs.open(path("new"), "w")
        f:close()
        assert.equal("", get("new"))
      end)
    end)

    it("\"a\" appends, even after a seek", function()
      put("f", "start\n")
      H.run(function()
        local f = fs.open(path("f"), "a")
        f:write("one\n")
        f:seek("set", 0)
        f:write("two\n")
        f:close()
        assert.equal("start\none\ntwo\n", get("f"))
        f = fs.open(path("created"), "a")
        f:write("x")
        f:close()
        assert.equal("x", get("created"))
      end)
    end)

    it("\"r+\" reads and writes in place without truncating", function()
      put("f", "hello world\n")
      H.run(function()
        local f = fs.open(path("f"), "r+")
        assert.equal("hello", f:read(5))
        f:seek("cur", 0)
        f:write("_")
        f:seek("set", 0)
        f:write("J")
        f:seek("set", 0)
        assert.equal("Jello_world", f:read(11))
        f:close()
        assert.equal("Jello_world\n", get("f"))
      end)
    end)

    it("\"w+\" truncates and reads back what was written", function()
      put("f", "old old old")
      H.run(function()
        local f = fs.open(path("f"), "w+")
        f:write("line1\nline2\n")
        assert.equal(12, f:seek("cur"))
        assert.is_nil(f:read(1))
        assert.equal(0, f:seek("set"))
        assert.equal("line1\n", f:read(6))
        assert.equal("line2\n", f:read("a"))
        f:close()
      end)
    end)

    it("\"a+\" reads from the start and appends", function()
      put("f", "abc")
      H.run(function()
        local f = fs.open(path("f"), "a+")
        f:write("def")
        f:seek("set", 0)
        assert.equal("abcdef", f:read("a"))
        f:close()
        assert.equal("abcdef", get("f"))
      end)
    end)

    it("\"b\" is accepted", function()
      H.run(function()
        local f = fs.open(path("f"), "wb")
        f:write("\0\1\2")
        f:close()
        f = fs.open(path("f"), "rb")
        assert.equal("\0\1\2", f:read("a"))
        f:close()
      end)
    end)

    it("writing a file opened for reading is an OSError", function()
      put("f", "x")
      H.run(function()
        local f = fs.open(path("f"), "r")
        local err = fails(f.write, f, "y")
        assert.is_true(aio.is(err, aio.OSError), tostring(err))
        f:close()
        assert.equal("x", get("f"))
      end)
    end)

    it("write rejects non-strings", function()
      H.run(function()
        local f = fs.open(path("f"), "w")
        assert.matches("bad argument #1 to 'write'", fails(f.write, f, {}))
        assert.matches("bad argument #2 to 'write'", fails(f.write, f, "ok", true))
        f:close()
      end)
    end)
  end)

  describe("read formats", function()
    -- Lua's io is the reference: run the same reads on the same content.
    local function io_reads(content, fmts)
      put("ref", content)
      local f = assert(io.open(path("ref"), "rb"))
      local out = {}
      for i, fmt in ipairs(fmts) do
        out[i] = table.pack(f:read(table.unpack(fmt, 1, fmt.n or #fmt)))
      end
      f:close()
      return out
    end

    local function aio_reads(content, fmts)
      put("mine", content)
      local f <close> = fs.open(path("mine"))
      local out = {}
      for i, fmt in ipairs(fmts) do
        out[i] = table.pack(f:read(table.unpack(fmt, 1, fmt.n or #fmt)))
      end
      return out
    end

    -- long strings are summarised so that a failure prints something readable
    local function summary(results)
      for _, r in ipairs(results) do
        for i = 1, r.n do
          local v = r[i]
          if type(v) == "string" and #v > 60 then
            local sum = 0
            for j = 1, #v do sum = (sum * 31 + v:byte(j)) % 1000000007 end
            r[i] = ("<%d bytes %q..%q #%d>"):format(#v, v:sub(1, 8), v:sub(-8), sum)
          end
        end
      end
      return results
    end

    local cases = {
      { "", { { "n" }, { "l" }, { "L" }, { 1 }, { 0 }, { "a" }, { "a" } } },
      { "one\ntwo\n\nlast", { { "l" }, { "L" }, { "l" }, { "l" }, { "l" }, { "L" }, { "a" } } },
      { "abc", { { 0 }, { 2 }, { 0 }, { 5 }, { 0 }, { 1 }, { "a" } } },
      { "x\ny\nz\n", { { "l", "l" }, { "l", "l", "l" }, {} } },
      { "x\ny\n", { { "L", 1, "a" }, { "l", n = 1 } } },
      { "12\n3.5\n0x10\n-7\n", { { "n" }, { "n" }, { "n" }, { "n" }, { "n" } } },
      { "no newline", { {}, {} } },
      { "\r\nwin\r\n", { { "l" }, { "L" } } },
      { ("z"):rep(200000) .. "\nend", { { "l" }, { "l" }, { "l" } } },
      { "a\0b\nc", { { "l" }, { 1 }, { "l" } } },
    }

    for i, case in ipairs(cases) do
      it(("match Lua's io (case %d: %q)"):format(i, case[1]:sub(1, 20)), function()
        local want = summary(io_reads(case[1], case[2]))
        local got = summary(H.run(function() return aio_reads(case[1], case[2]) end))
        assert.same(want, got)
      end)
    end

    it("at EOF: nil for a count, \"l\", \"L\" and \"n\"; \"\" for \"a\"", function()
      put("f", "data")
      H.run(function()
        local f <close> = fs.open(path("f"))
        assert.equal("data", f:read("a"))
        assert.is_nil(f:read(1))
        assert.is_nil(f:read("l"))
        assert.is_nil(f:read("L"))
        assert.is_nil(f:read("n"))
        assert.is_nil(f:read(0))
        assert.equal("", f:read("a"))
        assert.equal("", f:read("a"))
      end)
    end)

    it("\"n\" reads just the numeral, like io (several numbers on one line)", function()
      local want = io_reads("1 2 3\n4 rest\n", { { "n", "n", "n" }, { "n", "l" } })
      assert.same({ 1, 2, 3, n = 3 }, want[1])
      local got = H.run(function() return aio_reads("1 2 3\n4 rest\n", { { "n", "n", "n" }, { "n", "l" } }) end)
      assert.same(want, got)
    end)

    it("\"*l\"-style formats (Lua 5.1/5.2) are accepted like io", function()
      put("f", "a\nb\n")
      H.run(function()
        local f <close> = fs.open(path("f"))
        assert.equal("a", f:read("*l"))
        assert.equal("b\n", f:read("*a"))
      end)
    end)

    it("an invalid format is an error", function()
      put("f", "a")
      H.run(function()
        local f <close> = fs.open(path("f"))
        assert.matches("format", fails(f.read, f, "x"))
        assert.matches("format", fails(f.read, f, {}))
      end)
    end)
  end)

  describe("seek", function()
    it("set / cur / end, like io", function()
      put("f", "0123456789")
      H.run(function()
        local f <close> = fs.open(path("f"))
        assert.equal(0, f:seek())
        assert.equal("012", f:read(3))
        assert.equal(3, f:seek())
        assert.equal(3, f:seek("cur"))
        assert.equal(10, f:seek("end"))
        assert.is_nil(f:read(1))
        assert.equal(7, f:seek("end", -3))
        assert.equal("789", f:read("a"))
        assert.equal(2, f:seek("set", 2))
        assert.equal("23", f:read(2))
        assert.equal(6, f:seek("cur", 2))
        assert.equal("6", f:read(1))
        assert.equal(5, f:seek("cur", -2))
        assert.equal("56789", f:read("a"))
        -- before the start: fail, as io
        local r1, msg, code = f:seek("set", -1)
        assert.is_nil(r1)
        assert.equal("Invalid argument", msg)    -- EINVAL, as io gives it
        assert.equal(22, code)
        assert.matches("bad argument", fails(f.seek, f, "middle"))
      end)
    end)

    it("seek(\"end\") sees what was just written", function()
      H.run(function()
        local f <close> = fs.open(path("f"), "w+")
        f:write("abcdef")
        assert.equal(6, f:seek("end"))
        f:write("gh")
        assert.equal(8, f:seek("end"))
        f:seek("set", 0)
        assert.equal("abcdefgh", f:read("a"))
      end)
    end)

    it("writing past the end leaves a hole of zeros", function()
      H.run(function()
        local f = fs.open(path("f"), "w")
        f:seek("set", 4)
        f:write("x")
        f:close()
        assert.equal("\0\0\0\0x", get("f"))
      end)
    end)
  end)

  describe("lines", function()
    it("iterates lines without newlines; the file stays open", function()
      put("f", "a\nbb\n\nccc")
      H.run(function()
        local f <close> = fs.open(path("f"))
        local got = {}
        for l in f:lines() do got[#got + 1] = l end
        assert.same({ "a", "bb", "", "ccc" }, got)
        assert.equal("", f:read("a"))   -- still open
        assert.equal(0, f:seek("set"))
        got = {}
        for l in f:lines("L") do got[#got + 1] = l end
        assert.same({ "a\n", "bb\n", "\n", "ccc" }, got)
      end)
    end)

    it("iterates every line of a large file", function()
      local want = {}
      for i = 1, 20000 do want[i] = "line " .. i end
      put("f", table.concat(want, "\n") .. "\n")
      H.run(function()
        local f <close> = fs.open(path("f"))
        local n, bad = 0, nil
        for l in f:lines() do
          n = n + 1
          if l ~= want[n] and not bad then bad = ("line %d: %q"):format(n, l:sub(1, 40)) end
        end
        assert.is_nil(bad)
        assert.equal(20000, n)
      end)
    end)

    it("with formats, like io", function()
      put("f", "abcdefg")
      H.run(function()
        local f <close> = fs.open(path("f"))
        local got = {}
        for a, b in f:lines(2, 1) do got[#got + 1] = a .. "|" .. tostring(b) end
        assert.same({ "ab|c", "de|f", "g|nil" }, got)
      end)
    end)

    it("lines of an empty file yields nothing", function()
      put("f", "")
      H.run(function()
        local f <close> = fs.open(path("f"))
        for _ in f:lines() do error("a line in an empty file") end
      end)
    end)
  end)

  describe("close", function()
    it("a file is a to-be-closed value", function()
      put("f", "x")
      H.run(function()
        local saved
        do
          local f <close> = fs.open(path("f"))
          saved = f
          assert.matches("file %(", tostring(f))
        end
        assert.equal("file (closed)", tostring(saved))
        assert.matches("closed file", fails(saved.read, saved))
        assert.matches("closed file", fails(saved.write, saved, "y"))
        assert.matches("closed file", fails(saved.seek, saved))
        assert.matches("closed file", fails(saved.lines, saved))
      end)
    end)

    it("closes even when the block raises", function()
      put("f", "x")
      H.run(function()
        local saved
        local ok, err = pcall(function()
          local f <close> = fs.open(path("f"))
          saved = f
          error("boom", 0)
        end)
        assert.is_false(ok)
        assert.equal("boom", err)
        assert.equal("file (closed)", tostring(saved))
      end)
    end)

    it("data written is on disk once close returns", function()
      H.run(function()
        local f = fs.open(path("f"), "w")
        for i = 1, 1000 do f:write(i, "\n") end
        f:close()
        local want = {}
        for i = 1, 1000 do want[i] = i .. "\n" end
        assert.equal(table.concat(want), get("f"))
      end)
    end)
  end)

  describe("paths", function()
    it("stat gives size, type, mode and times", function()
      put("f", "12345")
      os.execute("chmod 640 " .. H.quote(path("f")))
      H.run(function()
        local st = fs.stat(path("f"))
        assert.equal(5, st.size)
        assert.equal("file", st.type)
        assert.equal(tonumber("640", 8), st.mode & tonumber("777", 8))
        assert.is_number(st.mtime)
        assert.is_true(math.abs(st.mtime - os.time()) < 60)
        local d = fs.stat(dir)
        assert.equal("directory", d.type)
        oserror("ENOENT", fs.stat, path("missing"))
        oserror("ENOTDIR", fs.stat, path("f/x"))
      end)
    end)

    it("mkdir, rmdir, rename, unlink", function()
      H.run(function()
        fs.mkdir(path("d"))
        assert.equal("directory", fs.stat(path("d")).type)
        oserror("EEXIST", fs.mkdir, path("d"))
        oserror("ENOENT", fs.mkdir, path("no/such"))
        fs.write_file(path("d/f"), "content")
        oserror("ENOTEMPTY", fs.rmdir, path("d"))
        fs.rename(path("d/f"), path("g"))
        assert.equal("content", get("g"))
        assert.is_nil(get("d/f"))
        oserror("ENOENT", fs.rename, path("d/f"), path("h"))
        fs.rmdir(path("d"))
        oserror("ENOENT", fs.stat, path("d"))
        oserror("ENOENT", fs.rmdir, path("d"))
        fs.unlink(path("g"))
        assert.is_nil(get("g"))
        oserror("ENOENT", fs.unlink, path("g"))
        -- rename replaces an existing file
        fs.write_file(path("a"), "A")
        fs.write_file(path("b"), "B")
        fs.rename(path("a"), path("b"))
        assert.equal("A", get("b"))
        assert.matches("bad argument", fails(fs.rename, path("b")))
        assert.matches("bad argument #1 to 'mkdir'", fails(fs.mkdir, nil))
      end)
    end)

    it("scandir lists names and types, without . and ..", function()
      H.run(function()
        assert.same({}, fs.scandir(dir))
        fs.write_file(path("b.txt"), "x")
        fs.write_file(path("a.txt"), "y")
        fs.mkdir(path("sub"))
        os.execute("ln -s a.txt " .. H.quote(path("link")))
        local list = fs.scandir(dir)
        table.sort(list, function(x, y) return x.name < y.name end)
        assert.same({
          { name = "a.txt", type = "file" },
          { name = "b.txt", type = "file" },
          { name = "link", type = "link" },
          { name = "sub", type = "directory" },
        }, list)
        oserror("ENOENT", fs.scandir, path("missing"))
        oserror("ENOTDIR", fs.scandir, path("a.txt"))
      end)
    end)
  end)
end)
