-- spec/http_parser_spec.lua: core.http_parser (HTTP/1.x on llhttp, pulled
-- one event at a time) as the HTTP server and client rely on it -- heads,
-- bodies, pipelining, the same bytes in any split, responses without a
-- body, limits, malformed and smuggling input, upgrades, bad arguments --
-- and the helpers of luaio.http_headers (header lists, URLs, queries).
-- Nothing here runs a loop: the parser is plain data in, events out.
local aio = require "luaio"
local hh = require "luaio.http_headers"
local H = require "helper"

local core = aio.core

-- Feeds chunks (a list of strings) to a fresh parser of kind, pulling
-- every event; returns the events normalised so that the split does not
-- show: {"head", head}, {"body", bytes} (all of a message's body, once,
-- before its "done"), {"done"}, {"upgrade", the bytes after the head},
-- {"error", code}, and, with opts.finish, what finish() returns at the
-- end ({"done"} with its {"body"}, {"error", code} or nothing).
-- opts.skip: skip_body() before the first byte (a HEAD request's answer).
-- With limits.done_with_head, a "head" that ends its message (a fourth
-- value, true) shows as {"head", head}, {"done"}; opts.ended counts them.
local function drive(kind, chunks, limits, opts)
  opts = opts or {}
  local p = core.http_parser(kind, limits)
  if opts.skip then p:skip_body() end
  local out, body = {}, {}
  local function flush_body()
    local b = table.concat(body)
    if b ~= "" then out[#out + 1] = { "body", b } end
    body = {}
  end
  for i, chunk in ipairs(chunks) do
    local pos = 1
    while true do
      local ev, at, x, ended = p:execute(chunk, pos)
      if ev == "head" then
        out[#out + 1] = { "head", x }
        if ended then
          assert.is_true(ended)
          out[#out + 1] = { "done" }
          opts.ended = (opts.ended or 0) + 1
        end
      elseif ev == "done" then
        body[#body + 1] = x
        flush_body()
        out[#out + 1] = { "done" }
      elseif ev == "more" then
        assert.equal(#chunk + 1, at)
        body[#body + 1] = x
        break
      elseif ev == "upgrade" then
        flush_body()
        out[#out + 1] = { "upgrade", chunk:sub(at) .. table.concat(chunks, "", i + 1) }
        return out, p
      elseif ev == "error" then
        flush_body()
        out[#out + 1] = { "error", x }
        return out, p
      else
        error("unexpected event " .. tostring(ev))
      end
      pos = at
    end
  end
  if opts.finish then
    local ev, x, code = p:finish()
    if ev == "done" then
      body[#body + 1] = x
      flush_body()
      out[#out + 1] = { "done" }
    elseif ev == "error" then
      flush_body()
      out[#out + 1] = { "error", code }
    else
      assert.is_nil(ev)
    end
  end
  flush_body()
  return out, p
end

-- The events of data fed in one piece.
local function events(kind, data, limits, opts)
  return (drive(kind, { data }, limits, opts))
end

-- The single head of a message.
local function head_of(kind, data, limits)
  local ev = events(kind, data, limits)
  assert.equal("head", ev[1][1])
  return ev[1][2]
end

-- data cut into pieces of the given sizes (cycled), and byte by byte.
local function split(data, sizes)
  local out, i, k = {}, 1, 0
  while i <= #data do
    k = k % #sizes + 1
    out[#out + 1] = data:sub(i, i + sizes[k] - 1)
    i = i + sizes[k]
  end
  return out
end
local function bytes(data) return split(data, { 1 }) end

local function one_error(kind, data, limits)
  local ev = events(kind, data, limits)
  local last = ev[#ev]
  assert.equal("error", last[1], "no error in " .. data)
  return last[2]
end

describe("core.http_parser", function()

  describe("request heads", function()
    it("gives method, target, version and the headers in order, as sent", function()
      local h = head_of("request", "GET /a/b?x=1&y=%20 HTTP/1.1\r\n" ..
        "Host: example.com\r\nX-Twice: 1\r\nAccept: */*\r\nx-twice: 2\r\nEmpty:\r\n" ..
        "Spaces:   padded value  \r\n\r\n")
      assert.equal("GET", h.method)
      assert.equal("/a/b?x=1&y=%20", h.target)
      assert.equal("1.1", h.version)
      assert.same({ "Host", "example.com", "X-Twice", "1", "Accept", "*/*", "x-twice", "2",
                    "Empty", "", "Spaces", "padded value  " }, h.headers)
      assert.is_true(h.keep_alive)
      assert.is_false(h.upgrade)
      assert.is_false(h.chunked)
      assert.is_nil(h.content_length)
      assert.is_nil(h.status)
      assert.is_nil(h.reason)
    end)

    it("keeps empty values apart from the next name", function()
      local h = head_of("request", "GET / HTTP/1.1\r\nA:\r\nB:\r\nC: c\r\n\r\n")
      assert.same({ "A", "", "B", "", "C", "c" }, h.headers)
    end)

    it("knows the methods, and refuses unknown or lower-case ones", function()
      for _, m in ipairs { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE",
                           "PATCH", "PROPFIND" } do
        assert.equal(m, head_of("request", m .. " / HTTP/1.1\r\n\r\n").method)
      end
      assert.equal("HPE_INVALID_METHOD", one_error("request", "get / HTTP/1.1\r\n\r\n"))
    end)

    it("gives an absolute-form, authority-form or asterisk target as it came", function()
      assert.equal("http://x.example/a?b", head_of("request", "GET http://x.example/a?b HTTP/1.1\r\n\r\n").target)
      assert.equal("*", head_of("request", "OPTIONS * HTTP/1.1\r\n\r\n").target)
      local h = head_of("request", "CONNECT x.example:443 HTTP/1.1\r\n\r\n")
      assert.equal("x.example:443", h.target)
      assert.is_true(h.upgrade)
    end)

    it("skips empty lines before a request", function()
      local ev = events("request", "\r\n\r\nGET / HTTP/1.1\r\n\r\n")
      assert.equal("/", ev[1][2].target)
      assert.same({ "done" }, ev[2])
    end)

    it("decides keep_alive from the version and Connection", function()
      local cases = {
        { "1.1", nil, true }, { "1.1", "close", false }, { "1.1", "keep-alive", true },
        { "1.1", "Close", false }, { "1.0", nil, false }, { "1.0", "keep-alive", true },
        { "1.0", "Keep-Alive", true }, { "1.0", "close", false },
      }
      for _, c in ipairs(cases) do
        local data = "GET / HTTP/" .. c[1] .. "\r\n" ..
          (c[2] and ("Connection: " .. c[2] .. "\r\n") or "") .. "\r\n"
        local h = head_of("request", data)
        assert.equal(c[1], h.version)
        assert.equal(c[3], h.keep_alive, data)
      end
    end)

    it("gives content_length and chunked", function()
      local h = head_of("request", "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
      assert.equal(12, h.content_length)
      assert.is_true(math.type(h.content_length) == "integer")
      assert.is_false(h.chunked)
      h = head_of("request", "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
      assert.equal(0, h.content_length)
      h = head_of("request", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
      assert.is_true(h.chunked)
      assert.is_nil(h.content_length)
      h = head_of("request", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
      assert.is_true(h.chunked)
    end)

    it("marks an upgrade only with Connection: upgrade", function()
      local h = head_of("request", "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n" ..
        "Upgrade: websocket\r\n\r\n")
      assert.is_true(h.upgrade)
      h = head_of("request", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
      assert.is_false(h.upgrade)
    end)
  end)

  describe("bodies", function()
    it("by Content-Length: the body, then done, at the right position", function()
      local data = "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
      local p = core.http_parser("request")
      local ev, pos, h = p:execute(data)
      assert.equal("head", ev)
      assert.equal(#data - 4, pos)
      assert.equal(5, h.content_length)
      local ev2, pos2, body = p:execute(data, pos)
      assert.same({ "done", #data + 1, "hello" }, { ev2, pos2, body })
      assert.same({ "more", #data + 1, "" }, { p:execute(data, #data + 1) })
    end)

    it("by Content-Length over several calls: more with each piece, then done", function()
      local p = core.http_parser("request")
      local d1 = "PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"
      local ev, pos = p:execute(d1)
      assert.equal("head", ev)
      assert.same({ "more", #d1 + 1, "abc" }, { p:execute(d1, pos) })
      assert.same({ "more", 4, "def" }, { p:execute("def") })
      assert.same({ "done", 5, "ghij" }, { p:execute("ghijGET") })
    end)

    it("chunked, with chunk extensions and trailers", function()
      local data = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "5;name=value\r\nhello\r\n1;flag\r\n \r\n6;q=\"quoted\"\r\nworld!\r\n" ..
        "0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
      local ev = events("request", data)
      assert.is_true(ev[1][2].chunked)
      assert.same({ { "body", "hello world!" }, { "done" } }, { ev[2], ev[3] })
      assert.equal(3, #ev)
    end)

    it("chunked: upper- and lower-case hex sizes", function()
      local data = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"
      local ev = events("request", data)
      assert.same({ "body", "0123456789abcdefghijk" }, ev[2])
    end)

    it("refuses a bad chunk size", function()
      assert.equal("HPE_INVALID_CHUNK_SIZE", one_error("request",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"))
      assert.equal("HPE_INVALID_CHUNK_SIZE", one_error("request",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n"))
    end)

    it("pipelined: several messages in one buffer, one event at a time", function()
      local data = "GET /1 HTTP/1.1\r\n\r\n" ..
        "POST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" ..
        "POST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n" ..
        "GET /4 HTTP/1.0\r\n\r\n"
      local ev = events("request", data)
      local seen = {}
      for _, e in ipairs(ev) do
        seen[#seen + 1] = e[1] == "head" and e[2].target or e[1] == "body" and "body:" .. e[2] or e[1]
      end
      assert.same({ "/1", "done", "/2", "body:abc", "done", "/3", "body:xy", "done",
                    "/4", "done" }, seen)
    end)

    it("positions of pipelined events point just past each event", function()
      local m1 = "GET /1 HTTP/1.1\r\n\r\n"
      local m2 = "POST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"
      local data = m1 .. m2
      local p = core.http_parser("request")
      local _, pos = p:execute(data)
      assert.equal(#m1 + 1, pos)
      local ev
      ev, pos = p:execute(data, pos)
      assert.same({ "done", #m1 + 1 }, { ev, pos })
      ev, pos = p:execute(data, pos)
      assert.same({ "head", #data - 1 }, { ev, pos })
      ev, pos = p:execute(data, pos)
      assert.same({ "done", #data + 1 }, { ev, pos })
    end)

    it("init may point into the data: what is before it is not parsed", function()
      local p = core.http_parser("request")
      local data = "garbage!GET / HTTP/1.1\r\n\r\n"
      local ev, pos, h = p:execute(data, 9)
      assert.equal("head", ev)
      assert.equal(#data + 1, pos)
      assert.equal("/", h.target)
      assert.same({ "done", #data + 1, "" }, { p:execute(data, pos) })
    end)
  end)

  describe("splits", function()
    local MESSAGES = {
      request = "GET /a?b=c HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Long: " .. ("v"):rep(300) .. "\r\n\r\n" ..
        "POST /b HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world" ..
        "\r\nPOST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "4;ext=1\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: t\r\n\r\n" ..
        "GET /d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" ..
        "GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\0\1binary",
      response = "HTTP/1.1 100 Continue\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbody" ..
        "HTTP/1.1 204 No Content\r\n\r\n" ..
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" ..
        "HTTP/1.0 200 OK\r\n\r\nthe rest until EOF\r\n\r\nHTTP/1.1 200 OK\r\n",
    }

    for kind, data in pairs(MESSAGES) do
      it(kind .. "s fed byte by byte give the same events as in one piece", function()
        local whole = drive(kind, { data }, nil, { finish = true })
        assert.is_true(#whole > 8)
        assert.same(whole, drive(kind, bytes(data), nil, { finish = true }))
      end)

      it(kind .. "s in random splits give the same events as in one piece", function()
        local whole = drive(kind, { data }, nil, { finish = true })
        math.randomseed(#data)
        for _ = 1, 200 do
          local sizes = {}
          for j = 1, math.random(1, 8) do sizes[j] = math.random(1, 40) end
          assert.same(whole, drive(kind, split(data, sizes), nil, { finish = true }))
        end
      end)
    end

    it("done_with_head: a request without a body ends with its head, in any split", function()
      local data = MESSAGES.request .. "GET /after-upgrade HTTP/1.1\r\n\r\n"
      local plain = drive("request", { data }, nil, { finish = true })
      local opts = { finish = true }
      local fused = drive("request", { data }, { done_with_head = true }, opts)
      assert.same(plain, fused)
      -- the GETs before the upgrade (not the POSTs, not the upgrade itself)
      assert.equal(2, opts.ended)
      math.randomseed(7)
      for _ = 1, 100 do
        local sizes = {}
        for j = 1, math.random(1, 8) do sizes[j] = math.random(1, 40) end
        opts = { finish = true }
        assert.same(plain, drive("request", split(data, sizes), { done_with_head = true }, opts))
        assert.equal(2, opts.ended)
      end
      -- Content-Length: 0 has no body either; a response never fuses
      opts = {}
      drive("request", { "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" },
        { done_with_head = true }, opts)
      assert.equal(1, opts.ended)
      local p = core.http_parser("response", { done_with_head = true })
      local ev, _, _, ended = p:execute("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
      assert.equal("head", ev)
      assert.is_nil(ended)
      -- an unknown Transfer-Encoding fails after the head, as without it
      -- (a finding of make fuzz)
      local bad = "POST /up HTTP/1.1\r\nTransfer-Encoding: chknued\r\n\r\n"
      local want = drive("request", { bad })
      assert.same({ "error", "HPE_INVALID_TRANSFER_ENCODING" }, want[2])
      assert.same(want, drive("request", { bad }, { done_with_head = true }))
      -- a head over max_head is refused as without it
      p = core.http_parser("request", { done_with_head = true, max_head = 64 })
      local ev2, _, code = p:execute("GET / HTTP/1.1\r\nX: " .. ("a"):rep(80) .. "\r\n\r\n")
      assert.equal("error", ev2)
      assert.equal("HEAD_TOO_LARGE", code)
    end)

    it("an error comes at the same place in any split", function()
      local data = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nBad Header\r\n\r\n"
      local whole = events("request", data)
      assert.same({ "error", "HPE_INVALID_HEADER_TOKEN" }, whole[#whole])
      assert.same(whole, drive("request", bytes(data)))
      assert.same(whole, drive("request", split(data, { 7, 3, 11 })))
    end)
  end)

  describe("responses", function()
    it("gives status, reason, version and headers", function()
      local h = head_of("response", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n" ..
        "Content-Length: 0\r\n\r\n")
      assert.equal(404, h.status)
      assert.equal("Not Found", h.reason)
      assert.equal("1.1", h.version)
      assert.same({ "Content-Type", "text/plain", "Content-Length", "0" }, h.headers)
      assert.is_nil(h.method)
      assert.is_nil(h.target)
      assert.equal("", head_of("response", "HTTP/1.1 200 \r\n\r\n").reason)
    end)

    it("no reason and an empty header name first: an empty piece into no buffer yet", function()
      -- (found by the fuzz target: append() added a zero offset to a NULL
      -- buffer, undefined behaviour that UBSan reports in the ASan build)
      local data = "HTTP/1.1 200\r\n:\r\nContent-Length: 0\r\n\r\n"
      assert.same({ "error", 16, "HPE_INVALID_HEADER_TOKEN", "Empty header field name" },
        { core.http_parser("response"):execute(data) })
      assert.same(events("response", data), drive("response", bytes(data)))
      assert.same({}, head_of("response", "HTTP/1.1 200\r\n\r\n").headers)
    end)

    it("a 100 Continue, then the real response", function()
      local ev = events("response", "HTTP/1.1 100 Continue\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
      assert.equal(100, ev[1][2].status)
      assert.same({ "done" }, ev[2])
      assert.equal(200, ev[3][2].status)
      assert.same({ { "body", "hi" }, { "done" } }, { ev[4], ev[5] })
    end)

    it("a 103 Early Hints with headers, then the real response", function()
      local ev = events("response", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
      assert.equal(103, ev[1][2].status)
      assert.same({ "Link", "</s.css>; rel=preload" }, ev[1][2].headers)
      assert.same({ "done" }, ev[2])
      assert.equal(200, ev[3][2].status)
      assert.same({ "body", "x" }, ev[4])
    end)

    it("204 and 304 have no body", function()
      for _, s in ipairs { "204 No Content", "304 Not Modified" } do
        local ev = events("response", "HTTP/1.1 " .. s .. "\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert.same({ "done" }, ev[2])
        assert.equal(200, ev[3][2].status)
      end
    end)

    it("204, 304 and 1xx have no body even with a Content-Length or chunked", function()
      -- (llhttp 8 read the announced body: the next response's bytes)
      local next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      for _, head in ipairs {
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n",
      } do
        local ev = events("response", head .. next)
        assert.same({ "done" }, ev[2], head)
        assert.equal(200, ev[3][2].status, head)
        assert.same({ { "body", "ok" }, { "done" } }, { ev[4], ev[5] })
        assert.same(ev, drive("response", bytes(head .. next)))
        local h = ev[1][2]
        assert.is_true(h.content_length ~= nil or h.chunked)
      end
    end)

    it("skip_body() outlives interim responses: it is for the final one", function()
      -- (it was used up by a 103 Early Hints, and the HEAD answer's
      -- Content-Length then swallowed the next response)
      local data = "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" ..
        "HTTP/1.1 100 Continue\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      local ev = events("response", data, nil, { skip = true })
      local seen = {}
      for _, e in ipairs(ev) do
        seen[#seen + 1] = e[1] == "head" and e[2].status or e[1] == "body" and "body:" .. e[2] or e[1]
      end
      assert.same({ 103, "done", 100, "done", 200, "done", 200, "body:ok", "done" }, seen)
    end)

    it("a body until EOF, ended by finish()", function()
      local p = core.http_parser("response")
      local data = "HTTP/1.1 200 OK\r\n\r\nsome"
      local ev, pos, h = p:execute(data)
      assert.equal("head", ev)
      assert.is_false(h.keep_alive)
      assert.is_nil(h.content_length)
      assert.same({ "more", #data + 1, "some" }, { p:execute(data, pos) })
      assert.same({ "more", 7, " more" }, { p:execute("x more", 2) })
      assert.same({ "done", "" }, { p:finish() })
    end)

    it("HTTP/1.0 without Content-Length: a body until EOF", function()
      local ev = drive("response", { "HTTP/1.0 200 OK\r\n\r\nab", "cd" }, nil, { finish = true })
      assert.same({ { "body", "abcd" }, { "done" } }, { ev[2], ev[3] })
    end)

    it("Transfer-Encoding without chunked last: a body until EOF", function()
      local ev = drive("response", { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nzzz" },
        nil, { finish = true })
      assert.is_false(ev[1][2].keep_alive)
      assert.same({ { "body", "zzz" }, { "done" } }, { ev[2], ev[3] })
    end)

    it("finish() in the middle of a body is an error", function()
      local p = core.http_parser("response")
      local data = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"
      local _, pos = p:execute(data)
      assert.same({ "more", #data + 1, "ab" }, { p:execute(data, pos) })
      assert.same({ "error", nil, "HPE_INVALID_EOF_STATE", "Invalid EOF state" }, { p:finish() })
    end)

    it("finish() in the middle of a head is an error", function()
      local p = core.http_parser("response")
      assert.equal("more", (p:execute("HTTP/1.1 200 OK\r\nConte")))
      assert.same({ "error", nil, "HPE_INVALID_EOF_STATE", "Invalid EOF state" }, { p:finish() })
    end)

    it("finish() between messages: nothing", function()
      local p = core.http_parser("response")
      local data = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
      local _, pos = p:execute(data)
      assert.equal("done", (p:execute(data, pos)))
      assert.equal("more", (p:execute(data, #data + 1)))
      assert.same({}, { p:finish() })
      assert.same({}, { core.http_parser("request"):finish() })
    end)

    it("finish() right after done: nothing (the peer closed between messages)", function()
      -- (it was HPE_INVALID_EOF_STATE: llhttp_finish judged the state of
      -- the pause at the message's end)
      for kind, data in pairs {
        request = "GET / HTTP/1.1\r\n\r\n",
        response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab",
      } do
        local p = core.http_parser(kind)
        local ev, pos = p:execute(data)
        assert.equal("head", ev)
        assert.equal("done", (p:execute(data, pos)))
        assert.same({}, { p:finish() })
        assert.same({}, { p:finish() })
      end
    end)

    it("finish() right after the head of a body until EOF: done", function()
      local p = core.http_parser("response")
      assert.equal("head", (p:execute("HTTP/1.1 200 OK\r\n\r\n")))
      assert.same({ "done", "" }, { p:finish() })
    end)

    it("finish() right after the head of a message without body: its done", function()
      local p = core.http_parser("response")
      assert.equal("head", (p:execute("HTTP/1.1 204 No Content\r\n\r\n")))
      assert.same({ "done", "" }, { p:finish() })
      assert.same({}, { p:finish() })
      p = core.http_parser("request")
      assert.equal("head", (p:execute("GET / HTTP/1.1\r\n\r\n")))
      assert.same({ "done", "" }, { p:finish() })
    end)

    it("finish() after an error gives the error again, and its error is sticky", function()
      -- (it returned nothing after an execute error: a clean EOF)
      local p = core.http_parser("request")
      assert.equal("error", (p:execute("BREW / HTTP/1.1\r\n\r\n")))
      assert.same({ "error", nil, "HPE_INVALID_METHOD", "Invalid method encountered" }, { p:finish() })
      p = core.http_parser("request", { max_head = 50 })
      assert.equal("error", (p:execute("GET / HTTP/1.1\r\nX: " .. ("y"):rep(100) .. "\r\n")))
      assert.same({ "error", nil, "HEAD_TOO_LARGE", "the message head is too large" }, { p:finish() })
      p = core.http_parser("response")
      local data = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"
      local _, pos = p:execute(data)
      assert.equal("more", (p:execute(data, pos)))
      local eof = { "error", nil, "HPE_INVALID_EOF_STATE", "Invalid EOF state" }
      assert.same(eof, { p:finish() })
      assert.same(eof, { p:finish() })
      assert.same({ "error", 1, "HPE_INVALID_EOF_STATE", "Invalid EOF state" }, { p:execute("x") })
    end)

    it("finish() after an upgrade: nothing", function()
      local _, p = drive("request", { "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n" })
      assert.same({}, { p:finish() })
      p = core.http_parser("request")
      local data = "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n"
      local _, pos = p:execute(data)
      assert.equal("done", (p:execute(data, pos)))
      assert.same({}, { p:finish() })
    end)

    it("skip_body() before a HEAD request's answer: a Content-Length but no body", function()
      local data = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
      local p = core.http_parser("response")
      p:skip_body()
      local ev, pos, h = p:execute(data .. "HTTP/1.1 404 Nope\r\nContent-Length: 1\r\n\r\nx")
      assert.same({ "head", #data + 1, 5 }, { ev, pos, h.content_length })
      assert.same({ "done", #data + 1, "" }, { p:execute(data, pos) })
      -- only that response: the next one has its body
      local ev2 = drive("response", { data .. "HTTP/1.1 404 Nope\r\nContent-Length: 1\r\n\r\nx" },
        nil, { skip = true })
      assert.equal(404, ev2[3][2].status)
      assert.same({ { "body", "x" }, { "done" } }, { ev2[4], ev2[5] })
    end)

    it("skip_body() with a chunked answer: no body either", function()
      local ev = events("response", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" ..
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", nil, { skip = true })
      assert.same({ "done" }, ev[2])
      assert.equal("head", ev[3][1])
    end)

    it("a 101 Switching Protocols: the rest is the new protocol", function()
      local ev = events("response", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n" ..
        "Upgrade: websocket\r\n\r\n\x81\x05hello")
      assert.is_true(ev[1][2].upgrade)
      assert.same({ { "done" }, { "upgrade", "\x81\x05hello" } }, { ev[2], ev[3] })
    end)

    it("refuses a bad status line", function()
      assert.equal("HPE_INVALID_STATUS", one_error("response", "HTTP/1.1 2000 OK\r\n\r\n"))
      assert.equal("HPE_INVALID_CONSTANT", one_error("response", "HTTQ/1.1 200 OK\r\n\r\n"))
    end)
  end)

  describe("upgrade", function()
    it("a websocket request: done, then upgrade with the position of the new protocol's bytes", function()
      local head = "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      local data = head .. "\x81\x85frame"
      local p = core.http_parser("request")
      local ev, pos, h = p:execute(data)
      assert.same({ "head", #head + 1, true }, { ev, pos, h.upgrade })
      assert.same({ "done", #head + 1, "" }, { p:execute(data, pos) })
      assert.same({ "upgrade", #head + 1 }, { p:execute(data, pos) })
      -- and again: the parser is done with this connection
      assert.same({ "upgrade", 3 }, { p:execute("more", 3) })
    end)

    it("CONNECT: the tunnel's bytes are left", function()
      local ev = events("request", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n\22\3\1tls")
      assert.same({ "upgrade", "\22\3\1tls" }, ev[#ev])
    end)

    it("an upgrade request with a body: the body first", function()
      local ev = events("request", "POST /u HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n" ..
        "Content-Length: 2\r\n\r\nabRAW")
      assert.same({ { "body", "ab" }, { "done" }, { "upgrade", "RAW" } }, { ev[2], ev[3], ev[4] })
    end)
  end)

  describe("limits", function()
    it("max_uri: URI_TOO_LONG", function()
      local p = core.http_parser("request", { max_uri = 10 })
      assert.same({ "head" }, { (p:execute("GET /123456789 HTTP/1.1\r\n\r\n")) })
      p = core.http_parser("request", { max_uri = 10 })
      assert.same({ "error", 16, "URI_TOO_LONG", "the request target is too long" },
        { p:execute("GET /1234567890 HTTP/1.1\r\n\r\n") })
      -- also when the target comes one byte at a time
      local ev = drive("request", bytes("GET /1234567890 HTTP/1.1\r\n\r\n"), { max_uri = 10 })
      assert.same({ { "error", "URI_TOO_LONG" } }, ev)
    end)

    it("max_uri applies to requests only: a response's reason is not a target", function()
      local h = head_of("response", "HTTP/1.1 200 " .. ("r"):rep(50) .. "\r\n\r\n", { max_uri = 10 })
      assert.equal(("r"):rep(50), h.reason)
    end)

    it("max_headers: TOO_MANY_HEADERS", function()
      local data = "GET / HTTP/1.1\r\n" .. ("A: 1\r\n"):rep(3) .. "\r\n"
      assert.equal(3, #head_of("request", data, { max_headers = 3 }).headers // 2)
      assert.equal("TOO_MANY_HEADERS", one_error("request", data, { max_headers = 2 }))
      local _, p = drive("request", { data }, { max_headers = 2 })
      assert.same({ "error", 1, "TOO_MANY_HEADERS", "too many header fields" }, { p:execute("x") })
    end)

    it("max_headers past the range of a C int: no limit, not a wrapped one", function()
      -- (2^31 and 2^32 wrapped to a negative or zero limit: every header refused)
      for _, n in ipairs { 1 << 31, 1 << 32, math.maxinteger } do
        assert.equal(1, #head_of("request", "GET / HTTP/1.1\r\nA: 1\r\n\r\n", { max_headers = n }).headers // 2)
      end
    end)

    it("max_headers: 100 by default", function()
      local data = "GET / HTTP/1.1\r\n" .. ("A: 1\r\n"):rep(100) .. "\r\n"
      assert.equal(200, #head_of("request", data).headers)
      data = "GET / HTTP/1.1\r\n" .. ("A: 1\r\n"):rep(101) .. "\r\n"
      assert.equal("TOO_MANY_HEADERS", one_error("request", data))
    end)

    it("max_head: one huge header is HEAD_TOO_LARGE", function()
      local data = "GET / HTTP/1.1\r\nX-Big: " .. ("x"):rep(200) .. "\r\n\r\n"
      assert.equal("HEAD_TOO_LARGE", one_error("request", data, { max_head = 100 }))
      assert.same({ { "error", "HEAD_TOO_LARGE" } }, drive("request", bytes(data), { max_head = 100 }))
      assert.equal("head", events("request", data, { max_head = 300 })[1][1])
    end)

    it("max_head: 8192 by default", function()
      local big = "GET / HTTP/1.1\r\nX-Big: " .. ("x"):rep(9000) .. "\r\n\r\n"
      assert.equal("HEAD_TOO_LARGE", one_error("request", big))
      local ok = "GET / HTTP/1.1\r\nX-Big: " .. ("x"):rep(8000) .. "\r\n\r\n"
      assert.equal("head", events("request", ok)[1][1])
    end)

    it("max_head: a head that never ends, in many small lines over many calls", function()
      local p = core.http_parser("request", { max_head = 1000, max_headers = 10000 })
      assert.equal("more", (p:execute("GET / HTTP/1.1\r\n")))
      local ev, pos, code
      for i = 1, 1000 do
        local line = "A" .. i .. ": b\r\n"
        ev, pos, code = p:execute(line)
        if ev ~= "more" then break end
        assert.equal(#line + 1, pos)
      end
      assert.same({ "error", "HEAD_TOO_LARGE" }, { ev, code })
    end)

    it("max_head: many short lines in one buffer count with their line ends", function()
      -- (only the bytes llhttp hands to callbacks were counted when the
      -- head ended within one call: 60 "A:" lines passed a max_head of 100)
      local data = "GET / HTTP/1.1\r\n" .. ("A:\r\n"):rep(60) .. "\r\n"
      local limits = { max_head = 100, max_headers = 1000 }
      assert.equal("HEAD_TOO_LARGE", one_error("request", data, limits))
      assert.same({ { "error", "HEAD_TOO_LARGE" } }, drive("request", bytes(data), limits))
      -- and whitespace llhttp skips before a value
      data = "GET / HTTP/1.1\r\nA:" .. (" "):rep(200) .. "x\r\n\r\n"
      assert.equal("HEAD_TOO_LARGE", one_error("request", data, { max_head = 100 }))
      assert.equal("head", events("request", data, { max_head = #data })[1][1])
    end)

    it("max_head: exactly max_head bytes pass, one more fails, in any split", function()
      -- a head counts from the end of the message before it: the empty
      -- lines before a request are part of it
      local head = "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\nA:   b  \r\n\r\n"
      local data = "GET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx" .. head
      for _, sizes in ipairs { { #data }, { 1 }, { 2, 3 }, { 7 }, { 40, 1 } } do
        local ok = drive("request", split(data, sizes), { max_head = #head })
        assert.equal("/x", ok[4][2].target)
        local bad = drive("request", split(data, sizes), { max_head = #head - 1 })
        assert.same({ "error", "HEAD_TOO_LARGE" }, bad[4])
      end
    end)

    it("max_head: a head without body (skip_body, 204) is checked too", function()
      local data = "HTTP/1.1 204 No Content\r\nA:" .. (" "):rep(100) .. "b\r\n\r\n"
      assert.equal("HEAD_TOO_LARGE", one_error("response", data, { max_head = 50 }))
      data = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nA:" .. (" "):rep(100) .. "b\r\n\r\n"
      assert.same({ { "error", "HEAD_TOO_LARGE" } }, events("response", data, { max_head = 50 }, { skip = true }))
    end)

    it("the error is sticky: every later execute gives it again", function()
      local p = core.http_parser("request", { max_head = 50 })
      local ev, pos, code, reason = p:execute("GET / HTTP/1.1\r\nX: " .. ("y"):rep(100) .. "\r\n")
      assert.equal("error", ev)
      assert.equal("HEAD_TOO_LARGE", code)
      assert.equal("the message head is too large", reason)
      assert.is_true(pos > 1)
      assert.same({ "error", 1, code, reason }, { p:execute("GET / HTTP/1.1\r\n\r\n") })
      assert.same({ "error", 4, code, reason }, { p:execute("abc", 4) })
    end)

    it("an llhttp error is sticky too", function()
      local p = core.http_parser("request")
      local ev, pos, code = p:execute("BREW / HTTP/1.1\r\n\r\n")
      assert.same({ "error", 2, "HPE_INVALID_METHOD" }, { ev, pos, code })
      assert.same({ "error", 1, "HPE_INVALID_METHOD", "Invalid method encountered" },
        { p:execute("GET / HTTP/1.1\r\n\r\n") })
    end)
  end)

  describe("malformed input", function()
    local CASES = {
      { "a bad method", "FOO / HTTP/1.1\r\n\r\n", "HPE_INVALID_METHOD" },
      { "a bad version", "GET / HTTP/2.5\r\n\r\n", "HPE_INVALID_VERSION" },
      { "not HTTP/", "GET / HXXP/1.1\r\n\r\n", "HPE_INVALID_CONSTANT" },
      { "a space in a target", "GET /a b HTTP/1.1\r\n\r\n", "HPE_INVALID_CONSTANT" },
      { "a control byte in a target", "GET /a\1b HTTP/1.1\r\n\r\n", "HPE_INVALID_URL" },
      { "an invalid header token", "GET / HTTP/1.1\r\nA(b: 1\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a header line without a colon", "GET / HTTP/1.1\r\nNoColon\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a bare LF ending a header line", "GET / HTTP/1.1\r\nHost: x\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a bare CR in a header value", "GET / HTTP/1.1\r\nA: x\ry\r\n\r\n", "HPE_LF_EXPECTED" },
      { "a NUL in a header value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a NUL in a header name", "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH" },
      { "a signed Content-Length", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH" },
      { "a list as Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", "HPE_INVALID_CONTENT_LENGTH" },
      { "a Content-Length past 2^64", "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
        "HPE_INVALID_CONTENT_LENGTH" },
      { "an HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HPE_PAUSED_H2_UPGRADE" },
    }
    for _, c in ipairs(CASES) do
      it(c[1] .. ": " .. c[3], function()
        assert.equal(c[3], one_error("request", c[2]))
        assert.same({ { "error", c[3] } }, drive("request", bytes(c[2])))
      end)
    end

    it("a Content-Length from 2^63 on: HPE_INVALID_CONTENT_LENGTH, not a negative length", function()
      -- (llhttp takes up to 2^64 - 1; 2^64 - 1 came out as content_length -1)
      for _, n in ipairs { "9223372036854775808", "18446744073709551615" } do
        for _, kind in ipairs { "request", "response" } do
          local data = (kind == "request" and "POST / HTTP/1.1" or "HTTP/1.1 200 OK") ..
            "\r\nContent-Length: " .. n .. "\r\n\r\n"
          local p = core.http_parser(kind)
          assert.same({ "error", #data + 1, "HPE_INVALID_CONTENT_LENGTH", "Content-Length overflow" },
            { p:execute(data) })
          assert.same({ { "error", "HPE_INVALID_CONTENT_LENGTH" } }, drive(kind, bytes(data)))
        end
      end
      local h = head_of("request", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n")
      assert.equal(math.maxinteger, h.content_length)
    end)

    it("gives the position of the offending byte", function()
      local p = core.http_parser("request")
      local data = "GET / HTTP/1.1\r\nA(b: 1\r\n\r\n"
      local ev, pos = p:execute(data)
      assert.same({ "error", (data:find("(", 1, true)) }, { ev, pos })
    end)

    it("folds an obsolete line continuation into the value, without the line end", function()
      local h = head_of("request", "GET / HTTP/1.1\r\nA: 1\r\n 2\r\nB: 3\r\n\r\n")
      assert.same({ "A", "1 2", "B", "3" }, h.headers)
    end)
  end)

  describe("smuggling", function()
    local CASES = {
      { "Content-Length with Transfer-Encoding",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HPE_UNEXPECTED_CONTENT_LENGTH" },
      { "Transfer-Encoding, then Content-Length",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "HPE_UNEXPECTED_CONTENT_LENGTH" },
      { "two different Content-Lengths",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HPE_UNEXPECTED_CONTENT_LENGTH" },
      { "two equal Content-Lengths",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "HPE_UNEXPECTED_CONTENT_LENGTH" },
      { "chunked not last in a request",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        "HPE_INVALID_TRANSFER_ENCODING" },
      { "a Transfer-Encoding request without chunked",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "HPE_INVALID_TRANSFER_ENCODING" },
      { "a space before the colon of Content-Length",
        "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\nhello",
        "HPE_INVALID_HEADER_TOKEN" },
      { "a space before the colon of Transfer-Encoding",
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "HPE_INVALID_HEADER_TOKEN" },
      -- (llhttp 8 let a space into other names: "Host " and "X Y" came out)
      { "a space before the colon of Host", "GET / HTTP/1.1\r\nHost : evil.example\r\n\r\n",
        "HPE_INVALID_HEADER_TOKEN" },
      { "a space before the colon of any header", "GET / HTTP/1.1\r\nX-Forwarded-For : 1.2.3.4\r\n\r\n",
        "HPE_INVALID_HEADER_TOKEN" },
      { "a space inside a header name", "GET / HTTP/1.1\r\nX Y: 1\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      -- (and an empty name: ": v" came out as a header "")
      { "an empty header name", "GET / HTTP/1.1\r\n: v\r\nHost: h\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "an empty header name after others", "GET / HTTP/1.1\r\nA: 1\r\n:\r\n\r\n", "HPE_INVALID_HEADER_TOKEN" },
      { "a space in a trailer's name",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX T: 1\r\n\r\n",
        "HPE_INVALID_HEADER_TOKEN" },
      { "a chunk size with a bare LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "HPE_INVALID_CHUNK_SIZE" },
    }
    for _, c in ipairs(CASES) do
      it(c[1] .. ": " .. c[3], function()
        assert.equal(c[3], one_error("request", c[2]))
        local ev = drive("request", bytes(c[2]))
        assert.same({ "error", c[3] }, ev[#ev])
      end)
    end

    it("a space before the colon: refused in a response too", function()
      assert.equal("HPE_INVALID_HEADER_TOKEN", one_error("response",
        "HTTP/1.1 200 OK\r\nSet-Cookie : a=1\r\nContent-Length: 0\r\n\r\n"))
    end)
  end)

  describe("arguments", function()
    -- the message of the error f raises, without the caller's position
    local function err(f)
      local ok, e = pcall(f)
      assert.is_false(ok)
      return (e:gsub("^[^:]+:%d+: ", ""))
    end

    it("http_parser: kind and limits", function()
      assert.equal("bad argument #1 to 'http_parser' (invalid option 'both')",
        err(function() return core.http_parser("both") end))
      assert.equal("bad argument #1 to 'http_parser' (string expected, got no value)",
        err(function() return core.http_parser() end))
      assert.equal("bad argument #2 to 'http_parser' (table expected, got number)",
        err(function() return core.http_parser("request", 5) end))
      for _, bad in ipairs { 0, -1, 1.5, "10", true, 0 / 0, math.mininteger } do
        assert.equal("http_parser: limit 'max_head' must be a positive integer",
          err(function() return core.http_parser("request", { max_head = bad }) end))
      end
      assert.equal("http_parser: limit 'max_uri' must be a positive integer",
        err(function() return core.http_parser("request", { max_uri = 0 }) end))
      assert.equal("http_parser: limit 'max_headers' must be a positive integer",
        err(function() return core.http_parser("response", { max_headers = -5 }) end))
      -- a float with an integer value is not taken for one
      assert.equal("http_parser: limit 'max_head' must be a positive integer",
        err(function() return core.http_parser("request", { max_head = 100.0 }) end))
      assert.is_not_nil(core.http_parser("request", {}))
      assert.is_not_nil(core.http_parser("request", nil))
    end)

    it("execute: data and init", function()
      local p = core.http_parser("request")
      assert.equal("bad argument #1 to 'execute' (string expected, got no value)",
        err(function() return p:execute() end))
      assert.equal("bad argument #1 to 'execute' (string expected, got table)",
        err(function() return p:execute({}) end))
      for _, init in ipairs { 0, 5, -1, math.mininteger, math.maxinteger } do
        assert.equal("bad argument #2 to 'execute' (initial position out of range)",
          err(function() return p:execute("abc", init) end))
      end
      assert.equal("bad argument #2 to 'execute' (number has no integer representation)",
        err(function() return p:execute("abc", 1.5) end))
      -- #data + 1 is in range: nothing to parse
      assert.same({ "more", 4, "" }, { p:execute("abc", 4) })
      -- and the parser is unharmed by the refused calls
      assert.equal("head", (p:execute("GET / HTTP/1.1\r\n\r\n")))
    end)

    it("methods called on something else", function()
      local p = core.http_parser("request")
      local other = { execute = p.execute }
      assert.equal("calling 'execute' on bad self (HttpParser expected, got table)",
        err(function() return other:execute("x") end))
      assert.equal("bad argument #1 to 'execute' (HttpParser expected, got table)",
        err(function() return p.execute({}, "x") end))
      assert.equal("bad argument #1 to 'finish' (HttpParser expected, got no value)",
        err(function() return p.finish() end))
      assert.equal("bad argument #1 to 'skip_body' (HttpParser expected, got string)",
        err(function() return p.skip_body("x") end))
    end)
  end)

  describe("memory", function()
    -- Parsers left in every state: in a head, in a body (its body buffer
    -- filled), after an error, after an upgrade.
    local SCRIPT = [[
      local core = require "luaio".core
      for i = 1, 200 do
        local req = core.http_parser("request", { max_head = 4096 })
        local d = "POST /" .. ("p"):rep(i) .. " HTTP/1.1\r\nX-A: " .. ("v"):rep(i * 10) ..
          "\r\nContent-Length: 100000\r\n\r\n" .. ("b"):rep(i * 50)
        local _, pos = req:execute(d)
        req:execute(d, pos)
        local res = core.http_parser("response")
        res:execute("HTTP/1.1 200 OK\r\nX-Half: " .. ("h"):rep(i * 20))
        core.http_parser("request", { max_head = 100 }):execute("GET / HTTP/1.1\r\nX: " .. ("x"):rep(200))
        local up = core.http_parser("request")
        up:execute("GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nraw")
      end
      collectgarbage()
      collectgarbage()
      print("ok")
    ]]

    it("a parser collected in the middle of a message frees what it holds", function()
      assert.equal("ok\n", H.cli({ "-e", SCRIPT }).stdout)
    end)

    -- Under an ASan build of the CLI, LeakSanitizer checks the frees (with
    -- malloc as the Lua allocator, so that no freed block keeps a pointer
    -- alive); elsewhere the variable is ignored.
    it("a finalizer that uses a parser already collected gets an error, not a crash", function()
      -- (execute went on into the freed buffers: a segfault.)  t is
      -- finalized after its parser (finalizers run in the reverse order
      -- of their setmetatable), and still reaches it.
      local r = H.cli({ "-e", [[
        local core = require "luaio".core
        local got = {}
        do
          local t = setmetatable({}, { __gc = function(self)
            for _, f in ipairs { "execute", "finish", "skip_body" } do
              local ok, e = pcall(function() return self.p[f](self.p, "yz\r\nB: 1\r\n\r\n") end)
              got[#got + 1] = tostring(ok) .. " " .. e:gsub("^[^:]+:%d+: ", "")
            end
          end })
          t.p = core.http_parser("request")
          t.p:execute("GET / HTTP/1.1\r\nA: x")
        end
        collectgarbage()
        collectgarbage()
        print(table.concat(got, "\n"))
      ]] })
      assert.equal("", r.stderr)
      assert.equal(("false attempt to use a collected HttpParser\n"):rep(3), r.stdout)
    end)

    it("and LeakSanitizer finds nothing left (ASan build)", function()
      local r = H.cli({ "-e", SCRIPT }, { env = "ASAN_OPTIONS=detect_leaks=1 LUAIO_ALLOC=malloc" })
      assert.equal("", r.stderr)
      assert.equal(0, r.status)
      assert.equal("ok\n", r.stdout)
    end)
  end)
end)

describe("luaio.http_headers", function()
  -- the message of the error f raises; where: the file and line it names
  local function err(f)
    local ok, e = pcall(f)
    assert.is_false(ok)
    local where, msg = e:match("^([^:]+:%d+): (.*)$")
    return msg or e, where
  end

  describe("Headers", function()
    it("get: the first value, any case; nil when absent", function()
      local h = hh.new { "Content-Type", "text/html", "X-A", "1", "x-a", "2" }
      assert.equal("text/html", h:get("content-type"))
      assert.equal("text/html", h:get("CONTENT-TYPE"))
      assert.equal("1", h:get("X-a"))
      assert.is_nil(h:get("Missing"))
      assert.is_true(h:has("x-A"))
      assert.is_false(h:has("missing"))
    end)

    it("keeps a parser's flat list as it came: names' case, order, repeats, empty values", function()
      local list = { "Set-Cookie", "a=1", "Host", "h", "set-cookie", "b=2", "Empty", "", "SET-COOKIE", "c=3" }
      local h = hh.new(list)
      assert.equal(5, h:count())
      assert.same({ "a=1", "b=2", "c=3" }, h:get_all("Set-Cookie"))
      assert.same({}, h:get_all("nothing"))
      assert.equal("", h:get("empty"))
      local seen = {}
      for name, value in h:each() do seen[#seen + 1] = name .. "=" .. value end
      assert.same({ "Set-Cookie=a=1", "Host=h", "set-cookie=b=2", "Empty=", "SET-COOKIE=c=3" }, seen)
    end)

    it("a {name = value} table: checked, in name order, lists for repeats", function()
      local h = hh.new { b = "2", A = { "x", "y" }, n = 42 }
      local seen = {}
      for name, value in h:each() do seen[#seen + 1] = name .. "=" .. value end
      assert.same({ "A=x", "A=y", "b=2", "n=42" }, seen)
      assert.equal("Headers: a table expected, got string", (err(function() return hh.new("x") end)))
      assert.equal("Headers:add: value of header 'bad' contains CR, LF or NUL",
        (err(function() return hh.new { bad = "a\r\nInjected: 1" } end)))
    end)

    it("copies another Headers", function()
      local a = hh.new { "X", "1", "x", "2" }
      local b = hh.new(a)
      b:add("Y", "3")
      assert.equal(2, a:count())
      assert.same({ "1", "2" }, b:get_all("X"))
      assert.is_true(hh.is_headers(b))
      assert.is_false(hh.is_headers({}))
    end)

    it("add appends; set replaces every field of the name with one, at the end", function()
      local h = hh.new { "A", "1", "B", "2", "a", "3" }
      h:add("b", "4")
      assert.same({ "2", "4" }, h:get_all("B"))
      h:set("A", "new")
      assert.same({ "new" }, h:get_all("a"))
      local names = {}
      for name in h:each() do names[#names + 1] = name end
      assert.same({ "B", "b", "A" }, names)
      h:set("Num", 10)
      assert.equal("10", h:get("num"))
    end)

    it("remove: every field of the name, any case; how many", function()
      local h = hh.new { "A", "1", "B", "2", "a", "3", "A", "4" }
      assert.equal(3, h:remove("a"))
      assert.equal(0, h:remove("a"))
      assert.equal(1, h:count())
      assert.equal("2", h:get("b"))
    end)

    it("refuses CR, LF and NUL in a value, naming the caller's line", function()
      local h = hh.new()
      for _, bad in ipairs { "a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b" } do
        local msg, where = err(function() h:add("X-Name", bad) end)
        assert.equal("Headers:add: value of header 'X-Name' contains CR, LF or NUL", msg)
        assert.matches("http_parser_spec.lua", where)
        assert.equal("Headers:set: value of header 'X-Name' contains CR, LF or NUL",
          (err(function() h:set("X-Name", bad) end)))
      end
      assert.equal(0, h:count())
    end)

    it("refuses bad names and values of the wrong type", function()
      local h = hh.new()
      assert.equal('Headers:add: invalid header name "X Y"', (err(function() h:add("X Y", "1") end)))
      assert.equal('Headers:add: invalid header name ""', (err(function() h:add("", "1") end)))
      assert.equal('Headers:add: invalid header name "X:"', (err(function() h:add("X:", "1") end)))
      assert.equal(("Headers:set: invalid header name %q"):format("X\r\nY"),
        (err(function() h:set("X\r\nY", "1") end)))
      assert.equal("Headers:add: header name must be a string, got number", (err(function() h:add(5, "1") end)))
      assert.equal("Headers:add: value of header 'X' must be a string, got table", (err(function() h:add("X", {}) end)))
      assert.equal("Headers:set: value of header 'X' must be a string, got boolean", (err(function() h:set("X", true) end)))
      assert.equal(0, h:count())
    end)

    it("write: Name: value lines after what the buffer holds", function()
      local h = hh.new { "Host", "h", "X", "" }
      assert.equal("GET / HTTP/1.1\r\nHost: h\r\nX: \r\n", table.concat(h:write { "GET / HTTP/1.1\r\n" }))
      assert.equal("Headers{Host: h, X: }", tostring(h))
    end)
  end)

  describe("parse_url", function()
    local function url(u)
      local t, e = hh.parse_url(u)
      assert.is_nil(e)
      return t
    end

    it("scheme, host (lower-cased), default port, target", function()
      assert.same({ scheme = "http", host = "example.com", port = 80, target = "/" }, url("http://example.com"))
      assert.same({ scheme = "https", host = "example.com", port = 443, target = "/a/b?c=d" },
        url("HTTPS://Example.COM/a/b?c=d"))
      assert.same({ scheme = "ws", host = "h", port = 80, target = "/" }, url("ws://h"))
      assert.same({ scheme = "wss", host = "h", port = 443, target = "/?x=1" }, url("wss://h?x=1"))
    end)

    it("ports", function()
      assert.equal(8080, url("http://h:8080/").port)
      assert.equal(65535, url("http://h:65535").port)
      assert.equal(1, url("https://h:1/").port)
      assert.equal(80, url("http://h:/").port)
      assert.same({ nil, "port out of range" }, { hh.parse_url("http://h:0/") })
      assert.same({ nil, "port out of range" }, { hh.parse_url("http://h:65536/") })
      assert.same({ nil, "port out of range" }, { hh.parse_url("http://h:99999999999999999999/") })
    end)

    it("IPv6 hosts in brackets", function()
      assert.same({ scheme = "https", host = "::1", port = 8443, target = "/x" }, url("https://[::1]:8443/x"))
      assert.same({ scheme = "http", host = "2001:db8::a", port = 80, target = "/" }, url("http://[2001:DB8::A]"))
      assert.equal("::ffff:1.2.3.4", url("http://[::ffff:1.2.3.4]:81/").host)
      assert.same({ nil, "URL has no host" }, { hh.parse_url("http://[::1/") })
      assert.same({ nil, "URL has no host" }, { hh.parse_url("http://[zz]/") })
      assert.same({ nil, "URL has no host" }, { hh.parse_url("http://[::1]x/") })
    end)

    it("userinfo: what comes before the last @", function()
      assert.same({ scheme = "http", host = "h", port = 81, target = "/p", userinfo = "user:pw" },
        url("http://user:pw@h:81/p"))
      local t = url("http://evil.example@good.example/")
      assert.equal("good.example", t.host)
      assert.equal("evil.example", t.userinfo)
      assert.equal("c", url("http://a@b@c/").host)
    end)

    it("query kept, fragment dropped", function()
      assert.equal("/p?q=1&r=%20", url("http://h/p?q=1&r=%20#frag").target)
      assert.equal("/", url("http://h#frag").target)
      assert.equal("/?q", url("http://h?q#f").target)
      assert.equal("/a?b/c", url("http://h/a?b/c").target)
    end)

    it("bad URLs: nil and why", function()
      local cases = {
        { 42, "URL must be a string" }, { nil, "URL must be a string" },
        { "http://h/a b", "URL contains a space, CR, LF or NUL" },
        { "http://h/\r\nX: 1", "URL contains a space, CR, LF or NUL" },
        { "http://h\0.example/", "URL contains a space, CR, LF or NUL" },
        { "//h/x", "not an absolute URL" }, { "h/x", "not an absolute URL" }, { "", "not an absolute URL" },
        { "ftp://h/", "unsupported scheme 'ftp'" }, { "File://h/", "unsupported scheme 'file'" },
        { "http://", "URL has no host" }, { "http:///x", "URL has no host" }, { "http://:80/", "URL has no host" },
        { "http://u@/", "URL has no host" }, { "http://h:abc/", "URL has no host" },
        { "http://h:8o/", "URL has no host" },
      }
      for _, c in ipairs(cases) do
        assert.same({ nil, c[2] }, { hh.parse_url(c[1]) })
      end
    end)
  end)

  describe("queries and targets", function()
    it("percent_decode, percent_encode", function()
      assert.equal("a+bA%4g%", hh.percent_decode("a+b%41%4g%"))
      assert.equal("a b c", hh.percent_decode("a+b%20c", true))
      assert.equal("\0\255", hh.percent_decode("%00%fF"))
      assert.equal("a%20b%2F%C3%A9~-._", hh.percent_encode("a b/\xC3\xA9~-._"))
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.equal(all, hh.percent_decode(hh.percent_encode(all)))
    end)

    it("decode_query: the last value of each name, and every value in order", function()
      local one, all = hh.decode_query("a=1&b=2&a=3&c&d=&e=%41+b;f=x%zz&&g=a=b")
      assert.same({ a = "3", b = "2", c = "", d = "", e = "A b", f = "x%zz", g = "a=b" }, one)
      assert.same({ "1", "3" }, all.a)
      assert.same({ "" }, all.c)
      assert.same({ "A b" }, all.e)
      assert.same({ {}, {} }, { hh.decode_query("") })
      one = hh.decode_query("na%6De=v%3D1&sp+ace=x")
      assert.same({ name = "v=1", ["sp ace"] = "x" }, one)
    end)

    it("split_target: the decoded path and the raw query (nil without a '?')", function()
      assert.same({ "/a b/c", "x=1&y=%20" }, { hh.split_target("/a%20b/c?x=1&y=%20") })
      assert.same({ "/a", nil }, { hh.split_target("/a") })
      assert.same({ "/a", "" }, { hh.split_target("/a?") })
      assert.same({ "/a/b", "q?r" }, { hh.split_target("/a%2Fb?q?r") })
      assert.same({ "/+", nil }, { hh.split_target("/+") })
      assert.same({ "*", nil }, { hh.split_target("*") })
    end)

    it("REASONS", function()
      assert.equal("OK", hh.REASONS[200])
      assert.equal("Not Found", hh.REASONS[404])
      assert.equal("Request Header Fields Too Large", hh.REASONS[431])
    end)
  end)
end)
