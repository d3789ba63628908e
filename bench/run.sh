#!/bin/sh
# make bench: luaio's workloads beside asyncio and Node (when present), in
# one run, interleaved, median of RUNS passes.  A benchmark, never a test.
#   bench/run.sh CLI        RUNS=5 N1=1000000 bench/run.sh build/luaio
set -u
cli=${1:-build/luaio}
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-3}
N1=${N1:-100000}
N3=${N3:-100000}
N5=${N5:-10000}
N2=${N2:-1000000}
tmp=$(mktemp -d)

run() { # name peer cmd...
  name=$1; peer=$2; shift 2
  out=$(timeout 300 "$@" 2>/dev/null | grep '^RESULT' | head -n 1)
  [ -n "$out" ] && echo "$name $peer ${out#RESULT }" >> "$tmp/results"
}

have_py=0; command -v python3 >/dev/null && have_py=1
w4=""; [ -x "$here/../build/bench/loadgen" ] && w4=1   # built by make bench
have_node=0; command -v node >/dev/null && have_node=1
i=0
while [ $i -lt "$RUNS" ]; do
  run W1 luaio "$cli" "$here/w1_spawn.lua" "$N1"
  [ $have_py = 1 ] && run W1 asyncio python3 "$here/w1_spawn.py" "$N1"
  [ $have_node = 1 ] && run W1 node node "$here/w1_spawn.js" "$N1"
  run W2 luaio "$cli" "$here/w2_pingpong.lua" "$N2"
  [ $have_py = 1 ] && run W2 asyncio python3 "$here/w2_pingpong.py" "$N2"
  [ $have_node = 1 ] && run W2 node node "$here/w2_pingpong.js" "$N2"
  run W3mem luaio "$cli" "$here/w3mem.lua" "$N3"
  [ $have_py = 1 ] && run W3mem asyncio python3 "$here/w3mem.py" "$N3"
  [ $have_node = 1 ] && run W3mem node node --expose-gc "$here/w3mem.js" "$N3"
  run W3 luaio "$cli" "$here/w3_timers.lua" "$N3"
  [ $have_py = 1 ] && run W3 asyncio python3 "$here/w3_timers.py" "$N3"
  [ $have_node = 1 ] && run W3 node node "$here/w3_timers.js" "$N3"
  if [ -n "$w4" ]; then
    run W4 c-libuv sh "$here/w4.sh" c 9301 "$here/../build/bench/echo_uv"
    run W4 luaio sh "$here/w4.sh" luaio 9302 "$cli" "$here/w4_echo.lua"
    [ $have_py = 1 ] && run W4 asyncio sh "$here/w4.sh" asyncio 9303 python3 "$here/w4_echo.py"
    [ $have_node = 1 ] && run W4 node sh "$here/w4.sh" node 9304 node "$here/w4_echo.js"
  fi
  run W5 luaio "$cli" "$here/w5_waitfor.lua" "$N5"
  [ $have_py = 1 ] && run W5 asyncio python3 "$here/w5_waitfor.py" "$N5"
  [ $have_node = 1 ] && run W5 node node "$here/w5_waitfor.js" "$N5"
  i=$((i + 1))
done

lua5.4 - "$tmp/results" "$N1" "$N3" "$N5" "$N2" <<'LUA'
local rows, order = {}, {}
for line in io.lines(arg[1]) do
  local w, p, a, b = line:match("^(%S+) (%S+) (%S+) ?(%S*)")
  local key = w .. " " .. p
  if not rows[key] then rows[key] = { w = w, p = p, a = {}, b = {} }; order[#order + 1] = key end
  table.insert(rows[key].a, tonumber(a))
  if b ~= "" then table.insert(rows[key].b, tonumber(b)) end
end
local function median(t)
  if #t == 0 then return nil end
  table.sort(t)
  return t[(#t + 1) // 2]
end
local unit = { W1 = "tasks/s", W2 = "switches/s", W4 = "round trips/s", W3mem = "bytes/task", W3 = "s overhead", W5 = "s wall" }
local lower_better = { W3mem = true, W3 = true, W5 = true }
local best = {}
for _, k in ipairs(order) do
  local r = rows[k]
  r.ma, r.mb = median(r.a), median(r.b)
end
print(("%-6s %-8s %16s %12s %10s"):format("work", "peer", "figure", "RSS/excess", "luaio/peer"))
for _, k in ipairs(order) do
  local r = rows[k]
  local l = rows[r.w .. " luaio"]
  local ratio = ""
  if l and r.p ~= "luaio" then
    ratio = lower_better[r.w] and ("%.2fx less"):format(r.ma / l.ma) or ("%.2fx"):format(l.ma / r.ma)
  end
  local fig = r.ma >= 100 and ("%.0f %s"):format(r.ma, unit[r.w] or "")
    or ("%.3f %s"):format(r.ma, unit[r.w] or "")
  local extra = ""
  if r.mb then
    extra = r.w == "W5" and ("%d excess"):format(r.mb)
      or r.w == "W4" and ("p50 %.0fus"):format(r.mb) or ("%d KiB"):format(r.mb)
  end
  print(("%-6s %-8s %16s %12s %10s"):format(r.w, r.p, fig, extra, ratio))
end
print(("(W1 N=%s; W3, W3mem N=%s; W5 N=%s; W2 N=%s; W1 awaits each task in turn)"):format(arg[2], arg[3], arg[4], arg[5]))
LUA
rm -rf "$tmp"
