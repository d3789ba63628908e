#!/bin/sh
# tools/lua_build.sh DIR -- builds DIR/liblua.a, the Lua the CLI links.
#
# It is Debian's own Lua: the lua5.4 source package of Debian 12
# (5.4.4-3+deb12u1, both tarballs pinned by SHA-256), with Debian's
# patches (module paths, the two CVE fixes), compiled with Debian's
# flags -- plus -flto, so that the CLI is linked with link-time
# optimisation across Lua and luaio: the Lua API calls of the scheduler
# and the interpreter's own cross-file calls get inlined (W1wave -8 %,
# W2 -9 % instructions, callgrind).  Nothing of Lua is kept in the
# repository: the sources are fetched from the Debian archive.
#
# When they cannot be had (no network, a checksum that does not match,
# no `patch`), DIR/liblua.a is a copy of the installed liblua5.4.a
# instead, DIR/FROM says why (DIR/lua_from.h says which, for
# `luaio -v`), and the build goes on.  So it is when the
# installed liblua5.4-dev is another version than the pinned one.
#
# Environment: CC (as for luaio: LTO objects are the compiler's own),
# LUA_SYSTEM_A (the installed static library), LUA_SOURCE_URL (a Debian
# mirror's pool directory for lua5.4).
set -u
mkdir -p "$1/dl" && out=$(cd "$1" && pwd) || exit 1
CC=${CC:-cc}
POOL=${LUA_SOURCE_URL:-http://deb.debian.org/debian/pool/main/l/lua5.4}
PINNED=5.4.4-3+deb12u1
ORIG=lua5.4_5.4.4.orig.tar.gz
ORIG_SHA=164c7849653b80ae67bec4b7473b884bf5cc8d2dca05653475ec2ed27b9ebf61
DEBT=lua5.4_5.4.4-3+deb12u1.debian.tar.xz
DEBT_SHA=2d8e0e380722c648cfeffb8d58287865619b4d035544d93d7ef3a2eaf627abe6
FLAGS="-std=gnu99 -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2 -Wall
  -DLUA_COMPAT_5_3 -DLUA_USE_LINUX -flto=auto -ffat-lto-objects"
# liblua.a: everything but the two programs (lua.c, luac.c)
FILES="lapi lcode lctype ldebug ldo ldump lfunc lgc llex lmem lobject
  lopcodes lparser lstate lstring ltable ltm lundump lvm lzio lauxlib
  lbaselib lcorolib ldblib liolib lmathlib loadlib loslib lstrlib ltablib
  lutf8lib linit"

# DIR/FROM and DIR/lua_from.h (for `luaio -v`): which Lua this is.
from () {
  echo "$1: $2" > "$out/FROM"
  printf '#define LUAIO_LUA_FROM "%s"\n' "$3" > "$out/lua_from.h"
}

# The installed library instead, with the reason.
fallback () {
  echo "lua: $1; the CLI links the installed ${LUA_SYSTEM_A:-liblua5.4.a}" >&2
  from installed "$1" "the installed liblua5.4.a"
  if [ -n "${LUA_SYSTEM_A:-}" ] && [ -f "$LUA_SYSTEM_A" ]; then
    cp "$LUA_SYSTEM_A" "$out/liblua.a.tmp" && mv "$out/liblua.a.tmp" "$out/liblua.a"
    exit $?
  fi
  echo "lua: no installed liblua5.4.a either (apt-get install liblua5.4-dev)" >&2
  exit 1
}

# Fetches file $1 into dl/ unless it is there, and checks it against $2.
fetch () {
  if [ ! -f "$out/dl/$1" ]; then
    command -v curl >/dev/null || return 1
    curl -fsSL --max-time 120 -o "$out/dl/$1.part" "$POOL/$1" || return 1
    mv "$out/dl/$1.part" "$out/dl/$1"
  fi
  echo "$2  $out/dl/$1" | sha256sum -c --status - && return 0
  echo "lua: $1 does not match its checksum; removed" >&2
  rm -f "$out/dl/$1"
  return 1
}

# Never older than the system's: another installed liblua5.4-dev (a
# security update) is used as it is until the pin above is moved.
inst=$(dpkg-query -W -f='${Version}' liblua5.4-dev 2>/dev/null)
[ -z "$inst" ] || [ "$inst" = "$PINNED" ] ||
  fallback "the installed liblua5.4-dev is $inst, not the pinned $PINNED"

fetch "$ORIG" "$ORIG_SHA" && fetch "$DEBT" "$DEBT_SHA" ||
  fallback "the lua5.4 sources could not be fetched from $POOL"
command -v patch >/dev/null || fallback "no patch program (apt-get install patch)"

src=$out/src
rm -rf "$src" && mkdir -p "$src" &&
  tar -xzf "$out/dl/$ORIG" -C "$src" && tar -xJf "$out/dl/$DEBT" -C "$src" ||
  fallback "the lua5.4 sources could not be unpacked"
top=$src/lua-5.4.4
# Debian's patches, but its libtool build (0001): we compile the files
for p in $(grep -v '^#' "$src/debian/patches/series"); do
  case $p in 0001-build-system.patch) continue ;; esac
  patch -s -p1 -d "$top" < "$src/debian/patches/$p" ||
    fallback "Debian's patch $p did not apply"
done
arch=$($CC -print-multiarch 2>/dev/null)
[ -n "$arch" ] || arch=$(uname -m)-linux-gnu
printf '#ifndef _LUA_DEB_MULTIARCH_\n#define _LUA_DEB_MULTIARCH_\n#define DEB_HOST_MULTIARCH "%s"\n#endif\n' \
  "$arch" > "$top/src/lua5.4-deb-multiarch.h"

# two at a time: the machine's cores
echo $FILES | tr ' ' '\n' | grep . |
  xargs -P 2 -I{} $CC $FLAGS -c "$top/src/{}.c" -o "$top/src/{}.o" ||
  fallback "the lua5.4 sources did not compile"
ar=ar
command -v gcc-ar >/dev/null && case $CC in *gcc*|cc) ar=gcc-ar ;; esac
rm -f "$out/liblua.a.tmp"
(cd "$top/src" && $ar rcs "$out/liblua.a.tmp" $(for f in $FILES; do echo "$f.o"; done)) ||
  fallback "the archive could not be made"
mv "$out/liblua.a.tmp" "$out/liblua.a"
from built "Debian's lua5.4 $PINNED, with -flto" "Debian's lua5.4 $PINNED, LTO"
