#!/bin/sh
# W8: a WebSocket echo server under load.  w8.sh NAME PORT server-command...
# The one load generator for every server is build/bench/loadgen_ws (C,
# libuv: loadgen.c's driver with a WebSocket transport): W8_C connections
# (100), each echoing 64-byte text messages for W8_D seconds (5) after
# W8_W (1) of warm-up.  The server runs on CPU 0 and prints "ready"; the
# load on CPU 1.  Prints "RESULT messages/s p50_us p99_us rss_kb".
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
export NODE_PATH="$here/../build/node_ws/node_modules"     # (npm's ws)
start_server "$@" "$port" || exit 1
res=$($pin1 "$here/../build/bench/loadgen_ws" "$port" "${W8_C:-100}" "${W8_D:-5}" 64 \
  "${W8_W:-1}" | grep '^RESULT')
rss=$(grep VmHWM /proc/$pid/status 2>/dev/null | awk '{print $2}')
stop_server
[ -n "$res" ] && echo "$res ${rss:-0}"
