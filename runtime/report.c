/*
** report.c -- exception reports: the contexts (tables with message,
** exception, traceback, task ...) that go to the loop's exception
** handler, as asyncio's call_exception_handler.
**
** luaio__report delivers one at once (from the drain or shutdown);
** luaio__queue_report keeps one for the drain (from a finaliser, which
** must not run Lua code that could suspend or fail).  The default
** handler is Lua's (lua/luaio/init.lua, through the dispatcher set by
** core.set_dispatcher), a host's luaio_set_report function replaces it;
** the library never writes to stderr by itself unless the dispatcher
** itself failed.
*/
#include <stdio.h>

#include "internal.h"

static const char DISPATCHKEY = 'D';  /* registry: Lua report dispatcher */

static int tolstring (lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/* [-0, +1] luaL_tolstring that does not raise: a failing __tostring is
   described instead. */
static const char *safe_tolstring (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, tolstring);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *m = lua_tostring(L, -1);
    lua_pushfstring(L, "(a %s whose __tostring failed: %s)",
                    luaL_typename(L, idx), m != NULL ? m : "?");
    lua_remove(L, -2);
  }
  return lua_tostring(L, -1);
}

/* A host's report function gets the context as one text. */
static void report_to_host (lua_State *L, luaio_Runtime *rt, int ctx) {
  luaL_Buffer b;
  const char *exc = NULL;      /* kept on the stack, below the buffer */
  if (lua_getfield(L, ctx, "exception") != LUA_TNIL)
    exc = safe_tolstring(L, -1);
  luaL_buffinit(L, &b);
  lua_getfield(L, ctx, "message");
  luaL_addvalue(&b);
  if (exc != NULL) {
    luaL_addchar(&b, '\n');
    luaL_addstring(&b, exc);
  }
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

/*
** Delivers an exception context (the table on top, popped) to the loop's
** handler through the Lua dispatcher.  Called only from the drain or from
** shutdown, never from a finaliser; errors are contained.
*/
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
    fprintf(stderr, "%s\n", safe_tolstring(L, -1));
  fflush(stderr);
  lua_settop(L, ctx - 1);
}

/* From the drain: delivers the oldest queued report. */
static void deliver_report (lua_State *S, luaio_Runtime *rt, void *p,
                            int idx) {
  (void)p; (void)idx;
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
  luaio__schedule(rt, deliver_report, NULL, 0);
}

static int core_set_dispatcher (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &DISPATCHKEY);
  return 0;
}

/* Reports a message of the library's own (nothing to raise it to). */
void luaio__report_msg (luaio_Runtime *rt, const char *msg) {
  lua_State *S = rt->S;
  int top = lua_gettop(S);
  if (!lua_checkstack(S, 4)) return;
  lua_createtable(S, 0, 1);
  lua_pushstring(S, msg);
  lua_setfield(S, -2, "message");
  luaio__report(S, rt);
  lua_settop(S, top);
}

static const luaL_Reg funcs[] = {
  {"set_dispatcher", core_set_dispatcher},
  {NULL, NULL}
};

void luaio__report_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
