-- spec/http_server_finish_spec.lua: res:finish(data) with a small body
-- (sent with the head) keeps the connection alive and holds to the
-- Content-Length the handler gave.  (Found by the client's cancellation
-- sweep: a 302 written with write_head + finish closed its connection,
-- so the redirect never reused it.)
local aio = require "luaio"
local H = require "helper"

-- Sends each request of list on one connection and reads each answer
-- (whole: Content-Length framed) -> the answers; nil for none (closed).
local function exchange(port, list)
  local r, w = aio.open_connection("127.0.0.1", port)
  local out = {}
  for i, path in ipairs(list) do
    if not pcall(w.write, w, "GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n") then break end
    local ok, head = pcall(r.readuntil, r, "\r\n\r\n")
    if not ok then break end
    local len = tonumber(head:match("\r\nContent%-Length: (%d+)\r\n"))
    out[i] = head:gsub("\r\nDate: [^\r]*", "") .. r:readexactly(len)
  end
  w:close()
  w:wait_closed()
  return out
end

describe("aio.http server: res:finish(data)", function()
  it("with a small body after write_head or alone keeps the connection alive", function()
    H.closes_fds(function()
      local srv = aio.http.serve(function(req, res)
        if req.path == "/alone" then
          res:finish("fin")
        elseif req.path == "/length" then
          res:write_head(302, { Location = "/x", ["Content-Length"] = 5 })
          aio.sleep(0)
          res:finish("moved")
        else
          return 200, {}, "ok"
        end
      end, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      local got = exchange(port, { "/alone", "/length", "/other" })
      assert.same({
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfin",
        "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 5\r\n\r\nmoved",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      }, got)
      srv:close()
      srv:wait_closed()
    end, 5, H.warm_up)
  end)

  it("a body shorter than the Content-Length closes; a longer one is refused", function()
    H.closes_fds(function()
      local errors = {}
      local srv = aio.http.serve(function(req, res)
        res:write_head(200, { ["Content-Length"] = 5 })
        if req.path == "/short" then
          res:finish("abc")
        else
          local ok, err = pcall(res.finish, res, "abcdef")
          errors[#errors + 1] = err
          assert(not ok)
          res:finish("abcde")
        end
      end, "127.0.0.1", 0)
      local _, port = srv:getsockname()
      -- short: the connection closes after it (read() returns: the end)
      local r, w = aio.open_connection("127.0.0.1", port)
      w:write("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
      local all = r:read()
      assert.equal("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
        (all:gsub("\r\nDate: [^\r]*", "")))
      w:close()
      -- long: finish raises and sends nothing of it; the right body goes
      local got = exchange(port, { "/long", "/long" })
      assert.same({ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde",
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde" }, got)
      assert.equal(2, #errors)
      assert.equal("write: more than the Content-Length (5 bytes left, 6 given)", errors[1])
      srv:close()
      srv:wait_closed()
    end, 5, H.warm_up)
  end)
end)
