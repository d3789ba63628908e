/*
** init.c -- luaopen_luaio_core: the list of the core's parts, each of
** which registers its own functions and classes in the module table (as
** Lua's linit.c lists its libraries).  Nothing else is done here.
*/
#include "internal.h"
#include "tls_abi.h"

static void (*const parts[]) (lua_State *L) = {
  luaio__loop_open,
  luaio__report_open,
  luaio__errors_open,
  luaio__future_open,
  luaio__gather_open,
  luaio__task_open,
  luaio__handle_open,
  luaio__timer_open,
  luaio__coro_open,
  luaio__signal_open,
  luaio__sigpipe_open,
  luaio__waitlist_open,
  luaio__queue_open,
  luaio__stream_open,
  luaio__tls_link_open,
  luaio__udp_open,
  luaio__dns_open,
  luaio__fs_open,
  luaio__process_open,
  luaio__procinfo_open,
  luaio__thread_open,
  luaio__http_parser_open,
  luaio__ws_frame_open,
  luaio__poll_open,
  luaio__capi_open,
  NULL
};

LUAIO_API int luaopen_luaio_core (lua_State *L) {
  int i;
  luaio__state(L);
  lua_newtable(L);
  for (i = 0; parts[i] != NULL; i++) parts[i](L);
  lua_pushliteral(L, LUAIO_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
