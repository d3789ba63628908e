-- spec/tls_spec.lua: TLS over streams (SPEC "TLS"): luaio client and
-- server, against the real `openssl s_server` and `openssl s_client`,
-- verification failures (unknown CA, host name, expiry), start_tls,
-- 10 MiB with drain, 200 concurrent clients, cancellation and timeouts
-- during the handshake, peers that break the protocol, bad arguments.
-- Certificates are made at test time with the openssl CLI (EC P-256:
-- fast handshakes) in a temporary directory.
local aio = require "luaio"
local H = require "helper"

local HOST = "127.0.0.1"

------------------------------------------------------------------ certificates
local dir

local function sh(cmd)
  local ok = os.execute("cd " .. H.quote(dir) .. " && " .. cmd .. " >/dev/null 2>&1")
  assert(ok, "command failed: " .. cmd)
end

-- A CA (name.pem/.key), and certificates it signs (days < 0: expired).
local function make_ca(name, cn)
  sh(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
      "-keyout %s.key -out %s.pem -days 30 -subj '/CN=%s'"):format(name, name, cn))
end

local function make_cert(name, ca, cn, san, days)
  sh(("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
      "-keyout %s.key -out %s.csr -subj '/CN=%s/O=luaio tests'"):format(name, name, cn))
  local f = assert(io.open(dir .. "/" .. name .. ".ext", "w"))
  f:write("subjectAltName=" .. san .. "\n")
  f:close()
  sh(("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial " ..
      "-out %s.pem -days %d -extfile %s.ext"):format(name, ca, ca, name, days or 30, name))
end

local function path(name) return dir .. "/" .. name end

local function server_ctx(cert)
  local ctx = aio.ssl.create_default_context("client_auth")
  ctx:load_cert_chain(path((cert or "srv") .. ".pem"), path((cert or "srv") .. ".key"))
  return ctx
end

local function client_ctx(ca)
  return aio.ssl.create_default_context("server_auth", { cafile = path((ca or "ca") .. ".pem") })
end

local warm_up = H.warm_up

local function run(fn, limit)
  return H.closes_fds(fn, limit or 5, warm_up)
end

-- A TLS server on 127.0.0.1:<free port> (H.serve); stop() returns how
-- many connections reached the handler (a failed handshake never does).
local function serve(handler, ctx, opts)
  opts = opts or {}
  opts.ssl = ctx or server_ctx()
  local _, port, stop = H.serve(handler, opts)
  return port, stop
end

local function echo(r, w)
  while true do
    local line = r:readline()
    if not line then return end
    w:write(line)
    w:drain()
  end
end

-- A plain TCP server (the peer that misbehaves): handler(r, w).
local function plain_server(handler)
  local srv = aio.start_server(function(r, w)
    pcall(handler, r, w)
    w:close()
  end, HOST, 0)
  local _, port = srv:getsockname()
  return port, function() srv:close(); srv:wait_closed() end
end

local function sslerr(f, ...)
  local err = H.errof(f, ...)
  assert(aio.is(err, aio.SSLError), "expected an SSLError, got " .. tostring(err))
  return err
end

------------------------------------------------------------------ specs
describe("TLS", function()
  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.quote(dir)))
    make_ca("ca", "luaio test CA")
    make_ca("other", "some other CA")
    make_cert("srv", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert("expired", "ca", "localhost", "DNS:localhost,IP:127.0.0.1", -1)
    make_cert("stranger", "other", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert("client", "ca", "luaio client", "DNS:client.test")
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  describe("luaio client and luaio server", function()
    it("echo lines through TLS 1.3, verified against the CA", function()
      run(function()
        local port, stop = serve(echo)
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        w:write("hello\n")
        assert.equal("hello\n", r:readline())
        w:writelines { "a\n", "b\n" }
        assert.equal("a\n", r:readline())
        assert.equal("b\n", r:readline())
        w:close()
        w:wait_closed()
        stop()
      end)
    end)

    it("a numeric address is checked against the certificate's IP names", function()
      run(function()
        local port, stop = serve(echo)
        local r, w = aio.open_connection(HOST, port, { ssl = client_ctx() })
        w:write("x\n")
        assert.equal("x\n", r:readline())
        w:close()
        stop()
      end)
    end)

    it("the peer's close_notify reads as EOF: nil from readline, the rest from read()", function()
      run(function()
        local port, stop = serve(function(_, w) w:write("last words") end)
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        assert.equal("last words", r:readline())
        assert.is_nil(r:readline())
        assert.equal("", r:read())
        assert.is_true(r:at_eof())
        w:close()
        stop()
      end)
    end)

    it("get_extra_info: peercert, cipher, ssl_object, sslcontext", function()
      run(function()
        local seen = {}
        local port, stop = serve(function(_, w)
          seen.peercert = w:get_extra_info("peercert")
          seen.side = w:get_extra_info("ssl_object").server_side
        end)
        local ctx = client_ctx()
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        local cert = w:get_extra_info("peercert")
        assert.equal("localhost", cert.subject.commonName)
        assert.equal("luaio tests", cert.subject.organizationName)
        assert.equal("luaio test CA", cert.issuer.commonName)
        assert.same({ { "DNS", "localhost" }, { "IP Address", "127.0.0.1" } }, cert.subjectAltName)
        assert.equal(3, cert.version)
        assert.matches("GMT$", cert.notAfter)
        assert.matches("^%x+$", cert.serialNumber)
        local cipher = w:get_extra_info("cipher")
        assert.equal("TLSv1.3", cipher[2])
        assert.is_true(cipher[3] >= 128)
        local so = w:get_extra_info("ssl_object")
        assert.equal(so, w:get_extra_info("ssl_object"))
        assert.equal("TLSv1.3", so:version())
        assert.same(cipher, so:cipher())
        assert.same(cert, so:getpeercert())
        assert.equal(0x30, so:getpeercert(true):byte(1))   -- DER: a SEQUENCE
        assert.is_false(so.server_side)
        assert.equal("localhost", so.server_hostname)
        assert.equal(ctx, w:get_extra_info("sslcontext"))
        assert.equal(HOST, (w:get_extra_info("peername")))
        assert.equal("dflt", w:get_extra_info("no such thing", "dflt"))
        assert.equal("", r:read())
        w:close()
        stop()
        assert.is_nil(seen.peercert)        -- the client sent none
        assert.is_true(seen.side)
      end)
    end)

    it("a plain stream has no TLS extra info", function()
      run(function()
        local port, stop = plain_server(function() end)
        local _, w = aio.open_connection(HOST, port)
        assert.is_nil(w:get_extra_info("ssl_object"))
        assert.is_nil(w:get_extra_info("peercert"))
        assert.equal(7, w:get_extra_info("cipher", 7))
        assert.is_true(w:can_write_eof())
        w:close()
        stop()
      end)
    end)

    it("ALPN: the server picks the first of its protocols the client offers", function()
      run(function()
        local chosen
        local sctx = server_ctx()
        sctx:set_alpn_protocols { "h2", "http/1.1" }
        local port, stop = serve(function(_, w)
          chosen = w:get_extra_info("ssl_object"):selected_alpn_protocol()
        end, sctx)
        local ctx = client_ctx()
        ctx:set_alpn_protocols { "http/1.1", "h2" }
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        assert.equal("h2", w:get_extra_info("ssl_object"):selected_alpn_protocol())
        r:read()
        w:close()
        stop()
        assert.equal("h2", chosen)
        -- no protocol in common: none selected
        ctx:set_alpn_protocols { "spdy/1" }
        port, stop = serve(function() end, sctx)
        r, w = aio.open_connection("localhost", port, { ssl = ctx })
        assert.is_nil(w:get_extra_info("ssl_object"):selected_alpn_protocol())
        r:read()
        w:close()
        stop()
      end)
    end)

    it("minimum_version: a TLS 1.2-only client cannot reach a TLS 1.3-only server", function()
      run(function()
        local sctx = server_ctx()
        sctx.minimum_version = "TLSv1.3"
        assert.equal("TLSv1.3", sctx.minimum_version)
        local port, stop = serve(echo, sctx)
        local ctx = client_ctx()
        ctx.maximum_version = "TLSv1.2"
        local err = sslerr(aio.open_connection, "localhost", port, { ssl = ctx })
        assert.matches("PROTOCOL", err.reason)
        ctx.maximum_version = nil
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        w:write("ok\n")
        assert.equal("ok\n", r:readline())
        w:close()
        assert.equal(1, stop())             -- the failed one never reached the handler
      end)
    end)

    it("TLS 1.2 works when both sides allow it", function()
      run(function()
        local sctx = server_ctx()
        sctx.maximum_version = "TLSv1.2"
        local port, stop = serve(echo, sctx)
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        assert.equal("TLSv1.2", w:get_extra_info("ssl_object"):version())
        w:write("v12\n")
        assert.equal("v12\n", r:readline())
        w:close()
        stop()
      end)
    end)

    it("client certificates: a server with verify = true needs one from its CA", function()
      run(function()
        local sctx = server_ctx()
        sctx.verify = true
        sctx:load_verify_locations(path("ca.pem"))
        local who
        local port, stop = serve(function(r, w)
          who = w:get_extra_info("peercert").subject.commonName
          echo(r, w)
        end, sctx)
        -- without a certificate: the server refuses (TLS 1.3 reports it
        -- to the client on its first read)
        local ok, err = pcall(function()
          local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
          w:write("x\n")
          local ok, line = pcall(r.readline, r)
          w:close()
          if not ok then error(line, 0) end
          return line
        end)
        assert(not ok, "expected the server to refuse a client without a certificate")
        assert.is_true(aio.is(err, aio.SSLError))
        assert.equal("TLSV13_ALERT_CERTIFICATE_REQUIRED", err.reason)
        local ctx = client_ctx()
        ctx:load_cert_chain(path("client.pem"), path("client.key"))
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        w:write("me\n")
        assert.equal("me\n", r:readline())
        w:close()
        stop()
        assert.equal("luaio client", who)
      end)
    end)

    it("one context serves both sides: create_default_context() with a certificate", function()
      run(function()
        -- what a script that read only the SPEC writes: the default
        -- context, a certificate loaded into it, used by the server; the
        -- same context (it trusts the CA) for the client
        local ctx = aio.ssl.create_default_context("server_auth", { cafile = path("ca.pem") })
        ctx:load_cert_chain(path("srv.pem"), path("srv.key"))
        local port, stop = serve(echo, ctx)
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        w:write("both\n")
        assert.equal("both\n", r:readline())
        w:close()
        stop()
        -- start_tls with server_side given explicitly: the connecting
        -- side answers the handshake
        local srv = aio.start_server(function(sr, sw)
          sw:start_tls(client_ctx(), { server_hostname = "localhost", server_side = false })
          echo(sr, sw)
          sw:close()
        end, HOST, 0)
        local _, p2 = srv:getsockname()
        local r2, w2 = aio.open_connection(HOST, p2)
        w2:start_tls(server_ctx(), { server_side = true })
        assert.is_true(w2:get_extra_info("ssl_object").server_side)
        w2:write("swapped\n")
        assert.equal("swapped\n", r2:readline())
        w2:close()
        srv:close()
        srv:wait_closed()
      end)
    end)

    it("over a unix socket", function()
      run(function()
        local sock = os.tmpname()
        os.remove(sock)
        local srv = aio.start_unix_server(function(r, w)
          echo(r, w)
          w:close()
        end, sock, { ssl = server_ctx() })
        local r, w = aio.open_unix_connection(sock, { ssl = client_ctx(), server_hostname = "localhost" })
        w:write("unix\n")
        assert.equal("unix\n", r:readline())
        w:close()
        w:wait_closed()
        srv:close()
        srv:wait_closed()
        os.remove(sock)
      end)
    end)
  end)

  describe("against the openssl command-line tools", function()
    it("a luaio client fetches from `openssl s_server -www`", function()
      run(function()
        local p = aio.create_subprocess_exec("openssl", {
          "s_server", "-accept", HOST .. ":0", "-cert", path("srv.pem"),
          "-key", path("srv.key"), "-www", "-naccept", "1" },
          { stdout = aio.PIPE, stderr = aio.DEVNULL })
        local port
        for line in p.stdout:lines() do
          port = line:match("^ACCEPT .*:(%d+)$")
          if port then break end
        end
        assert(port, "s_server did not say where it listens")
        local r, w = aio.open_connection("localhost", tonumber(port), { ssl = client_ctx() })
        w:write("GET / HTTP/1.0\r\n\r\n")
        local page = r:read()
        assert.matches("^HTTP/1.0 200 ok", page)
        assert.matches("TLSv1.3", page)
        w:close()
        w:wait_closed()
        assert.equal(0, p:wait())
      end, 10)
    end)

    it("`openssl s_client` verifies and talks to a luaio server", function()
      run(function()
        local port, stop = serve(function(r, w)
          local line = r:readline()
          w:write("luaio says: " .. line)
        end)
        local p = aio.create_subprocess_exec("openssl", {
          "s_client", "-connect", HOST .. ":" .. port, "-servername", "localhost",
          "-verify_hostname", "localhost", "-CAfile", path("ca.pem"),
          "-verify_return_error", "-quiet", "-no_ign_eof" },
          { stdin = aio.PIPE, stdout = aio.PIPE, stderr = aio.PIPE })
        -- stdin stays open until the reply is in: at EOF on its input,
        -- s_client hangs up at once
        p.stdin:write("ping\n")
        assert.equal("luaio says: ping\n", p.stdout:readline())
        p.stdin:close()
        assert.equal("", p.stdout:read())
        assert.matches("depth=0 CN = localhost.-verify return:1", p.stderr:read())
        assert.equal(0, p:wait())
        stop()
      end, 10)
    end)
  end)

  describe("verification failures raise SSLError with OpenSSL's reason", function()
    it("an unknown CA", function()
      run(function()
        local port, stop = serve(echo, server_ctx("stranger"))
        local err = sslerr(aio.open_connection, "localhost", port, { ssl = client_ctx() })
        assert.equal("CERTIFICATE_VERIFY_FAILED", err.reason)
        assert.equal("unable to get local issuer certificate", err.verify_message)
        assert.is_true(aio.is(err, aio.OSError))
        assert.equal("open_connection: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify " ..
                     "failed: unable to get local issuer certificate", err.message)
        assert.equal("SSL", err.library)
        assert.equal(0, stop())
      end)
    end)

    it("the system trust store (ssl = true) does not know our CA", function()
      run(function()
        local port, stop = serve(echo)
        local err = sslerr(aio.open_connection, "localhost", port, { ssl = true })
        assert.equal("CERTIFICATE_VERIFY_FAILED", err.reason)
        stop()
      end)
    end)

    it("a host name the certificate does not name", function()
      run(function()
        local port, stop = serve(echo)
        local err = sslerr(aio.open_connection, HOST, port,
                           { ssl = client_ctx(), server_hostname = "example.org" })
        assert.equal("hostname mismatch", err.verify_message)
        err = sslerr(aio.open_connection, "localhost", port,
                     { ssl = client_ctx(), server_hostname = "127.0.0.9" })
        assert.equal("IP address mismatch", err.verify_message)
        stop()
      end)
    end)

    it("an expired certificate", function()
      run(function()
        local port, stop = serve(echo, server_ctx("expired"))
        local err = sslerr(aio.open_connection, "localhost", port, { ssl = client_ctx() })
        assert.equal("certificate has expired", err.verify_message)
        stop()
      end)
    end)

    it("verify = false accepts any certificate; check_hostname = false only skips the name", function()
      run(function()
        local port, stop = serve(echo, server_ctx("stranger"))
        local ctx = aio.ssl.create_default_context()
        ctx.verify = false
        local r, w = aio.open_connection("localhost", port, { ssl = ctx })
        w:write("insecure\n")
        assert.equal("insecure\n", r:readline())
        w:close()
        stop()
        port, stop = serve(echo)
        ctx = client_ctx()
        ctx.check_hostname = false
        r, w = aio.open_connection(HOST, port, { ssl = ctx, server_hostname = "example.org" })
        w:write("no name check\n")
        assert.equal("no name check\n", r:readline())
        w:close()
        -- server_hostname = "" turns the name check off for one connection
        w = select(2, aio.open_connection(HOST, port, { ssl = client_ctx(), server_hostname = "" }))
        w:close()
        stop()
      end)
    end)
  end)

  describe("start_tls", function()
    it("upgrades a connection after a plain-text greeting (STARTTLS)", function()
      run(function()
        local sctx = server_ctx()
        local srv = aio.start_server(function(r, w)
          w:write("220 hello, plain text\n")
          assert.equal("STARTTLS\n", r:readline())
          w:write("220 go ahead\n")
          w:start_tls(sctx)
          assert.is_true(w:get_extra_info("ssl_object").server_side)
          echo(r, w)
          w:close()
        end, HOST, 0)
        local _, port = srv:getsockname()
        local r, w = aio.open_connection(HOST, port)
        assert.equal("220 hello, plain text\n", r:readline())
        w:write("STARTTLS\n")
        assert.equal("220 go ahead\n", r:readline())
        assert.is_nil(w:get_extra_info("ssl_object"))
        w:start_tls(client_ctx(), { server_hostname = "localhost" })
        assert.equal("TLSv1.3", w:get_extra_info("ssl_object"):version())
        w:write("secret\n")
        assert.equal("secret\n", r:readline())
        w:close()
        w:wait_closed()
        srv:close()
        srv:wait_closed()
      end)
    end)

    it("bytes that arrived before start_tls start the handshake", function()
      run(function()
        -- the client speaks first and at once: its hello may already be
        -- in the server's buffer when the server calls start_tls
        local sctx = server_ctx()
        local srv = aio.start_server(function(r, w)
          aio.sleep(0.05)
          w:start_tls(sctx)
          echo(r, w)
          w:close()
        end, HOST, 0)
        local _, port = srv:getsockname()
        local r, w = aio.open_connection(HOST, port)
        w:start_tls(client_ctx(), { server_hostname = "localhost" })
        w:write("early\n")
        assert.equal("early\n", r:readline())
        w:close()
        srv:close()
        srv:wait_closed()
      end)
    end)

    it("misuse: twice, without a host name, a non-context, a closed writer", function()
      run(function()
        local port, stop = serve(echo)
        local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        assert.matches("already uses TLS", H.errof(w.start_tls, w, client_ctx(), { server_hostname = "localhost" }))
        w:close()
        stop()
        local pport, pstop = plain_server(function(r) r:read() end)
        local _, pw = aio.open_connection(HOST, pport)
        assert.matches("server_hostname is required", H.errof(pw.start_tls, pw, client_ctx()))
        assert.matches("bad argument #1 to 'start_tls' %(SSLContext expected, got table%)",
                       H.errof(pw.start_tls, pw, {}))
        assert.matches("bad argument #2 to 'start_tls'", H.errof(pw.start_tls, pw, client_ctx(), 5))
        assert.matches("calling 'StreamWriter:start_tls' on bad self",
                       H.errof(pw.start_tls, client_ctx()))
        assert.matches("start_server: the server's SSLContext has no certificate",
                       H.errof(aio.start_server, echo, HOST, 0, { ssl = client_ctx() }))
        assert.matches("option 'server_side' must be a boolean",
                       H.errof(pw.start_tls, pw, client_ctx(), { server_side = 1 }))
        pw:close()
        assert.matches("closed", H.errof(pw.start_tls, pw, client_ctx(), { server_hostname = "x" }))
        pstop()
      end)
    end)
  end)

  describe("volume", function()
    it("10 MiB through TLS with drain, byte for byte, against a slow reader", function()
      run(function()
        local size = 10 * 1024 * 1024
        local chunk = {}
        for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
        chunk = table.concat(chunk):rep(256)          -- 64 KiB, every byte value
        local got = {}
        local port, stop = serve(function(r)
          local n = 0
          while true do
            local data = r:read(100000)
            if not data then break end
            got[#got + 1] = data
            n = n + #data
            if #got % 16 == 0 then aio.sleep(0.001) end   -- a slow reader
          end
        end)
        local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        local sent = {}
        local max_buffered = 0
        for i = 1, size // #chunk do
          local piece = chunk:sub(i % 7 + 1) .. chunk:sub(1, i % 7)   -- rotate: no repeats
          sent[#sent + 1] = piece
          w:write(piece)
          max_buffered = math.max(max_buffered, w:transport_buffered())
          w:drain()
        end
        w:close()
        w:wait_closed()
        stop()
        local a, b = table.concat(sent), table.concat(got)
        assert.equal(size, #a)
        assert.equal(#a, #b)
        assert.is_true(a == b, "the bytes differ")
        assert.is_true(max_buffered < 1024 * 1024, "drain did not hold writes back")
      end, 60)
    end)

    it("200 concurrent TLS clients", function()
      run(function()
        local port, stop = serve(echo)
        local ctx = client_ctx()
        local tasks = {}
        for i = 1, 200 do
          tasks[i] = aio.create_task(function()
            local r, w = aio.open_connection("localhost", port, { ssl = ctx })
            w:write(("client %d\n"):format(i))
            local line = r:readline()
            w:close()
            w:wait_closed()
            return line
          end)
        end
        local lines = aio.gather(tasks)
        for i = 1, 200 do assert.equal(("client %d\n"):format(i), lines[i]) end
        assert.equal(200, stop())
      end, 60)
    end)
  end)

  describe("the handshake", function()
    it("cancelled while it waits: CancelledError, the socket is closed", function()
      run(function()
        local port, stop = plain_server(function(r) r:read() end)   -- never answers
        local t = aio.create_task(aio.open_connection, HOST, port, { ssl = client_ctx() })
        aio.sleep(0.05)
        assert.matches("handshake", t:get_stack() or "")
        t:cancel()
        local err = H.errof(t.await, t)
        assert.is_true(aio.is(err, aio.CancelledError))
        stop()
      end)
    end)

    it("ssl_handshake_timeout: TimeoutError, the socket is closed", function()
      run(function()
        local port, stop = plain_server(function(r) r:read() end)
        local t0 = aio.time()
        local err = H.errof(aio.open_connection, HOST, port,
                            { ssl = client_ctx(), ssl_handshake_timeout = 0.1 })
        assert.is_true(aio.is(err, aio.TimeoutError))
        assert.is_true(aio.time() - t0 < 3)
        stop()
      end)
    end)

    it("a server drops a client that never completes its handshake (timeout)", function()
      run(function()
        local port, stop = serve(echo, nil, { ssl_handshake_timeout = 0.1 })
        local r, w = aio.open_connection(HOST, port)       -- plain: says nothing
        assert.equal("", r:read())                          -- dropped: EOF
        w:close()
        assert.equal(0, stop())
      end)
    end)

    it("a plain-text client to a TLS server: dropped, the handler never runs", function()
      run(function()
        local port, stop = serve(echo)
        local r, w = aio.open_connection(HOST, port)
        w:write("GET / HTTP/1.0\r\n\r\n")
        local reply = r:read()
        assert.is_true(#reply < 100)        -- at most an alert, then EOF
        w:close()
        assert.equal(0, stop())
      end)
    end)

    it("debug mode: a client's failed handshake goes to the exception handler", function()
      run(function()
        local loop = aio.get_running_loop()
        local got = {}
        loop:set_debug(true)
        loop:set_exception_handler(function(_, ctx) got[#got + 1] = ctx end)
        local port, stop = serve(echo)
        local r, w = aio.open_connection(HOST, port)
        w:write("GET / HTTP/1.0\r\n\r\n")
        r:read()
        w:close()
        assert.equal(0, stop())
        loop:set_exception_handler(nil)
        loop:set_debug(false)
        assert.equal(1, #got)
        assert.matches("TLS handshake with a client failed", got[1].message, 1, true)
        assert.is_not_nil(got[1].exception)
      end)
    end)

    it("a TLS client to a plain-text server: SSLError", function()
      run(function()
        local port, stop = plain_server(function(r, w)
          w:write("220 plain text only\r\n")
          r:read()
        end)
        local err = sslerr(aio.open_connection, HOST, port, { ssl = client_ctx() })
        assert.equal("WRONG_VERSION_NUMBER", err.reason)
        stop()
      end)
    end)

    it("the peer closes during the handshake: SSLError (unexpected eof)", function()
      run(function()
        local port, stop = plain_server(function(r) r:read(65536) end)   -- reads the hello, closes
        local err = sslerr(aio.open_connection, HOST, port, { ssl = client_ctx() })
        assert.equal("UNEXPECTED_EOF_WHILE_READING", err.reason)
        assert.matches("unexpected eof while reading %(the peer closed the connection during the handshake%)", err.message)
        stop()
      end)
    end)

    it("the peer closes inside a record: SSLError, not a silent short read", function()
      run(function()
        -- a relay that passes the handshake through, then cuts the
        -- server's first application record in half
        local sport, sstop = serve(function(r, w)
          r:readline()
          w:write(("x"):rep(1000) .. "\n")
          aio.sleep(0.2)
        end)
        local cut = aio.Event()
        local rport, rstop = plain_server(function(cr, cw)
          local sr, sw = aio.open_connection(HOST, sport)
          local up = aio.create_task(function()
            while true do
              local d = cr:read(65536)
              if not d or d == "" then break end
              sw:write(d)
            end
          end)
          local seen = 0
          while true do
            local d = sr:read(65536)
            if not d then break end
            seen = seen + #d
            -- the handshake is well under 2000 bytes; the 1000-byte
            -- record comes after: pass half of it, then hang up
            if cut:is_set() then
              cw:write(d:sub(1, #d // 2))
              break
            end
            cw:write(d)
          end
          up:cancel()
          sw:close()
        end)
        local r, w = aio.open_connection("localhost", rport, { ssl = client_ctx() })
        cut:set()
        w:write("go\n")
        local err = H.errof(r.readline, r)
        assert.is_true(aio.is(err, aio.SSLError), tostring(err))
        assert.equal("UNEXPECTED_EOF_WHILE_READING", err.reason)
        assert.matches("inside a TLS record", err.message)
        w:close()
        rstop()
        sstop()
      end)
    end)
  end)

  describe("TLS streams", function()
    it("a cancelled read consumes nothing: the next read gets the data", function()
      run(function()
        local go = aio.Event()
        local port, stop = serve(function(r, w)
          go:wait()
          w:write("after the cancel\n")
          r:read()
        end)
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        local t = aio.create_task(r.readline, r)
        aio.sleep(0.02)
        t:cancel()
        assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
        go:set()
        assert.equal("after the cancel\n", r:readline())
        w:close()
        stop()
      end)
    end)

    it("readexactly, readuntil and the limit work on the plaintext across records", function()
      run(function()
        local port, stop = serve(function(_, w)
          w:write(("a"):rep(20000))              -- two TLS records
          w:write(("b"):rep(20000) .. "END")
          w:write(("c"):rep(300) .. "\n")
        end)
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx(), limit = 256 })
        assert.equal(("a"):rep(20000), r:readexactly(20000))
        local err = H.errof(r.readuntil, r, "END")
        assert.is_true(aio.is(err, aio.LimitOverrunError))
        assert.equal(("b"):rep(256), r:read(256))   -- nothing was consumed
        assert.equal(("b"):rep(19744), r:readexactly(19744))
        assert.equal("END", r:readexactly(3))
        err = H.errof(r.readexactly, r, 1000)
        assert.is_true(aio.is(err, aio.IncompleteReadError))
        assert.equal(("c"):rep(300) .. "\n", err.partial)
        w:close()
        stop()
      end)
    end)

    it("a cancelled drain leaves the data queued; it all arrives", function()
      run(function()
        local got
        local release = aio.Event()
        local port, stop = serve(function(r)
          release:wait()
          got = r:read()
        end)
        local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        -- enough that the socket buffers (whatever the kernel's limits) are
        -- full and luaio holds more than the high-water mark
        local chunk, sent = ("q"):rep(1024 * 1024), 0
        repeat
          w:write(chunk)
          sent = sent + #chunk
          aio.sleep(0.01)
        until w:transport_buffered() > 256 * 1024 or sent >= 256 * #chunk
        local big = { length = sent }
        local t = aio.create_task(w.drain, w)
        aio.sleep(0.02)
        assert.is_false(t:done())                  -- the reader is not reading
        t:cancel()
        assert.is_true(aio.is(H.errof(t.await, t), aio.CancelledError))
        release:set()
        w:close()
        w:wait_closed()
        stop()
        assert.equal(big.length, #got)
      end, 20)
    end)

    it("a peer that vanishes mid-transfer: write/drain raise OSError, nothing hangs", function()
      run(function()
        local port, stop = serve(function(r, w)
          r:readexactly(5)
          w:_abort()                               -- gone without close_notify
        end)
        local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        w:write("hello")
        local err = H.errof(function()
          for _ = 1, 1000 do
            w:write(("x"):rep(65536))
            w:drain()
          end
        end)
        assert.is_true(aio.is(err, aio.OSError), tostring(err))
        w:close()
        stop()
      end, 10)
    end)

    it("closing the server leaves TLS connections working", function()
      run(function()
        local srv = aio.start_server(function(r, w)
          echo(r, w)
          w:close()
        end, HOST, 0, { ssl = server_ctx() })
        local _, port = srv:getsockname()
        local r, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        srv:close()
        w:write("still here\n")
        assert.equal("still here\n", r:readline())
        w:close()
        srv:wait_closed()
      end)
    end)

    it("cannot half-close: write_eof raises, can_write_eof() is false", function()
      run(function()
        local port, stop = serve(echo)
        local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
        assert.is_false(w:can_write_eof())
        assert.matches("cannot half%-close", H.errof(w.write_eof, w))
        w:close()
        stop()
      end)
    end)

    it("a collected writer still sends what it queued, then close_notify", function()
      run(function()
        local got
        local port, stop = serve(function(r) got = r:read() end)
        do
          local _, w = aio.open_connection("localhost", port, { ssl = client_ctx() })
          w:write(("z"):rep(300000))
        end
        collectgarbage()
        collectgarbage()
        stop()
        assert.equal(300000, #got)
      end)
    end)
  end)

  describe("contexts", function()
    it("defaults: clients verify and check names, servers do neither", function()
      local c = aio.ssl.create_default_context()
      assert.is_true(c.verify)
      assert.is_true(c.check_hostname)
      assert.is_false(c.server_side)
      assert.equal("TLSv1.2", c.minimum_version)
      local s = aio.ssl.create_default_context("client_auth")
      assert.is_false(s.verify)
      assert.is_true(s.server_side)
      assert.is_true(aio.ssl.SSLContext("server").server_side)
      assert.is_false(aio.ssl.SSLContext().server_side)
      assert.matches("^SSLContext %(for clients", tostring(c))
      assert.is_true(aio.ssl.is_context(c))
      assert.is_false(aio.ssl.is_context({}))
      assert.matches("^OpenSSL", aio.ssl.OPENSSL_VERSION)
      assert.is_true(aio.ssl.HAS_TLS)
    end)

    it("bad arguments and files give clear errors", function()
      local c = aio.ssl.create_default_context()
      assert.matches("bad argument #1 to 'create_default_context'",
                     H.errof(aio.ssl.create_default_context, "sideways"))
      assert.matches("bad argument #1 to 'SSLContext'", H.errof(aio.ssl.SSLContext, 3))
      assert.matches("SSLContext has no field 'verify_mode'",
                     H.errof(function() c.verify_mode = 0 end))
      assert.matches("boolean expected", H.errof(function() c.verify = "no" end))
      assert.matches("\"TLSv1.2\", \"TLSv1.3\"", H.errof(function() c.minimum_version = "SSLv3" end))
      local err = H.errof(c.load_cert_chain, c, path("nope.pem"))
      assert.is_true(aio.is(err, aio.OSError))
      assert.equal("ENOENT", err.code)
      assert.matches("nope.pem", err.message)
      err = H.errof(c.load_cert_chain, c, path("srv.pem"), path("client.key"))
      assert.is_true(aio.is(err, aio.SSLError))
      assert.matches("key values mismatch", err.message)
      err = H.errof(c.load_cert_chain, c, path("srv.csr"))
      assert.is_true(aio.is(err, aio.SSLError))
      assert.matches("load_verify_locations: cafile or capath expected",
                     H.errof(c.load_verify_locations, c))
      assert.matches("item 2 is not a protocol name",
                     H.errof(c.set_alpn_protocols, c, { "h2", "" }))
      assert.is_true(aio.is(H.errof(c.set_ciphers, c, "NO-SUCH-CIPHER"), aio.SSLError))
    end)

    it("bad ssl options", function()
      run(function()
        assert.matches("option 'ssl' must be true or an SSLContext, got number",
                       H.errof(aio.open_connection, HOST, 1, { ssl = 42 }))
        assert.matches("only meaningful with ssl",
                       H.errof(aio.open_connection, HOST, 1, { server_hostname = "x" }))
        assert.matches("ssl_handshake_timeout' must be a positive number",
                       H.errof(aio.open_connection, HOST, 1, { ssl = true, ssl_handshake_timeout = 0 }))
        assert.matches("option 'ssl' must be an SSLContext with a certificate",
                       H.errof(aio.start_server, echo, HOST, 0, { ssl = true }))
        local bare = aio.ssl.SSLContext("server")
        assert.matches("start_server: the server's SSLContext has no certificate",
                       H.errof(aio.start_server, echo, HOST, 0, { ssl = bare }))
        local port, stop = plain_server(function() end)
        local _, w = aio.open_connection(HOST, port)
        assert.matches("has no certificate", H.errof(w.start_tls, w, bare, { server_side = true }))
        w:close()
        stop()
      end)
    end)
  end)
end)
