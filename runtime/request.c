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
*/
#include "request.h"

/* The live-request count: a virtual clock does not jump while it is > 0. */
void luaio__request_add (luaio_Runtime *rt) {
  rt->nrequests++;
}

void luaio__request_done (luaio_Runtime *rt) {
  if (--rt->nrequests == 0 && rt->virtual_clock && rt->qlen == 0)
    luaio__arm_timer(rt);
}

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
