/*
** loadgen_ws.c -- loadgen's transport for WebSocket (W8): a handshake
** first (GET / with Upgrade: websocket; the answer's head is skipped),
** then each message goes out as one masked text frame (the mask key is
** zero: the payload stays as it is, which RFC 6455 allows) and the
** server's frames are taken apart: their payload bytes are counted.
*/
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

typedef struct Ws {
  int open;                    /* the handshake's answer is over */
  int crlf;                    /* "\r\n\r\n" matched so far */
  unsigned char head[14];      /* a frame head being read */
  size_t hlen, hneed;
  uint64_t left;               /* payload bytes of the frame still due */
} Ws;

static const char REQUEST[] =
  "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

void tp_setup (void) {}

void tp_start (Conn *c) {
  c->tp = calloc(1, sizeof(Ws));
  ((Ws *)c->tp)->hneed = 2;
  lg_write(c, REQUEST, sizeof REQUEST - 1);
}

void tp_send (Conn *c, const char *p, size_t n) {
  char f[14 + 65536];
  size_t h = 2;
  if (n > 65535) abort();
  f[0] = (char)0x81;
  if (n < 126) f[1] = (char)(0x80 | n);
  else { f[1] = (char)(0x80 | 126); f[2] = (char)(n >> 8); f[3] = (char)n; h = 4; }
  memset(f + h, 0, 4);
  memcpy(f + h + 4, p, n);
  lg_write(c, f, h + 4 + n);
}

/* The extra head bytes a frame's second byte says it has. */
static size_t extra (unsigned char b1) {
  size_t len = b1 & 127, e = (b1 & 128) ? 4 : 0;
  return e + (len == 126 ? 2 : len == 127 ? 8 : 0);
}

size_t tp_input (Conn *c, const char *p, size_t n) {
  Ws *w = (Ws *)c->tp;
  size_t i = 0, got = 0;
  while (!w->open && i < n) {                    /* the 101's head */
    char ch = p[i++];
    w->crlf = (ch == (w->crlf % 2 ? '\n' : '\r')) ? w->crlf + 1 : (ch == '\r');
    if (w->crlf == 4) { w->open = 1; lg_ready(c); }
  }
  while (i < n) {
    if (w->left > 0) {
      size_t k = n - i < w->left ? n - i : (size_t)w->left;
      w->left -= k; i += k; got += k;
      continue;
    }
    w->head[w->hlen++] = (unsigned char)p[i++];
    if (w->hlen == 2) w->hneed = 2 + extra(w->head[1]);
    if (w->hlen == w->hneed) {
      uint64_t len = w->head[1] & 127;
      if (len == 126) len = ((uint64_t)w->head[2] << 8) | w->head[3];
      else if (len == 127) { int k; len = 0; for (k = 2; k < 10; k++) len = (len << 8) | w->head[k]; }
      w->left = len; w->hlen = 0; w->hneed = 2;
    }
  }
  return got;
}
