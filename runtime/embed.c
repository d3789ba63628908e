/*
** embed.c -- the embedding API (luaio.h): runtimes in a host's lua_State
** on a host's uv_loop_t, async C functions, calls from other threads.
**
** Every entry point runs its Lua work under lua_pcall and returns a
** status; the message of a failure is kept for luaio_error().  An
** embedded runtime stays the state's running runtime from luaio_open to
** luaio_close, so scripts may suspend whenever the host runs the loop.
** Calls from other threads go through a mutex-protected list and one
** uv_async_t; their callbacks run from the drain like call_soon's.
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
  uv_mutex_t lock;
  Call *head, *tail;
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

struct luaio_Pending {
  luaio_Runtime *rt;
  Task *t;               /* the waiting task; NULL once it gave up */
  int refs;                    /* the task's hold and the resolver's */
  int resolved, awaited;
  luaio_Callback push;
  void *ud;
  void (*on_cancel) (void *ud);
  void *cancel_ud;
};


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

LUAIO_API const char *luaio_error (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  return e->err != NULL ? e->err : "no error";
}


/* ---------------------------------------------------------- threads */

static void run_ccall (lua_State *L, luaio_Runtime *rt, void *p, int idx);

static void on_async (uv_async_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  Embed *e = embed_of(rt);
  Call *c;
  uv_mutex_lock(&e->lock);
  c = e->head;
  e->head = e->tail = NULL;
  uv_mutex_unlock(&e->lock);
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

static int enqueue (luaio_Runtime *rt, luaio_Callback fn, void *ud,
                    luaio_Pending *p) {
  Embed *e = embed_of(rt);
  Call *c = (Call *)malloc(sizeof(Call));
  if (c == NULL) return LUAIO_ERROR;
  c->next = NULL;
  c->fn = fn;
  c->ud = ud;
  c->p = p;
  uv_mutex_lock(&e->lock);
  if (e->tail) e->tail->next = c;
  else e->head = c;
  e->tail = c;
  uv_mutex_unlock(&e->lock);
  uv_async_send(&e->async);
  return LUAIO_OK;
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

LUAIO_API int luaio_call_threadsafe (luaio_Runtime *rt, luaio_Callback fn,
                                     void *ud) {
  return enqueue(rt, fn, ud, NULL);
}

LUAIO_API int luaio_resolve_threadsafe (luaio_Pending *p,
                                        luaio_Callback push, void *ud) {
  return enqueue(p->rt, push, ud, p);
}


/* ---------------------------------------------------------- pendings */

static void unref_pending (luaio_Pending *p) {
  if (--p->refs == 0) free(p);
}

LUAIO_API luaio_Pending *luaio_pending (lua_State *L) {
  GState *G = luaio__state(L);
  luaio_Runtime *rt = G->rt;
  luaio_Pending *p;
  if (rt == NULL || rt->current == NULL)
    luaL_error(L, "async C function: needs a running task (called outside "
               "a task)");
  if (!lua_isyieldable(L) || L != rt->running)
    luaL_error(L, "async C function: cannot suspend here (a C call that "
               "does not allow yields is on the stack)");
  p = (luaio_Pending *)calloc(1, sizeof(luaio_Pending));
  if (p == NULL) luaL_error(L, "not enough memory");
  p->rt = rt;
  p->t = rt->current;
  p->refs = 2;
  return p;
}

LUAIO_API void luaio_pending_on_cancel (luaio_Pending *p,
                                        void (*fn) (void *ud), void *ud) {
  p->on_cancel = fn;
  p->cancel_ud = ud;
}

LUAIO_API int luaio_pending_cancelled (luaio_Pending *p) {
  return p->t == NULL;
}

static int pending_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  luaio_Pending *p = (luaio_Pending *)t->wobj;
  (void)L; (void)rt;
  p->t = NULL;
  if (p->on_cancel != NULL) p->on_cancel(p->cancel_ud);
  return 0;
}

static int pending_k (lua_State *L, int status, lua_KContext ctx) {
  luaio_Pending *p = (luaio_Pending *)ctx;
  luaio_Runtime *rt = luaio__state(L)->rt;
  Task *t;
  luaio_Callback push;
  void *ud;
  int top;
  (void)status;
  if (rt == NULL || L != rt->running)
    return luaL_error(L, "a suspended luaio call was resumed by something "
                      "other than luaio's scheduler");
  t = rt->current;
  if (t->must_cancel) {
    if (!t->aborted) {                 /* resolved, then cancelled */
      p->t = NULL;
      unref_pending(p);
    }
    else unref_pending(p);
    return luaio__raise_cancel(L, t);
  }
  push = p->push;
  ud = p->ud;
  unref_pending(p);
  top = lua_gettop(L);
  return push != NULL ? push(L, ud) : lua_gettop(L) - top;
}

LUAIO_API int luaio_await (lua_State *L, luaio_Pending *p) {
  p->awaited = 1;
  if (p->resolved) {                   /* resolved before it suspended */
    luaio_Callback push = p->push;
    void *ud = p->ud;
    unref_pending(p);
    return push != NULL ? push(L, ud) : 0;
  }
  return luaio__park(L, p->t, NULL, pending_abort, "async C function", p,
                     (lua_KContext)p, pending_k);
}

LUAIO_API void luaio_resolve (luaio_Pending *p, luaio_Callback push,
                              void *ud) {
  if (p->resolved) return;
  p->resolved = 1;
  p->push = push;
  p->ud = ud;
  if (p->t != NULL && p->awaited) luaio__wake(p->rt, p->t);
  unref_pending(p);
}


/* ---------------------------------------------------------- lifetime */

static void close_embed (luaio_Runtime *rt, Hook *h);

static int open_in (lua_State *L) {
  uv_loop_t *loop = (uv_loop_t *)lua_touserdata(L, 1);
  luaio_Runtime **out = (luaio_Runtime **)lua_touserdata(L, 2);
  luaio_Runtime *rt;
  GState *G = luaio__state(L);
  G->embedded = 1;
  luaio_preload(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaio");
  lua_call(L, 1, 0);
  if (G->rt != NULL)
    return luaL_error(L, "luaio_open: this lua_State already has a runtime");
  rt = luaio__new_runtime(L, loop);
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
  e = (Embed *)calloc(1, sizeof(Embed));
  if (e == NULL) {
    if (errlen > 0) snprintf(err, errlen, "luaio_open: not enough memory");
    return NULL;
  }
  e->owns_state = owns;
  uv_mutex_init(&e->lock);
  uv_async_init(rt->loop, &e->async, on_async);
  e->async.data = rt;
  uv_unref((uv_handle_t *)&e->async);  /* it does not keep the loop alive */
  rt->open_handles++;
  luaio__set_ext(rt, &KEY, e);         /* (a new runtime has room) */
  luaio__hook(&rt->open, &e->hook, close_embed);
  return rt;
}

static void async_closed (uv_handle_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  rt->open_handles--;
}

/* Shutdown: rt's hook closes the async handle (pending calls are
   dropped). */
static void close_embed (luaio_Runtime *rt, Hook *h) {
  (void)rt;
  uv_close((uv_handle_t *)&((Embed *)h)->async, async_closed);
}

static int close_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  luaio__shutdown(L, rt);
  return 0;
}

LUAIO_API int luaio_close (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  lua_State *L = rt->S;
  lua_State *main;
  Call *c;
  if (rt->current != NULL || rt->running_depth > 0) {
    set_error(rt, "luaio_close: called from inside the runtime (a task or "
              "a callback); close it from the host, after luaio_run returns");
    return LUAIO_ERROR;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  lua_pushcfunction(main, close_in);
  lua_pushlightuserdata(main, rt);
  if (lua_pcall(main, 1, 0, 0) != LUA_OK) lua_pop(main, 1);
  rt->G->rt = NULL;
  luaio__free_runtime(main, rt);
  for (c = e->head; c != NULL; ) { Call *n = c->next; free(c); c = n; }
  uv_mutex_destroy(&e->lock);
  free(e->err);
  if (e->owns_state) lua_close(main);
  free(e);
  return LUAIO_OK;
}

LUAIO_API void luaio_hold (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  if (e->holds++ == 0) uv_ref((uv_handle_t *)&e->async);
}

LUAIO_API void luaio_release (luaio_Runtime *rt) {
  Embed *e = embed_of(rt);
  if (e->holds > 0 && --e->holds == 0) uv_unref((uv_handle_t *)&e->async);
}

LUAIO_API luaio_Runtime *luaio_running (lua_State *L) {
  return luaio__state(L)->rt;
}

LUAIO_API lua_State *luaio_state (luaio_Runtime *rt) {
  lua_State *L = rt->S, *main;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  main = lua_tothread(L, -1);
  lua_pop(L, 1);
  return main;
}

LUAIO_API uv_loop_t *luaio_loop (luaio_Runtime *rt) {
  return rt->loop;
}

LUAIO_API void luaio_set_report (luaio_Runtime *rt, luaio_ReportFn fn,
                                 void *ud) {
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
  lua_State *L = luaio_state(rt);
  int r;
  lua_xmove(L, rt->S, nargs + 1);
  r = protect(rt, spawn_in, nargs + 1);
  return r;
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
  lua_State *L = rt->S;
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
  return (int)rt->ntasks;
}

LUAIO_API int luaio_run (luaio_Runtime *rt, uv_run_mode mode) {
  if (rt->current != NULL || rt->running_depth > 0) {
    set_error(rt, "luaio_run: called from inside the runtime");
    return LUAIO_ERROR;
  }
  luaio__kick(rt);
  rt->running_depth++;
  uv_run(rt->loop, mode);
  rt->running_depth--;
  if (rt->fatal) {
    rt->fatal = 0;
    set_error(rt, "luaio_run: the scheduler failed (out of memory)");
    return LUAIO_ERROR;
  }
  return LUAIO_OK;
}

LUAIO_API int luaio_backend_fd (luaio_Runtime *rt) {
  return uv_backend_fd(rt->loop);
}

LUAIO_API int luaio_backend_timeout (luaio_Runtime *rt) {
  if (rt->qlen > 0) return 0;
  return uv_backend_timeout(rt->loop);
}

LUAIO_API int luaio_step (luaio_Runtime *rt) {
  return luaio_run(rt, UV_RUN_NOWAIT);
}


/* ---------------------------------------------------------- for embed_*.c */

/* luaio_error's message, set by embed_task.c (a runtime no host opened
   keeps none). */
void luaio__embed_set_error (luaio_Runtime *rt, const char *msg) {
  if (embed_of(rt) != NULL) set_error(rt, msg);
}

/* Was rt opened by a host (luaio_open)?  Only such a runtime has the
   cross-thread part and keeps error messages (embed_capi.c asks). */
int luaio__embed_has (luaio_Runtime *rt) {
  return rt != NULL && embed_of(rt) != NULL;
}

luaio_Runtime *luaio__pending_rt (luaio_Pending *p) {
  return p->rt;
}
