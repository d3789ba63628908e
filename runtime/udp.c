/*
** udp.c -- aio.open_udp: UDP sockets.
**
**   core.udp_open([ip [, port]]) -> socket (bound when ip is given)
**   sock:sendto(data, ip, port)     queued; errors raise aio.OSError
**   sock:recvfrom() -> data, ip, port   (suspends until a datagram)
**   sock:getsockname() -> ip, port; sock:close()
**
** Received datagrams wait in a C list until read; receiving stops while
** LUAIO_UDP_BACKLOG of them are unread (the kernel then drops, as UDP
** does).  One receiver at a time.  An address holding a '\0' is refused
** ("embedded null byte"): the system would see it cut there.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LUAIO_UDP "luaio.UDPSocket"

#ifndef LUAIO_UDP_BACKLOG
#define LUAIO_UDP_BACKLOG 1024
#endif



typedef struct Packet {
  struct Packet *next;
  struct sockaddr_storage from;
  size_t len;
  char data[1];
} Packet;

typedef struct Udp {
  Hook node;                    /* on rt->open while the handle is open */
  uv_udp_t h;
  luaio_Runtime *rt;
  Packet *head, *tail;
  int npackets, receiving, open, refs, rerr;
  int closed;                   /* close callback has run */
  char buf[65536];
  WaitList readers;
} Udp;

typedef struct UBox { Udp *u; } UBox;

static Udp *checkudp (lua_State *L) {
  UBox *b = (UBox *)luaio__checkclass(L, 1, LUAIO_UDP);
  if (b->u == NULL || !b->u->open) luaL_error(L, "the UDP socket is closed");
  return b->u;
}

static void free_packets (Udp *u) {
  while (u->head != NULL) {
    Packet *p = u->head;
    u->head = p->next;
    free(p);
  }
  u->tail = NULL;
  u->npackets = 0;
}

static void on_closed (uv_handle_t *h) {
  Udp *u = (Udp *)h->data;
  luaio_Runtime *rt = u->rt;
  luaio__unhook(&rt->open, &u->node);
  rt->open_handles--;
  free_packets(u);
  u->closed = 1;
  u->rt = NULL;
  if (u->refs == 0) free(u);
}

static void close_hook (luaio_Runtime *rt, Hook *h);

static void udp_close (Udp *u) {
  if (!u->open) return;
  u->open = 0;
  luaio__wake_all(&u->readers);
  uv_close((uv_handle_t *)&u->h, on_closed);
}

static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  Udp *u = (Udp *)h->data;
  (void)hint;
  b->base = u->buf;
  b->len = sizeof u->buf;
}

static void on_recv (uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                     const struct sockaddr *from, unsigned flags) {
  Udp *u = (Udp *)h->data;
  Packet *p;
  (void)flags;
  if (n < 0) { u->rerr = (int)n; goto wake; }
  if (from == NULL) return;            /* nothing more to read now */
  p = (Packet *)malloc(sizeof(Packet) + (size_t)n);
  if (p == NULL) return;
  p->next = NULL;
  p->len = (size_t)n;
  memcpy(p->data, b->base, (size_t)n);
  memset(&p->from, 0, sizeof p->from);
  memcpy(&p->from, from, from->sa_family == AF_INET6 ?
         sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
  if (u->tail) u->tail->next = p;
  else u->head = p;
  u->tail = p;
  if (++u->npackets >= LUAIO_UDP_BACKLOG) {
    uv_udp_recv_stop(h);
    u->receiving = 0;
  }
wake:
  luaio__wake_first(&u->readers);
}

static void start_recv (Udp *u) {
  if (!u->receiving && u->open &&
      uv_udp_recv_start(&u->h, on_alloc, on_recv) == 0)
    u->receiving = 1;
}

static int parse (const char *ip, int port, struct sockaddr_storage *a) {
  memset(a, 0, sizeof *a);
  if (strchr(ip, ':') != NULL)
    return uv_ip6_addr(ip, port, (struct sockaddr_in6 *)a);
  return uv_ip4_addr(ip, port, (struct sockaddr_in *)a);
}

static int getport (lua_State *L, int arg, const char *fname) {
  lua_Integer p;
  if (!lua_isinteger(L, arg)) luaio__typeerror(L, arg, fname, "integer port");
  p = lua_tointeger(L, arg);
  if (p < 0 || p > 65535) luaio__argerror(L, arg, fname, "port out of range");
  return (int)p;
}

/* core.udp_open([ip [, port]]) */
static int l_udp_open (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "open_udp");
  Udp *u;
  UBox *b;
  int r = 0, bind = !lua_isnoneornil(L, 1);
  const char *ip = bind ? luaio__checkcstring(L, 1, "open_udp") : NULL;
  int port = bind && !lua_isnoneornil(L, 2) ? getport(L, 2, "open_udp") : 0;
  u = (Udp *)calloc(1, sizeof(Udp));
  if (u == NULL) return luaL_error(L, "not enough memory");
  u->rt = rt;
  uv_udp_init(rt->loop, &u->h);
  u->h.data = u;
  u->open = 1;
  luaio__hook(&rt->open, &u->node, close_hook);
  rt->open_handles++;
  b = (UBox *)lua_newuserdatauv(L, sizeof(UBox), 0);
  b->u = u;
  u->refs = 1;
  luaL_setmetatable(L, LUAIO_UDP);
  if (bind) {
    struct sockaddr_storage a;
    r = parse(ip, port, &a);
    if (r == 0) r = uv_udp_bind(&u->h, (struct sockaddr *)&a, 0);
  }
  if (r != 0) {
    udp_close(u);
    return luaio__oserror_at(L, r, "open_udp",
                             luaio__push_hostport(L, ip, port));
  }
  return 1;
}

typedef struct Send {
  uv_udp_send_t req;
  char data[1];
} Send;

static void on_sent (uv_udp_send_t *req, int status) {
  (void)status;
  free(req);
}

static int u_sendto (lua_State *L) {
  Udp *u = checkudp(L);
  size_t len;
  const char *data;
  struct sockaddr_storage a;
  Send *s;
  uv_buf_t buf;
  int r;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaio__typeerror(L, 2, "sendto", "string");
  data = lua_tolstring(L, 2, &len);
  r = parse(luaio__checkcstring(L, 3, "sendto"), getport(L, 4, "sendto"), &a);
  if (r != 0) return luaio__oserror(L, r, "sendto");
  buf = uv_buf_init((char *)data, (unsigned)len);
  r = uv_udp_try_send(&u->h, &buf, 1, (struct sockaddr *)&a);
  if (r >= 0) return 0;
  if (r != UV_EAGAIN && r != UV_ENOSYS) return luaio__oserror(L, r, "sendto");
  s = (Send *)malloc(sizeof(Send) + len);
  if (s == NULL) return luaL_error(L, "not enough memory");
  memcpy(s->data, data, len);
  buf = uv_buf_init(s->data, (unsigned)len);
  r = uv_udp_send(&s->req, &u->h, &buf, 1, (struct sockaddr *)&a, on_sent);
  if (r != 0) { free(s); return luaio__oserror(L, r, "sendto"); }
  return 0;
}

static int recv_k (lua_State *L, int status, lua_KContext ctx);

static int u_recvfrom (lua_State *L) {
  Udp *u = checkudp(L);
  Packet *p = u->head;
  Task *t;
  int n;
  if (p == NULL) {
    if (u->rerr != 0) {
      int e = u->rerr;
      u->rerr = 0;
      return luaio__oserror(L, e, "recvfrom");
    }
    if (u->readers.head != NULL)
      return luaL_error(L, "recvfrom: another task is already receiving");
    t = luaio__check_suspend(L, "recvfrom");
    start_recv(u);
    return luaio__park(L, t, &u->readers, NULL, "recvfrom", u, 0, recv_k);
  }
  u->head = p->next;
  if (u->head == NULL) u->tail = NULL;
  u->npackets--;
  lua_pushlstring(L, p->data, p->len);
  n = luaio__push_sockaddr(L, &p->from);
  free(p);
  start_recv(u);
  return 1 + n;
}

static int recv_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return u_recvfrom(L);
}

static int u_getsockname (lua_State *L) {
  Udp *u = checkudp(L);
  struct sockaddr_storage a;
  int alen = sizeof a;
  int r = uv_udp_getsockname(&u->h, (struct sockaddr *)&a, &alen);
  if (r != 0) return luaio__oserror(L, r, "getsockname");
  return luaio__push_sockaddr(L, &a);
}

static int u_close (lua_State *L) {
  UBox *b = (UBox *)luaio__checkclass(L, 1, LUAIO_UDP);
  if (b->u != NULL) udp_close(b->u);
  return 0;
}

static int u_gc (lua_State *L) {
  UBox *b = (UBox *)lua_touserdata(L, 1);
  Udp *u = b->u;
  if (u == NULL) return 0;
  b->u = NULL;
  u->refs = 0;
  if (u->open) udp_close(u);           /* freed in its close callback */
  else if (u->closed) free(u);        /* else its close callback frees it */
  return 0;
}

/* Shutdown: rt's hook for a socket still open. */
static void close_hook (luaio_Runtime *rt, Hook *h) {
  (void)rt;
  udp_close((Udp *)h);
}

static const luaL_Reg methods[] = {
  {"sendto", u_sendto},
  {"recvfrom", u_recvfrom},
  {"getsockname", u_getsockname},
  {"close", u_close},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"udp_open", l_udp_open},
  {NULL, NULL}
};

void luaio__udp_open (lua_State *L) {
  luaL_newmetatable(L, LUAIO_UDP);
  lua_newtable(L);
  luaio__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, u_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, u_close);
  lua_setfield(L, -2, "__close");
  lua_pushliteral(L, "UDPSocket");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
