/*
** request.c -- the request tier (see request.h): the live-request count,
** the park of the waiting task, and "cancelled means abandoned, released
** when its callback comes".
*/
#include "request.h"

/* One more request is outstanding. */
void luaio__request_add (luaio_Runtime *rt) {
  rt->nrequests++;
}

/* A request has completed: a virtual clock may move again. */
void luaio__request_done (luaio_Runtime *rt) {
  if (--rt->nrequests == 0 && rt->virtual_clock && rt->qlen == 0)
    luaio__arm_timer(rt);
}

/* Prepares r for its libuv request uv, whose data becomes r. */
void luaio__request_init (Request *r, uv_req_t *uv, ReleaseFn release) {
  r->rt = NULL;
  r->t = NULL;
  r->uv = uv;
  r->release = release;
  uv->data = r;
}

/*
** The abort hook: abandons the request (it releases itself when its
** callback comes; uv_cancel makes that soon if it has not started) and
** lets the core resume the task with CancelledError.
*/
static int request_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  Request *r = (Request *)t->wobj;
  (void)L; (void)rt;
  r->t = NULL;
  uv_cancel(r->uv);
  return 0;
}

/*
** Counts r, whose libuv request has started, and parks t on it.  The
** continuation k gets r as its context and calls luaio__request_resumed
** first.
*/
int luaio__request_start (lua_State *L, Task *t, Request *r,
                          const char *what, lua_KFunction k) {
  r->rt = t->rt;
  r->t = t;
  luaio__request_add(r->rt);
  return luaio__park(L, t, NULL, request_abort, what, r, (lua_KContext)r, k);
}

/*
** In the libuv callback, after the results are stored in the request:
** wakes the task, or releases the request if it was abandoned.
*/
void luaio__request_finish (Request *r) {
  luaio__request_done(r->rt);
  if (r->t == NULL) r->release(r);
  else luaio__wake(r->rt, r->t);
}

/*
** First in a request's continuation: if the task was cancelled, releases
** the request (unless abandoned: its callback does) and raises the
** cancellation.  Otherwise the results are the caller's to take.
*/
void luaio__request_resumed (lua_State *L, Request *r) {
  Task *t = luaio__resumed_task(L);
  if (t->must_cancel) {
    if (!t->aborted) r->release(r);    /* completed, then cancelled */
    luaio__raise_cancel(L, t);
  }
}
