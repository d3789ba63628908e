#!/bin/sh
# W6: an HTTP "hello world" server under wrk.  w6.sh NAME PORT server-command...
# Starts the server (pinned to CPU 0; it prints "ready" once listening),
# runs wrk (pinned to CPU 1) with W6_C connections for W6_D seconds
# (W6_CLOSE=1: every request on a new connection, "Connection: close"),
# prints "RESULT requests/s p50_us p99_us cpu_ns" -- cpu_ns: the CPU time
# (user + system) the server's processes spent per request during the run,
# from /proc (perf counters are not available on every machine; times the
# clock rate, it is cycles per request).  W6_PIN=0: nothing is pinned (a
# server of several worker processes, which shares both CPUs with wrk).
set -u
name=$1; port=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
[ "${W6_PIN:-1}" = 0 ] && { pin0=""; pin1=""; }
start_server "$@" "$port" || exit 1
# the server's process and its descendants (h2o runs under a shell)
tree() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 } END {
      for (p in parent) { q = p
        while (q != "" && q != root && q != 1 && q != 0) q = parent[q]
        if (q == root) print p }
      print root }' | sort -u
}
ticks() { # user + system clock ticks of the processes given
  for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done |
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%d", t }'
}
procs=$(tree "$pid")
t0=$(ticks $procs)
hdr=""; [ "${W6_CLOSE:-0}" = 1 ] && hdr="Connection: close"
if [ -n "$hdr" ]; then
  res=$($pin1 wrk -t1 -c"${W6_C:-100}" -d"${W6_D:-5}s" --latency -H "$hdr" "http://127.0.0.1:$port/" 2>/dev/null)
else
  res=$($pin1 wrk -t1 -c"${W6_C:-100}" -d"${W6_D:-5}s" --latency "http://127.0.0.1:$port/" 2>/dev/null)
fi
t1=$(ticks $procs)
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
n=$(echo "$res" | awk '/requests in/ {print $1}')
hz=$(getconf CLK_TCK)
cpu=0; [ -n "$n" ] && [ "$n" -gt 0 ] && cpu=$(( (t1 - t0) * 1000000000 / hz / n ))
[ -n "$rps" ] && echo "RESULT $rps ${p50:-0} ${p99:-0} $cpu"
