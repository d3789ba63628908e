package = "luaio"
version = "0.1.0-1"
source = {
  url = "git+https://example.invalid/luaio.git",
}
description = {
  summary = "asyncio for Lua: a libuv scheduler running Lua 5.4 coroutines as tasks",
  detailed = [[
luaio runs Lua 5.4 coroutines as tasks on a C scheduler built on libuv,
with Python asyncio's semantics: tasks, futures, cancellation, timeouts,
task groups, queues, streams, subprocesses, files, worker threads.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h" },
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_CFLAGS = "-I$(LUA_INCDIR)",
    UV_CFLAGS = "-I$(LIBUV_INCDIR)",
    LUA_BUILD = "0",   -- the CLI links the Lua luarocks builds for
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUADIR = "$(LUADIR)",
    CMODDIR = "$(LIBDIR)",
    ROCK = "1",
  },
}
