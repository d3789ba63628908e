-- Every code block in docs/ marked "```lua -- runnable" runs through the
-- CLI without error, so the docs never rot.
local H = require "helper"

local function blocks(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  local out = {}
  for indent, code in text:gmatch("\n( *)```lua %-%- runnable\n(.-)\n *```") do
    -- blocks inside list items are indented: take the indent off
    local lines = {}
    for line in (code .. "\n"):gmatch("(.-)\n") do
      lines[#lines + 1] = line:sub(1, #indent) == indent and line:sub(#indent + 1) or line
    end
    out[#out + 1] = table.concat(lines, "\n")
  end
  return out
end

describe("runnable code in the docs", function()
  local p = io.popen("ls " .. H.quote(H.ROOT .. "/docs") .. "/*.md " .. H.quote(H.ROOT .. "/README.md"))
  local files = {}
  for line in p:lines() do files[#files + 1] = line end
  p:close()
  local total = 0
  for _, path in ipairs(files) do
    for i, code in ipairs(blocks(path)) do
      total = total + 1
      it(("%s block %d runs"):format(path:match("[^/]+$"), i), function()
        local script = H.script(code)
        local r = H.cli({ script })
        os.remove(script)
        assert.equal(0, r.status, r.stderr)
        assert.not_matches("stack traceback", r.stderr, 1, true)
      end)
    end
  end
  it("finds runnable blocks", function()
    assert.is_true(total >= 3)
  end)
end)
