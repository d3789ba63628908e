-- luaio.ngx_bit: LuaJIT's `bit` module (the BitOp API: tobit, band, bor,
-- bxor, bnot, lshift, rshift, arshift, rol, ror, bswap, tohex) on Lua
-- 5.4's integer operators, for the lua-resty libraries that require
-- "bit" (lua-resty-dns).  As LuaJIT's: operands are taken modulo 2^32,
-- results are signed 32-bit integers.  aio.ngx.install() makes require
-- "bit" return it when no `bit` module is installed.
local M = {}

local floor, fmod = math.floor, math.fmod

--- bit.tobit(x) -> x modulo 2^32 as a signed 32-bit integer
local function tobit(x)
  if type(x) ~= "number" then
    error("bad argument #1 to 'tobit' (number expected, got " .. type(x) .. ")", 2)
  end
  if math.type(x) == "float" then x = math.tointeger(fmod(floor(x), 2^32)) or 0 end
  x = x & 0xffffffff
  if x >= 0x80000000 then x = x - 0x100000000 end
  return x
end
M.tobit = tobit

local function fold(op)
  return function(x, ...)
    local r = tobit(x)
    for i = 1, select("#", ...) do r = op(r, tobit((select(i, ...)))) end
    return tobit(r)
  end
end
M.band = fold(function(a, b) return a & b end)
M.bor = fold(function(a, b) return a | b end)
M.bxor = fold(function(a, b) return a ~ b end)

function M.bnot(x) return tobit(~tobit(x)) end
function M.lshift(x, n) return tobit(tobit(x) << (tobit(n) & 31)) end
function M.rshift(x, n) return tobit((tobit(x) & 0xffffffff) >> (tobit(n) & 31)) end
function M.arshift(x, n) return tobit(tobit(x) // (1 << (tobit(n) & 31))) end

function M.rol(x, n)
  x, n = tobit(x) & 0xffffffff, tobit(n) & 31
  return tobit((x << n) | (x >> (32 - n)))
end

function M.ror(x, n)
  x, n = tobit(x) & 0xffffffff, tobit(n) & 31
  return tobit((x >> n) | (x << (32 - n)))
end

function M.bswap(x)
  x = tobit(x) & 0xffffffff
  return tobit(((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >> 8) & 0xff00) | (x >> 24))
end

--- bit.tohex(x [, n = 8]) -> the low n hex digits (n < 0: upper case)
function M.tohex(x, n)
  n = n and tobit(n) or 8
  local fmt = n < 0 and "%0*X" or "%0*x"
  n = math.min(math.abs(n), 8)
  local s = ("%08x"):format(tobit(x) & 0xffffffff)
  return (fmt == "%0*X" and s:upper() or s):sub(-n)
end

return M
