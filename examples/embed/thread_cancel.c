/*
** thread_cancel.c -- a worker thread whose task is cancelled while it
** works.  The worker learns it (luaio_pending_cancelled, any thread) and
** still resolves; push then runs with L == NULL and gives the hold back,
** so luaio_run returns.  The interleaving is forced: the worker waits
** until the cancel hook has run.
*/
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

typedef struct Job {
  luaio_Pending *p;
  uv_thread_t th;
  uv_sem_t cancelled;          /* posted by the cancel hook */
  int wait_cancel;             /* the worker waits for it */
  int saw_cancel;
  lua_Integer n;
} Job;

static luaio_Runtime *rt;

/* Loop thread: the one cleanup of the job. */
static int push (lua_State *L, void *ud) {
  Job *j = (Job *)ud;
  lua_Integer r = j->n * j->n;
  uv_thread_join(&j->th);      /* (it has returned from resolve) */
  printf("job %d: %s, worker saw cancelled: %d\n", (int)j->n,
         L == NULL ? "discarded" : "delivered", j->saw_cancel);
  uv_sem_destroy(&j->cancelled);
  free(j);
  luaio_release(rt);           /* the worker will not call back any more */
  if (L == NULL) return 0;
  lua_pushinteger(L, r);
  return 1;
}

static void worker (void *arg) {
  Job *j = (Job *)arg;
  if (j->wait_cancel) uv_sem_wait(&j->cancelled);
  j->saw_cancel = luaio_pending_cancelled(j->p);
  if (luaio_resolve_threadsafe(j->p, push, j) != LUAIO_OK)
    fprintf(stderr, "resolve_threadsafe failed\n");
}

static void on_cancel (void *ud) {
  Job *j = (Job *)ud;
  printf("job %d: cancel hook\n", (int)j->n);
  uv_sem_post(&j->cancelled);
}

/* host.square(n [, wait_cancel]) -> n * n, computed by a thread. */
static int l_square (lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  int wait = lua_toboolean(L, 2);
  luaio_Pending *p = luaio_pending(L);
  Job *j = (Job *)calloc(1, sizeof *j);
  if (j == NULL) return luaL_error(L, "out of memory");
  j->p = p;
  j->n = n;
  j->wait_cancel = wait;
  uv_sem_init(&j->cancelled, 0);
  luaio_pending_on_cancel(p, on_cancel, j);
  luaio_hold(rt);              /* until push runs */
  uv_thread_create(&j->th, worker, j);
  return luaio_await(L, p);
}

int main (void) {
  char err[256];
  lua_State *L;
  alarm(10);                   /* a hang fails the test */
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  L = luaio_state(rt);
  lua_newtable(L);
  lua_pushcfunction(L, l_square);
  lua_setfield(L, -2, "square");
  lua_setglobal(L, "host");
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "print('square', host.square(7))\n"
    "local t = aio.create_task(host.square, 8, true)\n"
    "aio.sleep(0)\n"
    "t:cancel()\n"
    "print('cancelled', aio.is(select(2, pcall(t.await, t)), "
    "aio.CancelledError))\n", "=script");
  luaio_run(rt, UV_RUN_DEFAULT);
  printf("run returned\n");
  printf("close: %d\n", luaio_close(rt));
  return 0;
}
