/*
** loadgen.c -- W4 load generator: C connections to 127.0.0.1:PORT, each
** sending a MSG-byte message and waiting for it to come back, for SECS
** seconds (after WARM seconds of warm-up).  Prints
**   RESULT <round trips/s> <p50 us> <p99 us>
** Usage: loadgen PORT [CONNS=100] [SECS=5] [MSG=64] [WARM=1]
** (loadgen_tls: the same over TLS; the handshakes happen in the warm-up.)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

typedef struct Out {
  uv_write_t req;
  char data[1];
} Out;

static int msg = 64, conns = 100;
static uint64_t t_start, t_measure, t_end;
static char *payload;
static uint64_t *lat;
static size_t nlat, caplat;
static uint64_t done;
static uv_loop_t *loop;

static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  Conn *c = (Conn *)h->data;
  (void)hint;
  b->base = c->rbuf;
  b->len = sizeof c->rbuf;
}

static void record (uint64_t ns) {
  if (nlat == caplat) {
    caplat = caplat ? caplat * 2 : 1 << 20;
    lat = (uint64_t *)realloc(lat, caplat * sizeof *lat);
  }
  lat[nlat++] = ns;
}

static void on_write (uv_write_t *w, int status) {
  (void)status;
  free(w);
}

/* uv_try_write first; what the socket does not take is copied and queued. */
void lg_write (Conn *c, const char *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  Out *o;
  int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r == (int)n) return;
  if (r > 0) { p += r; n -= (size_t)r; }
  o = (Out *)malloc(sizeof(Out) + n);
  memcpy(o->data, p, n);
  b = uv_buf_init(o->data, (unsigned)n);
  uv_write(&o->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

void lg_ready (Conn *c) {
  c->sent_at = uv_hrtime();
  tp_send(c, payload, (size_t)msg);
}

static void finish (Conn *c) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, NULL);
}

static void on_read (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = (Conn *)s->data;
  if (n < 0) { finish(c); return; }
  c->got += tp_input(c, b->base, (size_t)n);
  if (c->got >= (size_t)msg) {
    uint64_t now = uv_hrtime();
    c->got -= (size_t)msg;
    if (now >= t_measure) { done++; record(now - c->sent_at); }
    if (now >= t_end) { finish(c); return; }
    lg_ready(c);
  }
}

static void on_connect (uv_connect_t *r, int status) {
  Conn *c = (Conn *)r->data;
  if (status < 0) { fprintf(stderr, "connect: %s\n", uv_strerror(status)); exit(1); }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  tp_start(c);
}

static int cmp (const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main (int argc, char **argv) {
  struct sockaddr_in addr;
  double secs = 5, warm = 1;
  int i, port;
  if (argc < 2) { fprintf(stderr, "usage: %s PORT [CONNS SECS MSG WARM]\n", argv[0]); return 2; }
  port = atoi(argv[1]);
  if (argc > 2) conns = atoi(argv[2]);
  if (argc > 3) secs = atof(argv[3]);
  if (argc > 4) msg = atoi(argv[4]);
  if (argc > 5) warm = atof(argv[5]);
  payload = (char *)malloc((size_t)msg);
  memset(payload, 'x', (size_t)msg);
  tp_setup();
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", port, &addr);
  t_start = uv_hrtime();
  t_measure = t_start + (uint64_t)(warm * 1e9);
  t_end = t_measure + (uint64_t)(secs * 1e9);
  for (i = 0; i < conns; i++) {
    Conn *c = (Conn *)calloc(1, sizeof(Conn));
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr, on_connect);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (nlat == 0) { fprintf(stderr, "no round trips\n"); return 1; }
  qsort(lat, nlat, sizeof *lat, cmp);
  printf("RESULT %.0f %.1f %.1f\n", (double)done / secs,
         lat[nlat / 2] / 1e3, lat[(size_t)(nlat * 0.99)] / 1e3);
  return 0;
}
