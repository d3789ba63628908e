-- luaio.http (aio.http): HTTP/1.1 on luaio's streams, parsed by llhttp
-- (core.http_parser).  The server is luaio.http_server, the client (with
-- its connection pool) luaio.http_client; both are loaded on first use.
-- What they share (header lists, URLs) is luaio.http_headers.
local headers = require "luaio.http_headers"

local M = {}

M.Headers = headers.new
M.is_headers = headers.is_headers
M.parse_url = headers.parse_url
M.REASONS = headers.REASONS
M.HTTPError = headers.HTTPError   -- the client's and the server's

local function server() return require "luaio.http_server" end
local function client() return require "luaio.http_client" end

--- aio.http.serve(handler, host, port [, opts]) -> server
--- (in a worker process of aio.workers, the server drains on SIGTERM)
function M.serve(...)
  local worker = require("luaio.core")._worker
  if not worker then return server().serve(...) end   -- (errors blame the caller)
  local srv = server().serve(...)
  worker.serving(srv)
  return srv
end

--- aio.http.Client([opts]) -> a client (a session with its own pool)
function M.Client(...) return client().Client(...) end

--- aio.http.request(method, url [, opts]) -> response (the default client)
function M.request(...) return client().request(...) end

for _, method in ipairs { "get", "head", "post", "put", "patch", "delete", "options" } do
  M[method] = function(...) return client()[method](...) end
end

--- aio.http.default_client() -> the running loop's default client
function M.default_client(...) return client().default_client(...) end

return M
