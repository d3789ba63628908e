/*
** fuzz_main.c -- the libFuzzer entry point for luaio's fuzz targets.
**
** Each target is a Lua script (spec/fuzz/<target>.lua, its path compiled
** in as FUZZ_SCRIPT) returning a function check(data).  One lua_State with
** the embedded stdlib is kept for the whole run; each input is passed to
** check, which runs real luaio code on a fresh loop and compares it with a
** simple reference.  A Lua error from check is a finding: it is printed
** and the process aborts, so libFuzzer saves the input.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "luaio.h"

static lua_State *L;
static int check_ref = LUA_NOREF;

static void setup (void) {
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  luaio_preload(L);
  if (luaL_dofile(L, FUZZ_SCRIPT) != LUA_OK || !lua_isfunction(L, -1)) {
    fprintf(stderr, "fuzz: loading %s: %s\n", FUZZ_SCRIPT,
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "no function returned");
    abort();
  }
  check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  if (L == NULL) setup();
  lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    const char *msg = luaL_tolstring(L, -1, NULL);
    fprintf(stderr, "fuzz: %s: finding: %s\n", FUZZ_SCRIPT, msg);
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
