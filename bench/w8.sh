#!/bin/sh
# W8: a WebSocket echo server under load.  w8.sh NAME PORT server-command...
# The one load generator for every server is build/bench/loadgen_ws (C,
# libuv: loadgen.c's driver with a WebSocket transport): W8_C connections
# (100), each echoing 64-byte text messages for W8_D seconds (5) after
# W8_W (1) of warm-up.  The server runs on CPU 0 and prints "ready"; the
# load on CPU 1.  Prints "RESULT messages/s p50_us p99_us cpu_ns": cpu_ns
# is the server's CPU time (user + system, from /proc) per message over
# the whole run (warm-up included, so a little high) -- the figure the
# machine's noise disturbs least.
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
export NODE_PATH="$here/../build/node_ws/node_modules"     # (npm's ws)

start_server "$@" "$port" || exit 1
ticks() { awk '{ sub(/^.*\) /, ""); printf "%d", $12 + $13 }' "/proc/$pid/stat" 2>/dev/null; }
t0=$(ticks)
res=$($pin1 "$here/../build/bench/loadgen_ws" "$port" "${W8_C:-100}" "${W8_D:-5}" 64 \
  "${W8_W:-1}" | grep '^RESULT')
t1=$(ticks)
stop_server
[ -n "$res" ] || exit 1
hz=$(getconf CLK_TCK)
echo "$res" | awk -v t=$((t1 - t0)) -v hz="$hz" -v d="${W8_D:-5}" -v w="${W8_W:-1}" '
  { n = $2 * (d + w); printf "%s %s %s %s %d\n", $1, $2, $3, $4, (n > 0 ? t * 1e9 / hz / n : 0) }'
