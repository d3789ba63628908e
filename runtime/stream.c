/*
** stream.c -- TCP, unix-socket and pipe streams: StreamReader and
** StreamWriter on one C buffer per stream.  This file holds their
** lifecycle (the close protocol they share with servers, new streams, the
** reader and writer objects, closing, __gc), reading, stdin and a child's
** pipes, and the registration of the subsystem (stream.h lists the other
** stream files: writing, TLS, connecting and servers).
**
** Reading: libuv reads into one growable buffer (no allocation per read);
** a reader parks until the bytes it needs are there; separators are
** searched in C.  Reading pauses while more than 2 * limit bytes wait
** unread, as asyncio does.  One reader at a time: a second concurrent
** read is an error.  At EOF, read(n) and readline() return nil, read()
** the rest ("" when nothing is left).
**
** Closing, for writers and servers alike (the Endpoint): close() begins
** once; every open stream and server is on the runtime's open list from
** its start to its close callback, and what is still open at shutdown is
** closed then; wait_closed() returns once the handle is closed (and, for
** a server, its connections); the struct, which holds the libuv handle,
** is freed in the close callback, or later, once no Lua object (reader,
** writer, server) refers to it.  A writer's close() lets what was written
** (and TLS's close_notify) go out first; so does the collection of the
** last reader or writer object of a stream.  libuv callbacks only move
** data and wake tasks.
**
** Cancellation: a cancelled read leaves the buffer intact (nothing is
** consumed); a cancelled wait_closed() only stops waiting.
*/
#define _GNU_SOURCE          /* memmem */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stream.h"

/* How what was left open is named in the loop's debug report. */
static const char LEAK[] = "stream(s) or server(s)";

/* The tags of reader and writer objects (Box). */
static const char READER_TAG = 'r', WRITER_TAG = 'w';


/* ---------------------------------------------------------- close protocol */

/* (Endpoint, in stream.h: what writers and servers share.) */

/* Its handle is open and not closing. */
int luaio__ep_live (Endpoint *e) {
  return e->open && !uv_is_closing(e->h);
}

/* is_closing(): close() began, or the handle is closed. */
int luaio__ep_is_closing (Endpoint *e) {
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
  if (e->node.where != 0) {
    luaio__unanchor(e->rt->S, e->rt, e->node.where);
    e->node.where = 0;
  }
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

/*
** Debug mode: remembers where e is opened -- the stack of the task (or
** coroutine) running, if one is (an accepted connection has none) -- for
** the report of what is left open at loop close.
*/
static void note_opened (Endpoint *e, luaio_Runtime *rt) {
  lua_State *co = rt->running;
  if (co == NULL || !lua_checkstack(co, 4)) return;
  luaio__traceback(co, co, NULL, 0);
  lua_pushfstring(co, "a %s opened at:\n%s", e->kind->name,
                  lua_tostring(co, -1));
  lua_remove(co, -2);
  e->node.where = luaio__anchor(co, rt);
}

/* The handle h of e has started: e joins the runtime's open list (its
   data is e). */
void luaio__ep_start (Endpoint *e, const EndpointKind *kind,
                      luaio_Runtime *rt, uv_handle_t *h) {
  e->kind = kind;
  e->rt = rt;
  e->h = h;
  h->data = e;
  e->open = 1;
  luaio__hook(&rt->open, &e->node, ep_shutdown);
  e->node.leak = LEAK;
  rt->open_handles++;
  if (rt->debug) note_opened(e, rt);
}

/* child was accepted by parent: parent's close waits for child's. */
void luaio__ep_adopt (Endpoint *parent, Endpoint *child) {
  child->parent = parent;
  parent->nchild++;
}

/* Closes the handle now, unless it is closed or closing. */
void luaio__ep_close_handle (Endpoint *e) {
  if (!luaio__ep_live(e)) return;
  e->closing = 1;
  uv_close(e->h, ep_closed);
}

/* close(): begins e's close, once: 1 if this call began it. */
int luaio__ep_close (Endpoint *e) {
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
int luaio__ep_wait_closed (lua_State *L, Endpoint *e, const char *what) {
  Task *t;
  if (e->closing && !e->open && e->nchild == 0) return 0;
  t = luaio__check_suspend(L, "wait_closed");
  return luaio__park(L, t, &e->closers, NULL, what, e, 0, closed_k);
}

/* A Lua object of e is collected.  When it was the last, e closes the
   way close() does it, or, closed already, is freed. */
void luaio__ep_drop (Endpoint *e) {
  if (--e->refs > 0) return;
  if (e->open) luaio__ep_close(e);     /* freed once closed */
  else if (e->nchild == 0) e->kind->destroy(e);
}

/* ---------------------------------------------------------- closing streams */

static void stream_destroy (Endpoint *e) {
  Stream *s = (Stream *)e;
  luaio__stream_drop_pending(s);
  if (s->tls != NULL) s->tlsops->destroy(s->tls);
  free(s->buf);
  free(s->pend);
  free(s);
}

/* The handle is closed: its cancelled writes no longer count as queued;
   readers see EOF; who waits on it wakes.  An empty read buffer (4 to
   64 KiB once reading began) goes now, not when a collection finds the
   reader and writer: the collector does not see it. */
static void stream_closed (Endpoint *e) {
  Stream *s = (Stream *)e;
  luaio__stream_uncount(s);            /* (its writes were cancelled) */
  if (s->len == 0) {
    free(s->buf);
    s->buf = NULL;
    s->off = s->cap = 0;
  }
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
void luaio__stream_close_now (Stream *s) {
  luaio__stream_try_pending(s);
  if (!luaio__ep_live(&s->ep)) return;
  if (s->tls != NULL) discard_input(s);
  luaio__stream_stop_reading(s);
  luaio__ep_close_handle(&s->ep);
}

/* close(): once what is queued (and TLS's close_notify) is written.
   closing is set: writes are no longer coalesced. */
static void close_soon (Endpoint *e) {
  Stream *s = (Stream *)e;
  int bye = s->tls != NULL && s->werr == 0;
  luaio__stream_flush_pending(s);      /* what was written goes first */
  if (bye) s->tlsops->shutdown(s->tls);
  s->eof = 1;
  luaio__wake_all(&s->readers);
  if (s->wbuf == 0 || s->werr != 0) luaio__stream_close_now(s);
}

/* Shutdown: closed at once (what was written still goes to the socket
   if it takes it). */
static void stream_shutdown (Endpoint *e) {
  luaio__stream_close_now((Stream *)e);
}

static const EndpointKind stream_kind = {
  "stream", close_soon, stream_shutdown, stream_closed, stream_destroy
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
  luaio__ep_drop(&s->ep);
  return 0;
}

/* close(): see close_soon. */
static int w_close (lua_State *L) {
  luaio__ep_close(&luaio__stream_checkwriter(L)->ep);
  return 0;
}

static int w_is_closing (lua_State *L) {
  lua_pushboolean(L, luaio__ep_is_closing(&luaio__stream_checkwriter(L)->ep));
  return 1;
}

/* wait_closed(): until the socket is closed. */
static int w_wait_closed (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  return luaio__ep_wait_closed(L, &s->ep, "wait_closed");
}

/* _abort(): closes at once, dropping what is queued (a failed handshake). */
static int w_abort (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
  s->eof = 1;
  luaio__wake_all(&s->readers);
  luaio__stream_close_now(s);
  return 0;
}


/* ---------------------------------------------------------- reading */

/* Makes room for want more bytes after the buffered ones: 0 or -1. */
int luaio__stream_reserve (Stream *s, size_t want) {
  if (s->len == 0) s->off = 0;
  if (s->cap - s->off - s->len < want) {
    if (s->off > 0) {                  /* compact first */
      memmove(s->buf, s->buf + s->off, s->len);
      s->off = 0;
    }
    if (s->cap - s->len < want) {
      size_t cap = s->cap ? s->cap * 2 : want;
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

/*
** A read gets the buffer's free space, at least rchunk bytes of it (half
** of that if the buffer has it: no growth for a few bytes kept).  rchunk
** starts small (a request of a few hundred bytes costs a page, not 64 KiB,
** per connection) and doubles, up to READ_CHUNK, after a read that filled
** what it was given.
*/
static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *out) {
  Stream *s = (Stream *)h->data;
  size_t want = s->rchunk;
  (void)hint;
  if (s->cap - s->len >= want / 2) want /= 2;
  if (luaio__stream_reserve(s, want) != 0) {
    out->base = NULL;
    out->len = 0;
    return;
  }
  out->base = s->buf + s->off + s->len;
  out->len = s->cap - s->off - s->len;
}

void luaio__stream_stop_reading (Stream *s) {
  if (s->reading) uv_read_stop(&s->u.s);
  s->reading = 0;
}

static void on_read (uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  Stream *s = (Stream *)h->data;
  if (n > 0) {
    if ((size_t)n == b->len && s->rchunk < READ_CHUNK) s->rchunk *= 2;
    if (s->tls != NULL) luaio__stream_tls_input(s, b->base, (size_t)n);
    else s->len += (size_t)n;
    if (s->reading && s->len > 2 * s->limit && s->len >= s->want) {
      uv_read_stop(h);                 /* pause */
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
      luaio__stream_close_now(s);
      return;
    }
  }
  luaio__wake_first(&s->readers);
}

void luaio__stream_start_reading (Stream *s) {
  if (!s->reading && !s->eof && s->ep.open && !s->ep.closing) {
    if (uv_read_start(&s->u.s, on_alloc, on_read) == 0) s->reading = 1;
  }
}

/* The stream of the reader (tag READER_TAG) or writer at arg 1. */
static Stream *checkend (lua_State *L, const char *tag, const char *tname) {
  Box *b = (Box *)lua_touserdata(L, 1);
  if (b == NULL || lua_rawlen(L, 1) != sizeof(Box) || b->tag != tag)
    b = (Box *)luaio__checkclass(L, 1, tname);   /* raises */
  if (b->s == NULL) luaL_error(L, "the stream is closed");
  return b->s;
}

static Stream *checkreader (lua_State *L) {
  return checkend(L, &READER_TAG, LUAIO_READER);
}

Stream *luaio__stream_checkwriter (lua_State *L) {
  return checkend(L, &WRITER_TAG, LUAIO_WRITER);
}

/* Takes n bytes from the buffer, pushing them. */
static void consume (lua_State *L, Stream *s, size_t n) {
  if (n == 0) lua_pushliteral(L, "");     /* (buf may still be NULL) */
  else lua_pushlstring(L, s->buf + s->off, n);
  s->off += n;
  s->len -= n;
  if (s->len == 0) s->off = 0;
  if (!s->reading && s->len <= s->limit) luaio__stream_start_reading(s);
}

/* Raises a kept error: OSError from libuv, SSLError from the TLS engine. */
int luaio__stream_error (lua_State *L, Stream *s, int err, const char *fname) {
  if (err == LUAIO_ETLS && s->tls != NULL)
    return s->tlsops->error(L, s->tls, fname);
  return luaio__oserror(L, err, fname);
}

/* Raises a read error kept from libuv, if any. */
static void check_rerr (lua_State *L, Stream *s, const char *fname) {
  if (s->rerr != 0 && s->len == 0) luaio__stream_error(L, s, s->rerr, fname);
}

/* Parks the calling task until more data or EOF; k retries. */
static int wait_data (lua_State *L, Stream *s, const char *fname,
                      lua_KContext ctx, lua_KFunction k) {
  Task *t;
  if (s->readers.head != NULL)
    return luaL_error(L, "%s: another task is already reading from this "
                      "stream", fname);
  t = luaio__check_suspend_G(L, s->ep.rt->G, fname);
  luaio__stream_start_reading(s);
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
    luaio__stream_start_reading(s);
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


/* ---------------------------------------------------------- objects */

/* A stream with the default limits, its handle not yet initialised. */
static Stream *alloc_stream (int is_pipe) {
  Stream *s = (Stream *)calloc(1, sizeof(Stream));
  if (s == NULL) return NULL;
  s->is_pipe = is_pipe;
  s->limit = DEFAULT_LIMIT;
  s->rchunk = READ_FIRST;
  s->high = HIGH_WATER;
  s->low = LOW_WATER;
  return s;
}

/* A new TCP socket or pipe, on the runtime's open list. */
Stream *luaio__stream_new (luaio_Runtime *rt, int is_pipe) {
  Stream *s = alloc_stream(is_pipe);
  if (s == NULL) return NULL;
  if (is_pipe) uv_pipe_init(rt->loop, &s->u.pipe, 0);
  else uv_tcp_init(rt->loop, &s->u.tcp);
  luaio__ep_start(&s->ep, &stream_kind, rt, &s->u.h);
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

/*
** The collector does not see a stream's own memory (about 1 KiB, freed
** once its reader and writer are collected): a new stream charges the
** collector that much allocation, so a program that opens connections
** by the thousand collects as if that memory were Lua's -- the next
** incremental step comes sooner; the heap's estimate does not change.
** Not while the program keeps the collector stopped.
*/
static void charge_collector (lua_State *L) {
  if (lua_gc(L, LUA_GCISRUNNING) == 1)
    lua_gc(L, LUA_GCSTEP, (int)((sizeof(Stream) + 1023) / 1024));
}

/* Pushes reader, writer for s (which starts reading). */
void luaio__stream_push_pair (lua_State *L, Stream *s) {
  charge_collector(L);
  push_end(L, s, 1);
  push_end(L, s, 0);
  if (!s->is_pipe) {
    uv_tcp_nodelay(&s->u.tcp, 1);
    luaio__stream_keep_names(s);
  }
  luaio__stream_start_reading(s);
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
  luaio__ep_start(&s->ep, &stream_kind, rt, &s->u.h);
  luaio__push_stream_end(L, s, 1);
  s->autoclose = 0;
  return 1;
}

/* A child's stdio pipe (process.c): its writes are never coalesced (a
   child that exited is found by the write itself, as before). */
void *luaio__stream_pipe (luaio_Runtime *rt) {
  Stream *s = (Stream *)luaio__stream_new(rt, 1);
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
    luaio__stream_start_reading(s);
  }
}

/* A pipe nobody will use (the spawn failed): close and free it. */
void luaio__stream_discard (void *p) {
  Stream *s = (Stream *)p;
  s->ep.refs = 0;
  luaio__stream_close_now(s);
}


/*
** The descriptor of the reader (reader != 0) or writer object at idx, to
** be handed to a child (process.c): -1 and *why set when it cannot be --
** it is closed, not a child's pipe (a connection's reader and writer share
** one socket), or holds data read or still to write, which the child
** would never see.
*/
int luaio__stream_lendable (lua_State *L, int idx, int reader,
                            const char **why) {
  Box *b = (Box *)luaL_testudata(L, idx, reader ? LUAIO_READER : LUAIO_WRITER);
  Stream *s = b != NULL ? b->s : NULL;
  uv_os_fd_t fd;
  *why = "has read data already (hand it over before reading from it)";
  if (reader && s != NULL && s->len > 0) return -1;
  *why = b == NULL ? "is not a stream of the right kind" : "is closed";
  if (s == NULL || !luaio__ep_live(&s->ep) || s->ep.closing ||
      uv_fileno(&s->u.h, &fd) != 0)
    return -1;
  if (!s->direct) {          /* a connection: its other half is ours */
    *why = "is not a process's pipe (only those can be handed over)";
    return -1;
  }
  if (reader && s->eof) {
    *why = "has read its end already";
    return -1;
  }
  if (!reader && (s->wbuf > 0 || s->npend > 0 || s->eof_sent)) {
    *why = "has data still to write, or has written its end";
    return -1;
  }
  return (int)fd;
}

/* The object at idx was handed to a child: ours is closed, the object
   dead ("the stream is closed"). */
void luaio__stream_hand_over (lua_State *L, int idx) {
  Box *b = (Box *)lua_touserdata(L, idx);
  Stream *s = b->s;
  b->s = NULL;
  luaio__stream_stop_reading(s);
  luaio__ep_close(&s->ep);
  luaio__ep_drop(&s->ep);
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

/* the writer's methods of this file; the other stream files add theirs */
static const luaL_Reg writer_methods[] = {
  {"close", w_close},
  {"is_closing", w_is_closing},
  {"wait_closed", w_wait_closed},
  {"_abort", w_abort},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"stdin_reader", l_stdin_reader},
  {"stdin_is_tty", l_stdin_is_tty},
  {NULL, NULL}
};

/*
** Makes class tname (its metatable in the registry), its methods those
** of the NULL-terminated list of tables, and sets core.<field> to the
** methods table.  The core table is on the top of the stack.
*/
void luaio__stream_class (lua_State *L, const char *tname,
                          const char *name, const luaL_Reg *const *methods,
                          lua_CFunction gc, const char *field) {
  luaL_newmetatable(L, tname);
  lua_newtable(L);
  for (; *methods != NULL; methods++) luaio__setfuncs(L, *methods);
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
  static const luaL_Reg *const reader[] = {reader_methods, NULL};
  static const luaL_Reg *const writer[] = {
    writer_methods, luaio__stream_write_methods, luaio__stream_tls_methods,
    luaio__stream_net_methods, NULL
  };
  luaio__stream_class(L, LUAIO_READER, "StreamReader", reader, box_gc,
                      "ReaderMethods");
  luaio__stream_class(L, LUAIO_WRITER, "StreamWriter", writer, box_gc,
                      "WriterMethods");
  luaL_getmetatable(L, LUAIO_WRITER);  /* <close>: close() */
  lua_pushcfunction(L, w_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
  luaio__stream_net_open(L);           /* servers, connecting */
}
