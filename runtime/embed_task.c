/*
** embed_task.c -- task handles for hosts (luaio.h): start a task and get
** its Task, ask how it ended, and run the loop until it has
** (luaio_run_until_complete), all from C.
**
** A Task handle is the Task object itself, on the host's stack: the host
** keeps it there (or in a luaL_ref) as long as it wants the outcome.  The
** status and outcome need only the lua_State, so they still answer after
** luaio_close (which leaves every task finished).  Lua work runs under
** lua_pcall, as everywhere in the embedding API.
*/
#include <string.h>

#include "internal.h"

/* The Task at idx, or NULL (by the metatable's name: allocates nothing,
   so it raises nothing, also in a state luaio never ran in). */
static Task *task_at (lua_State *L, int idx) {
  if (!lua_checkstack(L, 2)) return NULL;
  return (Task *)luaL_testudata(L, idx, LUAIO_TASK);
}

/* A failure before any Lua work: message in luaio_error; nothing pushed. */
static int fail (luaio_Runtime *rt, const char *msg) {
  luaio__embed_set_error(rt, msg);
  return LUAIO_ERROR;
}

/* After a lua_pcall that failed: the message to luaio_error, popped. */
static int failed_call (lua_State *L, luaio_Runtime *rt) {
  const char *m = lua_tostring(L, -1);
  luaio__embed_set_error(rt, m != NULL ? m : "(error object is not a string)");
  lua_pop(L, 1);
  return LUAIO_ERROR;
}


/* ---------------------------------------------------------- starting */

/* spawn_in(rt, fn, ...) -> Task */
static int spawn_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  if (!lua_isfunction(L, 2)) {
    if (luaL_getmetafield(L, 2, "__call") == LUA_TNIL)
      return luaL_error(L, "luaio_spawn_task: the value below the "
                        "arguments is not a function (a %s)",
                        luaL_typename(L, 2));
    lua_pop(L, 1);
  }
  luaio__create_task(L, rt, 2, lua_gettop(L) - 2);
  return 1;
}

/*
** Runs f(rt, <n values moved from H>) on the scheduler's thread (as the
** rest of the embedding API does: H may be inside a call of its own) and
** moves its one result, the Task, to H.
*/
static int start (luaio_Runtime *rt, lua_State *H, lua_CFunction f, int n) {
  lua_State *S = rt->S;
  if (!lua_checkstack(S, n + 3)) {
    lua_pop(H, n);
    return fail(rt, "stack overflow");
  }
  lua_pushcfunction(S, f);
  lua_pushlightuserdata(S, rt);
  lua_xmove(H, S, n);
  if (lua_pcall(S, n + 1, 1, 0) != LUA_OK) return failed_call(S, rt);
  lua_xmove(S, H, 1);
  luaio__embed_set_error(rt, NULL);
  return LUAIO_OK;
}

LUAIO_API int luaio_spawn_task (luaio_Runtime *rt, int nargs) {
  lua_State *L;
  if (rt == NULL) return LUAIO_ERROR;
  L = luaio_state(rt);
  if (nargs < 0 || nargs >= lua_gettop(L))   /* (the stack is left as is) */
    return fail(rt, "luaio_spawn_task: nargs must be >= 0 and the stack "
                "must hold a function and nargs arguments");
  return start(rt, L, spawn_in, nargs + 1);
}

/* load_in(rt, code, name, isfile) -> Task */
static int load_in (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  const char *code = lua_tostring(L, 2);
  int status = lua_toboolean(L, 4)
    ? luaL_loadfile(L, code)
    : luaL_loadbuffer(L, code, strlen(code), lua_tostring(L, 3));
  if (status != LUA_OK) return lua_error(L);
  luaio__create_task(L, rt, -1, 0);
  return 1;
}

static int load_task (luaio_Runtime *rt, const char *s, const char *name,
                      int file, const char *fname) {
  lua_State *L;
  if (rt == NULL) return LUAIO_ERROR;
  if (s == NULL) {
    luaio__embed_set_error(rt, fname);
    return LUAIO_ERROR;
  }
  L = luaio_state(rt);
  if (!lua_checkstack(L, 3)) return fail(rt, "stack overflow");
  lua_pushstring(L, s);
  lua_pushstring(L, name);
  lua_pushboolean(L, file);
  return start(rt, L, load_in, 3);
}

LUAIO_API int luaio_dostring_task (luaio_Runtime *rt, const char *code,
                                   const char *chunkname) {
  return load_task(rt, code, chunkname != NULL ? chunkname : "=(string)", 0,
                   "luaio_dostring_task: code is NULL");
}

LUAIO_API int luaio_dofile_task (luaio_Runtime *rt, const char *path) {
  return load_task(rt, path, path, 1, "luaio_dofile_task: path is NULL");
}


/* ---------------------------------------------------------- outcome */

LUAIO_API int luaio_task_status (lua_State *L, int idx) {
  Task *t;
  if (L == NULL) return LUAIO_NOT_A_TASK;
  t = task_at(L, idx);
  if (t == NULL) return LUAIO_NOT_A_TASK;
  switch (t->f.state) {
    case FUT_DONE: return LUAIO_TASK_DONE;
    case FUT_FAILED: return LUAIO_TASK_FAILED;
    case FUT_CANCELLED: return LUAIO_TASK_CANCELLED;
    default: return LUAIO_TASK_PENDING;
  }
}

/* results_in(task) -> its results, or raises its error */
static int results_in (lua_State *L) {
  return luaio__future_results(L, 1);
}

LUAIO_API int luaio_task_result (lua_State *L, int idx, int *nresults) {
  int top, st;
  if (nresults != NULL) *nresults = 0;
  if (L == NULL) return LUAIO_ERROR;
  if (!lua_checkstack(L, 3)) return LUAIO_ERROR;
  st = luaio_task_status(L, idx);
  if (st == LUAIO_NOT_A_TASK || st == LUAIO_TASK_PENDING) {
    lua_pushstring(L, st == LUAIO_NOT_A_TASK
      ? "luaio_task_result: the value is not a Task"
      : "luaio_task_result: the task is not finished (InvalidStateError)");
    return LUAIO_ERROR;
  }
  idx = lua_absindex(L, idx);
  top = lua_gettop(L);
  lua_pushcfunction(L, results_in);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) return LUAIO_ERROR;
  if (nresults != NULL) *nresults = lua_gettop(L) - top;
  return LUAIO_OK;
}


/* ---------------------------------------------------------- waiting */

/* The outcome's message for luaio_error: the error value, as tostring. */
static void error_from_top (lua_State *L, luaio_Runtime *rt) {
  const char *m;
  if (!lua_checkstack(L, 2)) {
    luaio__embed_set_error(rt, "stack overflow");
    return;
  }
  lua_getglobal(L, "tostring");
  if (lua_isfunction(L, -1)) {
    lua_pushvalue(L, -2);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "(error object is not a string)");
    }
  }
  else {
    lua_pop(L, 1);
    lua_pushstring(L, lua_isstring(L, -1) ? lua_tostring(L, -1)
                                           : "(error object is not a string)");
  }
  m = lua_tostring(L, -1);
  luaio__embed_set_error(rt, m);
  lua_pop(L, 1);
}

/* Pushes msg, sets it as luaio_error: LUAIO_ERROR. */
static int fail_pushed (lua_State *L, luaio_Runtime *rt, const char *msg) {
  lua_pushstring(L, msg);
  luaio__embed_set_error(rt, msg);
  return LUAIO_ERROR;
}

/*
** Runs the loop until t finishes.  Returns NULL, or why it could not:
** nothing is left that could finish it, or the scheduler failed.
*/
static const char *wait_for (luaio_Runtime *rt, Task *t) {
  const char *why = NULL;
  rt->running_depth++;
  while (t->f.state == FUT_PENDING) {
    int alive;
    luaio__kick(rt);
    alive = uv_run(rt->loop, UV_RUN_ONCE);
    if (rt->fatal) {
      rt->fatal = 0;
      why = "luaio_run_until_complete: the scheduler failed (out of memory)";
      break;
    }
    if (t->f.state == FUT_PENDING && !alive && rt->qlen == 0) {
      why = "luaio_run_until_complete: deadlock: the task is waiting and "
            "nothing is left that could wake it";
      break;
    }
  }
  rt->running_depth--;
  return why;
}

LUAIO_API int luaio_run_until_complete (luaio_Runtime *rt, int idx,
                                        int *nresults) {
  lua_State *L;
  Task *t;
  const char *why;
  if (nresults != NULL) *nresults = 0;
  if (rt == NULL) return LUAIO_ERROR;
  L = luaio_state(rt);
  if (!lua_checkstack(L, 3)) return fail(rt, "stack overflow");
  idx = lua_absindex(L, idx);
  t = task_at(L, idx);
  if (t == NULL)
    return fail_pushed(L, rt, "luaio_run_until_complete: the value is not "
                       "a Task");
  if (t->f.state == FUT_PENDING) {
    if (t->rt != rt)
      return fail_pushed(L, rt, "luaio_run_until_complete: the task "
                         "belongs to another runtime");
    if (rt->current != NULL || rt->running_depth > 0)
      return fail_pushed(L, rt, "luaio_run_until_complete: called from "
                         "inside the runtime (a task or a callback)");
    why = wait_for(rt, t);
    if (why != NULL) return fail_pushed(L, rt, why);
  }
  if (luaio_task_result(L, idx, nresults) != LUAIO_OK) {
    error_from_top(L, rt);
    return LUAIO_ERROR;
  }
  luaio__embed_set_error(rt, NULL);
  return LUAIO_OK;
}
