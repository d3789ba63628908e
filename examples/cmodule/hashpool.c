/*
** hashpool.c -- an example C module that does async work under luaio:
** the same .so runs under the luaio CLI, stock lua5.4 and a host that
** embeds libluaio.  It links neither libluaio nor liblua5.4 (only
** libuv): luaio_module.h finds the C API of the luaio that loaded it.
**
**   local hp = require "hashpool"
**   hp.digest(data [, rounds])  FNV-1a (64 bits) of data, hashed again
**                               rounds times, on libuv's thread pool:
**                               a hex string (suspends the task)
**   hp.sleep(ms)                ms after ms milliseconds (a libuv timer)
**   hp.digest_thread(data [, rounds [, block_ms]])
**                               hp.digest's hash on a thread of its own,
**                               which first blocks block_ms (a driver's
**                               call that cannot be interrupted), then
**                               hashes, stopping early once cancelled;
**                               it resolves with luaio_resolve_threadsafe
**   hp.threads()                those threads not yet done, and how many
**                               found their runtime gone (LUAIO_ERROR);
**                               it joins those that ended so
**
** Build (luaio installed):
**   cc -shared -fPIC -o hashpool.so hashpool.c \
**      $(pkg-config --cflags --libs luaio-module)
*/
#define _GNU_SOURCE                    /* dladdr */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include <uv.h>

#include "luaio_module.h"

/*
** The order in an async C function: check the arguments (they may
** raise), then luaio_pending (it raises outside a task), then allocate.
** Once there is a pending, every path ends in luaio_await: a failure
** resolves it with a push that raises, so the pending is freed.
*/
static int raise_uv_error (lua_State *L, void *ud) {
  int r = (int)(intptr_t)ud;
  return luaL_error(L, "hashpool: %s", r == UV_ENOMEM ? "not enough memory"
                                                        : uv_strerror(r));
}

static int fail_pending (lua_State *L, luaio_Pending *p, int uverr) {
  luaio_resolve(p, raise_uv_error, (void *)(intptr_t)uverr);
  return luaio_await(L, p);
}


/* ---------------------------------------------------------- digest */

typedef struct Job {
  uv_work_t req;               /* runs on libuv's thread pool */
  luaio_Pending *pending;
  uint64_t hash;
  lua_Integer rounds;
  size_t len;
  char data[1];                /* a copy: the task may be gone first */
} Job;

static uint64_t fnv1a (const unsigned char *p, size_t n, uint64_t h) {
  while (n-- > 0) { h ^= *p++; h *= 1099511628211ULL; }
  return h;
}

/* On a pool thread: no Lua; it stops early once the task is cancelled
   (luaio_pending_cancelled may be asked from any thread). */
static void digest_work (uv_work_t *req) {
  Job *j = (Job *)req->data;
  uint64_t h = fnv1a((const unsigned char *)j->data, j->len,
                     14695981039346656037ULL);
  lua_Integer i;
  for (i = 1; i < j->rounds; i++) {
    if ((i & 1023) == 0 && luaio_pending_cancelled(j->pending)) break;
    h = fnv1a((const unsigned char *)&h, sizeof h, 14695981039346656037ULL);
  }
  j->hash = h;
}

/* In the task, when it resumes: the results of hp.digest. */
static int digest_push (lua_State *L, void *ud) {
  Job *j = (Job *)ud;
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)j->hash);
  free(j);
  lua_pushstring(L, hex);
  return 1;
}

/* Back on the loop thread. */
static void digest_done (uv_work_t *req, int status) {
  Job *j = (Job *)req->data;
  if (status == UV_ECANCELED || luaio_pending_cancelled(j->pending)) {
    luaio_resolve(j->pending, NULL, NULL);   /* nobody will read it */
    free(j);
    return;
  }
  luaio_resolve(j->pending, digest_push, j);
}

/* The task was cancelled: take the job off the queue if it has not
   started (digest_done then sees UV_ECANCELED). */
static void digest_cancel (void *ud) {
  Job *j = (Job *)ud;
  uv_cancel((uv_req_t *)&j->req);
}

static int l_digest (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer rounds = luaL_optinteger(L, 2, 1);
  luaio_Pending *p;
  Job *j;
  int r;
  luaL_argcheck(L, rounds >= 1, 2, "rounds must be >= 1");
  luaL_argcheck(L, len > 0, 1, "nothing to hash");
  p = luaio_pending(L);                 /* raises outside a task */
  j = (Job *)malloc(sizeof(Job) + len);
  if (j == NULL) return fail_pending(L, p, UV_ENOMEM);
  j->req.data = j;
  j->pending = p;
  j->rounds = rounds;
  j->len = len;
  memcpy(j->data, s, len);
  r = uv_queue_work(luaio_loop(luaio_running(L)), &j->req, digest_work,
                    digest_done);
  if (r != 0) {
    free(j);
    return fail_pending(L, p, r);
  }
  luaio_pending_on_cancel(p, digest_cancel, j);
  return luaio_await(L, p);
}


/* ---------------------------------------------------------- sleep */

typedef struct Sleep {
  uv_timer_t timer;
  luaio_Pending *pending;
  lua_Integer ms;
} Sleep;

static int sleep_push (lua_State *L, void *ud) {
  Sleep *s = (Sleep *)ud;
  lua_pushinteger(L, s->ms);
  uv_close((uv_handle_t *)&s->timer, (uv_close_cb)free);
  return 1;
}

static void sleep_due (uv_timer_t *t) {
  Sleep *s = (Sleep *)t->data;
  luaio_resolve(s->pending, sleep_push, s);
}

/* Cancelled: stop the timer and resolve now (push will not run). */
static void sleep_cancel (void *ud) {
  Sleep *s = (Sleep *)ud;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, (uv_close_cb)free);
  luaio_resolve(s->pending, NULL, NULL);
}

static int l_sleep (lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaio_Pending *p;
  Sleep *s;
  luaL_argcheck(L, ms >= 0, 1, "ms must be >= 0");
  p = luaio_pending(L);
  s = (Sleep *)malloc(sizeof(Sleep));
  if (s == NULL) return fail_pending(L, p, UV_ENOMEM);
  s->pending = p;
  s->ms = ms;
  uv_timer_init(luaio_loop(luaio_running(L)), &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, sleep_due, (uint64_t)ms, 0);
  luaio_pending_on_cancel(p, sleep_cancel, s);
  return luaio_await(L, p);
}


/* ---------------------------------------------------------- threads */

/*
** A job on a thread of its own.  The hold (taken before the thread
** starts) keeps the loop running while only the thread has work; push
** gives it back -- push runs once whatever happens to the task (L NULL:
** nobody receives the values), so the hold is always given back.  If the
** runtime is gone first (it closed after shutdown_timeout while the
** thread was blocked), luaio_resolve_threadsafe returns LUAIO_ERROR: the
** job is still ours, push will not run, there is no hold to give back.
*/
typedef struct TJob {
  pthread_t thread;
  luaio_Runtime *rt;
  luaio_Pending *pending;
  uint64_t hash;
  lua_Integer rounds, block_ms;
  size_t len;
  char data[1];
} TJob;

/*
** A thread the runtime refused ends on its own; hp.threads() joins it
** (a detached thread could still be exiting when the process does).
*/
#define MAXREFUSED 64

static pthread_mutex_t tlock = PTHREAD_MUTEX_INITIALIZER;
static int trunning, trefused;         /* (tlock) */
static pthread_t tunjoined[MAXREFUSED];  /* (tlock) refused, to join */
static int nunjoined;                  /* (tlock) */

static void thread_done (int refused) {
  pthread_mutex_lock(&tlock);
  trunning--;
  trefused += refused;
  if (refused && nunjoined < MAXREFUSED)
    tunjoined[nunjoined++] = pthread_self();
  else if (refused)
    pthread_detach(pthread_self());    /* too many: no one joins it */
  pthread_mutex_unlock(&tlock);
}

/* Loop thread, once: join, give the hold back, free. */
static int thread_push (lua_State *L, void *ud) {
  TJob *j = (TJob *)ud;
  char hex[17];
  pthread_join(j->thread, NULL);
  luaio_release(j->rt);
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)j->hash);
  free(j);
  if (L == NULL) return 0;             /* cancelled or closed: discarded */
  lua_pushstring(L, hex);
  return 1;
}

/* Its own thread: no Lua; only the cross-thread calls. */
static void *thread_main (void *arg) {
  TJob *j = (TJob *)arg;
  struct timespec ts;
  uint64_t h;
  lua_Integer i;
  ts.tv_sec = (time_t)(j->block_ms / 1000);
  ts.tv_nsec = (long)(j->block_ms % 1000) * 1000000L;
  if (j->block_ms > 0) nanosleep(&ts, NULL);
  h = fnv1a((const unsigned char *)j->data, j->len, 14695981039346656037ULL);
  for (i = 1; i < j->rounds; i++) {
    if ((i & 1023) == 0 && luaio_pending_cancelled(j->pending)) break;
    h = fnv1a((const unsigned char *)&h, sizeof h, 14695981039346656037ULL);
  }
  j->hash = h;
  if (luaio_resolve_threadsafe(j->pending, thread_push, j) == LUAIO_OK) {
    thread_done(0);                    /* j is push's now */
    return NULL;
  }
  free(j);                             /* the runtime is gone */
  thread_done(1);
  return NULL;
}

static int l_digest_thread (lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lua_Integer rounds = luaL_optinteger(L, 2, 1);
  lua_Integer block = luaL_optinteger(L, 3, 0);
  luaio_Pending *p;
  TJob *j;
  int r;
  luaL_argcheck(L, rounds >= 1, 2, "rounds must be >= 1");
  luaL_argcheck(L, block >= 0, 3, "block_ms must be >= 0");
  p = luaio_pending(L);
  j = (TJob *)malloc(sizeof(TJob) + len);
  if (j == NULL) return fail_pending(L, p, UV_ENOMEM);
  j->rt = luaio_running(L);
  j->pending = p;
  j->rounds = rounds;
  j->block_ms = block;
  j->len = len;
  memcpy(j->data, s, len);
  luaio_hold(j->rt);                   /* before the thread can resolve */
  pthread_mutex_lock(&tlock);
  trunning++;
  pthread_mutex_unlock(&tlock);
  r = pthread_create(&j->thread, NULL, thread_main, j);
  if (r != 0) {
    thread_done(0);
    luaio_release(j->rt);
    free(j);
    return fail_pending(L, p, uv_translate_sys_error(r));
  }
  return luaio_await(L, p);
}

/* Counts under the lock, then joins the refused threads counted. */
static int l_threads (lua_State *L) {
  pthread_t t[MAXREFUSED];
  int i, n;
  pthread_mutex_lock(&tlock);
  lua_pushinteger(L, trunning);
  lua_pushinteger(L, trefused);
  n = nunjoined;
  memcpy(t, tunjoined, sizeof(pthread_t) * (size_t)n);
  nunjoined = 0;
  pthread_mutex_unlock(&tlock);
  for (i = 0; i < n; i++) pthread_join(t[i], NULL);
  return 2;
}

/*
** A thread of ours may outlive the runtime (it then learns so from
** LUAIO_ERROR) and even the Lua state, whose lua_close unloads this
** module: the module pins itself, so that code stays mapped.
*/
static void pin_module (void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) && info.dli_fname != NULL)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}


static const luaL_Reg funcs[] = {
  {"digest", l_digest},
  {"sleep", l_sleep},
  {"digest_thread", l_digest_thread},
  {"threads", l_threads},
  {NULL, NULL}
};

int luaopen_hashpool (lua_State *L) {
  luaio_module_init(L, "hashpool");    /* raises if luaio is not there */
  pin_module();
  luaL_newlib(L, funcs);
  return 1;
}
