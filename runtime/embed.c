/*
** embed.c -- the embedding API (luaio.h): runtimes in a host's lua_State
** on a host's uv_loop_t, async C functions, calls from other threads.
**
** Every entry point runs its Lua work under lua_pcall and returns a
** status; the message of a failure is kept for luaio_error().  An
** embedded runtime stays the state's running runtime from luaio_open to
** luaio_close, so scripts may suspend whenever the host runs the loop.
** Calls from other threads go through a queue and one uv_async_t; their
** callbacks run from the drain like call_soon's.  One process-wide lock
** (the gate) guards what threads touch, so a call after the runtime is
** gone finds it gone and fails without touching it.  A pending's push
** runs exactly once after its resolve: delivering, or with L == NULL.
**
** Who makes and frees the cross-thread state (an Embed: the async
** handle, the call queue, the hold count, the pendings, its place on the
** list of open runtimes):
**   - luaio_open makes it (hosted) and luaio_close frees it: close waits
**     for the holds and refuses while one is taken (host's choice).
**   - A runtime no host opened (the CLI's, aio.run's, a Loop's) gets one
**     on the loop thread from the first luaio_hold or luaio_pending
**     (need_embed); a thread never makes one, so before that its calls
**     fail.  loop.c's shutdown frees it: it waits for the holds and the
**     unresolved pendings like for its tasks (luaio__embed_busy), within
**     shutdown_timeout; then luaio__embed_detach unlists it (a hold still
**     taken is reported: that thread's calls fail from now on) and
**     resolves what threads queued; luaio__embed_free, once the async
**     handle is closed, orphans the pendings left and frees it.
** Either way an unlisted Embed is reached by no thread: calls naming the
** runtime fail, and an orphaned pending (rt NULL) is freed by its resolve.
*/
#include <stdlib.h>
#include <string.h>

#include "lualib.h"

#include "internal.h"
#include "cli.h"

typedef struct Call {
  struct Call *next;
  luaio_Callback fn;
  void *ud;
  luaio_Pending *p;            /* a resolve, or NULL for a plain call */
} Call;

typedef struct Embed {
  Hook hook;                   /* on rt->open: closes the async handle */
  uv_async_t async;
  luaio_Runtime *rt;
  struct Embed *next_live;     /* on the list of open runtimes (gate) */
  Call *head, *tail;           /* (gate) */
  int async_closed;            /* (gate) */
  int hosted;                  /* made by luaio_open; else by need_embed */
  luaio_Pending *pendings;     /* not yet freed nor orphaned */
  int unresolved;              /* of those, not yet resolved */
  int owns_state;
  int holds;                   /* luaio_hold count: the async handle is
                                  referenced (keeps the loop alive) while > 0 */
  char *err;
} Embed;

static const char KEY = 'E';   /* the runtime's ext slot for its Embed */

/* The embedding state of rt (NULL: a runtime no host opened). */
static Embed *embed_of (luaio_Runtime *rt) {
  return (Embed *)luaio__ext(rt, &KEY);
}

/*
** A pending operation.  Freed once resolved and done with by its task
** (task_done); at luaio_close one not yet resolved is orphaned (rt NULL,
** task_done): its luaio_resolve discards and frees it.  push runs once:
** consumed.  Fields marked (gate) are read by other threads.
*/
struct luaio_Pending {
  luaio_Pending *prev, *next;  /* on its Embed's list */
  luaio_Runtime *rt;           /* NULL: orphaned (gate) */
  Embed *e;                    /* its runtime's, until orphaned */
  Task *t;                     /* the waiting task; NULL once it gave up */
  unsigned char resolved, awaited, consumed, task_done;
  unsigned char linked;        /* on e's list (until orphaned) */
  unsigned char cancelled;     /* nobody will receive its values (gate) */
  luaio_Callback push;
  void *ud;
  void (*on_cancel) (void *ud);
  void *cancel_ud;
};


/* ---------------------------------------------------------- the gate */

/*
** One process-wide lock guards what other threads touch: the list of
** open runtimes, every runtime's call queue, and the pendings' rt and
** cancelled fields.  A call naming a runtime not on the list (closed)
** fails without touching it.
*/
static uv_once_t gate_once = UV_ONCE_INIT;
static uv_mutex_t gate;
static Embed *live;

static void gate_init (void) {
  if (uv_mutex_init(&gate) != 0) abort();
}

static void lock (void) {
  uv_once(&gate_once, gate_init);
  uv_mutex_lock(&gate);
}

static void unlock (void) {
  uv_mutex_unlock(&gate);
}

/* Under the gate: the open runtime rt's Embed, or NULL. */
static Embed *live_embed (luaio_Runtime *rt) {
  Embed *e;
  for (e = live; e != NULL; e = e->next_live)
    if (e->rt == rt) return e;
  return NULL;
}

static void unlist (Embed *e) {
  Embed **pp;
  lock();
  for (pp = &live; *pp != NULL; pp = &(*pp)->next_live)
    if (*pp == e) { *pp = e->next_live; break; }
  unlock();
}


/* ---------------------------------------------------------- making one */

static void on_async (uv_async_t *h);
static void close_embed (luaio_Runtime *rt, Hook *h);

static void async_closed (uv_handle_t *h) {
  Embed *e = (Embed *)h->data;
  e->rt->open_handles--;
  if (!e->hosted) e->rt->own_handles--;
}

/*
** rt's Embed, made now if it has none (loop thread): by luaio_open
** (hosted), else by the first luaio_hold or luaio_pending.  NULL when
** out of memory, or once shutdown has cut threads off (threads_off).
*/
static Embed *need_embed (luaio_Runtime *rt, int hosted) {
  Embed *e = embed_of(rt);
  if (e != NULL || rt->threads_off) return e;
  e = (Embed *)calloc(1, sizeof(Embed));
  if (e == NULL) return NULL;
  if (!luaio__set_ext(rt, &KEY, e) ||
      uv_async_init(rt->loop, &e->async, on_async) != 0) {
    luaio__set_ext(rt, &KEY, NULL);
    free(e);
    return NULL;
  }
  e->rt = rt;
  e->hosted = hosted;
  e->async.data = e;
  uv_unref((uv_handle_t *)&e->async);  /* it does not keep the loop alive */
  rt->open_handles++;
  if (!hosted) rt->own_handles++;      /* (not the program's: stats) */
  luaio__hook(&rt->open, &e->hook, close_embed);
  lock();                              /* threads may find it from now on */
  e->next_live = live;
  live = e;
  unlock();
  return e;
}


/* ---------------------------------------------------------- stdlib */

static int load_embedded (lua_State *L) {
  const EmbeddedModule *m = (const EmbeddedModule *)lua_touserdata(
    L, lua_upvalueindex(1));
  lua_pushfstring(L, "=[luaio] %s", m->name);
  if (luaL_loadbufferx(L, m->src, m->len, lua_tostring(L, -1), "b") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, 1);
  lua_pushliteral(L, ":embedded:");
  lua_call(L, 2, 1);
  return 1;
}

/* Puts luaio.core and the Lua stdlib compiled in into package.preload. */
LUAIO_API void luaio_preload (lua_State *L) {
  const EmbeddedModule *m;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaio_core);
  lua_setfield(L, -2, "luaio.core");
  for (m = luaio__stdlib; m->name != NULL; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);
}


/* ---------------------------------------------------------- errors */

static void set_error (luaio_Runtime *rt, const char *msg) {
  Embed *e = embed_of(rt);
  if (e == NULL || !e->hosted) return;  /* (a runtime no host opened) */
  free(e->err);
  e->err = NULL;
  if (msg != NULL) {
    e->err = (char *)malloc(strlen(msg) + 1);
    if (e->err) strcpy(e->err, msg);
  }
}

/* Runs f(L) with rt as light userdata 1, under lua_pcall. */
static int protect (luaio_Runtime *rt, lua_CFunction f, int nargs) {
  lua_State *L = rt->S;
  int status;
  lua_pushcfunction(L, f);
  lua_insert(L, -nargs - 1);
  lua_pushlightuserdata(L, rt);
  lua_insert(L, -nargs - 1);
  status = lua_pcall(L, nargs + 1, 0, 0);
  if (status != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    set_error(rt, m != NULL ? m : "(error object is not a string)");
    lua_pop(L, 1);
    return LUAIO_ERROR;
  }
  set_error(rt, NULL);
  return LUAIO_OK;
}

/* A failure of an entry point: its message kept. */
static int refuse (luaio_Runtime *rt, const char *msg) {
  set_error(rt, msg);
  return LUAIO_ERROR;
}

LUAIO_API const char *luaio_error (luaio_Runtime *rt) {
  Embed *e;
  if (rt == NULL)
    return "luaio_error: no runtime (NULL; luaio_open's message is in "
           "its err buffer)";
  e = embed_of(rt);
  return e != NULL && e->err != NULL ? e->err : "no error";
}


/* ---------------------------------------------------------- threads */

static void run_ccall (lua_State *L, luaio_Runtime *rt, void *p, int idx);

/* Takes the queued calls (gate). */
static Call *take_calls (Embed *e) {
  Call *c;
  lock();
  c = e->head;
  e->head = e->tail = NULL;
  unlock();
  return c;
}

/* Resolves and schedules what other threads queued. */
static void run_calls (luaio_Runtime *rt, Call *c) {
  while (c != NULL) {
    Call *next = c->next;
    if (c->p != NULL) {
      luaio_resolve(c->p, c->fn, c->ud);
      free(c);
    }
    else luaio__schedule(rt, run_ccall, c, 0);
    c = next;
  }
}

static void on_async (uv_async_t *h) {
  Embed *e = (Embed *)h->data;
  run_calls(e->rt, take_calls(e));
}

/* Under the gate: queues c on e and wakes its loop. */
static void enqueue (Embed *e, Call *c) {
  if (e->tail) e->tail->next = c;
  else e->head = c;
  e->tail = c;
  if (!e->async_closed) uv_async_send(&e->async);
}

static Call *new_call (luaio_Callback fn, void *ud, luaio_Pending *p) {
  Call *c = (Call *)malloc(sizeof(Call));
  if (c == NULL) return NULL;
  c->next = NULL;
  c->fn = fn;
  c->ud = ud;
  c->p = p;
  return c;
}

static int ccall_trampoline (lua_State *L) {
  Call *c = (Call *)lua_touserdata(L, 1);
  luaio_Callback fn = c->fn;
  void *ud = c->ud;
  free(c);
  lua_settop(L, 0);
  fn(L, ud);
  return 0;
}

/* From the drain: a luaio_call_threadsafe callback, errors reported. */
static void run_ccall (lua_State *L, luaio_Runtime *rt, void *p, int idx) {
  int top = lua_gettop(L);
  (void)idx;
  lua_pushcfunction(L, ccall_trampoline);
  lua_pushlightuserdata(L, p);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "Exception in a luaio_call_threadsafe callback");
    lua_setfield(L, -2, "message");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "exception");
    luaio__report(L, rt);
  }
  lua_settop(L, top);
}

/* Any thread: fails (nothing taken) once rt is closed. */
LUAIO_API int luaio_call_threadsafe (luaio_Runtime *rt, luaio_Callback fn,
                                     void *ud) {
  Call *c = new_call(fn, ud, NULL);
  Embed *e;
  if (c == NULL) return LUAIO_ERROR;
  lock();
  e = live_embed(rt);
  if (e != NULL) enqueue(e, c);
  unlock();
  if (e == NULL) free(c);
  return e != NULL ? LUAIO_OK : LUAIO_ERROR;
}

/*
** Any thread.  A pending orphaned by luaio_close is freed and the call
** fails: push is not called, ud is the caller's.
*/
LUAIO_API int luaio_resolve_threadsafe (luaio_Pending *p,
                                        luaio_Callback push, void *ud) {
  Call *c = new_call(push, ud, p);
  int orphan, ok;
  if (c == NULL) return LUAIO_ERROR;
  lock();
  orphan = p->rt == NULL;
  ok = !orphan && p->linked;
  if (ok) enqueue(p->e, c);
  unlock();
  if (!ok) free(c);
  if (orphan) free(p);
  return ok ? LUAIO_OK : LUAIO_ERROR;
}


/* ---------------------------------------------------------- pendings */

static void link_pending (Embed *e, luaio_Pending *p) {
  p->prev = NULL;
  p->next = e->pendings;
  if (e->pendings) e->pendings->prev = p;
  e->pendings = p;
}

static void unlink_pending (Embed *e, luaio_Pending *p) {
  if (p->prev) p->prev->next = p->next;
  else e->pendings = p->next;
  if (p->next) p->next->prev = p->prev;
  p->prev = p->next = NULL;
}

/* Frees p once both sides are done with it. */
static void settle (luaio_Pending *p) {
  if (!p->resolved || !p->task_done) return;
  if (p->linked) unlink_pending(p->e, p);
  free(p);
}

static void mark_cancelled (luaio_Pending *p) {
  lock();
  p->cancelled = 1;
  unlock();
}

/* The one cleanup call when nobody will receive the values. */
static void discard (luaio_Pending *p) {
  if (p->consumed) return;
  p->consumed = 1;
  if (p->push != NULL) p->push(NULL, p->ud);
}

/* The one call that delivers: p is freed first (push may raise). */
static int deliver (lua_State *L, luaio_Pending *p) {
  luaio_Callback push = p->push;
  void *ud = p->ud;
  int top = lua_gettop(L);
  p->consumed = p->task_done = 1;
  settle(p);
  return push != NULL ? push(L, ud) : lua_gettop(L) - top;
}

LUAIO_API luaio_Pending *luaio_pending (lua_State *L) {
  GState *G = luaio__state(L);
  luaio_Runtime *rt = G->rt;
  Embed *e;
  luaio_Pending *p;
  if (rt == NULL || rt->current == NULL)
    luaL_error(L, "async C function: needs a running task (called outside "
               "a task)");
  if (!lua_isyieldable(L) || L != rt->running)
    luaL_error(L, "async C function: cannot suspend here (a C call that "
               "does not allow yields is on the stack)");
  e = need_embed(rt, 0);
  p = e != NULL ? (luaio_Pending *)calloc(1, sizeof(luaio_Pending)) : NULL;
  if (p == NULL) luaL_error(L, "not enough memory");
  p->rt = rt;
  p->e = e;
  p->t = rt->current;
  link_pending(e, p);
  p->linked = 1;
  e->unresolved++;
  return p;
}

LUAIO_API void luaio_pending_on_cancel (luaio_Pending *p,
                                        void (*fn) (void *ud), void *ud) {
  p->on_cancel = fn;
  p->cancel_ud = ud;
}

/* Any thread, until p is resolved. */
LUAIO_API int luaio_pending_cancelled (luaio_Pending *p) {
  int r;
  lock();
  r = p->cancelled;
  unlock();
  return r;
}

/* Cancelled while parked (so not resolved): the hook may resolve now. */
static int pending_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  luaio_Pending *p = (luaio_Pending *)t->wobj;
  (void)L; (void)rt;
  p->t = NULL;
  mark_cancelled(p);
  if (p->on_cancel != NULL) p->on_cancel(p->cancel_ud);
  return 0;
}

static int pending_k (lua_State *L, int status, lua_KContext ctx) {
  luaio_Pending *p = (luaio_Pending *)ctx;
  luaio_Runtime *rt = luaio__state(L)->rt;
  Task *t;
  (void)status;
  if (rt == NULL || L != rt->running)
    return luaL_error(L, "a suspended luaio call was resumed by something "
                      "other than luaio's scheduler");
  t = rt->current;
  if (t->must_cancel) {        /* before or after its resolve */
    p->t = NULL;
    if (p->resolved) discard(p);
    else mark_cancelled(p);
    p->task_done = 1;
    settle(p);
    return luaio__raise_cancel(L, t);
  }
  return deliver(L, p);
}

LUAIO_API int luaio_await (lua_State *L, luaio_Pending *p) {
  p->awaited = 1;
  if (p->resolved) return deliver(L, p);   /* before it suspended */
  return luaio__park(L, p->t, NULL, pending_abort, "async C function", p,
                     (lua_KContext)p, pending_k);
}

/* Is t still one of rt's tasks?  (Asked only while closing: a task
   abandoned then never resumes, and its memory may be gone.) */
static int task_alive (luaio_Runtime *rt, Task *t) {
  Task *x;
  for (x = rt->tasks; x != NULL; x = x->next)
    if (x == t) return 1;
  return 0;
}

LUAIO_API void luaio_resolve (luaio_Pending *p, luaio_Callback push,
                              void *ud) {
  if (p->resolved) return;
  p->resolved = 1;
  p->push = push;
  p->ud = ud;
  if (p->rt == NULL) {                 /* orphaned by luaio_close */
    discard(p);
    free(p);
    return;
  }
  if (p->linked) p->e->unresolved--;
  if (p->t != NULL && p->rt->closing && !task_alive(p->rt, p->t))
    p->t = NULL, p->task_done = 1;
  if (p->t == NULL) {                  /* its task gave up */
    discard(p);
    settle(p);
  }
  else if (p->awaited) luaio__wake(p->rt, p->t);
}


/* ---------------------------------------------------------- lifetime */

/* LUAIO_SHUTDOWN_TIMEOUT, as aio.run reads it; raises if malformed. */
static double env_timeout (lua_State *L) {
  const char *s = getenv("LUAIO_SHUTDOWN_TIMEOUT");
  char *end;
  double v;
  if (s == NULL) return 5.0;
  v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0 && v - v == 0))
    luaL_error(L, "LUAIO_SHUTDOWN_TIMEOUT must be a number of seconds >= 0 "
               "(got \"%s\")", s);
  return v;
}

static int open_in (lua_State *L) {
  uv_loop_t *loop = (uv_loop_t *)lua_touserdata(L, 1);
  luaio_Runtime **out = (luaio_Runtime **)lua_touserdata(L, 2);
  luaio_Runtime *rt;
  GState *G = luaio__state(L);
  double timeout = env_timeout(L);
  G->embedded = 1;
  luaio_preload(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaio");
  lua_call(L, 1, 0);
  if (G->rt != NULL)
    return luaL_error(L, "luaio_open: this lua_State already has a runtime");
  rt = luaio__new_runtime(L, loop);
  rt->shutdown_timeout = timeout;
  G->rt = rt;                          /* running from now on */
  *out = rt;
  return 0;
}

LUAIO_API luaio_Runtime *luaio_open (lua_State *L, uv_loop_t *loop,
                                     char *err, size_t errlen) {
  luaio_Runtime *rt = NULL;
  Embed *e;
  int owns = 0;
  if (L == NULL) {
    L = luaL_newstate();
    if (L == NULL) {
      if (errlen > 0) snprintf(err, errlen, "luaio_open: not enough memory");
      return NULL;
    }
    luaL_openlibs(L);
    owns = 1;
  }
  lua_pushcfunction(L, open_in);
  lua_pushlightuserdata(L, loop);
  lua_pushlightuserdata(L, &rt);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    if (errlen > 0) {
      const char *m = lua_tostring(L, -1);
      snprintf(err, errlen, "%s", m != NULL ? m : "luaio_open failed");
    }
    lua_pop(L, 1);
    if (owns) lua_close(L);
    return NULL;
  }
  e = need_embed(rt, 1);
  if (e == NULL) {
    if (errlen > 0) snprintf(err, errlen, "luaio_open: not enough memory");
    return NULL;
  }
  e->owns_state = owns;
  return rt;
}

/* Shutdown: rt's hook closes the async handle (what is queued later is
   handled by luaio_close). */
static void close_embed (luaio_Runtime *rt, Hook *h) {
  Embed *e = (Embed *)h;
  (void)rt;
  lock();
  e->async_closed = 1;
  unlock();
  uv_close((uv_handle_t *)&e->async, async_closed);
}

/* What the close waits for: tasks, holds, unresolved operations. */
static int close_busy (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  return rt->ntasks > 0 || e->holds > 0 || e->unresolved > 0;
}

/*
** Before closing: cancels every task, then runs the loop until the tasks
** have finished, the holds are given back and every pending is resolved,
** or until the deadline (light userdata 2).
*/
static int drain_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  uint64_t deadline = *(uint64_t *)lua_touserdata(L, 2);
  luaio__cancel_all(L, rt);
  luaio__kick(rt);
  luaio__run_while(rt, deadline, close_busy);
  return 0;
}

static int close_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  luaio__shutdown(L, rt);
  return 0;
}

static lua_State *main_of (luaio_Runtime *rt) {
  lua_State *L = rt->S, *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main;
}

/* Runs f(rt, ud) on the main thread, under lua_pcall (errors dropped). */
static void run_main (luaio_Runtime *rt, lua_CFunction f, void *ud) {
  lua_State *main = main_of(rt);
  lua_pushcfunction(main, f);
  lua_pushlightuserdata(main, rt);
  lua_pushlightuserdata(main, ud);
  if (lua_pcall(main, 2, 0, 0) != LUA_OK) lua_pop(main, 1);
}

/*
** After shutdown: what threads queued meanwhile, and the pendings left.
** One resolved but never delivered is discarded; one never resolved is
** orphaned (its luaio_resolve discards it).  Returns how many were.
*/
static int orphan_pendings (Embed *e) {
  luaio_Pending *p, *next, *done = NULL;
  Call *c, *cn;
  int n = 0;
  lock();                      /* (a worker may free an orphan at once) */
  c = e->head;
  e->head = e->tail = NULL;
  for (p = e->pendings; p != NULL; p = next) {
    next = p->next;
    p->prev = p->next = NULL;
    p->linked = 0;
    p->e = NULL;
    p->t = NULL;
    p->task_done = 1;
    if (p->resolved) { p->next = done; done = p; }
    else {
      p->rt = NULL;
      p->cancelled = 1;
      n++;
    }
  }
  e->pendings = NULL;
  unlock();
  for (p = done; p != NULL; p = next) {
    next = p->next;
    discard(p);
    free(p);
  }
  for (; c != NULL; c = cn) {  /* resolves of orphans (no plain calls:
                                  the runtime was unlisted first) */
    cn = c->next;
    if (c->p != NULL) luaio_resolve(c->p, c->fn, c->ud);
    free(c);
  }
  return n;
}

/* The state was closed first: nothing of it can be touched. */
static int closed_state (luaio_Runtime *rt, Embed *e) {
  unlist(e);
  orphan_pendings(e);
  return refuse(rt, "luaio_close: the lua_State was closed first (call "
                "luaio_close before lua_close); the runtime is left unfreed");
}

LUAIO_API int luaio_close (luaio_Runtime *rt) {
  Embed *e;
  lua_State *main;
  uint64_t deadline, now;
  int orphans;
  char msg[200];
  if (rt == NULL || (e = embed_of(rt)) == NULL || !e->hosted)
    return LUAIO_ERROR;
  if (rt->closed) return closed_state(rt, e);
  if (rt->current != NULL || rt->running_depth > 0)
    return refuse(rt, "luaio_close: called from inside the runtime (a task "
                  "or a callback); close it from the host, after luaio_run "
                  "returns");
  deadline = luaio__real_after(rt->shutdown_timeout);
  rt->running_depth++;
  run_main(rt, drain_in, &deadline);
  rt->running_depth--;
  if (e->holds > 0) {
    snprintf(msg, sizeof msg, "luaio_close: %d hold%s still taken after "
             "%g s (a host thread may still call back): nothing is closed; "
             "release %s, then close again", e->holds,
             e->holds > 1 ? "s" : "", rt->shutdown_timeout,
             e->holds > 1 ? "them" : "it");
    return refuse(rt, msg);
  }
  unlist(e);                   /* other threads' calls fail from now on */
  run_calls(rt, take_calls(e));
  now = uv_hrtime();
  rt->shutdown_timeout = now < deadline ? (deadline - now) / 1e9 : 0;
  run_main(rt, close_in, NULL);
  orphans = orphan_pendings(e);
  if (orphans > 0) {
    snprintf(msg, sizeof msg, "luaio_close: %d async C operation%s not "
             "resolved in time (no cancel hook ended %s): luaio_resolve "
             "discards %s later", orphans, orphans > 1 ? "s" : "",
             orphans > 1 ? "them" : "it", orphans > 1 ? "them" : "it");
    luaio__report_msg(rt, msg);
  }
  main = main_of(rt);
  rt->G->rt = NULL;
  luaio__free_runtime(main, rt);
  free(e->err);
  if (e->owns_state) lua_close(main);
  free(e);
  return LUAIO_OK;
}

LUAIO_API void luaio_hold (luaio_Runtime *rt) {
  Embed *e = rt != NULL ? need_embed(rt, 0) : NULL;
  if (e != NULL && e->holds++ == 0) uv_ref((uv_handle_t *)&e->async);
}

LUAIO_API void luaio_release (luaio_Runtime *rt) {
  Embed *e = rt != NULL ? embed_of(rt) : NULL;
  if (e != NULL && e->holds > 0 && --e->holds == 0)
    uv_unref((uv_handle_t *)&e->async);
}

LUAIO_API luaio_Runtime *luaio_running (lua_State *L) {
  return L != NULL ? luaio__state(L)->rt : NULL;
}

LUAIO_API lua_State *luaio_state (luaio_Runtime *rt) {
  return rt != NULL ? main_of(rt) : NULL;
}

LUAIO_API uv_loop_t *luaio_loop (luaio_Runtime *rt) {
  return rt != NULL ? rt->loop : NULL;
}

LUAIO_API void luaio_set_report (luaio_Runtime *rt, luaio_ReportFn fn,
                                 void *ud) {
  if (rt == NULL) return;
  rt->report = fn;
  rt->report_ud = ud;
}


/* ---------------------------------------------------------- running */

static int spawn_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  luaio__create_task(L, rt, 2, lua_gettop(L) - 2);
  return 0;
}

LUAIO_API int luaio_spawn (luaio_Runtime *rt, int nargs) {
  lua_State *L;
  char msg[120];
  if (rt == NULL) return LUAIO_ERROR;
  L = luaio_state(rt);
  if (nargs < 0 || lua_gettop(L) < nargs + 1) {
    snprintf(msg, sizeof msg, "luaio_spawn: a function and %d argument%s "
             "expected on the stack, which holds %d value%s", nargs,
             nargs == 1 ? "" : "s", lua_gettop(L),
             lua_gettop(L) == 1 ? "" : "s");
    return refuse(rt, msg);
  }
  if (!lua_checkstack(rt->S, nargs + 3))
    return refuse(rt, "luaio_spawn: not enough memory");
  lua_xmove(L, rt->S, nargs + 1);
  return protect(rt, spawn_in, nargs + 1);
}

static int load_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  const char *code = lua_tostring(L, 2);
  const char *name = lua_tostring(L, 3);
  int status = lua_toboolean(L, 4) ? luaL_loadfile(L, code)
                                   : luaL_loadbuffer(L, code, strlen(code), name);
  if (status != LUA_OK) return lua_error(L);
  luaio__create_task(L, rt, -1, 0);
  return 0;
}

static int do_chunk (luaio_Runtime *rt, const char *s, const char *name,
                     int file) {
  lua_State *L;
  if (rt == NULL) return LUAIO_ERROR;
  if (s == NULL)
    return refuse(rt, file ? "luaio_dofile: the path is NULL"
                           : "luaio_dostring: the code is NULL");
  L = rt->S;
  lua_pushstring(L, s);
  lua_pushstring(L, name != NULL ? name : s);
  lua_pushboolean(L, file);
  return protect(rt, load_in, 3);
}

LUAIO_API int luaio_dostring (luaio_Runtime *rt, const char *code,
                              const char *chunkname) {
  return do_chunk(rt, code, chunkname != NULL ? chunkname : "=(string)", 0);
}

LUAIO_API int luaio_dofile (luaio_Runtime *rt, const char *path) {
  return do_chunk(rt, path, NULL, 1);
}

LUAIO_API int luaio_pending_tasks (luaio_Runtime *rt) {
  return rt != NULL ? (int)rt->ntasks : 0;
}

/* luaio_run and luaio_step (name: which, for the messages). */
static int run_loop (luaio_Runtime *rt, uv_run_mode mode, const char *name) {
  char msg[100];
  if (rt == NULL) return LUAIO_ERROR;
  if (rt->current != NULL || rt->running_depth > 0) {
    snprintf(msg, sizeof msg, "%s: called from inside the runtime", name);
    return refuse(rt, msg);
  }
  luaio__kick(rt);
  rt->running_depth++;
  uv_run(rt->loop, mode);
  rt->running_depth--;
  if (rt->fatal) {
    rt->fatal = 0;
    snprintf(msg, sizeof msg, "%s: the scheduler failed (out of memory)",
             name);
    return refuse(rt, msg);
  }
  return LUAIO_OK;
}

LUAIO_API int luaio_run (luaio_Runtime *rt, uv_run_mode mode) {
  return run_loop(rt, mode, "luaio_run");
}

LUAIO_API int luaio_backend_fd (luaio_Runtime *rt) {
  return rt != NULL ? uv_backend_fd(rt->loop) : -1;
}

LUAIO_API int luaio_backend_timeout (luaio_Runtime *rt) {
  if (rt == NULL) return -1;
  if (rt->qlen > 0) return 0;
  return uv_backend_timeout(rt->loop);
}

LUAIO_API int luaio_step (luaio_Runtime *rt) {
  return run_loop(rt, UV_RUN_NOWAIT, "luaio_step");
}


/* ---------------------------------------------------------- for embed_*.c */

/* luaio_error's message, set by embed_task.c (a runtime no host opened
   keeps none). */
void luaio__embed_set_error (luaio_Runtime *rt, const char *msg) {
  set_error(rt, msg);
}

/* Was rt opened by a host (luaio_open)?  Only such a runtime keeps error
   messages (embed_capi.c asks). */
int luaio__embed_has (luaio_Runtime *rt) {
  Embed *e = rt != NULL ? embed_of(rt) : NULL;
  return e != NULL && e->hosted;
}


/* ---------------------------------------------------------- for loop.c */

/* Shutdown waits, as for tasks, while a hold is taken or a pending is
   not resolved (its thread or completion may still call). */
int luaio__embed_busy (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  return e != NULL && (e->holds > 0 || e->unresolved > 0);
}

/*
** Shutdown, done waiting (the tasks abandoned): no Embed is made from now
** on; one luaio_open did not make is unlisted -- other threads' calls
** fail from now on -- and what they queued is resolved or scheduled.  A
** hold still taken is reported (luaio_close refuses instead: hosted).
*/
void luaio__embed_detach (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  char msg[240];
  rt->threads_off = 1;
  if (e == NULL || e->hosted) return;
  if (e->holds > 0) {
    snprintf(msg, sizeof msg, "%d luaio_hold%s still taken at loop close "
             "after %g s (a C module's thread may still call back): the "
             "loop closes anyway, and that thread's cross-thread calls "
             "fail from now on (LUAIO_ERROR)", e->holds,
             e->holds > 1 ? "s" : "", rt->shutdown_timeout);
    luaio__report_msg(rt, msg);
  }
  unlist(e);
  run_calls(rt, take_calls(e));
}

/*
** Shutdown, its handles closed: frees the Embed luaio_open did not make,
** orphaning the pendings left (reported; their resolve frees them).
*/
void luaio__embed_free (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  int orphans;
  char msg[200];
  if (e == NULL || e->hosted) return;
  orphans = orphan_pendings(e);
  if (orphans > 0) {
    snprintf(msg, sizeof msg, "%d async C operation%s still not resolved "
             "at loop close: luaio_resolve discards %s later "
             "(luaio_resolve_threadsafe returns LUAIO_ERROR)", orphans,
             orphans > 1 ? "s" : "", orphans > 1 ? "them" : "it");
    luaio__report_msg(rt, msg);
  }
  luaio__set_ext(rt, &KEY, NULL);
  free(e);
}
