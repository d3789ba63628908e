-- bench/procstatus.lua: this process's memory from /proc/self/status, KiB.
local M = {}

local function field(name)
  local f = io.open("/proc/self/status")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return tonumber(s:match(name .. ":%s+(%d+)")) or -1
end

function M.peak_kb() return field("VmHWM") end  -- peak resident set
function M.rss_kb() return field("VmRSS") end   -- resident set now

return M
