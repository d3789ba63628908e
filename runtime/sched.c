/*
** sched.c -- the scheduler: the ready queue, its drain (the one place Lua
** runs while the loop runs), the hook lists subsystems register on, and
** the park/wake primitive.  Mechanism only: it names no subsystem.
**
** libuv callbacks never run Lua: they move entries to the ready queue and
** start the idle handle.  The idle callback drains the queue in passes (a
** pass runs what was ready when it began; what it makes ready runs in the
** next) under one lua_pcall on the scheduler's thread, and returns to
** libuv after LUAIO_DRAIN_BUDGET entries so I/O and timers are polled.
** Each entry carries the function that runs it (a task's step is the one
** task.c registered in GState).  When a pass ends, the pass-end hooks run
** (streams send what the pass wrote).
**
** Out of memory for the ready queue (a libuv callback cannot raise) stops
** the loop: the run raises "not enough memory", as Lua does.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char luaio__sentinel = 'S';


/* ---------------------------------------------------------- ready queue */

static void on_idle (uv_idle_t *h);


static int grow_queue (luaio_Runtime *rt) {
  size_t cap = rt->qcap ? rt->qcap * 2 : 256, i;
  Entry *q = (Entry *)malloc(cap * sizeof(Entry));
  if (q == NULL) return 0;
  for (i = 0; i < rt->qlen; i++)
    q[i] = rt->q[(rt->qhead + i) % rt->qcap];
  free(rt->q);
  rt->q = q;
  rt->qcap = cap;
  rt->qhead = 0;
  return 1;
}

/* The idle handle runs the drain on the loop's next iteration. */
static void start_idle (luaio_Runtime *rt) {
  if (!rt->idle_on) {
    rt->idle_on = 1;
    uv_idle_start(&rt->idle, on_idle);
  }
}

/* The ready queue cannot grow: the run stops and raises (loop.c). */
static void out_of_memory (luaio_Runtime *rt) {
  rt->oom = 1;
  rt->fatal = 1;
  if (!rt->closed) uv_stop(rt->loop);
}

/* Appends an entry; starts the idle handle so the loop drains it. */
void luaio__schedule (luaio_Runtime *rt, RunFn run, void *p, int idx) {
  Entry *e;
  if (rt->qlen == rt->qcap && !grow_queue(rt)) {
    out_of_memory(rt);
    return;
  }
  e = &rt->q[(rt->qhead + rt->qlen) & (rt->qcap - 1)];
  e->run = run;
  e->p = p;
  e->idx = idx;
  rt->qlen++;
  if (!rt->closed) start_idle(rt);
}

/* Schedules one step of task t. */
void luaio__schedule_task (luaio_Runtime *rt, Task *t) {
  luaio__schedule(rt, rt->G->run_task, t, 0);
}

static Entry pop_entry (luaio_Runtime *rt) {
  Entry e = rt->q[rt->qhead];
  rt->qhead = (rt->qhead + 1) & (rt->qcap - 1);
  rt->qlen--;
  return e;
}


/* ---------------------------------------------------------- park/wake */

/* Links t last on wl (luaio__park does, for a task it parks). */
static void waitlist_push (WaitList *wl, Task *t) {
  t->wnext = NULL;
  t->wprev = wl->tail;
  if (wl->tail) wl->tail->wnext = t;
  else wl->head = t;
  wl->tail = t;
  t->wlist = wl;
}

/* Unlinks t from wl (luaio__unpark does, for a task it wakes). */
static void waitlist_remove (WaitList *wl, Task *t) {
  if (t->wprev) t->wprev->wnext = t->wnext;
  else wl->head = t->wnext;
  if (t->wnext) t->wnext->wprev = t->wprev;
  else wl->tail = t->wprev;
  t->wprev = t->wnext = NULL;
  t->wlist = NULL;
}

/* Forgets what a task waits on (wait list and timer). */
void luaio__unpark (Task *t) {
  if (t->wlist != NULL) waitlist_remove(t->wlist, t);
  if (t->heap > 0) luaio__heap_remove(t->rt, t->heap - 1);
  t->abort = NULL;
  t->what = NULL;
  t->wobj = NULL;
}

/* Schedules a parked task to resume; anything else is left alone. */
void luaio__wake (luaio_Runtime *rt, Task *t) {
  if (t->tstate != T_PARKED) return;
  luaio__unpark(t);
  t->tstate = T_SCHEDULED;
  luaio__schedule_task(rt, t);
}

/*
** Delivers a cancellation to parked task t: its abort hook undoes the
** wait (and may arrange the wake-up itself), else the task is woken to
** raise CancelledError.
*/
void luaio__cancel_parked (lua_State *L, Task *t) {
  if (t->abort != NULL && t->abort(L, t->rt, t))
    return;                   /* the hook arranged the wake-up */
  t->must_cancel = 1;
  t->aborted = 1;
  luaio__wake(t->rt, t);
}

/* Names a known function that cannot yield found on L's stack, or NULL. */
static const char *boundary_name (lua_State *L) {
  static const char *const known[][2] = {
    {"require", NULL}, {"tostring", NULL}, {"print", NULL},
    {"load", NULL}, {"dofile", NULL}, {"table", "sort"},
    {"string", "gsub"}, {NULL, NULL}
  };
  lua_Debug ar;
  int level, i;
  if (!lua_checkstack(L, 4)) return NULL;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    lua_getinfo(L, "Sf", &ar);
    if (strcmp(ar.what, "C") != 0) { lua_pop(L, 1); continue; }
    for (i = 0; known[i][0] != NULL; i++) {
      int found;
      lua_getglobal(L, known[i][0]);
      if (known[i][1] != NULL) {
        if (lua_istable(L, -1)) lua_getfield(L, -1, known[i][1]);
        else lua_pushnil(L);
        lua_remove(L, -2);
      }
      found = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
      if (found) {
        lua_pop(L, 1);
        return known[i][1] != NULL ? known[i][1] : known[i][0];
      }
    }
    lua_pop(L, 1);
  }
  return NULL;
}

/*
** Checks that the caller may suspend, before any bookkeeping: a running
** task, a thread the scheduler (or luaio's coroutine.resume) resumed, and
** no C call on the way that forbids a yield.  Returns the task.
*/
Task *luaio__check_suspend (lua_State *L, const char *fname) {
  return luaio__check_suspend_G(L, luaio__G(L), fname);
}

/* The same, for a caller that has the state G at hand. */
Task *luaio__check_suspend_G (lua_State *L, GState *G,
                                    const char *fname) {
  luaio_Runtime *rt = G->rt;
  if (rt == NULL || rt->current == NULL)
    luaL_error(L, "%s: needs a running task (called outside a task)", fname);
  if (!lua_isyieldable(L)) {
    const char *b = boundary_name(L);
    if (b != NULL)
      luaL_error(L, "%s: cannot suspend inside '%s' (Lua does not allow a "
                 "yield across it)", fname, b);
    luaL_error(L, "%s: cannot suspend here: a C function or metamethod "
               "that does not allow yields is on the stack (such as "
               "require, tostring, table.sort, string.gsub, an xpcall "
               "message handler or __gc)", fname);
  }
  if (L != rt->running)
    luaL_error(L, "%s: cannot suspend: this coroutine was resumed by "
               "something other than luaio (C code, or a coroutine.resume "
               "saved before luaio was loaded)", fname);
  return rt->current;
}

/*
** Parks the running task t: on wait list wl (may be NULL), with an abort
** hook, recording what it waits on; then yields to the scheduler.  The
** continuation k must call luaio__resumed first.
*/
int luaio__park (lua_State *L, Task *t, WaitList *wl,
                 AbortFn abort, const char *what, const void *obj,
                 lua_KContext ctx, lua_KFunction k) {
  t->abort = abort;
  t->what = what;
  t->wobj = obj;
  t->aborted = 0;
  if (wl != NULL) waitlist_push(wl, t);
  t->tstate = T_PARKED;
  if (t->must_cancel) {       /* cancelled while it ran: deliver now */
    t->must_cancel = 0;
    luaio__cancel_parked(L, t);
  }
  lua_pushlightuserdata(L, (void *)&luaio__sentinel);
  return lua_yieldk(L, 1, ctx, k);
}

/* core.can_suspend() -> whether a suspension here would be allowed. */
int luaio__can_suspend (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  lua_pushboolean(L, rt != NULL && rt->current != NULL &&
                  lua_isyieldable(L) && L == rt->running);
  return 1;
}

/*
** In a continuation: checks that the scheduler resumed us and returns the
** task, leaving a pending cancellation (t->must_cancel) to the caller.
*/
static Task *resumed_task (lua_State *L, GState *G) {
  luaio_Runtime *rt = G->rt;
  if (rt == NULL || L != rt->running)
    luaL_error(L, "a suspended luaio call was resumed by something other "
               "than luaio's scheduler");
  return rt->current;
}

Task *luaio__resumed_task (lua_State *L) {
  return resumed_task(L, luaio__G(L));
}

/* In a continuation: raises the task's pending cancellation, if any. */
void luaio__resumed (lua_State *L) {
  luaio__raise_cancel(L, resumed_task(L, luaio__G(L)));
}

/* The same, given the per-state context (no upvalue look-up). */
void luaio__resumed_G (lua_State *L, GState *G) {
  luaio__raise_cancel(L, resumed_task(L, G));
}

/* Raises t's pending cancellation (with its message), if any. */
int luaio__raise_cancel (lua_State *L, Task *t) {
  luaio_Runtime *rt = t->rt;
  if (t->must_cancel) {
    int top = lua_gettop(L);
    t->must_cancel = 0;
    if (t->has_extras) {               /* its extras table (task.c) */
      luaio__push_task(L, rt, t);
      lua_getiuservalue(L, -1, TASK_UV_EXTRAS);
      lua_getfield(L, -1, "cancel_message");
    }
    else lua_pushnil(L);
    luaio__push_cancelled(L, lua_gettop(L));
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return lua_error(L);
  }
  return 0;
}


/* ---------------------------------------------------------- the drain */

/* drain(rt): runs passes of the ready queue; called under lua_pcall. */
static int drain (lua_State *S) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(S, 1);
  size_t ran = 0;
  int base = lua_gettop(S);
  while (!rt->stop) {
    size_t n;
    if (rt->nheap > 0) luaio__move_due(rt, luaio__now(rt));
    n = rt->qlen;
    if (n == 0) break;
    ran += n;
    while (n-- > 0) {
      Entry e = pop_entry(rt);
      e.run(S, rt, e.p, e.idx);
      if (lua_gettop(S) != base) lua_settop(S, base);
    }
    /* what the pass wrote goes out now, one send per stream */
    if (rt->pass_end.head != NULL) luaio__end_pass(rt);
    if (ran >= LUAIO_DRAIN_BUDGET) break;
  }
  return 0;
}

static void on_idle (uv_idle_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  int failed;
  lua_pushcfunction(S, drain);
  lua_pushlightuserdata(S, rt);
  rt->running_depth++;                 /* (also when a host runs uv_run) */
  failed = lua_pcall(S, 1, 0, 0) != LUA_OK;
  rt->running_depth--;
  if (failed) {
    /* The scheduler itself failed (out of memory): stop the loop. */
    luaio__push_R(S, rt);
    lua_insert(S, -2);
    lua_setfield(S, -2, "fatal");
    rt->fatal = 1;
    uv_stop(rt->loop);
  }
  lua_settop(S, top);
  /* (writes made outside the drain, or before it failed) */
  if (rt->pass_end.head != NULL) luaio__end_pass(rt);
  if (rt->stop) {
    uv_stop(rt->loop);
    return;
  }
  if (rt->qlen == 0) {
    rt->idle_on = 0;
    uv_idle_stop(&rt->idle);
    luaio__arm_timer(rt);
  }
}

static void on_close (uv_handle_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  rt->open_handles--;
  rt->own_handles--;
}

/* The runtime's own handles: the idle handle, the deadline timer, the
   shutdown guard (which never keeps the loop alive). */
void luaio__sched_init (luaio_Runtime *rt) {
  uv_idle_init(rt->loop, &rt->idle);
  rt->idle.data = rt;
  uv_timer_init(rt->loop, &rt->timer);
  rt->timer.data = rt;
  uv_timer_init(rt->loop, &rt->guard);
  rt->guard.data = rt;
  uv_unref((uv_handle_t *)&rt->guard);
  rt->open_handles += 3;
  rt->own_handles += 3;
}

/* Nothing will run again (the Lua state is closing): stops them. */
void luaio__sched_stop (luaio_Runtime *rt) {
  rt->closed = 1;
  uv_idle_stop(&rt->idle);
  uv_timer_stop(&rt->timer);
  uv_timer_stop(&rt->guard);
}

/* Shutdown: closes them (the loop runs their close callbacks). */
void luaio__sched_close (luaio_Runtime *rt) {
  luaio__sched_stop(rt);
  uv_close((uv_handle_t *)&rt->idle, on_close);
  uv_close((uv_handle_t *)&rt->timer, on_close);
  uv_close((uv_handle_t *)&rt->guard, on_close);
}


/* ---------------------------------------------------------- hooks */

/* Appends h to list l, to be called with fn. */
void luaio__hook (HookList *l, Hook *h, HookFn fn) {
  h->fn = fn;
  h->next = NULL;
  h->prev = l->tail;
  if (l->tail != NULL) l->tail->next = h;
  else l->head = h;
  l->tail = h;
  h->linked = 1;
}

/* Takes h off list l, if it is on it. */
void luaio__unhook (HookList *l, Hook *h) {
  if (!h->linked) return;
  if (h->prev != NULL) h->prev->next = h->next;
  else l->head = h->next;
  if (h->next != NULL) h->next->prev = h->prev;
  else l->tail = h->prev;
  h->prev = h->next = NULL;
  h->linked = 0;
}

/* The pass has ended: each hook queued for it runs once, first queued
   first.  Also at exit (exit.c): a pass-end hook runs no Lua code. */
void luaio__end_pass (luaio_Runtime *rt) {
  Hook *h;
  while ((h = rt->pass_end.head) != NULL) {
    luaio__unhook(&rt->pass_end, h);
    h->fn(rt, h);
  }
}

/* Shutdown: what the last pass queued goes out, then each object still
   open is closed by its hook. */
void luaio__close_hooks (luaio_Runtime *rt) {
  Hook *h;
  luaio__end_pass(rt);
  while ((h = rt->open.head) != NULL) {
    luaio__unhook(&rt->open, h);
    h->fn(rt, h);
  }
}

/* Makes sure the loop runs a pass soon (and, after it, the pass-end
   hooks): 0 if it never will (the runtime is closed). */
int luaio__want_pass (luaio_Runtime *rt) {
  if (rt->closed) return 0;
  start_idle(rt);
  return 1;
}

/* Makes sure the loop will drain the queue or wait for the next timer. */
void luaio__kick (luaio_Runtime *rt) {
  if (rt->qlen > 0) start_idle(rt);
  else luaio__arm_timer(rt);
}


