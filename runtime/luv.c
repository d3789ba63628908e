/*
** luv.c -- a runtime on luv's loop (aio.Runner{loop = uv}).
**
** luv keeps its loop in a userdata (metatable "uv_loop.meta", the
** module's field _loop) whose block is the uv_loop_t.  luaio borrows it:
** it never closes that loop nor luv's handles, and one runtime at a time
** uses it.  luv's finaliser of the userdata closes every handle on the
** loop as its own (reading their data as luv's): a runtime still open
** then -- a runner never closed when the state closes -- would crash it.
** A guard made with the runtime, so finalised before luv's loop (Lua
** finalises the newest objects first), takes luv's finaliser away in that
** case only: the loop is left to the process, as luaio leaves its own.
*/
#include "internal.h"

#define LUV_LOOP "uv_loop.meta"
#define LUV_GUARD "luaio.LuvGuard"

typedef struct LuvGuard {
  GState *G;
  unsigned id;             /* its runtime's rt->id (never reused) */
} LuvGuard;

/* luv's loop at idx; raises for anything else, or when a runtime is on
   it already. */
uv_loop_t *luaio__luv_loop (lua_State *L, int idx) {
  uv_loop_t *loop = (uv_loop_t *)luaL_testudata(L, idx, LUV_LOOP);
  luaio_Runtime *o;
  if (loop == NULL) luaL_error(L, "option 'loop' must be luv's loop");
  for (o = luaio__state(L)->open; o != NULL; o = o->next) {
    if (o->loop == loop) {
      lua_pushliteral(L, "luv's loop already has a luaio runner (close it first)");
      lua_error(L);
    }
  }
  return loop;
}

static int guard_gc (lua_State *L) {
  LuvGuard *g = (LuvGuard *)lua_touserdata(L, 1);
  luaio_Runtime *rt;
  for (rt = g->G->open; rt != NULL; rt = rt->next) {
    if (rt->id != g->id) continue;
    lua_getiuservalue(L, 1, 1);            /* luv's loop userdata */
    lua_newtable(L);
    lua_setmetatable(L, -2);               /* (no __gc any more) */
    lua_pop(L, 1);
    break;
  }
  return 0;
}

/* R.luv = a guard holding luv's loop (at idx): rt's loop stays alive as
   long as rt. */
void luaio__luv_borrow (lua_State *L, luaio_Runtime *rt, int idx) {
  LuvGuard *g;
  idx = lua_absindex(L, idx);
  luaio__push_R(L, rt);
  g = (LuvGuard *)lua_newuserdatauv(L, sizeof(LuvGuard), 1);
  g->G = rt->G;
  g->id = rt->id;
  if (luaL_newmetatable(L, LUV_GUARD)) {
    lua_pushcfunction(L, guard_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 1);
  lua_setfield(L, -2, "luv");
  lua_pop(L, 1);
}
