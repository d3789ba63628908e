/*
** stream.c -- TCP and unix-socket streams: StreamReader / StreamWriter on
** one C buffer per stream, connecting, and servers.
**
** Reading: libuv reads into one growable buffer (no allocation per read);
** a reader parks until the bytes it needs are there; separators are
** searched in C.  Reading pauses while more than 2 * limit bytes wait
** unread, as asyncio does.  One reader at a time: a second concurrent
** read is an error.  At EOF, read(n) and readline() return nil, read()
** the rest ("" when nothing is left).
**
** Writing: small writes are coalesced: while nothing is queued, up to
** 8 KiB (and never more than the high-water mark) written during a pass
** of the ready queue wait in the stream's pending buffer and go out in
** one send when the pass ends (sched.c calls luaio__send_coalesced).  A
** send tries uv_try_write first and queues only what the socket did not
** take (copied once into the write request); a write that does not fit
** sends what is pending, then itself, at once, and so does every write
** to a peer known to have closed and to a child's pipe.  drain() parks
** while more than the high-water mark (64 KiB) is queued, until it falls
** to the low-water mark (16 KiB).  A write error is kept and raised by
** the next write or drain.  close() and write_eof() let pending and
** queued data go out first.
**
** Memory: the Stream struct holds the libuv handle and is freed in its
** close callback once no Lua object (reader, writer) refers to it.  Every
** open stream and server is on the runtime's list and closed at shutdown.
** libuv callbacks only move data and wake tasks; new connections are
** handed to Lua from the drain (E_ACCEPT).
**
** Cancellation: a cancelled read leaves the buffer intact (nothing is
** consumed); a cancelled connect closes its socket; a cancelled drain
** leaves the data queued.
*/
#define _GNU_SOURCE          /* memmem */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tls_abi.h"

#define LUAIO_READER "luaio.StreamReader"
#define LUAIO_WRITER "luaio.StreamWriter"
#define LUAIO_SERVER "luaio.Server"

#define DEFAULT_LIMIT (64 * 1024)
#define HIGH_WATER (64 * 1024)
#define LOW_WATER (16 * 1024)
#define READ_CHUNK (64 * 1024)
#define COALESCE_MAX (8 * 1024)  /* bytes a stream may hold for a pass */
#define PENDING_KEEP 1024        /* a larger pending buffer is freed once sent */

typedef struct Server Server;
typedef struct Endpoint Endpoint;

/* How what was left open is named in the loop's debug report. */
static const char LEAK[] = "stream(s) or server(s)";

/*
** What a kind of endpoint (a stream, a server) does at each step of the
** close protocol it shares with the other kind.
*/
typedef struct EndpointKind {
  void (*close) (Endpoint *e);     /* close() began (closing is set) */
  void (*shutdown) (Endpoint *e);  /* the loop shuts down: close at once */
  void (*closed) (Endpoint *e);    /* its own steps once the handle is
                                      closed, before wait_closed returns */
  void (*destroy) (Endpoint *e);   /* frees it: nothing refers to it */
} EndpointKind;

/*
** The close protocol writers and servers share, embedded first in both
** (so a Stream or Server is its Endpoint, and its handle's data).  The
** handle is on rt->open from its start to its close callback (closed at
** shutdown); close() begins once; wait_closed() parks on closers until
** the handle is closed and so are the endpoints it waits for (a server's
** connections: their parent); the memory is freed once all that is done
** and no Lua object refers to it.
*/
struct Endpoint {
  Hook node;                   /* on rt->open while the handle is open */
  const EndpointKind *kind;
  luaio_Runtime *rt;
  uv_handle_t *h;              /* its libuv handle */
  Endpoint *parent;            /* waits for this one to close, or NULL */
  int open;                    /* the handle is not closed yet */
  int closing;                 /* its close has begun */
  int refs;                    /* Lua objects referring to it */
  int nchild;                  /* endpoints with this one as parent, open */
  WaitList closers;            /* tasks in wait_closed() */
};

typedef struct Stream {
  Endpoint ep;                 /* first; ep.parent: the server that
                                  accepted it */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } u;
  struct Stream *next_pending; /* accepted, not yet given to Lua */
  int is_pipe;
  int autoclose;               /* a child's output pipe: close at EOF */
  /* reading */
  char *buf;
  size_t off, len, cap, limit;
  int reading, eof, rerr;
  WaitList readers;
  size_t want;                 /* bytes a waiting readexactly needs */
  /* writing */
  size_t wbuf, high, low;
  int werr, eof_sent;
  WaitList drainers;
  /* peername and sockname, kept from the start (asyncio caches them) */
  struct sockaddr_storage peer, sock;
  int has_names;
  /* TLS (tls.c): the buffer holds plaintext; NULL for plain streams */
  Tls *tls;
  const TlsOps *tlsops;
  WaitList handshakers;
  /* writes coalesced for the end of the pass (flush on rt->pass_end) */
  char *pend;
  size_t npend, pendcap;
  int direct;                  /* never coalesce (a child's pipe) */
  Hook flush;
} Stream;

struct Server {
  Endpoint ep;                 /* first; ep.nchild: its open connections */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  Stream *pending;             /* accepted connections for the drain */
  int queued;                  /* run_accept is in the ready queue */
  int is_pipe;
  int anchor;                  /* the Lua server, while it listens */
  size_t limit;
  WaitList forever;
};

/*
** A reader or writer object.  It is recognised by its size and tag (the
** address of a private static) instead of by its metatable: as safe (the
** tag is read only from a block of the right size, and no Lua code can
** write a userdata's bytes), and a third of the C API calls of a
** metatable check, on every read and write.
*/
typedef struct Box { const char *tag; Stream *s; } Box;
static const char READER_TAG = 'r', WRITER_TAG = 'w';
typedef struct SBox { Server *sv; } SBox;


/* ---------------------------------------------------------- closing */

/* Its handle is open and not closing. */
static int ep_live (Endpoint *e) {
  return e->open && !uv_is_closing(e->h);
}

/* is_closing(): close() began, or the handle is closed. */
static int ep_is_closing (Endpoint *e) {
  return e->closing || !e->open;
}

/* e's handle is closed: once its children are too, its wait_closed()
   returns; it is freed once no Lua object refers to it either. */
static void settle (Endpoint *e) {
  if (e->open || e->nchild > 0) return;
  luaio__wake_all(&e->closers);
  if (e->refs == 0) e->kind->destroy(e);
}

/* The close callback of every endpoint's handle. */
static void ep_closed (uv_handle_t *h) {
  Endpoint *e = (Endpoint *)h->data;
  Endpoint *parent = e->parent;
  e->open = 0;
  luaio__unhook(&e->rt->open, &e->node);
  e->rt->open_handles--;
  e->kind->closed(e);
  settle(e);                           /* (may free e) */
  if (parent != NULL) {
    parent->nchild--;
    settle(parent);
  }
}

/* Shutdown: what is still open is closed. */
static void ep_shutdown (luaio_Runtime *rt, Hook *h) {
  Endpoint *e = (Endpoint *)h;
  (void)rt;
  e->kind->shutdown(e);
}

/* The handle h of e has started: e joins the runtime's open list (its
   data is e). */
static void ep_start (Endpoint *e, const EndpointKind *kind,
                      luaio_Runtime *rt, uv_handle_t *h) {
  e->kind = kind;
  e->rt = rt;
  e->h = h;
  h->data = e;
  e->open = 1;
  luaio__hook(&rt->open, &e->node, ep_shutdown);
  e->node.leak = LEAK;
  rt->open_handles++;
}

/* child was accepted by parent: parent's close waits for child's. */
static void ep_adopt (Endpoint *parent, Endpoint *child) {
  child->parent = parent;
  parent->nchild++;
}

/* Closes the handle now, unless it is closed or closing: 1 if it did. */
static int ep_close_handle (Endpoint *e) {
  if (!ep_live(e)) return 0;
  e->closing = 1;
  uv_close(e->h, ep_closed);
  return 1;
}

/* close(): begins e's close, once: 1 if this call began it. */
static int ep_close (Endpoint *e) {
  if (e->closing || !e->open) return 0;
  e->closing = 1;
  e->kind->close(e);
  return 1;
}

static int closed_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return 0;
}

/* wait_closed(): until e is closed, and its children too (suspends;
   cancelled, it only stops waiting). */
static int ep_wait_closed (lua_State *L, Endpoint *e, const char *what) {
  Task *t;
  if (e->closing && !e->open && e->nchild == 0) return 0;
  t = luaio__check_suspend(L, "wait_closed");
  return luaio__park(L, t, &e->closers, NULL, what, e, 0, closed_k);
}

/* A Lua object of e is collected.  When it was the last, e closes the
   way close() does it, or, closed already, is freed. */
static void ep_drop (Endpoint *e) {
  if (--e->refs > 0) return;
  if (e->open) ep_close(e);            /* freed once closed */
  else if (e->nchild == 0) e->kind->destroy(e);
}

/* ---------------------------------------------------------- closing streams */

static void drop_pending (Stream *s);
static void try_pending (Stream *s);
static void send_pending_now (Stream *s);

static void stream_destroy (Endpoint *e) {
  Stream *s = (Stream *)e;
  drop_pending(s);
  if (s->tls != NULL) s->tlsops->destroy(s->tls);
  free(s->buf);
  free(s->pend);
  free(s);
}

/* The handle is closed: readers see EOF; who waits on it wakes. */
static void stream_closed (Endpoint *e) {
  Stream *s = (Stream *)e;
  s->eof = 1;
  luaio__wake_all(&s->readers);
  luaio__wake_all(&s->drainers);
  luaio__wake_all(&s->handshakers);
}

/*
** A TLS peer's unsolicited records (session tickets) left unread in the
** socket would make close() send a reset instead of a FIN, and a reset
** can destroy data the peer has not read yet: read and drop them first.
*/
static void discard_input (Stream *s) {
  uv_os_fd_t fd;
  char tmp[4096];
  int i;
  if (uv_fileno(&s->u.h, &fd) != 0) return;
  for (i = 0; i < 64; i++)
    if (recv(fd, tmp, sizeof tmp, MSG_DONTWAIT) <= 0) break;
}

/* Closes the handle now: queued writes are cancelled; of the pending
   bytes, the socket gets what it takes at once. */
static void close_now (Stream *s) {
  try_pending(s);
  if (!ep_live(&s->ep)) return;
  if (s->tls != NULL) discard_input(s);
  if (s->reading) uv_read_stop(&s->u.s);
  s->reading = 0;
  ep_close_handle(&s->ep);
}

/* close(): once what is queued (and TLS's close_notify) is written.
   closing is set: writes are no longer coalesced. */
static void close_soon (Endpoint *e) {
  Stream *s = (Stream *)e;
  int bye = s->tls != NULL && s->werr == 0;
  send_pending_now(s);                 /* what was written goes first */
  if (bye) s->tlsops->shutdown(s->tls);
  s->eof = 1;
  luaio__wake_all(&s->readers);
  if (s->wbuf == 0 || s->werr != 0) close_now(s);
}

/* Shutdown: closed at once (what was written still goes to the socket
   if it takes it). */
static void stream_shutdown (Endpoint *e) {
  close_now((Stream *)e);
}

static const EndpointKind stream_kind = {
  close_soon, stream_shutdown, stream_closed, stream_destroy
};

/*
** A reader or writer object is collected.  When the last goes, the stream
** is closed the way close() does it: what is queued is still written (a
** handler may well return, and its writer be collected, before its last
** writes are out; closing at once would lose them).
*/
static int box_gc (lua_State *L) {
  Box *b = (Box *)lua_touserdata(L, 1);
  Stream *s = b->s;
  if (s == NULL) return 0;
  b->s = NULL;
  ep_drop(&s->ep);
  return 0;
}


/* ---------------------------------------------------------- reading */

/* Makes room for want more bytes after the buffered ones: 0 or -1. */
static int reserve (Stream *s, size_t want) {
  if (s->len == 0) s->off = 0;
  if (s->cap - s->off - s->len < want) {
    if (s->off > 0) {                  /* compact first */
      memmove(s->buf, s->buf + s->off, s->len);
      s->off = 0;
    }
    if (s->cap - s->len < want) {
      size_t cap = s->cap ? s->cap * 2 : READ_CHUNK;
      char *p;
      while (cap - s->len < want) cap *= 2;
      p = (char *)realloc(s->buf, cap);
      if (p == NULL) return -1;
      s->buf = p;
      s->cap = cap;
    }
  }
  return 0;
}

static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *out) {
  Stream *s = (Stream *)h->data;
  (void)hint;
  if (reserve(s, READ_CHUNK) != 0) { out->base = NULL; out->len = 0; return; }
  out->base = s->buf + s->off + s->len;
  out->len = s->cap - s->off - s->len;
}

static void stop_reading (Stream *s) {
  if (s->reading) uv_read_stop(&s->u.s);
  s->reading = 0;
}

/* The TLS session failed: reads and writes raise its SSLError. */
static void tls_failed (Stream *s) {
  if (s->rerr == 0) s->rerr = LUAIO_ETLS;
  if (s->werr == 0) s->werr = LUAIO_ETLS;
  s->eof = 1;
  stop_reading(s);
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
  if (r < 0) { tls_failed(s); return; }
  luaio__wake_all(&s->handshakers);
  for (;;) {
    long n;
    if (reserve(s, 16 * 1024) != 0) {
      if (s->rerr == 0) s->rerr = UV_ENOMEM;
      s->eof = 1;
      stop_reading(s);
      return;
    }
    n = s->tlsops->read(s->tls, s->buf + s->off + s->len,
                        s->cap - s->off - s->len);
    if (n > 0) s->len += (size_t)n;
    else if (n == 0) return;           /* needs more ciphertext */
    else if (n == LUAIO_TLS_CLOSED) {  /* close_notify: EOF */
      s->eof = 1;
      stop_reading(s);
      return;
    }
    else { tls_failed(s); return; }
  }
}

/* Ciphertext just read into the buffer's free tail: decrypt it. */
static void tls_input (Stream *s, const char *p, size_t n) {
  if (s->tlsops->feed(s->tls, p, n) != 0) { tls_failed(s); return; }
  tls_pump(s);
}

static void on_read (uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  Stream *s = (Stream *)h->data;
  if (n > 0) {
    if (s->tls != NULL) tls_input(s, b->base, (size_t)n);
    else s->len += (size_t)n;
    if (s->reading && s->len > 2 * s->limit && s->len >= s->want) {   /* pause */
      uv_read_stop(h);
      s->reading = 0;
    }
  }
  else if (n < 0) {
    if (n != UV_EOF) s->rerr = (int)n;
    else if (s->tls != NULL && s->tlsops->eof(s->tls) != 0 && s->rerr == 0)
      s->rerr = LUAIO_ETLS;
    s->eof = 1;
    luaio__wake_all(&s->handshakers);
    uv_read_stop(h);
    s->reading = 0;
    if (s->autoclose) {                /* nothing more can come: release it */
      luaio__wake_first(&s->readers);
      close_now(s);
      return;
    }
  }
  luaio__wake_first(&s->readers);
}

static void start_reading (Stream *s) {
  if (!s->reading && !s->eof && s->ep.open && !s->ep.closing) {
    if (uv_read_start(&s->u.s, on_alloc, on_read) == 0) s->reading = 1;
  }
}

/* The stream of the reader (tag READER_TAG) or writer at arg 1. */
static Stream *checkend (lua_State *L, const char *tag, const char *tname) {
  Box *b = (Box *)lua_touserdata(L, 1);
  if (b == NULL || lua_rawlen(L, 1) != sizeof(Box) || b->tag != tag)
    b = (Box *)luaL_checkudata(L, 1, tname);   /* raises */
  if (b->s == NULL) luaL_error(L, "the stream is closed");
  return b->s;
}

static Stream *checkreader (lua_State *L) {
  return checkend(L, &READER_TAG, LUAIO_READER);
}

/* Takes n bytes from the buffer, pushing them. */
static void consume (lua_State *L, Stream *s, size_t n) {
  if (n == 0) lua_pushliteral(L, "");     /* (buf may still be NULL) */
  else lua_pushlstring(L, s->buf + s->off, n);
  s->off += n;
  s->len -= n;
  if (s->len == 0) s->off = 0;
  if (!s->reading && s->len <= s->limit) start_reading(s);
}

/* Remembers the socket's names (asyncio keeps them after close). */
static void keep_names (Stream *s) {
  int n = sizeof s->peer;
  if (s->is_pipe || s->has_names) return;
  if (uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&s->peer, &n) != 0)
    s->peer.ss_family = AF_UNSPEC;
  n = sizeof s->sock;
  if (uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&s->sock, &n) != 0)
    s->sock.ss_family = AF_UNSPEC;
  s->has_names = 1;
}

/* Raises a kept error: OSError from libuv, SSLError from the TLS engine. */
static int stream_error (lua_State *L, Stream *s, int err, const char *fname) {
  if (err == LUAIO_ETLS && s->tls != NULL)
    return s->tlsops->error(L, s->tls, fname);
  return luaio__oserror(L, err, fname);
}

/* Raises a read error kept from libuv, if any. */
static void check_rerr (lua_State *L, Stream *s, const char *fname) {
  if (s->rerr != 0 && s->len == 0) stream_error(L, s, s->rerr, fname);
}

/* Parks the calling task until more data or EOF; k retries. */
static int wait_data (lua_State *L, Stream *s, const char *fname,
                      lua_KContext ctx, lua_KFunction k) {
  Task *t;
  if (s->readers.head != NULL)
    return luaL_error(L, "%s: another task is already reading from this "
                      "stream", fname);
  t = luaio__check_suspend_G(L, s->ep.rt->G, fname);
  start_reading(s);
  return luaio__park(L, t, &s->readers, NULL, fname, s, ctx, k);
}

static int read_k (lua_State *L, int status, lua_KContext ctx);

/* read's n once self is known: parks (n in the context) or pushes. */
static int read_some (lua_State *L, Stream *s, lua_Integer n) {
  if (n < 0) {                         /* to EOF */
    if (!s->eof) return wait_data(L, s, "read", (lua_KContext)n, read_k);
    check_rerr(L, s, "read");
    consume(L, s, s->len);
    return 1;
  }
  if (n == 0) { lua_pushliteral(L, ""); return 1; }
  if (s->len == 0) {
    if (!s->eof) return wait_data(L, s, "read", (lua_KContext)n, read_k);
    check_rerr(L, s, "read");
    lua_pushnil(L);
    return 1;
  }
  consume(L, s, (size_t)n < s->len ? (size_t)n : s->len);
  return 1;
}

/* read([n]) */
static int do_read (lua_State *L) {
  Stream *s = checkreader(L);
  int isnum;
  lua_Integer n = lua_tointegerx(L, 2, &isnum);   /* the usual case */
  if (!isnum) n = luaL_optinteger(L, 2, -1);      /* nil, or raises */
  return read_some(L, s, n);
}

/* Self was checked before the task parked; its box, on this stack, is
   not collected, so its stream is still there (closed or not). */
static int read_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = ((Box *)lua_touserdata(L, 1))->s;
  (void)status;
  luaio__resumed_G(L, s->ep.rt->G);
  return read_some(L, s, (lua_Integer)ctx);
}

/* Searches sep in the buffer: offset of its start, or -1. */
static long find (Stream *s, const char *sep, size_t seplen) {
  const char *p, *base;
  if (s->len < seplen || s->buf == NULL) return -1;   /* (buf: none yet) */
  base = s->buf + s->off;
  if (seplen == 1) {
    p = (const char *)memchr(base, sep[0], s->len);
    return p ? (long)(p - base) : -1;
  }
  p = (const char *)memmem(base, s->len, sep, seplen);
  return p ? (long)(p - base) : -1;
}

static int limit_error (lua_State *L, Stream *s, size_t consumed,
                        const char *fname) {
  lua_pushfstring(L, "%s: the separator was not found within the limit "
                  "(%I bytes)", fname, (lua_Integer)s->limit);
  luaio__new_error(L, "LimitOverrunError", lua_tostring(L, -1), 1);
  lua_pushinteger(L, (lua_Integer)consumed);
  lua_setfield(L, -2, "consumed");
  return lua_error(L);
}

static int incomplete_error (lua_State *L, Stream *s, lua_Integer expected) {
  size_t got = s->len;
  if (expected >= 0)
    lua_pushfstring(L, "%I bytes read on a total of %I expected bytes",
                    (lua_Integer)got, expected);
  else
    lua_pushfstring(L, "%I bytes read before EOF, separator not found",
                    (lua_Integer)got);
  luaio__new_error(L, "IncompleteReadError", lua_tostring(L, -1), 1);
  consume(L, s, got);
  lua_setfield(L, -2, "partial");
  if (expected >= 0) {
    lua_pushinteger(L, expected);
    lua_setfield(L, -2, "expected");
  }
  return lua_error(L);
}

static int readline_k (lua_State *L, int status, lua_KContext ctx);

/* readline() -> line with its "\n", the last unterminated one, or nil */
static int do_readline (lua_State *L) {
  Stream *s = checkreader(L);
  long i = find(s, "\n", 1);
  if (i >= 0) {
    if ((size_t)i + 1 > s->limit) {    /* too long: drop it, then raise */
      s->off += (size_t)i + 1;
      s->len -= (size_t)i + 1;
      return limit_error(L, s, (size_t)i + 1, "readline");
    }
    consume(L, s, (size_t)i + 1);
    return 1;
  }
  if (s->len > s->limit) {
    size_t n = s->len;
    s->off = s->len = 0;
    start_reading(s);
    return limit_error(L, s, n, "readline");
  }
  if (!s->eof) return wait_data(L, s, "readline", 0, readline_k);
  if (s->len == 0) {
    check_rerr(L, s, "readline");
    lua_pushnil(L);
    return 1;
  }
  consume(L, s, s->len);
  return 1;
}

static int readline_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return do_readline(L);
}

static int readuntil_k (lua_State *L, int status, lua_KContext ctx);

/* readuntil([sep = "\n"]) -> data ending with sep */
static int do_readuntil (lua_State *L) {
  Stream *s = checkreader(L);
  size_t seplen;
  const char *sep = luaL_optlstring(L, 2, "\n", &seplen);
  long i;
  if (seplen == 0) return luaL_argerror(L, 2, "the separator is empty");
  i = find(s, sep, seplen);
  if (i >= 0) {
    size_t end = (size_t)i + seplen;
    if (end > s->limit) return limit_error(L, s, (size_t)i, "readuntil");
    consume(L, s, end);
    return 1;
  }
  if (s->len > s->limit) return limit_error(L, s, s->len, "readuntil");
  if (!s->eof) return wait_data(L, s, "readuntil", 0, readuntil_k);
  check_rerr(L, s, "readuntil");
  return incomplete_error(L, s, -1);
}

static int readuntil_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return do_readuntil(L);
}

static int readexactly_k (lua_State *L, int status, lua_KContext ctx);

/* readexactly(n) -> exactly n bytes, or IncompleteReadError at EOF */
static int do_readexactly (lua_State *L) {
  Stream *s = checkreader(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0) return luaL_argerror(L, 2, "must be >= 0");
  if ((lua_Integer)s->len >= n) {
    s->want = 0;
    consume(L, s, (size_t)n);
    return 1;
  }
  if (!s->eof) {
    s->want = (size_t)n;               /* reading may go past 2 * limit */
    return wait_data(L, s, "readexactly", 0, readexactly_k);
  }
  check_rerr(L, s, "readexactly");
  return incomplete_error(L, s, n);
}

static int readexactly_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return do_readexactly(L);
}

static int r_at_eof (lua_State *L) {
  Stream *s = checkreader(L);
  lua_pushboolean(L, s->eof && s->len == 0);
  return 1;
}

/* _set_limit(n): the buffer limit for readline/readuntil. */
static int r_set_limit (lua_State *L) {
  Stream *s = checkreader(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n <= 0) return luaL_argerror(L, 2, "limit must be > 0");
  s->limit = (size_t)n;
  return 0;
}

static int r_buffered (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)checkreader(L)->len);
  return 1;
}


/* ---------------------------------------------------------- writing */

typedef struct WriteReq {
  uv_write_t req;
  Stream *s;
  size_t len;
  char data[1];
} WriteReq;

static Stream *checkwriter (lua_State *L) {
  return checkend(L, &WRITER_TAG, LUAIO_WRITER);
}

static void on_write (uv_write_t *req, int status) {
  WriteReq *w = (WriteReq *)req;
  Stream *s = w->s;
  s->wbuf -= w->len;
  free(w);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) {
    s->werr = status;
    luaio__wake_all(&s->drainers);
  }
  if (s->wbuf <= s->low) luaio__wake_all(&s->drainers);
  if (s->ep.closing && (s->wbuf == 0 || s->werr != 0)) close_now(s);
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
  s->wbuf += len;
  return 0;
}


/* ---------------------------------------------------------- coalescing */

static void send_pending_now (Stream *s);

/* Takes s off the runtime's pass-end list. */
static void unlink_pending (Stream *s) {
  luaio__unhook(&s->ep.rt->pass_end, &s->flush);
}

/* The pass has ended (or the process exits): s sends what it holds. */
static void on_pass_end (luaio_Runtime *rt, Hook *h) {
  Stream *s = (Stream *)((char *)h - offsetof(Stream, flush));
  (void)rt;
  send_pending_now(s);
}

/* Puts s last on the pass-end list: the first to write is the first to
   send (a pass serves connections in the order their data came in). */
static void link_pending (Stream *s) {
  luaio__hook(&s->ep.rt->pass_end, &s->flush, on_pass_end);
}

/* Forgets the pending bytes (the stream closes at once). */
static void drop_pending (Stream *s) {
  s->npend = 0;
  unlink_pending(s);
}

/* Closing at once: the socket gets what it takes of the pending bytes
   now (all it would have got had they not waited), the rest is dropped:
   the alert of a failed TLS handshake still reaches the peer. */
static void try_pending (Stream *s) {
  if (s->npend > 0 && ep_live(&s->ep)) {
    uv_buf_t b = uv_buf_init(s->pend, (unsigned)s->npend);
    (void)uv_try_write(&s->u.s, &b, 1);
  }
  drop_pending(s);
}

/* Sends the pending bytes (taken before any error was kept: a failed TLS
   handshake's alert is among them); returns 0 or a libuv error. */
static int send_pending (Stream *s) {
  size_t n = s->npend;
  int r = 0;
  drop_pending(s);
  if (n > 0 && ep_live(&s->ep))
    r = send_bytes(s, s->pend, n);
  if (s->pendcap > PENDING_KEEP) {     /* (send_bytes copied what it kept) */
    free(s->pend);
    s->pend = NULL;
    s->pendcap = 0;
  }
  return r;
}

/* Sends the pending bytes now, keeping an error for the next write. */
static void send_pending_now (Stream *s) {
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
  if (s->werr != 0 || !ep_live(&s->ep)) return;
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
    tls_failed(s);
    return LUAIO_ETLS;
  }
  return s->werr;
}

static void check_writable (lua_State *L, Stream *s, const char *fname) {
  if (s->werr != 0) stream_error(L, s, s->werr, fname);
  if (ep_is_closing(&s->ep))
    luaL_error(L, "%s: the writer is closed", fname);
  if (s->eof_sent) luaL_error(L, "%s: write_eof() was called", fname);
}

/* write(data) */
static int w_write (lua_State *L) {
  Stream *s = checkwriter(L);
  size_t len;
  const char *p;
  int r;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaio__typeerror(L, 2, "write", "string");
  p = lua_tolstring(L, 2, &len);
  check_writable(L, s, "write");
  if (len == 0) return 0;
  r = write_bytes(s, p, len);
  if (r != 0) {
    if (s->werr == 0) s->werr = r;
    return stream_error(L, s, r, "write");
  }
  return 0;
}

/* writelines(list) */
static int w_writelines (lua_State *L) {
  Stream *s = checkwriter(L);
  luaL_Buffer b;
  lua_Integer i, n;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  check_writable(L, s, "writelines");
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
    return stream_error(L, s, r, "writelines");
  }
  return 0;
}

static int drain_k (lua_State *L, int status, lua_KContext ctx);

/* drain(): waits while more than the high-water mark is queued. */
static int w_drain (lua_State *L) {
  Stream *s = checkwriter(L);
  Task *t;
  if (s->werr != 0) return stream_error(L, s, s->werr, "drain");
  if (!s->ep.open && s->wbuf > 0)
    return luaio__oserror(L, UV_EPIPE, "drain");
  if (s->wbuf <= s->high) return 0;
  t = luaio__check_suspend(L, "drain");
  return luaio__park(L, t, &s->drainers, NULL, "drain", s, 0, drain_k);
}

static int drain_k (lua_State *L, int status, lua_KContext ctx) {
  Stream *s = checkwriter(L);
  (void)status; (void)ctx;
  luaio__resumed(L);
  if (s->werr != 0) return stream_error(L, s, s->werr, "drain");
  if (s->wbuf > s->low && s->ep.open) {
    Task *t = luaio__check_suspend(L, "drain");
    return luaio__park(L, t, &s->drainers, NULL, "drain", s, 0, drain_k);
  }
  return 0;
}

static void on_shutdown (uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}

/* write_eof(): no more writes; the peer reads EOF once data is sent. */
static int w_write_eof (lua_State *L) {
  Stream *s = checkwriter(L);
  uv_shutdown_t *req;
  int r;
  if (s->tls != NULL)
    return luaL_error(L, "write_eof: a TLS stream cannot half-close "
                      "(can_write_eof() is false); close() it instead");
  if (s->eof_sent || ep_is_closing(&s->ep)) return 0;
  send_pending_now(s);                 /* the data goes before the EOF */
  req = (uv_shutdown_t *)malloc(sizeof(*req));
  if (req == NULL) return luaL_error(L, "not enough memory");
  r = uv_shutdown(req, &s->u.s, on_shutdown);
  if (r != 0) { free(req); return luaio__oserror(L, r, "write_eof"); }
  s->eof_sent = 1;
  return 0;
}

static int w_can_write_eof (lua_State *L) {
  lua_pushboolean(L, checkwriter(L)->tls == NULL);
  return 1;
}

static int w_close (lua_State *L) {
  ep_close(&checkwriter(L)->ep);
  return 0;
}

static int w_is_closing (lua_State *L) {
  lua_pushboolean(L, ep_is_closing(&checkwriter(L)->ep));
  return 1;
}

/* wait_closed(): until the socket is closed. */
static int w_wait_closed (lua_State *L) {
  return ep_wait_closed(L, &checkwriter(L)->ep, "wait_closed");
}

static int w_transport_buffered (lua_State *L) {
  Stream *s = checkwriter(L);
  lua_pushinteger(L, (lua_Integer)(s->wbuf + s->npend));
  return 1;
}

/* set_write_buffer_limits([high [, low]]) */
static int w_set_limits (lua_State *L) {
  Stream *s = checkwriter(L);
  lua_Integer high = luaL_optinteger(L, 2, HIGH_WATER);
  lua_Integer low = luaL_optinteger(L, 3, high / 4);
  if (high < 0 || low < 0 || low > high)
    return luaL_error(L, "set_write_buffer_limits: need high >= low >= 0");
  s->high = (size_t)high;
  s->low = (size_t)low;
  send_pending_now(s);                 /* (pending bytes fit the old mark) */
  return 0;
}

/* Pushes host, port of a socket address (2 values), or nil. */
static int push_addr (lua_State *L, const struct sockaddr_storage *a) {
  char ip[64];
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    uv_ip4_name(in, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(in->sin_port));
    return 2;
  }
  if (a->ss_family == AF_INET6) {
    const struct sockaddr_in6 *in = (const struct sockaddr_in6 *)a;
    uv_ip6_name(in, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(in->sin6_port));
    return 2;
  }
  lua_pushnil(L);
  return 1;
}

int luaio__push_sockaddr (lua_State *L, const struct sockaddr_storage *a) {
  return push_addr(L, a);
}

/* Pushes the names of a socket (1 or 2 values), or nothing (0). */
static int push_names (lua_State *L, Stream *s, int peer) {
  if (s->is_pipe) {
    char path[1024];
    size_t len = sizeof path;
    int r;
    if (!s->ep.open) return 0;
    r = peer ? uv_pipe_getpeername(&s->u.pipe, path, &len)
             : uv_pipe_getsockname(&s->u.pipe, path, &len);
    if (r != 0) return 0;
    lua_pushlstring(L, path, len);
    return 1;
  }
  keep_names(s);
  return push_addr(L, peer ? &s->peer : &s->sock);
}

/*
** get_extra_info(name [, default]) -> "peername"/"sockname": host, port
** (a path for unix sockets); on TLS streams "peercert" and "cipher" too
** ("ssl_object", "sslcontext": streams.lua); default for anything else.
*/
static int w_extra (lua_State *L) {
  Stream *s = checkwriter(L);
  const char *name = luaL_checkstring(L, 2);
  int n = 0;
  lua_settop(L, 3);
  if (strcmp(name, "peername") == 0) n = push_names(L, s, 1);
  else if (strcmp(name, "sockname") == 0) n = push_names(L, s, 0);
  else if (s->tls != NULL && (strcmp(name, "peercert") == 0 ||
                              strcmp(name, "cipher") == 0))
    n = s->tlsops->info(L, s->tls, name);
  if (n == 0 || (n == 1 && lua_isnil(L, -1))) {
    lua_pushvalue(L, 3);
    return 1;
  }
  return n;
}


/* ---------------------------------------------------------- TLS */

/*
** _tls_wrap(ctx, server_hostname, fname [, server_side]): the stream
** speaks TLS from now on.  The side, unless given: the server's for a
** connection a server accepted (asyncio's start_tls), else the client's.
** Bytes already read are the start of the peer's handshake.
*/
static int w_tls_wrap (lua_State *L) {
  Stream *s = checkwriter(L);
  const char *host = luaL_optstring(L, 3, NULL);
  const char *fname = luaL_optstring(L, 4, "start_tls");
  int server = lua_isnoneornil(L, 5) ? s->ep.parent != NULL : lua_toboolean(L, 5);
  const TlsOps *ops = luaio__G(L)->tls_ops;
  if (ops == NULL)                     /* (no context can exist then) */
    return luaL_error(L, "%s: TLS is not loaded (require \"luaio.tls\")", fname);
  if (s->tls != NULL)
    return luaL_error(L, "%s: the stream already uses TLS", fname);
  check_writable(L, s, fname);
  s->tls = ops->create(L, 2, server, host, s, fname);
  s->tlsops = ops;
  if (s->len > 0) {
    if (ops->feed(s->tls, s->buf + s->off, s->len) != 0) tls_failed(s);
    s->off = s->len = 0;
  }
  return 0;
}

static int handshake_k (lua_State *L, int status, lua_KContext ctx);

/* Raises if the handshake failed, parks until it ends, or returns. */
static int handshake_wait (lua_State *L, Stream *s, const char *fname) {
  Task *t;
  if (s->tlsops->done(s->tls)) return 0;
  if (s->rerr != 0) return stream_error(L, s, s->rerr, fname);
  if (ep_is_closing(&s->ep))
    return luaL_error(L, "%s: the stream was closed during the TLS "
                      "handshake", fname);
  if (s->eof) {                        /* the peer closed before we began */
    s->tlsops->eof(s->tls);
    return s->tlsops->error(L, s->tls, fname);
  }
  start_reading(s);
  t = luaio__check_suspend(L, fname);
  return luaio__park(L, t, &s->handshakers, NULL, fname, s, 0, handshake_k);
}

static int handshake_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return handshake_wait(L, checkwriter(L), luaL_optstring(L, 2, "start_tls"));
}

/* _tls_handshake(fname): waits until the handshake is done (suspends). */
static int w_tls_handshake (lua_State *L) {
  Stream *s = checkwriter(L);
  const char *fname = luaL_optstring(L, 2, "start_tls");
  if (s->tls == NULL) return luaL_error(L, "%s: the stream does not use TLS", fname);
  if (!s->eof && !ep_is_closing(&s->ep)) tls_pump(s);   /* the first flight */
  return handshake_wait(L, s, fname);
}

/* _tls_info(what): a fact about the session (tls.c), nil if not TLS. */
static int w_tls_info (lua_State *L) {
  Stream *s = checkwriter(L);
  const char *what = luaL_checkstring(L, 2);
  if (s->tls == NULL) return 0;
  return s->tlsops->info(L, s->tls, what);
}

/* _abort(): closes at once, dropping what is queued (a failed handshake). */
static int w_abort (lua_State *L) {
  Stream *s = checkwriter(L);
  s->eof = 1;
  luaio__wake_all(&s->readers);
  close_now(s);
  return 0;
}


/* ---------------------------------------------------------- objects */

/* A stream with the default limits, its handle not yet initialised. */
static Stream *alloc_stream (int is_pipe) {
  Stream *s = (Stream *)calloc(1, sizeof(Stream));
  if (s == NULL) return NULL;
  s->is_pipe = is_pipe;
  s->limit = DEFAULT_LIMIT;
  s->high = HIGH_WATER;
  s->low = LOW_WATER;
  return s;
}

/* A new TCP socket or pipe, on the runtime's open list. */
static Stream *new_stream (luaio_Runtime *rt, int is_pipe) {
  Stream *s = alloc_stream(is_pipe);
  if (s == NULL) return NULL;
  if (is_pipe) uv_pipe_init(rt->loop, &s->u.pipe, 0);
  else uv_tcp_init(rt->loop, &s->u.tcp);
  ep_start(&s->ep, &stream_kind, rt, &s->u.h);
  return s;
}

/* Pushes a reader (reader != 0) or a writer object for s. */
static void push_end (lua_State *L, Stream *s, int reader) {
  Box *b = (Box *)lua_newuserdatauv(L, sizeof(Box), 0);
  b->tag = reader ? &READER_TAG : &WRITER_TAG;
  b->s = s;
  s->ep.refs++;
  luaL_setmetatable(L, reader ? LUAIO_READER : LUAIO_WRITER);
}

/* Pushes reader, writer for s (which starts reading). */
static void push_pair (lua_State *L, Stream *s) {
  push_end(L, s, 1);
  push_end(L, s, 0);
  if (!s->is_pipe) {
    uv_tcp_nodelay(&s->u.tcp, 1);
    keep_names(s);
  }
  start_reading(s);
}


/*
** core.stdin_reader() -> a StreamReader on file descriptor 0 when it is a
** terminal or a pipe (the REPL reads through the loop), else nil.
*/
static int l_stdin_reader (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "stdin_reader");
  uv_handle_type type = uv_guess_handle(0);
  Stream *s;
  int r;
  if (type != UV_TTY && type != UV_NAMED_PIPE) return 0;
  s = alloc_stream(1);
  if (s == NULL) return luaL_error(L, "not enough memory");
  if (type == UV_TTY) r = uv_tty_init(rt->loop, &s->u.tty, 0, 1);
  else {
    r = uv_pipe_init(rt->loop, &s->u.pipe, 0);
    if (r == 0) r = uv_pipe_open(&s->u.pipe, 0);
  }
  if (r != 0) {
    free(s);
    return luaio__oserror(L, r, "stdin");
  }
  ep_start(&s->ep, &stream_kind, rt, &s->u.h);
  luaio__push_stream_end(L, s, 1);
  s->autoclose = 0;
  return 1;
}

/* A child's stdio pipe (process.c): its writes are never coalesced (a
   child that exited is found by the write itself, as before). */
void *luaio__stream_pipe (luaio_Runtime *rt) {
  Stream *s = (Stream *)new_stream(rt, 1);
  if (s != NULL) s->direct = 1;
  return s;
}

uv_stream_t *luaio__stream_handle (void *s) {
  return &((Stream *)s)->u.s;
}

/* Pushes a reader (reader != 0, starts reading) or a writer for s. */
void luaio__push_stream_end (lua_State *L, void *p, int reader) {
  Stream *s = (Stream *)p;
  push_end(L, s, reader);
  if (reader) {
    s->autoclose = 1;
    start_reading(s);
  }
}

/* A pipe nobody will use (the spawn failed): close and free it. */
void luaio__stream_discard (void *p) {
  Stream *s = (Stream *)p;
  s->ep.refs = 0;
  close_now(s);
}

/* ---------------------------------------------------------- connecting */

typedef struct Connect {
  uv_connect_t req;
  Stream *s;
  Task *t;               /* NULL once the task gave up */
  int status;
  int done;
} Connect;

static void on_connect (uv_connect_t *req, int status) {
  Connect *c = (Connect *)req->data;
  c->status = status;
  c->done = 1;
  if (c->t == NULL) { free(c); return; }   /* abandoned: socket closed */
  luaio__wake(c->t->rt, c->t);
}

/* Cancelled while connecting: close the socket; the request frees itself. */
static int connect_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Connect *c = (Connect *)t->wobj;
  (void)L; (void)rt;
  c->t = NULL;
  c->s->ep.refs = 0;
  close_now(c->s);
  return 0;
}

static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  Connect *c = (Connect *)ctx;
  Task *t = luaio__resumed_task(L);
  Stream *s;
  (void)status;
  if (t->must_cancel && t->aborted) return luaio__raise_cancel(L, t);
  s = c->s;
  if (t->must_cancel) {
    if (!t->aborted) {                 /* cancelled after it completed */
      free(c);
      s->ep.refs = 0;
      close_now(s);
    }                                  /* else c frees itself in on_connect */
    return luaio__raise_cancel(L, t);
  }
  status = c->status;
  free(c);
  if (status != 0) {
    s->ep.refs = 0;
    close_now(s);
    return luaio__oserror(L, status, "connect");
  }
  push_pair(L, s);
  return 2;
}

static int start_connect (lua_State *L, Stream *s, const struct sockaddr *a,
                          const char *path) {
  Task *t = luaio__check_suspend(L, "connect");
  Connect *c = (Connect *)calloc(1, sizeof(Connect));
  int r;
  if (c == NULL) { close_now(s); return luaL_error(L, "not enough memory"); }
  c->s = s;
  c->t = t;
  c->req.data = c;
  if (path != NULL) {
    uv_pipe_connect(&c->req, &s->u.pipe, path, on_connect);
    r = 0;
  }
  else r = uv_tcp_connect(&c->req, &s->u.tcp, a, on_connect);
  if (r != 0) {
    free(c);
    close_now(s);
    return luaio__oserror(L, r, "connect");
  }
  return luaio__park(L, t, NULL, connect_abort, "connect", c,
                     (lua_KContext)c, connect_k);
}

/* Parses a numeric address; returns 0 or a libuv error. */
static int parse_addr (const char *ip, int port, struct sockaddr_storage *a) {
  memset(a, 0, sizeof *a);
  if (strchr(ip, ':') != NULL)
    return uv_ip6_addr(ip, port, (struct sockaddr_in6 *)a);
  return uv_ip4_addr(ip, port, (struct sockaddr_in *)a);
}

static int checkport (lua_State *L, int arg, const char *fname) {
  lua_Integer port;
  if (!lua_isinteger(L, arg))
    luaio__typeerror(L, arg, fname, "integer port");
  port = lua_tointeger(L, arg);
  if (port < 0 || port > 65535)
    luaio__argerror(L, arg, fname, "port out of range");
  return (int)port;
}

/* core.tcp_connect(ip, port) -> reader, writer (suspends) */
static int l_tcp_connect (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "open_connection");
  const char *ip = luaL_checkstring(L, 1);
  int port = checkport(L, 2, "open_connection");
  struct sockaddr_storage a;
  Stream *s;
  int r = parse_addr(ip, port, &a);
  if (r != 0) return luaio__oserror(L, r, "open_connection");
  luaio__check_suspend(L, "open_connection");
  s = new_stream(rt, 0);
  if (s == NULL) return luaL_error(L, "not enough memory");
  return start_connect(L, s, (struct sockaddr *)&a, NULL);
}

/* core.pipe_connect(path) -> reader, writer (suspends) */
static int l_pipe_connect (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "open_unix_connection");
  const char *path = luaL_checkstring(L, 1);
  Stream *s;
  luaio__check_suspend(L, "open_unix_connection");
  s = new_stream(rt, 1);
  if (s == NULL) return luaL_error(L, "not enough memory");
  return start_connect(L, s, NULL, path);
}


/* ---------------------------------------------------------- servers */

static Server *checkserver (lua_State *L) {
  SBox *b = (SBox *)luaL_checkudata(L, 1, LUAIO_SERVER);
  if (b->sv == NULL) luaL_error(L, "the server is gone");
  return b->sv;
}

/* close(): the listening handle closes at once; wait_closed() also waits
   for the connections it accepted. */
static void server_close (Endpoint *e) {
  ep_close_handle(e);
}

static void server_shutdown (Endpoint *e) {
  ep_close(e);
}

/* The handle is closed: serve_forever() returns. */
static void server_closed (Endpoint *e) {
  luaio__wake_all(&((Server *)e)->forever);
}

static void server_destroy (Endpoint *e) {
  free(e);
}

static const EndpointKind server_kind = {
  server_close, server_shutdown, server_closed, server_destroy
};

static void run_accept (lua_State *L, luaio_Runtime *rt, void *p, int idx);

static void on_connection (uv_stream_t *h, int status) {
  Server *sv = (Server *)h->data;
  Stream *s;
  if (status < 0 || sv->ep.closing) return;
  s = new_stream(sv->ep.rt, sv->is_pipe);
  if (s == NULL) return;
  if (uv_accept(h, &s->u.s) != 0) {
    close_now(s);
    return;
  }
  s->limit = sv->limit;
  ep_adopt(&sv->ep, &s->ep);
  s->next_pending = sv->pending;
  sv->pending = s;
  if (!sv->queued) {
    sv->queued = 1;
    luaio__schedule(sv->ep.rt, run_accept, sv, 0);
  }
}

/* From the drain: each new connection gets a task running the handler. */
static void run_accept (lua_State *L, luaio_Runtime *rt, void *p, int idx) {
  Server *sv = (Server *)p;
  Stream *list = NULL, *s;
  int top = lua_gettop(L);
  (void)idx;
  sv->queued = 0;
  while (sv->pending != NULL) {        /* oldest first */
    s = sv->pending;
    sv->pending = s->next_pending;
    s->next_pending = list;
    list = s;
  }
  if (sv->anchor == 0) {               /* the server went away */
    for (; list != NULL; list = s) { s = list->next_pending; close_now(list); }
    return;
  }
  while (list != NULL) {
    s = list;
    list = s->next_pending;
    s->next_pending = NULL;
    luaio__push_anchor(L, rt, sv->anchor);   /* the server */
    lua_getiuservalue(L, -1, 1);             /* handler */
    push_pair(L, s);                         /* handler, reader, writer */
    luaio__create_task(L, rt, top + 2, 2);
    lua_settop(L, top);
  }
}

/* core.tcp_listen(ip, port, backlog, limit, handler) -> server */
static int listen_common (lua_State *L, luaio_Runtime *rt, int is_pipe) {
  Server *sv;
  SBox *b;
  int backlog = (int)luaL_optinteger(L, 3, 511);
  lua_Integer limit = luaL_optinteger(L, 4, DEFAULT_LIMIT);
  int r;
  luaL_checktype(L, 5, LUA_TFUNCTION);
  sv = (Server *)calloc(1, sizeof(Server));
  if (sv == NULL) return luaL_error(L, "not enough memory");
  sv->is_pipe = is_pipe;
  sv->limit = limit > 0 ? (size_t)limit : DEFAULT_LIMIT;
  if (is_pipe) uv_pipe_init(rt->loop, &sv->u.pipe, 0);
  else uv_tcp_init(rt->loop, &sv->u.tcp);
  ep_start(&sv->ep, &server_kind, rt, &sv->u.h);
  if (is_pipe) r = uv_pipe_bind(&sv->u.pipe, luaL_checkstring(L, 1));
  else {
    struct sockaddr_storage a;
    r = parse_addr(luaL_checkstring(L, 1), checkport(L, 2, "start_server"), &a);
    if (r == 0) r = uv_tcp_bind(&sv->u.tcp, (struct sockaddr *)&a, 0);
  }
  if (r == 0) r = uv_listen(&sv->u.s, backlog, on_connection);
  if (r != 0) {
    ep_close(&sv->ep);                 /* freed once closed */
    return luaio__oserror(L, r, is_pipe ? "start_unix_server" : "start_server");
  }
  b = (SBox *)lua_newuserdatauv(L, sizeof(SBox), 1);
  b->sv = sv;
  sv->ep.refs = 1;
  luaL_setmetatable(L, LUAIO_SERVER);
  lua_pushvalue(L, 5);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, -1);
  sv->anchor = luaio__anchor(L, rt);
  return 1;
}

static int l_tcp_listen (lua_State *L) {
  return listen_common(L, luaio__need_rt(L, "start_server"), 0);
}

static int l_pipe_listen (lua_State *L) {
  return listen_common(L, luaio__need_rt(L, "start_unix_server"), 1);
}

static int sv_close (lua_State *L) {
  Server *sv = checkserver(L);
  if (ep_close(&sv->ep) && sv->anchor) {
    luaio__unanchor(L, sv->ep.rt, sv->anchor);
    sv->anchor = 0;
  }
  return 0;
}

static int sv_is_serving (lua_State *L) {
  Server *sv = checkserver(L);
  lua_pushboolean(L, !ep_is_closing(&sv->ep));
  return 1;
}

/* wait_closed(): until it is closed and its connections are too (asyncio
   3.12: before close() it waits for close()). */
static int sv_wait_closed (lua_State *L) {
  return ep_wait_closed(L, &checkserver(L)->ep, "server wait_closed");
}

static int forever_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return 0;
}

/* Cancelling serve_forever closes the server (asyncio). */
static int forever_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Server *sv = (Server *)t->wobj;
  (void)rt;
  if (ep_close(&sv->ep) && sv->anchor) {
    luaio__unanchor(L, sv->ep.rt, sv->anchor);
    sv->anchor = 0;
  }
  return 0;
}

/* serve_forever(): until the server is closed or the task cancelled. */
static int sv_serve_forever (lua_State *L) {
  Server *sv = checkserver(L);
  Task *t;
  if (ep_is_closing(&sv->ep)) return 0;
  t = luaio__check_suspend(L, "serve_forever");
  return luaio__park(L, t, &sv->forever, forever_abort, "serve_forever", sv,
                     0, forever_k);
}

static int sv_getsockname (lua_State *L) {
  Server *sv = checkserver(L);
  if (!sv->ep.open) return 0;
  if (sv->is_pipe) {
    char path[1024];
    size_t len = sizeof path;
    if (uv_pipe_getsockname(&sv->u.pipe, path, &len) != 0) return 0;
    lua_pushlstring(L, path, len);
    return 1;
  }
  {
    struct sockaddr_storage a;
    int alen = sizeof a;
    if (uv_tcp_getsockname(&sv->u.tcp, (struct sockaddr *)&a, &alen) != 0)
      return 0;
    return push_addr(L, &a);
  }
}

static int sv_gc (lua_State *L) {
  SBox *b = (SBox *)lua_touserdata(L, 1);
  Server *sv = b->sv;
  if (sv == NULL) return 0;
  b->sv = NULL;
  ep_drop(&sv->ep);
  return 0;
}


/* ---------------------------------------------------------- registration */

/* core.stdin_is_tty() */
static int l_stdin_is_tty (lua_State *L) {
  lua_pushboolean(L, uv_guess_handle(0) == UV_TTY);
  return 1;
}

static const luaL_Reg reader_methods[] = {
  {"read", do_read},
  {"readline", do_readline},
  {"readuntil", do_readuntil},
  {"readexactly", do_readexactly},
  {"at_eof", r_at_eof},
  {"_buffered", r_buffered},
  {"_set_limit", r_set_limit},
  {NULL, NULL}
};

static const luaL_Reg writer_methods[] = {
  {"write", w_write},
  {"writelines", w_writelines},
  {"drain", w_drain},
  {"write_eof", w_write_eof},
  {"can_write_eof", w_can_write_eof},
  {"close", w_close},
  {"is_closing", w_is_closing},
  {"wait_closed", w_wait_closed},
  {"get_extra_info", w_extra},
  {"transport_buffered", w_transport_buffered},
  {"set_write_buffer_limits", w_set_limits},
  {"_tls_wrap", w_tls_wrap},
  {"_tls_handshake", w_tls_handshake},
  {"_tls_info", w_tls_info},
  {"_abort", w_abort},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"close", sv_close},
  {"is_serving", sv_is_serving},
  {"wait_closed", sv_wait_closed},
  {"serve_forever", sv_serve_forever},
  {"getsockname", sv_getsockname},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"tcp_connect", l_tcp_connect},
  {"pipe_connect", l_pipe_connect},
  {"tcp_listen", l_tcp_listen},
  {"pipe_listen", l_pipe_listen},
  {"stdin_reader", l_stdin_reader},
  {"stdin_is_tty", l_stdin_is_tty},
  {NULL, NULL}
};

static void newclass (lua_State *L, const char *tname, const char *name,
                      const luaL_Reg *methods, lua_CFunction gc,
                      const char *field) {
  luaL_newmetatable(L, tname);
  lua_newtable(L);
  luaio__setfuncs(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, field);        /* core.<field> = methods */
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void luaio__stream_open (lua_State *L) {
  newclass(L, LUAIO_READER, "StreamReader", reader_methods, box_gc,
           "ReaderMethods");
  newclass(L, LUAIO_WRITER, "StreamWriter", writer_methods, box_gc,
           "WriterMethods");
  newclass(L, LUAIO_SERVER, "Server", server_methods, sv_gc,
           "ServerMethods");
  luaio__setfuncs(L, funcs);
}
