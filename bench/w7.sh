#!/bin/sh
# W7: an HTTP client's GETs over a pool against h2o.  w7.sh PORT client-command...
# Starts h2o serving a 13-byte file (pinned to CPU 0), runs the client
# (pinned to CPU 1) with: URL N CONNECTIONS; it prints "RESULT requests/s".
set -u
port=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
pin0=""; pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
out=$(mktemp)
$pin0 sh "$here/peers/w6_h2o.sh" "$port" > "$out" 2>/dev/null &
pid=$!
i=0
while ! grep -q ready "$out" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 200 ] && { kill $pid 2>/dev/null; rm -f "$out"; exit 1; }
  sleep 0.05
done
$pin1 "$@" "http://127.0.0.1:$port/" "${W7_N:-20000}" "${W7_C:-50}" | grep '^RESULT'
kill $pid 2>/dev/null; wait $pid 2>/dev/null
rm -f "$out"
