#!/bin/sh
# make bench: luaio's workloads (bench/README.md) beside Python asyncio
# and Node when they are installed, with programs of our own (bench/ and
# bench/peers/), interleaved over RUNS passes, median per cell, ratio to
# the best peer of the same run.  A benchmark, never a test.
#   bench/run.sh CLI            RUNS=5 bench/run.sh build/luaio
#   QUICK=1 bench/run.sh CLI    small sizes, one pass (under a minute)
#   ONLY="W6 W6close" bench/run.sh CLI   just those workloads
set -u
cli=${1:-build/luaio}
here=$(cd "$(dirname "$0")" && pwd)
peers="$here/peers"
RUNS=${RUNS:-3}
N1=${N1:-100000}; N1M=${N1M:-1000000}; NWAVE=${NWAVE:-1000000}
N2=${N2:-1000000}; N3=${N3:-100000}; N5=${N5:-10000}
export W4_D=${W4_D:-5}
if [ "${QUICK:-0}" = 1 ]; then
  RUNS=1; N1=20000; N1M=100000; NWAVE=100000; N2=100000; N3=20000; N5=2000
  export W4_D=1 W4_W=0.3 W6_D=1 W7_N=2000 W8_D=1 W8_W=0.3
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ONLY="W6 W7": just those workloads (names as in the table)
wanted() { case " ${ONLY:-$1} " in *" $1 "*) return 0;; esac; return 1; }

run() { # name peer cmd...
  name=$1; peer=$2; shift 2
  wanted "$name" || return 0
  out=$(timeout 300 "$@" 2>/dev/null | grep '^RESULT' | head -n 1)
  [ -n "$out" ] && echo "$name $peer ${out#RESULT }" >> "$tmp/results"
}

# start-up: milliseconds for one run of an empty program, over 20 runs
startup() { # peer cmd...
  peer=$1; shift
  wanted start-up || return 0
  t0=$(date +%s%N)
  i=0; while [ $i -lt 20 ]; do "$@" >/dev/null 2>&1; i=$((i + 1)); done
  t1=$(date +%s%N)
  echo "start-up $peer $(( (t1 - t0) / 20000000 )).$(( (t1 - t0) / 200000 % 100 ))" >> "$tmp/results"
}

have_py=0; command -v python3 >/dev/null && have_py=1
have_node=0; command -v node >/dev/null && have_node=1
# W6 (HTTP): wrk drives every server; aiohttp runs on uvloop (Debian's
# python3-aiohttp and python3-uvloop, under /usr/bin/python3); h2o (C) is
# the ceiling
have_wrk=0; command -v wrk >/dev/null && have_wrk=1
have_aiohttp=0; /usr/bin/python3 -c "import aiohttp, uvloop" 2>/dev/null && have_aiohttp=1
have_h2o=0; command -v h2o >/dev/null && have_h2o=1
export W6_D=${W6_D:-5}
w4=""; [ -x "$here/../build/bench/loadgen" ] && w4=1
# W8 (WebSocket echo): loadgen_ws drives luaio, Node + ws (npm, make
# node-ws) and Python's websockets on uvloop
w8=""; [ -x "$here/../build/bench/loadgen_ws" ] && w8=1
have_nodews=0; [ -f "$here/../build/node_ws/node_modules/ws/package.json" ] && have_nodews=1
have_pyws=0; /usr/bin/python3 -c "import websockets, uvloop" 2>/dev/null && have_pyws=1
# W4 over TLS: a throwaway certificate (EC P-256) for every server
w4tls=""
if [ -x "$here/../build/bench/loadgen_tls" ] && command -v openssl >/dev/null &&
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
     -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=localhost >/dev/null 2>&1; then
  w4tls=1
  export W4_CERT="$tmp/cert.pem" W4_KEY="$tmp/key.pem"
fi
pass=0
while [ $pass -lt "$RUNS" ]; do
  run W1 luaio "$cli" "$here/w1_spawn.lua" "$N1"
  [ $have_py = 1 ] && run W1 asyncio python3 "$peers/w1_spawn.py" "$N1"
  [ $have_node = 1 ] && run W1 node node "$peers/w1_spawn.js" "$N1"
  run W1-1M luaio "$cli" "$here/w1_spawn.lua" "$N1M"
  run W1-1M lua-floor "$cli" "$here/floor/w1_spawn.lua" "$N1M"
  [ $have_py = 1 ] && run W1-1M asyncio python3 "$peers/w1_spawn.py" "$N1M"
  [ $have_node = 1 ] && run W1-1M node node "$peers/w1_spawn.js" "$N1M"
  run W1gather luaio "$cli" "$here/w1_spawn.lua" "$N1M" gather
  [ $have_py = 1 ] && run W1gather asyncio python3 "$peers/w1_spawn.py" "$N1M" gather
  [ $have_node = 1 ] && run W1gather node node "$peers/w1_spawn.js" "$N1M" gather
  run W1wave luaio "$cli" "$here/w1wave.lua" "$NWAVE"
  run W1wave lua-floor "$cli" "$here/floor/w1wave.lua" "$NWAVE"
  [ $have_py = 1 ] && run W1wave asyncio python3 "$peers/w1wave.py" "$NWAVE"
  [ $have_node = 1 ] && run W1wave node node "$peers/w1wave.js" "$NWAVE"
  run W2 luaio "$cli" "$here/w2_pingpong.lua" "$N2"
  [ $have_py = 1 ] && run W2 asyncio python3 "$peers/w2_pingpong.py" "$N2"
  [ $have_node = 1 ] && run W2 node node "$peers/w2_pingpong.js" "$N2"
  run W3 luaio "$cli" "$here/w3_timers.lua" "$N3"
  [ $have_py = 1 ] && run W3 asyncio python3 "$peers/w3_timers.py" "$N3"
  [ $have_node = 1 ] && run W3 node node "$peers/w3_timers.js" "$N3"
  run W3mem luaio "$cli" "$here/w3mem.lua" "$N3"
  run W3mem lua-floor "$cli" "$here/floor/w3mem.lua" "$N3"
  [ $have_py = 1 ] && run W3mem asyncio python3 "$peers/w3mem.py" "$N3"
  [ $have_node = 1 ] && run W3mem node node --expose-gc "$peers/w3mem.js" "$N3"
  if [ -n "$w4" ]; then
    run W4 c-libuv sh "$here/w4.sh" c 9301 "$here/../build/bench/echo_uv"
    run W4 luaio sh "$here/w4.sh" luaio 9302 "$cli" "$here/w4_echo.lua"
    [ $have_py = 1 ] && run W4 asyncio sh "$here/w4.sh" asyncio 9303 python3 "$peers/w4_echo.py"
    [ $have_node = 1 ] && run W4 node sh "$here/w4.sh" node 9304 node "$peers/w4_echo.js"
  fi
  if [ -n "$w4tls" ]; then
    export LOADGEN="$here/../build/bench/loadgen_tls"
    run W4tls luaio sh "$here/w4.sh" luaio 9312 "$cli" "$here/w4_echo.lua" tls
    [ $have_py = 1 ] && run W4tls asyncio sh "$here/w4.sh" asyncio 9313 python3 "$peers/w4_echo.py" tls
    [ $have_node = 1 ] && run W4tls node sh "$here/w4.sh" node 9314 node "$peers/w4_tls_echo.js"
    unset LOADGEN
  fi
  if [ $have_wrk = 1 ]; then
    for w6 in W6 W6close; do
      W6_CLOSE=0; [ $w6 = W6close ] && W6_CLOSE=1
      export W6_CLOSE
      run $w6 luaio sh "$here/w6.sh" luaio 9601 "$cli" "$here/w6_hello.lua"
      [ $have_node = 1 ] && run $w6 node sh "$here/w6.sh" node 9602 node "$peers/w6_hello.js"
      [ $have_aiohttp = 1 ] && run $w6 aiohttp sh "$here/w6.sh" aiohttp 9603 /usr/bin/python3 "$peers/w6_hello.py"
      [ $have_h2o = 1 ] && run $w6 h2o sh "$here/w6.sh" h2o 9604 sh "$peers/w6_h2o.sh"
    done
    unset W6_CLOSE
    # W6 over 2 worker processes, unpinned (wrk shares the 2 CPUs)
    export W6_PIN=0
    run W6x2 luaio sh "$here/w6.sh" luaio 9611 "$cli" --workers 2 "$here/w6_hello.lua"
    [ $have_node = 1 ] && run W6x2 node sh "$here/w6.sh" node 9612 node "$peers/w6_cluster.js"
    unset W6_PIN
  fi
  if [ $have_h2o = 1 ]; then
    run W7 luaio sh "$here/w7.sh" 9701 "$cli" "$here/w7_client.lua"
    [ $have_node = 1 ] && run W7 node sh "$here/w7.sh" 9702 node "$peers/w7_fetch.js"
    [ $have_aiohttp = 1 ] && run W7 aiohttp sh "$here/w7.sh" 9703 /usr/bin/python3 "$peers/w7_client.py"
  fi
  if [ -n "$w8" ]; then
    run W8 luaio sh "$here/w8.sh" luaio 9801 "$cli" "$here/w8_ws_echo.lua"
    [ $have_nodews = 1 ] && run W8 node sh "$here/w8.sh" node 9802 node "$peers/w8_ws_echo.js"
    [ $have_pyws = 1 ] && run W8 websockets sh "$here/w8.sh" websockets 9803 /usr/bin/python3 "$peers/w8_ws_echo.py"
  fi
  run W5 luaio "$cli" "$here/w5_waitfor.lua" "$N5"
  [ $have_py = 1 ] && run W5 asyncio python3 "$peers/w5_waitfor.py" "$N5"
  [ $have_node = 1 ] && run W5 node node "$peers/w5_waitfor.js" "$N5"
  startup luaio "$cli" -e ""
  startup lua5.4 lua5.4 -e ""
  [ $have_node = 1 ] && startup node node -e ""
  [ $have_py = 1 ] && startup asyncio python3 -c "import asyncio"
  pass=$((pass + 1))
done

lua5.4 "$here/table.lua" "$tmp/results" \
  "W1 N=$N1, W1-1M and W1gather N=$N1M, W1wave N=$NWAVE (waves of 1000), W2 N=$N2 round trips, W3/W3mem N=$N3, W5 N=$N5, W4/W4tls 100 connections x ${W4_D}s, W6 wrk -c${W6_C:-100} x ${W6_D}s (W6close: Connection: close; W6x2: luaio --workers 2 / Node cluster with 2 workers, unpinned), W7 ${W7_N:-20000} GETs over ${W7_C:-50} connections, W8 ${W8_C:-100} WebSocket connections x ${W8_D:-5}s of 64-byte echoes; $RUNS pass(es)"
