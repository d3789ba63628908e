/*
** stream_net.c -- the network side of streams: connecting (TCP and unix
** sockets), servers (listening, accepting, serve_forever), and socket
** names (get_extra_info's peername and sockname, luaio__push_sockaddr).
**
** luaio accepts itself, on a poll handle of the listening socket (libuv,
** out of descriptors, would accept and close every waiting connection
** and tell nobody): the poll callback accepts what waits and only queues
** it on its server; run_accept, a ready-queue entry, hands each to Lua
** from the drain, in a new task running the server's handler, and the
** connection is closed when that task ends, however it ends.  An accept
** error (out of descriptors or memory) stops accepting: run_accept
** reports it (once, until the server has caught up with its backlog),
** runs a full collection (streams dropped without close() hold
** descriptors the collector cannot see), and a timer entry resumes
** accepting after a pause (100 ms, doubling up to 1 s); waiting clients
** stay in the listen backlog meanwhile.  A connection whose task cannot
** be made is closed and reported; the rest of its batch is still handed
** over.  A server's close() stops listening at once; the connections it
** accepted stay open, and, as their parent (the Endpoint, stream.h), it
** waits for them: its wait_closed() returns, and it is freed, only once
** they are closed too.
**
** Addresses and paths holding a '\0' are refused ("embedded null byte"),
** and so is a unix socket path longer than sun_path holds (OSError
** ENAMETOOLONG, "AF_UNIX path too long"): the system would see them cut.
**
** Cancellation: a cancelled connect closes its socket (its request is
** freed by its callback, or at once if it had completed); cancelling
** serve_forever() closes the server (asyncio); a cancelled wait_closed()
** only stops waiting.
*/
#define _GNU_SOURCE          /* accept4 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "stream.h"


/* ---------------------------------------------------------- names */

/* Remembers the socket's names (asyncio keeps them after close). */
void luaio__stream_keep_names (Stream *s) {
  int n = sizeof s->peer;
  if (s->is_pipe || s->has_names) return;
  if (uv_tcp_getpeername(&s->u.tcp, (struct sockaddr *)&s->peer, &n) != 0)
    s->peer.ss_family = AF_UNSPEC;
  n = sizeof s->sock;
  if (uv_tcp_getsockname(&s->u.tcp, (struct sockaddr *)&s->sock, &n) != 0)
    s->sock.ss_family = AF_UNSPEC;
  s->has_names = 1;
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
  luaio__stream_keep_names(s);
  return push_addr(L, peer ? &s->peer : &s->sock);
}

/*
** get_extra_info(name [, default]) -> "peername"/"sockname": host, port
** (a path for unix sockets); on TLS streams "peercert" and "cipher" too
** ("ssl_object", "sslcontext": streams.lua); default for anything else.
*/
static int w_extra (lua_State *L) {
  Stream *s = luaio__stream_checkwriter(L);
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


/* ---------------------------------------------------------- connecting */

typedef struct Connect {
  uv_connect_t req;
  Stream *s;
  Task *t;               /* NULL once the task gave up */
  int status;
  int done;
  char addr[128];        /* "ip:port" or the path, for the error */
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
  luaio__stream_close_now(c->s);
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
      luaio__stream_close_now(s);
    }                                  /* else c frees itself in on_connect */
    return luaio__raise_cancel(L, t);
  }
  status = c->status;
  if (status != 0) {
    lua_pushstring(L, c->addr);
    free(c);
    s->ep.refs = 0;
    luaio__stream_close_now(s);
    return luaio__oserror_at(L, status, "connect", lua_tostring(L, -1));
  }
  free(c);
  luaio__stream_push_pair(L, s);
  return 2;
}

static int start_connect (lua_State *L, Stream *s, const struct sockaddr *a,
                          const char *path, const char *addr) {
  Task *t = luaio__check_suspend(L, "connect");
  Connect *c = (Connect *)calloc(1, sizeof(Connect));
  int r;
  if (c == NULL) {
    luaio__stream_close_now(s);
    return luaL_error(L, "not enough memory");
  }
  c->s = s;
  c->t = t;
  c->req.data = c;
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  if (path != NULL) {
    uv_pipe_connect(&c->req, &s->u.pipe, path, on_connect);
    r = 0;
  }
  else r = uv_tcp_connect(&c->req, &s->u.tcp, a, on_connect);
  if (r != 0) {
    free(c);
    luaio__stream_close_now(s);
    return luaio__oserror_at(L, r, "connect", addr);
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

/*
** A unix socket path (at idx, argument arg of fname): no '\0', and short
** enough for sun_path -- libuv 1.44 cuts a longer one at 107 bytes
** without a word, so two long paths that differ after that would reach
** the same socket.
*/
static const char *checkpipepath (lua_State *L, int idx, int arg,
                                  const char *fname) {
  struct sockaddr_un a;
  size_t len;
  const char *path;
  luaL_checkstring(L, idx);
  path = luaio__tocstring(L, idx);
  if (path == NULL) luaio__argerror(L, arg, fname, "embedded null byte");
  len = strlen(path);
  if (len >= sizeof a.sun_path) {
    luaio__push_oserror(L, UV_ENAMETOOLONG, NULL);
    lua_pushfstring(L, "%s: AF_UNIX path too long (%I bytes, at most %I)",
                    fname, (lua_Integer)len,
                    (lua_Integer)(sizeof a.sun_path - 1));
    lua_setfield(L, -2, "message");
    lua_error(L);
  }
  return path;
}

/* core.tcp_connect(ip, port) -> reader, writer (suspends) */
static int l_tcp_connect (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "open_connection");
  const char *ip = luaio__checkcstring(L, 1, "open_connection");
  int port = checkport(L, 2, "open_connection");
  struct sockaddr_storage a;
  Stream *s;
  int r = parse_addr(ip, port, &a);
  const char *addr = luaio__push_hostport(L, ip, port);
  if (r != 0) return luaio__oserror_at(L, r, "open_connection", addr);
  luaio__check_suspend(L, "open_connection");
  s = luaio__stream_new(rt, 0);
  if (s == NULL) return luaL_error(L, "not enough memory");
  return start_connect(L, s, (struct sockaddr *)&a, NULL, addr);
}

/* core.pipe_connect(path) -> reader, writer (suspends) */
static int l_pipe_connect (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "open_unix_connection");
  const char *path = checkpipepath(L, 1, 1, "open_unix_connection");
  Stream *s;
  luaio__check_suspend(L, "open_unix_connection");
  s = luaio__stream_new(rt, 1);
  if (s == NULL) return luaL_error(L, "not enough memory");
  return start_connect(L, s, NULL, path, path);
}


/* ---------------------------------------------------------- servers */

/* How long accepting pauses after an error (out of descriptors, out of
   memory), in ms: doubled while it keeps failing, up to the maximum. */
#ifndef LUAIO_ACCEPT_PAUSE
#define LUAIO_ACCEPT_PAUSE 100
#endif
#ifndef LUAIO_ACCEPT_PAUSE_MAX
#define LUAIO_ACCEPT_PAUSE_MAX 1000
#endif

static Server *checkserver (lua_State *L) {
  SBox *b = (SBox *)luaio__checkclass(L, 1, LUAIO_SERVER);
  if (b->sv == NULL) luaL_error(L, "the server is gone");
  return b->sv;
}

static const char *server_fname (Server *sv) {
  return sv->is_pipe ? "start_unix_server" : "start_server";
}

/* The poll handle is closed: now the listening socket closes. */
static void poll_closed (uv_handle_t *h) {
  Server *sv = (Server *)h->data;
  sv->ep.rt->open_handles--;
  luaio__ep_close_handle(&sv->ep);
}

/* close(): listening stops at once (no retry is left; the poll handle
   closes first, then the socket); wait_closed() also waits for the
   connections it accepted. */
static void server_close (Endpoint *e) {
  Server *sv = (Server *)e;
  if (sv->retry > 0) {
    luaio__heap_remove(e->rt, sv->retry - 1);
    e->refs--;                         /* the retry's (e is open) */
  }
  if (sv->poll_open) {
    sv->poll_open = 0;
    uv_close((uv_handle_t *)&sv->poll, poll_closed);
  }
  else luaio__ep_close_handle(e);
}

static void server_shutdown (Endpoint *e) {
  luaio__ep_close(e);
}

/* The handle is closed: serve_forever() returns. */
static void server_closed (Endpoint *e) {
  luaio__wake_all(&((Server *)e)->forever);
}

static void server_destroy (Endpoint *e) {
  free(e);
}

static const EndpointKind server_kind = {
  "server", server_close, server_shutdown, server_closed, server_destroy
};

static void run_accept (lua_State *L, luaio_Runtime *rt, void *p, int idx);

/* run_accept goes into the ready queue, once; the server is kept (a
   reference) until it has run. */
static void queue_accept (Server *sv) {
  if (sv->queued) return;
  sv->queued = 1;
  sv->ep.refs++;
  luaio__schedule(sv->ep.rt, run_accept, sv, 0);
}

/* Accepting failed (err, a libuv error): it stops until run_accept has
   reported the error and the pause is over. */
static void accept_failed (Server *sv, int err) {
  uv_poll_stop(&sv->poll);
  sv->err = err;
  queue_accept(sv);
}

/* accept(2) errors that concern one connection only (Linux passes a new
   connection's pending network error to accept): the next is tried. */
static int transient (int err) {
  switch (err) {
    case EINTR: case ECONNABORTED: case EPROTO: case ENOPROTOOPT:
    case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP:
    case ENETDOWN: case ENETUNREACH: case EPERM:
      return 1;
    default:
      return 0;
  }
}

/*
** The listening socket is readable: every connection waiting is accepted
** onto a new stream and queued for run_accept.  luaio accepts itself
** because libuv, out of descriptors, accepts and closes every waiting
** connection and tells nobody; here an error stops accepting, leaving
** the connections in the listen backlog (accept_failed).
*/
static void accept_waiting (Server *sv);

static void on_listen (uv_poll_t *p, int status, int events) {
  Server *sv = (Server *)p->data;
  (void)events;
  if (status < 0) {
    accept_failed(sv, status);
    return;
  }
  if (!sv->ep.closing) accept_waiting(sv);
}

/* Accepts every connection waiting (on_listen's loop). */
static void accept_waiting (Server *sv) {
  for (;;) {
    Stream *s;
    int r, fd = accept4(sv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        sv->failing = 0;               /* caught up: a burst of errors, */
        sv->pause = 0;                 /* if any, is over */
        return;
      }
      if (transient(err)) continue;
      accept_failed(sv, uv_translate_sys_error(err));
      return;
    }
    s = luaio__stream_new(sv->ep.rt, sv->is_pipe);
    if (s == NULL) {
      close(fd);
      accept_failed(sv, UV_ENOMEM);
      return;
    }
    r = sv->is_pipe ? uv_pipe_open(&s->u.pipe, fd)
                    : uv_tcp_open(&s->u.tcp, fd);
    if (r != 0) {
      close(fd);
      luaio__stream_close_now(s);      /* (nothing refers to it) */
      accept_failed(sv, r);
      return;
    }
    s->limit = sv->limit;
    luaio__ep_adopt(&sv->ep, &s->ep);
    s->next_pending = sv->pending;
    sv->pending = s;
    queue_accept(sv);
  }
}

/* The pause is over: accepting resumes (a timer entry). */
static void accept_retry (lua_State *L, luaio_Runtime *rt, void *p,
                          int idx) {
  Server *sv = (Server *)((char *)p - offsetof(Server, retry));
  (void)L; (void)rt; (void)idx;
  if (sv->poll_open && !sv->ep.closing && !sv->stopped)
    uv_poll_start(&sv->poll, UV_READABLE, on_listen);
  luaio__ep_drop(&sv->ep);             /* the retry's reference */
}

/*
** l_report(exception, err, rt, server, fname): reports a failure of the
** server (err 0: the exception is why a connection could not be handed
** to its handler; else err, a libuv error, stopped accepting).  Called
** protected: out of memory, nothing is reported.
*/
static int l_report (lua_State *L) {
  int err = (int)lua_tointeger(L, 2);
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 3);
  const char *fname = (const char *)lua_touserdata(L, 5);
  lua_createtable(L, 0, 3);
  if (err != 0) {
    lua_pushfstring(L, "%s: accepting failed (%s: %s); the server pauses "
                    "accepting and retries until it works", fname,
                    uv_err_name(err), uv_strerror(err));
    luaio__push_oserror(L, err, "accept");
    lua_pushnil(L);                    /* (a traceback would show no Lua) */
    lua_setfield(L, -2, "traceback");
  }
  else {
    lua_pushfstring(L, "%s: a new connection could not be handed to its "
                    "handler (it was closed)", fname);
    lua_pushvalue(L, 1);
  }
  lua_setfield(L, -3, "exception");
  lua_setfield(L, -2, "message");
  lua_pushvalue(L, 4);
  lua_setfield(L, -2, "server");
  luaio__report(L, rt);
  return 0;
}

/* Reports err, or with err 0 the error on top (popped); see l_report. */
static void report (lua_State *L, luaio_Runtime *rt, Server *sv, int err) {
  int top = lua_gettop(L) - (err == 0);
  if (err != 0) lua_pushnil(L);
  lua_pushcfunction(L, l_report);
  lua_insert(L, -2);                   /* l_report, exception */
  lua_pushinteger(L, err);
  lua_pushlightuserdata(L, rt);
  if (sv->anchor != 0) luaio__push_anchor(L, rt, sv->anchor);
  else lua_pushnil(L);
  lua_pushlightuserdata(L, (void *)server_fname(sv));
  lua_pcall(L, 5, 0, 0);
  lua_settop(L, top);
}

/*
** Accepting failed: reported once for a burst of failures (until the
** server has accepted every connection waiting).  Out of descriptors or
** memory, a full collection closes the streams dropped without close()
** (their descriptors are what the collector cannot see); then accepting
** pauses, the pause doubling while it keeps failing.
*/
static void accept_paused (lua_State *L, luaio_Runtime *rt, Server *sv) {
  int err = sv->err;
  uint64_t ns;
  sv->err = 0;
  if (!sv->failing) {
    sv->failing = 1;
    report(L, rt, sv, err);
  }
  if (err == UV_EMFILE || err == UV_ENFILE || err == UV_ENOMEM ||
      err == UV_ENOBUFS)
    lua_gc(L, LUA_GCCOLLECT, 0);
  if (sv->ep.closing || sv->stopped || sv->retry > 0) return;  /* (closed meanwhile) */
  sv->pause = sv->pause == 0 ? LUAIO_ACCEPT_PAUSE : 2 * sv->pause;
  if (sv->pause > LUAIO_ACCEPT_PAUSE_MAX) sv->pause = LUAIO_ACCEPT_PAUSE_MAX;
  ns = (uint64_t)sv->pause * 1000000;
  if (luaio__heap_push(rt, luaio__now(rt) + ns, accept_retry, &sv->retry))
    sv->ep.refs++;                     /* kept until the retry ran */
  else uv_poll_start(&sv->poll, UV_READABLE, on_listen);  /* no memory */
}

static int conn_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L) - 3;            /* the handler's results */
}

/*
** conn_main(handler, reader, writer): the function of a connection's
** task.  The writer is a to-be-closed slot: however the handler ends
** (returns, raises, is cancelled), the connection is closed as close()
** closes it -- what was written still goes out -- as asyncio 3.12 closes
** the transport; a handler's own close() comes first and this one does
** nothing.  A handler that hands its streams to another task must wait
** for it.  (Descriptors are then released when a handler ends, not when
** a collection finds its streams: a small heap may never start one.)
*/
static int conn_main (lua_State *L) {
  lua_toclose(L, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_callk(L, 2, LUA_MULTRET, 0, conn_k);
  return conn_k(L, LUA_OK, 0);
}

/* dispatch(server, stream, rt): the task of a new connection (protected:
   a failure is that connection's alone). */
static int l_dispatch (lua_State *L) {
  Stream *s = (Stream *)lua_touserdata(L, 2);
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 3);
  lua_pushcfunction(L, conn_main);
  lua_getiuservalue(L, 1, 1);          /* conn_main, handler */
  luaio__stream_push_pair(L, s);       /* ..., handler, reader, writer */
  luaio__create_task(L, rt, 4, 3);
  return 0;
}

/*
** From the drain: each new connection gets a task running the handler;
** one that cannot (out of memory) is closed and reported, and the others
** are still handed over.  Then an accept error is dealt with.
*/
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
  while (list != NULL) {
    s = list;
    list = s->next_pending;
    s->next_pending = NULL;
    if (sv->anchor == 0) {             /* the server went away */
      luaio__stream_close_now(s);
      continue;
    }
    lua_pushcfunction(L, l_dispatch);
    luaio__push_anchor(L, rt, sv->anchor);   /* the server */
    lua_pushlightuserdata(L, s);
    lua_pushlightuserdata(L, rt);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
      luaio__stream_close_now(s);
      report(L, rt, sv, 0);
    }
    lua_settop(L, top);
  }
  if (sv->err != 0) accept_paused(L, rt, sv);
  luaio__ep_drop(&sv->ep);             /* queue_accept's (may free sv) */
}

/*
** listen(2) on the bound socket and a poll handle on it (on_listen
** accepts).  Returns 0 or a libuv error.
*/
static int start_listening (luaio_Runtime *rt, Server *sv, int backlog) {
  int r;
  if (!sv->is_pipe) {                  /* a bind error libuv kept back */
    struct sockaddr_storage a;
    int n = sizeof a;
    r = uv_tcp_getsockname(&sv->u.tcp, (struct sockaddr *)&a, &n);
    if (r != 0) return r;
  }
  r = uv_fileno(&sv->u.h, &sv->fd);
  if (r != 0) return r;
  if (listen(sv->fd, backlog) != 0) return uv_translate_sys_error(errno);
  r = uv_poll_init_socket(rt->loop, &sv->poll, sv->fd);
  if (r != 0) return r;
  sv->poll.data = sv;
  sv->poll_open = 1;
  rt->open_handles++;
  return uv_poll_start(&sv->poll, UV_READABLE, on_listen);
}

/*
** SO_REUSEPORT (start_server's reuse_port, on by default in the worker
** processes of luaio.workers): the socket is made here with the option
** set, then handed to libuv, which has no flag for it; every process
** bound so to one address gets its own accept queue, and the kernel
** spreads the connections over them.
*/
static int open_reuseport (uv_tcp_t *t, const struct sockaddr_storage *a) {
  int one = 1, r;
  int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    r = uv_translate_sys_error(errno);
    close(fd);
    return r;
  }
  r = uv_tcp_open(t, (uv_os_sock_t)fd);
  if (r != 0) close(fd);
  return r;
}

/* core.tcp_listen(ip, port, backlog, limit, handler [, reuse_port])
   -> server */
static int listen_common (lua_State *L, luaio_Runtime *rt, int is_pipe) {
  Server *sv;
  SBox *b;
  const char *where = is_pipe ? checkpipepath(L, 1, 2, "start_unix_server")
                              : luaio__checkcstring(L, 1, "start_server");
  int port = is_pipe ? 0 : checkport(L, 2, "start_server");
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
  luaio__ep_start(&sv->ep, &server_kind, rt, &sv->u.h);
  if (is_pipe) r = uv_pipe_bind(&sv->u.pipe, where);
  else {
    struct sockaddr_storage a;
    r = parse_addr(where, port, &a);
    if (r == 0 && lua_toboolean(L, 6)) r = open_reuseport(&sv->u.tcp, &a);
    if (r == 0) r = uv_tcp_bind(&sv->u.tcp, (struct sockaddr *)&a, 0);
  }
  if (r == 0) r = start_listening(rt, sv, backlog);
  if (r != 0) {
    luaio__ep_close(&sv->ep);          /* freed once closed */
    return luaio__oserror_at(L, r, is_pipe ? "start_unix_server" : "start_server",
                             is_pipe ? where : luaio__push_hostport(L, where, port));
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

/* Begins the close, once; the Lua server is no longer kept alive. */
static void stop_serving (lua_State *L, Server *sv) {
  if (luaio__ep_close(&sv->ep) && sv->anchor) {
    luaio__unanchor(L, sv->ep.rt, sv->anchor);
    sv->anchor = 0;
  }
}

static int sv_close (lua_State *L) {
  stop_serving(L, checkserver(L));
  return 0;
}

/*
** server:_stop_accepting(): the connections waiting are accepted (and
** handed over as usual), then the listening socket is closed -- dup2
** puts a fresh unbound socket in its place, under the libuv handle, which
** closes that one with the server -- while the server stays open: its
** serve_forever() goes on, its connections are served.  With reuse_port
** the socket so leaves its group at once and no connection is queued on
** it any more (closing the server later would reset those).  Returns
** true, or false when it was closed or stopped already.
*/
static int sv_stop_accepting (lua_State *L) {
  Server *sv = checkserver(L);
  int fd;
  if (sv->is_pipe || sv->stopped || !sv->poll_open || luaio__ep_is_closing(&sv->ep)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (sv->err == 0) accept_waiting(sv);
  sv->stopped = 1;
  uv_poll_stop(&sv->poll);
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || dup2(fd, sv->fd) < 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    return luaio__oserror(L, uv_translate_sys_error(err), "stop_accepting");
  }
  close(fd);
  lua_pushboolean(L, 1);
  return 1;
}

static int sv_is_serving (lua_State *L) {
  Server *sv = checkserver(L);
  lua_pushboolean(L, !luaio__ep_is_closing(&sv->ep));
  return 1;
}

/* wait_closed(): until it is closed and its connections are too (asyncio
   3.12: before close() it waits for close()). */
static int sv_wait_closed (lua_State *L) {
  return luaio__ep_wait_closed(L, &checkserver(L)->ep, "server wait_closed");
}

static int forever_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return 0;
}

/* Cancelling serve_forever closes the server (asyncio). */
static int forever_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  (void)rt;
  stop_serving(L, (Server *)t->wobj);
  return 0;
}

/* serve_forever(): until the server is closed or the task cancelled. */
static int sv_serve_forever (lua_State *L) {
  Server *sv = checkserver(L);
  Task *t;
  if (luaio__ep_is_closing(&sv->ep)) return 0;
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
  luaio__ep_drop(&sv->ep);
  return 0;
}


/* ---------------------------------------------------------- registration */

/* the writer's methods of this file (stream.c makes the class) */
const luaL_Reg luaio__stream_net_methods[] = {
  {"get_extra_info", w_extra},
  {NULL, NULL}
};

static const luaL_Reg server_methods[] = {
  {"close", sv_close},
  {"is_serving", sv_is_serving},
  {"wait_closed", sv_wait_closed},
  {"serve_forever", sv_serve_forever},
  {"getsockname", sv_getsockname},
  {"_stop_accepting", sv_stop_accepting},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"tcp_connect", l_tcp_connect},
  {"pipe_connect", l_pipe_connect},
  {"tcp_listen", l_tcp_listen},
  {"pipe_listen", l_pipe_listen},
  {NULL, NULL}
};

/* The Server class and the core's connect and listen functions (the
   core table is on the top of the stack). */
void luaio__stream_net_open (lua_State *L) {
  static const luaL_Reg *const server[] = {server_methods, NULL};
  luaio__stream_class(L, LUAIO_SERVER, "Server", server, sv_gc,
                      "ServerMethods");
  luaio__setfuncs(L, funcs);
}
