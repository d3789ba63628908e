-- spec/http_client_spec.lua: aio.http's client (luaio.http_client)
-- against real peers, started once on 127.0.0.1 port 0 (each prints its
-- port) and killed at the end:
--   node    Node's http server (PEER_JS): echo (what it received, rawHeaders
--           in order), chunked and gzip/deflate bodies, repeated headers,
--           redirects, slow and silent routes, a route that resets a
--           connection's second request, 100-continue handling; it tags
--           each response with the number of its connection (X-Conn)
--   nodes   the same script over https (a certificate made by openssl)
--   python  /usr/bin/python3 -m http.server (HTTP/1.0: one request per
--           connection)
--   aiohttp aiohttp's server (AIOHTTP_PY): repeated headers, a chunked
--           response, chunked uploads, idle keep-alive closed after 0.2 s
--   proxy   a small asyncio HTTP proxy (PROXY_PY): absolute-form requests
--           and CONNECT tunnels, logged to a file
-- Every test runs in a fresh loop (H.closes_fds: no task, handle or timer
-- left, every descriptor closed again).
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"
local PY = "/usr/bin/python3"

------------------------------------------------------------------ peers
local PEER_JS = [==[
const http = require('http'), https = require('https'), zlib = require('zlib'), fs = require('fs');
let connId = 0; const inflight = {}, peak = {};
function handler(req, res) {
  const u = new URL(req.url, 'http://x');
  const q = u.searchParams;
  const sock = req.socket;
  if (sock.connId === undefined) { sock.connId = ++connId; sock.nreq = 0; }
  sock.nreq++;
  res.setHeader('X-Conn', String(sock.connId));
  const chunks = [];
  req.on('data', c => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    switch (u.pathname) {
    case '/echo': {
      const out = JSON.stringify({method: req.method, url: req.url, headers: req.rawHeaders,
        body: body.toString('latin1'), length: body.length,
        chunked: req.headers['transfer-encoding'] === 'chunked'});
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Content-Length', Buffer.byteLength(out));
      res.end(out); break; }
    case '/hello': res.setHeader('Content-Length', 5); res.end('hello'); break;
    case '/chunked':
      res.write('line one\n');
      setTimeout(() => { res.write('line two\r\n'); res.end('line three'); }, 20); break;
    case '/repeat':
      res.setHeader('Set-Cookie', ['a=1', 'b=2']); res.setHeader('X-Multi', ['x', 'y']);
      res.end('r'); break;
    case '/redirect':
      res.statusCode = +q.get('code'); res.setHeader('Location', q.get('to'));
      res.end('moved'); break;
    case '/loop': res.statusCode = 302; res.setHeader('Location', '/loop'); res.end(); break;
    case '/slow': {
      const tag = q.get('tag');
      inflight[tag] = (inflight[tag] || 0) + 1;
      peak[tag] = Math.max(peak[tag] || 0, inflight[tag]);
      setTimeout(() => { inflight[tag]--; res.end('ok'); }, +q.get('ms')); break; }
    case '/peak': res.end(String(peak[q.get('tag')] || 0)); break;
    case '/never': break;
    case '/stall': res.setHeader('Content-Length', 100); res.write('x'.repeat(10)); break;
    case '/gzip': {
      const z = zlib.gzipSync(Buffer.from('hello gzip\n'.repeat(100)));
      res.setHeader('Content-Encoding', 'gzip'); res.setHeader('Content-Length', z.length);
      res.end(z); break; }
    case '/deflate': {
      const z = zlib.deflateSync(Buffer.from('hello deflate\n'.repeat(100)));
      res.setHeader('Content-Encoding', 'deflate'); res.end(z); break; }
    case '/close-second':
      if (sock.nreq >= 2) { sock.destroy(); return; }
      res.setHeader('Content-Length', 5); res.end('first'); break;
    case '/big': {
      const n = +q.get('n'); res.setHeader('Content-Length', n); res.end(Buffer.alloc(n, 'b')); break; }
    case '/json':
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ok: true, list: [1, 2, 3], name: 'luaio'})); break;
    default: res.statusCode = 404; res.end('not found');
    }
  });
}
const [cert, key] = process.argv.slice(2);
const server = cert ? https.createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, handler)
                    : http.createServer(handler);
server.keepAliveTimeout = 60000;
server.on('checkContinue', (req, res) => {
  if (req.url.includes('reject')) { res.writeHead(417, {'Content-Length': 0}); res.end(); return; }
  if (!req.url.includes('no100')) res.writeContinue();
  handler(req, res);
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
]==]

local AIOHTTP_PY = [==[
import asyncio
from aiohttp import web

def peer(req):
    return str(req.transport.get_extra_info('peername')[1])

async def multi(req):
    resp = web.Response(text='m', headers={'X-Peer': peer(req)})
    resp.headers.add('X-Multi', 'one')
    resp.headers.add('x-multi', 'two')
    resp.headers.add('X-Multi', 'three')
    return resp

async def parts(req):
    resp = web.StreamResponse(headers={'X-Peer': peer(req)})
    await resp.prepare(req)
    for i in range(3):
        await resp.write(b'part %d\n' % i)
        await asyncio.sleep(0.01)
    await resp.write_eof()
    return resp

async def upload(req):
    data = await req.read()
    return web.json_response({'length': len(data), 'body': data.decode('latin1'),
                              'te': req.headers.get('Transfer-Encoding', '')},
                             headers={'X-Peer': peer(req)})

async def main():
    app = web.Application()
    app.add_routes([web.get('/multi', multi), web.get('/parts', parts),
                    web.post('/upload', upload)])
    runner = web.AppRunner(app, keepalive_timeout=0.2, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, '127.0.0.1', 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
]==]

local PROXY_PY = [==[
import asyncio, sys
from urllib.parse import urlsplit
log = open(sys.argv[1], 'a', buffering=1)

async def pipe(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except Exception:
        pass
    finally:
        w.close()

async def handle(r, w):
    try:
        head = await r.readuntil(b'\r\n\r\n')
    except Exception:
        w.close()
        return
    lines = head.split(b'\r\n')
    method, target, _ = lines[0].decode().split(' ')
    log.write(method + ' ' + target + '\n')
    if method == 'CONNECT':
        host, port = target.rsplit(':', 1)
        ur, uw = await asyncio.open_connection(host, int(port))
        w.write(b'HTTP/1.1 200 Connection established\r\n\r\n')
        await asyncio.gather(pipe(r, uw), pipe(ur, w))
        return
    u = urlsplit(target)
    out, clen = [], 0
    for l in lines[1:]:
        if not l:
            continue
        k = l.split(b':', 1)[0].strip().lower()
        if k == b'content-length':
            clen = int(l.split(b':', 1)[1])
        if k in (b'connection', b'proxy-connection', b'proxy-authorization'):
            continue
        out.append(l)
    body = await r.readexactly(clen) if clen else b''
    ur, uw = await asyncio.open_connection(u.hostname, u.port or 80)
    path = (u.path or '/') + ('?' + u.query if u.query else '')
    uw.write(('%s %s HTTP/1.1\r\n' % (method, path)).encode() + b'\r\n'.join(out)
             + b'\r\nConnection: close\r\n\r\n' + body)
    first = True
    while True:
        d = await ur.read(65536)
        if not d:
            break
        if first:
            i = d.index(b'\r\n') + 2
            d = d[:i] + b'X-Proxied: yes\r\n' + d[i:]
            first = False
        w.write(d)
        await w.drain()
    w.close()

async def main():
    srv = await asyncio.start_server(handle, '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())
]==]

local dir
local peers = {}         -- name -> {port =, pid =}

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function sh(cmd)
  local ok = os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1")
  assert(ok, "command failed: " .. cmd)
end

-- Starts cmd (in dir) in the background; its first number on stdout is
-- its port (pattern pat picks it).
local function start(name, cmd, pat)
  local out = dir .. "/" .. name .. ".out"
  local p = assert(io.popen("cd " .. H.quote(dir) .. " && (" .. cmd .. " >" .. H.quote(out)
    .. " 2>&1 & echo $!)"))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  for _ = 1, 200 do
    local port = tonumber(H.readall(out):match(pat or "^(%d+)"))
    if port then
      peers[name] = { port = port, pid = pid }
      return
    end
    os.execute("sleep 0.05")
  end
  os.execute("kill " .. pid)
  error(name .. " did not start: " .. H.readall(out))
end

local function url(name, path)
  local scheme = name == "nodes" and "https" or "http"
  return ("%s://%s:%d%s"):format(scheme, HOST, peers[name].port, path)
end

local warm_up = H.warm_up

local function run(fn, limit, before)
  return H.closes_fds(fn, limit or 5, function()
    warm_up()
    if before then before() end
  end)
end

local function cafile_ctx(ca)
  return aio.ssl.create_default_context("server_auth", { cafile = dir .. "/" .. ca .. ".pem" })
end

-- The error f(...) raised, and that it is of class cls.
local function err_of(cls, f, ...)
  local err = H.errof(f, ...)
  assert(aio.is(err, cls), "expected " .. tostring(cls) .. ", got " .. tostring(err))
  return err
end

-- The value of name in Node's rawHeaders list, or nil.
local function raw(headers, name)
  for i = 1, #headers, 2 do
    if headers[i]:lower() == name:lower() then return headers[i + 1] end
  end
  return nil
end

local function stats(c)
  local s = c:stats()
  return ("%d connections, %d idle, %d waiting"):format(s.connections, s.idle, s.waiting)
end

------------------------------------------------------------------ specs
describe("aio.http client", function()
  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.quote(dir .. "/www")))
    write(dir .. "/peer.js", PEER_JS)
    write(dir .. "/aiohttp_peer.py", AIOHTTP_PY)
    write(dir .. "/proxy.py", PROXY_PY)
    write(dir .. "/www/file.txt", ("0123456789"):rep(1000))
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
       "-keyout ca.key -out ca.pem -days 30 -subj '/CN=luaio test CA'")
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
       "-keyout other.key -out other.pem -days 30 -subj '/CN=some other CA'")
    sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
       "-keyout srv.key -out srv.csr -subj '/CN=localhost'")
    write(dir .. "/srv.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial " ..
       "-out srv.pem -days 30 -extfile srv.ext")
    start("node", "node peer.js")
    start("nodes", "node peer.js srv.pem srv.key")
    start("python", PY .. " -u -m http.server --bind 127.0.0.1 --directory www 0",
          "port (%d+)")
    start("aiohttp", PY .. " -u aiohttp_peer.py")
    start("proxy", PY .. " -u proxy.py proxy.log")
  end)

  lazy_teardown(function()
    for _, p in pairs(peers) do os.execute("kill " .. p.pid .. " 2>/dev/null") end
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  describe("against Node's http server", function()
    it("GET: status, reason, version, headers, url and a content-length body", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/hello"))
        assert.equal(200, res.status)
        assert.equal("OK", res.reason)
        assert.equal("1.1", res.version)
        assert.equal(url("node", "/hello"), res.url)
        assert.equal("5", res.headers:get("content-length"))
        assert.equal("5", res.headers:get("Content-Length"))
        assert.equal("hello", res:body())
        assert.equal("hello", res:body())          -- kept
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("a chunked body, by lines() and by read(n)", function()
      run(function()
        local c <close> = aio.http.Client()
        local lines = {}
        for l in c:get(url("node", "/chunked")):lines() do lines[#lines + 1] = l end
        assert.same({ "line one", "line two", "line three" }, lines)
        local res = c:get(url("node", "/chunked"))
        local parts = {}
        while true do
          local s = res:read(4)
          if not s then break end
          assert.is_true(#s <= 4)
          parts[#parts + 1] = s
        end
        assert.equal("line one\nline two\r\nline three", table.concat(parts))
        assert.equal("", res:read())
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("a large body read in small pieces", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/big?n=300000"))
        local n = 0
        while true do
          local s = res:read(1000)
          if not s then break end
          n = n + #s
        end
        assert.equal(300000, n)
        assert.equal(300000, #c:get(url("node", "/big?n=300000")):body())
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("HEAD: headers, no body, and the connection is reused", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:head(url("node", "/hello"))
        assert.equal(200, res.status)
        assert.equal("5", res.headers:get("content-length"))
        assert.equal("", res:body())
        local again = c:get(url("node", "/hello"))
        assert.equal("hello", again:body())
        assert.equal(res.headers:get("x-conn"), again.headers:get("x-conn"))
      end)
    end)

    it("POST with a string, a list of strings, and the headers sent in order", function()
      run(function()
        local c <close> = aio.http.Client()
        local e = c:post(url("node", "/echo"), {
          body = "a=1&b=2", headers = { ["Content-Type"] = "text/plain", ["X-Test"] = "yes" },
        }):json()
        assert.equal("POST", e.method)
        assert.equal("a=1&b=2", e.body)
        assert.is_false(e.chunked)
        assert.same({ "Host", HOST .. ":" .. peers.node.port, "Content-Type", "text/plain",
          "X-Test", "yes", "User-Agent", "luaio/0.1", "Accept", "*/*",
          "Accept-Encoding", "gzip, deflate", "Content-Length", "7" }, e.headers)
        e = c:put(url("node", "/echo"), { body = { "one ", "two ", "three" } }):json()
        assert.equal("PUT", e.method)
        assert.equal("one two three", e.body)
        assert.equal("13", raw(e.headers, "content-length"))
        e = c:post(url("node", "/echo")):json()
        assert.equal("0", raw(e.headers, "content-length"))
      end)
    end)

    it("streams an upload from a reader function: chunked, or as it is with a Content-Length", function()
      run(function()
        local c <close> = aio.http.Client()
        local function reader(parts)
          local i = 0
          return function()
            i = i + 1
            if parts[i] then aio.sleep(0.001) end   -- a reader may suspend
            return parts[i]
          end
        end
        local e = c:post(url("node", "/echo"), { body = reader { "ab", "", "cde", ("x"):rep(100000) } }):json()
        assert.is_true(e.chunked)
        assert.equal("chunked", raw(e.headers, "transfer-encoding"))
        assert.equal("abcde" .. ("x"):rep(100000), e.body)
        e = c:post(url("node", "/echo"), { body = reader { "12", "345" },
                                           headers = { ["Content-Length"] = "5" } }):json()
        assert.is_false(e.chunked)
        assert.equal("12345", e.body)
      end)
    end)

    it("keeps repeated headers in order, looked up in any case", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/repeat"))
        assert.same({ "a=1", "b=2" }, res.headers:get_all("set-cookie"))
        assert.same({ "x", "y" }, res.headers:get_all("X-MULTI"))
        assert.equal("x", res.headers:get("x-multi"))
        res:close()
      end)
    end)

    it("redirects: 301/302/303 become GET without a body, 307/308 keep method and body", function()
      run(function()
        local c <close> = aio.http.Client()
        for _, code in ipairs { 301, 302, 303 } do
          local res = c:post(url("node", "/redirect?code=" .. code .. "&to=/echo"), { body = "data" })
          local e = res:json()
          assert.equal("GET", e.method)
          assert.equal("", e.body)
          assert.is_nil(raw(e.headers, "content-length"))
          assert.equal(url("node", "/echo"), res.url)
        end
        for _, code in ipairs { 307, 308 } do
          local res = c:post(url("node", "/redirect?code=" .. code .. "&to=echo%3Fq%3D1"), { body = "data" })
          local e = res:json()
          assert.equal("POST", e.method)
          assert.equal("data", e.body)
          assert.equal(url("node", "/echo?q=1"), res.url)
        end
        -- an absolute Location, and one without a scheme
        local to = H.quote(url("node", "/hello")):gsub("'", "")
        assert.equal("hello", c:get(url("node", "/redirect?code=302&to=" .. to)):body())
        to = ("//%s:%d/hello"):format(HOST, peers.node.port)
        assert.equal("hello", c:get(url("node", "/redirect?code=301&to=" .. to)):body())
        -- redirects = 0: the 3xx itself
        local res = c:get(url("node", "/redirect?code=302&to=/hello"), { redirects = 0 })
        assert.equal(302, res.status)
        assert.equal("/hello", res.headers:get("location"))
        assert.equal("moved", res:body())
        -- 307 with a streamed body cannot be followed
        local err = err_of(aio.http.HTTPError, c.post, c, url("node", "/redirect?code=307&to=/echo"),
          { body = function() return nil end })
        assert.equal("HTTPError: POST " .. url("node", "/redirect?code=307&to=/echo")
          .. ": cannot follow a 307 redirect: the body was streamed from a function", tostring(err))
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("the redirect limit is a clear error", function()
      run(function()
        local c <close> = aio.http.Client()
        local err = err_of(aio.http.HTTPError, c.get, c, url("node", "/loop"))
        assert.equal("GET " .. url("node", "/loop") .. ": too many redirects (more than 5)", err.message)
        err = err_of(aio.http.HTTPError, c.get, c, url("node", "/loop"), { redirects = 2 })
        assert.equal("GET " .. url("node", "/loop") .. ": too many redirects (more than 2)", err.message)
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))   -- (each 302 was read to its end)
      end)
    end)

    it("keep-alive: sequential GETs use one connection", function()
      run(function()
        local c <close> = aio.http.Client()
        local conns = {}
        for i = 1, 20 do
          local res = c:get(url("node", i % 2 == 0 and "/hello" or "/chunked"))
          res:body()
          conns[res.headers:get("x-conn")] = true
        end
        local n = 0
        for _ in pairs(conns) do n = n + 1 end
        assert.equal(1, n)
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("concurrent GETs respect max_per_host; the others wait for a connection", function()
      run(function()
        local c <close> = aio.http.Client { max_per_host = 2 }
        local tag = tostring(os.time()) .. math.random(1e6)
        local conns, tasks = {}, {}
        for i = 1, 8 do
          tasks[i] = aio.create_task(function()
            local res = c:get(url("node", "/slow?ms=30&tag=" .. tag))
            assert.equal("ok", res:body())
            conns[res.headers:get("x-conn")] = true
          end)
        end
        aio.sleep(0.01)
        assert.equal("2 connections, 0 idle, 6 waiting", stats(c))
        aio.gather(tasks)
        local n = 0
        for _ in pairs(conns) do n = n + 1 end
        assert.equal(2, n)
        assert.equal("2", c:get(url("node", "/peak?tag=" .. tag)):body())
        assert.equal("2 connections, 2 idle, 0 waiting", stats(c))
      end)
    end)

    it("max_total: an idle connection to another host is closed to make room", function()
      run(function()
        local c <close> = aio.http.Client { max_total = 1 }
        c:get(url("node", "/hello")):body()
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
        assert.equal("hello", c:get(("http://localhost:%d/hello"):format(peers.node.port)):body())
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("retries once on a fresh connection when a pooled one turns out closed (idempotent methods)", function()
      run(function()
        local c <close> = aio.http.Client()
        local first = c:get(url("node", "/close-second"))
        assert.equal("first", first:body())
        -- the server resets the connection at its second request
        local second = c:get(url("node", "/close-second"))
        assert.equal("first", second:body())
        assert.are_not.equal(first.headers:get("x-conn"), second.headers:get("x-conn"))
        -- POST is not retried
        local err = err_of(aio.http.HTTPError, c.post, c, url("node", "/close-second"), { body = "x" })
        assert.equal("POST " .. url("node", "/close-second")
          .. ": the server closed the connection without responding", err.message)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)

    it("timeout: a server that never answers -> TimeoutError at the deadline", function()
      run(function()
        local c <close> = aio.http.Client()
        local t0 = aio.time()
        local err = err_of(aio.TimeoutError, c.get, c, url("node", "/never"), { timeout = 0.3 })
        local dt = aio.time() - t0
        assert.equal("GET " .. url("node", "/never") .. ": no response within 0.3 s (timeout)", err.message)
        assert.is_true(dt >= 0.29 and dt < 0.3 + 0.2 * H.SLOW, "took " .. dt)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        -- the client's own timeout, across a redirect
        local c2 <close> = aio.http.Client { timeout = 0.2 }
        err = err_of(aio.TimeoutError, c2.get, c2, url("node", "/redirect?code=302&to=/never"))
        assert.equal("GET " .. url("node", "/redirect?code=302&to=/never")
          .. ": no response within 0.2 s (timeout)", err.message)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c2))
      end)
    end)

    it("read_timeout: a server that stalls mid-body", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/stall"), { read_timeout = 0.2 })
        assert.equal(("x"):rep(10), res:read(100))
        local t0 = aio.time()
        local err = err_of(aio.TimeoutError, res.read, res, 100)
        assert.is_true(aio.time() - t0 >= 0.19)
        assert.equal("GET " .. url("node", "/stall") .. ": no data for 0.2 s (read_timeout)", err.message)
        -- the response keeps failing; the connection is gone
        assert.equal(err, H.errof(res.read, res))
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)

    it("cancellation mid-body closes the connection: no leak, the pool stays consistent", function()
      run(function()
        local c <close> = aio.http.Client { max_per_host = 1 }
        local reading = aio.Event()
        local t = aio.create_task(function()
          local res = c:get(url("node", "/stall"))
          res:read(10)
          reading:set()
          return res:body()
        end)
        reading:wait()
        aio.sleep(0.02)
        assert.equal("1 connections, 0 idle, 0 waiting", stats(c))
        t:cancel()
        assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        -- the slot is free again
        assert.equal("hello", c:get(url("node", "/hello")):body())
      end)
    end)

    it("cancellation while waiting for the head, and while waiting for a pool slot", function()
      run(function()
        local c <close> = aio.http.Client { max_per_host = 1 }
        local t1 = aio.create_task(function() return c:get(url("node", "/never")) end)
        aio.sleep(0.02)
        local t2 = aio.create_task(function() return c:get(url("node", "/hello")) end)
        aio.sleep(0.02)
        assert.equal("1 connections, 0 idle, 1 waiting", stats(c))
        t2:cancel()
        assert.is_true(aio.is(H.errof(t2.await, t2), aio.CancelledError))
        assert.equal("1 connections, 0 idle, 0 waiting", stats(c))
        t1:cancel()
        assert.is_true(aio.is(H.errof(t1.await, t1), aio.CancelledError))
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        -- a timeout while waiting for a slot
        local t3 = aio.create_task(function() return c:get(url("node", "/never")) end)
        aio.sleep(0.02)
        local err = err_of(aio.TimeoutError, c.get, c, url("node", "/hello"), { timeout = 0.1 })
        assert.equal("GET " .. url("node", "/hello") .. ": no response within 0.1 s (timeout)", err.message)
        t3:cancel()
        H.settle({ t3 })
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)

    it("a response closed before its end closes its connection; one read to the end is pooled", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/big?n=1000000"))
        assert.equal(200, res.status)
        res:close()
        assert.is_nil(res:read(10))
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        do
          local r2 <close> = c:get(url("node", "/hello"))
          -- (a small body came with the head: the connection is free already)
          assert.equal(200, r2.status)
        end
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("gzip and deflate bodies are decoded; decompress = false leaves them", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("node", "/gzip"))
        assert.equal("gzip", res.headers:get("content-encoding"))
        assert.equal(("hello gzip\n"):rep(100), res:body())
        local n = 0
        for line in c:get(url("node", "/deflate")):lines() do
          assert.equal("hello deflate", line)
          n = n + 1
        end
        assert.equal(100, n)
        local e = c:get(url("node", "/echo"), { decompress = false }):json()
        assert.is_nil(raw(e.headers, "accept-encoding"))
        local zipped = c:get(url("node", "/gzip"), { decompress = false }):body()
        assert.equal("\31\139", zipped:sub(1, 2))
        assert.equal(("hello gzip\n"):rep(100), require("zlib").inflate()(zipped))
      end)
    end)

    it("without lua-zlib no Accept-Encoding is sent", function()
      local script = H.script(([[
        package.loaded.zlib = nil
        package.preload.zlib = function() error("no zlib here") end
        local aio = require "luaio"
        local e = aio.http.get(%q):json()
        local ae = "none"
        for i = 1, #e.headers, 2 do
          if e.headers[i]:lower() == "accept-encoding" then ae = e.headers[i + 1] end
        end
        print(ae)
        aio.http.default_client():close()
      ]]):format(url("node", "/echo")))
      local r = H.cli({ script })
      os.remove(script)
      assert.equal(0, r.status, r.stderr)
      assert.equal("none\n", r.stdout)
    end)

    it("JSON: the json option and res:json()", function()
      run(function()
        local c <close> = aio.http.Client()
        local e = c:post(url("node", "/echo"), { json = { name = "luaio", n = 3 } }):json()
        assert.equal("application/json", raw(e.headers, "content-type"))
        assert.same({ name = "luaio", n = 3 }, require("cjson").decode(e.body))
        assert.same({ ok = true, list = { 1, 2, 3 }, name = "luaio" }, c:get(url("node", "/json")):json())
        local err = err_of(aio.http.HTTPError, function() return c:get(url("node", "/hello")):json() end)
        assert.matches("^GET " .. url("node", "/hello"):gsub("%p", "%%%0") .. ": the body is not JSON %(", err.message)
      end)
    end)

    it("Expect: 100-continue: the body after 100, after a short wait without it, or never", function()
      run(function()
        local c <close> = aio.http.Client()
        local e = c:post(url("node", "/echo"), { body = "payload", expect_continue = true }):json()
        assert.equal("100-continue", raw(e.headers, "expect"))
        assert.equal("payload", e.body)
        local t0 = aio.time()
        e = c:post(url("node", "/echo?no100"), { body = "late", expect_continue = 0.2 }):json()
        assert.equal("late", e.body)
        assert.is_true(aio.time() - t0 >= 0.19)
        local res = c:post(url("node", "/echo?reject"), { body = "never sent", expect_continue = true })
        assert.equal(417, res.status)
        assert.equal("Expectation Failed", res.reason)
        assert.equal("", res:body())
        -- the connection was closed: the server may still expect the body
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)

    it("the module functions use the running loop's default client", function()
      run(function()
        local res = aio.http.get(url("node", "/hello"))
        assert.equal("hello", res:body())
        local e = aio.http.request("DELETE", url("node", "/echo")):json()
        assert.equal("DELETE", e.method)
        assert.equal("OPTIONS", aio.http.options(url("node", "/echo")):json().method)
        assert.equal("PATCH", aio.http.patch(url("node", "/echo"), { body = "p" }):json().method)
        local d = aio.http.default_client()
        assert.equal(d, aio.http.default_client())
        assert.equal("1 connections, 1 idle, 0 waiting", stats(d))
        d:close()
        assert.are_not.equal(d, aio.http.default_client())
        aio.http.default_client():close()
      end)
    end)

    it("bad arguments and a closed client raise clear errors", function()
      run(function()
        local c = aio.http.Client()
        assert.matches("bad argument #2 to 'get' %(not an absolute URL%)",
          H.errof(c.get, c, "/relative"))
        assert.matches("bad argument #2 to 'get' %(http or https URL expected%)",
          H.errof(c.get, c, "ws://x/"))
        assert.matches("bad argument #1 to 'request' %(HTTP method expected, got \"BAD METHOD\"%)",
          H.errof(c.request, c, "BAD METHOD", url("node", "/")))
        assert.matches("get: unknown option 'timout'",
          H.errof(c.get, c, url("node", "/"), { timout = 1 }))
        assert.matches("post: option 'body' must be a string, a list of strings or a function, got number",
          H.errof(c.post, c, url("node", "/"), { body = 1 }))
        assert.matches("get: option 'timeout' must be a positive number",
          H.errof(c.get, c, url("node", "/"), { timeout = -1 }))
        assert.matches("Headers:add: value of header 'X' contains CR, LF or NUL",
          H.errof(c.get, c, url("node", "/"), { headers = { X = "a\r\nEvil: 1" } }))
        assert.matches("Client: option 'max_per_host' must be a positive integer",
          H.errof(aio.http.Client, { max_per_host = 0 }))
        assert.matches("Client: unknown option 'max'", H.errof(aio.http.Client, { max = 1 }))
        c:close()
        assert.equal("HTTPError: get: the client is closed",
          tostring(H.errof(c.get, c, url("node", "/hello"))))
      end)
    end)
  end)

  describe("https against Node's https server", function()
    local function warm() aio.ssl.create_default_context() end

    it("verifies the server (SNI = the host) and reuses the connection", function()
      run(function()
        local c <close> = aio.http.Client { ssl = cafile_ctx("ca") }
        local a = c:get(url("nodes", "/hello"))
        assert.equal("hello", a:body())
        local e = c:post(url("nodes", "/echo"), { body = "over tls" }):json()
        assert.equal("over tls", e.body)
        local b = c:get(("https://localhost:%d/hello"):format(peers.nodes.port))
        assert.equal("hello", b:body())
        assert.equal("2 connections, 2 idle, 0 waiting", stats(c))
      end, 5, warm)
    end)

    it("one deadline covers the TLS handshake: a peer that never answers it", function()
      run(function()
        local srv = aio.start_server(function(r) r:read() end, HOST, 0)
        local _, port = srv:getsockname()
        local c <close> = aio.http.Client { ssl = cafile_ctx("ca") }
        local u = ("https://%s:%d/"):format(HOST, port)
        local err = err_of(aio.TimeoutError, c.get, c, u, { timeout = 0.2 })
        assert.equal("GET " .. u .. ": no response within 0.2 s (timeout)", err.message)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        local t = aio.create_task(function() return c:get(u) end)
        aio.sleep(0.05)
        assert.equal("1 connections, 0 idle, 0 waiting", stats(c))
        t:cancel()
        assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        srv:close()
        srv:wait_closed()
      end, 5, warm)
    end)

    it("fails for a server whose CA is unknown", function()
      run(function()
        local c <close> = aio.http.Client()
        local err = err_of(aio.SSLError, c.get, c, url("nodes", "/hello"), { ssl = cafile_ctx("other") })
        assert.equal("CERTIFICATE_VERIFY_FAILED", err.reason)
        assert.equal("open_connection: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
          .. "unable to get local issuer certificate", err.message)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end, 5, warm)
    end)
  end)

  describe("against Python's http.server (HTTP/1.0)", function()
    it("GET and HEAD of a file, a 404; each connection closed after its response", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("python", "/file.txt"))
        assert.equal(200, res.status)
        assert.equal("1.0", res.version)
        assert.equal("10000", res.headers:get("content-length"))
        assert.equal(("0123456789"):rep(1000), res:body())
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
        res = c:head(url("python", "/file.txt"))
        assert.equal("10000", res.headers:get("content-length"))
        assert.equal("", res:body())
        res = c:get(url("python", "/missing"))
        assert.equal(404, res.status)
        assert.equal("File not found", res.reason)
        res:body()
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)
  end)

  describe("against aiohttp", function()
    it("repeated headers, a chunked response, a chunked upload", function()
      run(function()
        local c <close> = aio.http.Client()
        local res = c:get(url("aiohttp", "/multi"))
        assert.same({ "one", "two", "three" }, res.headers:get_all("X-Multi"))
        assert.equal("m", res:body())
        local lines = {}
        for l in c:get(url("aiohttp", "/parts")):lines() do lines[#lines + 1] = l end
        assert.same({ "part 0", "part 1", "part 2" }, lines)
        local parts = { "first ", "second ", "third" }
        local i = 0
        local e = c:post(url("aiohttp", "/upload"), { body = function()
          i = i + 1
          return parts[i]
        end }):json()
        assert.same({ length = 18, body = "first second third", te = "chunked" }, e)
      end)
    end)

    it("a connection the server closed while idle is replaced without an error", function()
      run(function()
        local c <close> = aio.http.Client()
        local a = c:get(url("aiohttp", "/multi"))
        a:body()
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
        aio.sleep(0.5)                  -- aiohttp's keepalive_timeout: 0.2 s
        local b = c:get(url("aiohttp", "/multi"))
        b:body()
        assert.are_not.equal(a.headers:get("x-peer"), b.headers:get("x-peer"))
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
      end)
    end)

    it("idle connections expire after idle_timeout", function()
      run(function()
        local c <close> = aio.http.Client { idle_timeout = 0.1 }
        c:get(url("node", "/hello")):body()
        assert.equal("1 connections, 1 idle, 0 waiting", stats(c))
        aio.sleep(0.25)
        assert.equal("0 connections, 0 idle, 0 waiting", stats(c))
      end)
    end)
  end)

  describe("through a proxy", function()
    local function log()
      return H.readall(dir .. "/proxy.log")
    end

    it("http: an absolute-form request; https: a CONNECT tunnel; no_proxy bypasses it", function()
      run(function()
        local proxy = ("http://%s:%d"):format(HOST, peers.proxy.port)
        local c <close> = aio.http.Client { proxy = proxy, ssl = cafile_ctx("ca") }
        local before = #log()
        local res = c:get(url("node", "/hello"))
        assert.equal("yes", res.headers:get("x-proxied"))
        assert.equal("hello", res:body())
        assert.equal("hello", c:get(url("nodes", "/hello")):body())
        assert.equal(("GET %s\nCONNECT %s:%d\n"):format(url("node", "/hello"), HOST, peers.nodes.port),
          log():sub(before + 1))
        local d <close> = aio.http.Client { proxy = { http = proxy, no_proxy = "example.org, 127.0.0.1" } }
        res = d:get(url("node", "/hello"))
        assert.is_nil(res.headers:get("x-proxied"))
        res:body()
        assert.equal(before + #log():sub(before + 1), #log())
      end, 5, function() aio.ssl.create_default_context() end)
    end)

    it("http_proxy and no_proxy from the environment, as curl reads them", function()
      local proxy = ("http://%s:%d"):format(HOST, peers.proxy.port)
      local script = H.script(([[
        local aio = require "luaio"
        local res = aio.http.get(%q)
        print(res.headers:get("x-proxied"), res:body())
        aio.http.default_client():close()
      ]]):format(url("node", "/hello")))
      local r = H.cli({ script }, { env = "http_proxy=" .. proxy .. " no_proxy=" })
      assert.equal(0, r.status, r.stderr)
      assert.equal("yes\thello\n", r.stdout)
      r = H.cli({ script }, { env = "http_proxy=" .. proxy .. " no_proxy=.example.org,127.0.0.1" })
      assert.equal("nil\thello\n", r.stdout)
      r = H.cli({ script }, { env = "HTTP_PROXY=" .. proxy .. " no_proxy=" })   -- (upper case: ignored)
      assert.equal("nil\thello\n", r.stdout)
      os.remove(script)
    end)
  end)
end)
