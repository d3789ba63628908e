/*
** loadgen_tls.c -- W4 over TLS: like loadgen.c, but each connection does a
** TLS handshake first (OpenSSL over memory BIOs on libuv, no verification:
** a benchmark) and then echoes MSG-byte messages for SECS seconds (after
** WARM seconds of warm-up).  Prints
**   RESULT <round trips/s> <p50 us> <p99 us>
** Usage: loadgen_tls PORT [CONNS=100] [SECS=5] [MSG=64] [WARM=1]
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

typedef struct Conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  SSL *ssl;
  BIO *rbio, *wbio;
  int ready;
  size_t got;
  uint64_t sent_at;
  char rbuf[65536];
} Conn;

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
static SSL_CTX *ctx;

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

/* Sends what OpenSSL wrote into wbio. */
static void flush (Conn *c) {
  size_t n = BIO_ctrl_pending(c->wbio);
  uv_buf_t b;
  Out *o;
  int r;
  if (n == 0) return;
  o = (Out *)malloc(sizeof(Out) + n);
  BIO_read(c->wbio, o->data, (int)n);
  b = uv_buf_init(o->data, (unsigned)n);
  r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r == (int)n) { free(o); return; }
  if (r > 0) { b.base += r; b.len -= (size_t)r; }
  uv_write(&o->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
}

static void send_one (Conn *c) {
  c->sent_at = uv_hrtime();
  SSL_write(c->ssl, payload, msg);
  flush(c);
}

static void finish (Conn *c) {
  uv_read_stop((uv_stream_t *)&c->tcp);
  uv_close((uv_handle_t *)&c->tcp, NULL);
}

static void on_read (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = (Conn *)s->data;
  char plain[65536];
  int k;
  if (n < 0) { finish(c); return; }
  BIO_write(c->rbio, b->base, (int)n);
  if (!c->ready) {
    k = SSL_do_handshake(c->ssl);
    flush(c);
    if (k != 1) {
      if (SSL_get_error(c->ssl, k) != SSL_ERROR_WANT_READ) {
        fprintf(stderr, "handshake failed\n");
        ERR_print_errors_fp(stderr);
        exit(1);
      }
      return;
    }
    c->ready = 1;
    send_one(c);
  }
  while ((k = SSL_read(c->ssl, plain, sizeof plain)) > 0) c->got += (size_t)k;
  flush(c);
  if (c->got >= (size_t)msg) {
    uint64_t now = uv_hrtime();
    c->got -= (size_t)msg;
    if (now >= t_measure) { done++; record(now - c->sent_at); }
    if (now >= t_end) { finish(c); return; }
    send_one(c);
  }
}

static void on_connect (uv_connect_t *r, int status) {
  Conn *c = (Conn *)r->data;
  if (status < 0) { fprintf(stderr, "connect: %s\n", uv_strerror(status)); exit(1); }
  uv_tcp_nodelay(&c->tcp, 1);
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(c->ssl, c->rbio, c->wbio);
  SSL_set_connect_state(c->ssl);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  SSL_do_handshake(c->ssl);
  flush(c);
}

static int cmp (const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int main (int argc, char **argv) {
  struct sockaddr_in addr;
  double secs = 5, warm = 1;
  int i, port;
  if (argc < 2) { fprintf(stderr, "usage: loadgen_tls PORT [CONNS SECS MSG WARM]\n"); return 2; }
  port = atoi(argv[1]);
  if (argc > 2) conns = atoi(argv[2]);
  if (argc > 3) secs = atof(argv[3]);
  if (argc > 4) msg = atoi(argv[4]);
  if (argc > 5) warm = atof(argv[5]);
  payload = (char *)malloc((size_t)msg);
  memset(payload, 'x', (size_t)msg);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
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
