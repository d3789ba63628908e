/*
** embed_capi.c -- the C API as a table of functions, for C modules.
**
** A require-able .so that drives I/O must reach the runtime that loaded
** it.  Linking libluaio would give it a second copy of the core (its own
** per-state context, where no loop runs), and the symbols of the copy
** that loaded it are not visible to it under stock lua5.4 (luaio.core is
** loaded RTLD_LOCAL).  So luaopen_luaio_core publishes this table in the
** registry, as Python's capsules do; luaio_module.h fetches it.
*/
#include "internal.h"

static const luaio_CAPI capi = {
  LUAIO_CAPI_VERSION,
  sizeof(luaio_CAPI),
  LUAIO_VERSION,
  luaio_running,
  luaio_state,
  luaio_loop,
  luaio_error,
  luaio_pending,
  luaio_await,
  luaio_pending_on_cancel,
  luaio_pending_cancelled,
  luaio_resolve,
  luaio_resolve_threadsafe,
  luaio_call_threadsafe,
  luaio_hold,
  luaio_release,
  luaio_spawn,
  luaio_spawn_task,
  luaio_task_status,
  luaio_task_result
};

LUAIO_API const luaio_CAPI *luaio_capi (void) {
  return &capi;
}

/* A part of luaopen_luaio_core: registry[LUAIO_CAPI_KEY] = the table. */
void luaio__capi_open (lua_State *L) {
  lua_pushlightuserdata(L, (void *)&capi);
  lua_setfield(L, LUA_REGISTRYINDEX, LUAIO_CAPI_KEY);
}
