/*
** foreign_loop.c -- a host with its own poll() loop: it waits on luaio's
** backend descriptor with luaio's timeout, then steps luaio without
** blocking.  No fixed-interval polling.
*/
#include <poll.h>
#include <stdio.h>
#include <uv.h>
#include "luaio.h"

int main (void) {
  char err[256];
  int polls = 0;
  luaio_Runtime *rt = luaio_open(NULL, NULL, err, sizeof err);
  if (rt == NULL) { fprintf(stderr, "%s\n", err); return 1; }
  luaio_dostring(rt,
    "local aio = require 'luaio'\n"
    "local t0 = aio.time()\n"
    "aio.gather({function() aio.sleep(0.05) print('a') end,\n"
    "            function() aio.sleep(0.02) print('b') end})\n"
    "print('slept together:', aio.time() - t0 < 0.09)\n", "=script");
  while (luaio_pending_tasks(rt) > 0) {
    struct pollfd pfd;
    pfd.fd = luaio_backend_fd(rt);
    pfd.events = POLLIN;
    poll(&pfd, 1, luaio_backend_timeout(rt));   /* the host's own wait */
    luaio_step(rt);
    polls++;
  }
  printf("few polls: %s\n", polls < 50 ? "yes" : "no");
  luaio_close(rt);
  return 0;
}
