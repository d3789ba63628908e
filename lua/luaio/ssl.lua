-- luaio.ssl (aio.ssl): TLS contexts, as Python's ssl module makes them.
--
--   local ctx = aio.ssl.create_default_context()     -- a client's: verifies
--   local r, w = aio.open_connection("example.org", 443, { ssl = ctx })
--
--   local sctx = aio.ssl.create_default_context("client_auth")  -- a server's
--   sctx:load_cert_chain("cert.pem", "key.pem")
--   aio.start_server(handler, "0.0.0.0", 8443, { ssl = sctx })
--
-- A context (runtime/tls.c) works on either side; what it was made for
-- only sets defaults.  Fields: verify (check the peer's certificate; a
-- server asks clients for one only when it is set to true),
-- check_hostname (clients: and that it names the host), minimum_version /
-- maximum_version ("TLSv1.2", "TLSv1.3"), server_side (read-only: made
-- for servers), and the methods load_cert_chain(cert [, key [, password]]),
-- load_verify_locations([cafile [, capath]]), load_default_certs(),
-- set_alpn_protocols(list), set_ciphers(openssl_list).
local core = require "luaio.core"

-- The engine: runtime/tls.c as the module luaio.tls (linked in, or loaded
-- from its own file by the CLI), or tls_none.c in a build without OpenSSL.
local ok, tls = pcall(require, "luaio.tls")
if not ok then
  local why = tostring(tls)
  local function missing()
    error("TLS is not available (built without TLS, or its module is missing: " .. why .. ")", 2)
  end
  tls = { has_tls = false, ssl_context = missing, ssl_has_certificate = missing,
          is_ssl_context = function() return false end }
end

local M = {}
M._engine = tls

--- aio.ssl.HAS_TLS: false in a build without OpenSSL.
M.HAS_TLS = tls.has_tls
--- aio.ssl.OPENSSL_VERSION: "OpenSSL 3.0.x ..." (nil without TLS).
M.OPENSSL_VERSION = tls.ssl_version

M.Purpose = { SERVER_AUTH = "server_auth", CLIENT_AUTH = "client_auth" }
M.TLSVersion = { TLSv1_2 = "TLSv1.2", TLSv1_3 = "TLSv1.3" }

--- aio.ssl.SSLContext([side]) -> context made for side "client" (the
--- default: verify and check_hostname on, no CA loaded) or "server"
--- (verify off).
function M.SSLContext(side)
  if side ~= nil and side ~= "client" and side ~= "server" then
    error(("bad argument #1 to 'SSLContext' (\"client\" or \"server\" expected, got %s)")
      :format(type(side) == "string" and ("%q"):format(side) or type(side)), 2)
  end
  return tls.ssl_context(side == "server")
end

--- aio.ssl.create_default_context([purpose [, {cafile =, capath =}]]) ->
--- context.  purpose "server_auth" (the default: a client's context that
--- verifies servers against cafile/capath, or the system's trust store,
--- and checks host names) or "client_auth" (made for a server: load its
--- certificate with load_cert_chain; clients are not asked for one).
function M.create_default_context(purpose, opts)
  if purpose ~= nil and purpose ~= "server_auth" and purpose ~= "client_auth" then
    error(("bad argument #1 to 'create_default_context' (\"server_auth\" or \"client_auth\" expected, got %s)")
      :format(type(purpose) == "string" and ("%q"):format(purpose) or type(purpose)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #2 to 'create_default_context' (table expected, got %s)")
      :format(type(opts)), 2)
  end
  core.check_options(opts, "create_default_context", { cafile = true, capath = true }, 2)
  opts = opts or {}
  local ctx = tls.ssl_context(purpose == "client_auth")
  if opts.cafile or opts.capath then
    ctx:load_verify_locations(opts.cafile, opts.capath)
  elseif purpose ~= "client_auth" then
    ctx:load_default_certs()
  end
  return ctx
end

--- aio.ssl.is_context(v) -> true for an SSLContext
M.is_context = tls.is_ssl_context

return M
