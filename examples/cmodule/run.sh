#!/bin/sh
# Builds the example C module (hashpool.so: no -lluaio, no -llua5.4) and
# runs demo.lua with it under the luaio CLI, stock lua5.4 and a C host
# (host.c, linked with libluaio.a), comparing the output with
# demo.expected; stray.lua (a runtime that ends while the module's thread
# holds it) under the CLI and lua5.4; then checks the error of a module
# that finds no luaio.
# B, CC, EMBED_CFLAGS, EMBED_LIBS and PKGCONFIG=1 as examples/embed/run.sh.
# A sanitized build (EMBED_CFLAGS with -fsanitize) runs only the host (and
# the CLI if $B/luaio exists): a sanitized module cannot load into stock
# lua5.4.  VALGRIND=1 runs the lua5.4 ones under valgrind (memcheck,
# leaks included: any error fails them; outputs are not compared then, as
# in examples/embed/run.sh).  Prints "N passed, M failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${B:-$top/build}
CC=${CC:-cc}
EXTRA=${EMBED_CFLAGS:-}
case "$EXTRA" in *-fsanitize*) sanitized=1 ;; *) sanitized=0 ;; esac
if [ "${PKGCONFIG:-0}" = 1 ]; then
  modflags="$(pkg-config --cflags --libs luaio-module)"
  hostflags="$(pkg-config --cflags --libs luaio)"
else
  modflags="-I$top/runtime $(pkg-config --cflags lua5.4 libuv) $(pkg-config --libs libuv)"
  hostflags="-I$top/runtime $(pkg-config --cflags lua5.4 libuv) $B/libluaio.a $(pkg-config --libs lua5.4 libuv) ${EMBED_LIBS:-} -lm -ldl"
fi
vg=
if [ "${VALGRIND:-0}" = 1 ]; then
  vg="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99"
fi
out=$(mktemp -d)
pass=0; fail=0
ok () { pass=$((pass + 1)); }
ko () { echo "FAIL $1"; fail=$((fail + 1)); }

# run NAME CMD...: its output must be demo.expected (stray.expected for
# a NAME stray-*, whose stderr must report the hold)
run () {
  name=$1; shift
  case $name in stray-*) exp=stray ;; *) exp=demo ;; esac
  if ! timeout 30 "$@" > "$out/$name.out" 2> "$out/$name.err"; then
    ko "$name: exit status"; cat "$out/$name.err"; return
  fi
  if [ -n "$vg" ]; then ok; return; fi     # (valgrind's slowdown moves timers)
  if ! cmp -s "$out/$name.out" "$here/$exp.expected"; then
    ko "$name: output differs"; diff "$here/$exp.expected" "$out/$name.out"; return
  fi
  if [ $exp = stray ] && ! grep -q "^1 luaio_hold still taken at loop close" "$out/$name.err"; then
    ko "$name: no report of the hold"; cat "$out/$name.err"; return
  fi
  ok
}

if ! $CC -shared -fPIC -Wall -Wextra -Werror $EXTRA -o "$out/hashpool.so" \
     "$here/hashpool.c" $modflags 2> "$out/cc.err"; then
  ko "hashpool.so does not build"; cat "$out/cc.err"
  rm -rf "$out"; echo "$pass passed, $fail failed"; exit 1
fi
if nm -D --undefined-only "$out/hashpool.so" | grep -q " luaio_"; then
  ko "hashpool.so needs luaio's symbols"
fi

export LUA_CPATH="$out/?.so;$B/lib/?.so;;"
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
if [ -x "$B/luaio" ]; then
  run cli "$B/luaio" "$here/demo.lua"
  run stray-cli env LUAIO_SHUTDOWN_TIMEOUT=0.1 "$B/luaio" "$here/stray.lua"
elif [ "$sanitized" = 0 ]; then ko "cli: $B/luaio is not built"
else echo "skipped: the CLI (not built in $B)"; fi
if [ "$sanitized" = 0 ]; then
  run lua5.4 $vg lua5.4 "$here/demo.lua"
  run stray-lua5.4 env LUAIO_SHUTDOWN_TIMEOUT=0.1 $vg lua5.4 "$here/stray.lua"
  # no luaio where lua5.4 looks: a Lua error that says what to do
  LUA_PATH="$out/?.lua" LUA_CPATH="$out/?.so" lua5.4 -e 'require "hashpool"' \
    > "$out/none.out" 2>&1
  if grep -q "hashpool: needs luaio, which is not loaded and could not be: run it with the luaio CLI" "$out/none.out" &&
     grep -q "module 'luaio.core' not found" "$out/none.out"; then ok
  else ko "no luaio: unexpected message"; cat "$out/none.out"; fi
else echo "skipped: stock lua5.4 (a sanitized module)"; fi
if $CC -Wall -Wextra -Werror $EXTRA -o "$out/host" "$here/host.c" $hostflags 2> "$out/host.cc"; then
  run host "$out/host" "$here/demo.lua"
else ko "host does not build"; cat "$out/host.cc"; fi
rm -rf "$out"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
