-- ws_chat.lua: a chat server on WebSockets (aio.websocket) -- one process
-- serves the HTML page and the WebSocket endpoint on the same port.
--   build/luaio examples/ws_chat.lua 8080
-- then open http://127.0.0.1:8080/ in two browser windows (or tabs), pick
-- a name in each and type: every message goes to everyone in the room.
-- From a shell: `python3 -m websockets ws://127.0.0.1:8080/chat?name=sh`
-- (Debian's python3-websockets) joins as "sh".
-- Without a port it runs a short self-test (two clients talk, one
-- leaves) and exits.
-- expect: ann joined %(1 here%)
-- expect: bob joined %(2 here%)
-- expect: ann got: bob: hi ann
-- expect: bob got: ann: hello bob
-- expect: ann left %(1 here%)
-- expect: GET / %-> 200 text/html
-- expect: done
local aio = require "luaio"

local PAGE = [[<!doctype html>
<meta charset="utf-8"><title>luaio chat</title>
<style>body{font:16px sans-serif;max-width:40em;margin:2em auto}
#log{height:20em;overflow:auto;border:1px solid #ccc;padding:.5em;white-space:pre-wrap}</style>
<h1>luaio chat</h1>
<div id="log"></div>
<form id="f"><input id="msg" size="50" autocomplete="off" placeholder="message"> <button>send</button></form>
<script>
const name = prompt("your name?", "guest") || "guest";
const ws = new WebSocket(`ws://${location.host}/chat?name=${encodeURIComponent(name)}`);
const log = document.getElementById("log"), msg = document.getElementById("msg");
function show(t) { log.textContent += t + "\n"; log.scrollTop = log.scrollHeight; }
ws.onmessage = (e) => show(e.data);
ws.onclose = (e) => show(`(closed: ${e.code} ${e.reason})`);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault(); if (msg.value) ws.send(msg.value); msg.value = "";
};
</script>
]]

------------------------------------------------------------------ the room
local room = {}              -- ws -> name
local count = 0

-- Sends text to everyone; a member whose connection is lost is skipped
-- (its own task sees the end and leaves).
local function broadcast(text)
  for ws in pairs(room) do
    if ws.state == "open" then pcall(ws.send, ws, text) end
  end
end

local function chat(ws, name)
  room[ws], count = name, count + 1
  broadcast(("%s joined (%d here)"):format(name, count))
  local ok, err = pcall(function()
    for text in ws:messages() do
      if #text > 1000 then text = text:sub(1, 1000) .. "..." end
      broadcast(name .. ": " .. text)
    end
  end)
  room[ws], count = nil, count - 1
  broadcast(("%s left (%d here)"):format(name, count))
  if not ok then print("(" .. name .. ": " .. tostring(err) .. ")") end
end

local function handler(req)
  if req.path == "/" then
    return 200, { ["Content-Type"] = "text/html; charset=utf-8" }, PAGE
  elseif req.path == "/chat" then
    local ws <close> = req:websocket({ max_size = 64 * 1024 })
    local name = (req.query.name or "guest"):gsub("[^%w_-]", ""):sub(1, 20)
    chat(ws, name ~= "" and name or "guest")
    return
  end
  return 404, {}, "not here\n"
end

local port = tonumber(arg and arg[1])
if port then
  local server = aio.http.serve(handler, "0.0.0.0", port)
  print(("chat on http://127.0.0.1:%d/ (Ctrl-C stops it)"):format(port))
  server:serve_forever()
  return
end

------------------------------------------------------------------ self-test
local server = aio.http.serve(handler, "127.0.0.1", 0)
local _, p = server:getsockname()
local base = "ws://127.0.0.1:" .. p .. "/chat?name="

local ann = aio.websocket.connect(base .. "ann")
print((ann:receive()))
local bob = aio.websocket.connect(base .. "bob")
print((ann:receive()))
assert(bob:receive() == "bob joined (2 here)")
bob:send("hi ann")
print("ann got: " .. ann:receive())
assert(bob:receive() == "bob: hi ann")
ann:send("hello bob")
print("bob got: " .. bob:receive())
ann:close()
print((bob:receive()))
bob:close()

local r, w = aio.open_connection("127.0.0.1", p)
w:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
local head = r:readuntil("\r\n\r\n")
print(("GET / -> %s %s"):format(head:match("^HTTP/1%.1 (%d+)"),
  head:match("\r\nContent%-Type: ([^;\r]+)")))
w:close()
server:shutdown()
print("done")
