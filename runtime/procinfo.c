/*
** procinfo.c -- what a process knows of itself, for the worker
** processes of luaio.workers: core.getpid(), core._cpu_count(),
** core._environ() (the environment, as a list of "NAME=value", for a
** child's), core._takeenv (reads a variable and removes it, so that the
** worker's own children do not take themselves for workers),
** core._pdeathsig (the worker gets SIGTERM when its supervisor dies: a
** supervisor killed -9 leaves no orphans serving the port).
*/
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "internal.h"

extern char **environ;

/* core.getpid() -> this process's id */
static int l_getpid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* core._environ() -> {"NAME=value", ...} */
static int l_environ (lua_State *L) {
  int i;
  lua_newtable(L);
  for (i = 0; environ != NULL && environ[i] != NULL; i++) {
    lua_pushstring(L, environ[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core._takeenv(name) -> value or nil; the variable is removed. */
static int l_takeenv (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (v == NULL) return 0;
  lua_pushstring(L, v);
  unsetenv(name);
  return 1;
}

/*
** core._pdeathsig(ppid) -> true when set: SIGTERM when the parent dies
** (Linux); false when the parent is already gone (getppid() is no longer
** ppid) or the system has no such thing.
*/
static int l_pdeathsig (lua_State *L) {
  lua_Integer ppid = luaL_checkinteger(L, 1);
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, (lua_Integer)getppid() == ppid);
#else
  (void)ppid;
  lua_pushboolean(L, 0);
#endif
  return 1;
}

/* core._cpu_count() -> how many processors this process may use */
static int l_cpu_count (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

static const luaL_Reg funcs[] = {
  {"getpid", l_getpid},
  {"_cpu_count", l_cpu_count},
  {"_environ", l_environ},
  {"_takeenv", l_takeenv},
  {"_pdeathsig", l_pdeathsig},
  {NULL, NULL}
};

void luaio__procinfo_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
