-- W7 (luaio): N GETs from C tasks over one Client's pool of C connections.
-- w7_client.lua URL N C; prints "RESULT requests/s".
local aio = require "luaio"
local url, n, c = arg[1], tonumber(arg[2]), tonumber(arg[3])
local rate = aio.run(function()
  local client = aio.http.Client { max_per_host = c }
  local left, bytes = n, 0
  local t0 = aio.time()
  local workers = {}
  for i = 1, c do
    workers[i] = aio.create_task(function()
      while left > 0 do
        left = left - 1
        local body = client:get(url):body()   -- (suspends: not inside
        bytes = bytes + #body                 -- the sum's expression)
      end
    end)
  end
  for i = 1, c do aio.await(workers[i]) end
  local dt = aio.time() - t0
  client:close()
  assert(bytes == 13 * n, "short: " .. bytes)
  return n / dt
end)
print(("RESULT %.0f"):format(rate))
