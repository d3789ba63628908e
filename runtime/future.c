/*
** future.c -- Future: asyncio's state machine (pending -> done | failed |
** cancelled), results (several, nils kept), done callbacks, await.
**
** Awaiting parks the task on the future's C wait list: no callback,
** table or closure per wait.  Waiters and done callbacks are woken in
** the order they registered (a sequence number merges the two lists), as
** asyncio's single callback list does.  Callbacks are scheduled, never run
** inside set_result.  Cancelling a task that awaits a future cancels the
** future (asyncio's rule), which wakes the task with CancelledError.
*/
#include <string.h>

#include "internal.h"

static const char *const state_names[] = {
  "pending", "done", "failed", "cancelled"
};


/* ---------------------------------------------------------- access */

/* (As luaL_testudata: a value with a block and the metatable.) */
Future *luaio__tofuture (lua_State *L, GState *G, int idx) {
  void *p = lua_touserdata(L, idx);
  const void *mt;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == G->mt_future || mt == G->mt_task ? (Future *)p : NULL;
}

/* Only from core functions: G is their upvalue 1. */
Future *luaio__checkfuture (lua_State *L, int idx) {
  Future *f = luaio__tofuture(L, luaio__G(L), idx);
  if (f == NULL) {                     /* (each class has its own closures) */
    luaio__check_self(L, idx, LUAIO_FUTURE);
    luaio__check_self(L, idx, LUAIO_TASK);
    luaL_typeerror(L, idx, "Future or Task");
  }
  return f;
}

/* Binds f to rt on first use; use from another loop is an error. */
void luaio__future_bind (lua_State *L, luaio_Runtime *rt, Future *f,
                         const char *fname) {
  if (f->loop_id == 0) f->loop_id = rt->id;
  else if (f->loop_id != rt->id)
    luaL_error(L, "%s: the %s belongs to another event loop", fname,
               f->is_task ? "task" : "future");
}

/* The runtime f is bound to (or the running one, then bound); may be NULL. */
static luaio_Runtime *rt_of (lua_State *L, Future *f) {
  GState *G = luaio__state(L);   /* may be called from the drain */
  if (f->loop_id != 0) return luaio__find_rt(G, f->loop_id);
  if (G->rt != NULL) f->loop_id = G->rt->id;
  return G->rt;
}


/* ---------------------------------------------------------- results */

/* Stores the n values on top of L as the result of the future at idx. */
static void store_results (lua_State *L, Future *f, int idx, int n) {
  f->hooked = 0;
  if (n == 1) f->nres = 1;
  else if (n == 0) { f->nres = 0; lua_pushnil(L); }
  else {
    int i;
    lua_createtable(L, n, 1);
    lua_insert(L, -n - 1);
    for (i = n; i >= 1; i--) lua_rawseti(L, -i - 1, i);
    lua_pushinteger(L, n);
    lua_setfield(L, -2, "n");
    f->nres = -1;
  }
  lua_setiuservalue(L, idx, FUT_UV_RESULT);
}

/* Raises the CancelledError of a cancelled future at idx. */
static int raise_cancelled (lua_State *L, int idx) {
  lua_getiuservalue(L, idx, FUT_UV_RESULT);
  return lua_error(L);
}

/* The running task cur is about to raise the error at err: its traceback
   will end with the text on top (popped). */
static void set_cause (lua_State *L, luaio_Runtime *rt, Task *cur, int err) {
  luaio__push_task(L, rt, cur);
  luaio__extras(L, cur, -1);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "cause");
  lua_pushvalue(L, err);
  lua_setfield(L, -2, "cause_for");
  lua_pop(L, 3);
}

/*
** The running task is about to re-raise the error of the failed task at
** idx (error value on top): remember where that task failed, so that the
** running task's traceback shows the chain of awaits (task.c, task_msgh).
*/
static void record_cause (lua_State *L, int idx, Task *failed) {
  luaio_Runtime *rt = luaio__state(L)->rt;
  Task *cur = rt != NULL ? rt->current : NULL;
  int err = lua_gettop(L);
  if (cur == NULL || cur == failed || !failed->has_extras) return;
  if (!lua_checkstack(L, 6)) return;
  luaio__extras(L, failed, idx);
  if (lua_getfield(L, -1, "traceback") != LUA_TSTRING) {
    lua_settop(L, err);
    return;
  }
  if (lua_getfield(L, -2, "name") == LUA_TSTRING)
    lua_pushfstring(L, "\n(the error came from task '%s', awaited here; it "
                    "was raised at:)\n", lua_tostring(L, -1));
  else
    lua_pushfstring(L, "\n(the error came from task 'Task-%I', awaited here; "
                    "it was raised at:)\n", failed->id);
  lua_pushvalue(L, -3);
  lua_concat(L, 2);                    /* the cause text */
  set_cause(L, rt, cur, err);
  lua_settop(L, err);
}

/*
** Pushes the results of the done future at idx, or raises its error
** (marking it retrieved) or its CancelledError.
*/
int luaio__future_results (lua_State *L, int idx) {
  Future *f = (Future *)lua_touserdata(L, idx);
  switch (f->state) {
    case FUT_DONE:
      if (f->nres == 0) return 0;
      lua_getiuservalue(L, idx, FUT_UV_RESULT);
      if (f->nres == 1) return 1;
      {
        int n, i;
        lua_getfield(L, -1, "n");
        n = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        luaL_checkstack(L, n, "too many results");
        for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
        lua_remove(L, -n - 1);
        return n;
      }
    case FUT_FAILED:
      f->retrieved = 1;
      lua_getiuservalue(L, idx, FUT_UV_RESULT);
      if (f->is_task) record_cause(L, idx, (Task *)f);
      return lua_error(L);
    case FUT_CANCELLED:
      return raise_cancelled(L, idx);
    default:
      return luaio__error(L, "InvalidStateError", "Result is not ready.");
  }
}


/* ---------------------------------------------------------- completion */

/*
** The callbacks of a future (user value 2, f->cbkind says which): none;
** the callback itself when there is one (its sequence in f->cbseq: no
** table for the common case of a gather or TaskGroup watching a task);
** else a list of fn, seq pairs.  Callbacks are functions or gather
** states, never tables.  A pending task's lone gather state may be named
** by its pointer alone (CB_GATHER, user value 2 nil).
*/

/* Pushes the lone callback of f (at idx): CB_ONE or CB_GATHER. */
static void push_lone (lua_State *L, Future *f, int idx) {
  if (f->cbkind == CB_GATHER) luaio__gather_push(L, f->cbgather);
  else lua_getiuservalue(L, idx, FUT_UV_CALLBACKS);
}

/* Appends fn (at fnidx) with sequence seq to the callbacks of f (at
   idx); gather is fn's Gather if fn is a gather state, else NULL. */
static int add_callback (lua_State *L, Future *f, int idx, int fnidx,
                         void *gather, unsigned seq) {
  int n;
  if (f->cbkind == CB_NONE) {          /* the first: kept as it is */
    if (gather != NULL && f->is_task && f->state == FUT_PENDING &&
        luaio__gather_hold(L, gather, (Task *)f, fnidx))
      f->cbkind = CB_GATHER;
    else {
      lua_pushvalue(L, fnidx);
      lua_setiuservalue(L, idx, FUT_UV_CALLBACKS);
      f->cbkind = CB_ONE;
    }
    f->cbseq = seq;
    f->cbgather = gather;
    return 1;
  }
  if (f->cbkind == CB_LIST) lua_getiuservalue(L, idx, FUT_UV_CALLBACKS);
  else {                               /* the second: make the list */
    push_lone(L, f, idx);
    if (f->cbkind == CB_GATHER) luaio__gather_release(L, f->cbgather);
    lua_createtable(L, 4, 0);
    lua_rotate(L, -2, 1);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)f->cbseq);
    lua_rawseti(L, -2, 2);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, idx, FUT_UV_CALLBACKS);
    f->cbkind = CB_LIST;
    f->cbgather = NULL;
  }
  n = (int)lua_rawlen(L, -1);
  lua_pushvalue(L, fnidx);
  lua_rawseti(L, -2, n + 1);
  lua_pushinteger(L, (lua_Integer)seq);
  lua_rawseti(L, -2, n + 2);
  lua_pop(L, 1);
  return n / 2 + 1;                    /* the callback's number */
}

/* Drops the callbacks of the future at idx. */
static void clear_callbacks (lua_State *L, Future *f, int idx) {
  if (f->cbkind == CB_GATHER) luaio__gather_release(L, f->cbgather);
  else {
    lua_pushnil(L);
    lua_setiuservalue(L, idx, FUT_UV_CALLBACKS);
  }
  f->cbkind = CB_NONE;
  f->cbgather = NULL;
}

static void run_callback (lua_State *L, luaio_Runtime *rt, void *p, int i);

static void queue_callback (lua_State *L, luaio_Runtime *rt,
                            Future *f, int idx, int i) {
  if (f->anchor == 0) {
    lua_pushvalue(L, idx);
    f->anchor = luaio__anchor(L, rt);
  }
  f->ncb++;
  luaio__schedule(rt, run_callback, f, i);
}

/*
** Adds the callback at fnidx to future f (at idx): a function, or a
** gather state (gather.c, its Gather in gather), which is called in C.
** Done already: the callback is scheduled at once.
*/
void luaio__future_add_callback (lua_State *L, Future *f, int idx,
                                 int fnidx, void *gather, const char *fname) {
  luaio_Runtime *rt;
  idx = lua_absindex(L, idx);
  if (f->state == FUT_PENDING) {
    add_callback(L, f, idx, fnidx, gather, ++f->seq);
    return;
  }
  rt = rt_of(L, f);
  if (rt == NULL) luaL_error(L, "%s: no event loop to run it", fname);
  queue_callback(L, rt, f, idx, add_callback(L, f, idx, fnidx, gather, 0));
}

/* The one callback is a gather's that counts f at once. */
static int counted_now (lua_State *L, Future *f, int idx) {
  if (f->cbgather == NULL || !luaio__gather_count(f->cbgather, f))
    return 0;
  clear_callbacks(L, f, idx);
  return 1;
}

/*
** Future f (at idx, absolute) has just been settled: wake its waiters and
** schedule its callbacks, in registration order.
*/
static void complete (lua_State *L, luaio_Runtime *rt, Future *f, int idx) {
  int i = 1, ncb = 0, list = f->cbkind == CB_LIST;
  if (list) {                          /* (on top while it runs) */
    lua_getiuservalue(L, idx, FUT_UV_CALLBACKS);
    ncb = (int)lua_rawlen(L, -1) / 2;
  }
  else if (f->cbkind != CB_NONE) ncb = counted_now(L, f, idx) ? 0 : 1;
  if (rt == NULL && (ncb > 0 || f->waiters.head != NULL))
    rt = rt_of(L, f);
  if (rt == NULL) {
    if (list) lua_pop(L, 1);
    return;
  }
  while (f->waiters.head != NULL || i <= ncb) {
    Task *w = f->waiters.head;
    unsigned seq = 0;
    if (i <= ncb && !list) seq = f->cbseq;
    else if (i <= ncb) {
      lua_rawgeti(L, -1, 2 * i);
      seq = (unsigned)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    if (i <= ncb && (w == NULL || seq < w->wseq)) {
      queue_callback(L, rt, f, idx, i);
      i++;
    }
    else luaio__wake(rt, w);
  }
  if (list) lua_pop(L, 1);
  if (!f->is_task && f->ncb == 0 && f->anchor != 0) {
    luaio__unanchor(L, rt, f->anchor);
    f->anchor = 0;
  }
}

void luaio__future_complete (lua_State *L, luaio_Runtime *rt, int idx) {
  complete(L, rt, (Future *)lua_touserdata(L, idx), lua_absindex(L, idx));
}

/* Runs done callback number i of f (anchored) from the ready queue. */
static void run_callback (lua_State *L, luaio_Runtime *rt, void *p, int i) {
  Future *f = (Future *)p;
  int fidx;
  luaio__push_anchor(L, rt, f->anchor);
  fidx = lua_gettop(L);
  if (f->cbkind == CB_LIST) {
    lua_getiuservalue(L, fidx, FUT_UV_CALLBACKS);
    lua_rawgeti(L, -1, 2 * i - 1);
    lua_pushboolean(L, 0);             /* let the function go */
    lua_rawseti(L, -3, 2 * i - 1);
    lua_remove(L, -2);
  }
  else push_lone(L, f, fidx);          /* the one callback (i == 1) */
  if (--f->ncb == 0) {
    clear_callbacks(L, f, fidx);
    if (!f->is_task || ((Task *)f)->tstate == T_DONE) {
      luaio__unanchor(L, rt, f->anchor);
      f->anchor = 0;
    }
  }
  lua_pushvalue(L, fidx);
  if (lua_type(L, -2) == LUA_TUSERDATA)   /* a gather's */
    luaio__gather_done(L, rt, fidx + 1, fidx + 2);
  else
    luaio__call_reporting(L, rt, 1, f->is_task ? "task" : "future", fidx);
  lua_settop(L, fidx - 1);
}

/*
** Marks a failed future for the never-retrieved report.  A plain Future
** reports from its own finaliser.  A Task has none (a finaliser on every
** task made each one survive a GC cycle more and cost W1wave 13 %): a
** failed task gets a sentinel, a userdata with a finaliser that only the
** task refers to (from its extras), so it is collected with the task and
** reports for it.
*/
static void track_failure (lua_State *L, luaio_Runtime *rt, Future *f,
                           int idx) {
  f->retrieved = 0;
  if (rt == NULL || f->tracked) return;
  f->tracked = 1;
  if (f->is_task) {
    luaio__extras(L, (Task *)f, idx);
    lua_newuserdatauv(L, 0, 1);
    lua_pushvalue(L, idx);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, LUAIO_SENTINEL);
    lua_setfield(L, -2, "sentinel");
    lua_pop(L, 1);
  }
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "unretrieved");
  lua_pushvalue(L, idx);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

/* Settles future f (at idx, absolute) with state st; value(s) on top. */
void luaio__settle (lua_State *L, luaio_Runtime *rt, Future *f, int idx,
                    int st, int n) {
  if (rt == NULL) rt = rt_of(L, f);
  if (st == FUT_DONE) store_results(L, f, idx, n);
  else lua_setiuservalue(L, idx, FUT_UV_RESULT);
  f->hooked = 0;
  f->state = (unsigned char)st;
  if (st == FUT_FAILED) track_failure(L, rt, f, idx);
  complete(L, rt, f, idx);
}

/* Settles the future at idx with state st; value(s) on top. */
void luaio__future_settle (lua_State *L, luaio_Runtime *rt, int idx, int st,
                           int n) {
  luaio__settle(L, rt, (Future *)lua_touserdata(L, idx), lua_absindex(L, idx),
                st, n);
}

int luaio__future_cancel (lua_State *L, int idx, int msgidx) {
  Future *f = (Future *)lua_touserdata(L, idx);
  if (f->state != FUT_PENDING) return 0;
  idx = lua_absindex(L, idx);
  if (f->hooked) {                     /* hook(fut, msg) decides */
    int r;
    lua_getiuservalue(L, idx, FUT_UV_RESULT);
    lua_pushvalue(L, idx);
    if (msgidx != 0) lua_pushvalue(L, msgidx);
    else lua_pushnil(L);
    lua_call(L, 2, 1);
    r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
  }
  if (msgidx != 0) luaio__push_cancelled(L, msgidx);
  else {
    lua_pushnil(L);
    luaio__push_cancelled(L, -1);
    lua_remove(L, -2);
  }
  luaio__future_settle(L, NULL, idx, FUT_CANCELLED, 1);
  return 1;
}


/* ---------------------------------------------------------- methods */

static Future *checkplain (lua_State *L, int idx) {
  return (Future *)luaio__checkclass(L, idx, LUAIO_FUTURE);
}

/* Pushes a new pending Future, bound to rt if not NULL. */
Future *luaio__new_future (lua_State *L, luaio_Runtime *rt) {
  Future *f = (Future *)lua_newuserdatauv(L, sizeof(*f), FUT_NUV);
  memset(f, 0, sizeof(*f));
  f->retrieved = 1;
  if (rt != NULL) f->loop_id = rt->id;
  luaL_setmetatable(L, LUAIO_FUTURE);
  return f;
}

/* aio.Future() */
static int l_future (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  /* Made in a running loop, it belongs to it (asyncio); made with none,
     it binds to the first loop that uses it.  The CLI's main task counts
     as "no loop", so that scripts written for lua5.4, which make futures
     before calling aio.run, run unchanged under the CLI. */
  if (rt != NULL && rt->cli && rt->current == rt->main) rt = NULL;
  luaio__new_future(L, rt);
  return 1;
}

/* Settling from a running loop binds the future to it (or must match). */
static void bind_running (lua_State *L, Future *f, const char *fname) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt != NULL && !(rt->cli && rt->current == rt->main && f->loop_id == 0))
    luaio__future_bind(L, rt, f, fname);
}

static int f_set_result (lua_State *L) {
  Future *f = checkplain(L, 1);
  bind_running(L, f, "set_result");
  if (f->state != FUT_PENDING)
    return luaio__error(L, "InvalidStateError", "invalid state: %s",
                        state_names[f->state]);
  luaio__future_settle(L, NULL, 1, FUT_DONE, lua_gettop(L) - 1);
  return 0;
}

static int f_set_exception (lua_State *L) {
  Future *f = checkplain(L, 1);
  luaL_checkany(L, 2);
  if (lua_isnil(L, 2)) return luaL_typeerror(L, 2, "error value");
  bind_running(L, f, "set_exception");
  if (f->state != FUT_PENDING)
    return luaio__error(L, "InvalidStateError", "invalid state: %s",
                        state_names[f->state]);
  lua_settop(L, 2);
  if (lua_istable(L, 2) && lua_getfield(L, 2, "__super") != LUA_TNIL &&
      lua_getfield(L, 2, "__index") == LUA_TTABLE &&
      lua_rawequal(L, -1, 2)) {         /* a class: make an instance */
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);
    lua_replace(L, 2);
  }
  lua_settop(L, 2);
  luaio__future_settle(L, NULL, 1, FUT_FAILED, 1);
  return 0;
}

static int f_result (lua_State *L) {
  luaio__checkfuture(L, 1);
  return luaio__future_results(L, 1);
}

static int f_exception (lua_State *L) {
  Future *f = luaio__checkfuture(L, 1);
  switch (f->state) {
    case FUT_PENDING:
      return luaio__error(L, "InvalidStateError", "Exception is not set.");
    case FUT_CANCELLED:
      return raise_cancelled(L, 1);
    case FUT_FAILED:
      f->retrieved = 1;
      lua_getiuservalue(L, 1, FUT_UV_RESULT);
      return 1;
    default:
      lua_pushnil(L);
      return 1;
  }
}

static int f_done (lua_State *L) {
  lua_pushboolean(L, luaio__checkfuture(L, 1)->state != FUT_PENDING);
  return 1;
}

static int f_cancelled (lua_State *L) {
  lua_pushboolean(L, luaio__checkfuture(L, 1)->state == FUT_CANCELLED);
  return 1;
}

static int f_cancel (lua_State *L) {
  checkplain(L, 1);
  lua_pushboolean(L, luaio__future_cancel(L, 1, lua_isnoneornil(L, 2) ? 0 : 2));
  return 1;
}

static int f_add_done_callback (lua_State *L) {
  Future *f = luaio__checkfuture(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaio__future_add_callback(L, f, 1, 2, NULL, "add_done_callback");
  return 0;
}

/* remove_done_callback(fn) -> how many were removed (0 once done). */
static int f_remove_done_callback (lua_State *L) {
  Future *f = luaio__checkfuture(L, 1);
  int n, i, j = 1, removed = 0;
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (f->state != FUT_PENDING || f->cbkind == CB_NONE) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if (f->cbkind != CB_LIST) {          /* the one callback */
    push_lone(L, f, 1);
    if (lua_rawequal(L, 2, 3)) {
      clear_callbacks(L, f, 1);
      removed = 1;
    }
    lua_pushinteger(L, removed);
    return 1;
  }
  lua_getiuservalue(L, 1, FUT_UV_CALLBACKS);
  n = (int)lua_rawlen(L, 3);
  for (i = 1; i <= n; i += 2) {
    lua_rawgeti(L, 3, i);
    if (lua_rawequal(L, -1, 2)) { removed++; lua_pop(L, 1); continue; }
    lua_rawseti(L, 3, j);
    lua_rawgeti(L, 3, i + 1);
    lua_rawseti(L, 3, j + 1);
    j += 2;
  }
  for (; j <= n; j++) { lua_pushnil(L); lua_rawseti(L, 3, j); }
  lua_pushinteger(L, removed);
  return 1;
}

/*
** Abort hook of a task awaiting a future: cancel what it awaits (asyncio's
** rule).  A pending task is anchored, and so is a future with waiters.
*/
static int await_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Future *f = (Future *)t->wobj;
  int ok, top = lua_gettop(L), msg = 0;
  if (f->state != FUT_PENDING) return 0;
  if (t->has_extras) {
    luaio__push_task(L, rt, t);
    luaio__extras(L, t, lua_gettop(L));
    lua_getfield(L, -1, "cancel_message");
    if (!lua_isnil(L, -1)) msg = lua_gettop(L);
  }
  luaio__push_anchor(L, rt, f->anchor);
  if (f->is_task) ok = luaio__task_cancel(L, (Task *)f, msg);
  else ok = luaio__future_cancel(L, lua_gettop(L), msg);
  lua_settop(L, top);
  return ok;          /* an awaited task stays awaited: its end wakes t */
}

/* ctx: the GState (no upvalue look-up). */
static int await_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed_G(L, (GState *)ctx);
  return luaio__future_results(L, 1);
}

/* fut:await() / task:await() -> results, or raises the error */
static int f_await (lua_State *L) {
  GState *G = luaio__G(L);
  Future *f = luaio__tofuture(L, G, 1);
  Task *t;
  if (f == NULL) f = luaio__checkfuture(L, 1);   /* (raises) */
  lua_settop(L, 1);
  if (f->state != FUT_PENDING) return luaio__future_results(L, 1);
  t = luaio__check_suspend_G(L, G, "await");
  if ((Future *)t == f)
    return luaL_error(L, "await: a task cannot await itself");
  luaio__future_bind(L, t->rt, f, "await");
  if (f->anchor == 0) {                /* kept alive while awaited */
    lua_pushvalue(L, 1);
    f->anchor = luaio__anchor(L, t->rt);
  }
  t->wseq = ++f->seq;
  return luaio__park(L, t, &f->waiters, await_abort,
                     f->is_task ? "task" : "future", f, (lua_KContext)G,
                     await_k);
}

/* loop:create_future() -> a Future bound to this loop */
static int loop_create_future (lua_State *L) {
  luaio__new_future(L, luaio__checkloop(L, 1));
  return 1;
}

static int f_get_loop (lua_State *L) {
  Future *f = luaio__checkfuture(L, 1);
  luaio_Runtime *rt = rt_of(L, f);
  if (rt == NULL) return 0;
  luaio__push_loop(L, rt);
  return 1;
}

static int f_tostring (lua_State *L) {
  Future *f = checkplain(L, 1);
  lua_pushfstring(L, "Future: %s (%p)", state_names[f->state], (void *)f);
  return 1;
}

/* Pushes the report of f (at idx), whose error was never retrieved. */
static void push_unretrieved (lua_State *L, Future *f, int idx) {
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, f->is_task ? "Task exception was never retrieved"
                               : "Future exception was never retrieved");
  lua_setfield(L, -2, "message");
  lua_getiuservalue(L, idx, FUT_UV_RESULT);
  lua_setfield(L, -2, "exception");
  if (f->is_task && ((Task *)f)->has_extras) {
    lua_getiuservalue(L, idx, TASK_UV_EXTRAS);
    lua_getfield(L, -1, "traceback");
    lua_setfield(L, -3, "traceback");
    lua_getfield(L, -1, "name");
    lua_setfield(L, -3, "task_name");
    lua_pop(L, 1);
  }
}

/* Never-retrieved errors of collected futures: queue a report. */
int luaio__future_gc (lua_State *L) {
  Future *f = (Future *)lua_touserdata(L, 1);
  luaio_Runtime *rt;
  if (f->state != FUT_FAILED || f->retrieved) return 0;
  rt = luaio__find_rt(luaio__state(L), f->loop_id);
  f->retrieved = 1;
  if (rt == NULL || rt->closed) return 0;
  push_unretrieved(L, f, 1);
  luaio__queue_report(L, rt);
  return 0;
}

/*
** Shutdown: the never-retrieved errors.  What is garbage is collected
** (its finaliser queues a report), then what is still referenced is
** reported.  No failure ever tracked: no collection needed (start-up and
** exit of small scripts).
*/
void luaio__report_unretrieved (lua_State *L, luaio_Runtime *rt) {
  int top = lua_gettop(L);
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
      push_unretrieved(L, f, -1);
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, f->is_task ? "task" : "future");
      luaio__report(L, rt);
    }
  }
  lua_settop(L, top);
}

/* The finaliser of a failed task's sentinel: the task's report. */
static int sentinel_gc (lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  lua_replace(L, 1);
  return luaio__future_gc(L);
}

/*
** core.future_on_cancel(fut, hook): cancel() of the pending future calls
** hook(fut, msg) and returns its result instead of cancelling it (what
** gather needs: cancelling it cancels the children).
*/
static int l_future_on_cancel (lua_State *L) {
  Future *f = checkplain(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (f->state != FUT_PENDING)
    return luaL_error(L, "future_on_cancel: the future is done");
  lua_settop(L, 2);
  lua_setiuservalue(L, 1, FUT_UV_RESULT);
  f->hooked = 1;
  return 0;
}

/*
** core.note_cause(task, err): the running task is about to re-raise err,
** which came from the failed task (gather re-raises a child's error).
*/
static int l_note_cause (lua_State *L) {
  Task *t = luaio__checktask(L, 1);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  record_cause(L, 1, t);
  return 0;
}

/*
** core.note_where(err, text): the running task is about to raise err from
** where its stack says little (a <close> handler run after the stack
** unwound): its traceback ends with text, which says where it was.
*/
static int l_note_where (lua_State *L) {
  luaio_Runtime *rt = luaio__state(L)->rt;
  luaL_checkany(L, 1);
  luaL_checktype(L, 2, LUA_TSTRING);
  lua_settop(L, 2);
  if (rt != NULL && rt->current != NULL) set_cause(L, rt, rt->current, 1);
  return 0;
}

static const luaL_Reg shared_methods[] = {
  {"result", f_result},
  {"exception", f_exception},
  {"done", f_done},
  {"cancelled", f_cancelled},
  {"add_done_callback", f_add_done_callback},
  {"remove_done_callback", f_remove_done_callback},
  {"await", f_await},
  {"get_loop", f_get_loop},
  {NULL, NULL}
};

static const luaL_Reg future_methods[] = {
  {"set_result", f_set_result},
  {"set_exception", f_set_exception},
  {"cancel", f_cancel},
  {NULL, NULL}
};

/* Adds the methods Futures and Tasks share to the table on top. */
void luaio__future_methods (lua_State *L) {
  luaio__setfuncs(L, shared_methods);
}

void luaio__future_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_FUTURE)) {
    lua_newtable(L);
    luaio__future_methods(L);
    luaio__setfuncs(L, future_methods);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, f_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "Future");
    lua_setfield(L, -2, "__name");
    lua_pushlightuserdata(L, luaio__state(L));
    lua_pushcclosure(L, luaio__future_gc, 1);
    lua_setfield(L, -2, "__gc");
  }
  luaio__state(L)->mt_future = lua_topointer(L, -1);
  if (luaL_newmetatable(L, LUAIO_SENTINEL)) {
    lua_pushlightuserdata(L, luaio__state(L));
    lua_pushcclosure(L, sentinel_gc, 1);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "FutureMethods");
  lua_pop(L, 1);
  lua_pushlightuserdata(L, luaio__state(L));
  lua_pushcclosure(L, l_future, 1);
  lua_setfield(L, -2, "Future");
  lua_pushlightuserdata(L, luaio__state(L));
  lua_pushcclosure(L, l_future_on_cancel, 1);
  lua_setfield(L, -2, "future_on_cancel");
  lua_pushlightuserdata(L, luaio__state(L));
  lua_pushcclosure(L, l_note_cause, 1);
  lua_setfield(L, -2, "note_cause");
  lua_pushlightuserdata(L, luaio__state(L));
  lua_pushcclosure(L, l_note_where, 1);
  lua_setfield(L, -2, "note_where");
  luaL_getmetatable(L, LUAIO_LOOP);
  lua_getfield(L, -1, "methods");
  lua_pushcfunction(L, loop_create_future);
  lua_setfield(L, -2, "create_future");
  lua_pop(L, 2);
}
