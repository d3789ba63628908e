#!/bin/sh
# make soak: W6 (bench/w6_hello.lua under wrk) for SOAK_SECONDS (default
# 600) against one worker (luaio --workers 1) and against --workers 2;
# not a test, never in CI.  bench/soak.sh CLI
#
# For each: the server starts; its processes' descriptors are counted; a
# warm-up of SOAK_WARMUP seconds (default 60) of load (half keep-alive,
# half "Connection: close"); then the load runs
# in chunks of SOAK_CHUNK seconds (default 10), alternating keep-alive and
# "Connection: close" (every request a new connection), and after every
# chunk each process's RSS is read.  It fails unless: wrk saw no error (no
# socket error, no answer other than 2xx), every process's RSS stayed
# within 5 % of what it was after the warm-up, the workers are the ones
# that started (none died), each process's descriptors are back to their
# count at the start once the load is over, and a SIGTERM stops the
# server with status 0; and each worker's live Lua heap after a full
# collection (bench/soak_app.lua's /mem) is within 5 % of the warm-up's,
# which tells a leak from the garbage the collector lets pile up (with
# LUAIO_GC's default pause the heap swings to 4x its live size between
# cycles, and RSS follows the highest swing).  Prints one line per check,
# then PASS or FAIL
# (SOAK_VERBOSE=1: the RSS after every chunk too; SOAK_WORKERS="1 2":
# the worker counts).
set -u
cli=${1:-build/luaio}
here=$(cd "$(dirname "$0")" && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_WARMUP=${SOAK_WARMUP:-60}
SOAK_CHUNK=${SOAK_CHUNK:-10}
C=${W6_C:-100}
fail=0

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
kids() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n | tr '\n' ' '; }
heaps() { # port workers -> " KiB KiB ..." (each worker's live Lua heap, /mem)
  i=0; got=""
  while [ $i -lt 100 ] && [ "$(printf '%s' "$got" | awk 'NF == 2 && !s[$1]++' | wc -l)" -lt "$2" ]; do
    got="$got$(curl -s -H "Connection: close" "http://127.0.0.1:$1/mem")
"
    i=$((i + 1))
  done
  printf '%s' "$got" | awk 'NF == 2 && !s[$1]++' | sort -n | awk '{printf " %s", $2}'
}
check() { # ok? message
  if [ "$1" = 1 ]; then echo "  ok    $2"; else echo "  FAIL  $2"; fail=1; fi
}

wrk_chunk() { # port seconds close?
  if [ "$3" = 1 ]; then
    wrk -t1 -c"$C" -d"$2s" -H "Connection: close" "http://127.0.0.1:$1/" 2>&1
  else
    wrk -t1 -c"$C" -d"$2s" "http://127.0.0.1:$1/" 2>&1
  fi
}

# errors in wrk's report: "Socket errors: ..." or "Non-2xx or 3xx responses"
wrk_errors() { echo "$1" | grep -E "Socket errors|Non-2xx" | tr '\n' ' '; }

soak() { # workers port
  n=$1; port=$2
  echo "W6 soak: luaio --workers $n, ${SOAK_SECONDS} s after a ${SOAK_WARMUP} s warm-up"
  out=$(mktemp)
  "$cli" --workers "$n" "$here/soak_app.lua" "$port" > "$out" 2>&1 &
  sup=$!
  i=0
  while [ "$(grep -c ready "$out")" -lt "$n" ]; do
    i=$((i + 1)); [ $i -gt 200 ] && { echo "  FAIL  not ready"; kill $sup; fail=1; return; }
    sleep 0.05
  done
  workers=$(kids $sup)
  procs="$sup $workers"
  fd0=""; for p in $procs; do fd0="$fd0 $(fds $p)"; done
  half=$((SOAK_WARMUP / 2))                 # both kinds of load warm up
  res=$(wrk_chunk "$port" "$half" 0)
  errs=$(wrk_errors "$res")
  res=$(wrk_chunk "$port" "$((SOAK_WARMUP - half))" 1)
  errs="$errs$(wrk_errors "$res")"
  base=""; for p in $procs; do base="$base $(rss $p)"; done
  heap0=$(heaps "$port" "$n")
  t=0; chunk=0; maxdev=0; requests=0
  while [ $t -lt "$SOAK_SECONDS" ]; do
    d=$SOAK_CHUNK; [ $((t + d)) -gt "$SOAK_SECONDS" ] && d=$((SOAK_SECONDS - t))
    res=$(wrk_chunk "$port" "$d" $((chunk % 2)))
    errs="$errs$(wrk_errors "$res")"
    requests=$((requests + $(echo "$res" | awk '/requests in/ {print $1}')))
    k=1
    for p in $procs; do
      b=$(echo $base | cut -d' ' -f$k); r=$(rss $p)
      dev=$(awk -v b="$b" -v r="${r:-0}" 'BEGIN { d = (r - b) * 100 / b; if (d < 0) d = -d; printf "%d", d * 10 }')
      [ "$dev" -gt "$maxdev" ] && maxdev=$dev
      k=$((k + 1))
    done
    [ "${SOAK_VERBOSE:-0}" = 1 ] && echo "  t=$((t + d)) s RSS KiB: $(for p in $procs; do printf '%s ' "$(rss $p)"; done)"
    t=$((t + d)); chunk=$((chunk + 1))
  done
  sleep 1                                   # the clients' connections close
  fd1=""; for p in $procs; do fd1="$fd1 $(fds $p)"; done
  rss1=""; for p in $procs; do rss1="$rss1 $(rss $p)"; done
  heap1=$(heaps "$port" "$n")
  check "$([ -z "$errs" ] && echo 1)" "no wrk errors over $requests requests ${errs:+($errs)}"
  check "$([ "$maxdev" -le 50 ] && echo 1)" "RSS within 5 % of the warm-up's: KiB$base -> max deviation $((maxdev / 10)).$((maxdev % 10)) %, now$rss1"
  check "$([ "$(kids $sup)" = "$workers" ] && echo 1)" "the same workers throughout ($workers)"
  hdev=$(echo "$heap0 /$heap1" | awk -F/ '{ n = split($1, a, " "); split($2, b, " "); m = 0
    for (i = 1; i <= n; i++) { d = (b[i] - a[i]) * 1000 / a[i]; if (d < 0) d = -d; if (d > m) m = d }
    printf "%d", m }')
  check "$(echo "$heap0$heap1" | grep -qv "[^ 0-9]" && [ "${hdev:-999}" -le 50 ] && echo 1)" "live Lua heap (after a full collection) within 5 %: KiB$heap0 ->$heap1"
  check "$([ "$fd0" = "$fd1" ] && echo 1)" "descriptors back to their start:$fd0 ->$fd1"
  kill -TERM $sup; wait $sup; st=$?
  check "$([ $st = 0 ] && echo 1)" "SIGTERM: exit status $st"
  rm -f "$out"
}

for n in ${SOAK_WORKERS:-1 2}; do soak "$n" $((9800 + n)); done
[ $fail = 0 ] && echo PASS || echo FAIL
exit $fail
