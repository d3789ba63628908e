/*
** exit.c -- what a process that exits in the middle of a pass still does
** at its end.  Small writes wait for the end of their pass (the streams'
** pass-end hooks); a script that writes and then calls os.exit() (C's
** exit) would lose them where asyncio and Node, which try the socket at
** once, lose nothing.  Every runtime is on a process-wide list, and an
** atexit handler runs the pass-end hooks of the exiting thread's
** runtimes (the streams offer their pending bytes to their sockets:
** what the kernel takes goes out, nothing waits).  Other threads'
** runtimes are left alone: their loops may be running.
*/
#include <stdlib.h>

#include "internal.h"

static uv_once_t once = UV_ONCE_INIT;
static uv_mutex_t lock;
static luaio_Runtime *runtimes;       /* linked by exit_next */

static void at_exit (void) {
  uv_thread_t self = uv_thread_self();
  luaio_Runtime *rt;
  uv_mutex_lock(&lock);
  for (rt = runtimes; rt != NULL; rt = rt->exit_next)
    if (rt->pass_end.head != NULL && uv_thread_equal(&rt->owner, &self))
      luaio__end_pass(rt);
  uv_mutex_unlock(&lock);
}

static void init (void) {
  uv_mutex_init(&lock);
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
