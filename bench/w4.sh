#!/bin/sh
# W4: echo server under load.  w4.sh NAME PORT server-command...
# Starts the server (pinned to CPU 0), waits for "ready", runs the load
# generator (pinned to CPU 1), prints "RESULT rt/s p50 p99 rss_kb".
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
gen=${LOADGEN:-$here/../build/bench/loadgen}
start_server "$@" "$port" || exit 1
res=$($pin1 "$gen" "$port" "${W4_C:-100}" "${W4_D:-5}" 64 "${W4_W:-1}" | grep '^RESULT')
rss=$(grep VmHWM /proc/$pid/status 2>/dev/null | awk '{print $2}')
stop_server
[ -n "$res" ] && echo "$res ${rss:-0}"
