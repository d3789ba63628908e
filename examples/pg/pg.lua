-- pg: PostgreSQL from luaio tasks (examples/pg/pg.c, built by
-- `make pg-example` into build/examples/pg/core.so).
--
--   local pg = require "pg"
--   local conn <close> = pg.connect("host=/run/postgresql dbname=postgres")
--   local rows, tag = conn:query("SELECT 1 AS one")   --> rows[1].one == "1"
--
-- Every call suspends the running task only: many tasks query at once,
-- each on a connection of its own.
--
-- The C module calls luaio_wait_fd, from luaio's C API.  The luaio CLI
-- exports it; stock lua5.4 loads luaio.core (which holds it) with its
-- symbols private, so the module would not load: then luaio.core is
-- opened again with its symbols global (the same file, by another
-- spelling of its path, since package.loadlib reuses a handle it
-- opened under the same name) and the module loaded again.
local ok, core = pcall(require, "pg.core")
if not ok then
  if not tostring(core):find("undefined symbol: luaio_", 1, true) then
    error(core, 0)
  end
  local path = assert(package.searchpath("luaio.core", package.cpath),
    "pg: luaio.core not found on package.cpath")
  local again = path:find("/", 1, true) and path:gsub("/", "//", 1) or "./" .. path
  assert(package.loadlib(again, "*"))
  core = require "pg.core"
end
return core
