/*
** host.c -- a host that embeds libluaio and runs a script that requires
** the example C module: hashpool.so finds this host's runtime (the
** registry's C API table), although the host exports no symbols.
** Usage: host script.lua (LUA_CPATH must find hashpool.so).
*/
#include <stdio.h>
#include "lua.h"
#include "luaio.h"

int main (int argc, char **argv) {
  char err[256];
  int n, st;
  luaio_Runtime *rt;
  if (argc != 2) { fprintf(stderr, "usage: host script.lua\n"); return 2; }
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  st = luaio_dofile_task(rt, argv[1]);
  if (st == LUAIO_OK) st = luaio_run_until_complete(rt, -1, &n);
  if (st != LUAIO_OK) fprintf(stderr, "host: %s\n", luaio_error(rt));
  if (luaio_close(rt) != LUAIO_OK) st = LUAIO_ERROR;
  return st == LUAIO_OK ? 0 : 1;
}
