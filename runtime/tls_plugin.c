/*
** tls_plugin.c -- linked into the luaio CLI instead of tls.c: no engine is
** built in.  The CLI's luaio._cli preloads luaio.tls from the module next
** to the executable (build/lib/luaio/tls.so, or PREFIX/lib/lua/5.4/luaio/
** tls.so once installed), so OpenSSL is loaded only by a script that uses
** TLS and start-up stays close to plain Lua's.
*/
#include "tls_abi.h"

void luaio__tls_builtin (lua_State *L) {
  (void)L;
}
