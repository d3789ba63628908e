/*
** close_holds.c -- luaio_close and host threads.  (1) A worker holds the
** loop while its task is cancelled by luaio_close: close waits for the
** worker's resolve, whose push (L == NULL) gives the hold back.  (2) A
** worker that had no hold calls after close: both cross-thread calls
** return LUAIO_ERROR and touch nothing.  (3) A hold never released:
** close refuses after the bound (LUAIO_SHUTDOWN_TIMEOUT here), and the
** runtime still works; released, it closes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

typedef struct Job {
  luaio_Pending *p;
  luaio_Runtime *rt;
  uv_thread_t th;
  uv_sem_t go;                 /* when the worker may resolve */
  int hold;                    /* it took a hold (released by push) */
  int call_rc, resolve_rc;     /* what the calls after close returned */
} Job;

static Job *job;               /* the current one */

static int push (lua_State *L, void *ud) {
  Job *j = (Job *)ud;
  printf("push: %s\n", L == NULL ? "discarded" : "delivered");
  if (j->hold) luaio_release(j->rt);
  return 0;                    /* main joins and frees it */
}

static int noop (lua_State *L, void *ud) {
  (void)L;
  printf("noop ran\n");
  if (ud != NULL) luaio_release((luaio_Runtime *)ud);
  return 0;
}

static void worker (void *arg) {
  Job *j = (Job *)arg;
  uv_sem_wait(&j->go);
  j->resolve_rc = luaio_resolve_threadsafe(j->p, push, j);
  if (!j->hold) j->call_rc = luaio_call_threadsafe(j->rt, noop, NULL);
}

static void on_cancel (void *ud) {
  Job *j = (Job *)ud;
  printf("cancel hook (hold %d)\n", j->hold);
  if (j->hold) uv_sem_post(&j->go);
}

/* host.work(): suspends until the current job's worker resolves. */
static int l_work (lua_State *L) {
  luaio_Pending *p = luaio_pending(L);
  job->p = p;
  luaio_pending_on_cancel(p, on_cancel, job);
  if (job->hold) luaio_hold(job->rt);
  uv_thread_create(&job->th, worker, job);
  return luaio_await(L, p);
}

static luaio_Runtime *start (int hold) {
  char err[256];
  luaio_Runtime *rt = luaio_open(NULL, NULL, err, sizeof err);
  lua_State *L;
  if (rt == NULL) { fprintf(stderr, "%s\n", err); exit(1); }
  L = luaio_state(rt);
  lua_register(L, "work", l_work);
  job = (Job *)calloc(1, sizeof *job);
  job->rt = rt;
  job->hold = hold;
  uv_sem_init(&job->go, 0);
  luaio_dostring(rt, "work()", "=script");
  luaio_run(rt, UV_RUN_NOWAIT);      /* the task starts and suspends */
  return rt;
}

static void finish (void) {
  uv_thread_join(&job->th);
  uv_sem_destroy(&job->go);
  free(job);
}

int main (void) {
  luaio_Runtime *rt;
  int n;
  alarm(15);                   /* a hang fails the test */
  setenv("LUAIO_SHUTDOWN_TIMEOUT", "0.5", 1);
  /* 1: close waits for the worker that holds the loop */
  rt = start(1);
  printf("1: close: %d\n", luaio_close(rt));
  finish();
  /* 2: no hold: the worker calls after close */
  rt = start(0);
  printf("2: close: %d\n", luaio_close(rt));
  uv_sem_post(&job->go);
  uv_thread_join(&job->th);
  printf("2: after close: resolve %d, call %d\n", job->resolve_rc,
         job->call_rc);
  uv_sem_destroy(&job->go);
  free(job);
  /* 3: a hold never released */
  {
    char err[256];
    rt = luaio_open(NULL, NULL, err, sizeof err);
  }
  luaio_hold(rt);
  n = luaio_close(rt);
  printf("3: close: %d (%s)\n", n, luaio_error(rt));
  luaio_call_threadsafe(rt, noop, rt);   /* it releases the hold */
  n = luaio_run(rt, UV_RUN_DEFAULT);
  printf("3: run: %d\n", n);
  printf("3: close: %d\n", luaio_close(rt));
  return 0;
}
