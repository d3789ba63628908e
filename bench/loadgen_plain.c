/* loadgen_plain.c -- loadgen's transport for plain TCP: bytes as they are. */
#include "loadgen.h"

void tp_setup (void) {}

void tp_start (Conn *c) {
  lg_ready(c);
}

void tp_send (Conn *c, const char *p, size_t n) {
  lg_write(c, p, n);
}

size_t tp_input (Conn *c, const char *p, size_t n) {
  (void)c; (void)p;
  return n;
}
