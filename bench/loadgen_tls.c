/*
** loadgen_tls.c -- loadgen's transport for W4 over TLS: OpenSSL over memory
** BIOs, no verification (a benchmark).  Each connection sends its first
** message once its handshake is done.
*/
#include <stdio.h>
#include <stdlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "loadgen.h"

typedef struct Tls {
  SSL *ssl;
  BIO *rbio, *wbio;
  int ready;
} Tls;

static SSL_CTX *ctx;

void tp_setup (void) {
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
}

/* Sends what OpenSSL wrote into wbio. */
static void flush (Conn *c) {
  Tls *t = (Tls *)c->tp;
  char buf[16384];
  int n;
  while ((n = BIO_read(t->wbio, buf, sizeof buf)) > 0) lg_write(c, buf, (size_t)n);
}

static void handshake (Conn *c) {
  Tls *t = (Tls *)c->tp;
  int k = SSL_do_handshake(t->ssl);
  flush(c);
  if (k == 1) { t->ready = 1; lg_ready(c); return; }
  if (SSL_get_error(t->ssl, k) != SSL_ERROR_WANT_READ) {
    fprintf(stderr, "handshake failed\n");
    ERR_print_errors_fp(stderr);
    exit(1);
  }
}

void tp_start (Conn *c) {
  Tls *t = (Tls *)calloc(1, sizeof(Tls));
  c->tp = t;
  t->ssl = SSL_new(ctx);
  t->rbio = BIO_new(BIO_s_mem());
  t->wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(t->ssl, t->rbio, t->wbio);
  SSL_set_connect_state(t->ssl);
  handshake(c);
}

void tp_send (Conn *c, const char *p, size_t n) {
  SSL_write(((Tls *)c->tp)->ssl, p, (int)n);
  flush(c);
}

size_t tp_input (Conn *c, const char *p, size_t n) {
  Tls *t = (Tls *)c->tp;
  char plain[16384];
  size_t got = 0;
  int k;
  BIO_write(t->rbio, p, (int)n);
  if (!t->ready) handshake(c);
  if (!t->ready) return 0;
  while ((k = SSL_read(t->ssl, plain, sizeof plain)) > 0) got += (size_t)k;
  flush(c);                            /* (post-handshake messages) */
  return got;
}
