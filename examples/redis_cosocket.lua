-- redis_cosocket.lua: OpenResty's Redis driver (lua-resty-redis, Debian's
-- lua-nginx-redis), unchanged, in luaio tasks through aio.ngx's cosockets:
-- 200 tasks share a pool of 10 connections, one pipeline, one pub/sub.
--
--   luaio examples/redis_cosocket.lua unix:/path/redis.sock | HOST:PORT
--   luaio examples/redis_cosocket.lua     self-test: starts redis-server on
--                                         a unix socket in a temporary
--                                         directory and stops it after
-- (apt-get install lua-nginx-redis redis-server)
-- expect: 200 tasks: counter = 200 over 10 connections %(pool_size 10%)
-- expect: pipeline: OK 1 2
-- expect: got "hello" on channel news
local aio = require "luaio"

aio.ngx.install()        -- the global ngx (and unpack) the driver expects
package.path = "/usr/share/lua/5.1/nginx/?.lua;" .. package.path
local redis = require "redis"
local ngx = aio.ngx

local TASKS, POOL = 200, 10

-- Where to connect: host and port, or "unix:/path" (and no port).
local function target(arg1)
  local host, port = arg1:match("^(.+):(%d+)$")
  if host and not arg1:match("^unix:") then return host, tonumber(port) end
  return arg1
end

local function connect(host, port)
  local red = redis:new()
  red:set_timeout(2000)                      -- ms, for connect, send, receive
  local ok, err = red:connect(host, port, { pool_size = POOL, backlog = TASKS })
  if not ok then error("connect: " .. err, 0) end
  return red
end

-- Starts redis-server in a temporary directory: -> its socket, stop().
local function start_redis()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local sock = dir .. "/redis.sock"
  local proc = aio.create_subprocess_exec("redis-server", {
    "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
    "--dir", dir, "--logfile", dir .. "/redis.log" }, { stdout = aio.DEVNULL })
  for _ = 1, 300 do                          -- wait until it answers
    local s = ngx.socket.tcp()
    if s:connect("unix:" .. sock) then s:close() break end
    aio.sleep(0.01)
  end
  return "unix:" .. sock, function()
    ngx.close_pools()
    proc:terminate()
    proc:wait()
    os.execute("rm -rf " .. dir)
  end
end

local function demo(host, port)
  -- many tasks, one pool: at most POOL connections, the rest wait for one
  local red = connect(host, port)
  red:del("counter")
  red:set_keepalive(10000, POOL)
  local tasks = {}
  for i = 1, TASKS do
    tasks[i] = aio.create_task(function()
      local r = connect(host, port)
      assert(r:incr("counter"))
      assert(r:set_keepalive(10000, POOL))  -- back to the pool, not closed
    end)
  end
  aio.gather(tasks)
  red = connect(host, port)
  local _, total = ngx.pool_count(port and (host .. ":" .. port) or host)
  print(("%d tasks: counter = %s over %d connections (pool_size %d)"):format(
    TASKS, red:get("counter"), total, POOL))

  red:init_pipeline()
  red:set("p", 0)
  red:incr("p")
  red:incr("p")
  local res = assert(red:commit_pipeline())
  print("pipeline: " .. table.concat({ tostring(res[1]), tostring(res[2]), tostring(res[3]) }, " "))
  red:set_keepalive(10000, POOL)

  -- pub/sub: a subscriber task, a publisher
  local ready = aio.Event()
  local sub = aio.create_task(function()
    local s = connect(host, port)
    s:subscribe("news")
    ready:set()
    local msg = assert(s:read_reply())
    s:close()                                -- a subscribed connection is not pooled
    return msg
  end)
  ready:wait()
  local pub = connect(host, port)
  pub:publish("news", "hello")
  pub:set_keepalive(10000, POOL)
  local msg = aio.await(sub)
  print(("got %q on channel %s"):format(msg[3], msg[2]))
end

if arg[1] then
  demo(target(arg[1]))
  ngx.close_pools()
else
  local path, stop = start_redis()
  local ok, err = pcall(demo, path)
  stop()
  if not ok then error(err, 0) end
end
