/*
** loop.c -- runtimes (event loops) and the Loop object: making and freeing
** one, running a main task on it, shutting it down; the loop's methods
** and the core functions about the running loop and contexts.
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
**   R.signals    signal handlers (signal.c)
** What the loop keeps alive sits in anchors: registry slots (state.c).
**
** This file is the top of the core: it calls the scheduler, tasks,
** futures and the Ctrl-C watch, and nothing below calls it but the
** embedding API.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------- runtimes */

static void free_rt (lua_State *L, luaio_Runtime *rt) {
  luaio_Runtime **pp;
  for (pp = &rt->G->open; *pp != NULL; pp = &(*pp)->next)
    if (*pp == rt) { *pp = rt->next; break; }
  luaio__exit_unwatch(rt);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->ref_R);
  luaio__free_slots(L, rt);
  luaL_unref(L, LUA_REGISTRYINDEX, rt->ref_loop);
  free(rt->q);
  free(rt->heap);
  free(rt->pool_idle);
  free(rt);
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
** core.new_loop([opts]) -> Loop on a private uv loop, or on luv's when
** opts.loop is luv's loop (luv.c).  Options: debug, clock ("real" |
** "virtual"), shutdown_timeout (seconds).
*/
static int core_new_loop (lua_State *L) {
  int virt = 0, debug = 0;
  double st = 5.0;
  uv_loop_t *luv = NULL;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "loop") != LUA_TNIL) luv = luaio__luv_loop(L, -1);
    lua_pop(L, 1);
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
  luaio__new_runtime(L, luv)->virtual_clock = virt;
  luaio__checkloop(L, -1)->debug = debug;
  luaio__checkloop(L, -1)->shutdown_timeout = st;
  if (luv != NULL) {
    lua_getfield(L, 1, "loop");
    luaio__luv_borrow(L, luaio__checkloop(L, -2), -1);
    lua_pop(L, 1);
  }
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

/*
** Is rt running code now (a task, the drain, a shutdown)?  An embedded
** runtime is the state's from luaio_open to luaio_close, but while the
** host is not running its loop, aio.run may run one of its own.
*/
static int is_running (luaio_Runtime *rt) {
  return rt->running_depth > 0 || rt->current != NULL;
}

/* loop:_run(fn, ...) -> results of fn run as the main task. */
static int loop_run (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  GState *G = luaio__G(L);
  Task *main;
  int n = lua_gettop(L) - 2, base;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (rt->closing) return luaL_error(L, "aio.run: the event loop is closing");
  if (rt->running_depth > 0 || (G->rt != NULL && is_running(G->rt) &&
                                 !may_nest(G->rt)))
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
  LoopBox *b = (LoopBox *)luaio__checkclass(L, 1, LUAIO_LOOP);
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
  LoopBox *b = (LoopBox *)luaio__checkclass(L, 1, LUAIO_LOOP);
  lua_pushboolean(L, b->rt == NULL);
  return 1;
}

static int loop_is_running (lua_State *L) {
  LoopBox *b = (LoopBox *)luaio__checkclass(L, 1, LUAIO_LOOP);
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
     UDP sockets, processes, signal watches): not the loop's own */
  lua_pushinteger(L, rt->nhandles + rt->open_handles - rt->own_handles);
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

/* core.wall_time() -> seconds since the epoch, to the microsecond (the
   system clock: LuaSocket's socket.gettime; no loop needed) */
static int core_wall_time (lua_State *L) {
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) != 0) return luaL_error(L, "wall_time: no clock");
  lua_pushnumber(L, (double)tv.tv_sec + (double)tv.tv_usec / 1e6);
  return 1;
}

/* core.hostname() -> this machine's name, or nil, message */
static int core_hostname (lua_State *L) {
  char name[UV_MAXHOSTNAMESIZE];
  size_t n = sizeof(name);
  int r = uv_os_gethostname(name, &n);
  if (r != 0) {
    luaL_pushfail(L);
    lua_pushstring(L, uv_strerror(r));
    return 2;
  }
  lua_pushlstring(L, name, n);
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
  luaio__context_copy(L);
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
    rt->loop_ctx_object = lua_getmetatable(L, 1);
    if (rt->loop_ctx_object) lua_pop(L, 1);
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
  {"wall_time", core_wall_time},
  {"hostname", core_hostname},
  {"context", core_context},
  {NULL, NULL}
};

void luaio__loop_open (lua_State *L) {
  luaio__setfuncs(L, core_funcs);
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


/* ---------------------------------------------------------- running */

/*
** Runs the loop until task main is done.  Returns 0, or 1 with an error
** value pushed (the scheduler failed, a deadlock, or Ctrl-C).
*/
int luaio__run_until (lua_State *L, luaio_Runtime *rt, Task *main) {
  GState *G = rt->G;
  luaio_Runtime *saved = G->rt;
  int watched, status = 0;
  G->rt = rt;
  rt->running_depth++;
  rt->main = main;
  main->is_main = 1;
  rt->stop = 0;
  rt->interrupted = 0;
  watched = luaio__watch_sigint(rt);
  luaio__kick(rt);
  while (main->tstate != T_DONE && !rt->fatal) {
    int alive = uv_run(rt->loop, UV_RUN_DEFAULT);
    if (main->tstate == T_DONE || rt->fatal) break;
    rt->stop = 0;
    if (!alive && rt->qlen == 0) {
      lua_pushliteral(L, "aio.run: deadlock: the main task is waiting and "
                      "nothing is left that could wake it");
      status = 1;
      break;
    }
  }
  if (watched) luaio__unwatch_sigint(rt);
  rt->stop = 0;
  rt->main = NULL;
  main->is_main = 0;
  rt->running_depth--;
  G->rt = saved;
  if (rt->fatal) {
    rt->fatal = 0;
    if (rt->oom) {                     /* as Lua's own allocation failure */
      rt->oom = 0;
      lua_pushliteral(L, "not enough memory");
      return 1;
    }
    luaio__push_R(L, rt);
    lua_getfield(L, -1, "fatal");
    lua_remove(L, -2);
    return 1;
  }
  if (status == 0 && rt->interrupted) {
    rt->interrupted = 0;
    lua_pushliteral(L, "interrupted!");
    return 1;
  }
  return status;
}

static void on_guard (uv_timer_t *h) { (void)h; }

/*
** Runs the loop while busy(rt) and the deadline (uv_hrtime) is ahead,
** the guard timer bounding each turn; stops early when the scheduler
** failed or nothing is left that could run.  (Shutdown's drain, and the
** embedding close's.)
*/
void luaio__run_while (luaio_Runtime *rt, uint64_t deadline,
                       int (*busy) (luaio_Runtime *rt)) {
  while (busy(rt) && !rt->fatal) {
    uint64_t now = uv_hrtime();
    int alive;
    if (now >= deadline) break;
    uv_timer_start(&rt->guard, on_guard, (deadline - now) / 1000000 + 1, 0);
    alive = uv_run(rt->loop, UV_RUN_ONCE);
    rt->stop = 0;
    if (!alive && rt->qlen == 0) break;
  }
  uv_timer_stop(&rt->guard);
}

/* What shutdown waits for: tasks, queued writes, the embedding's part. */
static int shutdown_busy (luaio_Runtime *rt) {
  return rt->ntasks > 0 || rt->writing.head != NULL || luaio__embed_busy(rt);
}

#define WHERE_MAX 10          /* objects of a kind shown with their origin */

/* Pushes where the objects of kind leak on the open list were opened
   (those that know it), as one text. */
static void push_wheres (lua_State *L, luaio_Runtime *rt, const char *leak) {
  luaL_Buffer b;
  int shown = 0, more = 0;
  Hook *h;
  luaL_buffinit(L, &b);
  for (h = rt->open.head; h != NULL; h = h->next) {
    if (h->leak != leak || h->where == 0) continue;
    if (shown == WHERE_MAX) { more++; continue; }
    if (shown++ > 0) luaL_addchar(&b, '\n');
    luaio__push_anchor(L, rt, h->where);
    luaL_addvalue(&b);
  }
  if (more > 0) {
    lua_pushfstring(L, "\n(and %d more)", more);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* Debug mode: reports what the program left open (closed now), by kind,
   with where each was opened. */
static void report_left_open (lua_State *L, luaio_Runtime *rt) {
  const char *kinds[8];
  int counts[8], n = 0, i;
  Hook *h;
  for (h = rt->open.head; h != NULL; h = h->next) {
    if (h->leak == NULL) continue;
    for (i = 0; i < n && kinds[i] != h->leak; i++) {}
    if (i == n) {
      if (n == 8) continue;
      kinds[n] = h->leak;
      counts[n++] = 0;
    }
    counts[i]++;
  }
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 2);
    lua_pushfstring(L, "%d %s left open at loop close (closed now)",
                    counts[i], kinds[i]);
    lua_setfield(L, -2, "message");
    push_wheres(L, rt, kinds[i]);
    if (lua_rawlen(L, -1) > 0) lua_setfield(L, -2, "traceback");
    else lua_pop(L, 1);
    luaio__report(L, rt);
  }
}

static void close_left (uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    uv_close(h, NULL);
    (*(int *)arg)++;
  }
}

/*
** A private loop: runs what others (a host) left on it until it is done
** or the deadline passes, then closes the handles still open (reported),
** so that closing is bounded.
*/
static void close_own_loop (luaio_Runtime *rt, uint64_t deadline) {
  uv_timer_t bound;
  int left = 0, i;
  uv_timer_init(rt->loop, &bound);
  uv_unref((uv_handle_t *)&bound);
  while (uv_loop_alive(rt->loop)) {
    uint64_t now = uv_hrtime();
    if (now >= deadline) break;
    uv_timer_start(&bound, on_guard, (deadline - now) / 1000000 + 1, 0);
    uv_run(rt->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&bound, NULL);
  uv_walk(rt->loop, close_left, &left);
  for (i = 0; i < 4 && uv_loop_close(rt->loop) != 0; i++)
    uv_run(rt->loop, UV_RUN_NOWAIT);
  if (left > 0) {
    char msg[120];
    snprintf(msg, sizeof msg, "closed %d handle%s not luaio's, still open "
             "on its private event loop after shutdown_timeout", left,
             left > 1 ? "s" : "");
    luaio__report_msg(rt, msg);
  }
  if (i == 4)
    luaio__report_msg(rt, "event loop closed with handles still open");
}

/*
** Shutdown: cancel every pending task once, run until they finish, the
** streams have written what they queued and other threads are done
** (holds given back, async C operations resolved: embed.c), or
** shutdown_timeout passes; abandon the tasks left, report never-retrieved
** errors, cut threads off, report what will not be written, close every
** handle, free the cross-thread state, close the loop.
*/
void luaio__shutdown (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  luaio_Runtime *saved = G->rt;
  uint64_t deadline;
  rt->closing = 1;
  G->rt = rt;
  rt->running_depth++;
  luaio__cancel_all(L, rt);
  deadline = luaio__real_after(rt->shutdown_timeout);
  luaio__kick(rt);
  luaio__end_pass(rt);       /* (coalesced writes join the queued ones) */
  luaio__run_while(rt, deadline, shutdown_busy);
  luaio__abandon_all(L, rt);
  luaio__report_unretrieved(L, rt);
  luaio__embed_detach(rt);   /* other threads' calls fail from now on */
  /* Deliver whatever is still queued (reports, callbacks). */
  while (rt->qlen > 0 && !rt->fatal) {
    rt->stop = 0;
    uv_run(rt->loop, UV_RUN_NOWAIT);
  }
  if (rt->debug) report_left_open(L, rt);
  luaio__end_pass(rt);
  luaio__end_writing(rt, 0, "at loop close");  /* (closing drops it) */
  rt->running_depth--;
  G->rt = saved;
  luaio__sched_close(rt);    /* the loop's own handles */
  luaio__close_hooks(rt);    /* what subsystems left open */
  while (rt->open_handles > 0) uv_run(rt->loop, UV_RUN_NOWAIT);
  luaio__embed_free(rt);     /* the cross-thread state, if it has one */
  if (rt->owns_loop) close_own_loop(rt, deadline);
}
