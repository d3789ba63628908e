/*
** coro.c -- coroutines inside tasks: luaio's coroutine.resume, wrap,
** yield and close.
**
** They behave exactly like Lua's for every yield that is not luaio's.  A
** luaio suspension inside a user coroutine yields the private sentinel;
** resume sees it, leaves it on the inner coroutine's stack (which marks
** that coroutine as waiting in luaio) and yields the sentinel itself, up
** to the scheduler.  When the scheduler resumes the task, each level's
** continuation resumes the level below, down to the suspended call, whose
** continuation raises a pending cancellation there.
**
** rt->running names the thread a suspension may start from: the task's
** coroutine, or a coroutine that luaio's resume is running from it (and
** only when that resume itself may yield).  Anything else -- a resume by
** C code or by a coroutine.resume saved before luaio loaded -- makes the
** suspension fail at the call with a clear error, never a hang.
*/
#include "internal.h"

enum { COS_RUN, COS_DEAD, COS_YIELD, COS_NORM, COS_LUAIO };

static const char *const statname[] = {
  "running", "dead", "suspended", "normal", "waiting"
};

static int auxstatus (lua_State *L, lua_State *co) {
  if (L == co) return COS_RUN;
  switch (lua_status(co)) {
    case LUA_YIELD:
      if (lua_gettop(co) > 0 && luaio__is_sentinel(co, -1)) return COS_LUAIO;
      return COS_YIELD;
    case LUA_OK: {
      lua_Debug ar;
      if (lua_getstack(co, 0, &ar)) return COS_NORM;
      if (lua_gettop(co) == 0) return COS_DEAD;
      if (lua_tocfunction(co, 1) == luaio__task_main) return COS_LUAIO;
      return COS_YIELD;                /* initial state */
    }
    default:
      return COS_DEAD;
  }
}

static lua_State *getco (lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co;
}

/*
** Resumes co with narg values from L.  Returns the number of values moved
** to L, -1 with an error message on L, or -2 when co suspended in luaio
** (the sentinel stays on co) and the caller must pass that on.
*/
static int forward (lua_State *L, lua_State *co, int narg) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  int set, status, nres;
  set = rt != NULL && rt->running == L && lua_isyieldable(L);
  if (set) rt->running = co;
  status = lua_resume(co, L, narg, &nres);
  if (set) rt->running = L;
  if (status == LUA_YIELD && nres == 1 && luaio__is_sentinel(co, -1))
    return -2;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int auxresume (lua_State *L, lua_State *co, int narg) {
  int st = auxstatus(L, co);
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  if (st == COS_LUAIO) {
    lua_pushliteral(L, "cannot resume a coroutine that is waiting in luaio "
                    "(a task's coroutine, or one suspended in an await)");
    return -1;
  }
  if (st != COS_YIELD) {
    lua_pushfstring(L, "cannot resume %s coroutine",
                    st == COS_DEAD ? "dead" : "non-suspended");
    return -1;
  }
  lua_xmove(L, co, narg);
  return forward(L, co, narg);
}


/* ---------------------------------------------------------- resume */

static int finish_resume (lua_State *L, int r) {
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

/* Continuation: the scheduler resumed us; resume the level below. */
static int resume_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, 1);
  int r;
  (void)status; (void)ctx;
  lua_settop(L, 1);
  lua_pop(co, 1);                      /* its sentinel */
  r = forward(L, co, 0);
  if (r == -2) {
    lua_pushlightuserdata(L, (void *)&luaio__sentinel);
    return lua_yieldk(L, 1, 0, resume_k);
  }
  return finish_resume(L, r);
}

static int co_resume (lua_State *L) {
  lua_State *co = getco(L);
  int r = auxresume(L, co, lua_gettop(L) - 1);
  if (r == -2) {
    lua_settop(L, 1);
    lua_pushlightuserdata(L, (void *)&luaio__sentinel);
    return lua_yieldk(L, 1, 0, resume_k);
  }
  return finish_resume(L, r);
}


/* ---------------------------------------------------------- wrap */

static int wrap_result (lua_State *L, lua_State *co, int r) {
  if (r < 0) {
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {   /* error in the coroutine */
      stat = lua_resetthread(co);
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int wrap_k (lua_State *L, int status, lua_KContext ctx) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int r, base = (int)ctx;
  (void)status;
  lua_settop(L, base);
  lua_pop(co, 1);                      /* its sentinel */
  r = forward(L, co, 0);
  if (r == -2) {
    lua_pushlightuserdata(L, (void *)&luaio__sentinel);
    return lua_yieldk(L, 1, ctx, wrap_k);
  }
  return wrap_result(L, co, r);
}

static int auxwrap (lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int r = auxresume(L, co, lua_gettop(L));
  if (r == -2) {
    int base = lua_gettop(L);
    lua_pushlightuserdata(L, (void *)&luaio__sentinel);
    return lua_yieldk(L, 1, (lua_KContext)base, wrap_k);
  }
  return wrap_result(L, co, r);
}

static int co_wrap (lua_State *L) {
  lua_State *NL;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));   /* G */
  NL = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, NL, 1);
  lua_pushcclosure(L, auxwrap, 2);
  return 1;
}


/* ---------------------------------------------------------- yield, close */

static int co_yield (lua_State *L) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt != NULL && rt->current != NULL && rt->current->co == L)
    return luaL_error(L, "coroutine.yield: cannot yield from a task body "
                      "outside a coroutine (use aio.sleep(0))");
  return lua_yield(L, lua_gettop(L));
}

static int co_close (lua_State *L) {
  lua_State *co = getco(L);
  int status = auxstatus(L, co);
  switch (status) {
    case COS_DEAD: case COS_YIELD:
      status = lua_resetthread(co);
      if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
      }
      lua_pushboolean(L, 0);
      lua_xmove(co, L, 1);
      return 2;
    case COS_LUAIO:
      return luaL_error(L, "cannot close a coroutine that is waiting in "
                        "luaio (cancel its task instead)");
    default:
      return luaL_error(L, "cannot close a %s coroutine", statname[status]);
  }
}

static int co_status (lua_State *L) {
  lua_State *co = getco(L);
  int st = auxstatus(L, co);
  lua_pushstring(L, statname[st == COS_LUAIO ? COS_YIELD : st]);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"resume", co_resume},
  {"wrap", co_wrap},
  {"yield", co_yield},
  {"close", co_close},
  {"status", co_status},
  {NULL, NULL}
};

void luaio__coro_open (lua_State *L) {
  lua_newtable(L);
  luaio__setfuncs(L, funcs);
  lua_setfield(L, -2, "coroutine");
}
