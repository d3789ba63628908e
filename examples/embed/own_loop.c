/*
** own_loop.c -- a host that runs luaio scripts on its own uv loop, next to
** its own timers.  Build: see docs/embedding.md (or `make embed-test`).
*/
#include <stdio.h>
#include <uv.h>
#include "luaio.h"

static int host_ticks = 0;

static void on_host_timer (uv_timer_t *t) {
  printf("host timer %d\n", ++host_ticks);
  fflush(stdout);
  if (host_ticks == 3) uv_timer_stop(t);
}

int main (void) {
  uv_loop_t loop;
  uv_timer_t timer;
  char err[256];
  luaio_Runtime *rt;
  uv_loop_init(&loop);
  uv_timer_init(&loop, &timer);
  uv_timer_start(&timer, on_host_timer, 25, 50);   /* 25, 75, 125 ms */
  rt = luaio_open(NULL, &loop, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  if (luaio_dostring(rt,
        "local aio = require 'luaio'\n"
        "for i = 1, 3 do\n"
        "  aio.sleep(0.05)\n"
        "  print('script step ' .. i)\n"
        "  io.stdout:flush()\n"
        "end\n", "=script") != LUAIO_OK) {
    fprintf(stderr, "%s\n", luaio_error(rt));
    return 1;
  }
  luaio_run(rt, UV_RUN_DEFAULT);       /* until the script and the timer end */
  printf("tasks left: %d\n", luaio_pending_tasks(rt));
  luaio_close(rt);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop);
}
