-- Packaging: `make install` into a temporary prefix, a host built with
-- nothing but `pkg-config --cflags --libs luaio`, and `luarocks make`.
local H = require "helper"

local function sh(cmd)
  local f = io.popen(cmd .. " 2>&1; echo \"status=$?\"")
  local out = f:read("a")
  f:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return status, out:gsub("status=%d+%s*$", "")
end

local tmpdir = H.tmpdir

describe("make install", function()
  local prefix

  setup(function()
    prefix = tmpdir()
    local status, out = sh(("make -s -C %s install PREFIX=%s"):format(H.quote(H.ROOT), H.quote(prefix)))
    assert(status == 0, out)
  end)

  teardown(function()
    if prefix then
      sh(("make -s -C %s uninstall PREFIX=%s"):format(H.quote(H.ROOT), H.quote(prefix)))
      os.execute("rm -rf " .. H.quote(prefix))
    end
  end)

  it("installs the CLI, the libraries, the header, luaio.pc, the Lua files and luaio.core", function()
    for _, f in ipairs { "bin/luaio", "lib/libluaio.a", "lib/libluaio.so", "include/luaio.h",
                         "lib/pkgconfig/luaio.pc", "share/lua/5.4/luaio/init.lua",
                         "lib/lua/5.4/luaio/core.so" } do
      local fh = io.open(prefix .. "/" .. f)
      assert(fh, "not installed: " .. f)
      fh:close()
    end
  end)

  it("the installed CLI loads the TLS engine from its prefix on first use", function()
    local aio = require "luaio"
    if not aio.ssl.HAS_TLS then
      pending("built without TLS")
      return
    end
    local fh = io.open(prefix .. "/lib/lua/5.4/luaio/tls.so")
    assert(fh, "not installed: lib/lua/5.4/luaio/tls.so")
    fh:close()
    -- no LUA_CPATH: the module is found next to the executable
    local status, out = sh(("cd / && env -u LUA_CPATH -u LUA_PATH %s -e %s"):format(
      H.quote(prefix .. "/bin/luaio"),
      H.quote([[local aio = require "luaio" print(aio.ssl.HAS_TLS, tostring(aio.ssl.create_default_context()):match("^SSLContext %(for clients"))]])))
    assert.equal(0, status, out)
    assert.equal("true\tSSLContext (for clients\n", out)
  end)

  it("lets a host build with only pkg-config and run a script", function()
    local dir = tmpdir()
    local src = dir .. "/host.c"
    local f = assert(io.open(src, "w"))
    f:write([[
#include <stdio.h>
#include "luaio.h"
int main (void) {
  char err[200];
  luaio_Runtime *rt = luaio_open(NULL, NULL, err, sizeof err);
  if (!rt) { puts(err); return 1; }
  luaio_dostring(rt, "local aio = require 'luaio' aio.sleep(0.01) print('installed ok')", "=t");
  luaio_run(rt, UV_RUN_DEFAULT);
  return luaio_close(rt);
}
]])
    f:close()
    local env = "PKG_CONFIG_PATH=" .. H.quote(prefix .. "/lib/pkgconfig")
    local status, out = sh(("%s cc -Wall -Werror -o %s/host %s $(%s pkg-config --cflags --libs luaio) -Wl,-rpath,%s/lib")
      :format(env, dir, src, env, prefix))
    assert.equal(0, status, out)
    status, out = sh(dir .. "/host")
    os.execute("rm -rf " .. H.quote(dir))
    assert.equal(0, status, out)
    assert.equal("installed ok\n", out)
  end)

  it("installs a CLI that runs from any directory", function()
    local status, out = sh(("cd / && %s/bin/luaio -e 'local aio = require \"luaio\" aio.sleep(0) print(\"cli ok\")'")
      :format(prefix))
    assert.equal(0, status, out)
    assert.equal("cli ok\n", out)
  end)

  it("uninstalls what it installed", function()
    local status, out = sh(("make -s -C %s uninstall PREFIX=%s"):format(H.quote(H.ROOT), H.quote(prefix)))
    assert.equal(0, status, out)
    assert.is_nil(io.open(prefix .. "/bin/luaio"))
    assert.is_nil(io.open(prefix .. "/lib/libluaio.a"))
    assert.is_nil(io.open(prefix .. "/share/lua/5.4/luaio/init.lua"))
  end)
end)

describe("luarocks make", function()
  local have = os.execute("command -v luarocks >/dev/null 2>&1")

  it("installs the module into a tree, usable from stock lua5.4", function()
    if not have then
      pending("luarocks is not installed")
      return
    end
    local tree = tmpdir()
    local status, out = sh(("cd %s && luarocks --lua-version=5.4 make --tree %s luaio-0.1.0-1.rockspec")
      :format(H.quote(H.ROOT), H.quote(tree)))
    assert.equal(0, status, out)
    status, out = sh(("cd / && LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s"):format(
      H.quote(tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua"),
      H.quote(tree .. "/lib/lua/5.4/?.so"),
      H.quote([[local aio = require "luaio" print(aio.run(function() aio.sleep(0.01) return "rock ok" end), aio.ssl.HAS_TLS)]])))
    os.execute("rm -rf " .. H.quote(tree))
    assert.equal(0, status, out)
    assert.equal("rock ok\t" .. tostring(require("luaio").ssl.HAS_TLS) .. "\n", out)
  end)
end)
