/*
** cli.h -- the Lua stdlib compiled into the CLI (tools/embed.lua).
*/
#ifndef luaio_cli_h
#define luaio_cli_h

#include <stddef.h>

typedef struct EmbeddedModule {
  const char *name;            /* module name, e.g. "luaio" */
  const char *src;
  size_t len;
} EmbeddedModule;

extern const EmbeddedModule luaio__stdlib[];

#endif
