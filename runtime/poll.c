/*
** poll.c -- descriptor readiness: aio.wait_readable, aio.wait_writable
** and luaio_wait_fd, so a task (or an async C function) can drive a
** client library's own non-blocking socket.
**
**   core.wait_readable(fd [, timeout]) -> true   (suspends)
**   core.wait_writable(fd [, timeout]) -> true   (suspends)
**
** One uv_poll_t per descriptor per runtime (libuv allows no more), a
** Watch, shared by every task waiting on it: readers and writers park on
** its two wait lists; it polls for the events someone waits for and is
** closed when nobody waits.  A woken task checks with poll(2) that the
** descriptor is ready (another task may have read what woke it) and
** parks again if not, until its deadline: then TimeoutError.  An error
** condition on the descriptor counts as ready (the next read or write
** reports it), as with select and poll.
**
** A descriptor closed while a task waits on it: libuv aborts the process
** if it must then change what epoll watches for a closed descriptor, so
** every Watch whose events changed is checked (still open, still the same
** file: device and inode) in a prepare callback, just before libuv
** applies the change, and every Watch is checked once a second; a bad one
** is closed and its waiters raise OSError "fd N was closed while waiting".
** Cancellation leaves the wait list and the deadline; the Watch stops
** polling for what nobody waits for any more.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "internal.h"

/* How often every Watch's descriptor is checked (ms). */
#ifndef LUAIO_POLL_CHECK_MS
#define LUAIO_POLL_CHECK_MS 1000
#endif

typedef struct Polls Polls;

typedef struct Watch {
  uv_poll_t h;
  struct Watch *next;          /* in Polls.list */
  Polls *g;
  int fd;
  dev_t dev;                   /* the file it was made for */
  ino_t ino;
  int events;                  /* what h polls for: 0 = stopped */
  int dirty;                   /* events changed: check before the poll */
  WaitList readers, writers;
} Watch;

struct Polls {
  Hook hook;                   /* on rt->open: closes it all at shutdown */
  luaio_Runtime *rt;
  Watch *list;
  uv_prepare_t prep;           /* checks the dirty Watches */
  uv_timer_t check;            /* checks every Watch, once a second */
  int nopen;                   /* of prep and check, not yet closed */
};

/* One wait, a userdata on the waiting task's stack (kept across parks). */
typedef struct Wait {
  GState *G;
  int fd, events;
  int forever;
  uint64_t deadline;
  double timeout;              /* as given, for the message */
  dev_t dev;
  ino_t ino;
  const char *fname;
  lua_KFunction k;             /* the C caller's continuation, or NULL */
  lua_KContext kctx;
} Wait;

static const char KEY = 'P';   /* the runtime's ext slot for its Polls */


/* ---------------------------------------------------------- the Watches */

static void watch_closed (uv_handle_t *h) {
  Watch *w = (Watch *)h->data;
  w->g->rt->open_handles--;
  free(w);
}

static void watch_close (Watch *w) {
  Watch **p = &w->g->list;
  while (*p != w) p = &(*p)->next;
  *p = w->next;
  uv_close((uv_handle_t *)&w->h, watch_closed);
}

/* Is fd still open, on the file (dev, ino)? */
static int same_file (int fd, dev_t dev, ino_t ino) {
  struct stat st;
  return fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/* The descriptor went away: every waiter wakes (to raise), w closes. */
static void stale (Watch *w) {
  luaio__wake_all(&w->readers);
  luaio__wake_all(&w->writers);
  watch_close(w);
}

static void on_poll (uv_poll_t *h, int status, int events);
static void on_prepare (uv_prepare_t *h);

/* w polls for ev from now; it is checked before libuv applies that. */
static void set_events (Watch *w, int ev) {
  w->events = ev;
  uv_poll_start(&w->h, ev, on_poll);
  if (!w->dirty) {
    w->dirty = 1;
    uv_prepare_start(&w->g->prep, on_prepare);
  }
}

/* Polls for what w's waiters wait for; closes w when none waits. */
static void refresh (Watch *w) {
  int ev = (w->readers.head != NULL ? UV_READABLE : 0) |
           (w->writers.head != NULL ? UV_WRITABLE : 0);
  if (ev == 0) { watch_close(w); return; }
  if (ev != w->events) set_events(w, ev);
}

static void on_poll (uv_poll_t *h, int status, int events) {
  Watch *w = (Watch *)h->data;
  if (status < 0) {                    /* libuv stopped h: wake them all */
    w->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (events & UV_READABLE) luaio__wake_all(&w->readers);
  if (events & UV_WRITABLE) luaio__wake_all(&w->writers);
  refresh(w);
}

/* Before libuv polls: the Watches whose events changed are still valid. */
static void on_prepare (uv_prepare_t *h) {
  Polls *g = (Polls *)h->data;
  Watch *w = g->list, *next;
  uv_prepare_stop(h);
  for (; w != NULL; w = next) {
    next = w->next;
    if (!w->dirty) continue;
    w->dirty = 0;
    if (!same_file(w->fd, w->dev, w->ino)) stale(w);
  }
}

static void on_check (uv_timer_t *h) {
  Polls *g = (Polls *)h->data;
  Watch *w = g->list, *next;
  for (; w != NULL; w = next) {
    next = w->next;
    if (!same_file(w->fd, w->dev, w->ino)) stale(w);
  }
  if (g->list == NULL) uv_timer_stop(h);
}


/* ---------------------------------------------------------- per runtime */

static void polls_closed (uv_handle_t *h) {
  Polls *g = (Polls *)h->data;
  g->rt->open_handles--;
  g->rt->own_handles--;
  if (--g->nopen == 0) free(g);
}

/* Shutdown: closes every Watch (their waiters are gone), then g. */
static void close_all (luaio_Runtime *rt, Hook *h) {
  Polls *g = (Polls *)h;
  while (g->list != NULL) {
    luaio__wake_all(&g->list->readers);
    luaio__wake_all(&g->list->writers);
    watch_close(g->list);
  }
  luaio__set_ext(rt, &KEY, NULL);
  uv_close((uv_handle_t *)&g->prep, polls_closed);
  uv_close((uv_handle_t *)&g->check, polls_closed);
}

/* rt's Polls, made on first use (NULL: out of memory or no ext slot). */
static Polls *polls_of (luaio_Runtime *rt) {
  Polls *g = (Polls *)luaio__ext(rt, &KEY);
  if (g != NULL) return g;
  g = (Polls *)calloc(1, sizeof(Polls));
  if (g == NULL) return NULL;
  if (!luaio__set_ext(rt, &KEY, g)) { free(g); return NULL; }
  g->rt = rt;
  uv_prepare_init(rt->loop, &g->prep);
  uv_timer_init(rt->loop, &g->check);
  g->prep.data = g->check.data = g;
  uv_unref((uv_handle_t *)&g->prep);
  uv_unref((uv_handle_t *)&g->check);
  g->nopen = 2;
  rt->open_handles += 2;
  rt->own_handles += 2;
  g->hook.leak = "descriptor watch";
  luaio__hook(&rt->open, &g->hook, close_all);
  return g;
}


/* ---------------------------------------------------------- waiting */

static int wait_k (lua_State *L, int status, lua_KContext ctx);

/* Raises OSError "fname: fd N <what>" with errno EBADF. */
static int fd_error (lua_State *L, const Wait *wt, const char *what) {
  lua_pushfstring(L, "%s: fd %d %s", wt->fname, wt->fd, what);
  luaio__new_error(L, "OSError", lua_tostring(L, -1), 1);
  lua_pushinteger(L, EBADF);
  lua_setfield(L, -2, "errno");
  lua_pushliteral(L, "EBADF");
  lua_setfield(L, -2, "code");
  return lua_error(L);
}

/* The Watch of wt's descriptor in g, made if needed; raises. */
static Watch *watch_for (lua_State *L, Polls *g, const Wait *wt) {
  Watch *w;
  int r;
  for (w = g->list; w != NULL; w = w->next)
    if (w->fd == wt->fd) break;
  if (w != NULL && w->dev == wt->dev && w->ino == wt->ino) return w;
  if (w != NULL) stale(w);             /* its file was closed */
  w = (Watch *)calloc(1, sizeof(Watch));
  if (w == NULL) luaL_error(L, "not enough memory");
  r = uv_poll_init(g->rt->loop, &w->h, wt->fd);
  if (r != 0) {
    free(w);
    if (r == UV_EEXIST)
      luaL_error(L, "%s: fd %d is already watched by this loop (a luaio "
                 "stream, server or pipe owns it)", wt->fname, wt->fd);
    if (r == UV_EPERM)
      luaL_error(L, "%s: fd %d cannot be polled (a regular file or a "
                 "directory?)", wt->fname, wt->fd);
    luaio__oserror(L, r, wt->fname);
  }
  g->rt->open_handles++;
  w->h.data = w;
  w->g = g;
  w->fd = wt->fd;
  w->dev = wt->dev;
  w->ino = wt->ino;
  w->next = g->list;
  g->list = w;
  if (!uv_is_active((uv_handle_t *)&g->check))   /* (never postponed) */
    uv_timer_start(&g->check, on_check, LUAIO_POLL_CHECK_MS,
                   LUAIO_POLL_CHECK_MS);
  return w;
}

/* Abort hook: leave the wait list and the deadline; poll for less. */
static int wait_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Watch *w = (Watch *)t->wobj;
  (void)L; (void)rt;
  luaio__unpark(t);
  refresh(w);
  return 0;
}

/* Parks the running task t on wt (the userdata at index idx). */
static int park (lua_State *L, Task *t, Wait *wt, int idx) {
  luaio_Runtime *rt = t->rt;
  Polls *g = polls_of(rt);
  Watch *w;
  int ev;
  if (g == NULL)
    return luaL_error(L, "%s: not enough memory (or no free ext slot: "
                      "LUAIO_NEXT)", wt->fname);
  w = watch_for(L, g, wt);
  if (!wt->forever && !luaio__heap_push(rt, wt->deadline, NULL, t)) {
    refresh(w);
    return luaL_error(L, "not enough memory");
  }
  ev = w->events | (wt->events == LUAIO_READABLE ? UV_READABLE : UV_WRITABLE);
  if (ev != w->events) set_events(w, ev);
  return luaio__park(L, t, wt->events == LUAIO_READABLE ? &w->readers
                                                        : &w->writers,
                     wait_abort, wt->fname, w, (lua_KContext)idx, wait_k);
}

/* Is wt's descriptor ready now?  Raises if it was closed. */
static int ready_now (lua_State *L, const Wait *wt) {
  struct pollfd p;
  int r;
  p.fd = wt->fd;
  p.events = wt->events == LUAIO_READABLE ? POLLIN : POLLOUT;
  p.revents = 0;
  if (!same_file(wt->fd, wt->dev, wt->ino))
    return fd_error(L, wt, "was closed while waiting");
  do r = poll(&p, 1, 0); while (r < 0 && errno == EINTR);
  if (r < 0) return luaio__oserror(L, uv_translate_sys_error(errno), wt->fname);
  if (p.revents & POLLNVAL) return fd_error(L, wt, "was closed while waiting");
  return r > 0;
}

static int timed_out (lua_State *L, const Wait *wt) {
  char t[32];
  snprintf(t, sizeof t, "%g", wt->timeout);
  return luaio__error(L, "TimeoutError", "%s: fd %d not %s within %s s",
                      wt->fname, wt->fd, wt->events == LUAIO_READABLE ?
                      "readable" : "writable", t);
}

/* A deadline woke the task: its Watch polls for less, or closes. */
static void release (luaio_Runtime *rt, const Wait *wt) {
  Polls *g = (Polls *)luaio__ext(rt, &KEY);
  Watch *w;
  for (w = g != NULL ? g->list : NULL; w != NULL; w = w->next)
    if (w->fd == wt->fd) {
      refresh(w);
      return;
    }
}

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  int idx = (int)ctx;
  Wait *wt = (Wait *)lua_touserdata(L, idx);
  luaio_Runtime *rt;
  Task *t;
  (void)status;
  luaio__resumed_G(L, wt->G);          /* raises CancelledError */
  rt = wt->G->rt;
  t = rt->current;
  release(rt, wt);
  if (!ready_now(L, wt)) {
    if (!wt->forever && luaio__now(rt) >= wt->deadline)
      return timed_out(L, wt);
    return park(L, t, wt, idx);        /* woken for nothing: again */
  }
  lua_settop(L, idx - 1);
  if (wt->k != NULL) return wt->k(L, LUA_YIELD, wt->kctx);
  lua_pushboolean(L, 1);
  return 1;
}

/*
** Starts a wait: checks fd, pushes the Wait and parks.  timeout < 0:
** none.  Raises (on the caller's stack) before anything is registered.
*/
static int start (lua_State *L, GState *G, int fd, int events,
                  double timeout, const char *fname, lua_KFunction k,
                  lua_KContext kctx) {
  Task *t = luaio__check_suspend_G(L, G, fname);
  struct stat st;
  Wait *wt;
  if (fstat(fd, &st) != 0)
    return luaL_error(L, "bad argument #1 to '%s' (fd %d is not open)",
                      fname, fd);
  wt = (Wait *)lua_newuserdatauv(L, sizeof(Wait), 0);
  wt->G = G;
  wt->fd = fd;
  wt->events = events;
  wt->forever = timeout < 0 || timeout >= 4.6e9;
  wt->timeout = timeout;
  wt->deadline = wt->forever ? 0 : luaio__now(t->rt) + (uint64_t)(timeout * 1e9);
  wt->dev = st.st_dev;
  wt->ino = st.st_ino;
  wt->fname = fname;
  wt->k = k;
  wt->kctx = kctx;
  return park(L, t, wt, lua_gettop(L));
}


/* ---------------------------------------------------------- Lua and C */

static int checkfd (lua_State *L, const char *fname) {
  int isint;
  lua_Integer fd;
  if (lua_type(L, 1) != LUA_TNUMBER)
    return luaio__typeerror(L, 1, fname, "integer");
  fd = lua_tointegerx(L, 1, &isint);
  if (!isint)
    return luaio__argerror(L, 1, fname, "number has no integer "
                           "representation");
  if (fd < 0 || fd > 0x7fffffff)
    return luaio__argerror(L, 1, fname, "fd must be a descriptor >= 0");
  return (int)fd;
}

static int wait_lua (lua_State *L, int events, const char *fname) {
  int fd = checkfd(L, fname);
  double timeout = -1;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TNUMBER)
      return luaio__typeerror(L, 2, fname, "number or nil");
    timeout = lua_tonumber(L, 2);
    if (timeout != timeout)
      return luaio__argerror(L, 2, fname, "timeout is NaN");
    if (timeout < 0) timeout = 0;
  }
  lua_settop(L, 0);
  return start(L, luaio__G(L), fd, events, timeout, fname, NULL, 0);
}

static int l_wait_readable (lua_State *L) {
  return wait_lua(L, LUAIO_READABLE, "wait_readable");
}

static int l_wait_writable (lua_State *L) {
  return wait_lua(L, LUAIO_WRITABLE, "wait_writable");
}

LUAIO_API int luaio_wait_fd (lua_State *L, int fd, int events,
                             double timeout, lua_KContext ctx,
                             lua_KFunction k) {
  if (events != LUAIO_READABLE && events != LUAIO_WRITABLE)
    return luaL_error(L, "luaio_wait_fd: events must be LUAIO_READABLE or "
                      "LUAIO_WRITABLE");
  if (fd < 0)
    return luaL_error(L, "bad argument #1 to 'luaio_wait_fd' (fd must be a "
                      "descriptor >= 0)");
  if (timeout != timeout)
    return luaL_error(L, "luaio_wait_fd: timeout is NaN");
  return start(L, luaio__state(L), fd, events, timeout, "luaio_wait_fd",
               k, ctx);
}

static const luaL_Reg funcs[] = {
  {"wait_readable", l_wait_readable},
  {"wait_writable", l_wait_writable},
  {NULL, NULL}
};

void luaio__poll_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
