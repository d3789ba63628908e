-- spec/websocket_spec.lua: aio.websocket against itself and against raw
-- sockets that send what a WebSocket peer must not (the close codes), a
-- peer that vanishes mid-frame, one that never answers the close,
-- cancellation inside receive and send, the handshake's refusals.
local aio = require "luaio"
local core = require "luaio.core"
local H = require "helper"

-- An echo server (handler(ws, req) optional); -> server, port
local function echo_server(handler, opts)
  local srv = aio.http.serve(function(req)
    if req.path == "/plain" then return 200, {}, "plain" end
    local ws = req:websocket(opts)
    if handler then return handler(ws, req) end
    for msg, kind in ws:messages() do
      if kind == "text" then ws:send(msg) else ws:send_binary(msg) end
    end
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  return srv, port
end

local function head_of(r)
  return r:readuntil("\r\n\r\n")
end

-- A raw client after its handshake: r, w (frames are ours to build).
local function raw_client(port, extra)
  local r, w = aio.open_connection("127.0.0.1", port)
  w:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    .. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    .. (extra or "") .. "\r\n")
  local head = head_of(r)
  return r, w, head
end

-- The next frame read raw: opcode, payload (what follows it is kept
-- for the next call).
local pending = setmetatable({}, { __mode = "k" })
local function raw_frame(r, masked)
  local buf = pending[r] or ""
  while true do
    local op, _, payload, nxt = core.ws_parse(buf, 1, 1 << 30, masked)
    if op then
      pending[r] = buf:sub(nxt)
      return op, payload
    end
    assert(op == nil, payload)
    local data = r:read(65536)
    if data == nil then return nil end
    buf = buf .. data
  end
end

-- A raw server: handler(r, w) after it answered the handshake.
local function raw_server(handler)
  local srv = aio.start_server(function(r, w)
    local head = head_of(r)
    local key = head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: ([^\r]+)")
    w:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Accept: " .. core.ws_accept(key) .. "\r\n\r\n")
    handler(r, w)
  end, "127.0.0.1", 0)
  local _, port = srv:getsockname()
  return srv, port
end

-- What the server's handler raised for the frames a raw client sends,
-- and the close frame's code the client got.
local function violation(frames, opts)
  local got
  local srv, port = echo_server(function(ws)
    local ok, err = pcall(ws.receive, ws)
    got = ok and "no error" or err
  end, opts)
  local r, w = raw_client(port)
  for _, f in ipairs(frames) do w:write(f) end
  local op, payload = raw_frame(r, false)
  assert.equal(8, op)
  local code = string.unpack(">I2", payload)
  w:close()
  srv:shutdown()
  return got, code
end

local function frame(op, fin, payload, masked, rsv)
  if masked == nil then masked = true end
  return core.ws_build(op, fin, payload, masked, rsv)
end

local function fds(fn, limit) return H.closes_fds(fn, limit or 5, H.warm_up) end

describe("aio.websocket", function()
  it("echoes text and binary messages, large and fragmented, both ways", function()
    fds(function()
      local srv, port = echo_server(nil, { max_size = 8 << 20, fragment_size = 1000 })
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/ws",
        { max_size = 8 << 20, fragment_size = 4096 })
      ws:send("hello")
      assert.same({ "hello", "text" }, { ws:receive() })
      local bin = {}
      for i = 0, 255 do bin[#bin + 1] = string.char(i) end
      bin = table.concat(bin):rep(20000)                   -- 5 MB
      ws:send_binary(bin)
      local got, kind = ws:receive()
      assert.equal("binary", kind)
      assert.is_true(got == bin)
      local text = ("añ€😀"):rep(30000)
      ws:send(text)
      assert.is_true(ws:receive() == text)
      ws:send("")
      assert.same({ "", "text" }, { ws:receive() })
      ws:close(4000, "done")
      assert.equal(4000, ws.close_code)
      assert.is_true(ws:is_closed())
      srv:shutdown()
    end, 20)
  end)

  it("ends messages() at the peer's close, whose code and reason stay readable", function()
    fds(function()
      local srv, port = echo_server(function(ws)
        ws:send("one"); ws:send("two")
        ws:close(1001, "going away")
        assert.equal(1001, ws.close_code)
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/ws")
      local got = {}
      for msg, kind in ws:messages() do got[#got + 1] = msg .. "/" .. kind end
      assert.same({ "one/text", "two/text" }, got)
      assert.equal(1001, ws.close_code)
      assert.equal("going away", ws.close_reason)
      assert.equal("closed", ws.state)
      assert.is_nil(ws:receive())
      assert.equal("send: the connection is closed", H.errof(ws.send, ws, "x"))
      srv:shutdown()
    end)
  end)

  it("answers pings with pongs, unmasked from a server, masked from a client", function()
    fds(function()
      local srv, port = echo_server()
      local r, w, head = raw_client(port)
      assert.truthy(head:find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1, true))
      w:write(frame(9, true, "are you there"))
      assert.same({ 10, "are you there" }, { raw_frame(r, false) })
      w:write(frame(1, false, "frag") .. frame(9, true, "") .. frame(0, true, "ments"))
      assert.same({ 10, "" }, { raw_frame(r, false) })
      assert.same({ 1, "fragments" }, { raw_frame(r, false) })
      w:write(frame(8, true, string.pack(">I2", 1000)))
      assert.same({ 8, string.pack(">I2", 1000) }, { raw_frame(r, false) })
      assert.is_nil(r:read(1))                      -- and the server closed
      w:close()
      srv:shutdown()
      -- a client masks: a raw server sees masked frames
      local seen
      local rs, rport = raw_server(function(rr, ww)
        seen = { raw_frame(rr, true) }
        ww:write(frame(9, true, "ping!", false))
        seen[3] = { raw_frame(rr, true) }
        ww:write(frame(8, true, string.pack(">I2", 1000), false))
        raw_frame(rr, true)
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. rport .. "/")
      ws:send("masked")
      assert.is_nil(ws:receive())
      assert.same({ 1, "masked", { 10, "ping!" } }, seen)
      assert.equal(1000, ws.close_code)
      rs:close()
      rs:wait_closed()
    end)
  end)

  it("closes with 1002 for frames the protocol forbids", function()
    fds(function()
      local cases = {
        { { frame(1, true, "x", false) }, "receive: unmasked frame from a client (1002)" },
        { { frame(3, true, "x") }, "receive: unknown opcode (1002)" },
        { { frame(1, true, "x", true, 4) }, "receive: reserved bits set (1002)" },
        { { frame(9, true, ("p"):rep(126)) }, "receive: control frame over 125 bytes (1002)" },
        { { frame(9, false, "p") }, "receive: fragmented control frame (1002)" },
        { { frame(0, true, "x") }, "receive: continuation frame without a message (1002)" },
        { { frame(1, false, "x"), frame(1, true, "y") },
          "receive: new message inside a fragmented one (1002)" },
        { { frame(8, true, "\3") }, "receive: close frame with a 1-byte payload (1002)" },
        { { frame(8, true, string.pack(">I2", 1005)) }, "receive: invalid close code 1005 (1002)" },
      }
      for _, case in ipairs(cases) do
        local err, code = violation(case[1])
        assert.equal(case[2], tostring(err):gsub("^WebSocketError: ", ""), nil)
        assert.is_true(aio.is(err, aio.websocket.WebSocketError))
        assert.equal(1002, err.code)
        assert.equal(1002, code)
      end
    end, 10)
  end)

  it("closes with 1007 for text that is not UTF-8 and 1009 for messages over max_size", function()
    fds(function()
      for _, bad in ipairs { "\xff", "\xed\xa0\x80", "\xc0\xaf", "ok\xe2\x82" } do
        local err, code = violation({ frame(1, true, bad) })
        assert.equal("WebSocketError: receive: text message is not UTF-8 (1007)", tostring(err))
        assert.equal(1007, code)
      end
      -- split inside a character, across fragments: valid once whole
      local srv, port = echo_server()
      local r, w = raw_client(port)
      w:write(frame(1, false, "\xe2\x82") .. frame(0, true, "\xac"))
      assert.same({ 1, "€" }, { raw_frame(r, false) })
      w:close(); srv:shutdown()
      local err, code = violation({ frame(8, true, string.pack(">I2", 1000) .. "\xff") })
      assert.equal("WebSocketError: receive: close reason is not UTF-8 (1007)", tostring(err))
      assert.equal(1007, code)
      err, code = violation({ frame(2, true, ("x"):rep(101)) }, { max_size = 100 })
      assert.equal("WebSocketError: receive: message larger than max_size (100 bytes) (1009)", tostring(err))
      assert.equal(1009, code)
      err, code = violation({ frame(2, false, ("x"):rep(60)), frame(0, true, ("x"):rep(41)) },
        { max_size = 100 })
      assert.equal("WebSocketError: receive: message larger than max_size (100 bytes) (1009)", tostring(err))
      assert.equal(1009, code)
    end, 10)
  end)

  it("raises 1006 when the peer vanishes mid-frame", function()
    fds(function()
      local rs, port = raw_server(function(_, w)
        w:write(frame(2, true, ("z"):rep(1000), false):sub(1, 500))
        w:close()
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/")
      local err = H.errof(ws.receive, ws)
      assert.equal("WebSocketError: receive: the connection closed without a close frame (1006)",
        tostring(err))
      assert.equal(1006, err.code)
      assert.equal(1006, ws.close_code)
      assert.is_nil(ws:receive())
      rs:close()
      rs:wait_closed()
    end)
  end)

  it("closes after close_timeout when the peer never answers the close", function()
    fds(function()
      local got
      local rs, port = raw_server(function(r)
        got = { raw_frame(r, true) }
        r:read()                                       -- never answers (until EOF)
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/", { close_timeout = 0.2 })
      local t0 = aio.time()
      ws:close(1000, "bye")
      local took = aio.time() - t0
      assert.is_true(took >= 0.19 and took < 1.5, tostring(took))
      assert.same({ 8, string.pack(">I2", 1000) .. "bye" }, got)
      assert.equal(1006, ws.close_code)
      assert.is_true(ws:is_closed())
      rs:close()
      rs:wait_closed()
    end)
  end)

  it("a cancelled receive keeps what it read: the next one gets the whole message", function()
    fds(function()
      local release = aio.Event()
      local rs, port = raw_server(function(r, w)
        local f = frame(1, true, ("m"):rep(3000), false)
        w:write(f:sub(1, 1500))
        release:wait()
        w:write(f:sub(1501))
        raw_frame(r, true)                             -- the close
        w:write(frame(8, true, "", false))
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/")
      local t = aio.spawn(ws.receive, ws)
      H.spin(20)
      t:cancel()
      assert.is_true(aio.is(H.errof(aio.await, t), aio.CancelledError))
      release:set()
      assert.same({ ("m"):rep(3000), "text" }, { ws:receive() })
      ws:close()
      assert.equal(1005, ws.close_code)
      rs:close()
      rs:wait_closed()
    end)
  end)

  it("a cancelled send leaves the frame whole: the peer gets it, the connection goes on", function()
    fds(function()
      local go = aio.Event()
      local got = {}
      local srv, port = echo_server(function(ws)
        go:wait()
        for msg in ws:messages() do got[#got + 1] = #msg end
      end, { max_size = 64 << 20 })
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/ws", { compression = false })
      local big = ("b"):rep(16 << 20)
      local t = aio.spawn(ws.send_binary, ws, big)
      H.spin(5)
      assert.is_false(t:done())                       -- waiting in its drain
      t:cancel()
      assert.is_true(aio.is(H.errof(aio.await, t), aio.CancelledError))
      go:set()
      ws:send("after")
      ws:close()
      assert.same({ 16 << 20, 5 }, got)
      srv:shutdown()
    end, 20)
  end)

  it("a close while another task receives ends that receive with nil", function()
    fds(function()
      local srv, port = echo_server()
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/ws")
      local t = aio.spawn(ws.receive, ws)
      H.spin(5)
      assert.equal("receive: another task is already receiving", H.errof(ws.receive, ws):match("receive: .*"))
      ws:close(1000)
      assert.is_nil(aio.await(t))
      assert.equal(1000, ws.close_code)
      srv:shutdown()
      -- the receiving task meets the end of the connection instead: the
      -- close does not wait for its close_timeout
      local rs, rport = raw_server(function(r, w)
        raw_frame(r, true)
        w:write(frame(2, true, "xx", false):sub(1, 3))   -- half a frame, then gone
      end)
      ws = aio.websocket.connect("ws://127.0.0.1:" .. rport .. "/", { close_timeout = 10 })
      t = aio.spawn(ws.receive, ws)
      H.spin(5)
      local t0 = aio.time()
      ws:close()
      assert.is_true(aio.time() - t0 < 2)
      assert.equal(1006, H.errof(aio.await, t).code)
      rs:close()
      rs:wait_closed()
    end)
  end)

  it("negotiates a subprotocol, checks the origin, refuses what is not a handshake", function()
    fds(function()
      local srv, port = echo_server(function(ws) ws:send(tostring(ws.subprotocol)); ws:close() end,
        { protocols = { "v2", "v1" },
          origin = function(origin) return origin == "http://good" end })
      local url = "ws://127.0.0.1:" .. port .. "/ws"
      local ws = aio.websocket.connect(url, { protocols = { "v1", "v2" }, origin = "http://good",
        headers = { ["X-Test"] = "1" } })
      assert.equal("v2", ws.subprotocol)
      assert.equal("v2", ws:receive())
      assert.is_nil(ws:receive())
      ws = aio.websocket.connect(url, { origin = "http://good" })
      assert.is_nil(ws.subprotocol)
      assert.equal("nil", ws:receive())
      ws:close()
      local err = H.errof(aio.websocket.connect, url, { origin = "http://evil" })
      assert.equal("WebSocketError: connect: the server answered 403 Forbidden", tostring(err))
      assert.equal(403, err.status)
      err = H.errof(aio.websocket.connect, "ws://127.0.0.1:" .. port .. "/plain")
      assert.equal("WebSocketError: connect: the server answered 200 OK", tostring(err))
      local r, w = aio.open_connection("127.0.0.1", port)
      w:write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
      assert.truthy(head_of(r):find("^HTTP/1.1 400 Bad Request"))
      w:close()
      srv:shutdown()
    end, 5)
  end)

  it("gives the handshake a deadline, and checks its arguments", function()
    fds(function()
      local rs = aio.start_server(function(r) r:read() end, "127.0.0.1", 0)
      local _, port = rs:getsockname()
      local t0 = aio.time()
      local err = H.errof(aio.websocket.connect, "ws://127.0.0.1:" .. port .. "/", { timeout = 0.2 })
      assert.is_true(aio.is(err, aio.TimeoutError))
      assert.is_true(aio.time() - t0 < 1.5)
      rs:close()
      rs:wait_closed()
      assert.equal("bad argument #1 to 'connect' (string expected, got nil)",
        H.errof(aio.websocket.connect):match("bad argument.*"))
      assert.equal("connect: the URL's scheme must be ws or wss, got 'http'",
        H.errof(aio.websocket.connect, "http://x/"):match("connect: .*"))
      assert.equal("connect: option 'max_size' must be a positive integer",
        H.errof(aio.websocket.connect, "ws://x/", { max_size = 0 }):match("connect: .*"))
    end)
  end)

  it("checks what it sends", function()
    fds(function()
      local srv, port = echo_server()
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/ws")
      assert.equal("bad argument #1 to 'send' (text is not UTF-8)",
        H.errof(ws.send, ws, "\xff"):match("bad argument.*"))
      assert.equal("bad argument #1 to 'send_binary' (string expected, got number)",
        H.errof(ws.send_binary, ws, 1):match("bad argument.*"))
      assert.equal("bad argument #1 to 'ping' (more than 125 bytes)",
        H.errof(ws.ping, ws, ("p"):rep(126)):match("bad argument.*"))
      assert.equal("bad argument #1 to 'close' (close code expected, got 1005)",
        H.errof(ws.close, ws, 1005):match("bad argument.*"))
      ws:ping("x")
      ws:send("still open")
      assert.equal("still open", ws:receive())
      ws:close()
      srv:shutdown()
    end)
  end)
  it("the HTTP server leaves a taken-over connection alone but for its shutdown (1001)", function()
    fds(function()
      local srv = aio.http.serve(function(req)
        local ws = req:websocket()
        for msg in ws:messages() do ws:send(msg) end
      end, "127.0.0.1", 0, { keepalive_timeout = 0.05, head_timeout = 0.05, write_timeout = 0.05 })
      local _, port = srv:getsockname()
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/")
      aio.sleep(0.4)
      ws:send("still here")
      assert.equal("still here", ws:receive())
      ws:close()
      assert.equal(1000, ws.close_code)
      -- shutdown: the WebSocket gets 1001; a peer that answers ends it
      ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/")
      srv:close(5)
      assert.is_nil(ws:receive())
      assert.same({ 1001, "server shutdown" }, { ws.close_code, ws.close_reason })
      srv:wait_closed()
      -- one that does not answer is cut off at the shutdown deadline
      srv = aio.http.serve(function(req)
        local w = req:websocket()
        for msg in w:messages() do w:send(msg) end
      end, "127.0.0.1", 0)
      _, port = srv:getsockname()
      local r, w = raw_client(port)
      srv:close(0.2)
      assert.same({ 8, string.pack(">I2", 1001) .. "server shutdown" }, { raw_frame(r, false) })
      local t0 = aio.time()
      assert.is_nil(r:read(1))
      assert.is_true(aio.time() - t0 > 0.1)
      w:close()
      srv:wait_closed()
    end)
  end)
  it("wss://: over TLS, the server's certificate verified", function()
    local dir = H.tmpdir()
    assert(os.execute("cd " .. H.quote(dir) .. " && openssl req -x509 -newkey ec"
      .. " -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout srv.key -out srv.pem -days 1"
      .. " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1"))
    fds(function()
      local sctx = aio.ssl.create_default_context("client_auth")
      sctx:load_cert_chain(dir .. "/srv.pem", dir .. "/srv.key")
      local srv = aio.websocket.serve(function(ws)
        for msg in ws:messages() do ws:send(msg .. "!") end
      end, "127.0.0.1", 0, { ssl = sctx })
      local _, port = srv:getsockname()
      local url = "wss://127.0.0.1:" .. port .. "/"
      local ws = aio.websocket.connect(url, { ssl = aio.ssl.create_default_context("server_auth",
        { cafile = dir .. "/srv.pem" }) })
      ws:send(("secret"):rep(10000))
      assert.equal(("secret"):rep(10000) .. "!", ws:receive())
      ws:close()
      assert.equal(1000, ws.close_code)
      -- the system's CAs do not know this certificate
      local err = H.errof(aio.websocket.connect, url)
      assert.is_true(aio.is(err, aio.SSLError), tostring(err))
      srv:shutdown()
    end)
    H.rmrf(dir)
  end)

  it("a cancelled close closes the connection at once", function()
    fds(function()
      local rs, port = raw_server(function(r)
        raw_frame(r, true)
        r:read()                                       -- never answers (until EOF)
      end)
      local ws = aio.websocket.connect("ws://127.0.0.1:" .. port .. "/", { close_timeout = 10 })
      local t = aio.spawn(ws.close, ws)
      H.spin(10)
      assert.equal("closing", ws.state)
      t:cancel()
      assert.is_true(aio.is(H.errof(aio.await, t), aio.CancelledError))
      assert.equal("closed", ws.state)
      assert.equal(1006, ws.close_code)
      rs:close()
      rs:wait_closed()
    end)
  end)
  describe("permessage-deflate", function()
    local zlib = require "zlib"
    local function deflated(data)
      local out = zlib.deflate(6, -15)(data, "sync")
      return (out:gsub("\0\0\255\255$", ""))
    end

    it("is negotiated when both sides offer it, and not when one does not", function()
      fds(function()
        local seen = {}
        local srv, port = echo_server(function(ws)
          seen[#seen + 1] = tostring(ws.compression)
          for msg in ws:messages() do ws:send(msg) end
        end, { max_size = 64 << 20 })
        local url = "ws://127.0.0.1:" .. port .. "/ws"
        local ws = aio.websocket.connect(url, { max_size = 64 << 20 })
        assert.equal("deflate", ws.compression)
        local text = ("all work and no play "):rep(500000)       -- 10 MB
        for _ = 1, 3 do                                           -- (contexts kept)
          ws:send(text)
          assert.is_true(ws:receive() == text)
        end
        ws:send("")
        assert.same({ "", "text" }, { ws:receive() })
        ws:close()
        ws = aio.websocket.connect(url, { compression = false })
        assert.is_nil(ws.compression)
        ws:send("plain")
        assert.equal("plain", ws:receive())
        ws:close()
        local r, w, head = raw_client(port, "Sec-WebSocket-Extensions: x-other, permessage-deflate;"
          .. " server_max_window_bits=10; server_no_context_takeover; client_max_window_bits\r\n")
        assert.truthy(head:find("\r\nSec-WebSocket-Extensions: permessage-deflate; "
          .. "server_no_context_takeover; server_max_window_bits=10\r\n", 1, true), head)
        w:write(frame(1, true, deflated("squeezed"), true, 4))
        local op, payload = raw_frame(r, false)
        assert.equal(1, op)
        assert.equal("squeezed", zlib.inflate(-15)(payload .. "\0\0\255\255"))
        w:close()
        srv:shutdown()
        assert.same({ "deflate", "nil", "deflate" }, seen)
        assert.equal("connect: option 'compression' must be \"deflate\" or false",
          H.errof(aio.websocket.connect, url, { compression = "gzip" }):match("connect: .*"))
      end, 20)
    end)

    it("closes with 1009 for a small message that inflates past max_size, 1002/1007 for bad ones", function()
      fds(function()
        local ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        local function violation_deflate(frames, opts)
          local got
          local srv, port = echo_server(function(ws)
            local ok, err = pcall(ws.receive, ws)
            got = ok and "no error" or tostring(err)
          end, opts)
          local r, w = raw_client(port, ext)
          for _, f in ipairs(frames) do w:write(f) end
          local op, payload = raw_frame(r, false)
          assert.equal(8, op)
          w:close()
          srv:shutdown()
          return got, (string.unpack(">I2", payload))
        end
        local bomb = deflated(("\0"):rep(10 << 20))
        assert.is_true(#bomb < 20000)
        assert.same({ "WebSocketError: receive: message larger than max_size (1048576 bytes) (1009)", 1009 },
          { violation_deflate({ frame(2, true, bomb, true, 4) }) })
        assert.same({ "WebSocketError: receive: invalid compressed data (1007)", 1007 },
          { violation_deflate({ frame(2, true, "\255\255\255", true, 4) }) })
        assert.same({ "WebSocketError: receive: reserved bits set (1002)", 1002 },
          { violation_deflate({ frame(9, true, "", true, 4) }) })
        assert.same({ "WebSocketError: receive: reserved bits set (1002)", 1002 },
          { violation_deflate({ frame(1, false, "a", true, 4), frame(0, true, "b", true, 4) }) })
      end, 20)
    end)
  end)
end)
