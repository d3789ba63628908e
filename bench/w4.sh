#!/bin/sh
# W4: echo server under load.  w4.sh NAME PORT server-command...
# Starts the server (pinned to CPU 0), waits for "ready", runs the load
# generator (pinned to CPU 1), prints "RESULT rt/s p50 p99 rss_kb".
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
gen=${LOADGEN:-$here/../build/bench/loadgen}
pin0=""; pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
out=$(mktemp)
$pin0 "$@" "$port" > "$out" 2>/dev/null &
pid=$!
i=0
while ! grep -q ready "$out" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 100 ] && { kill $pid 2>/dev/null; rm -f "$out"; exit 1; }
  sleep 0.05
done
res=$($pin1 "$gen" "$port" "${W4_C:-100}" "${W4_D:-5}" 64 "${W4_W:-1}" | grep '^RESULT')
rss=$(grep VmHWM /proc/$pid/status 2>/dev/null | awk '{print $2}')
kill $pid 2>/dev/null; wait $pid 2>/dev/null
rm -f "$out"
[ -n "$res" ] && echo "$res ${rss:-0}"
