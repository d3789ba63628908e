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

local function server() return require "luaio.http_server" end
local function client() return require "luaio.http_client" end

--- aio.http.serve(handler, host, port [, opts]) -> server
function M.serve(...) return server().serve(...) end

--- aio.http.Client([opts]) -> a client (a session with its own pool)
function M.Client(...) return client().Client(...) end

--- aio.http.request(method, url [, opts]) -> response (the default client)
function M.request(...) return client().request(...) end

for _, method in ipairs { "get", "head", "post", "put", "patch", "delete", "options" } do
  M[method] = function(...) return client()[method](...) end
end

-- The client's error class and the running loop's default client
-- (aio.http.HTTPError, aio.http.default_client()), on first use.
local FROM_CLIENT = { HTTPError = true, default_client = true }
setmetatable(M, { __index = function(_, k)
  if FROM_CLIENT[k] then return client()[k] end
end })

return M
