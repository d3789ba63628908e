-- table.lua RESULTS NOTE: the medians of bench/run.sh's results as a table.
-- Each line of RESULTS: "<workload> <peer> <figure> [<second> [<third>
-- [<fourth>]]]" (W4: round trips/s, p50 and p99 latency in us, peak RSS
-- KiB; W6: requests/s, p50 and p99 in us, the server's CPU ns a request).
local rows, order = {}, {}
for line in io.lines(arg[1]) do
  local w, p, a, b, c, d = line:match("^(%S+) (%S+) (%S+) ?(%S*) ?(%S*) ?(%S*)")
  if w then
    local key = w .. " " .. p
    if not rows[key] then
      rows[key] = { w = w, p = p, a = {}, b = {}, c = {}, d = {} }
      order[#order + 1] = key
    end
    table.insert(rows[key].a, tonumber(a))
    if b ~= "" then table.insert(rows[key].b, tonumber(b)) end
    if c ~= "" then table.insert(rows[key].c, tonumber(c)) end
    if d ~= "" then table.insert(rows[key].d, tonumber(d)) end
  end
end

local function median(t)
  if #t == 0 then return nil end
  local c = table.move(t, 1, #t, 1, {})   -- (the passes stay in order)
  table.sort(c)
  return c[(#c + 1) // 2]
end

-- W4's servers flip between two machine states from run to run (see
-- docs/performance.md): against the plain C server the ratio is also
-- taken pass by pass (luaio's run of pass i over C's run of pass i, run
-- one after the other) and its median printed beside the ratio of medians.
local function paired(r, b)
  if b.p ~= "c-libuv" or #r.a ~= #b.a or #r.a < 2 then return nil end
  local q = {}
  for i = 1, #r.a do q[i] = r.a[i] / b.a[i] end
  return median(q)
end

local unit = {
  ["W1"] = "tasks/s", ["W1-1M"] = "tasks/s", W1gather = "tasks/s", W1wave = "tasks/s",
  W2 = "switches/s", W3 = "s overhead", W3mem = "B/task", W4 = "round trips/s",
  W4tls = "round trips/s", W6 = "requests/s", W6close = "requests/s", W6x2 = "requests/s", W7 = "requests/s",
  W8 = "messages/s",
  W5 = "s wall", ["start-up"] = "ms",
}
local lower = { W3 = true, W3mem = true, W5 = true, ["start-up"] = true }
local second = { ["W1"] = "peak RSS KiB", ["W1-1M"] = "peak RSS KiB",
  W1gather = "peak RSS KiB", W3 = "peak RSS KiB",
  W4 = "p50 us", W4tls = "p50 us", W5 = "excess timeouts" }
local third = { W4 = true, W4tls = true, W6 = true, W6close = true, W6x2 = true, W8 = true }   -- p50/p99

for _, k in ipairs(order) do
  local r = rows[k]
  r.ma, r.mb, r.mc, r.md = median(r.a), median(r.b), median(r.c), median(r.d)
end

-- the best peer other than luaio, per workload ("lua-floor", bare Lua
-- coroutines with no scheduler, is a reference, not a peer)
local best = {}
for _, k in ipairs(order) do
  local r = rows[k]
  if r.p ~= "luaio" and r.p ~= "lua-floor" and r.ma then
    local b = best[r.w]
    if not b or (lower[r.w] and r.ma < b.ma) or (not lower[r.w] and r.ma > b.ma) then
      best[r.w] = r
    end
  end
end

local function fmt(v)
  if v == nil then return "" end
  if v >= 1e6 then return ("%.2fM"):format(v / 1e6) end
  if v >= 1e4 then return ("%.0fk"):format(v / 1e3) end
  if v >= 100 then return ("%.0f"):format(v) end
  return ("%.3f"):format(v)
end

print(("| %-9s | %-9s | %-22s | %-20s | %-24s |"):format(
  "workload", "peer", "median", "second figure", "luaio vs best peer"))
print("|" .. ("-"):rep(11) .. "|" .. ("-"):rep(11) .. "|" .. ("-"):rep(24) .. "|"
  .. ("-"):rep(22) .. "|" .. ("-"):rep(26) .. "|")
for _, k in ipairs(order) do
  local r = rows[k]
  local ratio = ""
  if r.p == "luaio" and best[r.w] then
    local b = best[r.w]
    if lower[r.w] then
      ratio = ("%.2fx of %s (lower is better)"):format(r.ma / b.ma, b.p)
    else
      ratio = ("%.2fx %s"):format(r.ma / b.ma, b.p)
      local pr = paired(r, b)
      if pr then ratio = ratio .. (" (paired %.2fx)"):format(pr) end
      -- W4's target is a ratio to the C server, whichever peer is best
      local c = rows[r.w .. " c-libuv"]
      if c and c ~= b and c.ma then
        ratio = ratio .. ("; %.2fx c-libuv"):format(r.ma / c.ma)
        pr = paired(r, c)
        if pr then ratio = ratio .. (" (paired %.2fx)"):format(pr) end
      end
      -- W6's targets are ratios to Node and to h2o, whichever is best;
      -- W8's to Node (+ ws)
      for _, peer in ipairs { "node", "h2o" } do
        local o = (r.w == "W6" or r.w == "W6close" or r.w == "W8") and rows[r.w .. " " .. peer]
        if o and o ~= b and o.ma then
          ratio = ratio .. ("; %.2fx %s"):format(r.ma / o.ma, peer)
        end
      end
    end
  end
  local fig2 = r.mb and (fmt(r.mb) .. " " .. (second[r.w] or "")) or ""
  if third[r.w] and r.mb and r.mc then
    fig2 = ("%s/%s p50/p99 us"):format(fmt(r.mb), fmt(r.mc))
  end
  print(("| %-9s | %-9s | %-22s | %-20s | %-24s |"):format(r.w, r.p,
    fmt(r.ma) .. " " .. (unit[r.w] or ""), fig2, ratio))
end
print()

-- W6's CPU per request (W8's per message): the server's user + system
-- time over the requests it answered, and in cycles at the clock rate
-- /proc/cpuinfo gives
local mhz
local f = io.open("/proc/cpuinfo")
if f then
  mhz = tonumber(f:read("a"):match("cpu MHz%s*:%s*([%d.]+)"))
  f:close()
end
for _, w in ipairs { "W6", "W6close", "W6x2", "W8" } do
  local parts, ours = {}, rows[w .. " luaio"]
  for _, k in ipairs(order) do
    local r = rows[k]
    if r.w == w and r.md and r.md > 0 then
      local s = ("%s %.2f us"):format(r.p, r.md / 1000)
      if mhz then s = s .. (" (%.1fk cycles)"):format(r.md * mhz / 1e6) end
      if ours and ours.md and r ~= ours then s = s .. (", luaio %.2fx"):format(ours.md / r.md) end
      parts[#parts + 1] = s
    end
  end
  if #parts > 0 then
    print(("%s server CPU a %s (user + system): %s"):format(w, w == "W8" and "message" or "request",
      table.concat(parts, "; ")))
  end
end
print()
print(arg[2])
