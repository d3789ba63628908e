/*
** luaio_module.h -- luaio's C API for a C module: a require-able .so that
** runs async C functions (luaio_pending / luaio_await / luaio_resolve)
** under whichever luaio loaded it -- the luaio CLI, luaio.core in stock
** lua5.4, or a host's libluaio.  Build it without -lluaio and without
** -llua5.4 (pkg-config --cflags --libs luaio-module):
**
**   #include "luaio_module.h"
**   int luaopen_mymod (lua_State *L) {
**     luaio_module_init(L, "mymod");   raises a clear error without luaio
**     luaL_newlib(L, funcs);
**     return 1;
**   }
**
** luaio_module_init fetches the function table the runtime published in
** the registry (loading luaio.core first if nothing has), and the macros
** below send the calls through it.  The table pointer is static: every
** file of the module that calls the API calls luaio_module_init once.
*/
#ifndef luaio_module_h
#define luaio_module_h

#include "lua.h"
#include "lauxlib.h"

#include "luaio.h"

#if defined(__GNUC__)
#define LUAIO_MODULE_UNUSED __attribute__((unused))
#else
#define LUAIO_MODULE_UNUSED
#endif

static LUAIO_MODULE_UNUSED const luaio_CAPI *luaio_module_capi = NULL;

/* Raises the message (no position: it is about the module, not a line). */
#define luaio_module_raise(L, ...) \
  (lua_pushfstring((L), __VA_ARGS__), lua_error(L))

/* [-0, +0] Finds the C API of the luaio in L; raises a Lua error naming
   what to do if there is none, or it is older than this header. */
static LUAIO_MODULE_UNUSED void luaio_module_init (lua_State *L,
                                                   const char *modname) {
  const luaio_CAPI *api;
  int t = lua_getfield(L, LUA_REGISTRYINDEX, LUAIO_CAPI_KEY);
  lua_pop(L, 1);
  if (t != LUA_TLIGHTUSERDATA) {       /* nothing loaded luaio yet */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "luaio.core");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      const char *m = lua_tostring(L, -1);
      luaio_module_raise(L, "%s: needs luaio, which is not loaded and could "
        "not be: run it with the luaio CLI, or install luaio where lua5.4 "
        "finds it (make install, luarocks), or add the directory of "
        "luaio/core.so to LUA_CPATH (%s)", modname,
        m != NULL ? m : "require failed");
    }
    t = lua_getfield(L, LUA_REGISTRYINDEX, LUAIO_CAPI_KEY);
    lua_pop(L, 1);
    if (t != LUA_TLIGHTUSERDATA)
      luaio_module_raise(L, "%s: the luaio loaded here publishes no C API "
        "(it is older than %s): update luaio", modname, LUAIO_VERSION);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUAIO_CAPI_KEY);
  api = (const luaio_CAPI *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (api->version < LUAIO_CAPI_VERSION || api->size < sizeof(luaio_CAPI))
    luaio_module_raise(L, "%s: built for luaio C API version %d, but the "
      "luaio loaded here (%s) has version %d: update luaio", modname,
      LUAIO_CAPI_VERSION, api->luaio_version, api->version);
  luaio_module_capi = api;
}

#define luaio_running(L) (luaio_module_capi->running(L))
#define luaio_state(rt) (luaio_module_capi->state(rt))
#define luaio_loop(rt) (luaio_module_capi->loop(rt))
#define luaio_error(rt) (luaio_module_capi->error(rt))
#define luaio_pending(L) (luaio_module_capi->pending(L))
#define luaio_await(L, p) (luaio_module_capi->await((L), (p)))
#define luaio_pending_on_cancel(p, fn, ud) \
  (luaio_module_capi->pending_on_cancel((p), (fn), (ud)))
#define luaio_pending_cancelled(p) (luaio_module_capi->pending_cancelled(p))
#define luaio_resolve(p, push, ud) \
  (luaio_module_capi->resolve((p), (push), (ud)))
#define luaio_resolve_threadsafe(p, push, ud) \
  (luaio_module_capi->resolve_threadsafe((p), (push), (ud)))
#define luaio_call_threadsafe(rt, fn, ud) \
  (luaio_module_capi->call_threadsafe((rt), (fn), (ud)))
#define luaio_hold(rt) (luaio_module_capi->hold(rt))
#define luaio_release(rt) (luaio_module_capi->release(rt))
#define luaio_spawn(rt, nargs) (luaio_module_capi->spawn((rt), (nargs)))
#define luaio_spawn_task(rt, nargs) \
  (luaio_module_capi->spawn_task((rt), (nargs)))
#define luaio_task_status(L, idx) (luaio_module_capi->task_status((L), (idx)))
#define luaio_task_result(L, idx, n) \
  (luaio_module_capi->task_result((L), (idx), (n)))
#define luaio_wait_fd(L, fd, events, timeout, ctx, k) \
  (luaio_module_capi->wait_fd((L), (fd), (events), (timeout), (ctx), (k)))

#endif
