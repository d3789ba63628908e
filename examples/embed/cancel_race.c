/*
** cancel_race.c -- one cleanup per pending operation: push runs exactly
** once on every path, with L == NULL when nobody will receive the values.
** The script forces each interleaving in turn: delivered; resolved, then
** cancelled before the task resumed; cancelled, then resolved; resolved
** from the cancel hook; and, at luaio_close, resolved but not resumed,
** and never resolved (the hook resolves).
*/
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

typedef struct Op {
  luaio_Pending *p;
  int id;
  int hook_resolves;           /* the cancel hook resolves it at once */
} Op;

static Op *ops[8];             /* started, not yet resolved */
static int live;               /* Ops allocated, not yet freed */

/* The one cleanup: delivers (L: the task's thread) or discards (NULL). */
static int push (lua_State *L, void *ud) {
  Op *op = (Op *)ud;
  int id = op->id;
  free(op);
  live--;
  printf("op %d: %s\n", id, L == NULL ? "discarded" : "delivered");
  if (L == NULL) return 0;
  lua_pushinteger(L, id * 10);
  return 1;
}

static void resolve (int id) {
  Op *op = ops[id];
  ops[id] = NULL;
  luaio_resolve(op->p, push, op);
}

/* Runs inside t:cancel(), on the canceller's stack. */
static void on_cancel (void *ud) {
  Op *op = (Op *)ud;
  printf("op %d: cancel hook\n", op->id);
  if (op->hook_resolves) resolve(op->id);
}

/* host.op(id [, hook_resolves]): suspends until host.complete(id). */
static int l_op (lua_State *L) {
  int id = (int)luaL_checkinteger(L, 1);
  int hook = lua_toboolean(L, 2);
  luaio_Pending *p;
  Op *op;
  luaL_argcheck(L, id > 0 && id < 8 && ops[id] == NULL, 1, "bad id");
  p = luaio_pending(L);        /* arguments checked first: nothing leaks */
  op = (Op *)malloc(sizeof *op);
  if (op == NULL) return luaL_error(L, "out of memory");
  live++;
  op->p = p;
  op->id = id;
  op->hook_resolves = hook;
  ops[id] = op;
  luaio_pending_on_cancel(p, on_cancel, op);
  return luaio_await(L, p);
}

/* host.complete(id): resolves op id now; its task resumes later. */
static int l_complete (lua_State *L) {
  resolve((int)luaL_checkinteger(L, 1));
  return 0;
}

int main (void) {
  char err[256];
  luaio_Runtime *rt = luaio_open(NULL, NULL, err, sizeof err);
  lua_State *L;
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  L = luaio_state(rt);
  lua_newtable(L);
  lua_pushcfunction(L, l_op);
  lua_setfield(L, -2, "op");
  lua_pushcfunction(L, l_complete);
  lua_setfield(L, -2, "complete");
  lua_setglobal(L, "host");
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "local function start (id, hook)\n"
    "  local t = aio.create_task(host.op, id, hook)\n"
    "  aio.sleep(0)                     -- it runs and suspends\n"
    "  return t\n"
    "end\n"
    "local function cancelled (t)\n"
    "  return aio.is(select(2, pcall(t.await, t)), aio.CancelledError)\n"
    "end\n"
    "local t = start(1); host.complete(1)\n"
    "print('1 gives', t:await())\n"
    "t = start(2); host.complete(2); t:cancel()   -- resolved, not resumed\n"
    "print('2 cancelled', cancelled(t))\n"
    "t = start(3); t:cancel(); aio.sleep(0); host.complete(3)\n"
    "print('3 cancelled', cancelled(t))\n"
    "t = start(4, true); t:cancel()\n"
    "print('4 cancelled', cancelled(t))\n"
    "start(5); start(6, true)           -- left for luaio_close\n"
    "print('script done')\n", "=script");
  luaio_run(rt, UV_RUN_DEFAULT);     /* returns: 5 and 6 keep nothing alive */
  printf("before close: %d tasks\n", luaio_pending_tasks(rt));
  resolve(5);                        /* resolved; its task never resumes */
  printf("close: %d\n", luaio_close(rt));
  printf("ops left: %d\n", live);
  return 0;
}
