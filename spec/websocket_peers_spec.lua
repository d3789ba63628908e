-- spec/websocket_peers_spec.lua: aio.websocket against real peers, as
-- client and as server: Python's websockets and aiohttp (Debian's, run
-- with /usr/bin/python3) and Node's ws (from the npm registry, installed
-- into build/node_ws by `make node-ws` or here).  Large, fragmented,
-- binary and UTF-8 edge-case messages both ways, compressed
-- (permessage-deflate) with the peers that take it; Node's server also
-- vanishes mid-frame, stops answering (a close that is never answered)
-- and sends text that is not UTF-8.  The peers' scripts: spec/ws_peers/.
local aio = require "luaio"
local H = require "helper"

local PY = "/usr/bin/python3"
local DIR = H.ROOT .. "/spec/ws_peers/"
local NODE_WS = H.ROOT .. "/build/node_ws"

-- Node's ws: installed once (a failure fails the spec; never skipped).
local function node_ws()
  local f = io.open(NODE_WS .. "/node_modules/ws/package.json")
  if f then f:close(); return end
  assert(os.execute("npm install --silent --prefix " .. H.quote(NODE_WS) .. " ws@8 >/dev/null"),
    "npm install ws failed")
end

-- A peer program: -> process, its first line (a server's port)
local function start(cmd)
  local p = aio.create_subprocess_shell(cmd, { stdout = aio.PIPE })
  local line = aio.wait_for(function() return p.stdout:readline() end, 10 * H.SLOW)
  line = assert(line, "the peer printed no port"):gsub("%s+$", "")
  return p, line
end

local function stop(p)
  pcall(p.kill, p)
  p:wait()
end

-- fn(port) with a peer server running (stopped however fn ends).
local function with_peer(cmd, fn)
  local p, port = start(cmd)
  local ok, err = pcall(fn, port)
  stop(p)
  if not ok then error(err, 0) end
end

-- Runs a peer client to its end: -> its output (it must exit 0).
local function run_client(cmd)
  local p = aio.create_subprocess_shell(cmd, { stdout = aio.PIPE, stderr = aio.PIPE })
  local out, err = aio.wait_for(function() return p:communicate() end, 30 * H.SLOW)
  local code = p:wait()
  assert(code == 0, "peer client failed (" .. code .. "): " .. err)
  return out
end

local BIN = {}
for i = 0, 255 do BIN[#BIN + 1] = string.char(i) end
BIN = table.concat(BIN):rep(16000)                          -- 4 MB
local TEXTS = { "hello", "", "\0nul", "€ 😀 \u{FFFF} \u{10FFFF}", ("é"):rep(300000) }

-- Our client against an echo peer at url: every case both ways.
-- (compression: whether the peer takes permessage-deflate)
local function against_server(url, fragments, compression)
  local ws = aio.websocket.connect(url, { max_size = 64 << 20, fragment_size = 65536,
                                          protocols = { "chat" } })
  assert.equal("chat", ws.subprotocol)
  assert.equal(compression, ws.compression)
  for _, t in ipairs(TEXTS) do
    ws:send(t)
    local got, kind = ws:receive()
    assert.equal("text", kind)
    assert.is_true(got == t, "text of " .. #t .. " bytes")
  end
  ws:send_binary(BIN)                             -- (64 fragments)
  local got, kind = ws:receive()
  assert.equal("binary", kind)
  assert.is_true(got == BIN)
  ws:send_binary("")
  assert.same({ "", "binary" }, { ws:receive() })
  if fragments then
    ws:send("fragments")
    assert.same({ "fragmented", "text" }, { ws:receive() })
  end
  ws:ping("still there?")
  ws:send("close:4002:later")
  assert.is_nil(ws:receive())
  assert.equal(4002, ws.close_code)
  assert.equal("later", ws.close_reason)
  assert.is_true(ws:is_closed())
end

-- Our echo server for a peer client: -> server, url, the closes seen
local function our_server()
  local closes = {}
  local srv = aio.websocket.serve(function(ws)
    local ok, err = pcall(function()
      for msg, kind in ws:messages() do
        if kind == "text" then ws:send(msg) else ws:send_binary(msg) end
      end
    end)
    closes[#closes + 1] = (ws.compression or "plain") .. " "
      .. (ok and (ws.close_code .. " " .. ws.close_reason) or err.code)
  end, "127.0.0.1", 0, { max_size = 8 << 20, protocols = { "chat" }, fragment_size = 100000 })
  local _, port = srv:getsockname()
  return srv, "ws://127.0.0.1:" .. port .. "/ws", closes
end

local function fds(fn) return H.closes_fds(fn, 60, H.warm_up) end

describe("aio.websocket against real peers", function()
  setup(node_ws)

  it("Python websockets server", function()
    fds(function()
      with_peer("exec " .. PY .. " " .. DIR .. "py_server.py", function(port)
        against_server("ws://127.0.0.1:" .. port .. "/", true, "deflate")
      end)
    end)
  end)

  it("aiohttp server", function()
    fds(function()
      with_peer("exec " .. PY .. " " .. DIR .. "aiohttp_server.py", function(port)
        against_server("ws://127.0.0.1:" .. port .. "/ws", false, "deflate")
      end)
    end)
  end)

  it("Node ws server, one that vanishes mid-frame, never answers the close, sends bad UTF-8", function()
    fds(function()
      with_peer("NODE_PATH=" .. NODE_WS .. "/node_modules exec node " .. DIR .. "node_server.js",
          function(port)
      local url = "ws://127.0.0.1:" .. port .. "/"
      against_server(url, true, nil)                    -- (ws: no deflate by default)
      local ws = aio.websocket.connect(url)
      ws:send("vanish")
      local err = H.errof(ws.receive, ws)
      assert.equal("WebSocketError: receive: the connection closed without a close frame (1006)",
        tostring(err))
      ws = aio.websocket.connect(url, { close_timeout = 0.3 })
      ws:send("hang")
      aio.sleep(0.05)
      local t0 = aio.time()
      ws:close(1000, "bye")
      assert.is_true(aio.time() - t0 >= 0.29)
      assert.equal(1006, ws.close_code)
      ws = aio.websocket.connect(url)
      ws:send("invalid")
      err = H.errof(ws.receive, ws)
      assert.equal("WebSocketError: receive: text message is not UTF-8 (1007)", tostring(err))
      end)
    end)
  end)

  it("Python websockets client", function()
    fds(function()
      local srv, url, closes = our_server()
      local out = run_client(PY .. " " .. DIR .. "py_client.py " .. url)
      assert.equal("ok 10\n", out)
      srv:shutdown()
      assert.same({ "deflate 4001 bye" }, closes)
    end)
  end)

  it("aiohttp client", function()
    fds(function()
      local srv, url, closes = our_server()
      local out = run_client(PY .. " " .. DIR .. "aiohttp_client.py " .. url)
      assert.equal("ok 6\n", out)
      srv:shutdown()
      assert.same({ "plain 4001 bye" }, closes)          -- (aiohttp offers no deflate)
    end)
  end)

  it("Node ws client, with bad UTF-8 (1007) and a message over max_size (1009)", function()
    fds(function()
      local srv, url, closes = our_server()
      local out = run_client("NODE_PATH=" .. NODE_WS .. "/node_modules node " .. DIR
        .. "node_client.js " .. url)
      assert.equal("ok 9\ninvalid 1007\nbig 1009\n", out)
      srv:shutdown()
      assert.same({ "deflate 4001 bye", "deflate 1007", "deflate 1009" }, closes)
    end)
  end)
end)
