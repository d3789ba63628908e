/*
** exit.c -- the end of a run's writes, and what a process that exits in
** the middle of a run still does at its end.
**
** Writes still queued when a run ends: shutdown (loop.c) runs the loop
** until the objects on the writing list (streams with queued bytes) have
** written them, or shutdown_timeout passes; then luaio__end_writing has
** each write what it can without the loop and close, and one report says
** what will not be sent.
**
** exit(): a script that writes and then calls os.exit() (C's exit) would
** lose what its streams hold -- small writes wait for the end of their
** pass (the pass-end hooks), larger ones in libuv's queue for a loop
** that will not run again -- where Node, which keeps the process alive
** until end() has flushed, loses nothing.  Every runtime is on a
** process-wide list, and an atexit handler, for each runtime of the
** exiting thread, runs its pass-end hooks (the streams offer their
** pending bytes to their sockets), then luaio__end_writing with up to
** shutdown_timeout to block in.  It never runs the loop.  Other threads'
** runtimes are left alone: their loops may be running.
*/
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static luaio_Runtime *runtimes;       /* linked by exit_next */

/*
** rt's loop will not write again: each hook on its writing list writes
** what is queued, without the loop, blocking until `seconds` from now
** (shared), and closes; those that could not write it all are on the
** list again, counting what is left, and one report (at `when`; NULL:
** none) says how much will not be sent.
*/
void luaio__end_writing (luaio_Runtime *rt, double seconds,
                         const char *when) {
  HookList l = rt->writing;
  Hook *h;
  char msg[200];
  int n = 0;
  if (l.head == NULL) return;
  rt->writing.head = rt->writing.tail = NULL;
  rt->wdeadline = luaio__real_after(seconds);
  while ((h = l.head) != NULL) {
    luaio__unhook(&l, h);
    h->fn(rt, h);
  }
  for (h = rt->writing.head; h != NULL; h = h->next) n++;
  if (n == 0 || when == NULL) return;
  snprintf(msg, sizeof msg, "%d stream(s) still writing %s: %zu bytes not "
           "sent (gave up after %g s, the shutdown_timeout)", n, when,
           rt->wqueued, rt->shutdown_timeout);
  luaio__report_msg(rt, msg);
}

/*
** For each runtime of the exiting thread, once.  A report runs Lua code
** (the exception handler), which may make or free a runtime: the lock
** is recursive, and the walk starts again after each runtime.
*/
static void at_exit (void) {
  uv_thread_t self = uv_thread_self();
  luaio_Runtime *rt;
  uv_mutex_lock(&lock);
  for (rt = runtimes; rt != NULL; ) {
    if (rt->exit_seen || !uv_thread_equal(&rt->owner, &self)) {
      rt = rt->exit_next;
      continue;
    }
    rt->exit_seen = 1;
    if (rt->pass_end.head != NULL) luaio__end_pass(rt);
    /* closed (the Lua state is gone, or the loop is shutting down): no
       report; on a host's loop, which may be gone, nothing more */
    if (!rt->closed)
      luaio__end_writing(rt, rt->shutdown_timeout, "at exit");
    else if (rt->owns_loop)
      luaio__end_writing(rt, rt->shutdown_timeout, NULL);
    rt = runtimes;
  }
  uv_mutex_unlock(&lock);
}

static void init (void) {
  uv_mutex_init_recursive(&lock);
  atexit(at_exit);
}

/* rt joins the list; its owner is the calling thread. */
void luaio__exit_watch (luaio_Runtime *rt) {
  uv_once(&once, init);
  rt->owner = uv_thread_self();
  uv_mutex_lock(&lock);
  rt->exit_next = runtimes;
  runtimes = rt;
  uv_mutex_unlock(&lock);
}

/* rt leaves the list (it is being freed). */
void luaio__exit_unwatch (luaio_Runtime *rt) {
  luaio_Runtime **pp;
  uv_mutex_lock(&lock);
  for (pp = &runtimes; *pp != NULL; pp = &(*pp)->exit_next)
    if (*pp == rt) { *pp = rt->exit_next; break; }
  uv_mutex_unlock(&lock);
}
