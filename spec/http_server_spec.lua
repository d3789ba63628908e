-- spec/http_server_spec.lua: aio.http.serve (issue 19, the server) against
-- real peers: curl (keep-alive over several URLs, HEAD, chunked uploads,
-- Expect: 100-continue, TLS, a unix socket), Node's http client and
-- fetch, Python's http.client, and raw luaio sockets for what a client
-- library will not send (pipelining, HTTP/1.0, malformed and smuggling
-- requests, a slowloris head, idle keep-alive).  Each test checks that
-- no task, handle, timer or descriptor is left once the server is closed.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

------------------------------------------------------------------ helpers
-- libuv keeps a spare descriptor per loop from its first listen on, and
-- opens its signal pipe on the first child: both before counting.
local function warm_up()
  H.warm_up()
  aio.create_subprocess_exec("true", {}):wait()
end

local function run(fn, limit)
  return H.closes_fds(fn, limit or 5, warm_up)
end

-- An HTTP server on 127.0.0.1:<free port>: -> server, port, stop
-- (stop closes it and waits until every connection is closed).
local function serve(handler, opts)
  local srv = aio.http.serve(handler, HOST, 0, opts)
  local _, port = srv:getsockname()
  return srv, port, function()
    srv:close()
    srv:wait_closed()
  end
end

-- Runs a program to its end: -> stdout, stderr, exit code.
local function exec(prog, args, stdin)
  local p = aio.create_subprocess_exec(prog, args, {
    stdin = stdin and aio.PIPE or nil, stdout = aio.PIPE, stderr = aio.PIPE,
  })
  local out, err = p:communicate(stdin)
  return out, err, p:wait()
end

local function curl(args)
  local all = { "-sS", "--max-time", "20" }
  for _, a in ipairs(args) do all[#all + 1] = a end
  return exec("curl", all)
end

local function node(src, ...)
  return exec("node", { "-e", src, ... })
end

local function python(src, ...)
  return exec("/usr/bin/python3", { "-c", src, ... })
end

-- Reads one response from r: status, headers (lower-case name -> value;
-- a repeated one: the values joined by ", "), body, and the raw head.
-- The body by Content-Length, chunked, or to EOF (none for HEAD when
-- head_only).
local function read_response(r, head_only)
  local head = r:readuntil("\r\n\r\n")
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local h = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
    local k = name:lower()
    h[k] = h[k] and (h[k] .. ", " .. value) or value
  end
  local body
  if head_only or status == 204 or status == 304 or (status >= 100 and status < 200) then
    body = ""
  elseif h["content-length"] then
    body = r:readexactly(tonumber(h["content-length"]))
  elseif h["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(r:readline():match("^(%x+)"), 16)
      if size == 0 then
        assert.equal("\r\n", r:readline())
        break
      end
      parts[#parts + 1] = r:readexactly(size)
      assert.equal("\r\n", r:readexactly(2))
    end
    body = table.concat(parts)
  else
    body = r:read()
  end
  return status, h, body, head
end

-- Opens a connection, sends data, returns the reader and writer.
local function send(port, data)
  local r, w = aio.open_connection(HOST, port)
  if data then w:write(data) end
  return r, w
end

-- Sends data, reads everything to EOF: the text and how long it took.
local function exchange(port, data)
  local r, w = send(port, data)
  local t0 = aio.time()
  local all = r:read()
  w:close()
  return all, aio.time() - t0
end

local function req(method, target, headers, body)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: test" }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

-- Writes a temporary file of n bytes (a pattern that shows misplaced
-- bytes); -> path, its contents.
local function tmpfile(n)
  local path = os.tmpname()
  local unit = "0123456789abcdefghijklmnopqrstuvwxyz\n"
  local data = unit:rep(n // #unit + 1):sub(1, n)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path, data
end

-- A handler that tells what it got.
local function describe_request(rq)
  local q = {}
  for k, v in pairs(rq.query) do q[#q + 1] = k .. "=" .. v end
  table.sort(q)
  return 200, { ["Content-Type"] = "text/plain" }, table.concat({
    rq.method, rq.path, rq.query_string or "-", table.concat(q, "&"), rq.version,
    rq.headers:get("x-test") or "-", tostring(rq.keep_alive), rq.remote,
  }, "|")
end

------------------------------------------------------------------ specs
describe("aio.http.serve", function()
  describe("with curl", function()
    it("answers several URLs on one keep-alive connection", function()
      run(function()
        local ports = {}
        local srv, port, stop = serve(function(rq)
          ports[#ports + 1] = rq.remote_port
          return 200, { ["Content-Type"] = "text/plain" }, "hello " .. rq.path .. "\n"
        end)
        local base = "http://127.0.0.1:" .. port
        local out, err, code = curl { "-v", "--http1.1", base .. "/a", base .. "/b", base .. "/c" }
        assert.equal(0, code, err)
        assert.equal("hello /a\nhello /b\nhello /c\n", out)
        assert.matches("Re-using existing connection", err, 1, true)
        assert.equal(3, #ports)
        assert.equal(ports[1], ports[2])
        assert.equal(ports[1], ports[3])
        assert.matches("< Content-Length: 9\r\n", err, 1, true)
        assert.matches("< Date: %a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT\r\n", err)
        assert.is_true(srv:is_serving())
        stop()
        assert.is_false(srv:is_serving())
      end)
    end)

    it("gives the handler the method, decoded path and query, headers, version and peer", function()
      run(function()
        local _, port, stop = serve(describe_request)
        local out, err, code = curl { "-H", "X-Test: yes",
          "http://127.0.0.1:" .. port .. "/a%20b/c?x=1&y=two+words&z=%41" }
        assert.equal(0, code, err)
        assert.equal("GET|/a b/c|x=1&y=two+words&z=%41|x=1&y=two words&z=A|1.1|yes|true|127.0.0.1", out)
        stop()
      end)
    end)

    it("answers HEAD (-I) with the headers of GET and no body", function()
      run(function()
        local _, port, stop = serve(function()
          return 200, { ["Content-Type"] = "text/plain", ["X-Seen"] = "1" }, "thirteen byte"
        end)
        local out, err, code = curl { "-I", "http://127.0.0.1:" .. port .. "/" }
        assert.equal(0, code, err)
        assert.matches("^HTTP/1%.1 200 OK\r\n", out)
        assert.matches("\r\nContent-Length: 13\r\n", out, 1, true)
        assert.matches("\r\nX-Seen: 1\r\n", out, 1, true)
        assert.equal("\r\n\r\n", out:sub(-4))          -- and nothing after the head
        -- the connection goes on after a HEAD: a GET follows on it
        local r, w = send(port, req("HEAD", "/") .. req("GET", "/"))
        local s1, h1, b1 = read_response(r, true)
        local s2, _, b2 = read_response(r)
        assert.same({ 200, "13", "", 200, "thirteen byte" }, { s1, h1["content-length"], b1, s2, b2 })
        w:close()
        stop()
      end)
    end)

    it("reads a chunked upload (--data-binary @file) whole with req:body()", function()
      run(function()
        local path, data = tmpfile(300000)
        local _, port, stop = serve(function(rq)
          local body = rq:body()
          return 200, nil, ("%s %s %d"):format(tostring(rq.chunked), tostring(rq.content_length), #body)
            .. "\n" .. body
        end)
        local out, err, code = curl { "-H", "Transfer-Encoding: chunked", "--data-binary", "@" .. path,
          "http://127.0.0.1:" .. port .. "/upload" }
        os.remove(path)
        assert.equal(0, code, err)
        assert.equal("true nil 300000\n", out:sub(1, 16))
        assert.is_true(out:sub(17) == data, "the body came back changed")
        stop()
      end)
    end)

    it("answers Expect: 100-continue when the handler reads the body", function()
      run(function()
        local path, data = tmpfile(2 * 1024 * 1024)
        local _, port, stop = serve(function(rq)
          local n, pieces = 0, 0
          while true do
            local s = rq:read(65536)
            if not s then break end
            assert(#s <= 65536)
            n, pieces = n + #s, pieces + 1
          end
          return 200, nil, n .. " bytes in " .. (pieces > 1 and "several pieces" or "one piece")
        end, { max_body = 4 * 1024 * 1024 })
        local out, err, code = curl { "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "20",
          "--data-binary", "@" .. path, "http://127.0.0.1:" .. port .. "/" }
        os.remove(path)
        assert.equal(0, code, err)
        assert.equal(#data .. " bytes in several pieces", out)
        assert.matches("< HTTP/1.1 100 Continue", err, 1, true)
        assert.matches("< HTTP/1.1 200 OK", err, 1, true)
        stop()
      end)
    end)

    it("does not send 100 Continue to a handler that ignores the body, and closes after it", function()
      run(function()
        local _, port, stop = serve(function() return 403, nil, "no\n" end)
        local out, err, code = curl { "-v", "-H", "Expect: 100-continue", "--expect100-timeout", "20",
          "-d", ("x"):rep(100000), "http://127.0.0.1:" .. port .. "/" }
        assert.equal(0, code, err)
        assert.equal("no\n", out)
        assert.not_matches("100 Continue", err, 1, true)
        assert.matches("< HTTP/1.1 403 Forbidden", err, 1, true)
        assert.matches("< Connection: close", err, 1, true)
        stop()
      end)
    end)

    it("streams a response (server-sent events): the client reads each event as it is written", function()
      run(function()
        local gate = aio.Event()
        local _, port, stop = serve(function(_, res)
          res:write_head(200, { ["Content-Type"] = "text/event-stream" })
          for i = 1, 3 do
            res:write("data: event " .. i .. "\n\n")
            res:drain()
            if i == 1 then gate:wait() end       -- until the client saw the first
          end
          res:finish()
        end)
        -- a raw reader: the first event arrives while the handler still waits
        local r, w = send(port, req("GET", "/events"))
        local head = r:readuntil("\r\n\r\n")
        assert.matches("^HTTP/1%.1 200 OK\r\n", head)
        assert.matches("\r\nTransfer%-Encoding: chunked\r\n", head)
        assert.equal("f\r\ndata: event 1\n\n\r\n", r:readexactly(20))
        gate:set()
        assert.equal("f\r\ndata: event 2\n\n\r\n", r:readexactly(20))
        assert.equal("f\r\ndata: event 3\n\n\r\n0\r\n\r\n", r:readexactly(25))
        w:close()
        -- and curl -N decodes it
        local out, err, code = curl { "-N", "http://127.0.0.1:" .. port .. "/events" }
        assert.equal(0, code, err)
        assert.equal("data: event 1\n\ndata: event 2\n\ndata: event 3\n\n", out)
        stop()
      end)
    end)

    it("serves TLS (curl --cacert), the handler unchanged", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. H.quote(dir)))
      local function sh(cmd)
        assert(os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1"), cmd)
      end
      sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
        "-keyout ca.key -out ca.pem -days 30 -subj '/CN=luaio test CA'")
      sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
        "-keyout srv.key -out srv.csr -subj '/CN=localhost'")
      sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > srv.ext")
      sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
        "-out srv.pem -days 30 -extfile srv.ext")
      local ok, err = pcall(run, function()
        local ctx = aio.ssl.create_default_context("client_auth")
        ctx:load_cert_chain(dir .. "/srv.pem", dir .. "/srv.key")
        local _, port, stop = serve(function(rq)
          return 200, nil, "secret " .. rq.path .. " " .. rq:body() .. "\n"
        end, { ssl = ctx })
        local base = "https://localhost:" .. port
        local out, cerr, code = curl { "--cacert", dir .. "/ca.pem", "--resolve",
          "localhost:" .. port .. ":127.0.0.1", base .. "/a", "-d", "x=1", base .. "/b" }
        assert.equal(0, code, cerr)
        assert.equal("secret /a x=1\nsecret /b x=1\n", out)
        -- a client that does not trust the CA fails its handshake; the server goes on
        local _, _, bad = curl { base .. "/", "--resolve", "localhost:" .. port .. ":127.0.0.1" }
        assert.equal(60, bad)                    -- CURLE_PEER_FAILED_VERIFICATION
        stop()
      end)
      os.execute("rm -rf " .. H.quote(dir))
      assert(ok, err)
    end)

    it("serves on a unix socket (curl --unix-socket)", function()
      run(function()
        local path = os.tmpname()
        os.remove(path)
        local srv = aio.http.serve(function(rq)
          return 200, nil, "over a unix socket: " .. rq.path .. "\n"
        end, { path = path })
        assert.equal(path, srv:getsockname())
        local out, err, code = curl { "--unix-socket", path, "http://localhost/x", "http://localhost/y" }
        assert.equal(0, code, err)
        assert.equal("over a unix socket: /x\nover a unix socket: /y\n", out)
        srv:close()
        srv:wait_closed()
        os.remove(path)
      end)
    end)
  end)

  describe("with Node and Python", function()
    it("Node's keep-alive agent reuses one socket; fetch posts JSON", function()
      run(function()
        local _, port, stop = serve(function(rq)
          if rq.method == "POST" then
            local body = rq:body()
            return 201, { ["Content-Type"] = "application/json" }, '{"got":' .. body .. '}'
          end
          return 200, { ["Content-Type"] = "text/plain" }, "n=" .. rq.query.n
        end)
        local out, err, code = node([[
const http = require('http');
const port = +process.argv[1];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(n) {
  return new Promise((ok, ko) => {
    const rq = http.request({ host: '127.0.0.1', port, path: '/?n=' + n, agent }, (res) => {
      let b = '';
      res.on('data', (d) => b += d);
      res.on('end', () => ok(res.statusCode + ' ' + b + ' ' + rq.reusedSocket));
    });
    rq.on('error', ko);
    rq.end();
  });
}
(async () => {
  const out = [];
  for (let n = 1; n <= 3; n++) out.push(await get(n));
  const r = await fetch('http://127.0.0.1:' + port + '/post', {
    method: 'POST', body: JSON.stringify({ a: [1, 2] }),
    headers: { 'content-type': 'application/json' } });
  out.push(r.status + ' ' + r.headers.get('content-type') + ' ' + JSON.stringify(await r.json()));
  agent.destroy();
  console.log(out.join('\n'));
})().catch((e) => { console.error(e); process.exit(1); });
]], tostring(port))
        assert.equal(0, code, err)
        assert.equal(table.concat({
          "200 n=1 false", "200 n=2 true", "200 n=3 true",
          '201 application/json {"got":{"a":[1,2]}}', "",
        }, "\n"), out)
        stop()
      end)
    end)

    it("Python's http.client: keep-alive, a chunked body, a HEAD, on one connection", function()
      run(function()
        local conns = {}
        local _, port, stop = serve(function(rq)
          conns[rq.remote_port] = true
          local body = rq:body()
          return 200, { ["X-Len"] = #body }, rq.method .. " " .. body
        end)
        local out, err, code = python([[
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
out = []
c.request('GET', '/one'); r = c.getresponse(); out.append('%d %s' % (r.status, r.read().decode()))
c.request('POST', '/two', body=iter([b'ab', b'cd', b'ef']), encode_chunked=True)
r = c.getresponse(); out.append('%d %s %s' % (r.status, r.getheader('X-Len'), r.read().decode()))
c.request('HEAD', '/three'); r = c.getresponse(); out.append('%d %s [%s]' % (r.status, r.getheader('Content-Length'), r.read().decode()))
c.close()
print('\n'.join(out))
]], tostring(port))
        assert.equal(0, code, err)
        assert.equal("200 GET \n200 6 POST abcdef\n200 5 []\n", out)
        local n = 0
        for _ in pairs(conns) do n = n + 1 end
        assert.equal(1, n)
        stop()
      end)
    end)
  end)

  describe("over a raw socket", function()
    it("answers pipelined requests (sent in one write) in order", function()
      run(function()
        local order = {}
        local _, port, stop = serve(function(rq)
          order[#order + 1] = rq.path
          if rq.path == "/slow" then aio.sleep(0.05) end
          return 200, nil, rq.path .. ":" .. rq:body()
        end)
        local r, w = send(port, req("GET", "/slow") .. req("POST", "/post", nil, "body!")
          .. req("GET", "/fast") .. req("HEAD", "/head"))
        local got = {}
        for i = 1, 4 do
          local s, _, b = read_response(r, i == 4)
          got[#got + 1] = s .. " " .. b
        end
        assert.same({ "200 /slow:", "200 /post:body!", "200 /fast:", "200 " }, got)
        assert.same({ "/slow", "/post", "/fast", "/head" }, order)
        w:close()
        stop()
      end)
    end)

    it("skips a body the handler did not read and goes on with the next request", function()
      run(function()
        local _, port, stop = serve(function(rq) return 200, nil, "seen " .. rq.path end)
        local big = ("z"):rep(100000)
        local r, w = send(port, req("POST", "/ignored", nil, big) .. req("GET", "/next"))
        local s1, h1, b1 = read_response(r)
        local s2, _, b2 = read_response(r)
        assert.same({ 200, nil, "seen /ignored", 200, "seen /next" }, { s1, h1.connection, b1, s2, b2 })
        w:close()
        stop()
      end)
    end)

    it("closes instead of skipping an unread body larger than it skips (256 KiB)", function()
      run(function()
        local _, port, stop = serve(function() return 200, nil, "not read" end)
        local r, w = send(port, "POST / HTTP/1.1\r\nContent-Length: 300000\r\n\r\n" .. ("y"):rep(1000))
        local s, h, b = read_response(r)
        assert.same({ 200, "close", "not read" }, { s, h.connection, b })
        w:write(("y"):rep(299000))         -- the server reads and drops it, then closes
        assert.is_nil(r:read(1))
        w:close()
        stop()
      end)
    end)

    it("answers a request asking for an upgrade, then closes (no upgrades yet)", function()
      run(function()
        local _, port, stop = serve(function(rq) return 200, nil, "upgrade=" .. tostring(rq.upgrade) end)
        local all = exchange(port, req("GET", "/", { "Connection: Upgrade", "Upgrade: websocket" })
          .. "\x81\x05hello")
        assert.matches("^HTTP/1%.1 200 OK\r\n", all)
        assert.matches("\r\nConnection: close\r\n", all)
        assert.equal("upgrade=true", all:sub(-12))
        stop()
      end)
    end)

    it("a client that goes away during a streamed response is not an error", function()
      run(function()
        local reports, failed = {}, aio.Event()
        local got
        aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
        local _, port, stop = serve(function(_, res)
          res:write_head(200, { ["Content-Type"] = "text/event-stream" })
          local ok, err = pcall(function()
            for i = 1, 1000 do
              res:write("data: " .. i .. "\n\n")
              aio.sleep(0.01)
            end
          end)
          got = { ok, err }
          failed:set()
          error(err, 0)
        end)
        local r, w = send(port, req("GET", "/"))
        r:readuntil("data: 1\n\n")
        w:close()
        failed:wait()
        stop()
        assert.is_false(got[1])
        assert.is_true(aio.is(got[2], aio.OSError), tostring(got[2]))
        assert.same({}, reports)
        aio.get_running_loop():set_exception_handler(nil)
      end)
    end)

    it("HEAD to a written response: the head only; a request used after its handler returned", function()
      run(function()
        local kept
        local _, port, stop = serve(function(rq, res)
          kept = rq
          res:write_head(200, { ["X-Kind"] = "written" })
          res:write("never sent")
          res:finish()
        end)
        local r, w = send(port, req("HEAD", "/") .. req("GET", "/"))
        local s1, h1, b1 = read_response(r, true)
        assert.same({ 200, "written", nil, "" }, { s1, h1["x-kind"], h1["transfer-encoding"], b1 })
        local s2, h2, b2 = read_response(r)
        assert.same({ 200, "chunked", "never sent" }, { s2, h2["transfer-encoding"], b2 })
        w:close()
        stop()
        assert.matches("body: the request is over", H.errof(kept.body, kept), 1, true)
        assert.matches("read: the request is over", H.errof(kept.read, kept, 1), 1, true)
      end)
    end)

    it("reads a body line by line (req:lines) and in pieces (req:read(n))", function()
      run(function()
        local _, port, stop = serve(function(rq)
          if rq.path == "/lines" then
            local out = {}
            for line in rq:lines() do out[#out + 1] = "[" .. line .. "]" end
            return 200, nil, table.concat(out)
          end
          local out = {}
          while true do
            local s = rq:read(3)
            if not s then break end
            out[#out + 1] = s
          end
          return 200, nil, table.concat(out, "|")
        end)
        local r, w = send(port, req("POST", "/lines", nil, "one\ntwo\r\n\nlast")
          .. "POST /read HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n5\r\ncdefg\r\n0\r\n\r\n")
        local _, _, b1 = read_response(r)
        local _, _, b2 = read_response(r)
        assert.equal("[one][two\r][][last]", b1)
        assert.equal("abc|def|g", b2)     -- (the body came in one piece)
        w:close()
        stop()
      end)
    end)

    it("HTTP/1.0: closes after the response unless asked to keep alive; never chunks", function()
      run(function()
        local _, port, stop = serve(function(rq, res)
          if rq.path == "/stream" then
            res:write("a")
            res:write("b")
            return
          end
          return 200, nil, "v" .. rq.version
        end)
        local all = exchange(port, "GET / HTTP/1.0\r\n\r\n")
        assert.matches("^HTTP/1%.1 200 OK\r\n", all)
        assert.matches("\r\nConnection: close\r\n", all)
        assert.equal("\r\n\r\nv1.0", all:sub(-8))
        -- keep-alive asked for: kept, and said so
        local r, w = send(port, "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        local s, h, b = read_response(r)
        assert.same({ 200, "keep-alive", "v1.0" }, { s, h.connection, b })
        w:write("GET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        s, h, b = read_response(r)
        assert.same({ 200, "keep-alive", "v1.0" }, { s, h.connection, b })
        -- a streamed response to 1.0 runs to the end of the connection
        w:write("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        s, h, b = read_response(r)
        assert.same({ 200, "close", nil, nil, "ab" },
          { s, h.connection, h["transfer-encoding"], h["content-length"], b })
        w:close()
        stop()
      end)
    end)

    it("honours Connection: close from the client and from the handler", function()
      run(function()
        local _, port, stop = serve(function(rq)
          if rq.path == "/bye" then return 200, { Connection = "close" }, "bye" end
          return 200, nil, "hi"
        end)
        local all = exchange(port, req("GET", "/", { "Connection: close" }) .. req("GET", "/never"))
        assert.matches("\r\nConnection: close\r\n", all)
        assert.equal("hi", all:sub(-2))
        assert.equal(1, select(2, all:gsub("HTTP/1%.1 ", "")))
        all = exchange(port, req("GET", "/bye") .. req("GET", "/never"))
        assert.equal(1, select(2, all:gsub("HTTP/1%.1 ", "")))
        assert.matches("\r\nConnection: close\r\n", all)
        assert.equal("bye", all:sub(-3))
        stop()
      end)
    end)

    it("closes a connection after max_requests", function()
      run(function()
        local _, port, stop = serve(function() return 200, nil, "ok" end, { max_requests = 2 })
        local all = exchange(port, req("GET", "/1") .. req("GET", "/2") .. req("GET", "/3"))
        assert.equal(2, select(2, all:gsub("HTTP/1%.1 200 OK", "")))
        assert.matches("\r\nConnection: close\r\n", all)
        stop()
      end)
    end)

    it("refuses bad requests with a clear status, Connection: close, and closes", function()
      run(function()
        local called = 0
        local _, port, stop = serve(function(rq)
          called = called + 1
          rq:body()
          return 200, nil, "ok"
        end, { max_body = 1000 })
        local cases = {
          { 431, req("GET", "/", { "X-Big: " .. ("b"):rep(9000) }) },
          { 431, req("GET", "/", (function()
              local t = {}
              for i = 1, 101 do t[i] = "X-" .. i .. ": 1" end
              return t
            end)()) },
          { 414, req("GET", "/" .. ("u"):rep(8200)) },
          { 413, req("POST", "/", nil, ("x"):rep(1001)) },
          { 413, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" .. ("x"):rep(1000)
              .. "\r\n1\r\nx\r\n0\r\n\r\n" },
          { 400, "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" },
          { 400, "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" },
          { 400, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" },
          { 400, "GET / HTTP/1.1\r\nBad\1Name: x\r\n\r\n" },
          { 400, "GARBAGE\r\n\r\n" },
          { 400, "GET / HTTP/9.9\r\n\r\n" },
          { 400, "GET / HTTP/1.1\r\nHost: a\nX: \0\r\n\r\n" },
        }
        local REASON = { [400] = "Bad Request", [413] = "Content Too Large", [414] = "URI Too Long",
          [431] = "Request Header Fields Too Large" }
        for i, case in ipairs(cases) do
          local all = exchange(port, case[2])
          local status = case[1]
          local want = "HTTP/1.1 " .. status .. " " .. REASON[status] .. "\r\n"
          assert.equal(want, all:sub(1, #want), "case " .. i .. ": " .. all)
          assert.matches("\r\nConnection: close\r\n", all, 1, true)
          assert.equal("\r\n\r\n" .. REASON[status] .. "\n", all:sub(-(#REASON[status] + 5)), "case " .. i)
        end
        assert.is_true(called <= 2)    -- (only those whose body went wrong later)
        stop()
      end)
    end)

    it("a handler setting a header with CR/LF gets an error; returning one gives 500", function()
      run(function()
        local got, reports = nil, {}
        aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
        local _, port, stop = serve(function(rq, res)
          if rq.path == "/write_head" then
            local ok, err = pcall(res.write_head, res, 200, { ["X-Evil"] = "a\r\nSet-Cookie: x=1" })
            got = err
            assert(not ok)
            return 200, nil, "refused"
          end
          return 200, { ["X-Evil"] = "a\nb" }, "never"
        end)
        local all = exchange(port, req("GET", "/write_head", { "Connection: close" }))
        assert.equal("write_head: value of header 'X-Evil' contains CR, LF or NUL", got)
        assert.equal("refused", all:sub(-7))
        assert.not_matches("Set-Cookie", all, 1, true)
        all = exchange(port, req("GET", "/return"))
        assert.equal("HTTP/1.1 500 Internal Server Error\r\n", all:sub(1, 36))
        assert.not_matches("X-Evil", all, 1, true)
        assert.equal(1, #reports)
        assert.equal("aio.http: the handler's response is invalid (GET /return)", reports[1].message)
        assert.equal("response: value of header 'X-Evil' contains CR, LF or NUL", reports[1].exception)
        aio.get_running_loop():set_exception_handler(nil)
        stop()
      end)
    end)

    it("a handler error is a 500, and the error reaches the loop's exception handler", function()
      run(function()
        local reports = {}
        aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
        local _, port, stop = serve(function(rq, res)
          if rq.path == "/late" then
            res:write("partial")
            error({ code = "late" })
          end
          error("boom at " .. rq.path, 0)
        end)
        local r, w = send(port, req("GET", "/boom"))
        local s, h, b = read_response(r)
        assert.same({ 500, "close", "Internal Server Error\n" }, { s, h.connection, b })
        assert.is_nil(r:read(1))
        w:close()
        -- once the head is out, the connection is closed mid-body instead
        local all = exchange(port, req("GET", "/late"))
        assert.matches("^HTTP/1%.1 200 OK\r\n", all)
        assert.equal("7\r\npartial\r\n", all:sub(-12))  -- and no last chunk
        assert.equal(2, #reports)
        assert.equal("aio.http: the handler failed (GET /boom)", reports[1].message)
        assert.equal("boom at /boom", reports[1].exception)
        assert.matches("stack traceback:", reports[1].traceback, 1, true)
        assert.equal("/boom", reports[1].request.path)
        assert.equal("aio.http: the handler failed (GET /late)", reports[2].message)
        assert.equal("late", reports[2].exception.code)
        aio.get_running_loop():set_exception_handler(nil)
        stop()
      end)
    end)

    it("a handler that returns nothing and wrote nothing is a 500, reported", function()
      run(function()
        local reports = {}
        aio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
        local _, port, stop = serve(function() end)
        local all = exchange(port, req("GET", "/nothing"))
        assert.equal("HTTP/1.1 500 Internal Server Error\r\n", all:sub(1, 36))
        assert.equal("aio.http: the handler returned no response (GET /nothing)", reports[1].message)
        aio.get_running_loop():set_exception_handler(nil)
        stop()
      end)
    end)

    it("drops a slowloris head: 408 once head_timeout has passed", function()
      run(function()
        local called = false
        local _, port, stop = serve(function() called = true; return 200, nil, "x" end,
          { head_timeout = 0.4 })
        local r, w = send(port)
        local t0 = aio.time()
        local text = req("GET", "/", { "X-Slow: " .. ("s"):rep(50) })
        local writer = aio.create_task(function()
          for i = 1, #text do
            w:write(text:sub(i, i))
            aio.sleep(0.05)
          end
        end)
        local all = r:read()
        local took = aio.time() - t0
        writer:cancel()
        pcall(writer.await, writer)
        w:close()
        assert.equal("HTTP/1.1 408 Request Timeout\r\n", all:sub(1, 30))
        assert.matches("\r\nConnection: close\r\n", all, 1, true)
        assert.is_false(called)
        assert.is_true(took >= 0.25 and took < 1.5 * H.SLOW, "took " .. took)
        -- a connection that sends nothing is closed silently
        local silent, t = exchange(port, nil)
        assert.equal("", silent)
        assert.is_true(t >= 0.25 and t < 1.5 * H.SLOW, "took " .. t)
        stop()
      end)
    end)

    it("closes a keep-alive connection idle for keepalive_timeout", function()
      run(function()
        local _, port, stop = serve(function() return 200, nil, "ok" end, { keepalive_timeout = 0.3 })
        local r, w = send(port, req("GET", "/"))
        local s = read_response(r)
        assert.equal(200, s)
        local t0 = aio.time()
        w:write(req("GET", "/again"))      -- a request in time resets it
        assert.equal(200, (read_response(r)))
        assert.is_nil(r:read(1))
        local took = aio.time() - t0
        assert.is_true(took >= 0.2 and took < 1.2 * H.SLOW, "took " .. took)
        w:close()
        stop()
      end)
    end)

    it("a body that stops coming is dropped after body_timeout", function()
      run(function()
        local got
        local _, port, stop = serve(function(rq)
          local ok, err = pcall(rq.body, rq)
          got = { ok, err }
          return 200, nil, "?"
        end, { body_timeout = 0.3 })
        local r, w = send(port, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        assert.is_nil(r:read(1))
        w:close()
        stop()
        assert.is_false(got[1])
        assert.equal("HTTPError: the connection closed before the request body was complete",
          tostring(got[2]))
      end)
    end)
  end)

  describe("responses", function()
    it("bodies as lists, Headers objects, repeated fields, 204 and 304, writes with a Content-Length", function()
      run(function()
        local _, port, stop = serve(function(rq, res)
          local p = rq.path
          if p == "/list" then return 200, nil, { "a", "bc", "", "def" } end
          if p == "/headers" then
            local h = aio.http.Headers()
            h:add("Set-Cookie", "a=1")
            h:add("Set-Cookie", "b=2")
            return 202, h, "ok"
          end
          if p == "/table" then return 200, { ["X-Multi"] = { "1", "2" } }, "" end
          if p == "/204" then return 204, nil, nil end
          if p == "/304" then return 304, { ETag = '"x"' } end
          if p == "/cl" then
            res:write_head(200, { ["Content-Length"] = 6 })
            res:write("abc")
            res:write("def")
            local ok, err = pcall(res.write, res, "g")
            assert(not ok)
            assert.matches("write: more than the Content-Length (0 bytes left, 1 given)", err, 1, true)
            return res:finish()
          end
          if p == "/finish" then
            res:write_head(201, { ["Content-Type"] = "text/plain" })
            res:finish("done")
            local ok, err = pcall(res.write, res, "more")
            assert(not ok)
            assert.matches("write: the response is finished", err, 1, true)
            return
          end
        end)
        local r, w = send(port, req("GET", "/list") .. req("GET", "/headers") .. req("GET", "/table")
          .. req("GET", "/204") .. req("GET", "/304") .. req("GET", "/cl") .. req("GET", "/finish"))
        local s, h, b = read_response(r)
        assert.same({ 200, "6", "abcdef" }, { s, h["content-length"], b })
        s, h, b = read_response(r)
        assert.same({ 202, "a=1, b=2", "ok" }, { s, h["set-cookie"], b })
        s, h, b = read_response(r)
        assert.same({ 200, "1, 2", "0", "" }, { s, h["x-multi"], h["content-length"], b })
        local head
        s, h, _, head = read_response(r)
        assert.same({ 204, nil }, { s, h["content-length"] })
        assert.equal("HTTP/1.1 204 No Content\r\n", head:sub(1, 25))
        s, h = read_response(r)
        assert.same({ 304, '"x"', nil }, { s, h.etag, h["content-length"] })
        s, h, b = read_response(r)
        assert.same({ 200, "6", "abcdef" }, { s, h["content-length"], b })
        s, h, b = read_response(r)
        assert.same({ 201, "4", nil, "done" }, { s, h["content-length"], h["transfer-encoding"], b })
        w:close()
        stop()
      end)
    end)

    it("a large body goes out whole, with backpressure", function()
      run(function()
        local big = ("0123456789"):rep(500000)
        local _, port, stop = serve(function(rq, res)
          if rq.path == "/returned" then return 200, nil, big end
          for i = 1, #big, 100000 do
            res:write(big:sub(i, i + 99999))
            res:drain()
          end
        end)
        local r, w = send(port, req("GET", "/returned") .. req("GET", "/written"))
        local _, h1, b1 = read_response(r)
        local _, h2, b2 = read_response(r)
        assert.equal(tostring(#big), h1["content-length"])
        assert.equal("chunked", h2["transfer-encoding"])
        assert.is_true(b1 == big and b2 == big)
        w:close()
        stop()
      end)
    end)
  end)

  describe("shutdown", function()
    it("close() lets a request in flight finish, closes idle connections, refuses new ones", function()
      run(function()
        local started = aio.Event()
        local srv, port = serve(function(rq)
          if rq.path == "/slow" then
            started:set()
            aio.sleep(0.2)
            return 200, nil, "finished in time"
          end
          return 200, nil, "quick"
        end)
        -- an idle keep-alive connection
        local ir, iw = send(port, req("GET", "/quick"))
        assert.equal(200, (read_response(ir)))
        -- a request in flight
        local r, w = send(port, req("GET", "/slow"))
        started:wait()
        local t0 = aio.time()
        local closer = aio.create_task(function() srv:shutdown(5) end)
        aio.sleep(0.05)
        assert.is_nil(ir:read(1))                -- the idle one was closed at once
        assert.is_true(aio.time() - t0 < 0.15 * H.SLOW)
        iw:close()
        local err = H.errof(aio.open_connection, HOST, port)
        assert.equal("ECONNREFUSED", err.code)
        local s, h, b = read_response(r)
        assert.same({ 200, "close", "finished in time" }, { s, h.connection, b })
        assert.is_nil(r:read(1))
        w:close()
        closer:await()
        assert.is_false(srv:is_serving())
      end)
    end)

    it("cancels what is still running at the deadline", function()
      run(function()
        local cancelled = false
        local srv, port = serve(function(_, res)
          res:write("started ")
          local ok, err = pcall(aio.sleep, 60)
          cancelled = not ok and aio.is(err, aio.CancelledError)
          error(err, 0)
        end)
        local r, w = send(port, req("GET", "/forever"))
        r:readuntil("started ")
        local t0 = aio.time()
        srv:shutdown(0.2)
        local took = aio.time() - t0
        assert.is_true(took >= 0.15 and took < 1.5 * H.SLOW, "took " .. took)
        assert.is_true(cancelled)
        assert.equal("\r\n", r:read())            -- the chunk's end, then EOF
        w:close()
      end)
    end)

    it("cancelling serve_forever closes the server and leaves nothing open", function()
      run(function()
        local srv, port = serve(function() return 200, nil, "ok" end)
        local t = aio.create_task(srv.serve_forever, srv)
        aio.sleep(0.01)
        local all = exchange(port, req("GET", "/", { "Connection: close" }))
        assert.equal("ok", all:sub(-2))
        t:cancel()
        assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
        srv:wait_closed()
        assert.is_false(srv:is_serving())
      end)
    end)

    it("the end of a run closes a server left open, and its connections", function()
      local script = H.script([[
local aio = require "luaio"
local srv = aio.http.serve(function() aio.sleep(60) end, "127.0.0.1", 0)
local _, port = srv:getsockname()
local r, w = aio.open_connection("127.0.0.1", port)
w:write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
aio.sleep(0.05)
print("served", srv:is_serving())
]])
      local res = H.cli({ script })
      os.remove(script)
      assert.equal(0, res.status, res.stderr)
      assert.equal("served\ttrue\n", res.stdout)
      assert.equal("", res.stderr)
    end)
  end)

  describe("arguments", function()
    it("refuses bad options and handlers", function()
      run(function()
        local function msg(...) return tostring(H.errof(aio.http.serve, ...)) end
        local f = function() end
        assert.matches("bad argument #1 to 'serve' (function expected, got nil)", msg(nil, HOST, 0), 1, true)
        assert.matches("serve: unknown option 'max_bodyy'", msg(f, HOST, 0, { max_bodyy = 1 }), 1, true)
        assert.matches("serve: option 'max_body' must be a positive integer",
          msg(f, HOST, 0, { max_body = -1 }), 1, true)
        assert.matches("serve: option 'head_timeout' must be a positive number of seconds",
          msg(f, HOST, 0, { head_timeout = 0 }), 1, true)
        assert.matches("bad argument #4 to 'serve' (options table expected, got string)",
          msg(f, HOST, 0, "x"), 1, true)
      end)
    end)
  end)
end)
