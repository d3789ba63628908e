# bench/lib.sh: what the load scripts (w4.sh, w6.sh, w7.sh) share, sourced:
# pin0/pin1 (CPU 0 for the server, CPU 1 for the load, when there are two),
# and a server started in the background that is waited for until it
# prints "ready".
pin0=""; pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi

# start_server cmd...: runs it on CPU 0 (its pid in $pid); returns 1 when
# it has not said "ready" within 10 s
start_server() {
  out=$(mktemp)
  $pin0 "$@" > "$out" 2>/dev/null &
  pid=$!
  i=0
  while ! grep -q ready "$out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then stop_server; return 1; fi
    sleep 0.05
  done
}

stop_server() {
  kill $pid 2>/dev/null; wait $pid 2>/dev/null
  rm -f "$out"
}
