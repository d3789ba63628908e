/*
** internal.h -- luaio's C core, shared between its files.
**
** Naming: public API luaio_ (luaio.h); cross-file internals luaio__ (here);
** static helpers unprefixed.  See docs/design.md for the rules this code
** keeps: Lua runs only in the ready-queue drain; libuv callbacks only
** schedule; every suspension is one park with an abort hook.
*/
#ifndef luaio_internal_h
#define luaio_internal_h

#include <signal.h>
#include <stdint.h>
#include <stddef.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"

#include "luaio.h"

typedef struct GState GState;
typedef struct Future Future;
typedef struct Task Task;
typedef struct Handle Handle;
typedef struct WaitList WaitList;
typedef struct TlsOps TlsOps;

/* Type names: metatable names in the registry (luaL_checkudata). */
#define LUAIO_FUTURE "luaio.Future"
#define LUAIO_TASK "luaio.Task"
#define LUAIO_SENTINEL "luaio.TaskSentinel"
#define LUAIO_HANDLE "luaio.Handle"
#define LUAIO_LOOP "luaio.Loop"

/* How many passes of the ready queue may run between two I/O polls. */
#ifndef LUAIO_DRAIN_BUDGET
#define LUAIO_DRAIN_BUDGET 4096
#endif

/* Debug mode reports a task step longer than this (ns). */
#ifndef LUAIO_SLOW_STEP
#define LUAIO_SLOW_STEP 100000000
#endif

/* How deep eager task starts may nest before a task starts lazily. */
#ifndef LUAIO_EAGER_MAX
#define LUAIO_EAGER_MAX 16
#endif

/* How many finished coroutines are kept for reuse. */
#ifndef LUAIO_POOL_MAX
#define LUAIO_POOL_MAX 1024
#endif


/* ---------------------------------------------------------- per state */

/*
** One per lua_State, created by the first luaopen_luaio_core and kept in
** the registry: every core C function has it as upvalue 1.
*/
struct GState {
  luaio_Runtime *rt;           /* the running runtime, or NULL */
  luaio_Runtime *open;         /* list of open runtimes (by rt->next) */
  unsigned next_id;            /* runtime ids: futures bind to them */
  lua_CFunction msgh;          /* task body message handler */
  const void *mt_future;       /* metatables, for type checks without */
  const void *mt_task;         /* a registry lookup by name */
  const void *mt_waitlist;
  int ref_taskmt;              /* the Task metatable in the registry's
                                  array part: found without hashing */
  const TlsOps *tls_ops;  /* set when luaio.tls is loaded */
  int *pool, npool, poolcap;   /* registry slots no runtime owns (false) */
  int next_key;                /* where to look for a new slot first */
  int embedded;                /* a host opened it (luaio_open): signal
                                  dispositions are the host's */
};

int luaio__hasmt (lua_State *L, int idx, const void *mt);
void *luaio__checkudata (lua_State *L, int idx, const void *mt,
                         const char *tname);

#define luaio__G(L) ((GState *)lua_touserdata(L, lua_upvalueindex(1)))

GState *luaio__state (lua_State *L);  /* pushes nothing */
void luaio__setfuncs (lua_State *L, const luaL_Reg *l);  /* G upvalue */


/* ---------------------------------------------------------- futures */

enum { FUT_PENDING, FUT_DONE, FUT_FAILED, FUT_CANCELLED };

struct WaitList {
  Task *head, *tail;
};

/*
** A Future; a Task starts with one.  User values: 1 the result slot (one
** result, a packed table {n = k, ...}, the error, or the CancelledError),
** 2 the done callbacks (nil, the one callback, or a table of fn, seq pairs).
*/
struct Future {
  unsigned char state;
  unsigned char is_task;
  unsigned char retrieved;     /* error looked at (or none to look at) */
  unsigned char tracked;       /* listed for the never-retrieved report */
  unsigned char hooked;        /* pending, with a cancel hook in slot 1 */
  unsigned char cbkind;        /* user value 2: CB_NONE, CB_ONE, CB_LIST */
  int nres;                    /* -1: packed table; else 0 or 1 */
  int anchor;                  /* its anchor (registry slot), 0 = none */
  int ncb;                     /* callback entries still queued */
  unsigned seq;                /* registration counter: callbacks+waiters */
  unsigned loop_id;            /* runtime this binds to, 0 = not yet */
  unsigned cbseq;              /* sequence of a lone done callback */
  WaitList waiters;      /* tasks awaiting this */
};

enum { CB_NONE, CB_ONE, CB_LIST };

#define FUT_UV_RESULT 1
#define FUT_UV_CALLBACKS 2
#define FUT_NUV 2

Future *luaio__tofuture (lua_State *L, GState *G, int idx);
Future *luaio__checkfuture (lua_State *L, int idx);
void luaio__future_bind (lua_State *L, luaio_Runtime *rt, Future *f,
                         const char *fname);
void luaio__future_complete (lua_State *L, luaio_Runtime *rt, int idx);
int luaio__future_results (lua_State *L, int idx);  /* pushes or raises */
int luaio__future_cancel (lua_State *L, int idx, int msgidx);
void luaio__run_future_callback (lua_State *L, luaio_Runtime *rt,
                                 Future *f, int i);
void luaio__future_settle (lua_State *L, luaio_Runtime *rt, int idx, int st,
                           int n);
void luaio__future_add_callback (lua_State *L, int idx, int fnidx,
                                 const char *fname);
Future *luaio__new_future (lua_State *L, luaio_Runtime *rt);
void luaio__future_methods (lua_State *L);
int luaio__future_gc (lua_State *L);
void luaio__future_open (lua_State *L);
void luaio__gather_done (lua_State *L, luaio_Runtime *rt, int gidx, int fidx);
void luaio__gather_open (lua_State *L);


/* ---------------------------------------------------------- tasks */

enum { T_NEW, T_SCHEDULED, T_RUNNING, T_PARKED, T_DONE };

/*
** Abort hook of a parked task, called when the task is cancelled.  It
** returns 1 when it has arranged the task's wake-up itself (awaiting a
** future: the future was cancelled), 0 to let the core unpark the task
** and resume it with CancelledError.  The hook must undo the wait.
*/
typedef int (*AbortFn) (lua_State *L, luaio_Runtime *rt, Task *t);

/*
** A Task.  User values: 1 the coroutine while pending, then the result
** as a Future's; 2 as a Future; 3 the context (ContextVar values,
** copy-on-write) unless it is the loop's (own_ctx 0: nothing stored);
** 4 extras, a table made on demand: name, cancel message, traceback.
** Every pending task has an anchor, so the loop keeps it alive;
** luaio__push_task pushes one from its pointer.
*/
struct Task {
  Future f;
  unsigned char tstate;
  unsigned char must_cancel;   /* raise CancelledError at next resume */
  unsigned char has_extras;
  unsigned char is_main;
  unsigned char aborted;       /* this resume comes from an abort hook */
  unsigned char own_ctx;       /* user value 3 holds its context; 0: it
                                  runs in the loop's (R.context) */
  int cancelling;              /* cancel requests not yet uncancelled */
  int heap;                    /* index in the timer heap + 1, 0 = none */
  unsigned wseq;               /* registration order on a future */
  int slot;                    /* its pooled coroutine's anchor, 0 = none */
  lua_Integer id;              /* "Task-<id>" */
  lua_Integer parent;          /* id of the creating task, 0 = none */
  lua_State *co;               /* NULL once done */
  luaio_Runtime *rt;           /* valid while pending */
  Task *prev, *next;     /* pending tasks of rt */
  Task *wprev, *wnext;   /* the wait list it is parked on */
  WaitList *wlist;
  AbortFn abort;
  const char *what;            /* what it waits on, for dump_tasks */
  const void *wobj;
};

#define TASK_UV_CONTEXT 3
#define TASK_UV_EXTRAS 4
#define TASK_NUV 4

Task *luaio__totask (lua_State *L, GState *G, int idx);
Task *luaio__checktask (lua_State *L, int idx);
#define luaio__push_task(L, rt, t) luaio__push_anchor(L, rt, (t)->f.anchor)
int luaio__create_task (lua_State *L, luaio_Runtime *rt, int fidx, int n);
void luaio__step (luaio_Runtime *rt, Task *t);
int luaio__task_main (lua_State *co);
void luaio__task_kill (lua_State *L, luaio_Runtime *rt, Task *t);
int luaio__task_cancel (lua_State *L, Task *t, int msgidx);
void luaio__extras (lua_State *L, Task *t, int idx);  /* +1 table */
void luaio__task_open (lua_State *L);


/* ---------------------------------------------------------- park/wake */

Task *luaio__check_suspend (lua_State *L, const char *fname);
Task *luaio__check_suspend_G (lua_State *L, GState *G,
                                    const char *fname);
int luaio__park (lua_State *L, Task *t, WaitList *wl,
                 AbortFn abort, const char *what, const void *obj,
                 lua_KContext ctx, lua_KFunction k);
void luaio__resumed (lua_State *L);  /* raises a pending cancellation */
void luaio__resumed_G (lua_State *L, GState *G);
Task *luaio__resumed_task (lua_State *L);  /* checks, raises nothing */
int luaio__raise_cancel (lua_State *L, Task *t);
int luaio__can_suspend (lua_State *L);
void luaio__unpark (Task *t);
void luaio__wake (luaio_Runtime *rt, Task *t);
void luaio__waitlist_push (WaitList *wl, Task *t);
void luaio__waitlist_remove (WaitList *wl, Task *t);


/* ---------------------------------------------------------- handles */

enum { H_PENDING, H_RAN, H_CANCELLED };

/*
** A call_soon / call_later handle.  User values: 1 the function, 2.. its
** arguments.
*/
struct Handle {
  unsigned char state;
  unsigned char timer;         /* call_later/call_at */
  int nargs;
  int anchor;
  int heap;                    /* index in the timer heap + 1, 0 = none */
  uint64_t when;               /* deadline in clock ns (timers) */
  double at;                   /* the deadline as given, in seconds */
  luaio_Runtime *rt;           /* valid while pending */
};

void luaio__run_handle (lua_State *L, luaio_Runtime *rt, Handle *h);
void luaio__call_reporting (lua_State *L, luaio_Runtime *rt, int nargs,
                            const char *key, int objidx);
void luaio__handle_open (lua_State *L);


/* ---------------------------------------------------------- runtime */

enum { E_TASK, E_CALL, E_FUTCB, E_REPORT, E_SIGNAL, E_ACCEPT, E_CCALL };

typedef struct Entry {
  int kind;
  int idx;
  void *p;
} Entry;

typedef struct TimerEntry {
  uint64_t when;
  uint64_t seq;
  void *p;
  int kind;                    /* E_TASK (a sleep) or E_CALL */
} TimerEntry;

typedef struct Pooled {
  lua_State *co;
  int slot;                    /* its anchor */
} Pooled;

struct luaio_Runtime {
  lua_State *S;                /* the scheduler's own thread */
  GState *G;
  luaio_Runtime *next;         /* in G->open */
  unsigned id;
  uv_loop_t *loop;
  uv_loop_t own_loop;
  int owns_loop;
  uv_idle_t idle;              /* active while the ready queue is not empty */
  uv_timer_t timer;            /* the next deadline of the heap */
  uv_signal_t sigint;
  uv_timer_t guard;            /* wakes uv_run during shutdown */
  int idle_on, timer_on, sigint_on;
  int open_handles;            /* of the above, not yet closed */
  /* the ready queue: a ring (capacity 0 or a power of two) */
  Entry *q;
  size_t qhead, qlen, qcap;
  /* the timer heap */
  TimerEntry *heap;
  size_t nheap, heapcap;
  uint64_t timer_seq;
  /* clock */
  int virtual_clock;
  uint64_t vnow;
  /* the running task, and the thread a suspension must start from */
  Task *current;
  lua_State *running;
  Task *tasks;           /* pending tasks (a list) */
  Task *main;
  /* counters: live objects, for tests and leak checks */
  lua_Integer ntasks, task_counter, nhandles, nrequests, nreports;
  /* Lua-side state: refs into the registry */
  int ref_R;                   /* per-runtime table (see runtime.c) */
  int ref_loop;                /* the Loop userdata */
  int *slots, *freeslots;      /* anchors: registry slots, all / free */
  int nslots, nfree, slotcap;
  /* coroutines of finished tasks, for reuse: each keeps the anchor it got
     when first pooled, also while a task runs on it (so taking and
     returning one touches no table); pool_idle lists the free ones */
  Pooled *pool_idle;
  int pool_n;                  /* idle */
  int pool_owned;              /* anchored, idle or running a task */
  /* flags */
  int running_depth;           /* inside luaio__run */
  int closing, closed, debug;
  int interrupted;             /* SIGINT seen */
  int fatal;                   /* drain failed: message in R.fatal */
  int body_failed;             /* set by a task body's continuation */
  int report_head;             /* reports delivered so far */
  int stop;                    /* main task done: end the drain pass */
  int eager_depth;             /* nested eager task starts */
  int has_handler, has_factory;
  int cli;                     /* the CLI's loop: may nest one aio.run */
  int user_sigint;             /* a SIGINT handler replaces Ctrl-C's */
  void *signals;               /* signal watches (signal.c) */
  void *streams;               /* open streams and servers (stream.c) */
  void *coalesced, *coalesced_last;  /* streams with writes to send when
                                  the pass ends, in the order of their
                                  first write (stream.c) */
  luaio_Runtime *exit_next;    /* on exit.c's list of every runtime */
  uv_thread_t owner;           /* the thread that made it */
  void *udps;                  /* open UDP sockets (udp.c) */
  void *procs;                 /* child processes (process.c) */
  void *embed;                 /* embedding state (embed.c), or NULL */
  luaio_ReportFn report;       /* a host's report function, or NULL */
  void *report_ud;
  struct sigaction old_sigint; /* restored when run() returns */
  double shutdown_timeout;
};

/* runtime.c */
luaio_Runtime *luaio__rt (lua_State *L);          /* running one or NULL */
luaio_Runtime *luaio__need_rt (lua_State *L, const char *fname);
luaio_Runtime *luaio__find_rt (GState *G, unsigned id);
luaio_Runtime *luaio__checkloop (lua_State *L, int idx);
luaio_Runtime *luaio__new_runtime (lua_State *L, uv_loop_t *loop);
void luaio__free_runtime (lua_State *L, luaio_Runtime *rt);
void luaio__push_R (lua_State *L, luaio_Runtime *rt);
int luaio__anchor (lua_State *L, luaio_Runtime *rt);  /* pops the value */
void luaio__unanchor (lua_State *L, luaio_Runtime *rt, int slot);
void luaio__push_anchor (lua_State *L, luaio_Runtime *rt, int slot);
void luaio__report (lua_State *L, luaio_Runtime *rt);  /* pops ctx table */
void luaio__queue_report (lua_State *L, luaio_Runtime *rt); /* pops ctx */
void luaio__push_loop (lua_State *L, luaio_Runtime *rt);
void luaio__loop_open (lua_State *L);

/* sched.c */
void luaio__schedule (luaio_Runtime *rt, int kind, void *p, int idx);
void luaio__sched_init (luaio_Runtime *rt);
void luaio__kick (luaio_Runtime *rt);
int luaio__want_pass (luaio_Runtime *rt);
int luaio__run_until (lua_State *L, luaio_Runtime *rt, Task *main);
void luaio__shutdown (lua_State *L, luaio_Runtime *rt);

/* timer.c */
uint64_t luaio__now (luaio_Runtime *rt);
int luaio__delay_ns (lua_State *L, int arg, const char *fname,
                    uint64_t *ns);
int luaio__heap_push (luaio_Runtime *rt, uint64_t when, int kind, void *p);
void luaio__heap_remove (luaio_Runtime *rt, int pos);
int luaio__move_due (luaio_Runtime *rt, uint64_t now);
void luaio__arm_timer (luaio_Runtime *rt);
void luaio__timer_open (lua_State *L);

/* errors.c */
void luaio__new_error (lua_State *L, const char *cls, const char *msg,
                       int traceback);          /* pushes the object */
void luaio__push_cancelled (lua_State *L, int msgidx);  /* pushes */
int luaio__is_cancelled (lua_State *L, int idx);
int luaio__is_error_object (lua_State *L, int idx);
int luaio__error (lua_State *L, const char *cls, const char *fmt, ...);
int luaio__oserror (lua_State *L, int uverr, const char *what);
void luaio__push_oserror (lua_State *L, int uverr, const char *what);
int luaio__argerror (lua_State *L, int arg, const char *fname,
                     const char *extramsg);
int luaio__typeerror (lua_State *L, int arg, const char *fname,
                      const char *tname);
void luaio__traceback (lua_State *L, lua_State *L1, const char *msg,
                       int level);      /* pushes, as luaL_traceback */
void luaio__errors_open (lua_State *L);

/* signal.c */
int luaio__checksignal (lua_State *L, int arg, const char *fname);
void luaio__rewatch_sigint (luaio_Runtime *rt);
void luaio__run_signal (lua_State *L, luaio_Runtime *rt, int signum);
void luaio__close_signals (luaio_Runtime *rt);
void luaio__signal_open (lua_State *L);

/* waitlist.c, queue.c */
void luaio__waitlist_open (lua_State *L);
void luaio__queue_open (lua_State *L);

/* stream.c, udp.c, dns.c */
void luaio__run_accept (lua_State *L, luaio_Runtime *rt, void *server);
void luaio__close_streams (luaio_Runtime *rt);
void luaio__send_coalesced (luaio_Runtime *rt);
int luaio__count_streams (luaio_Runtime *rt);
void luaio__close_udps (luaio_Runtime *rt);
void luaio__stream_open (lua_State *L);
void luaio__udp_open (lua_State *L);
void luaio__dns_open (lua_State *L);
void luaio__fs_open (lua_State *L);
void *luaio__stream_pipe (luaio_Runtime *rt);
uv_stream_t *luaio__stream_handle (void *s);
void luaio__push_stream_end (lua_State *L, void *s, int reader);
void luaio__stream_discard (void *s);
void luaio__process_open (lua_State *L);
void luaio__thread_open (lua_State *L);
void luaio__close_processes (luaio_Runtime *rt);
int luaio__push_sockaddr (lua_State *L, const struct sockaddr_storage *a);

/*
** TLS.  The engine (tls.c, OpenSSL) and the core reach each other only
** through the two tables below, so the engine can be a module of its own
** (luaio.tls, loaded on first use: the CLI starts without loading
** OpenSSL, whose symbol relocations alone cost ~0.5 ms) or be linked in
** (core.so, libluaio: luaio__tls_builtin preloads it).  tls_none.c stands
** in for it in a build without OpenSSL.
*/
#define LUAIO_TLS_ABI 1
#define LUAIO_TLSCORE "luaio.tlscore"   /* registry: light TlsCore */
#define LUAIO_TLS_CLOSED (-1)   /* ops->read: the peer's close_notify */
#define LUAIO_TLS_FAILED (-2)   /* ops->read: the session failed */
#define LUAIO_ETLS (-100000)    /* a stream error whose reason is in its Tls */

typedef struct Tls Tls;

struct TlsOps {                  /* the engine, for stream.c */
  int abi;
  Tls *(*create) (lua_State *L, int ctx, int server,
                        const char *hostname, void *stream,
                        const char *fname);
  void (*destroy) (Tls *t);
  int (*feed) (Tls *t, const char *p, size_t n);
  int (*handshake) (Tls *t);     /* 1 done, 0 more input, -1 failed */
  int (*done) (Tls *t);
  long (*read) (Tls *t, char *out, size_t cap);
  int (*write) (Tls *t, const char *p, size_t n);
  void (*shutdown) (Tls *t);
  int (*eof) (Tls *t);
  int (*error) (lua_State *L, Tls *t, const char *fname);
  int (*info) (lua_State *L, Tls *t, const char *what);
};

typedef struct TlsCore {         /* the core, for the engine */
  int abi;
  void (*new_error) (lua_State *L, const char *cls, const char *msg,
                     int traceback);
  void (*stream_out) (void *stream, const char *p, size_t n);
  void (*set_ops) (lua_State *L, const TlsOps *ops);
} TlsCore;

void luaio__tls_link_open (lua_State *L);   /* tls_link.c */
void luaio__stream_tls_out (void *stream, const char *p, size_t n);
void luaio__tls_builtin (lua_State *L);     /* tls.c, tls_none.c, tls_plugin.c */
LUAIO_API int luaopen_luaio_tls (lua_State *L);

/* exit.c */
void luaio__exit_watch (luaio_Runtime *rt);
void luaio__exit_unwatch (luaio_Runtime *rt);

/* embed.c */
void luaio__run_ccall (lua_State *L, luaio_Runtime *rt, void *call);
void luaio__close_embed (luaio_Runtime *rt);

/* coro.c */
void luaio__coro_open (lua_State *L);

/* Light userdata yielded by every luaio suspension. */
extern const char luaio__sentinel;
#define luaio__is_sentinel(L, i) \
  (lua_touserdata(L, i) == (void *)&luaio__sentinel)

#endif
