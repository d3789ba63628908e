-- luaio.ngx_pool: the connection pools behind the cosockets' setkeepalive
-- (luaio.ngx_tcp says how they are used), as OpenResty keeps them: one
-- pool per key ("host:port", "unix:/path" or connect's `pool` option)
-- and per loop (its streams belong to that loop).
--
-- A pool holds idle connections, the most recently put back on top, at
-- most `size` of them (putting one more back closes the longest idle),
-- each closed by its own timer when it has been idle for its keepalive
-- timeout.  It counts the connections it owns, busy or idle, from the
-- moment a connect takes a slot to the moment the connection is closed;
-- with a backlog (connect's `backlog` option) at most `size` exist at a
-- time and up to `backlog` connects wait for one, first come first
-- served.  A connection that is taken out is checked first: one the
-- peer closed, reset or sent something to while it was idle is closed,
-- never handed out.
local aio = require "luaio"

local M = {}

local pools = setmetatable({}, { __mode = "k" })   -- loop -> key -> pool

local function loop_pools()
  local loop = aio.get_running_loop()
  local t = pools[loop]
  if not t then
    t = {}
    pools[loop] = t
  end
  return t
end

--- get(key) -> the running loop's pool for key, or nil
function M.get(key)
  return loop_pools()[key]
end

--- create(key, size, backlog) -> a new pool (backlog nil: no limit)
function M.create(key, size, backlog)
  local pool = { key = key, size = size, backlog = backlog, connections = 0,
                 leaked = 0, idle = {}, waiters = {} }
  loop_pools()[key] = pool
  return pool
end

-- Wakes the first connect waiting for this pool, if any.
local function wake(pool)
  local waiters = pool.waiters
  while #waiters > 0 do
    local fut = table.remove(waiters, 1)
    if not fut:done() then
      fut:set_result(true)
      return
    end
  end
end

--- leaked(pool): a connection it counted was dropped without close()
--- (its socket collected: the stream gives its descriptor back itself);
--- the slot comes back at the pool's next connect
function M.leaked(pool)
  pool.leaked = pool.leaked + 1
end

--- release(pool): a connection it counted is gone
function M.release(pool)
  pool.connections = pool.connections - 1
  wake(pool)
end

local function drop(entry)
  if entry.timer then entry.timer:cancel() end
  entry.timer = nil
  pcall(entry.w.close, entry.w)
  M.release(entry.pool)
end

local function remove(list, v)
  for i = 1, #list do
    if list[i] == v then
      table.remove(list, i)
      return true
    end
  end
  return false
end

local function expire(entry)
  entry.timer = nil
  if remove(entry.pool.idle, entry) then drop(entry) end
end

-- Usable: nothing came from the peer while it was idle (no data, no EOF,
-- no error) and it is not closing.
local function healthy(entry)
  local r, w = entry.r, entry.w
  return not r:at_eof() and r:_buffered() == 0 and not w:is_closing()
end

--- take(pool) -> an idle connection {r =, w =, reused =, tls =} or nil
function M.take(pool)
  local idle = pool.idle
  while #idle > 0 do
    local entry = idle[#idle]
    idle[#idle] = nil
    if healthy(entry) then
      if entry.timer then entry.timer:cancel() end
      entry.timer = nil
      return entry
    end
    drop(entry)
  end
  return nil
end

--- put(pool, r, w, reused, idle_ms, tls): r, w (counted by pool) go idle
function M.put(pool, r, w, reused, idle_ms, tls)
  local idle = pool.idle
  if #idle >= pool.size then drop(table.remove(idle, 1)) end
  local entry = { r = r, w = w, reused = reused, pool = pool, tls = tls }
  if idle_ms > 0 then
    entry.timer = aio.get_running_loop():call_later(idle_ms / 1000, expire, entry)
  end
  idle[#idle + 1] = entry
  wake(pool)
end

--- slot(pool) -> an idle connection, or nil once a slot is taken for a
--- new one; nil, "too many waiting connect operations" when the backlog
--- is full.  Suspends while the pool is full (the caller's deadline
--- applies: a cancelled wait passes its wake-up on).
function M.slot(pool)
  local front = false
  while true do
    if pool.leaked > 0 then      -- slots of sockets collected while connected
      pool.connections = pool.connections - pool.leaked
      pool.leaked = 0
    end
    local entry = M.take(pool)
    if entry then return entry end
    if pool.backlog == nil or pool.connections < pool.size then
      pool.connections = pool.connections + 1
      return nil
    end
    local waiters = pool.waiters
    if not front and #waiters >= pool.backlog then
      return nil, "too many waiting connect operations"
    end
    local fut = aio.Future()
    table.insert(waiters, front and 1 or #waiters + 1, fut)
    local ok, err = pcall(aio.await, fut)
    if not ok then
      if not remove(waiters, fut) then wake(pool) end
      error(err, 0)
    end
    front = true
  end
end

--- count(key) -> idle, total connections of the running loop's pool
function M.count(key)
  local pool = loop_pools()[key]
  if not pool then return 0, 0 end
  return #pool.idle, pool.connections
end

--- close_all(): closes the running loop's idle connections and forgets
--- its pools
function M.close_all()
  local loop = aio.get_running_loop()
  local t = pools[loop]
  if not t then return end
  pools[loop] = nil
  for _, pool in pairs(t) do
    local idle = pool.idle
    pool.idle = {}
    for i = 1, #idle do drop(idle[i]) end
  end
end

return M
