-- luaio._repl: the interactive prompt (`luaio -i`, or `luaio` on a terminal).
--
-- Like lua's: expressions print their values, an incomplete statement
-- asks for more lines (">> "), _PROMPT/_PROMPT2 change the prompts.  Each
-- input runs as a task on the live loop, so `aio.sleep(1)` works at the
-- prompt (`aio` is there already), and tasks started at the prompt keep
-- running while it waits: input is read through the loop (a StreamReader
-- on stdin), never with a blocking read.  Ctrl-C cancels the running
-- input, not the prompt; at the prompt it drops what was typed, the
-- lines of an unfinished statement too.  Ctrl-D (end of input) leaves,
-- and the tasks still running are cancelled as the loop closes.
--
-- On a terminal with GNU readline: line editing, history kept in a file
-- (LUAIO_HISTORY, else $XDG_STATE_HOME/luaio_history, else
-- ~/.luaio_history; LUAIO_HISTORY= empty keeps none), and what tasks
-- print while the prompt waits is written above it, the prompt and the
-- line being typed drawn again below.
local aio = require "luaio"
local core = require "luaio.core"

-- The history file's path, or nil for none.
local function history_path()
  local path = os.getenv("LUAIO_HISTORY")
  if path then return path ~= "" and path or nil end
  local state = os.getenv("XDG_STATE_HOME")
  if state and state ~= "" then return state .. "/luaio_history" end
  local home = os.getenv("HOME")
  return home and home ~= "" and home .. "/.luaio_history" or nil
end

-- Wraps print, io.write and the standard files' write so that output
-- while the prompt waits goes above it (rl.hide/show); -> undo().
local function around_output(rl, loop)
  local function shown(ok, ...)
    rl.show()
    if not ok then error((...), 0) end
    return ...
  end
  local function wrap(f)
    return function(...)
      if not rl.hide() then return f(...) end   -- no prompt shown
      return shown(pcall(f, ...))
    end
  end
  local methods = getmetatable(io.stdout).__index
  local print0, write0, fwrite0 = print, io.write, methods.write
  local fwrite, print1 = wrap(fwrite0), wrap(print0)
  rawset(_G, "print", print1)
  rawset(io, "write", wrap(write0))
  methods.write = function(f, ...)
    if rawequal(f, io.stdout) or rawequal(f, io.stderr) then return fwrite(f, ...) end
    return fwrite0(f, ...)
  end
  -- errors of tasks nobody awaits are printed by the loop's handler
  local handler0 = loop:get_exception_handler()
  loop:set_exception_handler(function(l, ctx)
    local hid = rl.hide()
    if handler0 then handler0(l, ctx) else l:default_exception_handler(ctx) end
    if hid then rl.show() end
  end)
  return function()
    if rawget(_G, "print") == print1 then rawset(_G, "print", print0) end
    rawset(io, "write", write0)
    methods.write = fwrite0
    loop:set_exception_handler(handler0)
  end
end

return function(progname)
  -- A terminal with GNU readline (line editing, history), else a stream
  -- on stdin, else (a regular file) plain reads.
  local have_rl, rl = pcall(require, "luaio._readline")
  local tty = have_rl and core.stdin_is_tty and core.stdin_is_tty()
  local reader = not tty and core.stdin_reader() or nil
  local current_prompt = "> "
  local function readline()
    if tty then return rl.readline(current_prompt) end
    io.stdout:write(current_prompt)
    io.stdout:flush()
    if reader then return reader:readline() end
    return io.stdin:read("L")          -- a regular file: nothing to wait for
  end

  local running = nil                  -- the task of the input being run
  local interrupted = false            -- Ctrl-C while a line was awaited
  local loop = aio.get_running_loop()

  local function prompt(first)
    local p = rawget(_G, first and "_PROMPT" or "_PROMPT2")
    current_prompt = tostring(p or (first and "> " or ">> "))
  end

  loop:add_signal_handler("SIGINT", function()
    if running and not running:done() then
      running:cancel("interrupted")
    elseif tty then
      rl.interrupt()                   -- the waiting readline() gives false
    else
      interrupted = true               -- the next line begins afresh
      prompt(true)
      io.stdout:write("\n", current_prompt)
      io.stdout:flush()
    end
  end)

  if rawget(_G, "aio") == nil then rawset(_G, "aio", aio) end
  local undo_output
  if tty then
    local path = history_path()
    if path then
      local ok, why = rl.history(path)
      if not ok then io.stderr:write(progname, ": history not kept: ", why, "\n") end
    end
    undo_output = around_output(rl, loop)
  end

  local function report(err)
    local msg = err
    if type(err) ~= "string" then
      local mt = getmetatable(err)
      if mt and mt.__tostring then msg = tostring(err)
      else msg = ("(error object is a %s value)"):format(type(err)) end
    end
    io.stderr:write(progname, ": ", msg, "\n")
    io.stderr:flush()
  end

  -- Reads one complete chunk: "return <line>" when that compiles,
  -- else as many lines as a statement needs.  Ctrl-C while waiting for a
  -- line drops the lines read so far.
  local function read_chunk()
    local buffer, err
    while true do
      prompt(buffer == nil)
      interrupted = false
      local line = readline()
      if line == nil then                -- end of input
        if buffer == nil or interrupted then return nil end
        return false, err
      end
      if line == false or interrupted then buffer = nil end
      if line then
        line = line:gsub("\n$", "")
        if buffer == nil then
          local chunk = load("return " .. line, "=stdin")
          if chunk then return chunk end
          buffer = line
        else
          buffer = buffer .. "\n" .. line
        end
        local fn
        fn, err = load(buffer, "=stdin")
        if fn then return fn end
        if not err:find("<eof>$") then return false, err end
      end
    end
  end

  local function show(ok, ...)
    if not ok then return end
    if select("#", ...) > 0 then print(...) end
  end

  while true do
    local fn, err = read_chunk()
    if fn == nil then break end        -- end of input
    if fn == false then
      report(err)
    else
      running = aio.create_task(fn)
      running:set_name("stdin")
      local results = table.pack(pcall(running.await, running))
      local t = running
      running = nil
      if results[1] then
        show(table.unpack(results, 1, results.n))
      elseif aio.is(results[2], aio.CancelledError) and t:cancelled() then
        io.stderr:write(progname, ": interrupted\n")
      else
        local tb = t:get_stack()
        report(results[2])
        if tb then io.stderr:write(tb, "\n") end
      end
    end
  end
  if undo_output then undo_output() end
  io.stdout:write("\n")
  if tty then rl.close() end
  loop:remove_signal_handler("SIGINT")
end
