/*
** stream_write.c -- writing to a stream: sends and write requests, drain
** and flow control, coalescing, write_eof, the write buffer's limits.
**
** Small writes are coalesced: while nothing is queued, up to 8 KiB (and
** never more than the high-water mark) written during a pass of the ready
** queue wait in the stream's pending buffer and go out in one send when
** the pass ends (the stream's hook on rt->pass_end; exit.c runs the hooks
** too when a script calls os.exit()).  A send tries uv_try_write first
** and queues only what the socket did not take (copied once into the
** write request); a write that does not fit sends what is pending, then
** itself, at once, and so does every write to a peer known to have closed
** and to a child's pipe.  drain() parks while more than the high-water
** mark (64 KiB) is queued, until it falls to the low-water mark (16 KiB).
** A write error is kept and raised by the next write or drain.  close()
** (stream.c) and write_eof() let pending and queued data go out first; a
** stream closed at once still offers its pending bytes to the socket.
**
** The end of a run: a stream with queued bytes (and no write error) is
** on the runtime's writing list, its bytes counted in rt->wqueued, so
** shutdown runs the loop until they are written or shutdown_timeout
** passes (loop.c), closed by the script or not.  Then, and at exit()
** (os.exit), where the loop will not run again, its hook writes what
** libuv still has queued itself, polling the socket until a deadline
** (exit.c: none at loop close, shutdown_timeout at exit), and closes.
**
** Cancellation: a cancelled drain leaves the data queued.
*/
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"


/* ---------------------------------------------------------- sending */

/* A write request: a copy of what the socket did not take at once. */
typedef struct WriteReq {
  uv_write_t req;
  Stream *s;
  struct WriteReq *prev, *next;  /* s's requests, oldest first */
  size_t len;
  char data[1];
} WriteReq;

static void write_at_end (luaio_Runtime *rt, Hook *h);

/* s counts n bytes still to write in rt->wqueued; it is on the runtime's
   writing list while n > 0. */
static void count (Stream *s, size_t n) {
  luaio_Runtime *rt = s->ep.rt;
  rt->wqueued = rt->wqueued - s->counted + n;
  s->counted = n;
  if (n == 0) luaio__unhook(&rt->writing, &s->writing);
  else if (!s->writing.linked)
    luaio__hook(&rt->writing, &s->writing, write_at_end);
}

/* s writes nothing more (its handle is closed). */
void luaio__stream_uncount (Stream *s) {
  count(s, 0);
}

static void on_write (uv_write_t *req, int status) {
  WriteReq *w = (WriteReq *)req;
  Stream *s = w->s;
  s->wbuf -= w->len;
  if (w->prev != NULL) w->prev->next = w->next;
  else s->whead = w->next;
  if (w->next != NULL) w->next->prev = w->prev;
  else s->wtail = w->prev;
  free(w);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) {
    s->werr = status;
    luaio__wake_all(&s->drainers);
  }
  /* after an error, or a write cancelled by a close, nothing more will
     be written */
  count(s, s->werr != 0 || status == UV_ECANCELED ? 0 : s->wbuf);
  if (s->wbuf <= s->low) luaio__wake_all(&s->drainers);
  if (s->ep.closing && (s->wbuf == 0 || s->werr != 0))
    luaio__stream_close_now(s);
}

/* Sends bytes: the socket takes what it can, the rest is queued in a
   write request; returns 0 or a libuv error. */
static int send_bytes (Stream *s, const char *p, size_t len) {
  uv_buf_t b;
  WriteReq *w;
  int r;
  if (s->wbuf == 0) {
    b = uv_buf_init((char *)p, (unsigned)len);
    r = uv_try_write(&s->u.s, &b, 1);
    if (r >= 0) {
      p += r;
      len -= (size_t)r;
      if (len == 0) return 0;
    }
    else if (r != UV_EAGAIN && r != UV_ENOSYS) return r;
  }
  w = (WriteReq *)malloc(sizeof(WriteReq) + len);
  if (w == NULL) return UV_ENOMEM;
  w->s = s;
  w->len = len;
  memcpy(w->data, p, len);
  b = uv_buf_init(w->data, (unsigned)len);
  r = uv_write(&w->req, &s->u.s, &b, 1, on_write);
  if (r != 0) { free(w); return r; }
  w->next = NULL;
  w->prev = s->wtail;
  if (s->wtail != NULL) s->wtail->next = w;
  else s->whead = w;
  s->wtail = w;
  s->wbuf += len;
  if (s->werr == 0) count(s, s->wbuf);
  return 0;
}


/* ---------------------------------------------------------- at exit() */

/*
** Writes n bytes of p to fd, which is non-blocking, polling it while it
** is full until deadline (uv_hrtime): returns how many it wrote.  A
** socket is written with send(MSG_NOSIGNAL): a peer gone is an error,
** not a SIGPIPE at exit.
*/
static size_t write_until (uv_os_fd_t fd, const char *p, size_t n,
                           uint64_t deadline) {
  size_t done = 0;
  int sock = 1;
  while (done < n) {
    ssize_t r;
    if (sock) {
      r = send(fd, p + done, n - done, MSG_NOSIGNAL);
      if (r < 0 && errno == ENOTSOCK) { sock = 0; continue; }
    }
    else r = write(fd, p + done, n - done);
    if (r > 0) done += (size_t)r;
    else if (r < 0 && errno == EINTR) continue;
    else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd;
      uint64_t now = uv_hrtime(), ms;
      if (now >= deadline) break;
      ms = (deadline - now) / 1000000 + 1;
      pfd.fd = fd;
      pfd.events = POLLOUT;
      pfd.revents = 0;
      if (poll(&pfd, 1, ms > INT_MAX ? INT_MAX : (int)ms) < 0 &&
          errno != EINTR)
        break;
    }
    else break;                        /* an error: the peer is gone */
  }
  return done;
}

/*
** The hook of a stream on the writing list, called when the run ends
** and the loop will not write again (exit.c): at loop close, after
** shutdown_timeout, and at exit().  What libuv has not written yet --
** the last uv_stream_get_write_queue_size() bytes of s's requests, in
** order: the requests before them are written, their callbacks not run
** -- is written now, until rt->wdeadline.  Then the handle is closed, so
** that libuv, should the loop run again, cannot write the bytes a second
** time (it cancels the requests).  What could not be written stays
** counted, and s on the list.  (libuv's queue is only read, through its
** public API.)
*/
static void write_at_end (luaio_Runtime *rt, Hook *h) {
  Stream *s = (Stream *)((char *)h - offsetof(Stream, writing));
  size_t left = uv_stream_get_write_queue_size(&s->u.s), skip;
  uv_os_fd_t fd;
  WriteReq *w;
  if (!luaio__ep_live(&s->ep) || uv_fileno(&s->u.h, &fd) != 0) {
    count(s, 0);                       /* closed at once: dropped */
    return;
  }
  if (left > s->wbuf) left = s->wbuf;
  skip = s->wbuf - left;
  for (w = s->whead; w != NULL && skip >= w->len; w = w->next)
    skip -= w->len;
  for (; w != NULL && left > 0; w = w->next) {
    size_t n = w->len - skip;
    size_t done = write_until(fd, w->data + skip, n, rt->wdeadline);
    left -= done;
    skip = 0;
    if (done < n) break;
  }
  luaio__stream_close_now(s);
  count(s, left);
}


/* ---------------------------------------------------------- coalescing */

/* Takes s off the runtime's pass-end list. */
static void unlink_pending (Stream *s) {
  luaio__unhook(&s->ep.rt->pass_end, &s->flush);
}

/* The pass has ended (or the process exits): s sends what it holds. */
static void on_pass_end (luaio_Runtime *rt, Hook *h) {
  Stream *s = (Stream *)((char *)h - offsetof(Stream, flush));
  (void)rt;
  luaio__stream_flush_pending(s);
}

/* Puts s last on the pass-end list: the first to write is the first to
   send (a pass serves connections in the order their data came in). */
static void link_pending (Stream *s) {
  luaio__hook(&s->ep.rt->pass_end, &s->flush, on_pass_end);
}

/* Forgets the pending bytes (the stream closes at once). */
void luaio__stream_drop_pending (Stream *s) {
  s->npend = 0;
  unlink_pending(s);
}

/* Closing at once: the socket gets what it takes of the pending bytes
   now (all it would have got had they not waited), the rest is dropped:
   the alert of a failed TLS handshake still reaches the peer. */
void luaio__stream_try_pending (Stream *s) {
  if (s->npend > 0 && luaio__ep_live(&s->ep)) {
    uv_buf_t b = uv_buf_init(s->pend, (unsigned)s->npend);
    (void)uv_try_write(&s->u.s, &b, 1);
  }
  luaio__stream_drop_pending(s);
}

/* Sends the pending bytes (taken before any error was kept: a failed TLS
   handshake's alert is among them); returns 0 or a libuv error. */
static int send_pending (Stream *s) {
  size_t n = s->npend;
  int r = 0;
  luaio__stream_drop_pending(s);
  if (n > 0 && luaio__ep_live(&s->ep))
    r = send_bytes(s, s->pend, n);
  if (s->pendcap > PENDING_KEEP) {     /* (send_bytes copied what it kept) */
    free(s->pend);
    s->pend = NULL;
    s->pendcap = 0;
  }
  return r;
}

/* Sends the pending bytes now, keeping an error for the next write. */
void luaio__stream_flush_pending (Stream *s) {
  int r = send_pending(s);
  if (r != 0 && s->werr == 0) {
    s->werr = r;
    luaio__wake_all(&s->drainers);
  }
}

/* Keeps len bytes for the end of the pass: 1, or 0 when they must be sent
   now: they do not fit, something is queued, no pass will come, or the
   peer is known to have closed or reset (so that the error of writing to
   it comes from this write, as without coalescing). */
static int coalesce (Stream *s, const char *p, size_t len) {
  size_t total = s->npend + len;
  if (s->wbuf != 0 || s->ep.closing || s->eof || s->rerr != 0 || s->direct ||
      total > COALESCE_MAX || total > s->high)
    return 0;
  if (total > s->pendcap) {
    size_t cap = s->pendcap ? s->pendcap * 2 : 256;
    char *np;
    while (cap < total) cap *= 2;
    if (cap > COALESCE_MAX) cap = COALESCE_MAX;
    np = (char *)realloc(s->pend, cap);
    if (np == NULL) return 0;
    s->pend = np;
    s->pendcap = cap;
  }
  if (s->npend == 0) {                 /* first bytes of this pass */
    if (!luaio__want_pass(s->ep.rt)) return 0;
    link_pending(s);
  }
  memcpy(s->pend + s->npend, p, len);
  s->npend = total;
  return 1;
}


/* ---------------------------------------------------------- writing */

/* Writes bytes to the socket (coalesced when small); 0 or a libuv error. */
static int raw_write (Stream *s, const char *p, size_t len) {
  int r;
  if (coalesce(s, p, len)) return 0;
  if (s->npend > 0 && (r = send_pending(s)) != 0) return r;  /* in order */
  return send_bytes(s, p, len);
}

/* Ciphertext from the TLS engine (tls.c's output BIO). */
void luaio__stream_tls_out (void *p, const char *data, size_t len) {
  Stream *s = (Stream *)p;
  int r;
  if (s->werr != 0 || !luaio__ep_live(&s->ep)) return;
  r = raw_write(s, data, len);
  if (r != 0) {
    s->werr = r;
    luaio__wake_all(&s->drainers);
  }
}

/* Writes data (through TLS when the stream uses it); 0 or an error. */
static int write_bytes (Stream *s, const char *p, size_t len) {
  if (s->tls == NULL) return raw_write(s, p, len);
  if (s->tlsops->write(s->tls, p, len) != 0) {
    luaio__stream_tls_failed(s);
    return LUAIO_ETLS;
  }
  return s->werr;
}

/* Raises unless s can be written to. */
void luaio__stream_check_writable (lua_State *L, Stream *s,
                                   const char *fname) {
  if (s->werr != 0) luaio__stream_error(L, s, s->werr, fname);
  if (luaio__ep_is_closing(&s->ep))
    luaL_error(L, "%s: the writer is closed", fname);
  if (s->eof_sent) luaL_error(L, "%s: write_eof() was called", fname);
}

/* write(data) */
static int w_write (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  size_t len;
  const char *p;
  int r;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaio__typeerror(L, 2, "write", "string");
  p = lua_tolstring(L, 2, &len);
  luaio__stream_check_writable(L, s, "write");
  if (len == 0) return 0;
  r = write_bytes(s, p, len);
  if (r != 0) {
    if (s->werr == 0) s->werr = r;
    return luaio__stream_error(L, s, r, "write");
  }
  return 0;
}

/* writelines(list) */
static int w_writelines (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  luaL_Buffer b;
  lua_Integer i, n;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaio__stream_check_writable(L, s, "writelines");
  n = luaL_len(L, 2);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
      return luaL_error(L, "writelines: item %I is not a string", i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  if (lua_rawlen(L, -1) == 0) return 0;
  r = write_bytes(s, lua_tostring(L, -1), lua_rawlen(L, -1));
  if (r != 0) {
    if (s->werr == 0) s->werr = r;
    return luaio__stream_error(L, s, r, "writelines");
  }
  return 0;
}


/* ---------------------------------------------------------- flow control */

static int drain_k (lua_State *L, int status, lua_KContext ctx);

/* drain(): waits while more than the high-water mark is queued. */
static int w_drain (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  Task *t;
  if (s->werr != 0) return luaio__stream_error(L, s, s->werr, "drain");
  if (!s->ep.open && s->wbuf > 0)
    return luaio__oserror(L, UV_EPIPE, "drain");
  if (s->wbuf <= s->high) return 0;
  t = luaio__check_suspend(L, "drain");
  return luaio__park(L, t, &s->drainers, NULL, "drain", s, 0, drain_k);
}

static int drain_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = luaio__stream_checkwriter(L);
  (void)status; (void)ctx;
  luaio__resumed(L);
  if (s->werr != 0) return luaio__stream_error(L, s, s->werr, "drain");
  if (s->wbuf > s->low && s->ep.open) {
    Task *t = luaio__check_suspend(L, "drain");
    return luaio__park(L, t, &s->drainers, NULL, "drain", s, 0, drain_k);
  }
  return 0;
}

/* transport_buffered(): the bytes written that the socket has not taken
   yet, pending ones included.  libuv's count falls as a large write goes
   out piece by piece (wbuf only when the whole request is written): the
   HTTP server's write_timeout watches it for progress. */
static int w_transport_buffered (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  size_t q = s->wbuf;
  if (luaio__ep_live(&s->ep)) {
    size_t u = uv_stream_get_write_queue_size(&s->u.s);
    if (u < q) q = u;
  }
  lua_pushinteger(L, (lua_Integer)(q + s->npend));
  return 1;
}

/* set_write_buffer_limits([high [, low]]) */
static int w_set_limits (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  lua_Integer high = luaL_optinteger(L, 2, HIGH_WATER);
  lua_Integer low = luaL_optinteger(L, 3, high / 4);
  if (high < 0 || low < 0 || low > high)
    return luaL_error(L, "set_write_buffer_limits: need high >= low >= 0");
  s->high = (size_t)high;
  s->low = (size_t)low;
  luaio__stream_flush_pending(s);      /* (pending bytes fit the old mark) */
  return 0;
}


/* ---------------------------------------------------------- write_eof */

static void on_shutdown (uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

/* write_eof(): no more writes; the peer reads EOF once data is sent. */
static int w_write_eof (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  uv_shutdown_t *req;
  int r;
  if (s->tls != NULL)
    return luaL_error(L, "write_eof: a TLS stream cannot half-close "
                      "(can_write_eof() is false); close() it instead");
  if (s->eof_sent || luaio__ep_is_closing(&s->ep)) return 0;
  luaio__stream_flush_pending(s);      /* the data goes before the EOF */
  req = (uv_shutdown_t *)malloc(sizeof(*req));
  if (req == NULL) return luaL_error(L, "not enough memory");
  r = uv_shutdown(req, &s->u.s, on_shutdown);
  if (r != 0) { free(req); return luaio__oserror(L, r, "write_eof"); }
  s->eof_sent = 1;
  return 0;
}

static int w_can_write_eof (lua_State *L) {
  lua_pushboolean(L, luaio__stream_checkwriter(L)->tls == NULL);
  return 1;
}


/* ---------------------------------------------------------- registration */

/* the writer's methods of this file (stream.c makes the class) */
const luaL_Reg luaio__stream_write_methods[] = {
  {"write", w_write},
  {"writelines", w_writelines},
  {"drain", w_drain},
  {"write_eof", w_write_eof},
  {"can_write_eof", w_can_write_eof},
  {"transport_buffered", w_transport_buffered},
  {"set_write_buffer_limits", w_set_limits},
  {NULL, NULL}
};
