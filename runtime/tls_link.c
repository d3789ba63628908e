/*
** tls_link.c -- the core's side of the link to the TLS engine (tls.c),
** which may live in its own module (luaio.tls): the registry holds the
** core functions the engine calls; the engine hands back its operations,
** kept per state for the streams (stream_tls.c).
*/
#include "tls_abi.h"

static void set_ops (lua_State *L, const TlsOps *ops) {
  luaio__state(L)->tls_ops = ops;
}

static const TlsCore core = {
  LUAIO_TLS_ABI, luaio__new_error, luaio__stream_tls_out, set_ops,
  luaio__checkcstring, luaio__checkclass
};

/* At luaopen_luaio_core: publish the core's side; preload a linked-in engine. */
void luaio__tls_link_open (lua_State *L) {
  lua_pushlightuserdata(L, (void *)&core);
  lua_setfield(L, LUA_REGISTRYINDEX, LUAIO_TLSCORE);
  luaio__tls_builtin(L);
}
