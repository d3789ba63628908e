/*
** task_handles.c -- task handles for hosts (a C test): start a task, keep
** its Task, run the loop until it finishes and read its results or error
** in C; a failed, a cancelled and a deadlocked task; bad arguments; the
** outcome after luaio_close; aio.run called by the host while its loop
** is not running.
*/
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"
#include "luaio.h"

static int reports = 0;

static void report (luaio_Runtime *rt, const char *msg, void *ud) {
  (void)rt; (void)ud;
  reports++;
  printf("report: %s\n", msg);
}

/* The first line of s (messages carry tracebacks). */
static const char *line1 (const char *s) {
  static char buf[200];
  size_t n = strcspn(s, "\n");
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return buf;
}

static luaio_Runtime *rt;

/* wait_here(task): luaio_run_until_complete from inside a task */
static int l_wait_here (lua_State *L) {
  int n, st;
  lua_State *H = luaio_state(rt);
  lua_pushvalue(L, 1);
  lua_xmove(L, H, 1);
  st = luaio_run_until_complete(rt, -1, &n);
  lua_pushboolean(L, st == LUAIO_ERROR);
  lua_pushstring(L, luaio_error(rt));
  lua_pop(H, 2);                       /* the task and the message */
  return 2;
}

/* close_me() -> refused, why: luaio_close from inside a waited task */
static int l_close_me (lua_State *L) {
  int r = luaio_close(rt);
  lua_pushboolean(L, r == LUAIO_ERROR);
  lua_pushstring(L, line1(luaio_error(rt)));
  return 2;
}

static void show (lua_State *L, const char *what, int st, int n) {
  int i;
  printf("%s: %s", what, st == LUAIO_OK ? "ok" : "error");
  if (st == LUAIO_OK) {
    for (i = n; i >= 1; i--) {
      printf(" %s", luaL_tolstring(L, -i, NULL));
      lua_pop(L, 1);
    }
    lua_pop(L, n);
  }
  else {
    printf(" [%s] [%s]", line1(luaL_tolstring(L, -1, NULL)),
           line1(luaio_error(rt)));
    lua_pop(L, 2);
  }
  printf("\n");
}

static const char *status_name (int s) {
  switch (s) {
    case LUAIO_TASK_PENDING: return "pending";
    case LUAIO_TASK_DONE: return "done";
    case LUAIO_TASK_FAILED: return "failed";
    case LUAIO_TASK_CANCELLED: return "cancelled";
    default: return "not a task";
  }
}

int main (void) {
  char err[256];
  int n, st, deadlocked;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  rt = luaio_open(L, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  luaio_set_report(rt, report, NULL);

  /* results */
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "aio.sleep(0.01) return 6 * 7, 'x'", "=results");
  st = luaio_run_until_complete(rt, -1, &n);
  show(L, "results", st, n);
  printf("status: %s\n", status_name(luaio_task_status(L, -1)));
  lua_pop(L, 1);

  /* a function and arguments */
  luaL_loadstring(L, "local a, b = ... return a + b");
  lua_pushinteger(L, 40);
  lua_pushinteger(L, 2);
  st = luaio_spawn_task(rt, 2);
  printf("spawn_task: %d, top %d\n", st, lua_gettop(L));
  st = luaio_run_until_complete(rt, 1, &n);
  show(L, "spawned", st, n);
  lua_pop(L, 1);

  /* failed: the error comes back, and is never reported */
  luaio_dostring_task(rt, "require('luaio').sleep(0) error('boom', 0)",
                      "=fails");
  st = luaio_run_until_complete(rt, -1, &n);
  show(L, "failed", st, n);
  printf("status: %s\n", status_name(luaio_task_status(L, -1)));
  lua_pop(L, 1);

  /* cancelled by another task */
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "victim = aio.current_task() aio.sleep(60)", "=v");
  luaio_dostring(rt, "require('luaio').sleep(0.01) victim:cancel('stop')",
                 "=canceller");
  st = luaio_run_until_complete(rt, -1, &n);
  show(L, "cancelled", st, n);
  printf("status: %s\n", status_name(luaio_task_status(L, -1)));
  lua_pop(L, 1);

  /* a deadlock: nothing will set the future */
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "return aio.Future():await()", "=stuck");
  deadlocked = lua_gettop(L);
  st = luaio_run_until_complete(rt, deadlocked, &n);
  show(L, "deadlock", st, n);
  printf("status: %s\n", status_name(luaio_task_status(L, deadlocked)));
  st = luaio_task_result(L, deadlocked, &n);
  printf("result of a pending task: %d %s\n", st, lua_tostring(L, -1));
  lua_pop(L, 1);

  /* from inside the runtime */
  lua_register(L, "wait_here", l_wait_here);
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "local t = aio.create_task(aio.sleep, 0)\n"
                          "return wait_here(t)", "=inside");
  st = luaio_run_until_complete(rt, -1, &n);
  printf("inside: %s %s %s\n", st == LUAIO_OK ? "ok" : "error",
         lua_toboolean(L, -2) ? "true" : "false", lua_tostring(L, -1));
  lua_pop(L, 3);

  /* closing the runtime while the host waits: refused, the wait goes on */
  lua_register(L, "close_me", l_close_me);
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "local refused, why = close_me()\n"
                          "aio.sleep(0.01) return refused, why", "=closer");
  st = luaio_run_until_complete(rt, -1, &n);
  show(L, "close while waiting", st, n);
  lua_pop(L, 1);

  /* bad arguments */
  lua_pushinteger(L, 1);
  st = luaio_run_until_complete(rt, -1, &n);
  show(L, "not a task", st, n);
  lua_pop(L, 1);
  lua_pushinteger(L, 1);
  st = luaio_task_result(L, -1, &n);
  printf("result of a number: %d %s\n", st, lua_tostring(L, -1));
  lua_pop(L, 1);
  printf("status of a number: %s\n", status_name(luaio_task_status(L, -1)));
  lua_pop(L, 1);
  lua_pushnil(L);
  st = luaio_spawn_task(rt, 5);
  printf("spawn_task(5) on 2 values: %d [%s] top %d\n", st, luaio_error(rt),
         lua_gettop(L));
  lua_pop(L, 1);
  st = luaio_spawn_task(rt, -1);
  printf("spawn_task(-1): %d [%s]\n", st, luaio_error(rt));
  lua_pushinteger(L, 7);
  st = luaio_spawn_task(rt, 0);
  printf("spawn_task of a number: %d [%s] top %d\n", st,
         line1(luaio_error(rt)), lua_gettop(L));
  st = luaio_dostring_task(rt, NULL, "=x");
  printf("dostring_task(NULL): %d [%s]\n", st, luaio_error(rt));
  st = luaio_dostring_task(rt, "local x = = 1", "=bad");
  printf("dostring_task syntax error: %d top %d\n", st, lua_gettop(L));
  st = luaio_dofile_task(rt, "/nonexistent/script.lua");
  printf("dofile_task missing: %d [%s]\n", st, luaio_error(rt));
  printf("NULL runtime: %d %d\n", luaio_run_until_complete(NULL, 1, &n),
         luaio_spawn_task(NULL, 0));
  printf("NULL state: %s %d\n", status_name(luaio_task_status(NULL, 1)),
         luaio_task_result(NULL, 1, &n));
  {                                    /* a state luaio never ran in */
    lua_State *F = luaL_newstate();
    lua_newtable(F);
    printf("a state without luaio: %s", status_name(luaio_task_status(F, 1)));
    st = luaio_task_result(F, 1, &n);
    printf(" %d %s\n", st, lua_tostring(F, -1));
    lua_close(F);
  }

  /* aio.run from the host, while its loop is not running */
  st = luaL_dostring(L, "local aio = require 'luaio'\n"
                       "return aio.run(function() aio.sleep(0.01)\n"
                       "  return 'aio.run ok' end)");
  printf("host aio.run: %d %s\n", st, lua_tostring(L, -1));
  lua_pop(L, 1);
  luaio_dostring_task(rt, "local aio = require 'luaio'\n"
                          "return pcall(aio.run, function() end)", "=nested");
  st = luaio_run_until_complete(rt, -1, &n);
  printf("aio.run in a task: %s %s\n", lua_toboolean(L, -2) ? "true" : "false",
         line1(lua_tostring(L, -1)));
  lua_pop(L, 3);

  /* in a callback of luaio's while the host runs the loop with uv_run */
  luaio_dostring(rt, "local aio = require 'luaio'\n"
                     "aio.get_running_loop():call_soon(function()\n"
                     "  local ok, e = pcall(aio.run, function() end)\n"
                     "  print('aio.run in a callback:', ok, e) end)", "=cb");
  uv_run(luaio_loop(rt), UV_RUN_DEFAULT);

  /* the stuck task after luaio_close: finished (cancelled) */
  printf("close: %d\n", luaio_close(rt));
  printf("after close: %s\n", status_name(luaio_task_status(L, deadlocked)));
  st = luaio_task_result(L, deadlocked, &n);
  printf("result after close: %d %s\n", st,
         line1(luaL_tolstring(L, -1, NULL)));
  lua_settop(L, 0);
  lua_close(L);
  printf("reports: %d\n", reports);
  return 0;
}
