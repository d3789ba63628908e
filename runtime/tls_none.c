/*
** tls_none.c -- what stands in for tls.c in a build without OpenSSL
** (make TLS=0): every TLS call raises "built without TLS".  No stream
** ever gets an engine, so the engine functions below are never reached.
*/
#include "internal.h"

static int no_tls (lua_State *L) {
  return luaL_error(L, "TLS is not available: luaio was built without "
                    "OpenSSL (built without TLS; rebuild with TLS=1 and "
                    "libssl-dev installed)");
}

luaio_Tls *luaio__tls_new (lua_State *L, int ctx, int server,
                           const char *hostname, void *stream,
                           const char *fname) {
  (void)ctx; (void)server; (void)hostname; (void)stream; (void)fname;
  no_tls(L);
  return NULL;
}

void luaio__tls_free (luaio_Tls *t) { (void)t; }
int luaio__tls_feed (luaio_Tls *t, const char *p, size_t n) {
  (void)t; (void)p; (void)n; return -1;
}
int luaio__tls_handshake (luaio_Tls *t) { (void)t; return -1; }
int luaio__tls_done (luaio_Tls *t) { (void)t; return 0; }
long luaio__tls_read (luaio_Tls *t, char *out, size_t cap) {
  (void)t; (void)out; (void)cap; return LUAIO_TLS_FAILED;
}
int luaio__tls_write (luaio_Tls *t, const char *p, size_t n) {
  (void)t; (void)p; (void)n; return -1;
}
void luaio__tls_shutdown (luaio_Tls *t) { (void)t; }
int luaio__tls_eof (luaio_Tls *t) { (void)t; return -1; }
int luaio__tls_error (lua_State *L, luaio_Tls *t, const char *fname) {
  (void)t; (void)fname; return no_tls(L);
}
int luaio__tls_info (lua_State *L, luaio_Tls *t, const char *what) {
  (void)t; (void)what; lua_pushnil(L); return 1;
}

static int l_is_ssl_context (lua_State *L) {
  lua_pushboolean(L, 0);
  return 1;
}

void luaio__tls_open (lua_State *L) {
  lua_pushcfunction(L, no_tls);
  lua_setfield(L, -2, "ssl_context");
  lua_pushcfunction(L, l_is_ssl_context);
  lua_setfield(L, -2, "is_ssl_context");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "has_tls");
}
