/*
** stream_tls.c -- TLS on a stream: the glue between a stream and the TLS
** engine (tls.c, reached through the tables of tls_abi.h).  Ciphertext
** read from the socket is fed to the engine, which decrypts into the
** stream's read buffer: readers see plaintext and know nothing of TLS.
** What is written goes through the engine, whose ciphertext comes back
** through luaio__stream_tls_out (stream_write.c) to be sent.  A failed
** session is kept as the stream's read and write error (SSLError).
**
** Cancellation: a cancelled handshake wait leaves the session as it is
** (streams.lua then aborts the stream: it closes at once).
*/
#include "stream.h"


/* ---------------------------------------------------------- TLS */

/* The TLS session failed: reads and writes raise its SSLError. */
void luaio__stream_tls_failed (Stream *s) {
  if (s->rerr == 0) s->rerr = LUAIO_ETLS;
  if (s->werr == 0) s->werr = LUAIO_ETLS;
  s->eof = 1;
  luaio__stream_stop_reading(s);
  luaio__wake_all(&s->handshakers);
  luaio__wake_first(&s->readers);
  luaio__wake_all(&s->drainers);
}

/*
** Runs the TLS engine over the ciphertext it has: the handshake first
** (waking who waits for it), then decrypts everything into the buffer.
*/
static void tls_pump (Stream *s) {
  int r = s->tlsops->handshake(s->tls);
  if (r == 0) return;
  if (r < 0) { luaio__stream_tls_failed(s); return; }
  luaio__wake_all(&s->handshakers);
  for (;;) {
    long n;
    if (luaio__stream_reserve(s, 16 * 1024) != 0) {
      if (s->rerr == 0) s->rerr = UV_ENOMEM;
      s->eof = 1;
      luaio__stream_stop_reading(s);
      return;
    }
    n = s->tlsops->read(s->tls, s->buf + s->off + s->len,
                        s->cap - s->off - s->len);
    if (n > 0) s->len += (size_t)n;
    else if (n == 0) return;           /* needs more ciphertext */
    else if (n == LUAIO_TLS_CLOSED) {  /* close_notify: EOF */
      s->eof = 1;
      luaio__stream_stop_reading(s);
      return;
    }
    else { luaio__stream_tls_failed(s); return; }
  }
}

/* Ciphertext just read into the buffer's free tail: decrypt it. */
void luaio__stream_tls_input (Stream *s, const char *p, size_t n) {
  if (s->tlsops->feed(s->tls, p, n) != 0) luaio__stream_tls_failed(s);
  else tls_pump(s);
}

/*
** _tls_wrap(ctx, server_hostname, fname [, server_side]): the stream
** speaks TLS from now on.  The side, unless given: the server's for a
** connection a server accepted (asyncio's start_tls), else the client's.
** Bytes already read are the start of the peer's handshake.
*/
static int w_tls_wrap (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  const char *host = luaL_optstring(L, 3, NULL);
  const char *fname = luaL_optstring(L, 4, "start_tls");
  int server = lua_isnoneornil(L, 5) ? s->ep.parent != NULL
                                     : lua_toboolean(L, 5);
  const TlsOps *ops = luaio__G(L)->tls_ops;
  if (ops == NULL)                     /* (no context can exist then) */
    return luaL_error(L, "%s: TLS is not loaded (require \"luaio.tls\")",
                      fname);
  if (s->tls != NULL)
    return luaL_error(L, "%s: the stream already uses TLS", fname);
  luaio__stream_check_writable(L, s, fname);
  s->tls = ops->create(L, 2, server, host, s, fname);
  s->tlsops = ops;
  if (s->len > 0) {
    if (ops->feed(s->tls, s->buf + s->off, s->len) != 0)
      luaio__stream_tls_failed(s);
    s->off = s->len = 0;
  }
  return 0;
}

static int handshake_k (lua_State *L, int status, lua_KContext ctx);

/* Raises if the handshake failed, parks until it ends, or returns. */
static int handshake_wait (lua_State *L, Stream *s, const char *fname) {
  Task *t;
  if (s->tlsops->done(s->tls)) return 0;
  if (s->rerr != 0) return luaio__stream_error(L, s, s->rerr, fname);
  if (luaio__ep_is_closing(&s->ep))
    return luaL_error(L, "%s: the stream was closed during the TLS "
                      "handshake", fname);
  if (s->eof) {                        /* the peer closed before we began */
    s->tlsops->eof(s->tls);
    return s->tlsops->error(L, s->tls, fname);
  }
  luaio__stream_start_reading(s);
  t = luaio__check_suspend(L, fname);
  return luaio__park(L, t, &s->handshakers, NULL, fname, s, 0, handshake_k);
}

static int handshake_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return handshake_wait(L, luaio__stream_checkwriter(L),
                        luaL_optstring(L, 2, "start_tls"));
}

/* _tls_handshake(fname): waits until the handshake is done (suspends). */
static int w_tls_handshake (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  const char *fname = luaL_optstring(L, 2, "start_tls");
  if (s->tls == NULL)
    return luaL_error(L, "%s: the stream does not use TLS", fname);
  if (!s->eof && !luaio__ep_is_closing(&s->ep))
    tls_pump(s);                       /* the first flight */
  return handshake_wait(L, s, fname);
}

/* _tls_info(what): a fact about the session (tls.c), nil if not TLS. */
static int w_tls_info (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  const char *what = luaL_checkstring(L, 2);
  if (s->tls == NULL) return 0;
  return s->tlsops->info(L, s->tls, what);
}


/* the writer's methods of this file (stream.c makes the class) */
const luaL_Reg luaio__stream_tls_methods[] = {
  {"_tls_wrap", w_tls_wrap},
  {"_tls_handshake", w_tls_handshake},
  {"_tls_info", w_tls_info},
  {NULL, NULL}
};
