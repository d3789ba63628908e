/*
** request.h -- the request tier: one-shot operations on libuv's thread
** pool (DNS, files, to_thread), written once, as libuv's uv_req_t.
**
** A subsystem embeds a Request as the first member of its own request,
** calls luaio__request_init, starts its libuv request, then
** luaio__request_start (which parks the task).  Its libuv callback stores
** the results and calls luaio__request_finish; its continuation calls
** luaio__request_resumed first, then pushes the results and releases.
**
** Cancelling the waiting task abandons the request: the task is resumed
** at once with CancelledError, uv_cancel stops the request if it has not
** started, and either way the request releases itself when its callback
** comes.  A task cancelled after its request completed releases the
** request in its continuation.  Outstanding requests are counted in
** rt->nrequests: a virtual clock does not jump while one is.
*/
#ifndef luaio_request_h
#define luaio_request_h

#include "internal.h"

typedef struct Request Request;

/*
** Frees a request and what it holds, undoing what nobody will take (a file
** an abandoned open opened).
*/
typedef void (*ReleaseFn) (Request *r);

struct Request {
  luaio_Runtime *rt;
  Task *t;                     /* the waiting task, NULL once abandoned */
  uv_req_t *uv;                /* the libuv request, for uv_cancel */
  ReleaseFn release;
};

void luaio__request_init (Request *r, uv_req_t *uv, ReleaseFn release);
int luaio__request_start (lua_State *L, Task *t, Request *r,
                          const char *what, lua_KFunction k);
void luaio__request_finish (Request *r);
void luaio__request_resumed (lua_State *L, Request *r);

/* The live-request count alone (a child process being waited for). */
void luaio__request_add (luaio_Runtime *rt);
void luaio__request_done (luaio_Runtime *rt);

#endif
