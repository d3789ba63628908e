#!/bin/sh
# Builds the embedding examples against build/libluaio.a (or, with
# PKGCONFIG=1, against an installed luaio found by pkg-config) and
# compares their output with the .expected files.  Prints
# "N passed, M failed".  VALGRIND=1 runs each host under valgrind
# (memcheck, leaks included): any error fails it; the output is not
# compared then (the plain and ASan runs do: valgrind's slowdown moves
# the hosts' timers against the scripts' sleeps).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${B:-$top/build}
CC=${CC:-cc}
EXTRA=${EMBED_CFLAGS:-}
if [ "${PKGCONFIG:-0}" = 1 ]; then
  flags="$(pkg-config --cflags --libs luaio)"
else
  flags="-I$top/runtime $(pkg-config --cflags lua5.4 libuv) $B/libluaio.a $(pkg-config --libs lua5.4 libuv) ${EMBED_LIBS:-} -lm -ldl"
fi
run= limit=20
if [ "${VALGRIND:-0}" = 1 ]; then
  limit=120
  run="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
fi
out=$(mktemp -d)
pass=0; fail=0
for src in "$here"/*.c; do
  name=$(basename "$src" .c)
  if ! $CC -Wall -Wextra -Werror $EXTRA -o "$out/$name" "$src" $flags 2>"$out/$name.cc"; then
    echo "FAIL $name: does not build"; cat "$out/$name.cc"; fail=$((fail + 1)); continue
  fi
  timeout $limit $run "$out/$name" > "$out/$name.out" 2> "$out/$name.err"; st=$?
  if [ "$st" -ne 0 ]; then
    echo "FAIL $name: exit status $st"; cat "$out/$name.err"; fail=$((fail + 1)); continue
  fi
  if [ -z "$run" ] && ! cmp -s "$out/$name.out" "$here/$name.expected"; then
    echo "FAIL $name: output differs"; diff "$here/$name.expected" "$out/$name.out"; fail=$((fail + 1)); continue
  fi
  pass=$((pass + 1))
done
rm -rf "$out"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
