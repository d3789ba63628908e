-- tls_echo.lua: a TLS echo server and a client that verifies it.
--
-- It makes a throwaway CA and a certificate for "localhost" with the
-- openssl command-line tool (in a temporary directory), serves TLS with
-- it, and connects with a context that trusts only that CA.
--   build/luaio examples/tls_echo.lua             # demo: server + client
--   build/luaio examples/tls_echo.lua serve 8443  # just the server; try:
--     openssl s_client -connect 127.0.0.1:8443 -CAfile <dir>/ca.pem
-- expect: verified localhost, issued by tls_echo demo CA
-- expect: TLSv1.3 with TLS_
-- expect: client got: hello over TLS
-- expect: a client that trusts the system store: CERTIFICATE_VERIFY_FAILED
local aio = require "luaio"

-- Runs the openssl CLI as a subprocess (never blocks the loop).
local function openssl(dir, args)
  local p = aio.create_subprocess_exec("openssl", args,
    { cwd = dir, stdout = aio.DEVNULL, stderr = aio.PIPE })
  local _, err = p:communicate()
  assert(p:wait() == 0, "openssl " .. args[1] .. " failed: " .. err)
end

local function make_certificates()
  local dir = os.tmpname()
  os.remove(dir)
  aio.fs.mkdir(dir)
  local ec = { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes" }
  openssl(dir, { "req", "-x509", ec[1], ec[2], ec[3], ec[4], ec[5], "-keyout", "ca.key",
                 "-out", "ca.pem", "-days", "1", "-subj", "/CN=tls_echo demo CA" })
  openssl(dir, { "req", ec[1], ec[2], ec[3], ec[4], ec[5], "-keyout", "server.key",
                 "-out", "server.csr", "-subj", "/CN=localhost" })
  aio.fs.write_file(dir .. "/san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
  openssl(dir, { "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "san.ext" })
  return dir
end

local function handle(reader, writer)
  for line in reader:lines() do
    writer:write(line .. "\n")
    writer:drain()
  end
  writer:close()
end

local dir = make_certificates()
local server_ctx = aio.ssl.create_default_context("client_auth")
server_ctx:load_cert_chain(dir .. "/server.pem", dir .. "/server.key")

if arg[1] == "serve" then
  local server = aio.start_server(handle, "127.0.0.1", tonumber(arg[2]) or 8443,
                                  { ssl = server_ctx })
  print(("TLS echo server on 127.0.0.1:%d; its CA is %s/ca.pem")
    :format(select(2, server:getsockname()), dir))
  server:serve_forever()
  return
end

local server <close> = aio.start_server(handle, "127.0.0.1", 0, { ssl = server_ctx })
local _, port = server:getsockname()

-- A client that trusts our CA (not the system's store) and checks the name.
local ctx = aio.ssl.create_default_context("server_auth", { cafile = dir .. "/ca.pem" })
local reader, writer = aio.open_connection("localhost", port, { ssl = ctx })
local cert = writer:get_extra_info("peercert")
print(("verified %s, issued by %s"):format(cert.subject.commonName, cert.issuer.commonName))
local cipher = writer:get_extra_info("cipher")
print(("%s with %s"):format(cipher[2], cipher[1]))
writer:write("hello over TLS\n")
print("client got: " .. reader:readline():sub(1, -2))
writer:close()
writer:wait_closed()

-- ssl = true: the system's trust store, which has never heard of our CA.
local ok, err = pcall(aio.open_connection, "localhost", port, { ssl = true })
assert(not ok and aio.is(err, aio.SSLError))
print("a client that trusts the system store: " .. err.reason)

os.execute("rm -rf '" .. dir .. "'")
