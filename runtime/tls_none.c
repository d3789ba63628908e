/*
** tls_none.c -- what stands in for tls.c in a build without OpenSSL
** (make TLS=0): luaio.tls says has_tls = false and every TLS call raises
** "built without TLS".  No engine operations are ever set, so no stream
** can be switched to TLS.
*/
#include "tls_abi.h"

static int no_tls (lua_State *L) {
  return luaL_error(L, "TLS is not available: luaio was built without "
                    "OpenSSL (built without TLS; rebuild with TLS=1 and "
                    "libssl-dev installed)");
}

static int is_ssl_context (lua_State *L) {
  lua_pushboolean(L, 0);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"ssl_context", no_tls},
  {"ssl_has_certificate", no_tls},
  {"is_ssl_context", is_ssl_context},
  {NULL, NULL}
};

LUAIO_API int luaopen_luaio_tls (lua_State *L) {
  luaL_newlib(L, funcs);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "has_tls");
  return 1;
}

void luaio__tls_builtin (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaio_tls);
  lua_setfield(L, -2, "luaio.tls");
  lua_pop(L, 1);
}
