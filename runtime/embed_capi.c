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

/*
** A module may run under a runtime no host opened (aio.run's, the
** CLI's): it keeps no error message.  Its cross-thread calls work as a
** host's (embed.c makes their state on the first luaio_hold or
** luaio_pending); resolve_threadsafe also takes a NULL pending.
*/
static const char NO_HOST[] = "this runtime was not opened by a host "
  "(luaio_open): it keeps no error message";

static const char *capi_error (luaio_Runtime *rt) {
  return luaio__embed_has(rt) ? luaio_error(rt) : NO_HOST;
}

static int capi_resolve_threadsafe (luaio_Pending *p, luaio_Callback push,
                                    void *ud) {
  return p != NULL ? luaio_resolve_threadsafe(p, push, ud) : LUAIO_ERROR;
}

/* luaio_spawn by luaio_spawn_task, which needs no host's runtime. */
static int capi_spawn (luaio_Runtime *rt, int nargs) {
  if (luaio_spawn_task(rt, nargs) != LUAIO_OK) return LUAIO_ERROR;
  lua_pop(luaio_state(rt), 1);
  return LUAIO_OK;
}

static const luaio_CAPI capi = {
  LUAIO_CAPI_VERSION,
  sizeof(luaio_CAPI),
  LUAIO_VERSION,
  luaio_running,
  luaio_state,
  luaio_loop,
  capi_error,
  luaio_pending,
  luaio_await,
  luaio_pending_on_cancel,
  luaio_pending_cancelled,
  luaio_resolve,
  capi_resolve_threadsafe,
  luaio_call_threadsafe,
  luaio_hold,
  luaio_release,
  capi_spawn,
  luaio_spawn_task,
  luaio_task_status,
  luaio_task_result,
  luaio_wait_fd
};

/* (The same table: the entries above also serve a host's runtime.) */
LUAIO_API const luaio_CAPI *luaio_capi (void) {
  return &capi;
}

/* A part of luaopen_luaio_core: registry[LUAIO_CAPI_KEY] = the table. */
void luaio__capi_open (lua_State *L) {
  lua_pushlightuserdata(L, (void *)&capi);
  lua_setfield(L, LUA_REGISTRYINDEX, LUAIO_CAPI_KEY);
}
