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
task groups, queues, streams, subprocesses.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_CFLAGS = "-I$(LUA_INCDIR)",
    UV_CFLAGS = "-I$(LIBUV_INCDIR)",
    UV_LIBS = "-L$(LIBUV_LIBDIR) -luv",
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
  },
  install = {
    lua = {
      ["luaio.init"] = "lua/luaio/init.lua",
      ["luaio._require"] = "lua/luaio/_require.lua",
      ["luaio._cli"] = "lua/luaio/_cli.lua",
    },
    lib = {
      ["luaio.core"] = "build/lib/luaio/core.so",
    },
    bin = {
      luaio = "build/luaio",
    },
  },
}
