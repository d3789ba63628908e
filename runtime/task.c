/*
** task.c -- Task: a coroutine driven by the scheduler, with a Future's
** state; create_task, one step of a task, its end; cancel, cancelling,
** uncancel, names, stacks; current_task, all_tasks.
**
** The coroutine runs task_main(G, fn, ...), which calls fn under
** lua_pcallk with a continuation: an error unwinds inside the coroutine
** and <close> handlers on the way may suspend.  The body's continuation
** tells the scheduler whether it failed.  A coroutine that ended normally
** is emptied and kept for the next task (up to LUAIO_POOL_MAX).
**
** Cancellation (asyncio 3.11+): cancel() counts a request; a task parked
** with an abort hook has its wait undone and resumes with CancelledError
** (awaiting a future cancels the future); a task that is running or
** already scheduled gets the error at its next resume (or, if its body
** returns first, ends cancelled); a task that has not started ends
** cancelled without running.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"



/* ---------------------------------------------------------- access */

Task *luaio__totask (lua_State *L, GState *G, int idx) {
  if (!luaio__hasmt(L, idx, G->mt_task)) return NULL;
  return (Task *)lua_touserdata(L, idx);
}

/* Only from core functions: G is their upvalue 1. */
Task *luaio__checktask (lua_State *L, int idx) {
  Task *t = luaio__totask(L, luaio__G(L), idx);
  if (t == NULL) {
    luaio__check_self(L, idx, LUAIO_TASK);
    luaL_typeerror(L, idx, "Task");
  }
  return t;
}

/*
** Pushes pending task t from its coroutine, where task_main has it as its
** second argument: at index 3 before it starts, at 1 once task_main has
** returned (it returns the task first), else in the bottom frame.
*/
static void fetch_task (lua_State *L, Task *t) {
  lua_State *co = t->co;
  lua_Debug ar;
  lua_checkstack(co, 2);
  if (!lua_getstack(co, 0, &ar))
    lua_pushvalue(co, t->tstate == T_NEW ? 3 : 1);
  else {                               /* the deepest level: task_main's */
    int yes = 0, no = 1;
    while (lua_getstack(co, no, &ar)) { yes = no; no *= 2; }
    while (no - yes > 1) {
      int m = yes + (no - yes) / 2;
      if (lua_getstack(co, m, &ar)) yes = m; else no = m;
    }
    lua_getstack(co, yes, &ar);
    lua_getlocal(co, &ar, 2);
  }
  lua_xmove(co, L, 1);
}

void luaio__push_task (lua_State *L, luaio_Runtime *rt, Task *t) {
  if (t->f.anchor == 0) {              /* first use: anchored from now on */
    fetch_task(L, t);
    lua_pushvalue(L, -1);
    t->f.anchor = luaio__anchor(L, rt);
  }
  else luaio__push_anchor(L, rt, t->f.anchor);
}

/* t's coroutine is about to lose its stack: t gets its own anchor. */
static void keep_task (lua_State *L, luaio_Runtime *rt, Task *t) {
  if (t->f.anchor != 0) return;
  luaio__push_task(L, rt, t);
  lua_pop(L, 1);
}

/* Pushes the extras table of task t (at idx), making it if needed. */
void luaio__extras (lua_State *L, Task *t, int idx) {
  idx = lua_absindex(L, idx);
  if (t->has_extras) {
    lua_getiuservalue(L, idx, TASK_UV_EXTRAS);
    return;
  }
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, TASK_UV_EXTRAS);
  t->has_extras = 1;
}


/* ---------------------------------------------------------- the body */

/*
** Every error that reaches the handler leaves the body (pcall calls no
** handler), so one raised after it -- by a <close> handler on the way
** out -- was raised while it unwound: the new one gets the old one as
** its .context (Python's implicit chaining).  extras.in_flight keeps
** the error leaving the body.
*/
static void chain_in_flight (lua_State *co, luaio_Runtime *rt) {
  luaio__push_task(co, rt, rt->current);
  luaio__extras(co, rt->current, -1);
  if (lua_getfield(co, -1, "in_flight") != LUA_TNIL && !lua_rawequal(co, -1, 1))
    luaio__chain_context(co, 1, -1);
  lua_pop(co, 1);
  lua_pushvalue(co, 1);
  lua_setfield(co, -2, "in_flight");
  lua_pop(co, 2);
}

/* Message handler of task bodies: records where the error happened. */
static int task_msgh (lua_State *co) {
  GState *G = luaio__state(co);
  luaio_Runtime *rt = G->rt;
  int match;
  if (rt == NULL || rt->current == NULL) return 1;
  chain_in_flight(co, rt);
  if (luaio__is_cancelled(co, 1)) return 1;
  luaio__traceback(co, co, NULL, 1);
  if (luaio__is_error_object(co, 1)) {
    lua_getfield(co, 1, "traceback");
    if (lua_isnil(co, -1)) {
      lua_pushvalue(co, -2);
      lua_setfield(co, 1, "traceback");
    }
    lua_pop(co, 1);
  }
  luaio__push_task(co, rt, rt->current);
  luaio__extras(co, rt->current, -1);
  /* re-raised from an awaited task: add where it came from */
  lua_getfield(co, -1, "cause_for");
  match = lua_rawequal(co, -1, 1);
  lua_pop(co, 1);
  if (match) {
    if (lua_getfield(co, -1, "cause") == LUA_TSTRING) {
      lua_pushvalue(co, 2);
      lua_insert(co, -2);
      lua_concat(co, 2);
      lua_replace(co, 2);              /* the traceback, with its cause */
    }
    else lua_pop(co, 1);
  }
  lua_pushvalue(co, 2);
  lua_setfield(co, -2, "traceback");
  lua_settop(co, 1);
  return 1;
}

/* Returns the task, then the results (or the error value): all that is
   above the handler. */
static int task_k (lua_State *co, int status, lua_KContext ctx) {
  (void)ctx;
  if (status != LUA_OK && status != LUA_YIELD)
    luaio__state(co)->rt->body_failed = 1;
  return lua_gettop(co) - 1;
}

/* task_main(msgh, task, fn, ...): the function every task coroutine
   starts with (create_task pushes the handler: a light C function, no
   look-up here).  The task stays on the coroutine's stack, below fn's
   frame, while it runs. */
int luaio__task_main (lua_State *co) {
  return task_k(co, lua_pcallk(co, lua_gettop(co) - 3, LUA_MULTRET, 1, 0,
                               task_k), 0);
}


/* ---------------------------------------------------------- creation */

static int create_task (lua_State *L, luaio_Runtime *rt, int fidx, int n,
                        int eager);
static void cancel_settled (luaio_Runtime *rt, Task *t);
static void step (luaio_Runtime *rt, Task *t, lua_State *from);

/* The pool's array of idle coroutines, made on first use; 0 if out of
   memory. */
static int pool_array (luaio_Runtime *rt) {
  if (rt->pool_idle == NULL)
    rt->pool_idle = (Pooled *)malloc(LUAIO_POOL_MAX * sizeof(Pooled));
  return rt->pool_idle != NULL;
}

/*
** A coroutine for task t (at tidx): a pooled one, which its anchor keeps
** alive (t->slot); else a new one, anchored the same way (else, out of
** memory for the pool, kept as the task's user value 1: t->slot 0).
*/
static lua_State *get_coroutine (lua_State *L, luaio_Runtime *rt,
                                 Task *t, int tidx) {
  lua_State *co;
  if (rt->pool_n > 0) {
    Pooled e = rt->pool_idle[--rt->pool_n];
    t->slot = e.slot;
    return e.co;
  }
  co = lua_newthread(L);
  if (pool_array(rt)) {
    t->slot = luaio__anchor(L, rt);
    rt->pool_owned++;
  }
  else {
    t->slot = 0;
    lua_setiuservalue(L, tidx, FUT_UV_RESULT);
  }
  return co;
}

static void check_callable (lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, idx, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaio__typeerror(L, idx, "create_task", "function");
}

/*
** A current context is a map (ContextVar -> value, never changed: set()
** makes a new one) or a Context object that ctx:run or ctx:create_task
** entered (luaio.context: a table with a metatable, its map in field
** _map).  A new task copies it: replaces the value on the top by its map.
*/
void luaio__context_copy (lua_State *L) {
  if (!lua_getmetatable(L, -1)) return;
  lua_pop(L, 1);
  lua_getfield(L, -1, "_map");
  lua_remove(L, -2);
}

/*
** Creates a task running the function at fidx with the n values after
** it; pushes the task.  It starts on a later pass of the ready queue.
*/
int luaio__create_task (lua_State *L, luaio_Runtime *rt, int fidx, int n) {
  return create_task(L, rt, fidx, n, 0);
}

/*
** Eager start (asyncio 3.12): the new task's first step runs now, as a
** nested resume from the running task; a task that finishes in it never
** goes through the ready queue.  Nested more than LUAIO_EAGER_MAX deep,
** the task starts lazily instead.
*/
static int create_task (lua_State *L, luaio_Runtime *rt, int fidx, int n,
                        int eager) {
  Task *t;
  lua_State *co;
  int tidx;
  fidx = lua_absindex(L, fidx);
  check_callable(L, fidx);
  if (rt->closed) return luaL_error(L, "create_task: the event loop is closed");
  t = (Task *)lua_newuserdatauv(L, sizeof(Task), TASK_NUV);
  memset(t, 0, sizeof(*t));
  tidx = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->G->ref_taskmt);
  lua_setmetatable(L, tidx);
  t->f.is_task = 1;
  t->f.retrieved = 1;
  t->f.loop_id = rt->id;
  t->id = ++rt->task_counter;
  t->rt = rt;
  /* the context: the creator's, shared until someone writes to it; one
     in the loop's context is not stored (no look-up per task) */
  if (rt->current != NULL) {
    t->parent = rt->current->id;
    if (rt->current->own_ctx) {
      luaio__push_task(L, rt, rt->current);
      lua_getiuservalue(L, -1, TASK_UV_CONTEXT);
      luaio__context_copy(L);
      lua_setiuservalue(L, tidx, TASK_UV_CONTEXT);
      lua_pop(L, 1);
      t->own_ctx = 1;
    }
  }
  else if (rt->loop_ctx_object) {      /* made inside a callback's ctx:run */
    luaio__push_R(L, rt);
    lua_getfield(L, -1, "context");
    luaio__context_copy(L);
    lua_setiuservalue(L, tidx, TASK_UV_CONTEXT);
    lua_pop(L, 1);
    t->own_ctx = 1;
  }
  co = get_coroutine(L, rt, t, tidx);
  t->co = co;
  if (n + 4 > LUA_MINSTACK && !lua_checkstack(co, n + 4))   /* (a new or
                                  emptied thread has LUA_MINSTACK free) */
    return luaL_error(L, "create_task: too many arguments");
  lua_pushcfunction(co, luaio__task_main);
  lua_pushcfunction(co, task_msgh);
  lua_checkstack(L, n + 2);
  lua_pushvalue(L, tidx);
  {
    int i;
    for (i = 0; i <= n; i++) lua_pushvalue(L, fidx + i);
  }
  lua_xmove(L, co, n + 2);             /* task_main, msgh, t, fn, ... */
  if (t->slot == 0) {                  /* no anchored coroutine holds it */
    lua_pushvalue(L, tidx);
    t->f.anchor = luaio__anchor(L, rt);
  }
  t->next = rt->tasks;
  if (rt->tasks) rt->tasks->prev = t;
  rt->tasks = t;
  rt->ntasks++;
  t->tstate = T_NEW;                   /* (the task is on top) */
  if (eager && rt->eager_depth < LUAIO_EAGER_MAX) {
    rt->eager_depth++;
    step(rt, t, rt->running != NULL ? rt->running : L);
    rt->eager_depth--;
  }
  else luaio__schedule_task(rt, t);
  return 1;
}


/* ---------------------------------------------------------- the end */

static void unlink_task (luaio_Runtime *rt, Task *t) {
  if (t->prev) t->prev->next = t->next;
  else rt->tasks = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  rt->ntasks--;
}

/* t's coroutine co cannot be reused: its anchor, if any, is released
   (and what task_main returned dropped: a finished one reads as dead). */
static void unpool (lua_State *S, luaio_Runtime *rt, Task *t,
                    lua_State *co) {
  lua_Debug ar;
  if (lua_gettop(co) != 0 && lua_status(co) == LUA_OK &&
      !lua_getstack(co, 0, &ar) && lua_tocfunction(co, 1) != luaio__task_main)
    lua_settop(co, 0);
  if (t->slot == 0) return;
  luaio__unanchor(S, rt, t->slot);
  rt->pool_owned--;
}

/* Keeps t's finished coroutine co for the next task: at most
   LUAIO_POOL_MAX wait idle; past that the GC takes it. */
static void pool (lua_State *S, luaio_Runtime *rt, Task *t,
                  lua_State *co) {
  Pooled *e;
  if (lua_gettop(co) != 0) lua_settop(co, 0);
  if (rt->closing || rt->pool_n >= LUAIO_POOL_MAX || !pool_array(rt)) {
    unpool(S, rt, t, co);
    return;
  }
  if (lua_gethook(co) != NULL) lua_sethook(co, NULL, 0, 0);   /* (debug.sethook
                                  on the task's coroutine: not the next's) */
  if (t->slot == 0) {                  /* not anchored yet */
    lua_pushthread(co);
    lua_xmove(co, S, 1);
    t->slot = luaio__anchor(S, rt);
    rt->pool_owned++;
  }
  e = &rt->pool_idle[rt->pool_n++];
  e->co = co;
  e->slot = t->slot;
}

/*
** Ends task t with state st.  DONE: the task and its nres results on top
** of co (as task_main returns them); else the error value on top of S.
** Releases the coroutine (pooled if reuse).
*/
static void end_task (lua_State *S, luaio_Runtime *rt, Task *t,
                      int st, int nres, int reuse) {
  lua_State *co = t->co;
  int tidx, top;
  lua_checkstack(S, nres + 6);
  top = lua_gettop(S) - (st == FUT_DONE ? 0 : 1);
  if (st == FUT_DONE) {
    lua_xmove(co, S, nres + 1);
    tidx = top + 1;
  }
  else {
    luaio__push_task(S, rt, t);
    tidx = top + 2;
    lua_pushvalue(S, tidx - 1);
  }
  t->co = NULL;
  t->tstate = T_DONE;
  t->must_cancel = 0;
  cancel_settled(rt, t);
  unlink_task(rt, t);
  if (reuse) pool(S, rt, t, co);
  else unpool(S, rt, t, co);
  t->slot = 0;
  if (rt->debug && st == FUT_DONE && t->cancelling > 0) {
    lua_createtable(S, 0, 2);
    lua_pushliteral(S, "Task swallowed its cancellation and returned");
    lua_setfield(S, -2, "message");
    lua_pushvalue(S, tidx);
    lua_setfield(S, -2, "task");
    luaio__queue_report(S, rt);
  }
  luaio__settle(S, rt, &t->f, tidx, st, st == FUT_DONE ? nres : 1);
  if (t->f.ncb == 0) {
    luaio__unanchor(S, rt, t->f.anchor);
    t->f.anchor = 0;
  }
  if (t->is_main) rt->stop = 1;
  lua_settop(S, top);
}

/* Ends t cancelled with a CancelledError carrying its cancel message. */
static void end_cancelled (lua_State *S, luaio_Runtime *rt, Task *t,
                           int reuse) {
  if (t->has_extras) {
    luaio__push_task(S, rt, t);
    luaio__extras(S, t, -1);
    lua_getfield(S, -1, "cancel_message");
    luaio__push_cancelled(S, -1);
    lua_replace(S, -4);
    lua_pop(S, 2);
  }
  else {
    lua_pushnil(S);
    luaio__push_cancelled(S, -1);
    lua_remove(S, -2);
  }
  end_task(S, rt, t, FUT_CANCELLED, 0, reuse);
}

/* Ends t with the error on top of co (moved to S). */
static void end_failed (lua_State *S, luaio_Runtime *rt, Task *t,
                        int reuse) {
  lua_xmove(t->co, S, 1);
  end_task(S, rt, t, luaio__is_cancelled(S, -1) ? FUT_CANCELLED : FUT_FAILED,
           0, reuse);
}

/* Debug mode: reports a step that ran over LUAIO_SLOW_STEP ns. */
static void slow_step (luaio_Runtime *rt, Task *t, uint64_t ns) {
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  if (ns < LUAIO_SLOW_STEP || !lua_checkstack(S, 4)) return;
  lua_createtable(S, 0, 2);
  luaio__push_task(S, rt, t);
  lua_setfield(S, -2, "task");
  luaio__push_task(S, rt, t);
  lua_pushfstring(S, "Executing %s took %f seconds (slow step: it ran "
                  "without suspending)", luaL_tolstring(S, -1, NULL),
                  (double)ns / 1e9);
  lua_setfield(S, top + 1, "message");
  lua_settop(S, top + 1);
  if (t->co != NULL && lua_status(t->co) == LUA_YIELD) {   /* where it is */
    luaio__traceback(S, t->co, "the task stopped at:", 0);
    lua_setfield(S, -2, "traceback");
  }
  luaio__queue_report(S, rt);
  lua_settop(S, top);
}

/*
** One step: resumes t and handles how it stopped.  Called from the drain,
** or (eager start) from a running task, whose state is saved around it.
*/
static void step (luaio_Runtime *rt, Task *t, lua_State *from) {
  lua_State *S = rt->S, *co = t->co;
  Task *saved = rt->current;
  lua_State *savedrun = rt->running;
  int savedfailed = rt->body_failed;
  int nargs, nres = 0, status, failed;
  uint64_t t0;
  if (t->tstate == T_NEW) {
    if (t->must_cancel) {              /* cancelled before it started */
      end_cancelled(S, rt, t, 0);
      return;
    }
    nargs = lua_gettop(co) - 1;
  }
  else {
    lua_pop(co, 1);                    /* the sentinel it yielded */
    nargs = 0;
  }
  t->tstate = T_RUNNING;
  rt->current = t;
  rt->running = co;
  rt->body_failed = 0;
  t0 = rt->debug ? uv_hrtime() : 0;  /* 0: not timed (debug may change) */
  status = lua_resume(co, from != NULL ? from : S, nargs, &nres);
  if (t0 != 0 && rt->debug) slow_step(rt, t, uv_hrtime() - t0);
  rt->current = saved;
  rt->running = savedrun;
  failed = rt->body_failed;
  rt->body_failed = savedfailed;       /* an eager step nests in a body */
  if (status == LUA_YIELD) {
    if (nres == 1 && luaio__is_sentinel(co, -1)) return;
    /* A plain coroutine.yield reached the scheduler: the task cannot go
       on.  Close its coroutine and fail it. */
    lua_pop(co, nres);
    keep_task(S, rt, t);
    lua_resetthread(co);
    lua_settop(co, 0);
    lua_pushliteral(co, "coroutine.yield: cannot yield from a task body "
                    "outside a coroutine (use aio.sleep(0))");
    end_failed(S, rt, t, 0);
  }
  else if (status == LUA_OK && !failed) {
    /* A cancel request still pending when the body returns (it cancelled
       itself and returned without suspending) wins, as in asyncio. */
    if (t->must_cancel) end_cancelled(S, rt, t, 1);
    else end_task(S, rt, t, FUT_DONE, nres - 1, 1);   /* (the task first) */
  }
  else
    end_failed(S, rt, t, status == LUA_OK);
}

/* The drain's entry for a task (GState.run_task): one step, unless the
   task ended (cancelled before it started) since it was scheduled. */
static void run_task (lua_State *S, luaio_Runtime *rt, void *p, int idx) {
  Task *t = (Task *)p;
  (void)S; (void)idx;
  if (t->tstate == T_NEW || t->tstate == T_SCHEDULED) step(rt, t, NULL);
}

/* ---------------------------------------------------------- cancelling */

/*
** Debug mode: a task that catches its CancelledError and goes on (pcall
** around a suspension, in a loop) keeps whoever cancels it waiting, with
** nothing to show.  One timer entry checks, LUAIO_CANCEL_WARN after the
** earliest pending request, every task whose cancellation has been
** pending that long, and reports each once (not on a virtual clock).
*/
static void cancel_sweep (lua_State *S, luaio_Runtime *rt, void *p, int idx);

static void arm_cancel_sweep (luaio_Runtime *rt, uint64_t since) {
  if (rt->cancel_sweep != 0 || rt->virtual_clock || rt->closed) return;
  luaio__heap_push(rt, since + LUAIO_CANCEL_WARN, cancel_sweep,
                   &rt->cancel_sweep);
  luaio__kick(rt);
}

static void warn_cancel (lua_State *S, luaio_Runtime *rt, Task *t,
                         uint64_t now) {
  int top = lua_gettop(S);
  char secs[32];
  if (!lua_checkstack(S, 5)) return;
  snprintf(secs, sizeof secs, "%.1f", (double)(now - t->cancel_since) / 1e9);
  lua_createtable(S, 0, 3);
  luaio__push_task(S, rt, t);
  lua_setfield(S, -2, "task");
  luaio__push_task(S, rt, t);
  lua_pushfstring(S, "%s has not honoured its cancellation after %s seconds "
                  "(%d request%s pending): it catches CancelledError (pcall) "
                  "without re-raising it, or waits for a task that does",
                  luaL_tolstring(S, -1, NULL), secs, t->cancelling,
                  t->cancelling == 1 ? "" : "s");
  lua_setfield(S, top + 1, "message");
  lua_settop(S, top + 1);
  if (t->co != NULL && t->tstate != T_NEW && lua_status(t->co) == LUA_YIELD) {
    luaio__traceback(S, t->co, "the task is at:", 0);
    lua_setfield(S, -2, "traceback");
  }
  luaio__report(S, rt);
  lua_settop(S, top);
}

/* t's cancellation is honoured (uncancelled, or t ended). */
static void cancel_settled (luaio_Runtime *rt, Task *t) {
  if (t->cancel_since == 0) return;
  t->cancel_since = 0;
  t->cancel_warned = 0;
  if (--rt->cancels_pending == 0 && rt->cancel_sweep != 0)
    luaio__heap_remove(rt, rt->cancel_sweep - 1);
}

static void cancel_sweep (lua_State *S, luaio_Runtime *rt, void *p, int idx) {
  uint64_t now = uv_hrtime(), next = 0;
  Task *t;
  (void)p; (void)idx;
  if (!rt->debug) return;
  for (t = rt->tasks; t != NULL; t = t->next) {
    if (t->cancelling == 0 || t->cancel_warned) continue;
    if (now - t->cancel_since >= LUAIO_CANCEL_WARN) {
      t->cancel_warned = 1;
      warn_cancel(S, rt, t, now);
    }
    else if (next == 0 || t->cancel_since < next) next = t->cancel_since;
  }
  if (next != 0) arm_cancel_sweep(rt, next);
}

/*
** cancel(): counts a request; a parked task has its wait undone and
** resumes with CancelledError (sched.c), a running or scheduled one gets
** it at its next resume.  Returns 0 if t is done.
*/
int luaio__task_cancel (lua_State *L, Task *t, int msgidx) {
  if (t->tstate == T_DONE) return 0;
  if (t->cancelling++ == 0) {
    t->cancel_since = uv_hrtime();
    t->rt->cancels_pending++;
    if (t->rt->debug) arm_cancel_sweep(t->rt, t->cancel_since);
  }
  if (msgidx != 0 || t->has_extras) {
    luaio__push_task(L, t->rt, t);
    luaio__extras(L, t, lua_gettop(L));
    if (msgidx != 0) lua_pushvalue(L, msgidx);
    else lua_pushnil(L);
    lua_setfield(L, -2, "cancel_message");
    lua_pop(L, 2);
  }
  if (t->tstate == T_PARKED) luaio__cancel_parked(L, t);
  else t->must_cancel = 1;
  return 1;
}


/* Shutdown: every pending task gets one cancel request. */
void luaio__cancel_all (lua_State *L, luaio_Runtime *rt) {
  Task *t;
  for (t = rt->tasks; t != NULL; t = t->next) luaio__task_cancel(L, t, 0);
}

/* Closes a task that would not finish (shutdown): its <close> handlers
   run but cannot suspend. */
void luaio__task_kill (lua_State *L, luaio_Runtime *rt, Task *t) {
  Task *saved = rt->current;
  lua_State *co = t->co;
  (void)L;
  luaio__unpark(t);
  if (t->tstate == T_NEW) {
    end_cancelled(rt->S, rt, t, 0);
    return;
  }
  keep_task(rt->S, rt, t);
  rt->current = t;
  rt->running = NULL;
  lua_resetthread(co);
  rt->current = saved;
  lua_settop(co, 0);
  end_cancelled(rt->S, rt, t, 0);
}


/* Reports and closes a task that would not finish. */
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

/* Shutdown: the tasks still pending after the grace period. */
void luaio__abandon_all (lua_State *L, luaio_Runtime *rt) {
  while (rt->tasks != NULL) abandon(L, rt, rt->tasks);
}


/* ---------------------------------------------------------- methods */

static int t_cancel (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  lua_pushboolean(L, luaio__task_cancel(L, t, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int t_cancelling (lua_State *L) {
  lua_pushinteger(L, luaio__checktask(L, 1)->cancelling);
  return 1;
}

static int t_uncancel (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  if (t->cancelling > 0 && --t->cancelling == 0) {
    cancel_settled(t->rt, t);
    if (t->tstate != T_PARKED) t->must_cancel = 0;
  }
  lua_pushinteger(L, t->cancelling);
  return 1;
}

static int t_get_name (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  if (t->has_extras) {
    luaio__extras(L, t, 1);
    if (lua_getfield(L, -1, "name") != LUA_TNIL) return 1;
  }
  lua_pushfstring(L, "Task-%I", t->id);
  return 1;
}

static int t_set_name (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  luaL_checkany(L, 2);
  luaio__extras(L, t, 1);
  luaL_tolstring(L, 2, NULL);
  lua_setfield(L, -2, "name");
  return 0;
}

static int t_get_coro (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  if (t->co == NULL) lua_pushnil(L);
  else if (t->slot != 0) luaio__push_anchor(L, t->rt, t->slot);   /* pooled */
  else lua_getiuservalue(L, 1, FUT_UV_RESULT);
  return 1;
}

/* get_stack() -> traceback string of a suspended task, or of where a
   failed one failed; nil otherwise. */
static int t_get_stack (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  if (t->co != NULL && t->tstate != T_NEW && lua_status(t->co) == LUA_YIELD) {
    luaio__traceback(L, t->co, NULL, 0);
    return 1;
  }
  if (t->f.state == FUT_FAILED && t->has_extras) {
    luaio__extras(L, t, 1);
    lua_getfield(L, -1, "traceback");
    return 1;
  }
  return 0;
}

/* task:_where() -> get_stack()'s traceback of a suspended task, with no
   global names (cheaper: timeouts take one at every deadline), or nil. */
static int t_where (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  if (t->co == NULL || t->tstate == T_NEW || lua_status(t->co) != LUA_YIELD)
    return 0;
  luaio__traceback_ex(L, t->co, NULL, 0, 0);
  return 1;
}

/* task:_info() -> id, parent id, state, what it waits on, whether a
   cancellation is about to be raised in it, the cancel requests pending
   and for how long (seconds, or nil) (dump_tasks, timeouts). */
static int t_info (lua_State *L) {
  static const char *const names[] = {
    "new", "scheduled", "running", "waiting", "done"
  };
  Task *t = luaio__checktask(L, 1);
  lua_pushinteger(L, t->id);
  lua_pushinteger(L, t->parent);
  lua_pushstring(L, names[t->tstate]);
  if (t->what) lua_pushstring(L, t->what);
  else lua_pushnil(L);
  lua_pushboolean(L, t->must_cancel);
  lua_pushinteger(L, t->cancelling);
  if (t->cancelling > 0 && t->cancel_since != 0)
    lua_pushnumber(L, (double)(uv_hrtime() - t->cancel_since) / 1e9);
  else lua_pushnil(L);
  return 7;
}

static int t_set_result (lua_State *L) {
  luaio__checktask(L, 1);
  return luaL_error(L, "set_result: a Task's result is set by its function");
}

static int t_set_exception (lua_State *L) {
  luaio__checktask(L, 1);
  return luaL_error(L, "set_exception: a Task's error is set by its function");
}

static int t_tostring (lua_State *L) {
  static const char *const names[] = {"pending", "done", "failed", "cancelled"};
  Task *t = luaio__checktask(L, 1);
  t_get_name(L);
  lua_pushfstring(L, "Task '%s': %s (%p)", lua_tostring(L, -1),
                  names[t->f.state], (void *)t);
  return 1;
}

/* aio.current_task() -> the running task, or nil */
static int l_current_task (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt == NULL || rt->current == NULL) return 0;
  luaio__push_task(L, rt, rt->current);
  return 1;
}

/* aio.all_tasks() -> list of the running loop's pending tasks */
static int l_all_tasks (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "all_tasks");
  Task *t;
  int i = 0;
  lua_createtable(L, (int)rt->ntasks, 0);
  for (t = rt->tasks; t != NULL; t = t->next) {
    luaio__push_task(L, rt, t);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

/* aio.create_task(fn, ...) -> Task (the loop's task factory applies) */
static int l_create_task (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "create_task");
  if (rt->has_factory) {
    int n = lua_gettop(L);
    luaio__push_R(L, rt);
    lua_getfield(L, -1, "factory");
    lua_replace(L, -2);
    lua_insert(L, 1);
    luaio__push_loop(L, rt);
    lua_insert(L, 2);                  /* factory, loop, fn, ... */
    lua_call(L, n + 1, 1);
    return 1;
  }
  return luaio__create_task(L, rt, 1, lua_gettop(L) - 1);
}

/* core.create_eager_task(fn, ...) -> Task started eagerly (no factory) */
static int l_create_eager_task (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "create_task");
  return create_task(L, rt, 1, lua_gettop(L) - 1, 1);
}

static const luaL_Reg task_methods[] = {
  {"cancel", t_cancel},
  {"cancelling", t_cancelling},
  {"uncancel", t_uncancel},
  {"get_name", t_get_name},
  {"set_name", t_set_name},
  {"get_coro", t_get_coro},
  {"get_stack", t_get_stack},
  {"set_result", t_set_result},
  {"set_exception", t_set_exception},
  {"_info", t_info},
  {"_where", t_where},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"current_task", l_current_task},
  {"all_tasks", l_all_tasks},
  {"create_task", l_create_task},
  {"create_eager_task", l_create_eager_task},
  {NULL, NULL}
};

void luaio__task_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_TASK)) {
    lua_newtable(L);
    luaio__future_methods(L);
    luaio__setfuncs(L, task_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -2, "methods");
    lua_pushlightuserdata(L, luaio__state(L));
    lua_pushcclosure(L, t_tostring, 1);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "Task");
    lua_setfield(L, -2, "__name");
    /* no __gc: a failed task reports through a sentinel (future.c) */
  }
  luaio__state(L)->run_task = run_task;
  if (luaio__state(L)->ref_taskmt == 0) {
    lua_pushvalue(L, -1);
    luaio__state(L)->ref_taskmt = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  luaio__state(L)->mt_task = lua_topointer(L, -1);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "TaskMethods");
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
