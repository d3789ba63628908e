/*
** tls_abi.h -- the TLS plugin ABI: what the TLS engine (tls.c, OpenSSL)
** and the core (the streams) know of each other.
**
** They reach each other only through the two tables below, so the engine
** can be a module of its own (luaio.tls, loaded on first use: the CLI
** starts without loading OpenSSL, whose symbol relocations alone cost
** ~0.5 ms) or be linked in (core.so, libluaio: luaio__tls_builtin
** preloads it).  tls_none.c stands in for it in a build without OpenSSL.
**
** The core's table is found under a string registry key: the engine may
** be another shared object, which cannot know the address of a static
** of the core (the one registry key by name, as metatable names are).
** Both sides check abi.
*/
#ifndef luaio_tls_abi_h
#define luaio_tls_abi_h

#include "internal.h"

#define LUAIO_TLS_ABI 3
#define LUAIO_TLSCORE "luaio.tlscore"   /* registry: light TlsCore */
#define LUAIO_TLS_CLOSED (-1)   /* ops->read: the peer's close_notify */
#define LUAIO_TLS_FAILED (-2)   /* ops->read: the session failed */
#define LUAIO_ETLS (-100000)    /* a stream error whose reason is in its Tls */

typedef struct Tls Tls;

struct TlsOps {                 /* the engine, for the streams */
  int abi;
  Tls *(*create) (lua_State *L, int ctx, int server, const char *hostname,
                  void *stream, const char *fname);
  void (*destroy) (Tls *t);
  int (*feed) (Tls *t, const char *p, size_t n);
  int (*handshake) (Tls *t);     /* 1 done, 0 more input, -1 failed */
  int (*done) (Tls *t);
  long (*read) (Tls *t, char *out, size_t cap);
  int (*write) (Tls *t, const char *p, size_t n);
  void (*shutdown) (Tls *t);
  int (*eof) (Tls *t);
  int (*error) (lua_State *L, Tls *t, const char *fname);
  int (*info) (lua_State *L, Tls *t, const char *what);
};

typedef struct TlsCore {        /* the core, for the engine */
  int abi;
  void (*new_error) (lua_State *L, const char *cls, const char *msg,
                     int traceback);
  void (*stream_out) (void *stream, const char *p, size_t n);
  void (*set_ops) (lua_State *L, const TlsOps *ops);
  const char *(*checkcstring) (lua_State *L, int arg, const char *fname);
  void *(*checkclass) (lua_State *L, int idx, const char *tname);
} TlsCore;

void luaio__tls_link_open (lua_State *L);   /* tls_link.c */
void luaio__stream_tls_out (void *stream, const char *p, size_t n);
void luaio__tls_builtin (lua_State *L);     /* tls.c, tls_none.c, tls_plugin.c */
LUAIO_API int luaopen_luaio_tls (lua_State *L);

#endif
