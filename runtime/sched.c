/*
** sched.c -- the scheduler: the ready queue, its drain (the one place Lua
** runs while the loop runs), the park/wake primitive, running a main task
** and shutting a runtime down.
**
** libuv callbacks never run Lua: they move entries to the ready queue and
** start the idle handle.  The idle callback drains the queue in passes (a
** pass runs what was ready when it began; what it makes ready runs in the
** next) under one lua_pcall on the scheduler's thread, and returns to
** libuv after LUAIO_DRAIN_BUDGET entries so I/O and timers are polled.
*/
#include <signal.h>
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

/* Appends an entry; starts the idle handle so the loop drains it. */
void luaio__schedule (luaio_Runtime *rt, int kind, void *p, int idx) {
  Entry *e;
  if (rt->qlen == rt->qcap && !grow_queue(rt)) {
    fprintf(stderr, "luaio: out of memory for the ready queue\n");
    abort();
  }
  e = &rt->q[(rt->qhead + rt->qlen) & (rt->qcap - 1)];
  e->kind = kind;
  e->p = p;
  e->idx = idx;
  rt->qlen++;
  if (!rt->closed) start_idle(rt);
}

static Entry pop_entry (luaio_Runtime *rt) {
  Entry e = rt->q[rt->qhead];
  rt->qhead = (rt->qhead + 1) & (rt->qcap - 1);
  rt->qlen--;
  return e;
}


/* ---------------------------------------------------------- park/wake */

void luaio__waitlist_push (WaitList *wl, Task *t) {
  t->wnext = NULL;
  t->wprev = wl->tail;
  if (wl->tail) wl->tail->wnext = t;
  else wl->head = t;
  wl->tail = t;
  t->wlist = wl;
}

void luaio__waitlist_remove (WaitList *wl, Task *t) {
  if (t->wprev) t->wprev->wnext = t->wnext;
  else wl->head = t->wnext;
  if (t->wnext) t->wnext->wprev = t->wprev;
  else wl->tail = t->wprev;
  t->wprev = t->wnext = NULL;
  t->wlist = NULL;
}

/* Forgets what a task waits on (wait list and timer). */
void luaio__unpark (Task *t) {
  if (t->wlist != NULL) luaio__waitlist_remove(t->wlist, t);
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
  luaio__schedule(rt, E_TASK, t, 0);
}

/* The core of cancel() for a parked task. */
static void cancel_parked (lua_State *L, Task *t) {
  if (t->abort != NULL && t->abort(L, t->rt, t))
    return;                   /* the hook arranged the wake-up */
  t->must_cancel = 1;
  t->aborted = 1;
  luaio__wake(t->rt, t);
}

int luaio__task_cancel (lua_State *L, Task *t, int msgidx) {
  if (t->tstate == T_DONE) return 0;
  t->cancelling++;
  if (msgidx != 0 || t->has_extras) {
    luaio__push_task(L, t->rt, t);
    luaio__extras(L, t, lua_gettop(L));
    if (msgidx != 0) lua_pushvalue(L, msgidx);
    else lua_pushnil(L);
    lua_setfield(L, -2, "cancel_message");
    lua_pop(L, 2);
  }
  if (t->tstate == T_PARKED) cancel_parked(L, t);
  else t->must_cancel = 1;
  return 1;
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
  if (wl != NULL) luaio__waitlist_push(wl, t);
  t->tstate = T_PARKED;
  if (t->must_cancel) {       /* cancelled while it ran: deliver now */
    t->must_cancel = 0;
    cancel_parked(L, t);
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
    if (t->has_extras) {
      luaio__push_task(L, rt, t);
      luaio__extras(L, t, lua_gettop(L));
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

static void deliver_report (lua_State *S, luaio_Runtime *rt) {
  luaio__push_R(S, rt);
  lua_getfield(S, -1, "reports");
  rt->report_head++;
  lua_rawgeti(S, -1, rt->report_head);
  lua_pushnil(S);
  lua_rawseti(S, -3, rt->report_head);
  if (rt->report_head >= (int)lua_rawlen(S, -2) && --rt->nreports <= 0) {
    lua_newtable(S);                       /* all delivered: start over */
    lua_setfield(S, -4, "reports");
    rt->report_head = 0;
    rt->nreports = 0;
  }
  else if (rt->nreports > 0) rt->nreports--;
  lua_replace(S, -3);
  lua_pop(S, 1);
  if (lua_istable(S, -1)) luaio__report(S, rt);
  else lua_pop(S, 1);
}

static void run_entry (lua_State *S, luaio_Runtime *rt, Entry *e) {
  switch (e->kind) {
    case E_TASK: {
      Task *t = (Task *)e->p;
      if (t->tstate == T_NEW || t->tstate == T_SCHEDULED) luaio__step(rt, t);
      break;
    }
    case E_CALL:
      luaio__run_handle(S, rt, (Handle *)e->p);
      break;
    case E_FUTCB:
      luaio__run_future_callback(S, rt, (Future *)e->p, e->idx);
      break;
    case E_REPORT:
      deliver_report(S, rt);
      break;
    case E_SIGNAL:
      luaio__run_signal(S, rt, e->idx);
      break;
    case E_ACCEPT:
      luaio__run_accept(S, rt, e->p);
      break;
    case E_CCALL:
      luaio__run_ccall(S, rt, e->p);
      break;
  }
}

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
      run_entry(S, rt, &e);
      if (lua_gettop(S) != base) lua_settop(S, base);
    }
    /* what the pass wrote goes out now, one send per stream */
    if (rt->coalesced != NULL) luaio__send_coalesced(rt);
    if (ran >= LUAIO_DRAIN_BUDGET) break;
  }
  return 0;
}

static void on_idle (uv_idle_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  lua_pushcfunction(S, drain);
  lua_pushlightuserdata(S, rt);
  if (lua_pcall(S, 1, 0, 0) != LUA_OK) {
    /* The scheduler itself failed (out of memory): stop the loop. */
    luaio__push_R(S, rt);
    lua_insert(S, -2);
    lua_setfield(S, -2, "fatal");
    rt->fatal = 1;
    uv_stop(rt->loop);
  }
  lua_settop(S, top);
  /* (writes made outside the drain, or before it failed) */
  if (rt->coalesced != NULL) luaio__send_coalesced(rt);
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
}

void luaio__sched_init (luaio_Runtime *rt) {
  uv_idle_init(rt->loop, &rt->idle);
  rt->idle.data = rt;
  uv_timer_init(rt->loop, &rt->timer);
  rt->timer.data = rt;
  uv_timer_init(rt->loop, &rt->guard);
  rt->guard.data = rt;
  uv_unref((uv_handle_t *)&rt->guard);
  rt->open_handles = 3;
}

/* Makes sure the loop runs a pass soon (and, after it, sends coalesced
   writes): 0 if it never will (the runtime is closed). */
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


/* ---------------------------------------------------------- SIGINT */

static int interrupt_main (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  if (rt->main != NULL && rt->main->tstate != T_DONE)
    luaio__task_cancel(L, rt->main, 0);
  return 0;
}

static void on_sigint (uv_signal_t *h, int signum) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  (void)signum;
  if (rt->interrupted) {      /* second Ctrl-C: die as SIGINT says */
    uv_signal_stop(h);
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  rt->interrupted = 1;
  lua_pushcfunction(S, interrupt_main);
  lua_pushlightuserdata(S, rt);
  lua_pcall(S, 1, 0, 0);
  lua_settop(S, top);
  luaio__kick(rt);
}

/*
** Watches SIGINT while run() runs, unless the process ignores it.  The
** watch keeps the loop alive: a main task sleeping forever waits for
** Ctrl-C, as in asyncio.  Only when nothing at all could wake the main
** task does run() report a deadlock.
*/
static int watch_sigint (luaio_Runtime *rt) {
  struct sigaction cur;
  if (rt->user_sigint) return 0;
  if (sigaction(SIGINT, NULL, &cur) != 0 || cur.sa_handler == SIG_IGN)
    return 0;
  if (!rt->sigint_on) {
    uv_signal_init(rt->loop, &rt->sigint);
    rt->sigint.data = rt;
    rt->sigint_on = 1;
    rt->open_handles++;
  }
  rt->old_sigint = cur;
  uv_signal_start(&rt->sigint, on_sigint, SIGINT);
  return 1;          /* referenced: Ctrl-C can still wake the main task */
}

/* A user's SIGINT handler was removed while run() runs: watch again. */
void luaio__rewatch_sigint (luaio_Runtime *rt) {
  if (rt->sigint_on && rt->running_depth > 0 && rt->main != NULL &&
      !uv_is_active((uv_handle_t *)&rt->sigint))
    uv_signal_start(&rt->sigint, on_sigint, SIGINT);
}

static void unwatch_sigint (luaio_Runtime *rt) {
  uv_signal_stop(&rt->sigint);
  sigaction(SIGINT, &rt->old_sigint, NULL);
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
  watched = watch_sigint(rt);
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
  if (watched) unwatch_sigint(rt);
  rt->stop = 0;
  rt->main = NULL;
  main->is_main = 0;
  rt->running_depth--;
  G->rt = saved;
  if (rt->fatal) {
    luaio__push_R(L, rt);
    lua_getfield(L, -1, "fatal");
    lua_remove(L, -2);
    rt->fatal = 0;
    return 1;
  }
  if (status == 0 && rt->interrupted) {
    rt->interrupted = 0;
    lua_pushliteral(L, "interrupted!");
    return 1;
  }
  return status;
}

/* Closes what is left of a task that would not finish. */
static void abandon (lua_State *L, luaio_Runtime *rt, Task *t) {
  int top = lua_gettop(L);
  lua_createtable(L, 0, 4);
  lua_pushliteral(L, "Task was destroyed but it is pending!");
  lua_setfield(L, -2, "message");
  luaio__push_task(L, rt, t);
  lua_setfield(L, -2, "task");
  if (t->co != NULL) {
    luaio__traceback(L, t->co, NULL, 0);
    lua_setfield(L, -2, "traceback");
  }
  luaio__report(L, rt);
  luaio__task_kill(L, rt, t);
  lua_settop(L, top);
}

static void on_guard (uv_timer_t *h) { (void)h; }

/*
** Shutdown: cancel every pending task once, run until they finish or
** shutdown_timeout passes, abandon the rest, report never-retrieved
** errors, close every handle, close the loop.
*/
void luaio__shutdown (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  luaio_Runtime *saved = G->rt;
  Task *t;
  uint64_t deadline;
  int top = lua_gettop(L);
  rt->closing = 1;
  G->rt = rt;
  rt->running_depth++;
  for (t = rt->tasks; t != NULL; t = t->next)
    luaio__task_cancel(L, t, 0);
  deadline = uv_hrtime() + (uint64_t)(rt->shutdown_timeout * 1e9);
  luaio__kick(rt);
  while (rt->ntasks > 0 && !rt->fatal) {
    uint64_t now = uv_hrtime();
    int alive;
    if (now >= deadline) break;
    uv_timer_start(&rt->guard, on_guard, (deadline - now) / 1000000 + 1, 0);
    alive = uv_run(rt->loop, UV_RUN_ONCE);
    rt->stop = 0;
    if (!alive && rt->qlen == 0) break;
  }
  uv_timer_stop(&rt->guard);
  while (rt->tasks != NULL) abandon(L, rt, rt->tasks);
  /* Never-retrieved errors: collect what is garbage (its finaliser
     queues a report), then report what is still referenced.  No failure
     ever tracked: no collection needed (start-up/exit of small scripts). */
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "unretrieved");
  lua_pushnil(L);
  if (lua_next(L, -2) != 0) {
    lua_pop(L, 2);
    lua_gc(L, LUA_GCCOLLECT);
  }
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    Future *f = luaio__tofuture(L, rt->G, -2);
    lua_pop(L, 1);
    if (f != NULL && !f->retrieved) {
      f->retrieved = 1;
      lua_createtable(L, 0, 4);
      lua_pushstring(L, f->is_task ? "Task exception was never retrieved"
                                   : "Future exception was never retrieved");
      lua_setfield(L, -2, "message");
      lua_getiuservalue(L, -2, FUT_UV_RESULT);
      lua_setfield(L, -2, "exception");
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, f->is_task ? "task" : "future");
      if (f->is_task && ((Task *)f)->has_extras) {
        luaio__extras(L, (Task *)f, -2);
        lua_getfield(L, -1, "traceback");
        lua_setfield(L, -3, "traceback");
        lua_pop(L, 1);
      }
      luaio__report(L, rt);
    }
  }
  lua_settop(L, top);
  /* Deliver whatever is still queued (reports, callbacks). */
  while (rt->qlen > 0 && !rt->fatal) {
    rt->stop = 0;
    uv_run(rt->loop, UV_RUN_NOWAIT);
  }
  if (rt->debug && luaio__count_streams(rt) > 0) {
    lua_createtable(L, 0, 1);
    lua_pushfstring(L, "%d stream(s) or server(s) left open at loop close "
                    "(closed now)", luaio__count_streams(rt));
    lua_setfield(L, -2, "message");
    luaio__report(L, rt);
  }
  rt->running_depth--;
  G->rt = saved;
  rt->closed = 1;
  uv_idle_stop(&rt->idle);
  uv_timer_stop(&rt->timer);
  uv_close((uv_handle_t *)&rt->idle, on_close);
  uv_close((uv_handle_t *)&rt->timer, on_close);
  uv_close((uv_handle_t *)&rt->guard, on_close);
  if (rt->sigint_on) uv_close((uv_handle_t *)&rt->sigint, on_close);
  luaio__close_signals(rt);
  luaio__close_streams(rt);
  luaio__close_udps(rt);
  luaio__close_processes(rt);
  luaio__close_embed(rt);
  while (rt->open_handles > 0) uv_run(rt->loop, UV_RUN_NOWAIT);
  if (rt->owns_loop) {
    uv_run(rt->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(rt->loop) != 0)
      fprintf(stderr, "luaio: event loop closed with handles still open\n");
  }
}
