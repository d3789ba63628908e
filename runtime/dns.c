/*
** dns.c -- aio.getaddrinfo, resolved on libuv's thread pool.
**
**   core.getaddrinfo(host [, port [, family [, socktype]]]) -> list of
**     {family = "inet"|"inet6", addr = "127.0.0.1", port = n,
**      socktype = "stream"|"dgram"|"raw"}            (suspends)
**
** A request of the request tier (request.h): cancelling the caller
** cancels the lookup if it has not started, else abandons it.  Failure
** raises aio.OSError with libuv's code (e.g. "EAI_NONAME"), or "EMFILE"
** when the process is out of descriptors (see real_cause).  A host or
** port holding a '\0' is refused ("embedded null byte").
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "request.h"

typedef struct Lookup {
  Request base;                /* first: the request tier's part */
  uv_getaddrinfo_t req;
  int status;
  struct addrinfo *res;
} Lookup;

static void release (Request *r) {
  Lookup *q = (Lookup *)r;
  if (q->res) uv_freeaddrinfo(q->res);
  free(q);
}

/*
** Out of descriptors, glibc's getaddrinfo fails with EAI_NONAME ("unknown
** node or service"): it could open neither /etc/hosts nor a socket, and
** the errno that says so was the worker thread's.  So a lookup that
** failed that way is checked here, just after: if this process cannot
** open a descriptor now either, that is the cause reported.
*/
static int real_cause (int status) {
  int fd;
  if (status != UV_EAI_NONAME && status != UV_EAI_AGAIN &&
      status != UV_EAI_FAIL && status != UV_EAI_NODATA)
    return status;
  fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    close(fd);
    return status;
  }
  return (errno == EMFILE || errno == ENFILE) ? -errno : status;
}

static void on_resolved (uv_getaddrinfo_t *req, int status,
                         struct addrinfo *res) {
  Lookup *q = (Lookup *)req->data;
  q->status = status < 0 ? real_cause(status) : status;
  q->res = res;
  luaio__request_finish(&q->base);
}

static const char *socktype_name (int st) {
  switch (st) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    default: return "raw";
  }
}

static int resolved_k (lua_State *L, int status, lua_KContext ctx) {
  Lookup *q = (Lookup *)ctx;
  struct addrinfo *ai;
  int i = 0;
  (void)status;
  luaio__request_resumed(L, &q->base);
  if (q->status != 0) {
    int st = q->status;
    release(&q->base);
    return luaio__oserror(L, st, lua_pushfstring(L, "getaddrinfo '%s'",
                                                 lua_tostring(L, 1)));
  }
  lua_newtable(L);
  for (ai = q->res; ai != NULL; ai = ai->ai_next) {
    struct sockaddr_storage a;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    memset(&a, 0, sizeof a);
    memcpy(&a, ai->ai_addr, ai->ai_addrlen);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, ai->ai_family == AF_INET ? "inet" : "inet6");
    lua_setfield(L, -2, "family");
    if (luaio__push_sockaddr(L, &a) == 2) {
      lua_setfield(L, -3, "port");
      lua_setfield(L, -2, "addr");
    }
    else lua_pop(L, 1);
    lua_pushstring(L, socktype_name(ai->ai_socktype));
    lua_setfield(L, -2, "socktype");
    lua_rawseti(L, -2, ++i);
  }
  release(&q->base);
  return 1;
}

static int l_getaddrinfo (lua_State *L) {
  static const char *const families[] = {"any", "inet", "inet6", NULL};
  static const char *const types[] = {"any", "stream", "dgram", NULL};
  luaio_Runtime *rt = luaio__need_rt(L, "getaddrinfo");
  const char *host = luaio__checkcstring(L, 1, "getaddrinfo");
  const char *service = NULL;
  struct addrinfo hints;
  Task *t;
  Lookup *q;
  int fam, st, r;
  if (lua_isinteger(L, 2)) {
    lua_Integer p = lua_tointeger(L, 2);
    if (p < 0 || p > 65535) return luaio__argerror(L, 2, "getaddrinfo", "port out of range");
    lua_pushinteger(L, p);
    lua_replace(L, 2);
    service = lua_tostring(L, 2);
  }
  else if (lua_type(L, 2) == LUA_TSTRING)
    service = luaio__checkcstring(L, 2, "getaddrinfo");
  else if (!lua_isnoneornil(L, 2))
    return luaio__typeerror(L, 2, "getaddrinfo", "port (integer or string)");
  fam = luaL_checkoption(L, 3, "any", families);
  st = luaL_checkoption(L, 4, "any", types);
  t = luaio__check_suspend(L, "getaddrinfo");
  luaio__request_pool(L, "getaddrinfo");
  memset(&hints, 0, sizeof hints);
  hints.ai_family = fam == 1 ? AF_INET : fam == 2 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = st == 1 ? SOCK_STREAM : st == 2 ? SOCK_DGRAM : 0;
  if (st == 0) hints.ai_socktype = SOCK_STREAM;  /* one entry per address */
  q = (Lookup *)calloc(1, sizeof(Lookup));
  if (q == NULL) return luaL_error(L, "not enough memory");
  luaio__request_init(&q->base, (uv_req_t *)&q->req, release);
  r = uv_getaddrinfo(rt->loop, &q->req, on_resolved, host, service, &hints);
  if (r != 0) {
    free(q);
    return luaio__oserror(L, r, "getaddrinfo");
  }
  return luaio__request_start(L, t, &q->base, "getaddrinfo", resolved_k);
}

static const luaL_Reg funcs[] = {
  {"getaddrinfo", l_getaddrinfo},
  {NULL, NULL}
};

void luaio__dns_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
