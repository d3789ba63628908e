-- pipeline.lua: a pipeline of subprocesses, like `seq 1 1000 | grep 7 | wc -l`,
-- with luaio moving the data between them (and counting it on the way).
-- expect: lines with a 7: 271
local aio = require "luaio"

local seq = aio.create_subprocess_exec("seq", { "1", "1000" }, { stdout = aio.PIPE })
local grep = aio.create_subprocess_exec("grep", { "7" }, { stdin = aio.PIPE, stdout = aio.PIPE })
local wc = aio.create_subprocess_exec("wc", { "-l" }, { stdin = aio.PIPE, stdout = aio.PIPE })

-- copy one process's output into the next one's input, counting bytes
local function pump(from, to)
  local n = 0
  while true do
    local chunk = from:read(4096)
    if not chunk then break end
    n = n + #chunk
    to:write(chunk)
    to:drain()
  end
  to:close()
  return n
end

local moved = aio.gather({
  function() return pump(seq.stdout, grep.stdin) end,
  function() return pump(grep.stdout, wc.stdin) end,
})
local count = wc.stdout:read():match("%d+")
print("lines with a 7: " .. count)
print(("bytes moved: %d then %d; exit codes %d %d %d"):format(
  moved[1], moved[2], seq:wait(), grep:wait(), wc:wait()))
