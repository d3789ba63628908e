/*
** tls.c -- TLS for streams with OpenSSL: SSLContext objects, and the
** engine a stream runs its bytes through (one SSL object per stream).
**
** Built as the module luaio.tls (the CLI loads it on first use) or linked
** into core.so / libluaio (luaio__tls_builtin preloads it); either way it
** reaches the core only through TlsCore and serves the streams
** (stream_tls.c) through TlsOps (tls_abi.h).
**
** Ciphertext in: libuv reads into the stream's buffer exactly as for
** plain TCP; stream_tls.c copies those bytes into a memory BIO and asks
** ops.read to decrypt them back into the same buffer.
** Ciphertext out: a BIO of our own whose write callback hands each record
** to the stream (uv_try_write first, queued otherwise): no second copy,
** nothing blocks.  The handshake advances from the read callback.
**
** Errors keep OpenSSL's reason ("certificate verify failed", "tlsv1 alert
** unknown ca", ...) and, for verification, the X509 message ("hostname
** mismatch", "certificate has expired", ...); they become aio.SSLError
** when a task asks for data, shaped as Python's: .reason is the reason's
** mnemonic ("CERTIFICATE_VERIFY_FAILED"), .library "SSL", and the message
** "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: ...".  OpenSSL's per-thread error queue is cleared
** around every call so one stream's failure never shows up on another.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls_abi.h"

#define LUAIO_SSLCONTEXT "luaio.SSLContext"

/*
** A context as Lua sees it.  It serves either side (TLS_method); its
** purpose only sets defaults.  verify and check_hostname are -1 until set:
** then a client verifies the server (and checks its name) when the
** context was made for clients, and a server asks for a client
** certificate only when verify was set to true.
*/
typedef struct Ctx {
  SSL_CTX *ctx;
  int server;                  /* made for servers ("client_auth") */
  int verify;                  /* -1 default, 0, 1 */
  int check_hostname;          /* -1 default, 0, 1 */
} Ctx;

/* Does a stream on this side verify its peer / check the host name? */
static int verifies (const Ctx *c, int server) {
  if (c->verify >= 0) return c->verify;
  return !server && !c->server;
}

static int checks_name (const Ctx *c) {
  if (!verifies(c, 0)) return 0;
  if (c->check_hostname >= 0) return c->check_hostname;
  return !c->server;
}

struct Tls {
  SSL *ssl;
  BIO *rbio;                   /* ciphertext read, not yet decrypted */
  int server, done, failed, shut;
  int sslerr;                  /* SSL_get_error() of the failure */
  long verify_code;            /* X509_V_OK unless verification failed */
  char text[160];              /* OpenSSL's reason, as it words it */
  const char *lib;             /* "SSL", "X509", ... */
  char *hostname;              /* server_hostname (clients), or NULL */
};


/* The core's functions (from the registry, when the module is opened). */
static const TlsCore *core;


/* ---------------------------------------------------------- the output BIO */

static BIO_METHOD *out_method;
static int alpn_index = -1;            /* SSL_CTX ex_data: server's ALPN list */
static uv_once_t once = UV_ONCE_INIT;

static int out_write (BIO *b, const char *p, int n) {
  core->stream_out(BIO_get_data(b), p, (size_t)n);
  return n;
}

static long out_ctrl (BIO *b, int cmd, long num, void *ptr) {
  (void)b; (void)num; (void)ptr;
  return cmd == BIO_CTRL_FLUSH;        /* records are handed over at once */
}

static int out_create (BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void free_alpn (void *parent, void *p, CRYPTO_EX_DATA *ad, int idx,
                       long argl, void *argp) {
  (void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
  free(p);
}

/* At exit -- or, in glibc, when the luaio.tls module is unloaded. */
static void free_once (void) {
  BIO_meth_free(out_method);
  out_method = NULL;
}

static void init_once (void) {
  out_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                            "luaio stream");
  atexit(free_once);
  if (out_method != NULL) {
    BIO_meth_set_write(out_method, out_write);
    BIO_meth_set_ctrl(out_method, out_ctrl);
    BIO_meth_set_create(out_method, out_create);
  }
  alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_alpn);
}


/* ---------------------------------------------------------- errors */

/* The library an OpenSSL error comes from, named as Python names it. */
static const char *libname (unsigned long e) {
  switch (ERR_GET_LIB(e)) {
    case ERR_LIB_X509: case ERR_LIB_X509V3: return "X509";
    case ERR_LIB_PEM: return "PEM";
    case ERR_LIB_EVP: return "EVP";
    case ERR_LIB_SYS: return "SYS";
    default: return "SSL";
  }
}

/*
** Raises SSLError from fname: "fname: [LIB: MNEMONIC] text[: detail]",
** with .reason = MNEMONIC (the text up to any " (", upper case, '_' for
** what is not a letter or digit: "certificate verify failed" gives
** CERTIFICATE_VERIFY_FAILED, as Python shows it), .library, .errno (the
** SSL_get_error code), .code = "SSL", and verify_message / verify_code
** when verify_code is not X509_V_OK.
*/
static int raise_ssl (lua_State *L, const char *fname, const char *lib,
                      const char *text, const char *detail, int sslerr,
                      long verify_code) {
  char mnemonic[160];
  size_t i;
  for (i = 0; text[i] != '\0' && i < sizeof mnemonic - 1; i++) {
    unsigned char ch = (unsigned char)text[i];
    if (ch == ' ' && text[i + 1] == '(') break;
    mnemonic[i] = (char)(isalnum(ch) ? toupper(ch) : '_');
  }
  mnemonic[i] = '\0';
  if (verify_code != X509_V_OK && detail == NULL)
    detail = X509_verify_cert_error_string(verify_code);
  lua_pushfstring(L, "%s: [%s: %s] %s%s%s", fname, lib, mnemonic, text,
                  detail ? ": " : "", detail ? detail : "");
  core->new_error(L, "SSLError", lua_tostring(L, -1), 1);
  lua_pushstring(L, mnemonic);
  lua_setfield(L, -2, "reason");
  lua_pushstring(L, lib);
  lua_setfield(L, -2, "library");
  lua_pushinteger(L, sslerr);
  lua_setfield(L, -2, "errno");
  lua_pushliteral(L, "SSL");
  lua_setfield(L, -2, "code");
  if (verify_code != X509_V_OK) {
    lua_pushstring(L, detail);
    lua_setfield(L, -2, "verify_message");
    lua_pushinteger(L, verify_code);
    lua_setfield(L, -2, "verify_code");
  }
  return lua_error(L);
}

/* Raises OpenSSL's latest error (a context call failed); what: the file. */
static int ctx_error (lua_State *L, const char *fname, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  const char *lib = libname(e);
  char text[160];
  snprintf(text, sizeof text, "%s", r != NULL ? r : "unknown error");
  ERR_clear_error();
  return raise_ssl(L, fname, lib, text, what, SSL_ERROR_SSL, X509_V_OK);
}

/* Keeps the reason of a failure (an SSL call returned sslerr). */
static void capture (Tls *t, int sslerr) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  t->failed = 1;
  t->sslerr = sslerr;
  t->lib = libname(e);
  t->verify_code = SSL_get_verify_result(t->ssl);
  if (r != NULL) snprintf(t->text, sizeof t->text, "%s", r);
  else if (sslerr == SSL_ERROR_SYSCALL)
    snprintf(t->text, sizeof t->text, "unexpected eof while reading");
  else snprintf(t->text, sizeof t->text, "TLS error %d", sslerr);
  ERR_clear_error();
}

/* Raises the failure kept in t as SSLError from fname. */
static int tls_error (lua_State *L, Tls *t, const char *fname) {
  return raise_ssl(L, fname, t->lib ? t->lib : "SSL", t->text, NULL,
                   t->sslerr, t->verify_code);
}


/* ---------------------------------------------------------- the engine */

static int is_ip (const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static Ctx *checkctx (lua_State *L, int idx) {
  return (Ctx *)core->checkclass(L, idx, LUAIO_SSLCONTEXT);
}

/*
** A new engine for stream, on the context at ctxidx, for the given side;
** raises on misuse (a server without a certificate, no host name to check).
*/
static Tls *tls_create (lua_State *L, int ctxidx, int server,
                              const char *hostname, void *stream,
                              const char *fname) {
  Ctx *c = checkctx(L, ctxidx);
  Tls *t;
  BIO *wbio;
  int verify = verifies(c, server);
  int check = !server && checks_name(c);
  if (hostname != NULL && hostname[0] == '\0') {
    hostname = NULL;                   /* "" turns the host check off */
    check = 0;
  }
  if (server && SSL_CTX_get0_certificate(c->ctx) == NULL)
    luaL_error(L, "%s: the server's SSLContext has no certificate "
               "(call load_cert_chain)", fname);
  if (check && hostname == NULL)
    luaL_error(L, "%s: server_hostname is required when the SSLContext "
               "checks host names (check_hostname)", fname);
  uv_once(&once, init_once);
  t = (Tls *)calloc(1, sizeof *t);
  if (t == NULL || out_method == NULL) { free(t); luaL_error(L, "not enough memory"); }
  t->server = server;
  t->verify_code = X509_V_OK;
  t->ssl = SSL_new(c->ctx);
  t->rbio = BIO_new(BIO_s_mem());
  wbio = BIO_new(out_method);
  if (hostname != NULL) t->hostname = strdup(hostname);
  if (t->ssl == NULL || t->rbio == NULL || wbio == NULL ||
      (hostname != NULL && t->hostname == NULL)) {
    SSL_free(t->ssl); BIO_free(t->rbio); BIO_free(wbio);
    free(t->hostname); free(t);
    ERR_clear_error();
    luaL_error(L, "not enough memory");
  }
  BIO_set_data(wbio, stream);
  BIO_set_mem_eof_return(t->rbio, -1);  /* empty: "try again" */
  SSL_set_bio(t->ssl, t->rbio, wbio);   /* the SSL owns both */
  if (server) {
    SSL_set_accept_state(t->ssl);
    SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER |
                   SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, NULL);
  }
  else {
    SSL_set_connect_state(t->ssl);
    SSL_set_verify(t->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (hostname != NULL && !is_ip(hostname))
      SSL_set_tlsext_host_name(t->ssl, hostname);
    if (check) {
      if (is_ip(hostname))
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), hostname);
      else SSL_set1_host(t->ssl, hostname);
    }
  }
  return t;
}

static void tls_destroy (Tls *t) {
  if (t == NULL) return;
  SSL_free(t->ssl);
  free(t->hostname);
  free(t);
}

/* Ciphertext read from the socket. */
static int tls_feed (Tls *t, const char *p, size_t n) {
  size_t done;
  if (BIO_write_ex(t->rbio, p, n, &done) != 1 || done != n) {
    t->failed = 1;
    snprintf(t->text, sizeof t->text, "out of memory");
    ERR_clear_error();
    return -1;
  }
  return 0;
}

/* Advances the handshake: 1 done, 0 needs more input, -1 failed. */
static int tls_handshake (Tls *t) {
  int r;
  if (t->failed) return -1;
  if (t->done) return 1;
  ERR_clear_error();
  r = SSL_do_handshake(t->ssl);
  if (r == 1) { t->done = 1; return 1; }
  r = SSL_get_error(t->ssl, r);
  if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) return 0;
  capture(t, r);
  return -1;
}

static int tls_done (Tls *t) {
  return t->done;
}

/*
** Decrypts into out: bytes, 0 (needs more input), LUAIO_TLS_CLOSED (the
** peer's close_notify) or LUAIO_TLS_FAILED.
*/
static long tls_read (Tls *t, char *out, size_t cap) {
  size_t n;
  int r;
  if (t->failed) return LUAIO_TLS_FAILED;
  ERR_clear_error();
  if (SSL_read_ex(t->ssl, out, cap, &n) == 1) return (long)n;
  r = SSL_get_error(t->ssl, 0);
  if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) return 0;
  if (r == SSL_ERROR_ZERO_RETURN) return LUAIO_TLS_CLOSED;
  capture(t, r);
  return LUAIO_TLS_FAILED;
}

/* Encrypts p; the records go out through the stream.  0 or -1. */
static int tls_write (Tls *t, const char *p, size_t len) {
  size_t n;
  if (t->failed) return -1;
  while (len > 0) {
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, p, len, &n) != 1) {
      capture(t, SSL_get_error(t->ssl, 0));
      return -1;
    }
    p += n;
    len -= n;
  }
  return 0;
}

/* Sends close_notify once (an established session only). */
static void tls_shutdown (Tls *t) {
  if (!t->done || t->failed || t->shut) return;
  t->shut = 1;
  ERR_clear_error();
  SSL_shutdown(t->ssl);
  ERR_clear_error();
}

/*
** The socket reached EOF without close_notify.  At a record boundary of
** an established session that is taken as EOF (0), as asyncio and most
** clients do; inside a record or the handshake it is an error (-1).
*/
static int tls_eof (Tls *t) {
  if (t->failed) return -1;
  if (t->done && BIO_ctrl_pending(t->rbio) == 0 && !SSL_has_pending(t->ssl))
    return 0;                          /* (SSL_has_pending: a partial record) */
  t->failed = 1;
  t->sslerr = SSL_ERROR_SYSCALL;
  snprintf(t->text, sizeof t->text, "%s",
           t->done ? "unexpected eof while reading (the peer closed the "
                     "connection inside a TLS record)"
                   : "unexpected eof while reading (the peer closed the "
                     "connection during the handshake)");
  return -1;
}


/* ---------------------------------------------------------- extra info */

/* Pushes the UTF-8 form of an ASN.1 string. */
static void push_asn1 (lua_State *L, const ASN1_STRING *s) {
  unsigned char *u = NULL;
  int n = ASN1_STRING_to_UTF8(&u, s);
  if (n < 0) lua_pushliteral(L, "");
  else lua_pushlstring(L, (const char *)u, (size_t)n);
  OPENSSL_free(u);
}

/* Pushes a name as {commonName = ..., organizationName = ...}. */
static void push_name (lua_State *L, const X509_NAME *name) {
  int i, n = X509_NAME_entry_count(name);
  lua_createtable(L, 0, n);
  for (i = 0; i < n; i++) {
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    const char *key = nid != NID_undef ? OBJ_nid2ln(nid) : NULL;
    char oid[80];
    if (key == NULL) {
      OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(e), 1);
      key = oid;
    }
    push_asn1(L, X509_NAME_ENTRY_get_data(e));
    lua_setfield(L, -2, key);
  }
}

/* Pushes a time as OpenSSL prints it ("Jan  2 03:04:05 2027 GMT"). */
static void push_time (lua_State *L, const ASN1_TIME *tm) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p;
  long n;
  if (b == NULL || !ASN1_TIME_print(b, tm)) { BIO_free(b); lua_pushnil(L); return; }
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)n);
  BIO_free(b);
}

/* Pushes the subjectAltName entries: { {"DNS", "x"}, {"IP Address", ".."} }. */
static void push_altnames (lua_State *L, X509 *cert) {
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int i, k = 0;
  lua_newtable(L);
  for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    char ip[INET6_ADDRSTRLEN];
    lua_createtable(L, 2, 0);
    if (g->type == GEN_DNS) {
      lua_pushliteral(L, "DNS");
      push_asn1(L, g->d.dNSName);
    }
    else if (g->type == GEN_IPADD && (g->d.iPAddress->length == 4 ||
                                      g->d.iPAddress->length == 16)) {
      lua_pushliteral(L, "IP Address");
      inet_ntop(g->d.iPAddress->length == 4 ? AF_INET : AF_INET6,
                g->d.iPAddress->data, ip, sizeof ip);
      lua_pushstring(L, ip);
    }
    else if (g->type == GEN_EMAIL) {
      lua_pushliteral(L, "email");
      push_asn1(L, g->d.rfc822Name);
    }
    else if (g->type == GEN_URI) {
      lua_pushliteral(L, "URI");
      push_asn1(L, g->d.uniformResourceIdentifier);
    }
    else { lua_pop(L, 1); continue; }
    lua_rawseti(L, -3, 2);
    lua_rawseti(L, -2, 1);
    lua_rawseti(L, -2, ++k);
  }
  GENERAL_NAMES_free(names);
}

/* Pushes a certificate in Python's getpeercert() shape. */
static void push_cert (lua_State *L, X509 *cert) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
  char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
  lua_createtable(L, 0, 7);
  push_name(L, X509_get_subject_name(cert));
  lua_setfield(L, -2, "subject");
  push_name(L, X509_get_issuer_name(cert));
  lua_setfield(L, -2, "issuer");
  lua_pushinteger(L, X509_get_version(cert) + 1);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, hex != NULL ? hex : "");
  lua_setfield(L, -2, "serialNumber");
  push_time(L, X509_get0_notBefore(cert));
  lua_setfield(L, -2, "notBefore");
  push_time(L, X509_get0_notAfter(cert));
  lua_setfield(L, -2, "notAfter");
  push_altnames(L, cert);
  lua_setfield(L, -2, "subjectAltName");
  OPENSSL_free(hex);
  BN_free(bn);
}

/* Pushes the peer's certificate, as a table or (der) DER bytes; nil if none. */
static void push_peercert (lua_State *L, Tls *t, int der) {
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
  if (cert == NULL) { lua_pushnil(L); return; }
  if (der) {
    unsigned char *p = NULL;
    int n = i2d_X509(cert, &p);
    if (n < 0) lua_pushnil(L);
    else lua_pushlstring(L, (const char *)p, (size_t)n);
    OPENSSL_free(p);
  }
  else push_cert(L, cert);
  X509_free(cert);
}

/*
** Pushes one fact about the session (1 value): "peercert", "peercert_der",
** "cipher" ({name, version, bits}), "version", "alpn", "server_side",
** "server_hostname".
*/
static int tls_info (lua_State *L, Tls *t, const char *what) {
  const SSL_CIPHER *c;
  if (strcmp(what, "server_side") == 0) lua_pushboolean(L, t->server);
  else if (strcmp(what, "server_hostname") == 0) {
    if (t->hostname) lua_pushstring(L, t->hostname); else lua_pushnil(L);
  }
  else if (!t->done) lua_pushnil(L);   /* nothing else before the handshake */
  else if (strcmp(what, "peercert") == 0) push_peercert(L, t, 0);
  else if (strcmp(what, "peercert_der") == 0) push_peercert(L, t, 1);
  else if (strcmp(what, "version") == 0) lua_pushstring(L, SSL_get_version(t->ssl));
  else if (strcmp(what, "cipher") == 0) {
    if ((c = SSL_get_current_cipher(t->ssl)) == NULL) lua_pushnil(L);
    else {
      lua_createtable(L, 3, 0);
      lua_pushstring(L, SSL_CIPHER_get_name(c));
      lua_rawseti(L, -2, 1);
      lua_pushstring(L, SSL_CIPHER_get_version(c));
      lua_rawseti(L, -2, 2);
      lua_pushinteger(L, SSL_CIPHER_get_bits(c, NULL));
      lua_rawseti(L, -2, 3);
    }
  }
  else if (strcmp(what, "alpn") == 0) {
    const unsigned char *p;
    unsigned n;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n == 0) lua_pushnil(L);
    else lua_pushlstring(L, (const char *)p, n);
  }
  else lua_pushnil(L);
  return 1;
}


/* ---------------------------------------------------------- contexts */

static const struct { const char *name; int v; } versions[] = {
  {"TLSv1", TLS1_VERSION}, {"TLSv1.1", TLS1_1_VERSION},
  {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION}, {NULL, 0}
};

static int checkversion (lua_State *L, int idx, const char *field) {
  int i;
  if (lua_isnil(L, idx)) return 0;     /* no bound */
  for (i = 0; versions[i].name != NULL; i++)
    if (lua_type(L, idx) == LUA_TSTRING &&
        strcmp(lua_tostring(L, idx), versions[i].name) == 0)
      return versions[i].v;
  return luaL_error(L, "SSLContext.%s: \"TLSv1.2\", \"TLSv1.3\" (or "
                    "\"TLSv1\", \"TLSv1.1\") or nil expected, got %s", field,
                    luaL_typename(L, idx));
}

static void pushversion (lua_State *L, int v) {
  int i;
  for (i = 0; versions[i].name != NULL; i++)
    if (versions[i].v == v) { lua_pushstring(L, versions[i].name); return; }
  lua_pushnil(L);
}

/* Server side: picks the first of our protocols the client offers. */
static int select_alpn (SSL *ssl, const unsigned char **out,
                        unsigned char *outlen, const unsigned char *in,
                        unsigned inlen, void *arg) {
  const unsigned char *ours = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
  unsigned i, j;
  (void)arg;
  if (ours == NULL) return SSL_TLSEXT_ERR_NOACK;
  for (i = 1; i < 1u + ours[0]; i += 1u + ours[i]) {
    for (j = 0; j < inlen; j += 1u + in[j]) {
      if (j + 1u + in[j] <= inlen && in[j] == ours[i] &&
          memcmp(in + j + 1, ours + i + 1, ours[i]) == 0) {
        *out = in + j + 1;
        *outlen = in[j];
        return SSL_TLSEXT_ERR_OK;
      }
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

/* tls.ssl_context(for_servers) -> SSLContext */
static int l_ssl_context (lua_State *L) {
  int server = lua_toboolean(L, 1);
  Ctx *c = (Ctx *)lua_newuserdatauv(L, sizeof(Ctx), 0);
  c->ctx = NULL;
  luaL_setmetatable(L, LUAIO_SSLCONTEXT);
  uv_once(&once, init_once);
  c->ctx = SSL_CTX_new(TLS_method());  /* either side */
  if (c->ctx == NULL) return ctx_error(L, "SSLContext", NULL);
  c->server = server;
  c->verify = c->check_hostname = -1;
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_COMPRESSION);
  /* idle connections keep no read/write buffers (~34 KiB each) */
  SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(c->ctx, select_alpn, NULL);
  /* No TLS 1.3 session tickets: luaio does not resume sessions, and a
     client that never reads would have them unread in its socket when it
     closes -- the kernel then resets the connection, and the data it
     sent last can be lost before the server reads it. */
  SSL_CTX_set_num_tickets(c->ctx, 0);
  /* TLS 1.2 renegotiation: refused (a write could need a read mid-way) */
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
  return 1;
}

static int ctx_gc (lua_State *L) {
  Ctx *c = (Ctx *)lua_touserdata(L, 1);
  SSL_CTX_free(c->ctx);                /* streams using it hold a reference */
  c->ctx = NULL;
  return 0;
}

/* Checks that a file can be read (a clear OSError instead of OpenSSL's). */
static void checkfile (lua_State *L, const char *path, const char *fname) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    int e = errno;
    lua_pushfstring(L, "%s: %s: %s", fname, path, strerror(e));
    core->new_error(L, "OSError", lua_tostring(L, -1), 1);
    lua_pushinteger(L, e);
    lua_setfield(L, -2, "errno");
    lua_pushstring(L, uv_err_name(uv_translate_sys_error(e)));
    lua_setfield(L, -2, "code");
    lua_error(L);
  }
  fclose(f);
}

static int passwd_cb (char *buf, int size, int rw, void *u) {
  const char *pw = (const char *)u;
  size_t n;
  (void)rw;
  if (pw == NULL) return -1;           /* no password given: fail, never prompt */
  n = strlen(pw);
  if (n > (size_t)size) n = (size_t)size;
  memcpy(buf, pw, n);
  return (int)n;
}

/* A file name or password argument (def when absent); one with a '\0'
   in it, which OpenSSL would cut short, is refused. */
static const char *optcstring (lua_State *L, int arg, const char *def,
                               const char *fname) {
  if (lua_isnoneornil(L, arg)) return def;
  return core->checkcstring(L, arg, fname);
}

/* ctx:load_cert_chain(certfile [, keyfile [, password]]) */
static int ctx_load_cert_chain (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *cert = core->checkcstring(L, 2, "load_cert_chain");
  const char *key = optcstring(L, 3, cert, "load_cert_chain");
  const char *pw = optcstring(L, 4, NULL, "load_cert_chain");
  int ok;
  checkfile(L, cert, "load_cert_chain");
  checkfile(L, key, "load_cert_chain");
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1)
    return ctx_error(L, "load_cert_chain", cert);
  SSL_CTX_set_default_passwd_cb(c->ctx, passwd_cb);
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, (void *)pw);
  ok = SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) == 1;
  SSL_CTX_set_default_passwd_cb_userdata(c->ctx, NULL);
  if (!ok) return ctx_error(L, "load_cert_chain", key);
  if (SSL_CTX_check_private_key(c->ctx) != 1)
    return ctx_error(L, "load_cert_chain", "the key does not match the certificate");
  return 0;
}

/* ctx:load_verify_locations([cafile [, capath]]) */
static int ctx_load_verify_locations (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *file = optcstring(L, 2, NULL, "load_verify_locations");
  const char *path = optcstring(L, 3, NULL, "load_verify_locations");
  if (file == NULL && path == NULL)
    return luaL_error(L, "load_verify_locations: cafile or capath expected");
  if (file != NULL) checkfile(L, file, "load_verify_locations");
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(c->ctx, file, path) != 1)
    return ctx_error(L, "load_verify_locations", file ? file : path);
  return 0;
}

/* ctx:load_default_certs(): the system's trust store. */
static int ctx_load_default_certs (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
    return ctx_error(L, "load_default_certs", NULL);
  return 0;
}

/* ctx:set_alpn_protocols({"h2", "http/1.1"}) */
static int ctx_set_alpn_protocols (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  luaL_Buffer b;
  lua_Integer i, n;
  size_t len;
  unsigned char *wire;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    const char *p;
    lua_rawgeti(L, 2, i);
    p = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len > 255)
      return luaL_error(L, "set_alpn_protocols: item %I is not a protocol "
                        "name (a string of 1 to 255 bytes)", i);
    lua_pop(L, 1);
    luaL_addchar(&b, (char)len);
    luaL_addlstring(&b, p, len);
  }
  luaL_pushresult(&b);
  wire = (unsigned char *)lua_tolstring(L, -1, &len);
  if (len > 255)                       /* one length byte for select_alpn */
    return luaL_error(L, "set_alpn_protocols: the list is too long");
  /* a client offers the list; a server picks from its copy */
  if (SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned)len) != 0)
    return ctx_error(L, "set_alpn_protocols", NULL);
  {
    unsigned char *copy = (unsigned char *)malloc(len + 1);
    if (copy == NULL) return luaL_error(L, "not enough memory");
    copy[0] = (unsigned char)len;
    memcpy(copy + 1, wire, len);
    free(SSL_CTX_get_ex_data(c->ctx, alpn_index));
    SSL_CTX_set_ex_data(c->ctx, alpn_index, copy);
  }
  return 0;
}

/* ctx:set_ciphers(openssl_cipher_list) (TLS 1.2 and below) */
static int ctx_set_ciphers (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *list = luaL_checkstring(L, 2);
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(c->ctx, list) != 1)
    return ctx_error(L, "set_ciphers", list);
  return 0;
}

static const luaL_Reg ctx_methods[] = {
  {"load_cert_chain", ctx_load_cert_chain},
  {"load_verify_locations", ctx_load_verify_locations},
  {"load_default_certs", ctx_load_default_certs},
  {"set_alpn_protocols", ctx_set_alpn_protocols},
  {"set_ciphers", ctx_set_ciphers},
  {NULL, NULL}
};

/* Fields: verify, check_hostname, minimum_version, maximum_version,
   server_side (read-only); methods from the upvalue table. */
static int ctx_index (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "verify") == 0) lua_pushboolean(L, verifies(c, c->server));
  else if (strcmp(k, "check_hostname") == 0) lua_pushboolean(L, checks_name(c));
  else if (strcmp(k, "server_side") == 0) lua_pushboolean(L, c->server);
  else if (strcmp(k, "minimum_version") == 0)
    pushversion(L, (int)SSL_CTX_get_min_proto_version(c->ctx));
  else if (strcmp(k, "maximum_version") == 0)
    pushversion(L, (int)SSL_CTX_get_max_proto_version(c->ctx));
  else lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

static int ctx_newindex (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "verify") == 0) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    c->verify = lua_toboolean(L, 3);
  }
  else if (strcmp(k, "check_hostname") == 0) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    c->check_hostname = lua_toboolean(L, 3);
  }
  else if (strcmp(k, "minimum_version") == 0)
    SSL_CTX_set_min_proto_version(c->ctx, checkversion(L, 3, k));
  else if (strcmp(k, "maximum_version") == 0)
    SSL_CTX_set_max_proto_version(c->ctx, checkversion(L, 3, k));
  else
    return luaL_error(L, "SSLContext has no field '%s' (fields: verify, "
                      "check_hostname, minimum_version, maximum_version)", k);
  return 0;
}

static int ctx_tostring (lua_State *L) {
  Ctx *c = checkctx(L, 1);
  lua_pushfstring(L, "SSLContext (for %ss%s): %p", c->server ? "server" : "client",
                  c->verify == 0 ? ", verify = false" : "", (void *)c);
  return 1;
}

/* tls.ssl_has_certificate(ctx) */
static int l_ssl_has_certificate (lua_State *L) {
  lua_pushboolean(L, SSL_CTX_get0_certificate(checkctx(L, 1)->ctx) != NULL);
  return 1;
}

/* tls.is_ssl_context(v) */
static int l_is_ssl_context (lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, LUAIO_SSLCONTEXT) != NULL);
  return 1;
}

static const TlsOps ops = {
  LUAIO_TLS_ABI, tls_create, tls_destroy, tls_feed, tls_handshake, tls_done,
  tls_read, tls_write, tls_shutdown, tls_eof, tls_error, tls_info
};

static const luaL_Reg funcs[] = {
  {"ssl_context", l_ssl_context},
  {"is_ssl_context", l_is_ssl_context},
  {"ssl_has_certificate", l_ssl_has_certificate},
  {NULL, NULL}
};

/*
** require "luaio.tls" -> {ssl_context, is_ssl_context, ssl_has_certificate,
** ssl_version, has_tls}; links the engine to this state's core.
*/
LUAIO_API int luaopen_luaio_tls (lua_State *L) {
  const TlsCore *c;
  lua_getfield(L, LUA_REGISTRYINDEX, LUAIO_TLSCORE);
  c = (const TlsCore *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c == NULL) return luaL_error(L, "luaio.tls: require \"luaio\" first");
  if (c->abi != LUAIO_TLS_ABI)
    return luaL_error(L, "luaio.tls: this module is from another build of "
                      "luaio (link version %d, expected %d)", LUAIO_TLS_ABI, c->abi);
  core = c;
  core->set_ops(L, &ops);
  if (luaL_newmetatable(L, LUAIO_SSLCONTEXT)) {
    lua_newtable(L);
    luaL_setfuncs(L, ctx_methods, 0);
    lua_pushcclosure(L, ctx_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ctx_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, ctx_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "SSLContext");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
  lua_setfield(L, -2, "ssl_version");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "has_tls");
  return 1;
}

/* Linked into the core: require "luaio.tls" finds this engine. */
void luaio__tls_builtin (lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_luaio_tls);
  lua_setfield(L, -2, "luaio.tls");
  lua_pop(L, 1);
}
