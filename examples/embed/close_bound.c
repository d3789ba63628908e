/*
** close_bound.c -- luaio_close on a private loop is bounded (5 s) even
** when an async C operation has no cancel hook to stop it (here a 60 s
** timer).  Past the bound, luaio closes the handle the host left on its
** loop and reports it; the host frees its data and still resolves the
** pending, which calls push at once with L == NULL.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "lua.h"
#include "lauxlib.h"
#include "luaio.h"

typedef struct Delay {
  uv_timer_t timer;
  luaio_Pending *pending;
} Delay;

static Delay *left;            /* the operation still running */

static int push (lua_State *L, void *ud) {
  Delay *d = (Delay *)ud;
  printf("push: %s\n", L == NULL ? "discarded" : "delivered");
  if (uv_is_closing((uv_handle_t *)&d->timer)) free(d);   /* luaio did */
  else uv_close((uv_handle_t *)&d->timer, (uv_close_cb)free);
  left = NULL;
  return 0;
}

static void on_timer (uv_timer_t *t) {
  Delay *d = (Delay *)t->data;
  luaio_resolve(d->pending, push, d);
}

/* host.delay(ms): no cancel hook. */
static int l_delay (lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaio_Pending *p = luaio_pending(L);
  Delay *d = (Delay *)malloc(sizeof *d);
  if (d == NULL) return luaL_error(L, "out of memory");
  d->pending = p;
  uv_timer_init(luaio_loop(luaio_running(L)), &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, on_timer, (uint64_t)ms, 0);
  left = d;
  return luaio_await(L, p);
}

static void report (luaio_Runtime *rt, const char *msg, void *ud) {
  (void)rt; (void)ud;
  printf("report: %s\n", msg);
}

int main (void) {
  char err[256];
  luaio_Runtime *rt;
  uint64_t t0;
  double took;
  alarm(15);                   /* a hang fails the test */
  unsetenv("LUAIO_SHUTDOWN_TIMEOUT");
  rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  luaio_set_report(rt, report, NULL);
  lua_register(luaio_state(rt), "delay", l_delay);
  luaio_dostring(rt, "delay(60000)", "=script");
  luaio_run(rt, UV_RUN_NOWAIT);
  t0 = uv_hrtime();
  printf("close: %d\n", luaio_close(rt));
  took = (double)(uv_hrtime() - t0) / 1e9;
  printf("close took 4.5 to 6 s: %s\n", took >= 4.5 && took < 6 ? "yes" : "no");
  if (left != NULL) luaio_resolve(left->pending, push, left);
  return 0;
}
