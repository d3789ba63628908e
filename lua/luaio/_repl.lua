-- luaio._repl: the interactive prompt (`luaio -i`, or `luaio` on a terminal).
--
-- Like lua's: expressions print their values, an incomplete statement
-- asks for more lines (">> "), _PROMPT/_PROMPT2 change the prompts.  Each
-- input runs as a task on the live loop, so `aio.sleep(1)` works at the
-- prompt, and tasks started at the prompt keep running while it waits:
-- input is read through the loop (a StreamReader on stdin), never with a
-- blocking read.  Ctrl-C cancels the running input, not the prompt;
-- Ctrl-D (end of input) leaves, and the tasks still running are
-- cancelled as the loop closes.  Line editing is the terminal's.
local aio = require "luaio"
local core = require "luaio.core"

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
  local loop = aio.get_running_loop()
  loop:add_signal_handler("SIGINT", function()
    if running and not running:done() then
      running:cancel("interrupted")
    elseif tty then
      rl.interrupt()
    else
      io.stdout:write("\n", current_prompt)
      io.stdout:flush()
    end
  end)

  local function prompt(first)
    local p = rawget(_G, first and "_PROMPT" or "_PROMPT2")
    current_prompt = tostring(p or (first and "> " or ">> "))
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
  -- else as many lines as a statement needs.
  local function read_chunk()
    prompt(true)
    local line = readline()
    if line == nil then return nil end
    line = line:gsub("\n$", "")
    local chunk = load("return " .. line, "=stdin")
    if chunk then return chunk end
    local buffer = line
    while true do
      local fn, err = load(buffer, "=stdin")
      if fn then return fn end
      if not err:find("<eof>$") then return false, err end
      prompt(false)
      local more = readline()
      if more == nil then return false, err end
      buffer = buffer .. "\n" .. more:gsub("\n$", "")
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
  io.stdout:write("\n")
  if tty then rl.close() end
  loop:remove_signal_handler("SIGINT")
end
