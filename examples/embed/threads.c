/*
** threads.c -- a host thread completing futures while tasks wait on them.
** Lua registers futures with host.watch(future, n); a host thread later
** asks the loop (luaio_call_threadsafe) to set each one's result.
*/
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

#define N 3

static luaio_Runtime *rt;
static int refs[N];
static int nrefs;

typedef struct Job { int ref; int value; } Job;

/* Runs on the loop thread: future:set_result(value). */
static int complete (lua_State *L, void *ud) {
  Job *j = (Job *)ud;
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
  lua_getfield(L, -1, "set_result");
  lua_insert(L, -2);
  lua_pushinteger(L, j->value);
  luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
  if (j->value == 100) luaio_release(rt);   /* the last one */
  free(j);
  lua_call(L, 2, 0);
  return 0;
}

static void worker (void *arg) {
  int i;
  (void)arg;
  for (i = N - 1; i >= 0; i--) {      /* complete them in reverse order */
    Job *j = (Job *)malloc(sizeof *j);
    uv_sleep(20);
    j->ref = refs[i];
    j->value = (i + 1) * 100;
    luaio_call_threadsafe(rt, complete, j);
  }
}

/* host.watch(future): remembered for the host thread. */
static int l_watch (lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  refs[nrefs++] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int main (void) {
  char err[256];
  uv_thread_t th;
  lua_State *L;
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  L = luaio_state(rt);
  lua_newtable(L);
  lua_pushcfunction(L, l_watch);
  lua_setfield(L, -2, "watch");
  lua_setglobal(L, "host");
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "local fs = {}\n"
    "for i = 1, 3 do fs[i] = aio.Future(); host.watch(fs[i]) end\n"
    "for t in aio.as_completed(fs) do print('completed', t:result()) end\n"
    , "=script");
  luaio_hold(rt);                      /* the host thread will call back */
  uv_thread_create(&th, worker, NULL);
  luaio_run(rt, UV_RUN_DEFAULT);       /* returns once released and done */
  uv_thread_join(&th);
  printf("all done\n");
  luaio_close(rt);
  return 0;
}
