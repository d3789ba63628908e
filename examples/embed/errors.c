/*
** errors.c -- the embedding API's error paths (a C test): a script with a
** syntax error, a task that fails (reported through the host's report
** function), closing from inside a task, closing with tasks pending.
*/
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "lua.h"
#include "luaio.h"

static int reports = 0;

static void report (luaio_Runtime *rt, const char *msg, void *ud) {
  (void)rt; (void)ud;
  reports++;
  printf("report: %s\n", strstr(msg, "boom") ? "boom" : msg);
}

static luaio_Runtime *rt;

static int l_close_me (lua_State *L) {
  int r = luaio_close(rt);
  lua_pushboolean(L, r == LUAIO_ERROR);
  lua_pushstring(L, strstr(luaio_error(rt), "inside") ? "inside" : luaio_error(rt));
  return 2;
}

int main (void) {
  char err[256];
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  luaio_set_report(rt, report, NULL);
  {
    int st = luaio_dostring(rt, "local x = = 1", "=bad");
    printf("syntax error: %d %s\n", st, strstr(luaio_error(rt),
           "unexpected symbol") ? "unexpected symbol" : luaio_error(rt));
  }
  printf("missing file: %d\n", luaio_dofile(rt, "/nonexistent/script.lua"));
  luaio_dostring(rt, "require('luaio').sleep(0.01) error('boom')", "=fails");
  lua_register(luaio_state(rt), "close_me", l_close_me);
  luaio_dostring(rt, "print('close from a task:', close_me())", "=inner");
  luaio_run(rt, UV_RUN_DEFAULT);
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "local ok, err = pcall(aio.sleep, 60)\n"
    "print('cancelled at close:', aio.is(err, aio.CancelledError))\n", "=pending");
  luaio_run(rt, UV_RUN_NOWAIT);
  printf("pending before close: %d\n", luaio_pending_tasks(rt));
  printf("close: %d\n", luaio_close(rt));
  printf("reports: %d\n", reports);
  return 0;
}
