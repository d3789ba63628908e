#!/bin/sh
# W6: an HTTP "hello world" server under wrk.  w6.sh NAME PORT server-command...
# Starts the server (pinned to CPU 0; it prints "ready" once listening),
# runs wrk (pinned to CPU 1) with W6_C connections for W6_D seconds
# (W6_CLOSE=1: every request on a new connection, "Connection: close"),
# prints "RESULT requests/s p50_us p99_us".
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
start_server "$@" "$port" || exit 1
hdr=""; [ "${W6_CLOSE:-0}" = 1 ] && hdr="Connection: close"
if [ -n "$hdr" ]; then
  res=$($pin1 wrk -t1 -c"${W6_C:-100}" -d"${W6_D:-5}s" --latency -H "$hdr" "http://127.0.0.1:$port/" 2>/dev/null)
else
  res=$($pin1 wrk -t1 -c"${W6_C:-100}" -d"${W6_D:-5}s" --latency "http://127.0.0.1:$port/" 2>/dev/null)
fi
stop_server
# wrk prints "Requests/sec: N" and, with --latency, "50% 1.23ms" lines;
# a run with answers other than 2xx/3xx ("Non-2xx") is not a result
echo "$res" | grep -q "Non-2xx" && exit 1
us() { # wrk's "123.45us" / "1.23ms" / "1.02s" -> microseconds
  echo "$1" | awk '/us$/ {sub(/us/,""); printf "%d", $1; exit}
                   /ms$/ {sub(/ms/,""); printf "%d", $1 * 1000; exit}
                   /s$/  {sub(/s/,"");  printf "%d", $1 * 1000000; exit}'
}
rps=$(echo "$res" | awk '/^Requests\/sec:/ {printf "%d", $2}')
p50=$(us "$(echo "$res" | awk '$1 == "50%" {print $2}')")
p99=$(us "$(echo "$res" | awk '$1 == "99%" {print $2}')")
[ -n "$rps" ] && echo "RESULT $rps ${p50:-0} ${p99:-0}"
