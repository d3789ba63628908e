/*
** thread.c -- aio.to_thread(fn, ...): fn runs on libuv's thread pool in
** a new Lua state of its own (standard libraries only), closed when the
** call ends.
**
** fn must be a Lua function whose only upvalue, if any, is _ENV: it is
** dumped as bytecode and loaded in the worker, whose globals it gets, so
** nothing leaks between calls or from the caller.  Arguments and results are copied:
** nil, booleans, numbers, strings and plain tables (nested; a cycle, or
** any other type, is a clear error).  An error in fn is raised in the
** caller (a table error gets the worker's traceback as .traceback).
** os.exit in a worker raises an error.  Worker threads never touch the
** caller's state: everything crosses as bytes.
**
** Cancelling the caller cancels the work if it has not started; if it
** runs, it finishes and its result is dropped (a request of the request
** tier, request.h).  A worker's state does everything under lua_pcall:
** out of memory, even while the state is being made, is an error raised
** in the caller, never a panic.
*/
#include <stdlib.h>
#include <string.h>

#include "lualib.h"

#include "request.h"

/* ---------------------------------------------------------- buffers */

typedef struct Buf {
  char *p;
  size_t len, cap;
} Buf;

static int put (Buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    char *p;
    while (cap < b->len + n) cap *= 2;
    p = (char *)realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return 1;
}

static int putc_ (Buf *b, char c) { return put(b, &c, 1); }


/* ---------------------------------------------------------- copying */

/* What ser returns when a buffer cannot grow. */
static const char nomem[] = "memory";

/*
** Serialises the value at idx into b.  visiting (a table on the stack at
** vidx) holds the tables being copied, to refuse cycles.  Returns NULL,
** nomem, or a static description of what cannot be copied.
*/
static const char *ser (lua_State *L, int idx, Buf *b, int vidx, int depth) {
  idx = lua_absindex(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return putc_(b, 'n') ? NULL : nomem;
    case LUA_TBOOLEAN:
      return putc_(b, lua_toboolean(L, idx) ? 't' : 'f') ? NULL : nomem;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        return putc_(b, 'i') && put(b, &i, sizeof i) ? NULL : nomem;
      }
      else {
        lua_Number d = lua_tonumber(L, idx);
        return putc_(b, 'd') && put(b, &d, sizeof d) ? NULL : nomem;
      }
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return putc_(b, 's') && put(b, &n, sizeof n) && put(b, s, n) ? NULL
                                                                   : nomem;
    }
    case LUA_TTABLE: {
      const char *err = NULL;
      if (depth > 200) return "a table nested too deep";
      if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        return "a table with a metatable";
      }
      lua_pushvalue(L, idx);
      if (lua_rawget(L, vidx) != LUA_TNIL) {
        lua_pop(L, 1);
        return "a table with a cycle";
      }
      lua_pop(L, 1);
      lua_pushvalue(L, idx);
      lua_pushboolean(L, 1);
      lua_rawset(L, vidx);
      if (!putc_(b, 'T')) return nomem;
      luaL_checkstack(L, 4, "to_thread");
      lua_pushnil(L);
      while (err == NULL && lua_next(L, idx) != 0) {
        err = ser(L, -2, b, vidx, depth + 1);
        if (err == NULL) err = ser(L, -1, b, vidx, depth + 1);
        lua_pop(L, 1);
      }
      if (err != NULL) { lua_pop(L, 1); return err; }
      lua_pushvalue(L, idx);
      lua_pushnil(L);
      lua_rawset(L, vidx);
      return putc_(b, 'e') ? NULL : nomem;
    }
    case LUA_TFUNCTION: return "a function";
    case LUA_TTHREAD: return "a coroutine";
    default: return "a userdata";
  }
}

/* Serialises the n values from first; NULL or what failed (value i). */
static const char *ser_values (lua_State *L, int first, int n, Buf *b,
                               int *which) {
  int i, vidx;
  const char *err = NULL;
  *which = 0;
  lua_newtable(L);
  vidx = lua_gettop(L);
  if (!put(b, &n, sizeof n)) err = nomem;
  for (i = 0; i < n && err == NULL; i++) {
    err = ser(L, first + i, b, vidx, 0);
    *which = i + 1;
  }
  lua_remove(L, vidx);
  return err;
}

/* Pushes one value decoded from *pp (trusted input: made by ser). */
static void deser (lua_State *L, const char **pp) {
  const char *p = *pp;
  char tag = *p++;
  luaL_checkstack(L, 3, "to_thread");
  switch (tag) {
    case 'n': lua_pushnil(L); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 'i': {
      lua_Integer i;
      memcpy(&i, p, sizeof i);
      p += sizeof i;
      lua_pushinteger(L, i);
      break;
    }
    case 'd': {
      lua_Number d;
      memcpy(&d, p, sizeof d);
      p += sizeof d;
      lua_pushnumber(L, d);
      break;
    }
    case 's': {
      size_t n;
      memcpy(&n, p, sizeof n);
      p += sizeof n;
      lua_pushlstring(L, p, n);
      p += n;
      break;
    }
    default:                           /* 'T' */
      lua_newtable(L);
      while (*p != 'e') {
        deser(L, &p);
        deser(L, &p);
        lua_rawset(L, -3);
      }
      p++;
      break;
  }
  *pp = p;
}

static int deser_values (lua_State *L, const char *p) {
  int n, i;
  memcpy(&n, p, sizeof n);
  p += sizeof n;
  luaL_checkstack(L, n + 2, "to_thread: too many values");
  for (i = 0; i < n; i++) deser(L, &p);
  return n;
}


/* ---------------------------------------------------------- worker states */

/*
** Each call gets a new state, closed when it ends: nothing a call changes
** (globals, library tables, package.loaded, metatables, the registry,
** the collector's settings) can reach the next.  Measured: making and
** closing one costs ~33 us on the pool thread; resetting a reused state
** (restoring every table reachable from its registry) cost ~39 us and
** still missed state outside tables.
*/

static int no_exit (lua_State *L) {
  return luaL_error(L, "os.exit cannot be used in a to_thread worker");
}

/* Opens a new worker state's libraries (protected: memory may run out). */
static int open_worker (lua_State *W) {
  luaL_openlibs(W);
  lua_getglobal(W, "os");
  lua_pushcfunction(W, no_exit);
  lua_setfield(W, -2, "exit");
  lua_pop(W, 1);
  return 0;
}

/*
** A worker state's memory: its first ARENA bytes (a new state with its
** libraries takes ~25 KB) are cut from one block with a bump pointer and
** freed with it when the state closes; the rest comes from malloc.  A
** block freed inside the arena is not reused: the waste is bounded by it.
*/
#define ARENA (64 * 1024)

typedef struct Arena {
  char *p;
  size_t used;
} Arena;

static int in_arena (Arena *a, void *block) {
  return (char *)block >= a->p && (char *)block < a->p + ARENA;
}

static void *arena_alloc (void *ud, void *block, size_t osize, size_t nsize) {
  Arena *a = (Arena *)ud;
  size_t n = (nsize + 15) & ~(size_t)15;
  void *q;
  if (block != NULL && !in_arena(a, block)) {
    if (nsize == 0) { free(block); return NULL; }
    return realloc(block, nsize);
  }
  if (nsize == 0) return NULL;
  if (block != NULL && nsize <= osize) return block;
  if (a->used + n <= ARENA) { q = a->p + a->used; a->used += n; }
  else if ((q = malloc(nsize)) == NULL) return NULL;
  if (block != NULL) memcpy(q, block, osize);
  return q;
}

/* A new worker state in arena a; NULL when memory runs out. */
static lua_State *new_state (Arena *a) {
  lua_State *W;
  a->used = 0;
  if ((a->p = (char *)malloc(ARENA)) == NULL) return NULL;
  if ((W = lua_newstate(arena_alloc, a)) == NULL) {
    free(a->p);
    return NULL;
  }
  lua_pushcfunction(W, open_worker);   /* a light C function: no memory */
  if (lua_pcall(W, 0, 0, 0) != LUA_OK) {
    lua_close(W);
    free(a->p);
    return NULL;
  }
  return W;
}

static void close_state (lua_State *W, Arena *a) {
  lua_close(W);
  free(a->p);
}


/* ---------------------------------------------------------- the work */

typedef struct Work {
  Request base;                /* first: the request tier's part */
  uv_work_t req;
  Buf fn, args, res;
  int ok;                      /* res holds results (1) or the error (0) */
  const char *why;             /* res empty: why (a static string) */
} Work;

static void free_work (Request *r) {
  Work *w = (Work *)r;
  free(w->fn.p);
  free(w->args.p);
  free(w->res.p);
  free(w);
}

/* Keeps the traceback aside (a handler returns one value: the error). */
static int worker_msgh (lua_State *W) {
  luaio__traceback(W, W, NULL, 1);
  lua_setfield(W, LUA_REGISTRYINDEX, "luaio.worker_traceback");
  return 1;
}

/*
** Error results: {value, traceback}, serialised.  A failure of the
** worker itself stores msg and no traceback, made from its bytes in C,
** without the worker's state: msg may be a string the state is about to
** drop, and the state may be out of memory.
*/
static void fail (Work *w, const char *msg) {
  size_t n = strlen(msg);
  int two = 2;
  w->ok = 0;
  w->res.len = 0;
  if (!(put(&w->res, &two, sizeof two) && putc_(&w->res, 's') &&
        put(&w->res, &n, sizeof n) && put(&w->res, msg, n) &&
        putc_(&w->res, 'n'))) {
    w->res.len = 0;
    w->why = "to_thread: not enough memory";
  }
}

static int call_in_worker (lua_State *W) {
  Work *w = (Work *)lua_touserdata(W, 1);
  int n, base, which;
  const char *err;
  lua_settop(W, 0);
  lua_pushcfunction(W, worker_msgh);     /* 1: handler */
  if (luaL_loadbufferx(W, w->fn.p, w->fn.len, "=to_thread", "b") != LUA_OK)
    return lua_error(W);
  n = deser_values(W, w->args.p);
  base = 2;
  if (lua_pcall(W, n, LUA_MULTRET, 1) != LUA_OK) {
    lua_getfield(W, LUA_REGISTRYINDEX, "luaio.worker_traceback");
    /* stack: handler, error, traceback */
    w->ok = 0;
    w->res.len = 0;
    err = ser_values(W, 2, 2, &w->res, &which);
    if (err != NULL && err != nomem) { /* an error value we cannot copy */
      luaL_tolstring(W, 2, NULL);
      lua_replace(W, 2);
      w->res.len = 0;
      err = ser_values(W, 2, 2, &w->res, &which);
    }
    if (err != NULL) fail(w, "to_thread: not enough memory for the error");
    return 0;
  }
  n = lua_gettop(W) - 1;
  w->ok = 1;
  err = ser_values(W, base, n, &w->res, &which);
  if (err == nomem) fail(w, "to_thread: not enough memory for the results");
  else if (err != NULL) {
    lua_pushfstring(W, "to_thread: cannot copy %s (result #%d)", err, which);
    fail(w, lua_tostring(W, -1));
  }
  return 0;
}

/*
** Runs on a pool thread: everything the worker's state does is under
** lua_pcall (its panic function would abort the process).
*/
static void work_cb (uv_work_t *req) {
  Work *w = (Work *)req->data;
  Arena arena;
  lua_State *W = new_state(&arena);
  if (W == NULL) {
    w->ok = 0;
    w->why = "to_thread: not enough memory to start a worker";
    return;
  }
  lua_pushcfunction(W, call_in_worker);
  lua_pushlightuserdata(W, w);
  if (lua_pcall(W, 1, 0, 0) != LUA_OK)
    fail(w, lua_type(W, -1) == LUA_TSTRING ? lua_tostring(W, -1)
                                           : "to_thread: the worker failed");
  close_state(W, &arena);
}

static void after_cb (uv_work_t *req, int status) {
  (void)status;              /* UV_ECANCELED only for an abandoned work */
  luaio__request_finish((Request *)req->data);
}

static int work_k (lua_State *L, int status, lua_KContext ctx) {
  Work *w = (Work *)ctx;
  int n;
  (void)status;
  luaio__request_resumed(L, &w->base);
  if (w->res.len == 0) {
    const char *msg = w->why != NULL ? w->why
                        : "to_thread: the worker could not run the function";
    free_work(&w->base);
    return luaL_error(L, "%s", msg);
  }
  lua_settop(L, 0);
  n = deser_values(L, w->res.p);
  if (w->ok) { free_work(&w->base); return n; }
  free_work(&w->base);
  /* the error value (1) and the worker's traceback (2) */
  if (lua_istable(L, 1) && !lua_isnil(L, 2)) {
    lua_getfield(L, 1, "traceback");
    if (lua_isnil(L, -1)) {
      lua_pushvalue(L, 2);
      lua_setfield(L, 1, "traceback");
    }
  }
  lua_settop(L, 1);
  return lua_error(L);
}

static int writer (lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return put((Buf *)ud, p, n) ? 0 : 1;
}

/* core.to_thread(fn, ...) -> fn's results (suspends) */
static int l_to_thread (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "to_thread");
  int n = lua_gettop(L) - 1, i, which;
  const char *name, *err;
  Task *t;
  Work *w;
  if (lua_iscfunction(L, 1))
    return luaio__argerror(L, 1, "to_thread", "Lua function expected, got "
                           "a C function (it cannot be copied to a worker)");
  if (lua_type(L, 1) != LUA_TFUNCTION)
    return luaio__typeerror(L, 1, "to_thread", "Lua function");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      return luaL_error(L, "to_thread: the function uses the local '%s' of an "
                        "enclosing function (an upvalue); it runs in another "
                        "Lua state, so it may only use its arguments and "
                        "globals", name);
  }
  t = luaio__check_suspend(L, "to_thread");
  luaio__request_pool(L, "to_thread");
  w = (Work *)calloc(1, sizeof(Work));
  if (w == NULL) return luaL_error(L, "not enough memory");
  luaio__request_init(&w->base, (uv_req_t *)&w->req, free_work);
  lua_pushvalue(L, 1);
  if (lua_dump(L, writer, &w->fn, 0) != 0) {
    free_work(&w->base);
    return luaL_error(L, "to_thread: cannot dump the function");
  }
  lua_pop(L, 1);
  err = ser_values(L, 2, n, &w->args, &which);
  if (err == nomem) {
    free_work(&w->base);
    return luaL_error(L, "to_thread: not enough memory for the arguments");
  }
  if (err != NULL) {
    free_work(&w->base);
    return luaL_error(L, "to_thread: cannot copy %s (argument #%d)", err,
                      which + 1);
  }
  if ((i = uv_queue_work(rt->loop, &w->req, work_cb, after_cb)) != 0) {
    free_work(&w->base);
    return luaio__oserror(L, i, "to_thread");
  }
  return luaio__request_start(L, t, &w->base, "to_thread", work_k);
}

static const luaL_Reg funcs[] = {
  {"to_thread", l_to_thread},
  {NULL, NULL}
};

void luaio__thread_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
