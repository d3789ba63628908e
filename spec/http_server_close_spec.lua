-- spec/http_server_close_spec.lua: server:close() and connections that
-- were accepted but have not sent their first request yet -- the client
-- may have sent it already (a reload under load does this): it is
-- answered (Connection: close), not reset; one that sends nothing is
-- closed after a second's grace, not kept for head_timeout.
local aio = require "luaio"
local H = require "helper"

describe("aio.http server:close() and a connection without its first request", function()
  it("answers a request that comes just after close, then closes", function()
    H.closes_fds(function()
      local server = aio.http.serve(function(req) return 200, {}, "hello " .. req.path end,
        "127.0.0.1", 0)
      local _, port = server:getsockname()
      local r, w = aio.open_connection("127.0.0.1", port)
      aio.sleep(0.05)                          -- accepted, nothing sent
      server:close()
      aio.sleep(0.2)
      w:write("GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
      local answer = r:read()                  -- to the end: the server closes
      assert.matches("^HTTP/1.1 200 OK\r\n", answer)
      assert.matches("\r\nConnection: close\r\n", answer, 1, true)
      assert.matches("hello /late$", answer)
      w:close()
      server:wait_closed()
    end, 5, H.warm_up)
  end)

  it("closes one that sends nothing after the grace, long before head_timeout", function()
    H.closes_fds(function()
      local server = aio.http.serve(function() return 200, {}, "x" end, "127.0.0.1", 0,
        { head_timeout = 30 })
      local _, port = server:getsockname()
      local r, w = aio.open_connection("127.0.0.1", port)
      aio.sleep(0.05)
      local t0 = aio.time()
      server:close()
      assert.equal("", r:read())               -- closed by the server
      local took = aio.time() - t0
      assert.is_true(took >= 0.9 and took < 3, "closed after " .. took .. " s")
      w:close()
      server:wait_closed()
    end, 8, H.warm_up)
  end)

  it("still closes an idle keep-alive connection at once", function()
    H.closes_fds(function()
      local server = aio.http.serve(function() return 200, {}, "x" end, "127.0.0.1", 0)
      local _, port = server:getsockname()
      local r, w = aio.open_connection("127.0.0.1", port)
      w:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.matches("\r\n\r\nx$", r:readuntil("\r\n\r\nx"))
      local t0 = aio.time()
      server:close()
      assert.equal("", r:read())
      assert.is_true(aio.time() - t0 < 0.5)
      w:close()
      server:wait_closed()
    end, 5, H.warm_up)
  end)
end)
