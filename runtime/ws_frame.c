/*
** ws_frame.c -- WebSocket (RFC 6455) frames for aio.websocket: the frame
** parser and unmasker, the frame builder and masker, and the handshake's
** key and accept values.  The protocol around them is Lua's
** (lua/luaio/websocket.lua).
**
**   core.ws_parse(data, pos, max, masked)   one frame from data at pos:
**     opcode, fin, payload, next, rsv   the whole frame is there; payload
**                          unmasked, next the position after it, rsv the
**                          three reserved bits (4 = RSV1)
**     nil, need            not yet: need is the frame's length from pos
**                          when its head is known, else the least
**                          length its head can have
**     false, code, reason  a protocol error and its close code: 1002 (an
**                          unknown opcode, a control frame over 125 bytes
**                          or fragmented, a mask where masked says none
**                          or none where it says one, a 64-bit length
**                          with its top bit set) or 1009 (a payload over
**                          max bytes)
**   core.ws_build(opcode, fin, payload, masked [, rsv]) -> the frame (with
**     a fresh random mask when masked)
**   core.ws_utf8(s) -> whether s is UTF-8 (no overlong forms, no
**     surrogates, nothing over U+10FFFF: RFC 3629)
**   core.ws_key() -> a Sec-WebSocket-Key (16 random bytes, base64)
**   core.ws_accept(key) -> its Sec-WebSocket-Accept (SHA-1, base64)
**
** Mask keys and handshake keys come from the kernel's generator
** (uv_random), 256 bytes a system call.  SHA-1 (for the accept value) is
** written here: the core is built without OpenSSL too (TLS=0, and the
** CLI loads it only for TLS), and it is 60 lines of FIPS 180-4.
*/
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------- parser */

static int proto_error (lua_State *L, int code, const char *reason) {
  lua_pushboolean(L, 0);
  lua_pushinteger(L, code);
  lua_pushstring(L, reason);
  return 3;
}

static int need (lua_State *L, uint64_t n) {
  lua_pushnil(L);
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

/* Unmasks n bytes of src into dst with key (4 bytes) from key offset 0. */
static void unmask (unsigned char *dst, const unsigned char *src, size_t n,
                    const unsigned char *key) {
  size_t i = 0;
  uint32_t k32;
  uint64_t k64;
  memcpy(&k32, key, 4);
  k64 = ((uint64_t)k32 << 32) | k32;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, src + i, 8);
    v ^= k64;
    memcpy(dst + i, &v, 8);
  }
  for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
}

static int known_opcode (int op) {
  return op <= 2 || (op >= 8 && op <= 10);
}

static int l_parse (lua_State *L) {
  size_t len;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  lua_Integer pos = luaL_checkinteger(L, 2);
  lua_Integer max = luaL_checkinteger(L, 3);
  int want_mask = lua_toboolean(L, 4);
  const unsigned char *p;
  size_t avail, hlen = 2;
  uint64_t plen;
  int fin, rsv, op, masked;
  luaL_argcheck(L, pos >= 1 && (size_t)pos <= len + 1, 2, "position out of range");
  luaL_argcheck(L, max >= 0, 3, "negative size");
  p = s + pos - 1;
  avail = len - (size_t)(pos - 1);
  if (avail < 2) return need(L, 2);
  fin = p[0] >> 7;
  rsv = (p[0] >> 4) & 7;
  op = p[0] & 15;
  masked = p[1] >> 7;
  plen = p[1] & 127;
  if (!known_opcode(op)) return proto_error(L, 1002, "unknown opcode");
  if (op >= 8) {
    if (!fin) return proto_error(L, 1002, "fragmented control frame");
    if (plen > 125) return proto_error(L, 1002, "control frame over 125 bytes");
  }
  if (masked != want_mask)
    return proto_error(L, 1002, masked ? "masked frame from a server"
                                       : "unmasked frame from a client");
  if (plen == 126) hlen += 2;
  else if (plen == 127) hlen += 8;
  if (masked) hlen += 4;
  if (avail < hlen) return need(L, hlen);
  if (plen == 126) plen = ((uint64_t)p[2] << 8) | p[3];
  else if (plen == 127) {
    int i;
    plen = 0;
    for (i = 0; i < 8; i++) plen = (plen << 8) | p[2 + i];
    if (plen >> 63) return proto_error(L, 1002, "frame length with its top bit set");
  }
  if (plen > (uint64_t)max) return proto_error(L, 1009, "message too big");
  if (avail - hlen < plen) return need(L, hlen + plen);
  lua_pushinteger(L, op);
  lua_pushboolean(L, fin);
  if (masked && plen > 0) {
    luaL_Buffer b;
    unsigned char *d = (unsigned char *)luaL_buffinitsize(L, &b, (size_t)plen);
    unmask(d, p + hlen, (size_t)plen, p + hlen - 4);
    luaL_pushresultsize(&b, (size_t)plen);
  } else {
    lua_pushlstring(L, (const char *)p + hlen, (size_t)plen);
  }
  lua_pushinteger(L, pos + (lua_Integer)(hlen + plen));
  lua_pushinteger(L, rsv);
  return 5;
}

/* ------------------------------------------------------------- UTF-8 */

/* Whether s[0..n) is UTF-8; ASCII is skipped eight bytes at a time. */
static int utf8_valid (const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) {
      uint64_t v;
      while (i + 8 <= n && (memcpy(&v, s + i, 8), (v & 0x8080808080808080ULL) == 0)) i += 8;
      if (i < n && s[i] < 0x80) i++;
      continue;
    }
    if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 7; min = 0x10000; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 15; min = 0x800; }
    else if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 31; min = 0x80; }
    else return 0;
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static int l_utf8 (lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, utf8_valid((const unsigned char *)s, n));
  return 1;
}

/* ------------------------------------------------------------- random */

/* Bytes from the kernel's generator (getrandom, through uv_random),
   taken 256 at a time: RFC 6455 wants mask keys no one can predict, and
   a generator seeded once (xorshift) is predictable from what it gave. */
static __thread unsigned char rnd_buf[256];
static __thread size_t rnd_left;        /* (one pool per thread) */

static void random_bytes (lua_State *L, unsigned char *out, size_t n) {
  while (n > 0) {
    size_t k;
    if (rnd_left == 0) {
      if (uv_random(NULL, NULL, rnd_buf, sizeof rnd_buf, 0, NULL) != 0)
        luaL_error(L, "websocket: the system's random generator failed");
      rnd_left = sizeof rnd_buf;
    }
    k = n < rnd_left ? n : rnd_left;
    memcpy(out, rnd_buf + sizeof rnd_buf - rnd_left, k);
    memset(rnd_buf + sizeof rnd_buf - rnd_left, 0, k);   /* (used once) */
    rnd_left -= k;
    out += k;
    n -= k;
  }
}

/* ------------------------------------------------------------- builder */

static int l_build (lua_State *L) {
  lua_Integer op = luaL_checkinteger(L, 1);
  int fin = lua_toboolean(L, 2);
  size_t n, hlen = 2;
  const unsigned char *pl = (const unsigned char *)luaL_checklstring(L, 3, &n);
  int masked = lua_toboolean(L, 4);
  lua_Integer rsv = luaL_optinteger(L, 5, 0);
  unsigned char head[14];
  luaL_Buffer b;
  unsigned char *d;
  luaL_argcheck(L, op >= 0 && op <= 15, 1, "opcode out of range");
  luaL_argcheck(L, rsv >= 0 && rsv <= 7, 5, "rsv out of range");
  head[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv << 4) | op);
  if (n < 126) head[1] = (unsigned char)n;
  else if (n <= 0xFFFF) {
    head[1] = 126;
    head[2] = (unsigned char)(n >> 8);
    head[3] = (unsigned char)n;
    hlen = 4;
  } else {
    int i;
    head[1] = 127;
    for (i = 0; i < 8; i++) head[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hlen = 10;
  }
  if (masked) {
    head[1] |= 0x80;
    random_bytes(L, head + hlen, 4);
    hlen += 4;
  }
  d = (unsigned char *)luaL_buffinitsize(L, &b, hlen + n);
  memcpy(d, head, hlen);
  if (masked) unmask(d + hlen, pl, n, head + hlen - 4);
  else memcpy(d + hlen, pl, n);
  luaL_pushresultsize(&b, hlen + n);
  return 1;
}

/* ------------------------------------------------------------- handshake */

static void base64 (lua_State *L, const unsigned char *s, size_t n) {
  static const char A[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char out[64];
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
    out[o++] = A[v >> 18]; out[o++] = A[(v >> 12) & 63];
    out[o++] = A[(v >> 6) & 63]; out[o++] = A[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
    out[o++] = A[v >> 18]; out[o++] = A[(v >> 12) & 63];
    out[o++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  lua_pushlstring(L, out, o);
}

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* SHA-1 of one 64-byte block into h. */
static void sha1_block (uint32_t h[5], const unsigned char *blk) {
  uint32_t w[80], a, b, c, d, e;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = ((uint32_t)blk[4 * i] << 24) | ((uint32_t)blk[4 * i + 1] << 16) |
           ((uint32_t)blk[4 * i + 2] << 8) | blk[4 * i + 3];
  for (i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  a = h[0]; b = h[1]; c = h[2]; d = h[3]; e = h[4];
  for (i = 0; i < 80; i++) {
    uint32_t f, k, t;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    t = ROL(a, 5) + f + e + k + w[i];
    e = d; d = c; c = ROL(b, 30); b = a; a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

/* SHA-1 of s (n bytes) into out (20 bytes). */
static void sha1 (const unsigned char *s, size_t n, unsigned char out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  unsigned char blk[64];
  size_t i, rest;
  uint64_t bits = (uint64_t)n * 8;
  for (i = 0; i + 64 <= n; i += 64) sha1_block(h, s + i);
  rest = n - i;
  memset(blk, 0, 64);
  memcpy(blk, s + i, rest);
  blk[rest] = 0x80;
  if (rest >= 56) {
    sha1_block(h, blk);
    memset(blk, 0, 64);
  }
  for (i = 0; i < 8; i++) blk[63 - i] = (unsigned char)(bits >> (8 * i));
  sha1_block(h, blk);
  for (i = 0; i < 5; i++) {
    out[4 * i] = (unsigned char)(h[i] >> 24); out[4 * i + 1] = (unsigned char)(h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(h[i] >> 8); out[4 * i + 3] = (unsigned char)h[i];
  }
}

static int l_key (lua_State *L) {
  unsigned char k[16];
  random_bytes(L, k, 16);
  base64(L, k, 16);
  return 1;
}

static int l_accept (lua_State *L) {
  static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char digest[20];
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, key, n);
  luaL_addlstring(&b, GUID, sizeof GUID - 1);
  luaL_pushresult(&b);
  {
    size_t m;
    const char *s = lua_tolstring(L, -1, &m);
    sha1((const unsigned char *)s, m, digest);
  }
  base64(L, digest, 20);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"ws_parse", l_parse},
  {"ws_build", l_build},
  {"ws_utf8", l_utf8},
  {"ws_key", l_key},
  {"ws_accept", l_accept},
  {NULL, NULL}
};

void luaio__ws_frame_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
