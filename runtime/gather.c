/*
** gather.c -- the bookkeeping of aio.gather in C (combinators.lua keeps
** the argument checks and the await).
**
** A gather is a state userdata registered as a done callback on every
** child: the callback list holds it where a function would be, so it runs
** in the same order (and at the same loop pass) as asyncio's
** _done_callback, but without a Lua call per child.  When the last child
** is done the state builds the result list and settles the outer future.
**
**   core.gather_start(aws, n, return_exceptions, ensure) -> outer, state
**     aws[1..n] are the awaitables; Tasks and Futures are taken as they
**     are, anything else goes through ensure(x, "gather", 1, 4) once
**     (the same value twice gives the same task).
**   core.gather_failed(state) -> the child whose error outer raised, or nil
*/
#include "internal.h"

#define LUAIO_GATHER "luaio.Gather"

/* User values of the state. */
#define G_UV_CHILDREN 1        /* aws[i]'s future at i */
#define G_UV_OUTER 2
#define G_UV_FAILED 3
#define G_UV_CANCEL_MSG 4      /* the message gather was cancelled with */
#define G_NUV 4

typedef struct Gather {
  Future **child;              /* aws[i]'s future at i - 1 (the userdata
                                  holds the array after the struct) */
  luaio_Runtime *rt;           /* the loop it was started in */
  int anchor;                  /* while children name it by pointer */
  int nheld;                   /* children that name it by pointer */
  int n;                       /* slots */
  int nfuts;                   /* callbacks registered */
  int nfinished;               /* callbacks run */
  unsigned char return_exceptions;
  unsigned char cancel_requested;
  unsigned char started;       /* every child has its callback */
} Gather;


/* ---------------------------------------------------------- completion */

/* Pushes the value slot i of the result list gets from child f (at idx). */
static void push_outcome (lua_State *L, Future *f, int idx) {
  if (f->state == FUT_DONE && f->nres == 0) {
    lua_pushnil(L);
    return;
  }
  if (f->state == FUT_FAILED) f->retrieved = 1;
  lua_getiuservalue(L, idx, FUT_UV_RESULT);
  if (f->state == FUT_DONE && f->nres < 0) {   /* several: the first */
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
}

/* Every child is done: settle outer (at oidx) with the result list. */
static void finish (lua_State *L, luaio_Runtime *rt, Gather *g, int gidx,
                    int oidx) {
  int i, cidx;
  if (g->cancel_requested) {            /* with the cancel's message */
    lua_getiuservalue(L, gidx, G_UV_CANCEL_MSG);
    luaio__push_cancelled(L, -1);
    lua_remove(L, -2);
    luaio__future_settle(L, rt, oidx, FUT_FAILED, 1);
    return;
  }
  lua_createtable(L, g->n, 1);
  lua_getiuservalue(L, gidx, G_UV_CHILDREN);
  cidx = lua_gettop(L) + 1;            /* where each child goes */
  for (i = 1; i <= g->n; i++) {
    lua_rawgeti(L, cidx - 1, i);
    push_outcome(L, g->child[i - 1], cidx);
    lua_rawseti(L, cidx - 2, i);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_pushinteger(L, g->n);
  lua_setfield(L, -2, "n");
  luaio__future_settle(L, rt, oidx, FUT_DONE, 1);
}

/* Child at fidx is done: the callback of the state at gidx. */
void luaio__gather_done (lua_State *L, luaio_Runtime *rt, int gidx, int fidx) {
  Gather *g = (Gather *)lua_touserdata(L, gidx);
  Future *f = (Future *)lua_touserdata(L, fidx);
  Future *outer;
  int oidx, top = lua_gettop(L);
  g->nfinished++;
  lua_getiuservalue(L, gidx, G_UV_OUTER);
  oidx = lua_gettop(L);
  outer = (Future *)lua_touserdata(L, oidx);
  if (!g->started || outer->state != FUT_PENDING) {
    /* outer has its outcome already (or gather_start raised on a bad
       value and nobody waits): the child's error counts as seen */
    if (f->state == FUT_FAILED) f->retrieved = 1;
  }
  else if (!g->return_exceptions && f->state == FUT_CANCELLED) {
    lua_getiuservalue(L, fidx, FUT_UV_RESULT);  /* its CancelledError */
    luaio__future_settle(L, rt, oidx, FUT_FAILED, 1);
  }
  else if (!g->return_exceptions && f->state == FUT_FAILED &&
           lua_getiuservalue(L, fidx, FUT_UV_RESULT) != LUA_TNIL) {
    f->retrieved = 1;
    lua_pushvalue(L, fidx);
    lua_setiuservalue(L, gidx, G_UV_FAILED);
    luaio__future_settle(L, rt, oidx, FUT_FAILED, 1);
  }
  else if (g->nfinished == g->nfuts) finish(L, rt, g, gidx, oidx);
  lua_settop(L, top);
}


/*
** Child f is done, with the state of gather as its only callback:
** when that callback would do no more than count it (f has results, and
** other children are still out), it is counted now and 1 is returned, so
** no ready-queue entry is spent on it; else 0 (the callback runs).
*/
int luaio__gather_count (void *gather, Future *f) {
  Gather *g = (Gather *)gather;
  if (f->state != FUT_DONE || !g->started || g->nfinished + 1 >= g->nfuts)
    return 0;
  g->nfinished++;
  return 1;
}


/*
** A pending child task t names the state (at idx) by its pointer alone
** (CB_GATHER: no user-value write and clear per child): while any child
** does, the state is anchored in its loop.  A pending task is itself
** kept alive until it ends, so this keeps the state no longer than the
** user value would.  0: t is not of the state's loop (it holds the
** state as its user value then).
*/
int luaio__gather_hold (lua_State *L, void *gather, Task *t, int idx) {
  Gather *g = (Gather *)gather;
  if (g->rt == NULL || t->rt != g->rt) return 0;
  if (g->nheld == 0) {
    lua_pushvalue(L, idx);
    g->anchor = luaio__anchor(L, g->rt);
  }
  g->nheld++;
  return 1;
}

/* A child no longer names the state by pointer.  Never raises. */
void luaio__gather_release (lua_State *L, void *gather) {
  Gather *g = (Gather *)gather;
  if (--g->nheld > 0) return;
  luaio__unanchor(L, g->rt, g->anchor);
  g->anchor = 0;
}

/* Pushes the state a child names by pointer. */
void luaio__gather_push (lua_State *L, void *gather) {
  Gather *g = (Gather *)gather;
  luaio__push_anchor(L, g->rt, g->anchor);
}


/* ---------------------------------------------------------- cancel */

/* Cancels future or task at idx (message at msgidx, 0: none). */
static int cancel_child (lua_State *L, GState *G, int idx, int msgidx) {
  Task *t = luaio__totask(L, G, idx);
  if (t != NULL) return luaio__task_cancel(L, t, msgidx);
  return luaio__future_cancel(L, idx, msgidx);
}

/*
** The cancel hook of outer, hook(outer, msg): cancelling the gather
** cancels each child once; it settles when they are done.
*/
static int gather_cancel (lua_State *L) {
  GState *G = luaio__G(L);
  Gather *g = (Gather *)lua_touserdata(L, lua_upvalueindex(2));
  int i, ret = 0, msg = lua_isnil(L, 2) ? 0 : 2;
  lua_settop(L, 2);
  lua_getiuservalue(L, lua_upvalueindex(2), G_UV_CHILDREN);   /* 3 */
  lua_newtable(L);                                            /* 4: seen */
  for (i = 1; i <= g->n; i++) {
    lua_rawgeti(L, 3, i);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 4) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_pushboolean(L, 1);
      lua_rawset(L, 4);
      if (cancel_child(L, G, lua_gettop(L), msg)) ret = 1;
    }
    else lua_pop(L, 1);
    lua_pop(L, 1);
  }
  if (ret) {
    g->cancel_requested = 1;
    if (msg) {                         /* for finish (return_exceptions) */
      lua_pushvalue(L, msg);
      lua_setiuservalue(L, lua_upvalueindex(2), G_UV_CANCEL_MSG);
    }
  }
  lua_pushboolean(L, ret);
  return 1;
}


/* ---------------------------------------------------------- start */

/* Will ensure make a task of the value at idx (a function, __await)? */
static int spawnable (lua_State *L, int idx) {
  int top = lua_gettop(L), ok = 0;
  if (lua_type(L, idx) == LUA_TFUNCTION) return 1;
  if (lua_getmetatable(L, idx) && lua_type(L, -1) == LUA_TTABLE) {
    lua_pushliteral(L, "__await");
    ok = lua_rawget(L, -2) != LUA_TNIL;
  }
  lua_settop(L, top);
  return ok;
}

/* ensure(x at vidx, "gather", 1, 4): pushes its task, or raises. */
static void call_ensure (lua_State *L, GState *G, int vidx) {
  lua_pushvalue(L, 4);
  lua_pushvalue(L, vidx);
  lua_pushliteral(L, "gather");
  lua_pushinteger(L, 1);
  lua_pushinteger(L, 4);
  lua_call(L, 4, 1);
  if (luaio__tofuture(L, G, -1) == NULL)
    luaL_error(L, "gather: ensure returned no future");
}

/* Pushes the task for aws[i] (value at vidx; seen table at 5). */
static void push_spawned (lua_State *L, GState *G, int vidx) {
  if (lua_isnil(L, vidx)) {            /* ensure raises */
    call_ensure(L, G, vidx);
    return;
  }
  if (lua_type(L, 5) == LUA_TNIL) {    /* made on demand */
    lua_newtable(L);
    lua_replace(L, 5);
  }
  lua_pushvalue(L, vidx);
  if (lua_rawget(L, 5) != LUA_TNIL) return;
  lua_pop(L, 1);
  call_ensure(L, G, vidx);
  lua_pushvalue(L, vidx);
  lua_pushvalue(L, -2);
  lua_rawset(L, 5);
}

static int l_gather_start (lua_State *L) {
  GState *G = luaio__G(L);
  int n = (int)luaL_checkinteger(L, 2), i, spawn = 0;
  Gather *g;
  Future *outer, *f;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  luaL_argcheck(L, n >= 1, 2, "at least one awaitable expected");
  lua_settop(L, 4);
  lua_pushnil(L);                      /* 5: seen */
  g = (Gather *)lua_newuserdatauv(L, sizeof(Gather) +        /* 6 */
                                  (size_t)n * sizeof(Future *), G_NUV);
  g->child = (Future **)(g + 1);
  g->rt = G->rt;
  g->anchor = g->nheld = 0;
  g->n = n;
  g->nfuts = g->nfinished = 0;
  g->return_exceptions = (unsigned char)lua_toboolean(L, 3);
  g->cancel_requested = g->started = 0;
  luaL_setmetatable(L, LUAIO_GATHER);
  outer = luaio__new_future(L, G->rt);  /* 7 */
  lua_pushvalue(L, 7);
  lua_setiuservalue(L, 6, G_UV_OUTER);
  lua_pushlightuserdata(L, G);
  lua_pushvalue(L, 6);
  lua_pushcclosure(L, gather_cancel, 2);
  lua_setiuservalue(L, 7, FUT_UV_RESULT);
  outer->hooked = 1;
  lua_createtable(L, n, 0);            /* 8: children */
  lua_pushvalue(L, 8);
  lua_setiuservalue(L, 6, G_UV_CHILDREN);
  /* futures get their callback at once; anything else is checked before
     a task is spawned (a bad value raises with none started) */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);              /* 9 */
    f = luaio__tofuture(L, G, 9);
    if (f == NULL) {
      if (spawnable(L, 9)) { spawn = 1; lua_settop(L, 8); continue; }
      push_spawned(L, G, 9);           /* ensure raises (or knows better) */
      f = (Future *)lua_touserdata(L, -1);
    }
    /* one callback per listing: a future listed twice counts twice */
    luaio__future_add_callback(L, f, -1, 6, g, "gather");
    g->nfuts++;
    g->child[i - 1] = f;
    lua_rawseti(L, 8, i);
    if (lua_gettop(L) != 8) lua_settop(L, 8);   /* (ensure's value) */
  }
  for (i = 1; spawn && i <= n; i++) {
    if (lua_rawgeti(L, 8, i) == LUA_TNIL) {
      lua_rawgeti(L, 1, i);            /* 10 */
      push_spawned(L, G, 10);
      f = (Future *)lua_touserdata(L, -1);
      luaio__future_add_callback(L, f, -1, 6, g, "gather");
      g->nfuts++;
      g->child[i - 1] = f;
      lua_rawseti(L, 8, i);
    }
    lua_settop(L, 8);
  }
  g->started = 1;
  lua_settop(L, 7);
  lua_pushvalue(L, 6);
  return 2;
}

static int l_gather_failed (lua_State *L) {
  luaL_checkudata(L, 1, LUAIO_GATHER);
  lua_getiuservalue(L, 1, G_UV_FAILED);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"gather_start", l_gather_start},
  {"gather_failed", l_gather_failed},
  {NULL, NULL}
};

void luaio__gather_open (lua_State *L) {
  luaL_newmetatable(L, LUAIO_GATHER);
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
