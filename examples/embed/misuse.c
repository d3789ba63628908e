/*
** misuse.c -- the embedding API used wrongly: NULL runtimes, a malformed
** LUAIO_SHUTDOWN_TIMEOUT, a spawn with fewer values on the stack than it
** was told, luaio_step called from a task, an error whose __tostring
** raises (the report still comes), and lua_close before luaio_close
** (detected: LUAIO_ERROR, no crash).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "luaio.h"

static luaio_Runtime *rt;

static void report (luaio_Runtime *r, const char *msg, void *ud) {
  const char *tb = strstr(msg, "\nstack traceback:");
  (void)r; (void)ud;
  printf("report: %.*s\n", tb != NULL ? (int)(tb - msg) : (int)strlen(msg),
         msg);
}

static int l_step (lua_State *L) {
  int st = luaio_step(rt);
  lua_pushinteger(L, st);
  lua_pushstring(L, luaio_error(rt));
  return 2;
}

static int l_add (lua_State *L) {
  printf("spawned: %d\n", (int)(luaL_checkinteger(L, 1) +
                                luaL_checkinteger(L, 2)));
  return 0;
}

/* lua_close before luaio_close, in a child (what is left is leaked). */
static void close_order (void) {
  pid_t pid;
  int status;
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    char err[256];
    lua_State *L = luaL_newstate();
    luaio_Runtime *r;
    int st;
    luaL_openlibs(L);
    r = luaio_open(L, NULL, err, sizeof err);
    luaio_dostring(r, "require('luaio').sleep(10)", "=sleeper");
    luaio_run(r, UV_RUN_NOWAIT);
    lua_close(L);
    st = luaio_close(r);
    printf("close after lua_close: %d (%s)\n", st, luaio_error(r));
    fflush(stdout);
    _exit(0);
  }
  waitpid(pid, &status, 0);
  printf("child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
         "exited" : "crashed");
}

int main (void) {
  char err[256];
  lua_State *L;
  int top, st;
  alarm(10);
  printf("close(NULL): %d\n", luaio_close(NULL));
  printf("error(NULL): %s\n", luaio_error(NULL));
  printf("pending_tasks(NULL): %d\n", luaio_pending_tasks(NULL));
  setenv("LUAIO_SHUTDOWN_TIMEOUT", "soon", 1);
  printf("open: %s (%s)\n", luaio_open(NULL, NULL, err, sizeof err) == NULL ?
         "NULL" : "a runtime", err);
  unsetenv("LUAIO_SHUTDOWN_TIMEOUT");
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  luaio_set_report(rt, report, NULL);
  L = luaio_state(rt);
  top = lua_gettop(L);
  lua_pushcfunction(L, l_add);
  lua_pushinteger(L, 1);
  st = luaio_spawn(rt, 5);
  printf("spawn with 5 of 1: %d (%s), stack %d\n", st, luaio_error(rt),
         lua_gettop(L) - top);
  lua_pushinteger(L, 2);
  st = luaio_spawn(rt, 2);
  printf("spawn with 2 of 2: %d, stack %d\n", st, lua_gettop(L) - top);
  lua_register(L, "step", l_step);
  luaio_dostring(rt,
    "print('step from a task:', step())\n"
    "error(setmetatable({}, {__tostring = function () "
    "error('tostring fails', 0) end}))\n", "=script");
  luaio_run(rt, UV_RUN_DEFAULT);
  printf("close: %d\n", luaio_close(rt));
  close_order();
  return 0;
}
