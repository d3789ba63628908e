-- jobs.lua: run N shell jobs in parallel, at most 3 at a time, and collect
-- their output and exit codes.
-- expect: job 8: 64 %(exit 0%)
local aio = require "luaio"

local limit = aio.Semaphore(3)
local running, peak = 0, 0

local function job(i)
  local _ <close> = limit:acquire()
  running = running + 1
  peak = math.max(peak, running)
  local p = aio.create_subprocess_shell(
    ("sleep 0.0%d; echo $((%d * %d))"):format(i % 3, i, i),
    { stdout = aio.PIPE, stderr = aio.PIPE })
  local out = p:communicate()
  running = running - 1
  return ("job %d: %s (exit %d)"):format(i, (out:gsub("%s+$", "")), p.returncode)
end

local jobs = {}
for i = 1, 8 do jobs[i] = function() return job(i) end end
for _, line in ipairs(aio.gather(jobs)) do print(line) end
print(("at most %d jobs ran at once"):format(peak))

-- a program that is not there is an OSError, not a crash
local _, err = pcall(aio.create_subprocess_exec, "no-such-program", {})
print("missing program: " .. tostring(err.code))
