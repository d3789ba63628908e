/*
** echo_uv.c -- W4 reference: a plain C libuv echo server, done well (one
** reusable read buffer per connection, uv_try_write before uv_write).
** Usage: echo_uv PORT
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct Conn {
  uv_tcp_t tcp;
  char buf[65536];
} Conn;

typedef struct Pending {
  uv_write_t req;
  char data[1];
} Pending;

static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  Conn *c = (Conn *)h->data;
  (void)hint;
  b->base = c->buf;
  b->len = sizeof c->buf;
}

static void on_closed (uv_handle_t *h) { free(h->data); }

static void on_written (uv_write_t *w, int status) { (void)status; free(w); }

static void on_read (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  uv_buf_t out;
  int r;
  if (n < 0) { uv_close((uv_handle_t *)s, on_closed); return; }
  if (n == 0) return;
  out = uv_buf_init(b->base, (unsigned)n);
  r = uv_try_write(s, &out, 1);
  if (r == n) return;
  if (r < 0) r = 0;
  {
    Pending *p = (Pending *)malloc(sizeof(Pending) + (size_t)(n - r));
    memcpy(p->data, b->base + r, (size_t)(n - r));
    out = uv_buf_init(p->data, (unsigned)(n - r));
    uv_write(&p->req, s, &out, 1, on_written);
  }
}

static void on_conn (uv_stream_t *server, int status) {
  Conn *c;
  if (status < 0) return;
  c = (Conn *)malloc(sizeof(Conn));
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0) {
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  }
  else uv_close((uv_handle_t *)&c->tcp, on_closed);
}

int main (int argc, char **argv) {
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_init(loop, &server);
  uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 8888, &addr);
  if (uv_tcp_bind(&server, (struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&server, 511, on_conn) != 0) {
    fprintf(stderr, "cannot listen\n");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
