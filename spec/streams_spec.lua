-- spec/streams_spec.lua: TCP and unix-domain streams (asyncio 3.13
-- streams.py with Lua's io conventions at EOF): echo, line protocols,
-- readuntil/readexactly and the buffer limit, EOF, backpressure, many
-- clients, errors, cancellation, server lifecycle, peers that vanish.
-- Only 127.0.0.1, ::1 and unix sockets in temporary paths are used.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

------------------------------------------------------------------ helpers
-- Open file descriptors: leaks are checked besides loop:stats().
local open_fds = H.open_fds

local warm_up = H.warm_up

local function run(fn, limit)
  return H.closes_fds(fn, limit, warm_up)
end

local serve = H.serve   -- server, port, stop

local function close(w)
  w:close()
  w:wait_closed()
end

local function echo(r, w)
  while true do
    local data = r:read(65536)
    if data == nil then return end
    w:write(data)
    w:drain()
  end
end

local errof = H.errof

-- Asserts that a pcall ended in the error of writing to a peer that is
-- gone: aio.OSError EPIPE or ECONNRESET.
local function lost_peer(ok, err, what)
  assert.is_false(ok, what)
  assert.is_true(aio.is(err, aio.OSError), tostring(err))
  assert.is_true(err.code == "EPIPE" or err.code == "ECONNRESET", err.code)
end

local function first_diff(a, b)
  for i = 1, math.max(#a, #b) do
    if a:byte(i) ~= b:byte(i) then return i end
  end
end

-- Writes numbered 256 KiB chunks until the socket stops taking them
-- (the peer does not read): returns everything written.
local function fill(w)
  local parts, n = {}, 0
  local body = ("0123456789abcdef"):rep(16384):sub(9)
  repeat
    n = n + 1
    parts[n] = ("%08d"):format(n) .. body
    w:write(parts[n])
  until w:transport_buffered() > 0 or n >= 256
  assert(w:transport_buffered() > 0, "64 MiB went out without any queueing")
  return table.concat(parts)
end

local function tmppath()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".sock"
end

local function exists(path)
  return os.rename(path, path) ~= nil
end

------------------------------------------------------------------ echo
describe("TCP echo", function()
  it("echoes what the client writes, then EOF after write_eof", function()
    run(function()
      local _, port, stop = serve(echo)
      local r, w = aio.open_connection(HOST, port)
      for i = 1, 20 do
        local msg = ("message %d;"):format(i)
        w:write(msg)
        assert.equal(msg, r:readexactly(#msg))
      end
      w:write_eof()
      assert.equal("", r:read())
      assert.is_true(r:at_eof())
      close(w)
      stop()
    end)
  end)

  it("read(n) returns what is available without waiting for n bytes", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function(_, w)
        w:write("abc")
        go:wait()
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("abc", r:read(100))
      assert.is_false(r:at_eof())
      go:set()
      assert.is_nil(r:read(100))
      close(w)
      stop()
    end)
  end)

  it("read(n) never returns more than n bytes", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("0123456789") end)
      local r, w = aio.open_connection(HOST, port)
      aio.sleep(0.02)
      assert.equal("012", r:read(3))
      assert.equal("3456", r:read(4))
      assert.equal("789", r:read())
      close(w)
      stop()
    end)
  end)

  it("read's size is an integer or nil: a parked read keeps it; anything else is a bad argument", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        aio.sleep(0.02)
        w:write("0123456789")
        w:close()
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("0123", r:read(4))          -- parked first, then 4 bytes
      assert.equal("456", r:read("3"))         -- as luaL_checkinteger
      assert.matches("bad argument #1 to 'read' %(number expected, got table%)",
        errof(function() return r:read({}) end))
      assert.matches("bad argument #1 to 'read' %(number has no integer representation%)",
        errof(function() return r:read(2.5) end))
      assert.equal("789", r:read(nil))         -- to EOF
      close(w)
      stop()
    end)
  end)

  it("connects by name: open_connection('localhost', port)", function()
    run(function()
      local _, port, stop = serve(echo)
      local r, w = aio.open_connection("localhost", port)
      w:write("hi\n")
      assert.equal("hi\n", r:readline())
      close(w)
      stop()
    end)
  end)

  it("works over IPv6 loopback (::1) when available", function()
    local ok = pcall(H.run, function()
      local s = aio.start_server(function() end, "::1", 0)
      s:close()
      s:wait_closed()
    end)
    if not ok then return end           -- no ::1 on this host
    run(function()
      local srv = aio.start_server(function(r, w) echo(r, w); close(w) end, "::1", 0)
      local host, port = srv:getsockname()
      assert.equal("::1", host)
      local r, w = aio.open_connection("::1", port)
      assert.equal("::1", (w:get_extra_info("peername")))
      w:write("six\n")
      assert.equal("six\n", r:readline())
      close(w)
      srv:close()
      srv:wait_closed()
      aio.sleep(0.01)
    end)
  end)
end)

------------------------------------------------------------------ lines
describe("a handler that returns with writes still queued", function()
  it("loses nothing when its reader and writer are collected", function()
    -- (found by the stream_reader fuzz target: collecting the last
    -- reference closed the socket at once, dropping queued writes)
    run(function()
      local big = ("0123456789abcdef"):rep(1 << 18)        -- 4 MiB
      local path = os.tmpname()
      os.remove(path)
      local srv = aio.start_unix_server(function(_, w)      -- (small socket
        w:write(big)                                      -- buffers: most of
        w:close()                                         -- it is queued)
      end, path)
      local r, w = aio.open_unix_connection(path)
      aio.sleep(0.05)                                     -- the handler returns
      collectgarbage(); collectgarbage()                  -- and its objects go
      local got = r:read()
      assert.equal(#big, #got)
      assert.is_true(got == big)
      close(w)
      srv:close()
      srv:wait_closed()
      os.remove(path)
    end)
  end)
end)

describe("line protocols", function()
  local function pieces(list)
    return function(_, w)
      for _, p in ipairs(list) do
        w:write(p)
        aio.sleep(0.005)
      end
    end
  end

  it("readline keeps the newline, assembles split lines, returns the unterminated tail, then nil", function()
    run(function()
      local _, port, stop = serve(pieces { "hel", "lo\nwor", "ld\n", "tail" })
      local r, w = aio.open_connection(HOST, port)
      assert.equal("hello\n", r:readline())
      assert.equal("world\n", r:readline())
      assert.equal("tail", r:readline())
      assert.is_nil(r:readline())
      assert.is_nil(r:readline())
      close(w)
      stop()
    end)
  end)

  it("lines() iterates without the newlines, as io.lines does", function()
    run(function()
      local _, port, stop = serve(pieces { "a\nb", "\n\nc\r\n", "last" })
      local r, w = aio.open_connection(HOST, port)
      local got = {}
      for line in r:lines() do got[#got + 1] = line end
      assert.same({ "a", "b", "", "c\r", "last" }, got)
      close(w)
      stop()
    end)
  end)

  it("serves a request/response line protocol", function()
    run(function()
      local _, port, stop = serve(function(r, w)
        for line in r:lines() do
          if line == "PING" then w:write("PONG\n")
          elseif line:match("^ECHO ") then w:write(line:sub(6) .. "\n")
          elseif line == "QUIT" then w:write("BYE\n") return
          else w:write("ERR " .. line .. "\n") end
        end
      end)
      local r, w = aio.open_connection(HOST, port)
      w:write("PING\n")
      assert.equal("PONG\n", r:readline())
      w:writelines { "ECHO one\n", "ECHO two\n", "what\n" }
      assert.equal("one\n", r:readline())
      assert.equal("two\n", r:readline())
      assert.equal("ERR what\n", r:readline())
      w:write("QUIT\n")
      assert.equal("BYE\n", r:readline())
      assert.is_nil(r:readline())
      close(w)
      stop()
    end)
  end)
end)

------------------------------------------------------------------ readuntil
describe("readuntil and the limit", function()
  it("finds a multi-byte separator split across packets and keeps it", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        for _, p in ipairs { "HEAD", "ER\r\n", "\r", "\nBODY" } do
          w:write(p)
          aio.sleep(0.005)
        end
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("HEADER\r\n\r\n", r:readuntil("\r\n\r\n"))
      assert.equal("BODY", r:read())
      close(w)
      stop()
    end)
  end)

  it("uses \"\\n\" as the default separator", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("x\ny\n") end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("x\n", r:readuntil())
      assert.equal("y\n", r:readuntil("\n"))
      close(w)
      stop()
    end)
  end)

  it("raises IncompleteReadError at EOF with the partial data", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("no separator") end)
      local r, w = aio.open_connection(HOST, port)
      local err = errof(r.readuntil, r, "\r\n")
      assert.is_true(aio.is(err, aio.IncompleteReadError))
      assert.is_true(aio.is(err, aio.Error))
      assert.equal("no separator", err.partial)
      assert.is_nil(err.expected)
      assert.is_true(r:at_eof())
      close(w)
      stop()
    end)
  end)

  it("rejects an empty separator", function()
    run(function()
      local _, port, stop = serve(function() end)
      local r, w = aio.open_connection(HOST, port)
      assert.matches("bad argument #1 to 'readuntil' (the separator is empty)",
        errof(function() return r:readuntil("") end), 1, true)
      close(w)
      stop()
    end)
  end)

  it("raises LimitOverrunError past the limit and leaves the data in the buffer", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function(_, w)
        w:write("0123456789abcdefghij")          -- 20 bytes, no separator
        go:wait()
        w:write(("x"):rep(30) .. "\n")           -- separator past the limit
      end)
      local r, w = aio.open_connection(HOST, port, { limit = 16 })
      aio.sleep(0.02)
      local err = errof(r.readuntil, r, "\n")
      assert.is_true(aio.is(err, aio.LimitOverrunError))
      assert.is_true(aio.is(err, aio.Error))
      assert.equal("integer", math.type(err.consumed))
      assert.is_true(err.consumed >= 16)
      -- asyncio: "the data is left in the internal buffer"
      assert.equal("0123456789abcdefghij", r:readexactly(20))
      go:set()
      aio.sleep(0.02)
      err = errof(r.readuntil, r, "\n")
      assert.is_true(aio.is(err, aio.LimitOverrunError))
      assert.equal(30, err.consumed)           -- where the separator starts
      assert.equal(("x"):rep(30) .. "\n", r:read())
      close(w)
      stop()
    end)
  end)

  it("readline drops a line over the limit with an error, then reads on", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        w:write(("y"):rep(40) .. "\nshort\n")
      end)
      local r, w = aio.open_connection(HOST, port, { limit = 16 })
      aio.sleep(0.02)
      local err = errof(r.readline, r)
      assert.matches("limit", tostring(err))
      assert.equal("short\n", r:readline())
      close(w)
      stop()
    end)
  end)

  it("has a default limit of 64 KiB", function()
    run(function()
      local got
      local _, port, stop = serve(function(r)
        got = table.pack(pcall(r.readuntil, r, "\n"))
      end)
      local _, w = aio.open_connection(HOST, port)
      w:write(("z"):rep(70000))
      w:write_eof()
      stop()
      assert.is_false(got[1])
      assert.is_true(aio.is(got[2], aio.LimitOverrunError))
      close(w)
    end)
  end)

  it("start_server's limit applies to the handlers' readers", function()
    run(function()
      local got
      local _, port, stop = serve(function(r)
        got = table.pack(pcall(r.readuntil, r, "\n"))
      end, { limit = 8 })
      local _, w = aio.open_connection(HOST, port)
      w:write("123456789012345\n")
      stop()
      assert.is_false(got[1])
      assert.is_true(aio.is(got[2], aio.LimitOverrunError))
      close(w)
    end)
  end)

  it("a readexactly larger than the limit does not raise the limit for readuntil", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function(_, w)
        w:write(("a"):rep(100))
        go:wait()
        w:write(("b"):rep(40))       -- no separator, over the limit of 16
        go:clear()
        go:wait()
      end)
      local r, w = aio.open_connection(HOST, port, { limit = 16 })
      assert.equal(("a"):rep(100), r:readexactly(100))
      go:set()
      local ok, err = pcall(aio.wait_for, function() return r:readuntil("\n") end, 0.3)
      go:set()
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.LimitOverrunError),
        "expected LimitOverrunError, got " .. tostring(err))
      close(w)
      stop()
    end)
  end)

  it("rejects a bad limit option", function()
    run(function()
      local _, port, stop = serve(function() end)
      assert.matches("limit", errof(aio.open_connection, HOST, port, { limit = 0 }))
      assert.matches("limit", errof(aio.open_connection, HOST, port, { limit = "big" }))
      stop()
    end)
  end)
end)

------------------------------------------------------------------ readexactly
describe("readexactly", function()
  it("waits for exactly n bytes across packets", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        for _, p in ipairs { "ab", "cde", "fghij", "KLM" } do
          w:write(p)
          aio.sleep(0.005)
        end
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("", r:readexactly(0))
      assert.equal("abcdefg", r:readexactly(7))
      assert.equal("hijKLM", r:readexactly(6))
      close(w)
      stop()
    end)
  end)

  it("raises IncompleteReadError with .partial and .expected at EOF", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("abc") end)
      local r, w = aio.open_connection(HOST, port)
      local err = errof(r.readexactly, r, 10)
      assert.is_true(aio.is(err, aio.IncompleteReadError))
      assert.equal("abc", err.partial)
      assert.equal(10, err.expected)
      assert.matches("IncompleteReadError", tostring(err))
      assert.is_true(r:at_eof())
      close(w)
      stop()
    end)
  end)

  it("reads more than the buffer limit in one call", function()
    run(function()
      local n = 300000
      local data = ("0123456789abcdef"):rep(n // 16)
      local _, port, stop = serve(function(_, w) w:write(data) end)
      local r, w = aio.open_connection(HOST, port)
      local got = r:readexactly(n)
      assert.equal(n, #got)
      assert.is_true(got == data)
      close(w)
      stop()
    end)
  end)

  it("rejects a negative count", function()
    run(function()
      local _, port, stop = serve(function() end)
      local r, w = aio.open_connection(HOST, port)
      assert.matches("bad argument #1 to 'readexactly' (must be >= 0)",
        errof(function() return r:readexactly(-1) end), 1, true)
      close(w)
      stop()
    end)
  end)
end)

------------------------------------------------------------------ EOF
describe("EOF (Lua io conventions)", function()
  it("read(n) and readline() return nil, read() returns \"\"", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("ab\ncd") end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("ab\n", r:readline())
      assert.equal("cd", r:readline())
      assert.is_nil(r:readline())
      assert.is_nil(r:read(5))
      assert.equal("", r:read())
      assert.equal("", r:read(-1))
      assert.equal("", r:read())
      assert.equal("", r:read(0))
      assert.is_true(r:at_eof())
      local err = errof(r.readexactly, r, 1)
      assert.is_true(aio.is(err, aio.IncompleteReadError))
      assert.equal("", err.partial)
      assert.equal(1, err.expected)
      err = errof(r.readuntil, r, "\n")
      assert.is_true(aio.is(err, aio.IncompleteReadError))
      assert.equal("", err.partial)
      close(w)
      stop()
    end)
  end)

  it("read() returns the rest to EOF; read(-1) is the same", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        w:write("part1,")
        aio.sleep(0.01)
        w:write("part2")
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("part1,part2", r:read(-1))
      assert.equal("", r:read())
      close(w)
      stop()
    end)
  end)

  it("at_eof() is false until the buffered data is read", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:write("x") end)
      local r, w = aio.open_connection(HOST, port)
      aio.sleep(0.03)                       -- data and EOF have arrived
      assert.is_false(r:at_eof())
      assert.equal("x", r:read(1))
      assert.is_nil(r:read(1))
      assert.is_true(r:at_eof())
      close(w)
      stop()
    end)
  end)

  it("a read blocked before EOF wakes up with nil", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function() go:wait() end)
      local r, w = aio.open_connection(HOST, port)
      local t = aio.create_task(function() return r:read(10) end)
      aio.sleep(0.01)
      assert.is_false(t:done())
      go:set()
      assert.is_nil(t:await())
      close(w)
      stop()
    end)
  end)
end)

------------------------------------------------------------------ writer
describe("StreamWriter", function()
  it("writelines sends the concatenation", function()
    run(function()
      local got
      local _, port, stop = serve(function(r) got = r:read() end)
      local _, w = aio.open_connection(HOST, port)
      w:writelines { "a", "b\n", "", "c" }
      w:write("")
      close(w)
      stop()
      assert.equal("ab\nc", got)
    end)
  end)

  it("write_eof half-closes: the peer sees EOF and can still answer", function()
    run(function()
      local _, port, stop = serve(function(r, w)
        local req = r:read()
        w:write("reply:" .. req)
      end)
      local r, w = aio.open_connection(HOST, port)
      assert.is_true(w:can_write_eof())
      w:write("request")
      w:write_eof()
      assert.equal("reply:request", r:read())
      close(w)
      stop()
    end)
  end)

  it("write after close or write_eof raises; non-strings are bad arguments", function()
    run(function()
      local _, port, stop = serve(function(r) r:read() end)
      local _, w = aio.open_connection(HOST, port)
      assert.matches("bad argument", errof(w.write, w, 42))
      assert.matches("bad argument", errof(w.write, w, {}))
      w:write_eof()
      assert.matches("write: write_eof() was called", errof(w.write, w, "late"), 1, true)
      close(w)
      assert.matches("write: the writer is closed", errof(w.write, w, "later"), 1, true)
      assert.matches("writelines: the writer is closed", errof(w.writelines, w, { "x" }), 1, true)
      stop()
    end)
  end)

  it("reader and writer methods refuse any other self, saying to call them with ':'", function()
    run(function()
      local _, port, stop = serve(function(r) r:read() end)
      local r, w = aio.open_connection(HOST, port)
      local function refused(err, want, got)
        assert.equal(("calling '%s' on bad self (%s expected, got %s); call it with ':'")
          :format(want, want:match("^[^:]*"), got), err)
      end
      refused(errof(r.read, w, 10), "StreamReader:read", "StreamWriter")
      refused(errof(r.readline, w), "StreamReader:readline", "StreamWriter")
      refused(errof(w.write, r, "x"), "StreamWriter:write", "StreamReader")
      refused(errof(w.drain, r), "StreamWriter:drain", "StreamReader")
      for _, other in ipairs { {}, "s", 1, io.stdout, aio.Future(), aio.Queue() } do
        local mt = getmetatable(other)
        local got = type(mt) == "table" and mt.__name or type(other)
        refused(errof(r.read, other, 1), "StreamReader:read", got)
        refused(errof(w.write, other, "x"), "StreamWriter:write", got)
      end
      w:write("still fine")
      w:drain()
      close(w)
      stop()
    end)
  end)

  it("is_closing, repeated close and wait_closed", function()
    run(function()
      local _, port, stop = serve(function(r) r:read() end)
      local _, w = aio.open_connection(HOST, port)
      assert.is_false(w:is_closing())
      w:close()
      assert.is_true(w:is_closing())
      w:close()
      w:wait_closed()
      w:wait_closed()
      assert.is_true(w:is_closing())
      stop()
    end)
  end)

  it("close() lets queued data go out first", function()
    run(function()
      local n = 4 * 1024 * 1024
      local data = ("luaio-streams!!\n"):rep(n // 16)
      local got
      local _, port, stop = serve(function(r) got = r:read() end)
      local _, w = aio.open_connection(HOST, port)
      w:write(data)                         -- no drain
      close(w)
      stop()
      assert.equal(n, #got)
      assert.is_true(got == data)
    end)
  end)

  it("is a to-be-closed guard", function()
    run(function()
      local got
      local _, port, stop = serve(function(r) got = r:read() end)
      local w2
      do
        local _, w <close> = aio.open_connection(HOST, port)
        w:write("guarded")
        w2 = w
      end
      assert.is_true(w2:is_closing())
      w2:wait_closed()
      stop()
      assert.equal("guarded", got)
    end)
  end)

  it("drain with limits of 0 returns once everything is handed to the socket", function()
    run(function()
      local go = aio.Event()
      local got
      local _, port, stop = serve(function(r) go:wait(); got = r:read() end)
      local _, w = aio.open_connection(HOST, port)
      w:set_write_buffer_limits(0, 0)
      local sent = fill(w)
      local t = aio.create_task(w.drain, w)
      aio.sleep(0.02)
      assert.is_false(t:done())           -- the peer does not read yet
      assert.is_true(w:transport_buffered() > 0)
      go:set()
      t:await()
      assert.equal(0, w:transport_buffered())
      close(w)
      stop()
      assert.equal(#sent, #got)
      assert.is_true(got == sent)
    end)
  end)

  it("rejects write buffer limits with low > high", function()
    run(function()
      local _, port, stop = serve(function() end)
      local _, w = aio.open_connection(HOST, port)
      assert.matches("set_write_buffer_limits: need high >= low >= 0",
        errof(w.set_write_buffer_limits, w, 10, 20), 1, true)
      close(w)
      stop()
    end)
  end)
end)

------------------------------------------------------------------ coalescing
describe("small writes are coalesced per pass of the ready queue", function()
  -- A server whose handler hands every chunk it reads to `chunks`.
  local function recorder()
    local chunks = aio.Queue()
    local _, port, stop = serve(function(r)
      while true do
        local data = r:read(65536)
        chunks:put(data or false)
        if not data then return end
      end
    end)
    return chunks, port, stop
  end

  local function read_all(chunks)
    local got = {}
    while true do
      local c = chunks:get()
      if not c then return table.concat(got) end
      got[#got + 1] = c
    end
  end

  -- A connection to a new recorder: chunks, writer, stop, port.
  local function recording()
    local chunks, port, stop = recorder()
    local _, w = aio.open_connection(HOST, port)
    return chunks, w, stop, port
  end

  -- Closes w; everything the recorder got from it.
  local function sent_by(w, chunks)
    close(w)
    return read_all(chunks)
  end

  it("holds them until the tasks ready in the pass have run, then sends them in order", function()
    run(function()
      local chunks, w, stop = recording()
      w:write("one ")
      w:write("two ")
      w:writelines({ "three ", "four" })
      assert.equal(18, w:transport_buffered())     -- pending, not yet sent
      aio.sleep(0)                                  -- the pass ends
      assert.equal(0, w:transport_buffered())
      assert.equal("one two three four", sent_by(w, chunks))
      stop()
    end)
  end)

  it("a task that writes and then waits sends before it resumes", function()
    run(function()
      local chunks, w, stop = recording()
      local writer = aio.create_task(function()
        w:write("ping")
        aio.sleep(30)                     -- suspended long after the write
      end)
      assert.equal("ping", aio.wait_for(aio.create_task(chunks.get, chunks), 5))
      writer:cancel()
      close(w)
      stop()
    end, 10)
  end)

  it("a write that does not fit sends what is pending first, then itself, at once", function()
    run(function()
      local chunks, w, stop = recording()
      local big = ("b"):rep(9 * 1024)             -- more than 8 KiB
      w:write("head:")
      w:write(big)
      assert.equal(0, w:transport_buffered())     -- the socket took both
      w:write(":tail")
      assert.equal(5, w:transport_buffered())
      assert.equal("head:" .. big .. ":tail", sent_by(w, chunks))
      stop()
    end)
  end)

  it("many small writes of one pass never hold more than 8 KiB", function()
    run(function()
      local chunks, w, stop = recording()
      local parts = {}
      for i = 1, 2000 do
        parts[i] = ("%05d\n"):format(i)
        w:write(parts[i])
        assert.is_true(w:transport_buffered() <= 8 * 1024)
      end
      assert.equal(table.concat(parts), sent_by(w, chunks))
      stop()
    end)
  end)

  it("close() and write_eof() send the pending bytes before the end", function()
    run(function()
      local chunks, w, stop, port = recording()
      w:write("last words")
      w:close()                          -- in the same pass as the write
      assert.equal("last words", read_all(chunks))
      local r2
      r2, w = aio.open_connection(HOST, port)
      w:write("half")
      w:write_eof()
      assert.equal("half", read_all(chunks))
      assert.equal("", r2:read())        -- the server's side closed
      close(w)
      stop()
    end)
  end)

  it("a writer dropped without close() still sends what it was given", function()
    run(function()
      local chunks, port, stop = recorder()
      do
        local _, w = aio.open_connection(HOST, port)
        w:write("orphan")
      end
      collectgarbage()
      collectgarbage()
      assert.equal("orphan", read_all(chunks))
      stop()
    end)
  end)

  it("set_write_buffer_limits(0) turns it off; setting limits sends what is pending", function()
    run(function()
      local chunks, w, stop = recording()
      w:write("a")
      assert.equal(1, w:transport_buffered())
      w:set_write_buffer_limits(0)
      assert.equal(0, w:transport_buffered())     -- sent at once
      w:write("b")
      assert.equal(0, w:transport_buffered())     -- not held
      w:set_write_buffer_limits(4, 0)
      w:write("cd")                                -- fits the high-water mark
      assert.equal(2, w:transport_buffered())
      w:write("efg")                               -- 5 > 4: sent at once
      assert.equal(0, w:transport_buffered())
      assert.equal("abcdefg", sent_by(w, chunks))
      stop()
    end)
  end)

  it("small, large, pending and queued writes mixed arrive byte for byte at a slow reader", function()
    run(function()
      local got = {}
      local _, port, stop = serve(function(r)
        local n = 0
        while true do
          local data = r:read(4096)
          if not data then return end
          n = n + 1
          got[n] = data
          if n % 50 == 0 then aio.sleep(0.001) end   -- queues build up
        end
      end)
      local _, w = aio.open_connection(HOST, port)
      local rnd, sent = 12345, {}
      local function random(m)            -- the same sequence every run
        rnd = (rnd * 1103515245 + 12345) % 2147483648
        return rnd % m
      end
      for i = 1, 1500 do
        local size = random(4) == 0 and 1 + random(30000) or 1 + random(200)
        local c = string.char(65 + i % 26)
        sent[i] = ("%05d"):format(i) .. c:rep(size)
        w:write(sent[i])
        local k = random(10)
        if k == 0 then w:drain() elseif k == 1 then aio.sleep(0) end
      end
      close(w)
      stop()
      local all, want = table.concat(got), table.concat(sent)
      assert.equal(#want, #all)
      assert.is_true(all == want, "data differ from byte " .. tostring((first_diff(all, want))))
    end, 20)
  end)

  it("a script that writes and then calls os.exit() loses nothing (CLI and stock lua5.4)", function()
    run(function()
      local chunks, port, stop = recorder()
      local path = H.script([[
        local aio = require "luaio"
        aio.run(function()
          local _, w = aio.open_connection("127.0.0.1", tonumber(arg[1]))
          w:write("written just before os.exit\n")
          os.exit(0)
        end)
      ]])
      for _, lua in ipairs({ H.LUAIO, "lua5.4" }) do
        local p = aio.create_subprocess_exec(lua, { path, tostring(port) })
        assert.equal(0, p:wait())
        assert.equal("written just before os.exit\n", read_all(chunks))
      end
      os.remove(path)
      stop()
    end, 10)
  end)

  it("a write made while the loop is not running is sent when it runs again", function()
    local runner <close> = aio.Runner()
    local chunks, w, stop = runner:run(function()
      return recording()
    end)
    w:write("between runs")               -- no loop is running here
    assert.equal(12, w:transport_buffered())
    runner:run(function()
      assert.equal("between runs", aio.wait_for(aio.create_task(chunks.get, chunks), 5))
      assert.equal(0, w:transport_buffered())
      close(w)
      assert.equal(false, chunks:get())   -- EOF
      stop()
    end)
  end)

  it("once the peer is known to have closed, a write is not held: its error comes at once", function()
    run(function()
      local _, port, stop = serve(function(_, w) w:close() end)
      local r, w = aio.open_connection(HOST, port)
      assert.equal("", r:read())                    -- the peer is gone
      local ok, err = pcall(function()
        for _ = 1, 1000 do w:write("x") end        -- never suspends
      end)
      lost_peer(ok, err, "1000 writes to a closed peer without an error")
      close(w)
      stop()
    end)
  end)

  it("an error found when pending bytes are sent is raised by the next write or drain", function()
    run(function()
      local _, port, stop = serve(function(_, w)
        w:write(("z"):rep(100))
        w:close()
      end)
      -- a limit of 16: reading pauses with 32 bytes buffered, so the
      -- peer's EOF behind them is not seen and writes stay coalesced
      local _, w = aio.open_connection(HOST, port, { limit = 16 })
      aio.sleep(0.05)                               -- the peer has closed
      local ok, err = pcall(function()
        for i = 1, 100000 do
          w:write("x")                             -- pending...
          assert.is_true(w:transport_buffered() > 0)
          aio.sleep(0)                             -- ...sent when the pass ends
          if i % 10 == 0 then w:drain() end
        end
      end)
      lost_peer(ok, err, "100000 writes to a closed peer without an error")
      close(w)
      stop()
    end, 10)
  end)
end)

------------------------------------------------------------------ backpressure
describe("backpressure", function()
  it("moves 10 MiB through write+drain to a slow reader, byte for byte", function()
    run(function()
      local CHUNK, N = 64 * 1024, 160                 -- 10 MiB
      local base = {}
      for i = 0, 255 do base[#base + 1] = string.char((i * 7 + 3) % 256) end
      base = table.concat(base):rep(CHUNK // 256)
      local chunks = {}
      for i = 1, N do
        chunks[i] = ("%08d"):format(i) .. base:sub(9 + i % 13) .. base:sub(1, i % 13)
      end
      local sent = table.concat(chunks)
      assert.equal(10 * 1024 * 1024, #sent)
      local got
      local _, port, stop = serve(function(r)
        local parts, reads = {}, 0
        while true do
          local d = r:read(CHUNK)
          if not d then break end
          parts[#parts + 1] = d
          reads = reads + 1
          if reads % 4 == 0 then aio.sleep(0.001) end   -- slow reader
        end
        got = table.concat(parts)
      end)
      local _, w = aio.open_connection(HOST, port)
      local waited, maxq = 0, 0
      for i = 1, N do
        w:write(chunks[i])
        if w:transport_buffered() > 64 * 1024 then waited = waited + 1 end
        w:drain()
        maxq = math.max(maxq, w:transport_buffered())
      end
      close(w)
      stop()
      assert.is_true(waited > 0, "drain never had to wait: no backpressure seen")
      assert.is_true(maxq <= 64 * 1024, "drain returned with " .. maxq .. " bytes queued")
      assert.equal(#sent, #got)
      assert.is_true(got == sent, "data differ from byte " .. tostring((first_diff(got, sent))))
    end, 5)
  end)
end)

------------------------------------------------------------------ many clients
describe("many clients", function()
  it("serves 1000 concurrent clients, each getting its line back", function()
    run(function()
      local N = 1000
      local _, port, stop = serve(function(r, w)
        local line = r:readline()
        if line then w:write(line) end
      end, { backlog = 1024 })
      local t0 = aio.time()
      local fs = {}
      for i = 1, N do
        fs[i] = function()
          local r, w = aio.open_connection(HOST, port)
          local msg = ("client %d\n"):format(i)
          w:write(msg)
          local back = r:readline()
          close(w)
          return back == msg
        end
      end
      local results = aio.gather(fs)
      local elapsed = aio.time() - t0
      local good = 0
      for i = 1, N do if results[i] == true then good = good + 1 end end
      stop()
      assert.equal(N, good)
      assert.is_true(elapsed < 2.5, ("1000 clients took %.2f s"):format(elapsed))
    end, 6)
  end)

  it("refuses a second concurrent reader with 'already reading'", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function(_, w) go:wait(); w:write("x\n") end)
      local r, w = aio.open_connection(HOST, port)
      local t = aio.create_task(r.readline, r)
      aio.sleep(0.01)
      assert.matches("already reading", tostring(errof(r.readline, r)))
      assert.matches("already reading", tostring(errof(r.read, r, 5)))
      go:set()
      assert.equal("x\n", t:await())
      close(w)
      stop()
    end)
  end)
end)

------------------------------------------------------------------ errors
describe("connection errors", function()
  local function free_port()
    local s = aio.start_server(function() end, HOST, 0)
    local _, port = s:getsockname()
    s:close()
    s:wait_closed()
    return port
  end

  it("a refused connection raises OSError ECONNREFUSED", function()
    run(function()
      local port = free_port()
      local err = errof(aio.open_connection, HOST, port)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.is_true(aio.is(err, aio.Error))
      assert.equal("ECONNREFUSED", err.code)
      assert.equal("number", type(err.errno))
      assert.is_string(tostring(err))
    end)
  end)

  it("a unix connection to a missing path raises OSError", function()
    run(function()
      local err = errof(aio.open_unix_connection, tmppath())
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.is_true(err.code == "ENOENT" or err.code == "ECONNREFUSED", err.code)
    end)
  end)

  it("listening on a port in use raises OSError EADDRINUSE", function()
    run(function()
      local s1 = aio.start_server(function() end, HOST, 0)
      local _, port = s1:getsockname()
      local err = errof(aio.start_server, function() end, HOST, port)
      assert.is_true(aio.is(err, aio.OSError), tostring(err))
      assert.equal("EADDRINUSE", err.code)
      s1:close()
      s1:wait_closed()
    end)
  end)

  it("rejects bad host and port types with 'bad argument'", function()
    run(function()
      local f = function() end
      local cases = {
        { "open_connection", function() return aio.open_connection(nil, 80) end },
        { "open_connection", function() return aio.open_connection(42, 80) end },
        { "open_connection", function() return aio.open_connection(HOST, "x") end },
        { "open_connection", function() return aio.open_connection(HOST, 1.5) end },
        { "open_connection", function() return aio.open_connection(HOST, 70000) end },
        { "open_connection", function() return aio.open_connection(HOST, {}) end },
        { "start_server", function() return aio.start_server("nope", HOST, 0) end },
        { "start_server", function() return aio.start_server(f, 42, 0) end },
        { "start_server", function() return aio.start_server(f, HOST, -1) end },
        { "start_server", function() return aio.start_server(f, HOST, "x") end },
        { "open_unix_connection", function() return aio.open_unix_connection(nil) end },
        { "start_unix_server", function() return aio.start_unix_server(f, 42) end },
      }
      for _, c in ipairs(cases) do
        local err = tostring(errof(c[2]))
        assert.matches("bad argument #%d to '" .. c[1] .. "'", err)
      end
    end)
  end)

  it("blames the caller, not luaio's internals, for a bad argument", function()
    run(function()
      local err = tostring(errof(aio.open_connection, nil, 80))
      assert.matches("bad argument #1 to 'open_connection'", err, 1, true)
      assert.not_matches("streams", err, 1, true)
      err = tostring(errof(aio.start_server, "nope", HOST, 0))
      assert.not_matches("streams", err, 1, true)
    end)
  end)

  it("the writer's peer vanishing mid-write raises OSError, never kills the process", function()
    run(function()
      local _, port, stop = serve(function() end)   -- closes at once
      local _, w = aio.open_connection(HOST, port)
      local chunk = ("x"):rep(64 * 1024)
      local ok, err = pcall(function()
        for _ = 1, 4000 do
          w:write(chunk)
          w:drain()
        end
      end)
      lost_peer(ok, err, "256 MiB went to a closed peer without an error")
      close(w)
      stop()
    end)
  end)

  it("a server writing to a client that disconnected gets OSError", function()
    run(function()
      local got
      local _, port, stop = serve(function(_, w)
        local chunk = ("y"):rep(64 * 1024)
        got = table.pack(pcall(function()
          for _ = 1, 4000 do
            w:write(chunk)
            w:drain()
          end
        end))
      end)
      local _, w = aio.open_connection(HOST, port)
      close(w)
      stop()
      lost_peer(got[1], got[2])
    end)
  end)
end)

------------------------------------------------------------------ cancellation
describe("cancellation", function()
  local function cancelled(t)
    local ok, err = pcall(aio.await, t)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.CancelledError), tostring(err))
  end

  it("a cancelled read consumes nothing: later data goes to the next read", function()
    run(function()
      local step = aio.Queue()
      local _, port, stop = serve(function(_, w)
        while true do
          local s = step:get()
          if s == "" then return end
          w:write(s)
        end
      end)
      local r, w = aio.open_connection(HOST, port)
      -- read(n) with nothing buffered
      local t = aio.create_task(r.read, r, 10)
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      step:put("data")
      assert.equal("data", r:read(10))
      -- readexactly with part of the data buffered
      step:put("abc")
      aio.sleep(0.01)
      t = aio.create_task(r.readexactly, r, 6)
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      step:put("def")
      assert.equal("abcdef", r:readexactly(6))
      -- readline and readuntil with a partial line buffered
      step:put("par")
      aio.sleep(0.01)
      t = aio.create_task(r.readline, r)
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      step:put("tial\nx--")
      assert.equal("partial\n", r:readline())
      t = aio.create_task(r.readuntil, r, "--|")
      aio.sleep(0.01)
      t:cancel()
      cancelled(t)
      step:put("|y")
      assert.equal("x--|", r:readuntil("--|"))
      step:put("")
      assert.equal("y", r:read())
      close(w)
      stop()
    end)
  end)

  it("a read timed out by wait_for loses nothing", function()
    run(function()
      local go = aio.Event()
      local _, port, stop = serve(function(_, w) go:wait(); w:write("late\n") end)
      local r, w = aio.open_connection(HOST, port)
      local ok, err = pcall(aio.wait_for, function() return r:readline() end, 0.02)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError), tostring(err))
      go:set()
      assert.equal("late\n", r:readline())
      close(w)
      stop()
    end)
  end)

  it("a cancelled connect leaves no socket and no pending work behind", function()
    run(function()
      local _, port, stop = serve(function() end)
      local loop = aio.get_running_loop()
      local keys = { "tasks", "handles", "timers", "requests" }
      local function same(a, b)
        for _, k in ipairs(keys) do if a[k] ~= b[k] then return false end end
        return true
      end
      for _ = 1, 3 do aio.sleep(0) end
      local before = loop:stats()
      local fds = open_fds()
      local n = 0
      for _ = 1, 20 do
        local t = aio.create_task(aio.open_connection, HOST, port)
        aio.sleep(0)                     -- the task is now connecting
        t:cancel()
        local ok, _, w = pcall(aio.await, t)
        if ok then close(w) else n = n + 1 end
      end
      assert.is_true(n > 0, "no connect was ever cancelled in flight")
      local after
      for _ = 1, 50 do
        aio.sleep(0.01)
        after = loop:stats()
        if open_fds() <= fds and same(before, after) then break end
      end
      assert.is_true(open_fds() <= fds, "a cancelled connect left a socket open")
      for _, k in ipairs(keys) do assert.equal(before[k], after[k], k) end
      stop()
    end)
  end)

  it("a cancelled drain leaves the data queued: it still arrives", function()
    run(function()
      local go = aio.Event()
      local got
      local _, port, stop = serve(function(r) go:wait(); got = r:read() end)
      local _, w = aio.open_connection(HOST, port)
      w:set_write_buffer_limits(0, 0)
      local sent = fill(w)
      local t = aio.create_task(w.drain, w)
      aio.sleep(0.02)
      assert.is_false(t:done())
      t:cancel()
      cancelled(t)
      go:set()
      close(w)
      stop()
      assert.equal(#sent, #got)
      assert.is_true(got == sent, "data differ from byte " .. tostring((first_diff(got, sent))))
    end)
  end)
end)

------------------------------------------------------------------ servers
describe("Server", function()
  it("getsockname, is_serving, close, wait_closed", function()
    run(function()
      local srv = aio.start_server(function() end, HOST, 0)
      local host, port = srv:getsockname()
      assert.equal(HOST, host)
      assert.equal("integer", math.type(port))
      assert.is_true(port > 0)
      assert.is_true(srv:is_serving())
      srv:close()
      assert.is_false(srv:is_serving())
      srv:wait_closed()
      srv:close()
      srv:wait_closed()
      local err = errof(aio.open_connection, HOST, port)
      assert.equal("ECONNREFUSED", err.code)
    end)
  end)

  it("closing keeps connected clients until they close; wait_closed waits for them", function()
    run(function()
      local srv, port, stop = serve(echo)
      local r, w = aio.open_connection(HOST, port)
      w:write("before\n")
      assert.equal("before\n", r:readline())
      srv:close()
      assert.is_false(srv:is_serving())
      local waiter = aio.create_task(srv.wait_closed, srv)
      aio.sleep(0.03)
      assert.is_false(waiter:done(), "wait_closed returned with a client still connected")
      -- the connection still works; new ones are refused
      w:write("after\n")
      assert.equal("after\n", r:readline())
      local err = errof(aio.open_connection, HOST, port)
      assert.equal("ECONNREFUSED", err.code)
      assert.is_false(waiter:done())
      close(w)
      waiter:await()
      stop()
    end)
  end)

  it("wait_closed before close waits for close (asyncio 3.12)", function()
    run(function()
      local srv = aio.start_server(function() end, HOST, 0)
      local waiter = aio.create_task(srv.wait_closed, srv)
      aio.sleep(0.02)
      assert.is_false(waiter:done())
      srv:close()
      waiter:await()
    end)
  end)

  it("cancelling serve_forever closes the server", function()
    run(function()
      local srv, port, stop = serve(echo)
      local t = aio.create_task(srv.serve_forever, srv)
      aio.sleep(0.01)
      local r, w = aio.open_connection(HOST, port)
      w:write("x\n")
      assert.equal("x\n", r:readline())
      close(w)
      t:cancel()
      local ok, err = pcall(aio.await, t)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.CancelledError))
      assert.is_false(srv:is_serving())
      stop()
    end)
  end)

  it("serve_forever ends when the server is closed", function()
    run(function()
      local srv = aio.start_server(function() end, HOST, 0)
      local t = aio.create_task(srv.serve_forever, srv)
      aio.sleep(0.01)
      assert.is_false(t:done())
      srv:close()
      pcall(aio.await, t)
      assert.is_true(t:done())
      srv:wait_closed()
    end)
  end)

  it("is a to-be-closed guard", function()
    run(function()
      local keep
      do
        local s <close> = aio.start_server(function() end, HOST, 0)
        keep = s
        assert.is_true(s:is_serving())
      end
      assert.is_false(keep:is_serving())
      keep:wait_closed()
    end)
  end)

  it("loop:stats() counts an open server and connection until closed", function()
    run(function()
      local loop = aio.get_running_loop()
      local function settle()
        for _ = 1, 3 do aio.sleep(0) end
        return loop:stats().handles
      end
      local h0 = settle()
      local done = aio.Event()
      local srv = aio.start_server(function(r, w) r:read(); close(w); done:set() end, HOST, 0)
      local h1 = settle()
      local _, port = srv:getsockname()
      local _, w = aio.open_connection(HOST, port)
      local h2 = settle()
      close(w)
      srv:close()
      srv:wait_closed()
      done:wait()
      local h3 = settle()
      assert.is_true(h1 > h0 and h2 > h1,
        ("stats().handles: %d, with a server %d, with a connection %d"):format(h0, h1, h2))
      assert.equal(h0, h3)
    end)
  end)
end)

------------------------------------------------------------------ extra info
describe("get_extra_info", function()
  it("peername and sockname on TCP, both ends agree", function()
    run(function()
      local server_side = {}
      local _, port, stop = serve(function(r, w)
        server_side.peer = { w:get_extra_info("peername") }
        server_side.sock = { w:get_extra_info("sockname") }
        r:read()
      end)
      local _, w = aio.open_connection(HOST, port)
      local ph, pp = w:get_extra_info("peername")
      local sh, sp = w:get_extra_info("sockname")
      assert.equal(HOST, ph)
      assert.equal(port, pp)
      assert.equal(HOST, sh)
      assert.equal("integer", math.type(sp))
      assert.is_nil(w:get_extra_info("no such thing"))
      close(w)
      stop()
      assert.same({ HOST, sp }, server_side.peer)
      assert.same({ HOST, port }, server_side.sock)
    end)
  end)

  it("peername stays available after the writer is closed (asyncio caches it)", function()
    run(function()
      local _, port, stop = serve(function(r) r:read() end)
      local _, w = aio.open_connection(HOST, port)
      close(w)
      local h, p = w:get_extra_info("peername")
      stop()
      assert.equal(HOST, h)
      assert.equal(port, p)
    end)
  end)
end)

------------------------------------------------------------------ unix
describe("unix sockets", function()
  it("echo, and get_extra_info gives the path", function()
    local path = tmppath()
    local ok, err = pcall(run, function()
      local info = {}
      local active = aio.Event()
      local srv = aio.start_unix_server(function(r, w)
        info.sock = w:get_extra_info("sockname")
        echo(r, w)
        close(w)
        active:set()
      end, path)
      assert.equal(path, srv:getsockname())
      local r, w = aio.open_unix_connection(path)
      assert.equal(path, w:get_extra_info("peername"))
      w:write("over unix\n")
      assert.equal("over unix\n", r:readline())
      w:write_eof()
      assert.equal("", r:read())
      close(w)
      active:wait()
      srv:close()
      srv:wait_closed()
      assert.equal(path, info.sock)
    end)
    os.remove(path)
    assert(ok, err)
  end)

  it("many lines over a unix socket with the line helpers", function()
    local path = tmppath()
    local ok, err = pcall(run, function()
      local done = aio.Event()
      local srv = aio.start_unix_server(function(r, w)
        local n = 0
        for line in r:lines() do n = n + 1; w:write(line:upper() .. "\n") end
        w:write(("%d lines\n"):format(n))
        close(w)
        done:set()
      end, path)
      local r, w = aio.open_unix_connection(path)
      for i = 1, 100 do w:write("line " .. i .. "\n") end
      w:write_eof()
      local got = {}
      for line in r:lines() do got[#got + 1] = line end
      assert.equal(101, #got)
      assert.equal("LINE 1", got[1])
      assert.equal("LINE 100", got[100])
      assert.equal("100 lines", got[101])
      close(w)
      done:wait()
      srv:close()
      srv:wait_closed()
    end)
    os.remove(path)
    assert(ok, err)
  end)

  it("closing a unix server removes its socket file (asyncio 3.13)", function()
    local path = tmppath()
    local ok, err = pcall(run, function()
      local srv = aio.start_unix_server(function() end, path)
      assert.is_true(exists(path))
      srv:close()
      srv:wait_closed()
      assert.is_false(exists(path), "the socket file is still there")
    end)
    os.remove(path)
    assert(ok, err)
  end)
end)
