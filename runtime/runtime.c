/*
** runtime.c -- the per-state context, runtimes (event loops), the Loop
** object, anchors and exception reports; luaopen_luaio_core.
**
** A runtime owns (or borrows) one uv_loop_t.  Its Lua-side state lives in
** a table R (registry ref rt->ref_R):
**   R.S          the scheduler's thread: the drain runs on it
**   R.handler    the exception handler set by the user, or nil
**   R.factory    the task factory, or nil
**   R.reports    queued exception contexts (from finalisers)
**   R.unretrieved  weak-keyed set of failed futures/tasks
**   R.fatal      message of a failure of the scheduler itself
**   R.context    the root context for tasks created outside a task
** Anchors: a table whose slots hold what the loop keeps alive (pending
** tasks' coroutines, queued handles, futures with queued callbacks).
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char GKEY = 'G';       /* registry: the GState */
static const char DISPATCHKEY = 'D';  /* registry: Lua report dispatcher */


/* ---------------------------------------------------------- per state */

/*
** The state is closing (lua_close, or os.exit(code, true) from a task):
** stop what could call back into it.  A finaliser never runs or closes a
** loop, so the runtime's memory is left to the process (or, for a borrowed
** loop, to the host that closes it).
*/
static int state_gc (lua_State *L) {
  GState *G = (GState *)lua_touserdata(L, 1);
  luaio_Runtime *rt;
  for (rt = G->open; rt != NULL; rt = rt->next) {
    rt->closed = 1;
    uv_idle_stop(&rt->idle);
    uv_timer_stop(&rt->timer);
    uv_timer_stop(&rt->guard);
    if (rt->sigint_on) uv_signal_stop(&rt->sigint);
  }
  G->open = NULL;
  G->rt = NULL;
  free(G->pool);
  G->pool = NULL;
  G->npool = G->poolcap = 0;
  return 0;
}

GState *luaio__state (lua_State *L) {
  GState *G;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &GKEY) == LUA_TUSERDATA) {
    G = (GState *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return G;
  }
  lua_pop(L, 1);
  G = (GState *)lua_newuserdatauv(L, sizeof(GState), 0);
  memset(G, 0, sizeof(*G));
  G->next_id = 1;
  lua_newtable(L);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &GKEY);
  return G;
}

/* Is the value at idx a userdata with metatable mt (a cached pointer)? */
int luaio__hasmt (lua_State *L, int idx, const void *mt) {
  int r;
  if (mt == NULL || !lua_getmetatable(L, idx)) return 0;
  r = lua_topointer(L, -1) == mt;
  lua_pop(L, 1);
  return r;
}

/* luaL_checkudata by the cached metatable mt: the lookup by name (and
   lauxlib's message) only when that check fails. */
void *luaio__checkudata (lua_State *L, int idx, const void *mt,
                         const char *tname) {
  if (luaio__hasmt(L, idx, mt)) return lua_touserdata(L, idx);
  return luaL_checkudata(L, idx, tname);
}

void luaio__setfuncs (lua_State *L, const luaL_Reg *l) {
  GState *G = luaio__state(L);
  lua_pushlightuserdata(L, G);
  luaL_setfuncs(L, l, 1);
}


/* ---------------------------------------------------------- lookups */

luaio_Runtime *luaio__rt (lua_State *L) {
  return luaio__G(L)->rt;
}

luaio_Runtime *luaio__need_rt (lua_State *L, const char *fname) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt == NULL)
    luaL_error(L, "%s: no running event loop", fname);
  return rt;
}

luaio_Runtime *luaio__find_rt (GState *G, unsigned id) {
  luaio_Runtime *rt;
  for (rt = G->open; rt != NULL; rt = rt->next)
    if (rt->id == id) return rt;
  return NULL;
}

void luaio__push_R (lua_State *L, luaio_Runtime *rt) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_R);
}

void luaio__push_loop (lua_State *L, luaio_Runtime *rt) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_loop);
}


/* ---------------------------------------------------------- anchors */

/*
** What the loop keeps alive sits in integer slots of the registry: pushing
** an anchored value is one registry read.  A runtime owns the slots it
** took (rt->slots) and recycles them through a C free list; a free slot
** holds false, never nil.  When the runtime is freed its slots go to the
** state's pool (G->pool) for the next runtime.  New slots are claimed
** only at keys that are nil, from the registry's border on: luaL_ref
** hands out the border + 1 or refs it freed itself (which hold integers),
** so the two never meet.
*/

/* Room for n slots in both lists (the free list never grows on its own,
   so releasing a slot cannot fail); 0 when out of memory. */
static int slot_room (luaio_Runtime *rt, int n) {
  int *p;
  if (n <= rt->slotcap) return 1;
  p = (int *)realloc(rt->slots, (size_t)n * sizeof(int));
  if (p == NULL) return 0;
  rt->slots = p;
  p = (int *)realloc(rt->freeslots, (size_t)n * sizeof(int));
  if (p == NULL) return 0;
  rt->freeslots = p;
  rt->slotcap = n;
  return 1;
}

/*
** A registry key that is nil, for a new slot: the one after the last we
** claimed, else past the border.  Never luaL_ref's free-list head
** (LUA_RIDX_LAST + 1), which is nil until its first use.
*/
static int free_key (lua_State *L, GState *G) {
  int k = G->next_key, n;
  for (;;) {
    if (k <= LUA_RIDX_LAST + 1) k = LUA_RIDX_LAST + 2;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, k) == LUA_TNIL) break;
    lua_pop(L, 1);
    n = (int)lua_rawlen(L, LUA_REGISTRYINDEX) + 1;   /* a border + 1 */
    k = n > k ? n : k + 1;
  }
  lua_pop(L, 1);
  G->next_key = k + 1;
  return k;
}

/* Keeps the value on top alive in a slot; pops it. */
int luaio__anchor (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  int slot;
  if (lua_isnil(L, -1)) {              /* (no caller does; a nil slot would
                                          be taken again by free_key) */
    lua_pop(L, 1);
    lua_pushboolean(L, 0);
  }
  if (rt->nfree > 0) slot = rt->freeslots[--rt->nfree];
  else {
    if (rt->nslots == rt->slotcap &&
        !slot_room(rt, rt->slotcap > 0 ? 2 * rt->slotcap : 64))
      luaL_error(L, "not enough memory");
    slot = G->npool > 0 ? G->pool[--G->npool] : free_key(L, G);
    rt->slots[rt->nslots++] = slot;
  }
  lua_rawseti(L, LUA_REGISTRYINDEX, slot);
  return slot;
}

void luaio__push_anchor (lua_State *L, luaio_Runtime *rt, int slot) {
  (void)rt;
  lua_rawgeti(L, LUA_REGISTRYINDEX, slot);
}

/* Releases a slot.  Never raises. */
void luaio__unanchor (lua_State *L, luaio_Runtime *rt, int slot) {
  if (slot <= 0) return;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, slot);
  rt->freeslots[rt->nfree++] = slot;
}

/* The runtime is being freed: its slots, emptied, go to the state's pool
   (or back to luaL_ref's free list if the pool cannot grow). */
static void free_slots (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  int i;
  if (G->npool + rt->nslots > G->poolcap) {
    int cap = G->npool + rt->nslots;
    int *p = (int *)realloc(G->pool, (size_t)cap * sizeof(int));
    if (p != NULL) { G->pool = p; G->poolcap = cap; }
  }
  for (i = 0; i < rt->nslots; i++) {
    if (G->npool < G->poolcap) {
      lua_pushboolean(L, 0);
      lua_rawseti(L, LUA_REGISTRYINDEX, rt->slots[i]);
      G->pool[G->npool++] = rt->slots[i];
    }
    else luaL_unref(L, LUA_REGISTRYINDEX, rt->slots[i]);
  }
  free(rt->slots);
  free(rt->freeslots);
}


/* ---------------------------------------------------------- reports */

/*
** Delivers an exception context (the table on top, popped) to the loop's
** handler through the Lua dispatcher.  Called only from the drain or from
** shutdown, never from a finaliser; errors are contained.
*/
/* A host's report function gets the context as one text. */
static void report_to_host (lua_State *L, luaio_Runtime *rt, int ctx) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_getfield(L, ctx, "message");
  luaL_addvalue(&b);
  if (lua_getfield(L, ctx, "exception") != LUA_TNIL) {
    luaL_addchar(&b, '\n');
    luaL_tolstring(L, -1, NULL);
    lua_remove(L, -2);
    luaL_addvalue(&b);
  }
  else lua_pop(L, 1);
  if (lua_getfield(L, ctx, "traceback") == LUA_TSTRING) {
    luaL_addchar(&b, '\n');
    luaL_addvalue(&b);
  }
  else lua_pop(L, 1);
  luaL_pushresult(&b);
  rt->report(rt, lua_tostring(L, -1), rt->report_ud);
}

static int protected_report (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 2);
  report_to_host(L, rt, 1);
  return 0;
}

void luaio__report (lua_State *L, luaio_Runtime *rt) {
  int ctx = lua_gettop(L);
  if (rt->report != NULL && !rt->has_handler) {   /* replaces the default */
    lua_pushcfunction(L, protected_report);
    lua_pushvalue(L, ctx);
    lua_pushlightuserdata(L, rt);
    lua_pcall(L, 2, 0, 0);
    lua_settop(L, ctx - 1);
    return;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &DISPATCHKEY) == LUA_TFUNCTION) {
    luaio__push_loop(L, rt);
    lua_pushvalue(L, ctx);
    if (lua_pcall(L, 2, 0, 0) == LUA_OK) {
      lua_settop(L, ctx - 1);
      return;
    }
    /* The dispatcher itself failed: fall through to a plain report. */
  }
  lua_getfield(L, ctx, "message");
  fprintf(stderr, "luaio: %s\n", lua_isstring(L, -1) ?
          lua_tostring(L, -1) : "(exception handler failed)");
  lua_getfield(L, ctx, "exception");
  if (!lua_isnil(L, -1))
    fprintf(stderr, "%s\n", luaL_tolstring(L, -1, NULL));
  fflush(stderr);
  lua_settop(L, ctx - 1);
}

/* Queues a context (popped) for delivery from the scheduler. */
void luaio__queue_report (lua_State *L, luaio_Runtime *rt) {
  int n;
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "reports");
  n = (int)lua_rawlen(L, -1) + 1;
  lua_pushvalue(L, -3);
  lua_rawseti(L, -2, n);
  lua_pop(L, 3);
  rt->nreports++;
  luaio__schedule(rt, E_REPORT, NULL, 0);
}

static int core_set_dispatcher (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DISPATCHKEY);
  return 0;
}


/* ---------------------------------------------------------- runtimes */

static void free_rt (lua_State *L, luaio_Runtime *rt) {
  luaio_Runtime **pp;
  for (pp = &rt->G->open; *pp != NULL; pp = &(*pp)->next)
    if (*pp == rt) { *pp = rt->next; break; }
  luaio__exit_unwatch(rt);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->ref_R);
  free_slots(L, rt);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->ref_loop);
  free(rt->q);
  free(rt->heap);
  free(rt->pool_idle);
  free(rt);
}

typedef struct LoopBox { luaio_Runtime *rt; } LoopBox;

luaio_Runtime *luaio__checkloop (lua_State *L, int idx) {
  LoopBox *b = (LoopBox *)luaL_checkudata(L, idx, LUAIO_LOOP);
  if (b->rt == NULL) luaL_error(L, "the event loop is closed");
  return b->rt;
}

static double optfield (lua_State *L, int t, const char *k, double d) {
  double v = d;
  if (lua_getfield(L, t, k) != LUA_TNIL) {
    if (!lua_isnumber(L, -1))
      luaL_error(L, "option '%s' must be a number", k);
    v = lua_tonumber(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

/*
** core.new_loop([opts]) -> Loop on a private uv loop.  Options: debug,
** clock ("real" | "virtual"), shutdown_timeout (seconds).
*/
static int core_new_loop (lua_State *L) {
  int virt = 0, debug = 0;
  double st = 5.0;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "clock") != LUA_TNIL) {
      const char *c = lua_tostring(L, -1);
      if (c != NULL && strcmp(c, "virtual") == 0) virt = 1;
      else if (c == NULL || strcmp(c, "real") != 0)
        luaL_error(L, "option 'clock' must be \"real\" or \"virtual\"");
    }
    lua_getfield(L, 1, "debug");
    debug = lua_toboolean(L, -1);
    lua_pop(L, 2);
    st = optfield(L, 1, "shutdown_timeout", 5.0);
    if (!(st >= 0)) luaL_error(L, "option 'shutdown_timeout' must be >= 0");
  }
  luaio__new_runtime(L, NULL)->virtual_clock = virt;
  luaio__checkloop(L, -1)->debug = debug;
  luaio__checkloop(L, -1)->shutdown_timeout = st;
  return 1;
}

/*
** Makes a runtime on loop (NULL: a private one) and pushes its Loop
** object.  Raises on failure.
*/
luaio_Runtime *luaio__new_runtime (lua_State *L, uv_loop_t *loop) {
  GState *G = luaio__state(L);
  luaio_Runtime *rt;
  LoopBox *box;
  box = (LoopBox *)lua_newuserdatauv(L, sizeof(LoopBox), 1);
  box->rt = NULL;
  luaL_setmetatable(L, LUAIO_LOOP);
  rt = (luaio_Runtime *)calloc(1, sizeof(luaio_Runtime));
  if (rt == NULL) luaL_error(L, "not enough memory");
  rt->G = G;
  rt->id = G->next_id++;
  rt->shutdown_timeout = 5.0;
  if (loop != NULL) rt->loop = loop;
  else {
    if (uv_loop_init(&rt->own_loop) != 0) {
      free(rt);
      luaL_error(L, "cannot create an event loop");
    }
    rt->loop = &rt->own_loop;
    rt->owns_loop = 1;
  }
  luaio__exit_watch(rt);
  /* R */
  lua_createtable(L, 0, 8);
  rt->S = lua_newthread(L);
  lua_setfield(L, -2, "S");
  lua_newtable(L);
  lua_setfield(L, -2, "reports");
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "unretrieved");
  lua_newtable(L);
  lua_setfield(L, -2, "context");
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -3, 1);           /* box.uv1 = R */
  rt->ref_R = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  rt->ref_loop = luaL_ref(L, LUA_REGISTRYINDEX);
  luaio__sched_init(rt);
  rt->next = G->open;
  G->open = rt;
  box->rt = rt;
  return rt;
}

/* Closes and frees a runtime whose Loop object is on top (embedding). */
void luaio__free_runtime (lua_State *L, luaio_Runtime *rt) {
  LoopBox *b;
  luaio__push_loop(L, rt);
  b = (LoopBox *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  b->rt = NULL;
  free_rt(L, rt);
}

/*
** The CLI's one exception to "no nested run": its main task, alone, may
** run a script written for stock lua5.4 that calls aio.run.
*/
static int may_nest (luaio_Runtime *outer) {
  return outer->cli && outer->current != NULL &&
         outer->current == outer->main && outer->ntasks == 1;
}

/* loop:_run(fn, ...) -> results of fn run as the main task. */
static int loop_run (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  GState *G = luaio__G(L);
  Task *main;
  int n = lua_gettop(L) - 2, base;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (rt->closing) return luaL_error(L, "aio.run: the event loop is closing");
  if (rt->running_depth > 0 || (G->rt != NULL && !may_nest(G->rt)))
    return luaL_error(L, "aio.run: a loop is already running");
  luaio__create_task(L, rt, 2, n);          /* +1: the main task */
  main = luaio__totask(L, G, -1);
  base = lua_gettop(L);
  if (luaio__run_until(L, rt, main) != 0)
    return lua_error(L);                   /* scheduler failure */
  main->f.retrieved = 1;
  return luaio__future_results(L, base);
}

/* loop:_close(): shuts the runtime down and frees it. */
static int loop_close (lua_State *L) {
  LoopBox *b = (LoopBox *)luaL_checkudata(L, 1, LUAIO_LOOP);
  luaio_Runtime *rt = b->rt;
  if (rt == NULL) return 0;
  if (rt->running_depth > 0)
    return luaL_error(L, "cannot close a running event loop");
  luaio__shutdown(L, rt);
  b->rt = NULL;
  free_rt(L, rt);
  return 0;
}

/* loop:_set_cli(): marks the CLI's loop (see may_nest). */
static int loop_set_cli (lua_State *L) {
  luaio__checkloop(L, 1)->cli = 1;
  return 0;
}

static int loop_is_closed (lua_State *L) {
  LoopBox *b = (LoopBox *)luaL_checkudata(L, 1, LUAIO_LOOP);
  lua_pushboolean(L, b->rt == NULL);
  return 1;
}

static int loop_is_running (lua_State *L) {
  LoopBox *b = (LoopBox *)luaL_checkudata(L, 1, LUAIO_LOOP);
  lua_pushboolean(L, b->rt != NULL && b->rt->running_depth > 0);
  return 1;
}

static int loop_time (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  lua_pushnumber(L, (double)luaio__now(rt) / 1e9);
  return 1;
}

static int loop_get_debug (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  lua_pushboolean(L, rt->debug);
  return 1;
}

static int loop_set_debug (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  rt->debug = lua_toboolean(L, 2);
  return 0;
}

static int loop_set_exception_handler (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaio__push_R(L, rt);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "handler");
  rt->has_handler = !lua_isnil(L, 2);
  return 0;
}

static int loop_get_exception_handler (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "handler");
  return 1;
}

static int loop_set_task_factory (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  if (!lua_isnil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);
  luaio__push_R(L, rt);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "factory");
  rt->has_factory = !lua_isnil(L, 2);
  return 0;
}

static int loop_get_task_factory (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "factory");
  return 1;
}

/* loop:create_task(fn, ...) -> Task (through the task factory, if set). */
static int loop_create_task (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  if (rt->has_factory) {
    int n = lua_gettop(L);
    luaio__push_R(L, rt);
    lua_getfield(L, -1, "factory");
    lua_replace(L, -2);
    lua_insert(L, 1);                      /* factory, loop, fn, ... */
    lua_call(L, n, 1);
    return 1;
  }
  return luaio__create_task(L, rt, 2, lua_gettop(L) - 2);
}

/* loop:_create_task(fn, ...) -> Task, never through the factory. */
static int loop_create_task_raw (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  return luaio__create_task(L, rt, 2, lua_gettop(L) - 2);
}

/* loop:stats() -> table of live-object counters. */
static int loop_stats (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, rt->ntasks);
  lua_setfield(L, -2, "tasks");
  /* callbacks waiting to run, and open I/O handles (streams, servers,
     UDP sockets, processes, signal watches): not the loop's own three */
  lua_pushinteger(L, rt->nhandles + rt->open_handles - 3 - rt->sigint_on);
  lua_setfield(L, -2, "handles");
  lua_pushinteger(L, rt->nrequests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, (lua_Integer)rt->qlen);
  lua_setfield(L, -2, "ready");
  lua_pushinteger(L, (lua_Integer)rt->nheap);
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, rt->nslots - rt->nfree - rt->pool_owned);
  lua_setfield(L, -2, "anchors");
  lua_pushinteger(L, rt->pool_n);
  lua_setfield(L, -2, "pooled");
  lua_pushinteger(L, rt->task_counter);
  lua_setfield(L, -2, "created");
  return 1;
}

/* Pushes the running loop. */
static int core_running_loop (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt == NULL) return 0;
  luaio__push_loop(L, rt);
  return 1;
}

static int core_get_running_loop (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "get_running_loop");
  luaio__push_loop(L, rt);
  return 1;
}

static int core_time (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "time");
  lua_pushnumber(L, (double)luaio__now(rt) / 1e9);
  return 1;
}

/*
** The loop's context (R at top) is about to be replaced: every pending
** task still running in it keeps the old one, stored in the task now.
*/
static void keep_loop_context (lua_State *L, luaio_Runtime *rt) {
  Task *t;
  luaL_checkstack(L, 3, NULL);
  lua_getfield(L, -1, "context");
  for (t = rt->tasks; t != NULL; t = t->next) {
    if (t->own_ctx) continue;
    luaio__push_task(L, rt, t);
    lua_pushvalue(L, -2);
    lua_setiuservalue(L, -2, TASK_UV_CONTEXT);
    lua_pop(L, 1);
    t->own_ctx = 1;
  }
  lua_pop(L, 1);
}

/*
** core.context([ctx]) -> gets (and with ctx, sets) the current context:
** the running task's own, else the loop's.
*/
static int core_context (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "context");
  Task *t = rt->current;
  int set = lua_gettop(L) >= 1;
  if (set) luaL_checktype(L, 1, LUA_TTABLE);
  if (t != NULL && (t->own_ctx || set)) {
    luaio__push_task(L, rt, t);
    if (set) {
      lua_pushvalue(L, 1);
      lua_setiuservalue(L, -2, TASK_UV_CONTEXT);
      t->own_ctx = 1;
    }
    lua_getiuservalue(L, -1, TASK_UV_CONTEXT);
    return 1;
  }
  luaio__push_R(L, rt);
  if (set) {
    keep_loop_context(L, rt);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "context");
  }
  lua_getfield(L, -1, "context");
  return 1;
}

static const luaL_Reg loop_methods[] = {
  {"_run", loop_run},
  {"_close", loop_close},
  {"_set_cli", loop_set_cli},
  {"is_closed", loop_is_closed},
  {"is_running", loop_is_running},
  {"time", loop_time},
  {"get_debug", loop_get_debug},
  {"set_debug", loop_set_debug},
  {"set_exception_handler", loop_set_exception_handler},
  {"get_exception_handler", loop_get_exception_handler},
  {"set_task_factory", loop_set_task_factory},
  {"get_task_factory", loop_get_task_factory},
  {"create_task", loop_create_task},
  {"_create_task", loop_create_task_raw},
  {"stats", loop_stats},
  {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"new_loop", core_new_loop},
  {"running_loop", core_running_loop},
  {"get_running_loop", core_get_running_loop},
  {"time", core_time},
  {"context", core_context},
  {"set_dispatcher", core_set_dispatcher},
  {NULL, NULL}
};

void luaio__loop_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_LOOP)) {
    lua_newtable(L);
    luaio__setfuncs(L, loop_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -2, "methods");
    lua_pushliteral(L, "Loop");
    lua_setfield(L, -2, "__name");
  }
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "Loop");
  lua_pop(L, 1);
}

LUAIO_API int luaopen_luaio_core (lua_State *L) {
  luaio__state(L);
  lua_newtable(L);
  luaio__setfuncs(L, core_funcs);
  luaio__loop_open(L);
  luaio__errors_open(L);
  luaio__future_open(L);
  luaio__gather_open(L);
  luaio__task_open(L);
  luaio__handle_open(L);
  luaio__timer_open(L);
  luaio__coro_open(L);
  luaio__signal_open(L);
  luaio__waitlist_open(L);
  luaio__queue_open(L);
  luaio__stream_open(L);
  luaio__tls_link_open(L);
  luaio__udp_open(L);
  luaio__dns_open(L);
  luaio__fs_open(L);
  luaio__process_open(L);
  luaio__thread_open(L);
  lua_pushliteral(L, LUAIO_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
