/*
** handle.c -- callbacks: loop:call_soon, call_later, call_at and their
** handles (cancel, cancelled, when).
**
** A handle keeps its function and arguments in its user values and is
** anchored while pending.  Callbacks are not tasks: they run in the drain
** with no current task, so suspending in one raises the outside-a-task
** error.  An error in a callback goes to the loop's exception handler and
** the loop carries on.
*/
#include <math.h>

#include "internal.h"

static Handle *checkhandle (lua_State *L, int idx) {
  return (Handle *)luaio__checkclass(L, idx, LUAIO_HANDLE);
}

static void release (lua_State *L, Handle *h) {
  if (h->anchor) {
    luaio__unanchor(L, h->rt, h->anchor);
    h->anchor = 0;
    h->rt->nhandles--;
  }
}

/* Message handler of callbacks: keeps the error, adds the traceback. */
static int callback_msgh (lua_State *L) {
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaio__traceback(L, L, NULL, 1);
  lua_rawseti(L, -2, 2);
  return 1;
}

/*
** Calls the function at func with nargs arguments above it, protected;
** on error reports {message, exception, traceback, key = obj at objidx}.
*/
void luaio__call_reporting (lua_State *L, luaio_Runtime *rt, int nargs,
                            const char *key, int objidx) {
  int func = lua_gettop(L) - nargs;
  lua_pushcfunction(L, callback_msgh);
  lua_insert(L, func);
  if (lua_pcall(L, nargs, 0, func) != LUA_OK) {
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "Exception in callback");
    lua_setfield(L, -2, "message");
    if (lua_istable(L, -2)) {
      lua_rawgeti(L, -2, 1);
      lua_setfield(L, -2, "exception");
      lua_rawgeti(L, -2, 2);
      lua_setfield(L, -2, "traceback");
    }
    else {                             /* an error in the handler itself */
      lua_pushvalue(L, -2);
      lua_setfield(L, -2, "exception");
    }
    lua_pushvalue(L, objidx);
    lua_setfield(L, -2, key);
    luaio__report(L, rt);
    lua_pop(L, 1);
  }
  lua_settop(L, func - 1);
}

/* Runs a handle popped from the ready queue (or a due timer). */
static void run_handle (lua_State *L, luaio_Runtime *rt, void *p, int idx) {
  Handle *h = (Handle *)p;
  int i, hidx;
  (void)idx;
  if (h->anchor == 0) return;
  luaio__push_anchor(L, rt, h->anchor);
  hidx = lua_gettop(L);
  release(L, h);
  if (h->state != H_PENDING) { lua_pop(L, 1); return; }
  h->state = H_RAN;
  lua_checkstack(L, h->nargs + 4);
  for (i = 1; i <= h->nargs + 1; i++) lua_getiuservalue(L, hidx, i);
  luaio__call_reporting(L, rt, h->nargs, "handle", hidx);
  lua_settop(L, hidx - 1);
}

/* Makes a handle for fn at idx with the n values after it. */
static Handle *newhandle (lua_State *L, luaio_Runtime *rt, int idx,
                                int n, const char *fname) {
  Handle *h;
  int i;
  if (lua_type(L, idx) != LUA_TFUNCTION)
    luaio__typeerror(L, idx, fname, "function");
  h = (Handle *)lua_newuserdatauv(L, sizeof(Handle), n + 1);
  h->state = H_PENDING;
  h->timer = 0;
  h->nargs = n;
  h->heap = 0;
  h->when = 0;
  h->rt = rt;
  luaL_setmetatable(L, LUAIO_HANDLE);
  for (i = 0; i <= n; i++) {
    lua_pushvalue(L, idx + i);
    lua_setiuservalue(L, -2, i + 1);
  }
  lua_pushvalue(L, -1);
  h->anchor = luaio__anchor(L, rt);
  rt->nhandles++;
  return h;
}

static luaio_Runtime *looparg (lua_State *L) {
  return luaio__checkloop(L, 1);
}

/* loop:call_soon(fn, ...) -> handle */
static int loop_call_soon (lua_State *L) {
  luaio_Runtime *rt = looparg(L);
  Handle *h = newhandle(L, rt, 2, lua_gettop(L) - 2, "call_soon");
  luaio__schedule(rt, run_handle, h, 0);
  return 1;
}

static int call_timer (lua_State *L, luaio_Runtime *rt, uint64_t when,
                       double at, int forever, const char *fname) {
  Handle *h = newhandle(L, rt, 3, lua_gettop(L) - 3, fname);
  h->timer = 1;
  h->when = when;
  h->at = at;
  if (forever) return 1;               /* never fires; cancel releases it */
  if (!luaio__heap_push(rt, when, run_handle, h))
    return luaL_error(L, "not enough memory");
  luaio__kick(rt);
  return 1;
}

/* loop:call_later(delay, fn, ...) -> timer handle */
static int loop_call_later (lua_State *L) {
  luaio_Runtime *rt = looparg(L);
  uint64_t ns = 0;
  int forever = luaio__delay_ns(L, 2, "call_later", &ns);
  uint64_t now = luaio__now(rt);
  return call_timer(L, rt, forever ? UINT64_MAX : now + ns,
                    forever ? HUGE_VAL : (double)now / 1e9 + lua_tonumber(L, 2),
                    forever, "call_later");
}

/* loop:call_at(when, fn, ...) -> timer handle; when is in loop:time(). */
static int loop_call_at (lua_State *L) {
  luaio_Runtime *rt = looparg(L);
  double w;
  if (lua_type(L, 2) != LUA_TNUMBER) luaio__typeerror(L, 2, "call_at", "number");
  w = lua_tonumber(L, 2);
  if (w != w) return luaio__argerror(L, 2, "call_at", "time is NaN");
  if (w >= 4.6e9) return call_timer(L, rt, UINT64_MAX, w, 1, "call_at");
  return call_timer(L, rt, w > 0 ? (uint64_t)(w * 1e9) : 0, w, 0, "call_at");
}

static int h_cancel (lua_State *L) {
  Handle *h = checkhandle(L, 1);
  if (h->state == H_PENDING) {
    h->state = H_CANCELLED;
    if (h->heap > 0) {                 /* still in the heap: drop it now */
      luaio__heap_remove(h->rt, h->heap - 1);
      release(L, h);
    }
    else if (h->timer && h->anchor && h->when == UINT64_MAX)
      release(L, h);                   /* a timer that never fires */
  }
  return 0;
}

static int h_cancelled (lua_State *L) {
  lua_pushboolean(L, checkhandle(L, 1)->state == H_CANCELLED);
  return 1;
}

static int h_when (lua_State *L) {
  Handle *h = checkhandle(L, 1);
  if (!h->timer) return luaL_error(L, "when: not a timer handle");
  lua_pushnumber(L, h->at);
  return 1;
}

static int h_tostring (lua_State *L) {
  Handle *h = checkhandle(L, 1);
  static const char *const names[] = {"pending", "done", "cancelled"};
  lua_pushfstring(L, "%s: %s (%p)", h->timer ? "TimerHandle" : "Handle",
                  names[h->state], (void *)h);
  return 1;
}

static const luaL_Reg handle_methods[] = {
  {"cancel", h_cancel},
  {"cancelled", h_cancelled},
  {"when", h_when},
  {NULL, NULL}
};

static const luaL_Reg loop_methods[] = {
  {"call_soon", loop_call_soon},
  {"call_later", loop_call_later},
  {"call_at", loop_call_at},
  {NULL, NULL}
};

void luaio__handle_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_HANDLE)) {
    lua_newtable(L);
    luaio__setfuncs(L, handle_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, h_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_getmetatable(L, LUAIO_LOOP);
  lua_getfield(L, -1, "methods");
  luaio__setfuncs(L, loop_methods);
  lua_pop(L, 2);
}
