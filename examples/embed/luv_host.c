/*
** luv_host.c -- a host that gives luv and luaio one loop: its own
** uv_loop_t, handed to luv (luv_set_loop, before luaopen_luv) and to
** luaio (luaio_open).  One uv_run (luaio_run) then serves a luv TCP
** server, a luv timer and a luaio task.  luv is opened on the main
** thread, so its callbacks run there, inside luaio_run.  luv's two C
** entry points are taken from its module with dlsym (Debian's lua-luv
** ships no headers without lua-luv-dev).
*/
#include <dlfcn.h>
#include <stdio.h>
#include <uv.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "luaio.h"

typedef void (*SetLoop) (lua_State *L, uv_loop_t *loop);

static const char *SCRIPT =
  "local uv = require 'luv'\n"
  "local aio = require 'luaio'\n"
  "local srv = uv.new_tcp()\n"
  "assert(srv:bind('127.0.0.1', 0))\n"
  "srv:listen(8, function()\n"
  "  local c = uv.new_tcp()\n"
  "  srv:accept(c)\n"
  "  c:read_start(function(_, d) if d then c:write(d:upper()) else c:close() end end)\n"
  "end)\n"
  "local ticks = 0\n"
  "local t = uv.new_timer()\n"
  "t:start(1, 1, function() ticks = ticks + 1 end)\n"
  "local r, w = aio.open_connection('127.0.0.1', srv:getsockname().port)\n"
  "w:write('hello from a task\\n')\n"
  "print((r:readline():gsub('\\n', '')))\n"
  "aio.sleep(0.03)\n"
  "print('the luv timer ticked meanwhile:', ticks > 3)\n"
  "t:close()\n"
  "srv:close()\n"
  "w:close()\n";

/* luv's module (found on package.cpath), dlopen'ed; NULL if missing. */
static void *open_luv (lua_State *L) {
  void *h = NULL;
  if (luaL_dostring(L, "return package.searchpath('luv', package.cpath)") == LUA_OK &&
      lua_isstring(L, -1))
    h = dlopen(lua_tostring(L, -1), RTLD_NOW | RTLD_LOCAL);
  lua_pop(L, 1);
  return h;
}

int main (void) {
  char err[256];
  uv_loop_t loop;
  lua_State *L;
  luaio_Runtime *rt;
  void *luv;
  SetLoop set_loop;
  lua_CFunction open;
  uv_loop_init(&loop);
  L = luaL_newstate();
  luaL_openlibs(L);
  luv = open_luv(L);
  if (luv == NULL) { fprintf(stderr, "luv not found (lua-luv)\n"); return 1; }
  set_loop = (SetLoop)dlsym(luv, "luv_set_loop");
  open = (lua_CFunction)dlsym(luv, "luaopen_luv");
  if (set_loop == NULL || open == NULL) { fprintf(stderr, "not luv\n"); return 1; }
  set_loop(L, &loop);                 /* before luaopen_luv */
  luaL_requiref(L, "luv", open, 0);   /* package.loaded.luv */
  lua_pop(L, 1);
  rt = luaio_open(L, &loop, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  if (luaio_dostring(rt, SCRIPT, "=script") != LUAIO_OK) {
    fprintf(stderr, "%s\n", luaio_error(rt));
    return 1;
  }
  luaio_run(rt, UV_RUN_DEFAULT);      /* the one uv_run */
  luaio_close(rt);
  lua_close(L);
  printf("loop closed: %s\n", uv_loop_close(&loop) == 0 ? "yes" : "no");
  dlclose(luv);
  return 0;
}
