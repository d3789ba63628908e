-- chat.lua: a chat server; every line a client sends goes to all others.
--   build/luaio examples/chat.lua 8899      # then, in other terminals:
--   nc 127.0.0.1 8899
-- Without a port it runs a short self-test with three bots and exits.
-- expect: bob saw: alice: hi all
local aio = require "luaio"

local clients = {}                     -- writer -> name

local function broadcast(from, text)
  for w in pairs(clients) do
    if w ~= from and not w:is_closing() then
      local ok = pcall(w.write, w, text)
      if not ok then clients[w] = nil end
    end
  end
end

local function handle(reader, writer)
  writer:write("name? ")
  local name = reader:readline()
  if not name then writer:close() return end
  name = name:gsub("%s+$", "")
  clients[writer] = name
  broadcast(writer, name .. " joined\n")
  for line in reader:lines() do
    broadcast(writer, name .. ": " .. line .. "\n")
  end
  clients[writer] = nil
  broadcast(writer, name .. " left\n")
  writer:close()
end

if arg[1] then
  local server = aio.start_server(handle, "127.0.0.1", tonumber(arg[1]))
  print("chat server on port " .. select(2, server:getsockname()))
  server:serve_forever()
  return
end

-- self-test: alice, bob and carol connect; alice speaks
local server <close> = aio.start_server(handle, "127.0.0.1", 0)
local _, port = server:getsockname()
local function bot(name, say)
  local r, w = aio.open_connection("127.0.0.1", port)
  r:readuntil("? ")
  w:write(name .. "\n")
  aio.sleep(0.05)                      -- everyone has joined
  if say then w:write(say .. "\n") end
  local seen
  repeat seen = r:readline() until seen == nil or seen:find(": ", 1, true)
  w:close()
  return seen and seen:sub(1, -2)
end
local bob = aio.create_task(bot, "bob")
local carol = aio.create_task(bot, "carol")
aio.sleep(0.01)
local alice = aio.create_task(bot, "alice", "hi all")
print("bob saw: " .. bob:await())
print("carol saw: " .. carol:await())
alice:cancel()
pcall(alice.await, alice)
