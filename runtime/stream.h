/*
** stream.h -- the streams subsystem's private header: the Stream and
** Server structs, their shared close protocol (Endpoint), the reader,
** writer and server objects, and what the stream files share:
**
**   stream.c        lifecycle (the close protocol, new streams, the
**                   objects, closing, __gc), reading, stdin and a child's
**                   pipes, the registration of the subsystem
**   stream_write.c  writing: sends, flow control, coalescing, write_eof
**   stream_tls.c    TLS: the glue between a stream and the engine
**   stream_net.c    connecting, servers, socket names
**
** Only stream*.c include it.  What other subsystems use of the streams
** (process.c, udp.c, dns.c) is declared in internal.h.
*/
#ifndef luaio_stream_h
#define luaio_stream_h

#include "tls_abi.h"

#define LUAIO_READER "luaio.StreamReader"
#define LUAIO_WRITER "luaio.StreamWriter"
#define LUAIO_SERVER "luaio.Server"

#define DEFAULT_LIMIT (64 * 1024)  /* readline/readuntil's buffer limit */
#define HIGH_WATER (64 * 1024)
#define LOW_WATER (16 * 1024)
#define READ_FIRST (4 * 1024)      /* a stream's first reads ask this */
#define READ_CHUNK (64 * 1024)     /* ... doubling up to this while they
                                      fill what they were given */
#define COALESCE_MAX (8 * 1024)    /* bytes a stream may hold for a pass */
#define PENDING_KEEP 1024          /* a larger pending buffer is freed
                                      once sent */

typedef struct Server Server;
typedef struct Endpoint Endpoint;

/*
** The close protocol writers and servers share (stream.c).  An Endpoint
** is embedded first in a Stream and in a Server, so each is its Endpoint,
** and the data of its libuv handle.  The handle is on the runtime's open
** list (rt->open) from its start to its close callback, so what is open
** at shutdown is closed then.  close() begins once (closing); the close
** callback runs the kind's own steps, then wakes wait_closed()'s tasks,
** unless endpoints that have this one as parent are still open (a
** server's connections: the last of them to close wakes them).  The
** memory is freed once the handle and those children are closed and no
** Lua object refers to it (refs), whichever comes last.
*/
typedef struct EndpointKind {         /* what a kind does at each step */
  const char *name;                   /* "stream", "server" (debug reports) */
  void (*close) (Endpoint *e);        /* close() began (closing is set) */
  void (*shutdown) (Endpoint *e);     /* the loop shuts down */
  void (*closed) (Endpoint *e);       /* the handle is closed: its own
                                         steps, before wait_closed's */
  void (*destroy) (Endpoint *e);      /* frees it: nothing refers to it */
} EndpointKind;

struct Endpoint {
  Hook node;                   /* first: on rt->open while open */
  const EndpointKind *kind;
  luaio_Runtime *rt;
  uv_handle_t *h;              /* its handle (h->data is the endpoint) */
  Endpoint *parent;            /* waits for this one to close, or NULL */
  int open;                    /* the handle is not closed yet */
  int closing;                 /* its close has begun */
  int refs;                    /* Lua objects referring to it */
  int nchild;                  /* open endpoints with this one as parent */
  WaitList closers;            /* tasks in wait_closed() */
};

typedef struct Stream {
  Endpoint ep;                 /* first; ep.parent: the server that
                                  accepted it, or NULL */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
    uv_tty_t tty;
  } u;
  struct Stream *next_pending; /* accepted, not yet given to Lua */
  int is_pipe;
  int autoclose;               /* a child's output pipe: close at EOF */
  /* reading */
  char *buf;
  size_t off, len, cap, limit;
  int reading, eof, rerr;
  WaitList readers;
  size_t want;                 /* bytes a waiting readexactly needs */
  size_t rchunk;               /* free space a read asks (on_alloc) */
  /* writing */
  size_t wbuf, high, low;      /* wbuf: bytes in write requests */
  int werr, eof_sent;
  WaitList drainers;
  struct WriteReq *whead, *wtail;  /* its write requests, oldest first */
  Hook writing;                /* on rt->writing while it counts bytes */
  size_t counted;              /* its bytes in rt->wqueued */
  /* peername and sockname, kept from the start (asyncio caches them) */
  struct sockaddr_storage peer, sock;
  int has_names;
  /* TLS (tls.c): the buffer holds plaintext; NULL for plain streams */
  Tls *tls;
  const TlsOps *tlsops;
  WaitList handshakers;
  /* writes coalesced for the end of the pass (flush on rt->pass_end) */
  char *pend;
  size_t npend, pendcap;
  int direct;                  /* never coalesce (a child's pipe) */
  Hook flush;
} Stream;

/*
** A server.  Its handle is the bound socket, which luaio listens on and
** accepts from itself (stream_net.c): poll reports it readable.  An
** accept error pauses accepting (retry, a timer entry) instead of
** dropping connections.
*/
struct Server {
  Endpoint ep;                 /* first; ep.nchild: its open connections */
  union {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  uv_poll_t poll;              /* the listening socket is readable */
  uv_os_fd_t fd;               /* the listening socket */
  int poll_open;               /* the poll handle is not closed yet */
  Stream *pending;             /* accepted connections for the drain */
  int queued;                  /* run_accept is in the ready queue */
  int err;                     /* an accept error for run_accept */
  int failing;                 /* accepting fails: reported already */
  int pause;                   /* the last pause (ms), 0 = none */
  int retry;                   /* the retry's heap index + 1, 0 = none */
  int is_pipe;
  int stopped;                 /* _stop_accepting(): the socket is gone */
  int anchor;                  /* the Lua server, while it listens */
  size_t limit;
  WaitList forever;
};

/*
** A reader or writer object.  It is recognised by its size and tag (the
** address of a private static of stream.c, which alone makes and checks
** them) instead of by its metatable: as safe (the tag is read only from a
** block of the right size, and no Lua code can write a userdata's bytes),
** and a third of the C API calls of a metatable check, on every read and
** write.
*/
typedef struct Box { const char *tag; Stream *s; } Box;
typedef struct SBox { Server *sv; } SBox;   /* a Server object */


/* ---------------------------------------------------------- stream.c */

/* the close protocol */
void luaio__ep_start (Endpoint *e, const EndpointKind *kind,
                      luaio_Runtime *rt, uv_handle_t *h);
void luaio__ep_adopt (Endpoint *parent, Endpoint *child);
int luaio__ep_live (Endpoint *e);
int luaio__ep_is_closing (Endpoint *e);
int luaio__ep_close (Endpoint *e);
void luaio__ep_close_handle (Endpoint *e);
int luaio__ep_wait_closed (lua_State *L, Endpoint *e, const char *what);
void luaio__ep_drop (Endpoint *e);

/* streams */
Stream *luaio__stream_new (luaio_Runtime *rt, int is_pipe);
void luaio__stream_push_pair (lua_State *L, Stream *s);  /* +2 */
void luaio__stream_close_now (Stream *s);
Stream *luaio__stream_checkwriter (lua_State *L);
int luaio__stream_error (lua_State *L, Stream *s, int err,
                         const char *fname);   /* raises */
int luaio__stream_reserve (Stream *s, size_t want);
void luaio__stream_start_reading (Stream *s);
void luaio__stream_stop_reading (Stream *s);
void luaio__stream_class (lua_State *L, const char *tname,
                          const char *name, const luaL_Reg *const *methods,
                          lua_CFunction gc, const char *field);


/* ---------------------------------------------------------- stream_write.c */

void luaio__stream_flush_pending (Stream *s);
void luaio__stream_uncount (Stream *s);
void luaio__stream_try_pending (Stream *s);
void luaio__stream_drop_pending (Stream *s);
void luaio__stream_check_writable (lua_State *L, Stream *s,
                                   const char *fname);   /* raises */
extern const luaL_Reg luaio__stream_write_methods[];


/* ---------------------------------------------------------- stream_tls.c */

void luaio__stream_tls_failed (Stream *s);
void luaio__stream_tls_input (Stream *s, const char *p, size_t n);
extern const luaL_Reg luaio__stream_tls_methods[];


/* ---------------------------------------------------------- stream_net.c */

void luaio__stream_keep_names (Stream *s);
extern const luaL_Reg luaio__stream_net_methods[];  /* the writer's */
void luaio__stream_net_open (lua_State *L);

#endif
