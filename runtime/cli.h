/*
** cli.h -- the Lua stdlib compiled into the CLI (tools/embed.lua).
*/
#ifndef luaio_cli_h
#define luaio_cli_h

#include <stddef.h>

typedef struct luaio_Embedded {
  const char *name;            /* module name, e.g. "luaio" */
  const char *src;
  size_t len;
} luaio_Embedded;

extern const luaio_Embedded luaio_embedded[];

#endif
