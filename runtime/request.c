/*
** request.c -- the request tier: one-shot operations on libuv's thread
** pool (DNS, files, to_thread), written once, as libuv's uv_req_t.
**
** A subsystem calls luaio__request_init, starts its libuv request and
** parks with luaio__request_start; its callback stores the results and
** calls luaio__request_finish; its continuation calls
** luaio__request_resumed first.  Cancelling the task abandons the
** request: the task gets CancelledError at once, uv_cancel stops the
** request if it has not started, and its callback releases it either way.
**
** libuv starts its thread pool on the first request of the process and
** aborts it if a thread cannot be made (RLIMIT_NPROC, no memory for a
** stack).  luaio__request_pool, called before a request is made, first
** makes the threads libuv will make, so that a request raises instead.
*/
#include <pthread.h>
#include <stdlib.h>

#include "request.h"

/* The live-request count: a virtual clock does not jump while it is > 0. */
void luaio__request_add (luaio_Runtime *rt) {
  rt->nrequests++;
}

void luaio__request_done (luaio_Runtime *rt) {
  if (--rt->nrequests == 0 && rt->virtual_clock && rt->qlen == 0)
    luaio__arm_timer(rt);
}

/* ---------------------------------------------------------- the pool */

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static int pool_ok;            /* the probe succeeded (atomic reads) */

/* How many threads libuv's pool starts (its own reading of the variable). */
static unsigned pool_size (void) {
  const char *v = getenv("UV_THREADPOOL_SIZE");
  unsigned n = v != NULL ? (unsigned)atoi(v) : 4;
  if (n == 0) n = 1;
  if (n > 1024) n = 1024;      /* libuv's MAX_THREADPOOL_SIZE */
  return n;
}

static void probe_wait (void *arg) {
  uv_sem_wait((uv_sem_t *)arg);
}

/* One thread as libuv's pool makes it: 8 MiB of stack from libuv 1.45,
   before that uv_thread_create's default. */
static int probe_create (uv_thread_t *tid, uv_sem_t *sem) {
  if (uv_version() >= 0x012d00) {
    uv_thread_options_t o;
    o.flags = UV_THREAD_HAS_STACK_SIZE;
    o.stack_size = 8u << 20;
    return uv_thread_create_ex(tid, &o, probe_wait, sem);
  }
  return uv_thread_create(tid, probe_wait, sem);
}

/*
** Makes as many threads as libuv's pool, all alive at once, then lets
** them end and joins them.  Returns 0 or the libuv error of the first
** thread that could not be made.
*/
static int probe (void) {
  unsigned n = pool_size(), made = 0, i;
  uv_thread_t *tids = (uv_thread_t *)malloc(n * sizeof(uv_thread_t));
  uv_sem_t sem;
  int r;
  if (tids == NULL) return UV_ENOMEM;
  if ((r = uv_sem_init(&sem, 0)) != 0) {
    free(tids);
    return r;
  }
  while (made < n && (r = probe_create(&tids[made], &sem)) == 0) made++;
  for (i = 0; i < made; i++) uv_sem_post(&sem);
  for (i = 0; i < made; i++) uv_thread_join(&tids[i]);
  uv_sem_destroy(&sem);
  free(tids);
  return r;
}

/*
** Before a request is made (nothing allocated yet): raises aio.OSError
** "<what>: can't start new thread: <strerror>" unless libuv's thread
** pool can start.  The probe runs until it succeeds once per process
** (a failure may pass later: memory comes back); then this is one read.
*/
void luaio__request_pool (lua_State *L, const char *what) {
  int r;
  if (__atomic_load_n(&pool_ok, __ATOMIC_ACQUIRE)) return;
  pthread_mutex_lock(&probe_lock);
  r = pool_ok ? 0 : probe();
  if (r == 0) __atomic_store_n(&pool_ok, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&probe_lock);
  if (r != 0)
    luaio__oserror(L, r, lua_pushfstring(L, "%s: can't start new thread",
                                         what));
}


/* ---------------------------------------------------------- requests */

/* Before the libuv request uv starts: its data becomes r. */
void luaio__request_init (Request *r, uv_req_t *uv,
                          void (*release) (Request *r)) {
  r->uv = uv;
  r->release = release;
  uv->data = r;
}

/* The abort hook: abandons the request; the core resumes the task. */
static int request_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Request *r = (Request *)t->wobj;
  (void)L; (void)rt;
  r->t = NULL;
  uv_cancel(r->uv);                    /* fails once it runs */
  return 0;
}

/* Counts r, whose libuv request started, and parks t; k gets r as ctx. */
int luaio__request_start (lua_State *L, Task *t, Request *r,
                          const char *what, lua_KFunction k) {
  r->rt = t->rt;
  r->t = t;
  luaio__request_add(r->rt);
  return luaio__park(L, t, NULL, request_abort, what, r, (lua_KContext)r, k);
}

/* In the libuv callback, results stored: wakes the task or releases r. */
void luaio__request_finish (Request *r) {
  luaio__request_done(r->rt);
  if (r->t == NULL) r->release(r);
  else luaio__wake(r->rt, r->t);
}

/* First in the continuation: raises a cancellation, releasing r unless
   it was abandoned (then its callback does). */
void luaio__request_resumed (lua_State *L, Request *r) {
  Task *t = luaio__resumed_task(L);
  if (t->must_cancel) {
    if (!t->aborted) r->release(r);    /* completed, then cancelled */
    luaio__raise_cancel(L, t);
  }
}
