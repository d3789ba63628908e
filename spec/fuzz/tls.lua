-- Fuzz target: TLS with a hostile peer.  The first byte picks the mode:
--   even: the input (after byte 1) goes raw to a luaio TLS server, as a
--         client's first flight;
--   odd:  a real luaio client and server talk through a relay that
--         corrupts the server's bytes: the input is a list of
--         (offset, xor) pairs applied to the server-to-client stream.
-- Whatever arrives, the only acceptable outcomes are success, EOF, or
-- aio.SSLError / aio.OSError / aio.TimeoutError; the server must keep
-- serving (a clean client gets its echo afterwards) and the loop must
-- end with nothing left open.  Anything else is a finding.
-- A throwaway certificate is made once with the openssl CLI.
local aio = require "luaio"

local function fail(fmt, ...) error(fmt:format(...), 0) end

local DIR = os.tmpname()
os.remove(DIR)
assert(os.execute("mkdir -p " .. DIR .. " && cd " .. DIR .. " && " ..
  "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes " ..
  "-days 30 -keyout key.pem -out cert.pem -subj /CN=localhost " ..
  "-addext subjectAltName=DNS:localhost >/dev/null 2>&1"), "openssl failed")

local SOCK, RELAY = DIR .. "/srv.sock", DIR .. "/relay.sock"

local function acceptable(err)
  return aio.is(err, aio.SSLError) or aio.is(err, aio.OSError)
      or aio.is(err, aio.TimeoutError) or aio.is(err, aio.IncompleteReadError)
end

local sctx, cctx

local function contexts()
  if sctx then return end
  sctx = aio.ssl.create_default_context("client_auth")
  sctx:load_cert_chain(DIR .. "/cert.pem", DIR .. "/key.pem")
  cctx = aio.ssl.create_default_context("server_auth", { cafile = DIR .. "/cert.pem" })
end

-- A client that must get its echo (the server survived).
local function clean_client()
  local r, w = aio.open_unix_connection(SOCK, { ssl = cctx, server_hostname = "localhost" })
  w:write("still alive\n")
  if r:readline() ~= "still alive\n" then fail("the server no longer echoes") end
  w:close()
  w:wait_closed()
end

local function raw_flight(data)
  local r, w = aio.open_unix_connection(SOCK)
  w:write(data)
  w:write_eof()                        -- the server sees EOF after it
  local ok, err = pcall(function()
    return aio.wait_for(function() return r:read() end, 0.5)
  end)
  if not ok and not acceptable(err) then fail("raw flight: %s", tostring(err)) end
  w:close()
end

local function corrupted(data)
  local edits = {}
  for i = 1, #data - 1, 2 do
    edits[#edits + 1] = { data:byte(i) * 8 + (i % 8), data:byte(i + 1) }
  end
  local relay = aio.start_unix_server(function(cr, cw)
    local sr, sw = aio.open_unix_connection(SOCK)
    local up = aio.create_task(function()
      while true do
        local d = cr:read(65536)
        if not d or d == "" then break end
        sw:write(d)
      end
      sw:close()
    end)
    local pos = 0
    while true do
      local d = sr:read(65536)
      if not d then break end
      local bytes = { d:byte(1, -1) }
      for _, e in ipairs(edits) do
        local k = e[1] - pos + 1
        if k >= 1 and k <= #bytes then bytes[k] = bytes[k] ~ e[2] end
      end
      pos = pos + #d
      cw:write(string.char(table.unpack(bytes)))
    end
    up:cancel()
    cw:close()
    sw:close()
  end, RELAY)
  local ok, err = pcall(function()
    return aio.wait_for(function()
      local r, w = aio.open_unix_connection(RELAY, { ssl = cctx, server_hostname = "localhost" })
      w:write("through the relay\n")
      local line = r:readline()
      w:close()
      return line
    end, 1)
  end)
  if not ok and not acceptable(err) then fail("corrupted stream: %s", tostring(err)) end
  relay:close()
end

return function(data)
  local mode = (data:byte(1) or 0) % 2
  os.remove(SOCK)
  os.remove(RELAY)
  aio.run(function()
    contexts()
    local server = aio.start_unix_server(function(r, w)
      local line = r:readline()
      if line then w:write(line) end
      w:close()
    end, SOCK, { ssl = sctx, ssl_handshake_timeout = 0.1 })
    if mode == 0 then raw_flight(data:sub(2)) else corrupted(data:sub(2)) end
    clean_client()
    server:close()
  end)
end
