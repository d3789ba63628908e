/*
** waitlist.c -- waking the tasks of a wait list (a future's waiters, a
** stream's readers, a queue's getters ...: linked and unlinked by park
** and wake in sched.c), and core.WaitList, the park/wake primitive for
** Lua policies (Lock, Event, Condition, Semaphore, Barrier in
** lua/luaio/sync.lua).
**
**   wl:wait(fname) -> true                 woken by wake_one/wake_all
**                  -> false, woken         cancelled; woken tells whether
**                                          a wake-up had reached it first
** After false, the cancellation is still pending: the policy undoes its
** side (passes a wake-up on, gives a permit back: asyncio's rules) and
** then calls core.raise_cancel(), which raises the CancelledError.
** wl:wake_one() -> boolean, wl:wake_all() -> count, #wl -> parked count.
** Waiting allocates nothing: the task is linked on the list.
*/
#include "internal.h"

#define LUAIO_WAITLIST "luaio.WaitList"


/* ---------------------------------------------------------- lists */

/* Wakes the first task parked on wl, if any. */
void luaio__wake_first (WaitList *wl) {
  if (wl->head != NULL) luaio__wake(wl->head->rt, wl->head);
}

/* Wakes every task parked on wl; returns how many. */
int luaio__wake_all (WaitList *wl) {
  int n = 0;
  for (; wl->head != NULL; n++) luaio__wake(wl->head->rt, wl->head);
  return n;
}


/* ---------------------------------------------------------- core.WaitList */

typedef struct WL {
  WaitList wl;
  int n;
  unsigned loop_id;
} WL;

static WL *checkwl (lua_State *L) {
  return (WL *)luaio__checkudata(L, 1, luaio__G(L)->mt_waitlist, LUAIO_WAITLIST);
}

static int l_new (lua_State *L) {
  WL *w = (WL *)lua_newuserdatauv(L, sizeof(WL), 0);
  w->wl.head = w->wl.tail = NULL;
  w->n = 0;
  w->loop_id = 0;
  luaL_setmetatable(L, LUAIO_WAITLIST);
  return 1;
}

/* Abort hook: the core has already unlinked the task. */
static int wl_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  (void)L; (void)rt;
  ((WL *)t->wobj)->n--;
  return 0;
}

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  Task *t = luaio__resumed_task(L);
  (void)status; (void)ctx;
  if (t->must_cancel) {
    lua_pushboolean(L, 0);
    lua_pushboolean(L, !t->aborted);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_wait (lua_State *L) {
  WL *w = checkwl(L);
  const char *fname = luaL_optstring(L, 2, "wait");
  Task *t = luaio__check_suspend(L, fname);
  if (w->loop_id == 0) w->loop_id = t->rt->id;
  else if (w->loop_id != t->rt->id)
    return luaL_error(L, "%s: the object belongs to another event loop",
                      fname);
  w->n++;
  return luaio__park(L, t, &w->wl, wl_abort, fname, w, 0, wait_k);
}

static int l_wake_one (lua_State *L) {
  WL *w = checkwl(L);
  Task *t = w->wl.head;
  if (t == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  w->n--;
  luaio__wake(t->rt, t);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_wake_all (lua_State *L) {
  WL *w = checkwl(L);
  int n = 0;
  while (w->wl.head != NULL) {
    Task *t = w->wl.head;
    w->n--;
    luaio__wake(t->rt, t);
    n++;
  }
  lua_pushinteger(L, n);
  return 1;
}

static int l_len (lua_State *L) {
  lua_pushinteger(L, checkwl(L)->n);
  return 1;
}

/* core.raise_cancel(): raises the running task's pending cancellation. */
static int l_raise_cancel (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt != NULL && rt->current != NULL) luaio__raise_cancel(L, rt->current);
  return 0;
}

/* core.check_task(fname): raises the outside-a-task error if no task runs. */
static int l_check_task (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt == NULL || rt->current == NULL)
    return luaL_error(L, "%s: needs a running task (called outside a task)",
                      luaL_checkstring(L, 1));
  return 0;
}

static const luaL_Reg methods[] = {
  {"wait", l_wait},
  {"wake_one", l_wake_one},
  {"wake_all", l_wake_all},
  {"count", l_len},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"WaitList", l_new},
  {"raise_cancel", l_raise_cancel},
  {"check_task", l_check_task},
  {NULL, NULL}
};

void luaio__waitlist_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_WAITLIST)) {
    lua_newtable(L);
    luaio__setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushlightuserdata(L, luaio__state(L));
    lua_pushcclosure(L, l_len, 1);     /* G upvalue, as every core function */
    lua_setfield(L, -2, "__len");
  }
  luaio__state(L)->mt_waitlist = lua_topointer(L, -1);
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
