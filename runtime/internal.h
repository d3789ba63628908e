/*
** internal.h -- luaio's C core, shared between its files: one section per
** file, from the ground floor up (docs/design.md draws the floors).
**
** Naming: public API luaio_ (luaio.h); cross-file internals luaio__ (here
** and in a subsystem's private header: stream.h, request.h, tls_abi.h);
** internal types and static helpers unprefixed.  The rules this code
** keeps: Lua runs only in the ready-queue drain; libuv callbacks only
** schedule; every suspension is one park with an abort hook; the core
** floor (state, errors, report, sched, timer, waitlist, alloc, exit)
** calls nothing above it: subsystems register what it must do for them.
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

/* How many ready-queue entries one drain may run (in whole passes: the
   pass that crosses it ends first) before libuv polls I/O and timers. */
#ifndef LUAIO_DRAIN_BUDGET
#define LUAIO_DRAIN_BUDGET 4096
#endif

/* Debug mode reports a task step longer than this (ns). */
#ifndef LUAIO_SLOW_STEP
#define LUAIO_SLOW_STEP 100000000
#endif

/* Debug mode warns of a cancellation not honoured after this long (ns). */
#ifndef LUAIO_CANCEL_WARN
#define LUAIO_CANCEL_WARN 1000000000
#endif

/* How deep eager task starts may nest before a task starts lazily. */
#ifndef LUAIO_EAGER_MAX
#define LUAIO_EAGER_MAX 16
#endif

/* How many finished coroutines are kept for reuse. */
#ifndef LUAIO_POOL_MAX
#define LUAIO_POOL_MAX 1024
#endif

/*
** What the drain runs for a ready-queue entry (and a timer that is due):
** S is the scheduler's thread, p and idx what the entry was scheduled
** with.  Each subsystem schedules its own; the scheduler knows none.
*/
typedef void (*RunFn) (lua_State *S, luaio_Runtime *rt, void *p, int idx);


/* ---------------------------------------------------------- state.c */

/*
** One per lua_State, created by the first luaopen_luaio_core and kept in
** the registry: every core C function has it as upvalue 1.
*/
struct GState {
  luaio_Runtime *rt;           /* the running runtime, or NULL */
  luaio_Runtime *open;         /* list of open runtimes (by rt->next) */
  unsigned next_id;            /* runtime ids: futures bind to them */
  RunFn run_task;              /* one step of a task (task.c registers it) */
  const void *mt_future;       /* metatables, for type checks without */
  const void *mt_task;         /* a registry lookup by name */
  const void *mt_waitlist;
  int ref_taskmt;              /* the Task metatable in the registry's
                                  array part: found without hashing */
  const TlsOps *tls_ops;       /* set when luaio.tls is loaded */
  int *pool, npool, poolcap;   /* registry slots no runtime owns (false) */
  int next_key;                /* where to look for a new slot first */
  int embedded;                /* a host opened it (luaio_open): signal
                                  dispositions are the host's */
};

#define luaio__G(L) ((GState *)lua_touserdata(L, lua_upvalueindex(1)))

/* A Loop object: the runtime, NULL once the loop is closed (loop.c). */
typedef struct LoopBox { luaio_Runtime *rt; } LoopBox;

GState *luaio__state (lua_State *L);  /* pushes nothing */
void luaio__setfuncs (lua_State *L, const luaL_Reg *l);  /* G upvalue */
int luaio__hasmt (lua_State *L, int idx, const void *mt);
void *luaio__checkudata (lua_State *L, int idx, const void *mt,
                         const char *tname);
luaio_Runtime *luaio__rt (lua_State *L);          /* running one or NULL */
luaio_Runtime *luaio__need_rt (lua_State *L, const char *fname);
luaio_Runtime *luaio__find_rt (GState *G, unsigned id);
void luaio__push_R (lua_State *L, luaio_Runtime *rt);
void luaio__push_loop (lua_State *L, luaio_Runtime *rt);
luaio_Runtime *luaio__checkloop (lua_State *L, int idx);
int luaio__anchor (lua_State *L, luaio_Runtime *rt);  /* pops the value */
void luaio__unanchor (lua_State *L, luaio_Runtime *rt, int slot);
void luaio__push_anchor (lua_State *L, luaio_Runtime *rt, int slot);
void luaio__free_slots (lua_State *L, luaio_Runtime *rt);
void *luaio__ext (luaio_Runtime *rt, const void *key);
int luaio__set_ext (luaio_Runtime *rt, const void *key, void *p);


/* ---------------------------------------------------------- errors.c */

void luaio__new_error (lua_State *L, const char *cls, const char *msg,
                       int traceback);          /* pushes the object */
void luaio__push_cancelled (lua_State *L, int msgidx);  /* pushes */
int luaio__is_cancelled (lua_State *L, int idx);
void luaio__chain_context (lua_State *L, int eidx, int ctxidx);
int luaio__is_error_object (lua_State *L, int idx);
int luaio__error (lua_State *L, const char *cls, const char *fmt, ...);
int luaio__oserror (lua_State *L, int uverr, const char *what);
void luaio__push_oserror (lua_State *L, int uverr, const char *what);
void luaio__check_self (lua_State *L, int idx, const char *tname);
void *luaio__checkclass (lua_State *L, int idx, const char *tname);
int luaio__oserror_at (lua_State *L, int uverr, const char *what,
                       const char *addr);
void luaio__push_oserror_at (lua_State *L, int uverr, const char *what,
                             const char *addr);
const char *luaio__push_hostport (lua_State *L, const char *ip, int port);
int luaio__argerror (lua_State *L, int arg, const char *fname,
                     const char *extramsg);
int luaio__typeerror (lua_State *L, int arg, const char *fname,
                      const char *tname);
const char *luaio__tocstring (lua_State *L, int idx);  /* NULL: has '\0' */
const char *luaio__checkcstring (lua_State *L, int arg, const char *fname);
void luaio__traceback_ex (lua_State *L, lua_State *L1, const char *msg,
                          int level, int globals);
void luaio__traceback (lua_State *L, lua_State *L1, const char *msg,
                       int level);      /* pushes, as luaL_traceback */
void luaio__errors_open (lua_State *L);


/* ---------------------------------------------------------- report.c */

void luaio__report (lua_State *L, luaio_Runtime *rt);  /* pops ctx table */
void luaio__queue_report (lua_State *L, luaio_Runtime *rt); /* pops ctx */
void luaio__report_msg (luaio_Runtime *rt, const char *msg);
void luaio__report_open (lua_State *L);


/* ---------------------------------------------------------- sched.c */

/* A ready-queue entry: what to run, with what. */
typedef struct Entry {
  RunFn run;
  void *p;
  int idx;
} Entry;

/*
** A subsystem's object on one of the runtime's hook lists: the pass-end
** list (called once when the pass that queued it ends: streams send
** what their tasks wrote), the open list (called at shutdown to close
** it: streams, servers, UDP sockets, processes, signal watches) or the
** writing list (objects with output still queued, counted in
** rt->wqueued; the hook is called when the run ends: see exit.c's
** luaio__end_writing).  The core unlinks a hook before it calls it.
** leak, if set, names the kind in the debug report of what was left
** open at loop close; where, in debug mode, is the anchor of a text
** saying where it was opened (0 = none), released by its owner.
*/
typedef struct Hook Hook;
typedef void (*HookFn) (luaio_Runtime *rt, Hook *h);
struct Hook {
  Hook *prev, *next;
  HookFn fn;
  const char *leak;
  int linked;
  int where;
};

typedef struct HookList {
  Hook *head, *tail;
} HookList;

void luaio__sched_init (luaio_Runtime *rt);
void luaio__sched_close (luaio_Runtime *rt);
void luaio__sched_stop (luaio_Runtime *rt);
void luaio__schedule (luaio_Runtime *rt, RunFn run, void *p, int idx);
void luaio__schedule_task (luaio_Runtime *rt, Task *t);
void luaio__kick (luaio_Runtime *rt);
int luaio__want_pass (luaio_Runtime *rt);
void luaio__hook (HookList *l, Hook *h, HookFn fn);  /* appends */
void luaio__unhook (HookList *l, Hook *h);           /* if linked */
void luaio__end_pass (luaio_Runtime *rt);   /* runs the pass-end hooks */
void luaio__close_hooks (luaio_Runtime *rt);  /* runs the open list's */

/* park/wake */

/* Tasks parked on one thing, in the order they came (intrusive: a task
   links itself through its wprev/wnext; park and wake link and unlink). */
struct WaitList {
  Task *head, *tail;
};

/*
** Abort hook of a parked task, called when the task is cancelled.  It
** returns 1 when it has arranged the task's wake-up itself (awaiting a
** future: the future was cancelled), 0 to let the core unpark the task
** and resume it with CancelledError.  The hook must undo the wait.
*/
typedef int (*AbortFn) (lua_State *L, luaio_Runtime *rt, Task *t);

Task *luaio__check_suspend (lua_State *L, const char *fname);
Task *luaio__check_suspend_G (lua_State *L, GState *G, const char *fname);
int luaio__park (lua_State *L, Task *t, WaitList *wl, AbortFn abort,
                 const char *what, const void *obj,
                 lua_KContext ctx, lua_KFunction k);
void luaio__resumed (lua_State *L);  /* raises a pending cancellation */
void luaio__resumed_G (lua_State *L, GState *G);
Task *luaio__resumed_task (lua_State *L);  /* checks, raises nothing */
int luaio__raise_cancel (lua_State *L, Task *t);
int luaio__can_suspend (lua_State *L);
void luaio__unpark (Task *t);
void luaio__wake (luaio_Runtime *rt, Task *t);
void luaio__cancel_parked (lua_State *L, Task *t);

/* Light userdata yielded by every luaio suspension. */
extern const char luaio__sentinel;
#define luaio__is_sentinel(L, i) \
  (lua_touserdata(L, i) == (void *)&luaio__sentinel)


/* ---------------------------------------------------------- timer.c */

/*
** A deadline.  run NULL: a sleeping task (p), woken when due; else p is
** scheduled with run, and p's first member is its heap index (an int:
** the position + 1, 0 = none), as a Task's heap field is for a task.
*/
typedef struct TimerEntry {
  uint64_t when;
  uint64_t seq;
  void *p;
  RunFn run;
} TimerEntry;

uint64_t luaio__now (luaio_Runtime *rt);
uint64_t luaio__real_after (double seconds);
int luaio__delay_ns (lua_State *L, int arg, const char *fname,
                    uint64_t *ns);
int luaio__heap_push (luaio_Runtime *rt, uint64_t when, RunFn run, void *p);
void luaio__heap_remove (luaio_Runtime *rt, int pos);
int luaio__move_due (luaio_Runtime *rt, uint64_t now);
void luaio__arm_timer (luaio_Runtime *rt);
void luaio__timer_open (lua_State *L);


/* ---------------------------------------------------------- waitlist.c */

void luaio__wake_first (WaitList *wl);
int luaio__wake_all (WaitList *wl);   /* returns how many */
void luaio__waitlist_open (lua_State *L);


/* ---------------------------------------------------------- exit.c */

void luaio__exit_watch (luaio_Runtime *rt);
void luaio__exit_unwatch (luaio_Runtime *rt);
void luaio__end_writing (luaio_Runtime *rt, double seconds,
                         const char *when);


/* ---------------------------------------------------------- runtime */

typedef struct Pooled {
  lua_State *co;
  int slot;                    /* its anchor */
} Pooled;

/* At most this many subsystems keep per-runtime state (luaio__ext). */
#define LUAIO_NEXT 8

/*
** A runtime: one event loop and what the core keeps for it.  Subsystems
** keep their own state on their objects, on the hook lists, or (once
** per runtime) in an ext slot under a key of their own.
*/
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
  uv_timer_t guard;            /* wakes uv_run during shutdown */
  int idle_on, timer_on;
  int open_handles;            /* libuv handles not yet closed */
  int own_handles;             /* of them, the runtime's own (not I/O) */
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
  Task *tasks;                 /* pending tasks (a list) */
  Task *main;
  /* counters: live objects, for tests and leak checks */
  lua_Integer ntasks, task_counter, nhandles, nrequests, nreports;
  /* Lua-side state: refs into the registry */
  int ref_R;                   /* per-runtime table (see loop.c) */
  int ref_loop;                /* the Loop userdata */
  int *slots, *freeslots;      /* anchors: registry slots, all / free */
  int nslots, nfree, slotcap;
  /* coroutines of finished tasks, for reuse: each keeps the anchor it got
     when first pooled, also while a task runs on it (so taking and
     returning one touches no table); pool_idle lists the free ones */
  Pooled *pool_idle;
  int pool_n;                  /* idle */
  int pool_owned;              /* anchored, idle or running a task */
  /* what subsystems registered */
  HookList pass_end;           /* to call when the pass ends (FIFO) */
  HookList open;               /* to close at shutdown */
  HookList writing;            /* with output still queued: shutdown
                                  waits for them (shutdown_timeout); then
                                  luaio__end_writing calls their hooks */
  size_t wqueued;              /* the bytes they queued, kept by them */
  uint64_t wdeadline;          /* until when those hooks may block */
  struct { const void *key; void *p; } ext[LUAIO_NEXT];
  /* flags */
  int threads_off;             /* shutdown cut other threads off: no
                                  cross-thread state is made (embed.c) */
  int running_depth;           /* inside luaio__run_until, luaio_run,
                                  run_until_complete or a drain */
  int closing, closed, debug;
  int interrupted;             /* Ctrl-C cancelled the main task */
  int fatal;                   /* drain failed: message in R.fatal */
  int oom;                     /* the ready queue could not grow */
  int body_failed;             /* set by a task body's continuation */
  int report_head;             /* reports delivered so far */
  int stop;                    /* main task done: end the drain pass */
  int eager_depth;             /* nested eager task starts */
  int has_handler, has_factory;
  int loop_ctx_object;          /* R.context is a Context object (ctx:run
                                  in a callback): new tasks copy its map */
  int cancels_pending;         /* tasks with cancel requests pending */
  int cancel_sweep;            /* debug mode: the heap index + 1 of the
                                  check for cancellations left pending */
  int cli;                     /* the CLI's loop: may nest one aio.run */
  luaio_Runtime *exit_next;    /* on exit.c's list of every runtime */
  int exit_seen;               /* exit.c's atexit handler did its part */
  uv_thread_t owner;           /* the thread that made it */
  luaio_ReportFn report;       /* a host's report function, or NULL */
  void *report_ud;
  double shutdown_timeout;
};


/* ---------------------------------------------------------- future.c */

enum { FUT_PENDING, FUT_DONE, FUT_FAILED, FUT_CANCELLED };

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
  unsigned char cbkind;        /* CB_NONE, CB_ONE, CB_LIST (user value 2),
                                  CB_GATHER */
  int nres;                    /* -1: packed table; else 0 or 1 */
  int anchor;                  /* its anchor (registry slot), 0 = none */
  int ncb;                     /* callback entries still queued */
  unsigned seq;                /* registration counter: callbacks+waiters */
  unsigned loop_id;            /* runtime this binds to, 0 = not yet */
  unsigned cbseq;              /* sequence of a lone done callback */
  void *cbgather;              /* the lone callback's Gather when it is a
                                  gather state (gather.c), else NULL */
  WaitList waiters;            /* tasks awaiting this */
};

/* CB_GATHER: the lone callback is the gather state cbgather, named by
   its pointer alone (user value 2 is nil): a pending task's, when the
   gather runs in the task's loop (gather.c keeps the state anchored). */
enum { CB_NONE, CB_ONE, CB_LIST, CB_GATHER };

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
void luaio__future_settle (lua_State *L, luaio_Runtime *rt, int idx, int st,
                           int n);
void luaio__settle (lua_State *L, luaio_Runtime *rt, Future *f, int idx,
                    int st, int n);       /* idx absolute */
void luaio__future_add_callback (lua_State *L, Future *f, int idx,
                                 int fnidx, void *gather, const char *fname);
Future *luaio__new_future (lua_State *L, luaio_Runtime *rt);
void luaio__future_methods (lua_State *L);
int luaio__future_gc (lua_State *L);
void luaio__report_unretrieved (lua_State *L, luaio_Runtime *rt);
void luaio__future_open (lua_State *L);


/* ---------------------------------------------------------- gather.c */

void luaio__gather_done (lua_State *L, luaio_Runtime *rt, int gidx, int fidx);
int luaio__gather_count (void *gather, Future *f);
int luaio__gather_hold (lua_State *L, void *gather, Task *t, int idx);
void luaio__gather_release (lua_State *L, void *gather);
void luaio__gather_push (lua_State *L, void *gather);
void luaio__gather_open (lua_State *L);


/* ---------------------------------------------------------- task.c */

enum { T_NEW, T_SCHEDULED, T_RUNNING, T_PARKED, T_DONE };

/*
** A Task.  User values: 1 the coroutine while pending (nothing when it
** is a pooled one: its anchor, slot, keeps it), then the result as a
** Future's; 2 as a Future; 3 the context (ContextVar values,
** copy-on-write) unless it is the loop's (own_ctx 0: nothing stored);
** 4 extras, a table made on demand: name, cancel message, traceback.
** The loop keeps every pending task alive: its coroutine holds it (the
** first argument of task_main) and is anchored (slot), else the task
** has an anchor of its own from the start.  luaio__push_task pushes one
** from its pointer, anchoring it on first use (f.anchor).
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
  unsigned char cancel_warned; /* debug mode warned it ignores a cancel */
  int cancelling;              /* cancel requests not yet uncancelled */
  int heap;                    /* index in the timer heap + 1, 0 = none */
  uint64_t cancel_since;       /* uv_hrtime of the first of them, 0 = none */
  unsigned wseq;               /* registration order on a future */
  int slot;                    /* its pooled coroutine's anchor, 0 = none */
  lua_Integer id;              /* "Task-<id>" */
  lua_Integer parent;          /* id of the creating task, 0 = none */
  lua_State *co;               /* NULL once done */
  luaio_Runtime *rt;           /* valid while pending */
  Task *prev, *next;           /* pending tasks of rt */
  Task *wprev, *wnext;         /* the wait list it is parked on */
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
void luaio__push_task (lua_State *L, luaio_Runtime *rt, Task *t);
int luaio__create_task (lua_State *L, luaio_Runtime *rt, int fidx, int n);
void luaio__context_copy (lua_State *L);
int luaio__task_main (lua_State *co);
void luaio__task_kill (lua_State *L, luaio_Runtime *rt, Task *t);
int luaio__task_cancel (lua_State *L, Task *t, int msgidx);
void luaio__cancel_all (lua_State *L, luaio_Runtime *rt);
void luaio__abandon_all (lua_State *L, luaio_Runtime *rt);
void luaio__extras (lua_State *L, Task *t, int idx);  /* +1 table */
void luaio__task_open (lua_State *L);


/* ---------------------------------------------------------- handle.c */

enum { H_PENDING, H_RAN, H_CANCELLED };

/*
** A call_soon / call_later handle.  User values: 1 the function, 2.. its
** arguments.
*/
struct Handle {
  int heap;                    /* index in the timer heap + 1, 0 = none
                                  (first: timer.c sets it) */
  unsigned char state;
  unsigned char timer;         /* call_later/call_at */
  int nargs;
  int anchor;
  uint64_t when;               /* deadline in clock ns (timers) */
  double at;                   /* the deadline as given, in seconds */
  luaio_Runtime *rt;           /* valid while pending */
};

void luaio__call_reporting (lua_State *L, luaio_Runtime *rt, int nargs,
                            const char *key, int objidx);
void luaio__handle_open (lua_State *L);


/* ---------------------------------------------------------- coro.c */

void luaio__coro_open (lua_State *L);


/* ---------------------------------------------------------- signal.c */

int luaio__checksignal (lua_State *L, int arg, const char *fname);
int luaio__watch_sigint (luaio_Runtime *rt);
void luaio__unwatch_sigint (luaio_Runtime *rt);
void luaio__signal_open (lua_State *L);


/* ---------------------------------------------------------- sigpipe.c */

void luaio__sigpipe_open (lua_State *L);


/* ---------------------------------------------------------- queue.c */

void luaio__queue_open (lua_State *L);


/* ---------------------------------------------------------- stream*.c */

/* (stream.h is the streams' own header; these are for other subsystems) */
void luaio__stream_open (lua_State *L);
void *luaio__stream_pipe (luaio_Runtime *rt);
uv_stream_t *luaio__stream_handle (void *s);
void luaio__push_stream_end (lua_State *L, void *s, int reader);
void luaio__stream_discard (void *s);
int luaio__stream_lendable (lua_State *L, int idx, int reader,
                            const char **why);
void luaio__stream_hand_over (lua_State *L, int idx);
int luaio__push_sockaddr (lua_State *L, const struct sockaddr_storage *a);


/* ------------------------------------ udp.c, dns.c, fs.c, thread.c, process.c */

/* (request.h declares the request tier that dns, fs, thread and process
   use; tls_abi.h the TLS engine's link to the streams) */
void luaio__udp_open (lua_State *L);
void luaio__dns_open (lua_State *L);
void luaio__fs_open (lua_State *L);
void luaio__thread_open (lua_State *L);
void luaio__process_open (lua_State *L);
void luaio__procinfo_open (lua_State *L);  /* procinfo.c */


/* ---------------------------------------------------------- http_parser.c */

void luaio__http_parser_open (lua_State *L);


/* ---------------------------------------------------------- ws_frame.c */

void luaio__ws_frame_open (lua_State *L);


/* ---------------------------------------------------------- poll.c */

void luaio__poll_open (lua_State *L);


/* ---------------------------------------------------------- luv.c */

uv_loop_t *luaio__luv_loop (lua_State *L, int idx);
void luaio__luv_borrow (lua_State *L, luaio_Runtime *rt, int idx);


/* ---------------------------------------------------------- loop.c */
void luaio__run_while (luaio_Runtime *rt, uint64_t deadline,
                       int (*busy) (luaio_Runtime *rt));

luaio_Runtime *luaio__new_runtime (lua_State *L, uv_loop_t *loop);
void luaio__free_runtime (lua_State *L, luaio_Runtime *rt);
int luaio__run_until (lua_State *L, luaio_Runtime *rt, Task *main);
void luaio__shutdown (lua_State *L, luaio_Runtime *rt);
void luaio__loop_open (lua_State *L);


/* ---------------------------------------------------- embed_capi.c, embed.c */

void luaio__capi_open (lua_State *L);  /* publishes the C API's table */
void luaio__embed_set_error (luaio_Runtime *rt, const char *msg);
int luaio__embed_has (luaio_Runtime *rt);
int luaio__embed_busy (luaio_Runtime *rt);     /* shutdown waits for it */
void luaio__embed_detach (luaio_Runtime *rt);  /* threads' calls fail */
void luaio__embed_free (luaio_Runtime *rt);    /* once handles closed */

#endif
