/*
** async_fn.c -- a host exposing an async C function to Lua: host.delay(ms,
** value) starts a libuv timer, suspends the calling task, and the timer's
** callback resumes it with a result.  Also shows an error from the
** completion and a cancellation (the cancel hook stops the timer).
*/
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

typedef struct Delay {
  uv_timer_t timer;
  luaio_Pending *pending;
  lua_Integer value;
  int fail;
} Delay;

/* The one cleanup, whatever happened: push runs exactly once after
   luaio_resolve, with L == NULL when nobody will receive the values. */
static int push_result (lua_State *L, void *ud) {
  Delay *d = (Delay *)ud;
  lua_Integer v = d->value;
  int fail = d->fail;
  uv_close((uv_handle_t *)&d->timer, (uv_close_cb)free);
  if (L == NULL) return 0;                     /* discarded: cancelled */
  if (fail) return luaL_error(L, "host.delay: the device failed");
  lua_pushinteger(L, v * 2);
  return 1;
}

static int push_nomem (lua_State *L, void *ud) {
  (void)ud;
  return L != NULL ? luaL_error(L, "host.delay: not enough memory") : 0;
}

static void on_timer (uv_timer_t *t) {
  Delay *d = (Delay *)t->data;
  luaio_resolve(d->pending, push_result, d);
}

/* Inside t:cancel(): stop the device and resolve now (push discards). */
static void on_cancel (void *ud) {
  Delay *d = (Delay *)ud;
  uv_timer_stop(&d->timer);
  luaio_resolve(d->pending, push_result, d);
}

/* host.delay(ms, value [, fail]) -> value * 2, after ms milliseconds */
static int l_delay (lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);    /* arguments first, */
  lua_Integer value = luaL_checkinteger(L, 2);
  int fail = lua_toboolean(L, 3);
  luaio_Pending *p = luaio_pending(L);         /* then the pending (it */
  Delay *d = (Delay *)malloc(sizeof *d);       /* raises), then allocate */
  if (d == NULL) {
    luaio_resolve(p, push_nomem, NULL);
    return luaio_await(L, p);                  /* raises at once */
  }
  d->pending = p;
  d->value = value;
  d->fail = fail;
  uv_timer_init(luaio_loop(luaio_running(L)), &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, on_timer, (uint64_t)ms, 0);
  luaio_pending_on_cancel(p, on_cancel, d);
  return luaio_await(L, p);
}

int main (void) {
  char err[256];
  luaio_Runtime *rt = luaio_open(NULL, NULL, err, sizeof err);
  lua_State *L;
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  L = luaio_state(rt);
  lua_newtable(L);
  lua_pushcfunction(L, l_delay);
  lua_setfield(L, -2, "delay");
  lua_setglobal(L, "host");
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "print('delay gives', host.delay(20, 21))\n"
    "print('error:', pcall(host.delay, 10, 1, true))\n"
    "local t = aio.create_task(host.delay, 1000, 5)\n"
    "aio.sleep(0.01)\n"
    "t:cancel()\n"
    "print('cancelled:', aio.is(select(2, pcall(t.await, t)), aio.CancelledError))\n"
    "local r = aio.gather({function() return host.delay(30, 1) end,\n"
    "                      function() return host.delay(10, 2) end})\n"
    "print('gather:', r[1], r[2])\n"
    "aio.get_running_loop():call_soon(function()\n"
    "  print('outside a task:', (pcall(host.delay, 1, 1))) end)\n"
    "aio.sleep(0)\n", "=script");
  luaio_run(rt, UV_RUN_DEFAULT);
  luaio_close(rt);
  return 0;
}
