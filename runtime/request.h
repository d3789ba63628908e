/*
** request.h -- the request tier (request.c): one-shot operations on
** libuv's thread pool.  A subsystem's request embeds a Request as its
** first member, as libuv's requests embed uv_req_t.
*/
#ifndef luaio_request_h
#define luaio_request_h

#include "internal.h"

typedef struct Request {
  luaio_Runtime *rt;
  Task *t;                     /* the waiting task, NULL once abandoned */
  uv_req_t *uv;                /* the libuv request, for uv_cancel */
  /* frees the request and what it holds, undoing what nobody will take
     (a file an abandoned open opened) */
  void (*release) (struct Request *r);
} Request;

void luaio__request_pool (lua_State *L, const char *what);
void luaio__request_init (Request *r, uv_req_t *uv,
                          void (*release) (Request *r));
int luaio__request_start (lua_State *L, Task *t, Request *r,
                          const char *what, lua_KFunction k);
void luaio__request_finish (Request *r);
void luaio__request_resumed (lua_State *L, Request *r);
void luaio__request_add (luaio_Runtime *rt);
void luaio__request_done (luaio_Runtime *rt);

#endif
