-- luaio.process: aio.create_subprocess_exec / _shell (asyncio's
-- subprocess API) on core.spawn (runtime/process.c).
--
--   aio.create_subprocess_exec(program, args [, opts]) -> process
--   aio.create_subprocess_shell(cmd [, opts]) -> process   (/bin/sh -c)
--   opts.stdin/stdout/stderr = aio.PIPE | aio.DEVNULL | aio.STDOUT (stderr
--   only) | nil (inherit); opts.env (name -> value, replaces the
--   environment; a name is not empty and has no '='); opts.cwd;
--   opts.limit (pipe readers' limit); opts.start_new_session (the child
--   leads a session and process group: process:killpg); opts.pass_fds
--   (descriptors the child keeps).  stdin/stdout/stderr may be a
--   descriptor (the child gets a copy).  stdin may be a StreamReader and
--   stdout/stderr a StreamWriter (another process's pipe): handed to the
--   child, they are closed here and leave their process.  A '\0' in the
--   program, an argument, env or cwd is refused (runtime/process.c).
--   process.pid, .stdin (writer), .stdout/.stderr (readers), .returncode
--   process:wait() -> code; process:communicate([input]) -> stdout, stderr
--   process:send_signal(sig), :terminate(), :kill(), :killpg(sig)
--
-- Suspension points: wait (a cancelled wait leaves no zombie: the child
-- is reaped when it exits), communicate (cancelling it cancels its reads
-- and writes; the child keeps running).
local core = require "luaio.core"

local M = {}

M.PIPE = "pipe"
M.DEVNULL = "devnull"
M.STDOUT = "stdout"

local Process = {}
Process.__name = "Process"
Process.__index = function(self, k)
  if k == "returncode" then return rawget(self, "_p"):returncode() end
  return Process[k]
end

function Process:__tostring()
  return ("Process(pid=%d, returncode=%s)"):format(self.pid, tostring(self.returncode))
end

--- process:wait() -> exit code (minus the signal number if killed by one)
local function check(self, name)
  if getmetatable(self) ~= Process then core.bad_self(self, "Process", name, 3) end
end

function Process:wait()
  check(self, "wait")
  return self._p:wait()
end

function Process:send_signal(sig)
  check(self, "send_signal")
  self._p:kill(sig)
end

--- process:killpg(sig): sig to the process group the child leads
--- (start_new_session), its children included, even once it has exited.
function Process:killpg(sig)
  check(self, "killpg")
  self._p:killpg(sig)
end

function Process:terminate()
  check(self, "terminate")
  self._p:kill("SIGTERM")
end

function Process:kill()
  check(self, "kill")
  self._p:kill("SIGKILL")
end

--- process:communicate([input]) -> stdout, stderr ("" for an empty
--- pipe, nil for one not piped), once the process has exited.
function Process:communicate(input)
  check(self, "communicate")
  if input ~= nil and type(input) ~= "string" then
    error(("bad argument #1 to 'communicate' (string expected, got %s)"):format(type(input)), 2)
  end
  if input ~= nil and not self.stdin then
    error("communicate: input given but stdin is not a pipe", 2)
  end
  local jobs, slots = {}, {}
  if self.stdin then
    jobs[#jobs + 1] = function()
      if input ~= nil and #input > 0 then
        local ok, err = pcall(function()
          self.stdin:write(input)
          self.stdin:drain()
        end)
        -- a child that does not read its input (EPIPE) is not an error here
        if not ok and not core.is(err, core.OSError) then error(err, 0) end
      end
      self.stdin:close()
    end
    slots[#jobs] = false
  end
  if self.stdout then
    jobs[#jobs + 1] = function() return self.stdout:read() end
    slots[#jobs] = "out"
  end
  if self.stderr then
    jobs[#jobs + 1] = function() return self.stderr:read() end
    slots[#jobs] = "err"
  end
  local out, err
  if #jobs > 0 then
    local res = M._aio.gather(jobs)
    for i = 1, #jobs do
      if slots[i] == "out" then out = res[i] elseif slots[i] == "err" then err = res[i] end
    end
  end
  self:wait()
  return out, err
end

local OPTIONS = { stdin = true, stdout = true, stderr = true, env = true,
                  cwd = true, limit = true, start_new_session = true,
                  pass_fds = true }

local reg = debug.getregistry()

-- The process whose pipe a stream is (weak keys): a stream handed to
-- another child is no longer its.
local owner = setmetatable({}, { __mode = "k" })

-- opts[k] for one of the standard three: a mode, or a stream to hand over.
local function stdio_option(v, k, fname)
  if v == nil or v == M.PIPE or v == M.DEVNULL or (v == M.STDOUT and k == "stderr") then
    return v
  end
  if v == M.STDOUT then
    error(("%s: option '%s': aio.STDOUT is only for stderr"):format(fname, k), 4)
  end
  local want = k == "stdin" and "StreamReader" or "StreamWriter"
  if getmetatable(v) == reg["luaio." .. want] then return v end
  if math.type(v) == "integer" and v >= 0 then return v end
  error(("%s: option '%s' must be aio.PIPE, aio.DEVNULL%s, a %s, a descriptor or nil"):format(
    fname, k, k == "stderr" and ", aio.STDOUT" or "", want), 4)
end

local function check_pass_fds(fds, fname)
  local bad = type(fds) ~= "table"
  if not bad then
    for _, fd in ipairs(fds) do
      if math.type(fd) ~= "integer" then bad = true; break end
      if fd <= 2 then
        error(("%s: pass_fds: descriptor %d is a standard one (use the stdin, "
          .. "stdout and stderr options)"):format(fname, fd), 4)
      end
    end
  end
  if bad then
    error(fname .. ": option 'pass_fds' must be a list of descriptors (integers)", 4)
  end
  return fds
end

local function checkopts(opts, fname, n)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (options table expected, got %s)"):format(n, fname, type(opts)), 3)
  end
  core.check_options(opts, fname, OPTIONS, 3)
  opts = opts or {}
  local o = { cwd = opts.cwd, fname = fname }
  for _, k in ipairs { "stdin", "stdout", "stderr" } do
    o[k] = stdio_option(opts[k], k, fname)
  end
  if opts.cwd ~= nil and type(opts.cwd) ~= "string" then
    error(fname .. ": option 'cwd' must be a string", 3)
  end
  if opts.start_new_session ~= nil then
    if type(opts.start_new_session) ~= "boolean" then
      error(fname .. ": option 'start_new_session' must be a boolean", 3)
    end
    o.start_new_session = opts.start_new_session
  end
  if opts.pass_fds ~= nil then o.pass_fds = check_pass_fds(opts.pass_fds, fname) end
  if opts.env ~= nil then
    if type(opts.env) ~= "table" then error(fname .. ": option 'env' must be a table", 3) end
    local env = {}
    for k, v in pairs(opts.env) do
      if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
        error(fname .. ": option 'env' maps names to string values", 3)
      end
      if k == "" or k:find("=", 1, true) then   -- the child would split it elsewhere
        error(("%s: option 'env' has an invalid variable name '%s'"):format(fname, k), 3)
      end
      env[#env + 1] = k .. "=" .. tostring(v)
    end
    table.sort(env)
    o.env = env
  end
  return o, opts.limit
end

local function spawn(program, args, opts, limit)
  local p, stdin, stdout, stderr = core.spawn(program, args, opts)
  if limit then
    if stdout then stdout:_set_limit(limit) end
    if stderr then stderr:_set_limit(limit) end
  end
  -- the streams handed to this child are no longer their process's
  for _, k in ipairs { "stdin", "stdout", "stderr" } do
    local s = opts[k]
    local from = type(s) == "userdata" and owner[s]
    if from then
      for _, f in ipairs { "stdin", "stdout", "stderr" } do
        if rawequal(rawget(from, f), s) then rawset(from, f, nil) end
      end
      owner[s] = nil
    end
  end
  local proc = setmetatable({ _p = p, pid = p:pid(), stdin = stdin, stdout = stdout,
    stderr = stderr }, Process)
  if stdin then owner[stdin] = proc end
  if stdout then owner[stdout] = proc end
  if stderr then owner[stderr] = proc end
  return proc
end

--- aio.create_subprocess_exec(program, args [, opts])
function M.create_subprocess_exec(program, args, opts)
  if type(program) ~= "string" then
    error(("bad argument #1 to 'create_subprocess_exec' (string expected, got %s)"):format(type(program)), 2)
  end
  if args ~= nil and type(args) ~= "table" then
    error(("bad argument #2 to 'create_subprocess_exec' (table expected, got %s)"):format(type(args)), 2)
  end
  local o, limit = checkopts(opts, "create_subprocess_exec", 3)
  local p = spawn(program, args or {}, o, limit)   -- (no tail call: errors
  return p                                          -- of core.spawn blame our caller)
end

--- aio.create_subprocess_shell(cmd [, opts])
function M.create_subprocess_shell(cmd, opts)
  if type(cmd) ~= "string" then
    error(("bad argument #1 to 'create_subprocess_shell' (string expected, got %s)"):format(type(cmd)), 2)
  end
  local o, limit = checkopts(opts, "create_subprocess_shell", 2)
  local p = spawn("/bin/sh", { "-c", cmd }, o, limit)
  return p
end

M.Process = Process

return M
