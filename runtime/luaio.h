/*
** luaio.h -- public C interface of luaio: asyncio for Lua on libuv.
**
** This header is all a host needs.  The runtime is opaque.  Every entry
** point is protected: none lets a Lua error longjmp through the caller.
** See docs/embedding.md.
*/
#ifndef luaio_h
#define luaio_h

#include "lua.h"

#define LUAIO_VERSION "0.1.0"

#if defined(_WIN32)
#define LUAIO_API __declspec(dllexport)
#else
#define LUAIO_API __attribute__((visibility("default")))
#endif

typedef struct luaio_Runtime luaio_Runtime;

/* The core module: require "luaio.core". */
LUAIO_API int luaopen_luaio_core (lua_State *L);

#endif
