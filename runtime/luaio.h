/*
** luaio.h -- the public C interface of luaio: asyncio for Lua on libuv.
**
** This is the only header a host needs.  The runtime is opaque.  Every
** entry point is protected: no Lua error ever longjmps through the host's
** frames; failures return LUAIO_ERROR and luaio_error() says why.
** Threads: everything here must be called on the loop's thread, except
** the functions marked "any thread".  See docs/embedding.md.
*/
#ifndef luaio_h
#define luaio_h

#include <stddef.h>

#include <uv.h>

#include "lua.h"

#define LUAIO_VERSION "0.1.0"

#if defined(_WIN32)
#define LUAIO_API __declspec(dllexport)
#else
#define LUAIO_API __attribute__((visibility("default")))
#endif

#define LUAIO_OK 0
#define LUAIO_ERROR 1

typedef struct luaio_Runtime luaio_Runtime;
typedef struct luaio_Pending luaio_Pending;

/*
** A callback that runs on the loop thread with a Lua thread L to work on.
** For luaio_resolve: it pushes the results of the awaited operation and
** returns how many (it may raise: the error is raised in the task); it
** runs exactly once, with L == NULL when nobody will receive the values
** (then it only frees: no Lua, return 0).  For luaio_call_threadsafe:
** whatever it returns is ignored; an error goes to the exception handler.
*/
typedef int (*luaio_Callback) (lua_State *L, void *ud);

/* Receives every exception report (default: written to stderr). */
typedef void (*luaio_ReportFn) (luaio_Runtime *rt, const char *message,
                                void *ud);

/*
** A lua_Alloc for many small objects (the CLI's; a host may use it too):
**   luaio_Allocator *a = luaio_allocator_new();
**   lua_State *L = lua_newstate(luaio_alloc, a);
**   ... lua_close(L); luaio_allocator_free(a);
** Blocks up to 1 KiB come from per-size free lists (no malloc header,
** no fragmentation; kept for reuse); larger ones from malloc.  One
** allocator per lua_State; not thread-safe.
*/
typedef struct luaio_Allocator luaio_Allocator;
LUAIO_API luaio_Allocator *luaio_allocator_new (void);
LUAIO_API void luaio_allocator_free (luaio_Allocator *a);
LUAIO_API void *luaio_alloc (void *ud, void *ptr, size_t osize, size_t nsize);

/* The core module: require "luaio.core" (what `luaio.core.so` exports). */
LUAIO_API int luaopen_luaio_core (lua_State *L);

/*
** [-0, +0] Makes `require "luaio"` (and its parts, and luaio.core) work in
** L with no LUA_PATH: the Lua library is compiled into libluaio.
** luaio_open does this itself.
*/
LUAIO_API void luaio_preload (lua_State *L);


/* ---------------------------------------------------------- lifetime */

/*
** Opens a runtime.  L: an existing state (luaio's library is loaded into
** it: scripts use `local aio = require "luaio"`, found without LUA_PATH),
** or NULL for a new state with the standard libraries (closed by
** luaio_close).
** loop: the host's loop, or NULL for a private one.  On failure returns
** NULL and writes a message into err (errlen bytes, may be 0).
** One runtime per lua_State at a time.  Signal dispositions are never
** changed.
*/
LUAIO_API luaio_Runtime *luaio_open (lua_State *L, uv_loop_t *loop,
                                     char *err, size_t errlen);

/*
** Closes the runtime: cancels every task, then runs the loop until the
** tasks have unwound, the holds are released, every pending is resolved
** and the streams have written what they queued -- all within
** shutdown_timeout (5 s, or LUAIO_SHUTDOWN_TIMEOUT seconds when
** luaio_open ran); then closes luaio's handles and frees everything;
** closes the state if luaio made it, and the loop if it is private (a
** host's handles still open on it then are closed, with a report).
** A hold still taken at the bound: LUAIO_ERROR, nothing freed (tasks
** cancelled), close again once released.  A pending not resolved by
** then is orphaned: its later resolve discards it.  Called from inside a
** task or callback, or after lua_close of its state: LUAIO_ERROR.  With a
** borrowed loop, the host's own callbacks may run meanwhile.  NULL:
** LUAIO_ERROR.  Call it before lua_close on a state the host owns.
*/
LUAIO_API int luaio_close (luaio_Runtime *rt);

LUAIO_API lua_State *luaio_state (luaio_Runtime *rt);

/* The runtime running in L (embedded, the CLI's, or aio.run's), or NULL. */
LUAIO_API luaio_Runtime *luaio_running (lua_State *L);
LUAIO_API uv_loop_t *luaio_loop (luaio_Runtime *rt);

/* The message of the last failure of an entry point (valid until the
   next); with NULL, a fixed message. */
LUAIO_API const char *luaio_error (luaio_Runtime *rt);

/* Replaces the default exception report (stderr); NULL restores it. */
LUAIO_API void luaio_set_report (luaio_Runtime *rt, luaio_ReportFn fn,
                                 void *ud);


/* ---------------------------------------------------------- running code */

/*
** Loads a chunk (code, or the file at path) and starts it as a task.
** Errors while loading are returned; errors while it runs are the task's
** (reported through the exception handler if nobody awaits it).
*/
LUAIO_API int luaio_dostring (luaio_Runtime *rt, const char *code,
                              const char *chunkname);
LUAIO_API int luaio_dofile (luaio_Runtime *rt, const char *path);

/*
** [-(nargs+1), +0] Starts a task running the function below the nargs
** arguments on top of luaio_state(rt).  If the stack holds fewer values:
** LUAIO_ERROR, nothing popped.
*/
LUAIO_API int luaio_spawn (luaio_Runtime *rt, int nargs);

/* The number of tasks not yet finished. */
LUAIO_API int luaio_pending_tasks (luaio_Runtime *rt);


/* ---------------------------------------------------------- the loop */

/*
** Runs the loop (uv_run with mode).  UV_RUN_DEFAULT returns when nothing
** is left to do (no task waits on a timer or I/O and the host has no
** active handle).  Returns LUAIO_OK, or LUAIO_ERROR if the scheduler
** failed (out of memory) or it is called from inside the loop.
*/
LUAIO_API int luaio_run (luaio_Runtime *rt, uv_run_mode mode);

/*
** A foreign event loop (GLib, Qt, epoll, poll): wait until
** luaio_backend_fd(rt) is readable or luaio_backend_timeout(rt)
** milliseconds passed (-1: no timeout, 0: work is ready now), then call
** luaio_step(rt), which never blocks.
*/
LUAIO_API int luaio_backend_fd (luaio_Runtime *rt);
LUAIO_API int luaio_backend_timeout (luaio_Runtime *rt);
LUAIO_API int luaio_step (luaio_Runtime *rt);


/* ---------------------------------------------------------- async C */

/*
** An async C function, called from Lua in a task:
**
**   static int l_compute (lua_State *L) {
**     luaio_Pending *p = luaio_pending(L);   raises if it cannot suspend
**     ... start work; later, from its completion: luaio_resolve(p, push, ud)
**     return luaio_await(L, p);               suspends the task
**   }
**
** Check the arguments before luaio_pending, allocate after it.
** luaio_pending raises a Lua error (it is called from Lua) when the caller
** is not a task that may suspend.  After luaio_await, the task resumes
** once luaio_resolve is called: push(L, ud) then runs on the task's thread
** and its results are the function's.  luaio_resolve must be called
** exactly once per pending, and push (may be NULL) then runs exactly
** once: delivering, or with L == NULL when the task was cancelled
** (before or after the resolve) or the runtime closed -- free ud there.
** On cancel before the resolve: the on_cancel hook (if set) runs at once,
** inside t:cancel(), and may call luaio_resolve itself (push then runs
** at once, discarding); luaio_await raises CancelledError in the task.
*/
LUAIO_API luaio_Pending *luaio_pending (lua_State *L);
LUAIO_API int luaio_await (lua_State *L, luaio_Pending *p);
LUAIO_API void luaio_pending_on_cancel (luaio_Pending *p,
                                        void (*fn) (void *ud), void *ud);
/* Any thread, until p is resolved: whether nobody will receive its values. */
LUAIO_API int luaio_pending_cancelled (luaio_Pending *p);
LUAIO_API void luaio_resolve (luaio_Pending *p, luaio_Callback push,
                              void *ud);

/*
** Any thread: luaio_resolve, done on the loop thread (push runs there,
** once); take a luaio_hold for it first.  After luaio_close (or the end
** of a runtime no host opened) orphaned p: LUAIO_ERROR, p freed, push not
** called (ud is the caller's).
*/
LUAIO_API int luaio_resolve_threadsafe (luaio_Pending *p,
                                        luaio_Callback push, void *ud);

/*
** Any thread: fn(L, ud) runs soon on the loop thread, like a call_soon
** callback (not a task: it cannot suspend), e.g. to set a Future's result.
** Once luaio_close has begun freeing rt (or a runtime no host opened is
** ending), or before a runtime no host opened had a luaio_hold or
** luaio_pending: LUAIO_ERROR, fn not called.
*/
LUAIO_API int luaio_call_threadsafe (luaio_Runtime *rt, luaio_Callback fn,
                                     void *ud);

/*
** Loop thread: while a hold is taken, the loop stays alive (luaio_run with
** UV_RUN_DEFAULT does not return) even if nothing of its own is pending --
** e.g. while a host thread will still call luaio_call_threadsafe.  Holds
** count; luaio_release gives one back.  luaio_close waits for them (and
** refuses if one is still taken at its bound); the end of a runtime no
** host opened (aio.run's, the CLI's) waits for them as for its tasks,
** then closes anyway, reported.  In such a runtime the first luaio_hold
** (or luaio_pending) makes the state the cross-thread calls use.
*/
LUAIO_API void luaio_hold (luaio_Runtime *rt);
LUAIO_API void luaio_release (luaio_Runtime *rt);


/* ---------------------------------------------------------- task handles */

/* What luaio_task_status says of a Task. */
#define LUAIO_NOT_A_TASK (-1)
#define LUAIO_TASK_PENDING 0
#define LUAIO_TASK_DONE 1        /* finished with results */
#define LUAIO_TASK_FAILED 2      /* finished with an error */
#define LUAIO_TASK_CANCELLED 3

/*
** [-(nargs+1), +1] luaio_spawn that pushes the new Task on
** luaio_state(rt) (on failure: pops the function and its arguments,
** pushes nothing; a bad nargs leaves the stack as it is).  Keep it on the stack (or luaL_ref it) to wait for it.
*/
LUAIO_API int luaio_spawn_task (luaio_Runtime *rt, int nargs);

/* [-0, +1] luaio_dostring / luaio_dofile that push the Task (see above). */
LUAIO_API int luaio_dostring_task (luaio_Runtime *rt, const char *code,
                                   const char *chunkname);
LUAIO_API int luaio_dofile_task (luaio_Runtime *rt, const char *path);

/*
** [-0, +0] The state of the Task at idx of L (a LUAIO_TASK_ value), or
** LUAIO_NOT_A_TASK.  Needs no runtime: works after luaio_close, which
** leaves every task finished (most of them cancelled).
*/
LUAIO_API int luaio_task_status (lua_State *L, int idx);

/*
** [-0, +(n|1)] A finished Task's outcome, pushed on L: LUAIO_OK and its
** n results (*nresults = n; nresults may be NULL), or LUAIO_ERROR and one
** value: its error, its CancelledError, or a message when idx is not a
** finished Task.  Its error counts as retrieved (no "never retrieved"
** report).
*/
LUAIO_API int luaio_task_result (lua_State *L, int idx, int *nresults);

/*
** [-0, +(n|1)] Runs the loop (as luaio_run) until the Task at idx of
** luaio_state(rt) finishes, then luaio_task_result.  Also LUAIO_ERROR
** (one message pushed, and in luaio_error) when the loop has nothing
** left that could finish the task (a deadlock), the scheduler failed,
** the task belongs to another runtime, or it is called from inside the
** runtime.  With a borrowed loop, the host's callbacks run meanwhile.
*/
LUAIO_API int luaio_run_until_complete (luaio_Runtime *rt, int idx,
                                        int *nresults);


/* ---------------------------------------------------------- C modules */

/*
** A C module (a `require`-able .so) must not link libluaio: the runtime
** that loaded it -- the luaio CLI, luaio.core in stock lua5.4, or a host
** -- publishes its C API as a table of functions in the registry
** (light userdata under LUAIO_CAPI_KEY, set by luaopen_luaio_core).  A
** module includes luaio_module.h instead of calling these directly:
** its luaio_module_init(L, name) fetches the table, and macros route
** luaio_pending, luaio_resolve ... through it.  Members are only ever
** appended; `size` says how many the runtime has.
*/
#define LUAIO_CAPI_KEY "luaio.capi"
#define LUAIO_CAPI_VERSION 1

typedef struct luaio_CAPI {
  int version;                 /* LUAIO_CAPI_VERSION of the runtime */
  size_t size;                 /* sizeof(luaio_CAPI) in the runtime */
  const char *luaio_version;   /* LUAIO_VERSION of the runtime */
  luaio_Runtime *(*running) (lua_State *L);
  lua_State *(*state) (luaio_Runtime *rt);
  uv_loop_t *(*loop) (luaio_Runtime *rt);
  const char *(*error) (luaio_Runtime *rt);
  luaio_Pending *(*pending) (lua_State *L);
  int (*await) (lua_State *L, luaio_Pending *p);
  void (*pending_on_cancel) (luaio_Pending *p, void (*fn) (void *ud),
                             void *ud);
  int (*pending_cancelled) (luaio_Pending *p);
  void (*resolve) (luaio_Pending *p, luaio_Callback push, void *ud);
  int (*resolve_threadsafe) (luaio_Pending *p, luaio_Callback push,
                             void *ud);
  int (*call_threadsafe) (luaio_Runtime *rt, luaio_Callback fn, void *ud);
  void (*hold) (luaio_Runtime *rt);
  void (*release) (luaio_Runtime *rt);
  int (*spawn) (luaio_Runtime *rt, int nargs);
  int (*spawn_task) (luaio_Runtime *rt, int nargs);
  int (*task_status) (lua_State *L, int idx);
  int (*task_result) (lua_State *L, int idx, int *nresults);
  int (*wait_fd) (lua_State *L, int fd, int events, double timeout,
                  lua_KContext ctx, lua_KFunction k);
} luaio_CAPI;

/* The table of this runtime (what luaopen_luaio_core publishes). */
LUAIO_API const luaio_CAPI *luaio_capi (void);


/* ---------------------------------------------------------- descriptors */

#define LUAIO_READABLE 1
#define LUAIO_WRITABLE 2

/*
** Suspends the running task until fd is readable or writable (events:
** LUAIO_READABLE or LUAIO_WRITABLE), as aio.wait_readable/wait_writable:
** called from a C function in a task, as its return,
**
**   return luaio_wait_fd(L, fd, LUAIO_READABLE, 5.0, ctx, step);
**
** it yields; once fd is ready, k(L, LUA_YIELD, ctx) runs (a lua_KFunction
** continuation, on the same stack) and its results are the function's
** (k NULL: the result is true).  timeout in seconds, < 0 for none; when
** it passes, TimeoutError is raised in the task; cancelling the task
** raises CancelledError there; a descriptor closed meanwhile raises
** OSError "fd N was closed while waiting" -- so keep what must be undone
** on a userdata with __gc/__close, not in locals of the C frame.
** libuv puts fd in non-blocking mode.  Loop thread; raises outside a task.
*/
LUAIO_API int luaio_wait_fd (lua_State *L, int fd, int events,
                             double timeout, lua_KContext ctx,
                             lua_KFunction k);


#endif
