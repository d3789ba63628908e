/*
** loadgen.h -- the W4 load generator: one driver (loadgen.c: connections,
** timing, latency percentiles) and a transport per build: loadgen_plain.c
** (bytes as they are) or loadgen_tls.c (OpenSSL over memory BIOs).
*/
#ifndef loadgen_h
#define loadgen_h

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct Conn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  void *tp;                    /* the transport's state */
  size_t got;                  /* payload bytes back for the message out */
  uint64_t sent_at;
  char rbuf[65536];
} Conn;

/* The transport, for the driver. */
void tp_setup (void);
void tp_start (Conn *c);       /* connected: calls lg_ready when it may send */
void tp_send (Conn *c, const char *p, size_t n);
size_t tp_input (Conn *c, const char *p, size_t n);  /* -> payload bytes */

/* The driver, for the transport. */
void lg_ready (Conn *c);
void lg_write (Conn *c, const char *p, size_t n);    /* bytes to the socket */

#endif
