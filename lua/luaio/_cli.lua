-- luaio._cli: what the luaio command does once its state is made.
--
-- Runs, inside the main task of one event loop: LUA_INIT (unless -E), the
-- -e and -l actions in order, then the script with its arguments (or
-- stdin).  Returns the exit status: 0, 1 after an uncaught error (printed
-- with the main task's traceback), 130 after Ctrl-C or an uncaught
-- aio.KeyboardInterrupt, an aio.SystemExit's own status.  The loop is then
-- shut down: pending tasks are cancelled and unwind.
local aio = require "luaio"

-- The TLS engine is a module of its own for the CLI (OpenSSL is loaded
-- only by scripts that use TLS): the one built or installed with this
-- executable first -- build/lib/luaio/tls.so, PREFIX/lib/lua/5.4/luaio/
-- tls.so -- then wherever package.cpath finds one.  (A build without
-- OpenSSL, or one with the engine linked in, has preloaded its own.)
if not package.preload["luaio.tls"] then
  local exepath = debug.getregistry()["luaio.exepath"]
  package.preload["luaio.tls"] = function(name)
    local exe = exepath and exepath()
    local dir = exe and exe:match("^(.*)/[^/]*$")
    local tried = {}
    local places = {}
    if dir then
      places[#places + 1] = dir .. "/lib/luaio/tls.so"
      places[#places + 1] = dir .. "/../lib/lua/5.4/luaio/tls.so"
    end
    local found = package.searchpath(name, package.cpath)
    if found then places[#places + 1] = found end
    for _, path in ipairs(places) do
      local open, err, where = package.loadlib(path, "luaopen_luaio_tls")
      if open then return open(name) end
      if where ~= "open" then error(err, 0) end   -- found, but broken
      tried[#tried + 1] = path
    end
    error("module 'luaio.tls' (TLS) not found next to the luaio executable " ..
      "or on package.cpath; tried: " .. table.concat(tried, ", "), 0)
  end
end
-- An uncaught aio.SystemExit ends the script quietly with its status
-- (Python's SystemExit): e.code, else its message -- nil: 0; an integer:
-- that; anything else is printed and gives 1.
local function exit_status(name, e)
  local code = rawget(e, "code")
  if code == nil then code = rawget(e, "message") end
  if code == nil then return 0 end
  if math.type(code) == "integer" then return code & 0xff end
  io.stderr:write(name, ": ", tostring(code), "\n")
  return 1
end

local progname
do
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  progname = arg and arg[i] or "luaio"
end

local function run_chunk(chunk, err, ...)
  if not chunk then error(err, 0) end
  return chunk(...)
end

local function do_init()
  local name = "=LUA_INIT_5_4"
  local init = os.getenv("LUA_INIT_5_4")
  if init == nil then
    name = "=LUA_INIT"
    init = os.getenv("LUA_INIT")
  end
  if init == nil then return end
  if init:sub(1, 1) == "@" then
    run_chunk(loadfile(init:sub(2)))
  else
    run_chunk(load(init, name))
  end
end

-- --workers N: the supervisor's command for its workers is this one's,
-- without --workers.
local function supervise(workers, script)
  if not script or script == "-" then
    io.stderr:write(progname, ": --workers needs a script\n")
    return 1
  end
  local count = workers == "auto" and "auto" or math.tointeger(tonumber(workers))
  if count == nil or (count ~= "auto" and count < 1) then
    io.stderr:write(progname, ": --workers: a positive number or 'auto' expected, got '",
      workers, "'\n")
    return 1
  end
  local exepath = debug.getregistry()["luaio.exepath"]
  local cmd, i = { exepath and exepath() or progname }, -1
  while arg[i - 1] do i = i - 1 end
  i = i + 1
  while i < 0 do
    local a = arg[i]
    if a == "--workers" then i = i + 1
    elseif a:sub(1, 10) ~= "--workers=" then cmd[#cmd + 1] = a end
    i = i + 1
  end
  cmd[#cmd + 1] = script
  for k = 1, #arg do cmd[#cmd + 1] = arg[k] end
  return aio.workers.run(script, { count = count, command = cmd })
end

return function(actions, script, noenv, interactive, stdin, workers)
  _G.require = require("luaio._require").new(aio)
  local runner = aio.Runner()
  local loop = runner:get_loop()
  loop:_set_cli()
  -- SIGUSR1 prints the tree of live tasks (aio.dump_tasks) to stderr.
  loop:add_signal_handler("SIGUSR1", function() aio.dump_tasks() end)
  loop:_signal_unref("SIGUSR1")
  local main, status
  local function body()
    if not noenv then do_init() end
    for _, a in ipairs(actions) do
      if a[1] == "e" then
        run_chunk(load(a[2], "=(command line)"))
      else
        local mod = a[2]
        _G[mod] = require(mod)
      end
    end
    if script or stdin then
      local path = script
      if script == "-" or stdin then path = nil end
      local args = {}
      for i = 1, #arg do args[i] = arg[i] end
      local chunk, err = loadfile(path)
      if not chunk then error(err, 0) end
      if not interactive then return chunk(table.unpack(args, 1, #arg)) end
      chunk(table.unpack(args, 1, #arg))
    end
    if interactive then
      if not script then
        io.stdout:write(aio._VERSION, " (", _VERSION, ") -- every line runs as a task\n")
      end
      require("luaio._repl")(progname)
    end
  end
  local ok, err = pcall(runner.run, runner, function()
    main = aio.current_task()
    if workers then
      status = supervise(workers, script)
    elseif os.getenv("LUAIO_WORKER_ID") then    -- a worker of a supervisor
      status = select(2, require("luaio.workers")._cli_worker(body))
    else
      return body()
    end
  end)
  status = status or 0
  if not ok then
    if err == "interrupted!" then
      io.stderr:write(progname, ": interrupted!\n")
      status = 130
    elseif aio.is(err, aio.SystemExit) then
      status = exit_status(progname, err)
    else
      -- the message, the main task's traceback (with the chain of awaits)
      -- or the error's own, the errors chained to it, each sub-error
      local tb = main and main:get_stack()
      io.stderr:write(progname, ": ", aio.format_exception(err, tb), "\n")
      status = aio.is(err, aio.KeyboardInterrupt) and 130 or 1
    end
    io.stderr:flush()
  end
  io.stdout:flush()
  runner:close()
  return status
end
