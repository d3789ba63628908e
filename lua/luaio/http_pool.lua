-- luaio.http_pool: the HTTP client's connection pool (luaio.http_client
-- says how it is used): per client, one pool per scheme://host:port (or
-- per proxy, or per CONNECT tunnel), each a stack of idle connections
-- (the most recently used on top) and a count of the connections it has
-- open, busy or idle.  A connection is counted from the moment its slot
-- is taken (before the connect) to the moment it is closed; max_per_host
-- and max_total bound those counts; a request that finds no slot parks on
-- the client's wait list (any change wakes every waiter: each re-checks;
-- cancelled, it leaves the list).  When max_total is reached an idle
-- connection of another host is closed to make room; a timer closes
-- expired idle connections.
local core = require "luaio.core"

local HTTPError = core.HTTPError

local M = {}

local function now() return core.get_running_loop():time() end

local function forget(c)
  if c.dead then return end
  c.dead = true
  local client, pool = c.client, c.pool
  pool.count = pool.count - 1
  client._count = client._count - 1
  client._wl:wake_all()
end

-- Closes c with its writer's method ("_abort": at once, queued bytes and
-- all; "close": as close() does) and gives its slot back.
local function shut(c, method)
  if c.dead then return end
  c.client._closing[c.w] = true
  pcall(c.w[method], c.w)
  forget(c)
end

-- A connection given up mid-way; an idle one (nothing is queued on it).
local function abort(c) shut(c, "_abort") end
local function close_idle(c) shut(c, "close") end

local function sweep(client)
  client._timer = nil
  local t, first = now(), nil
  for _, pool in pairs(client._pools) do
    local idle = pool.idle
    for i = #idle, 1, -1 do
      local c = idle[i]
      if c.idle_at + client.idle_timeout <= t then
        table.remove(idle, i)
        close_idle(c)
      elseif not first or c.idle_at < first then
        first = c.idle_at
      end
    end
  end
  if first then
    client._timer = core.get_running_loop():call_at(first + client.idle_timeout,
                                                    sweep, client)
  end
end

-- c's response was read to the end: back to its pool (or closed).
local function release(c, reusable)
  if c.dead then return end
  local client = c.client
  if not reusable or client._closed or c.data ~= nil then
    abort(c)
    return
  end
  c.idle_at = now()
  local idle = c.pool.idle
  idle[#idle + 1] = c
  if not client._timer then
    client._timer = core.get_running_loop():call_later(client.idle_timeout,
                                                       sweep, client)
  end
  client._wl:wake_all()
end

-- An idle connection of pool still usable, or nil.
local function take_idle(client, pool)
  local idle, t = pool.idle, now()
  while #idle > 0 do
    local c = idle[#idle]
    idle[#idle] = nil
    if c.idle_at + client.idle_timeout > t and not c.r:at_eof()
        and c.r:_buffered() == 0 and not c.w:is_closing() then
      c.reused = true
      return c
    end
    close_idle(c)
  end
  return nil
end

-- Closes the longest-idle connection of any pool: true if there was one.
local function evict(client)
  local best, bpool
  for _, pool in pairs(client._pools) do
    local c = pool.idle[1]
    if c and (not best or c.idle_at < best.idle_at) then best, bpool = c, pool end
  end
  if not best then return false end
  table.remove(bpool.idle, 1)
  close_idle(best)
  return true
end

-- A connection for key: an idle one, or nil and its pool once a slot to
-- open a new one is taken (fresh: a new one in any case).  Suspends
-- while the limits are reached.
local function acquire(client, key, fresh)
  local pool = client._pools[key]
  if not pool then
    pool = { key = key, idle = {}, count = 0 }
    client._pools[key] = pool
  end
  while true do
    if client._closed then error(HTTPError("request: the client is closed"), 0) end
    if not fresh then
      local c = take_idle(client, pool)
      if c then return c end
    elseif #pool.idle > 0 and pool.count >= client.max_per_host then
      close_idle(table.remove(pool.idle, 1))
    end
    if pool.count < client.max_per_host
        and (client._count < client.max_total or evict(client)) then
      pool.count = pool.count + 1
      client._count = client._count + 1
      return nil, pool
    end
    client._waiting = client._waiting + 1
    local ok = client._wl:wait("request")
    client._waiting = client._waiting - 1
    if not ok then core.raise_cancel() end
  end
end

M.now, M.forget, M.abort = now, forget, abort
M.close_idle, M.release, M.acquire = close_idle, release, acquire

return M
