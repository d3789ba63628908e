/*
** http_parser.c -- core.http_parser: HTTP/1.x messages parsed by llhttp
** (Node's parser; Debian's node-llhttp ships its C sources), pulled one
** event at a time by the Lua side of aio.http.
**
**   p = core.http_parser("request" | "response" [, limits])
**     limits: max_head (bytes of a message head, 8192: every byte from
**             the end of the message before it), max_headers (100),
**             max_uri (8192); and done_with_head (false): a request
**             without a body ends with its "head" event (below)
**   ev, pos, x, y = p:execute(data [, init])   parses data from init on:
**     "head", pos, head [, true]   a head is complete: head is a table
**                           (below); true (done_with_head): the request
**                           had no body and is complete too, pos is past
**                           it and no "done" follows
**     "done", pos, body     the message is complete; body: the body bytes
**                           that came in this call before its end
**     "more", pos, body     data is used up (pos = #data + 1); body: the
**                           body bytes it held ("" if none)
**     "upgrade", pos        the message is complete and asks for another
**                           protocol: data from pos on is not HTTP
**     "error", pos, code, reason   code: llhttp's name ("HPE_INVALID_METHOD"
**                           ...) or ours: "HEAD_TOO_LARGE", "URI_TOO_LONG",
**                           "TOO_MANY_HEADERS"; every later call fails too
**   p:finish() -> "done", body | nil | "error", nil, code, reason  (EOF: a
**     response whose body runs to the end of the connection ends here;
**     nil: no message was under way; an error as execute's, and sticky)
**   p:skip_body()  the coming final response has no body (it answers
**     HEAD); interim (1xx), 204 and 304 responses never have one
**   head: {method, target (requests) | status, reason (responses),
**          version ("1.1"), headers = {name1, value1, name2, value2, ...}
**          (as sent, in order), keep_alive, upgrade, chunked,
**          content_length (nil if none)}
**
** llhttp calls back with pieces of the data; they are copied into the
** parser's head buffer (the head may arrive over many calls) and its
** body buffer (this call's body bytes).  A complete head and a complete
** message pause llhttp, so execute returns there.
*/
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

#include "internal.h"

#define LUAIO_HTTP_PARSER "luaio.HttpParser"

enum { EV_NONE, EV_HEAD, EV_DONE };

/* One header: its name and value in the head buffer. */
typedef struct Field {
  size_t name, nlen, value, vlen;
} Field;

typedef struct Parser {
  llhttp_t p;
  llhttp_settings_t s;
  /* the head: the URL (or reason) first, then names and values */
  char *head;
  size_t hlen, hcap;
  size_t ulen;                 /* the URL's (or reason's) length */
  Field *fields;
  int nfields, fcap;
  int piece;                   /* the last piece: 0 none, 1 name, 2 value */
  size_t raw;                  /* bytes of the head seen in past calls */
  int in_head;                 /* the bytes parsed are a head's: from the
                                  end of the last message (or the start)
                                  to the end of a head */
  /* this call's body bytes */
  char *body;
  size_t blen, bcap;
  /* what the last pause was for */
  int event;
  int head_out;                /* the head of a message without a body
                                  (skip_body) is still to be returned */
  int skip;                    /* the next response has no body */
  int done_next;               /* "done" is due before parsing on */
  int stuck;                   /* failed outside llhttp: fails again */
  int fuse;                    /* done_with_head */
  int fused;                   /* this call's request ended at its head */
  int collected;               /* __gc freed the buffers (a finalizer may
                                  still reach the parser) */
  /* our own error */
  const char *code, *reason;
  /* limits */
  size_t max_head, max_uri;
  int max_headers;
} Parser;


/* ---------------------------------------------------------- buffers */

/* Appends n bytes to *buf (of length *len and capacity *cap): 0 when out
   of memory.  (llhttp hands empty pieces too: an empty header name.) */
static int append (char **buf, size_t *len, size_t *cap, const char *at,
                   size_t n) {
  if (n == 0) return 1;                /* *buf may still be NULL */
  if (*len + n > *cap) {
    size_t c = *cap ? *cap : 256;
    char *nb;
    while (c < *len + n) c *= 2;
    nb = (char *)realloc(*buf, c);
    if (nb == NULL) return 0;
    *buf = nb;
    *cap = c;
  }
  memcpy(*buf + *len, at, n);
  *len += n;
  return 1;
}

/* Refuses the message with our own code (llhttp then reports HPE_USER,
   or the error of the callback that refused). */
static int refuse (Parser *q, const char *code, const char *reason) {
  q->code = code;
  q->reason = reason;
  llhttp_set_error_reason(&q->p, reason);
  return HPE_USER;
}

static int out_of_memory (Parser *q) {
  return refuse(q, "ENOMEM", "not enough memory");
}

/* Head bytes: at most max_head of them. */
static int head_bytes (Parser *q, const char *at, size_t n) {
  if (q->hlen + n > q->max_head)
    return refuse(q, "HEAD_TOO_LARGE", "the message head is too large");
  if (!append(&q->head, &q->hlen, &q->hcap, at, n)) return out_of_memory(q);
  return 0;
}


/* ---------------------------------------------------------- callbacks */

static Parser *parser_of (llhttp_t *p) {
  return (Parser *)p->data;
}

static int on_message_begin (llhttp_t *p) {
  Parser *q = parser_of(p);
  q->hlen = q->ulen = 0;
  q->nfields = 0;
  q->piece = 0;
  return 0;
}

/* The URL of a request, or the reason phrase of a response. */
static int on_first_line (llhttp_t *p, const char *at, size_t n) {
  Parser *q = parser_of(p);
  if (q->p.type == HTTP_REQUEST && q->ulen + n > q->max_uri)
    return refuse(q, "URI_TOO_LONG", "the request target is too long");
  q->ulen += n;
  return head_bytes(q, at, n);
}

static int on_header_field (llhttp_t *p, const char *at, size_t n) {
  Parser *q = parser_of(p);
  if (q->piece != 1) {                 /* a new header */
    Field *f;
    if (q->nfields >= q->max_headers)
      return refuse(q, "TOO_MANY_HEADERS", "too many header fields");
    if (q->nfields == q->fcap) {
      int c = q->fcap ? 2 * q->fcap : 16;
      Field *nf = (Field *)realloc(q->fields, (size_t)c * sizeof(Field));
      if (nf == NULL) return out_of_memory(q);
      q->fields = nf;
      q->fcap = c;
    }
    f = &q->fields[q->nfields++];
    f->name = q->hlen;
    f->nlen = f->value = f->vlen = 0;
    q->piece = 1;
  }
  q->fields[q->nfields - 1].nlen += n;
  return head_bytes(q, at, n);
}

/* A header's name is complete.  llhttp 8 lets a space into a name it
   does not know ("Host : x" came out as a header "Host ", "X Y: 1" as
   "X Y"), which RFC 9112 (5.1) says to refuse: a server or proxy in
   front that reads "Host" would see another request than ours.  It also
   takes an empty name (": v"), which no grammar allows. */
static int on_header_field_complete (llhttp_t *p) {
  Parser *q = parser_of(p);
  Field *f = q->piece == 1 ? &q->fields[q->nfields - 1] : NULL;
  if (f == NULL || f->nlen == 0)
    return refuse(q, "HPE_INVALID_HEADER_TOKEN", "Empty header field name");
  if (memchr(q->head + f->name, ' ', f->nlen) != NULL)
    return refuse(q, "HPE_INVALID_HEADER_TOKEN", "Invalid header field char");
  return 0;
}

static int on_header_value (llhttp_t *p, const char *at, size_t n) {
  Parser *q = parser_of(p);
  Field *f = &q->fields[q->nfields - 1];
  if (q->piece != 2) {
    f->value = q->hlen;
    q->piece = 2;
  }
  f->vlen += n;
  return head_bytes(q, at, n);
}

/* Whether the response just parsed has no body whatever its headers say:
   1xx, 204 and 304 (RFC 9112, 6.3).  llhttp 8 would read a body its
   Content-Length or chunked encoding announces, eating the next
   response; llhttp 9 decides this itself. */
static int bodiless (llhttp_t *p) {
  return p->type == HTTP_RESPONSE &&
         (p->status_code / 100 == 1 || p->status_code == 204 ||
          p->status_code == 304);
}

static int on_headers_complete (llhttp_t *p) {
  Parser *q = parser_of(p);
  q->in_head = 0;
  q->event = EV_HEAD;
  /* llhttp takes up to 2^64 - 1: past lua_Integer it would turn negative
     (and pass any check of a body's size) */
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > (uint64_t)LUA_MAXINTEGER)
    return refuse(q, "HPE_INVALID_CONTENT_LENGTH", "Content-Length overflow");
  /* done_with_head: a request with no body, told apart as llhttp does
     next (a Transfer-Encoding other than chunked fails there: that
     error must still come after the head, as without the option) */
  if (q->fuse && p->type == HTTP_REQUEST && !p->upgrade &&
      !(p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) &&
      !((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)) {
    q->fused = 1;                      /* on to its end, one event */
    return 0;
  }
  if (q->skip || bodiless(p)) {        /* no body: on to its end */
    /* an interim response (1xx but 101) comes before the one skip_body
       is for */
    if (!(p->status_code / 100 == 1 && p->status_code != 101)) q->skip = 0;
    q->head_out = 1;
    return 1;
  }
  return HPE_PAUSED;
}

static int on_body (llhttp_t *p, const char *at, size_t n) {
  Parser *q = parser_of(p);
  if (!append(&q->body, &q->blen, &q->bcap, at, n)) return out_of_memory(q);
  return 0;
}

static int on_message_complete (llhttp_t *p) {
  Parser *q = parser_of(p);
  q->in_head = 1;                      /* the next head's bytes from here */
  q->event = EV_DONE;
  return HPE_PAUSED;
}


/* ---------------------------------------------------------- results */

/* The methods' upvalues: the head's keys and the strings it repeats,
   interned once (lua_setfield and lua_pushstring would look each up in
   the string cache, per request), and the metatable. */
enum {
  U_MT = 1, U_METHODS, U_V10, U_V11, E_HEAD, E_DONE, E_MORE,
  K_METHOD, K_TARGET, K_STATUS, K_REASON, K_VERSION, K_HEADERS,
  K_KEEP_ALIVE, K_UPGRADE, K_CHUNKED, K_CONTENT_LENGTH,
  NUPVALUES = K_CONTENT_LENGTH
};

static const char *const upkeys[] = {   /* from U_V10 on */
  "1.0", "1.1", "head", "done", "more",
  "method", "target", "status", "reason", "version", "headers",
  "keep_alive", "upgrade", "chunked", "content_length"
};

/* Pushes the key in upvalue k (lua_rawset(L, -3) after its value). */
static void key (lua_State *L, int k) {
  lua_pushvalue(L, lua_upvalueindex(k));
}

/* Pushes the event name in upvalue e. */
static void event (lua_State *L, int e) {
  lua_pushvalue(L, lua_upvalueindex(e));
}

static void push_method (lua_State *L, int method) {
  if (lua_rawgeti(L, lua_upvalueindex(U_METHODS), method) == LUA_TSTRING)
    return;
  lua_pop(L, 1);
  lua_pushstring(L, llhttp_method_name((llhttp_method_t)method));
  lua_pushvalue(L, -1);
  lua_rawseti(L, lua_upvalueindex(U_METHODS), method);
}

static void push_version (lua_State *L, llhttp_t *p) {
  if (p->http_major == 1 && p->http_minor <= 1)
    lua_pushvalue(L, lua_upvalueindex(p->http_minor ? U_V11 : U_V10));
  else
    lua_pushfstring(L, "%d.%d", (int)p->http_major, (int)p->http_minor);
}

/* Pushes the head just completed (see the top of the file). */
static void push_head (lua_State *L, Parser *q) {
  llhttp_t *p = &q->p;
  const char *head = q->head != NULL ? q->head : "";  /* all empty: NULL */
  int i;
  lua_createtable(L, 0, 9);
  if (p->type == HTTP_REQUEST) {
    key(L, K_METHOD);
    push_method(L, p->method);
    lua_rawset(L, -3);
    key(L, K_TARGET);
    lua_pushlstring(L, head, q->ulen);
    lua_rawset(L, -3);
  }
  else {
    key(L, K_STATUS);
    lua_pushinteger(L, p->status_code);
    lua_rawset(L, -3);
    key(L, K_REASON);
    lua_pushlstring(L, head, q->ulen);
    lua_rawset(L, -3);
  }
  key(L, K_VERSION);
  push_version(L, p);
  lua_rawset(L, -3);
  key(L, K_HEADERS);
  lua_createtable(L, 2 * q->nfields, 0);
  for (i = 0; i < q->nfields; i++) {
    Field *f = &q->fields[i];
    lua_pushlstring(L, head + f->name, f->nlen);
    lua_rawseti(L, -2, 2 * i + 1);
    lua_pushlstring(L, head + f->value, f->vlen);
    lua_rawseti(L, -2, 2 * i + 2);
  }
  lua_rawset(L, -3);
  key(L, K_KEEP_ALIVE);
  lua_pushboolean(L, llhttp_should_keep_alive(p));
  lua_rawset(L, -3);
  key(L, K_UPGRADE);
  lua_pushboolean(L, p->upgrade);
  lua_rawset(L, -3);
  key(L, K_CHUNKED);
  lua_pushboolean(L, (p->flags & F_CHUNKED) != 0);
  lua_rawset(L, -3);
  if (p->flags & F_CONTENT_LENGTH) {
    key(L, K_CONTENT_LENGTH);
    lua_pushinteger(L, (lua_Integer)p->content_length);
    lua_rawset(L, -3);
  }
}

/* Pushes this call's body bytes (and forgets them). */
static void push_body (lua_State *L, Parser *q) {
  lua_pushlstring(L, q->body != NULL ? q->body : "", q->blen);
  q->blen = 0;
}

/* Pushes "error", pos, code, reason for llhttp's error err. */
static int push_error (lua_State *L, Parser *q, llhttp_errno_t err,
                       lua_Integer pos) {
  const char *reason = llhttp_get_error_reason(&q->p);
  lua_pushliteral(L, "error");
  if (pos > 0) lua_pushinteger(L, pos);
  else lua_pushnil(L);
  if (q->code != NULL) {               /* we refused it */
    lua_pushstring(L, q->code);
    lua_pushstring(L, q->reason);
  }
  else {
    lua_pushstring(L, llhttp_errno_name(err));
    lua_pushstring(L, reason != NULL ? reason : "invalid HTTP");
  }
  return 4;
}


/* ---------------------------------------------------------- methods */

/* The parser at 1 (its metatable is the upvalue: no registry look-up). */
static Parser *checkparser (lua_State *L) {
  Parser *q = (Parser *)lua_touserdata(L, 1);
  int same = q != NULL && lua_getmetatable(L, 1) &&
             lua_rawequal(L, -1, lua_upvalueindex(U_MT));
  if (!same) luaL_typeerror(L, 1, "HttpParser");
  lua_pop(L, 1);
  if (q->collected) luaL_error(L, "attempt to use a collected HttpParser");
  return q;
}

/* Whether the head has grown past max_head with the used bytes of this
   call (whitespace and line ends, which the callbacks do not see,
   included).  A head is counted from the end of the message before it,
   whatever the calls it came in, so any split of the same bytes gives
   the same verdict. */
static int head_too_large (Parser *q, size_t used) {
  q->raw += used;
  return q->raw > q->max_head;
}

/* Pushes our HEAD_TOO_LARGE error at pos: it is sticky. */
static int too_large (lua_State *L, Parser *q, lua_Integer pos) {
  q->stuck = 1;
  return push_error(L, q, refuse(q, "HEAD_TOO_LARGE",
                    "the message head is too large"), pos);
}

/* p:execute(data [, init]) -> event, pos, ... (see the top) */
static int p_execute (lua_State *L) {
  Parser *q = checkparser(L);
  size_t len, off, start;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer init = luaL_optinteger(L, 3, 1);
  llhttp_errno_t err;
  luaL_argcheck(L, init >= 1 && (size_t)init <= len + 1, 3,
                "initial position out of range");
  off = (size_t)init - 1;
  if (q->stuck) return push_error(L, q, HPE_USER, init);
  if (q->done_next) {                  /* a head without a body */
    q->done_next = 0;
    event(L, E_DONE);
    lua_pushinteger(L, init);
    push_body(L, q);
    return 3;
  }
  err = llhttp_get_errno(&q->p);
  if (err == HPE_PAUSED_UPGRADE) {     /* the rest is not HTTP */
    lua_pushliteral(L, "upgrade");
    lua_pushinteger(L, init);
    return 2;
  }
  if (err != HPE_OK && err != HPE_PAUSED)   /* failed before: fails again */
    return push_error(L, q, err, init);
  if (err == HPE_PAUSED) llhttp_resume(&q->p);
  q->event = EV_NONE;
  q->blen = 0;
  q->fused = 0;
  start = off;
  err = llhttp_execute(&q->p, data + off, len - off);
  if (err == HPE_OK) {
    if (q->in_head && head_too_large(q, len - start))
      return too_large(L, q, (lua_Integer)len + 1);
    event(L, E_MORE);
    lua_pushinteger(L, (lua_Integer)len + 1);
    push_body(L, q);
    return 3;
  }
  off = (size_t)(llhttp_get_error_pos(&q->p) - data);
  if (err == HPE_PAUSED_UPGRADE) {
    lua_pushliteral(L, "upgrade");
    lua_pushinteger(L, (lua_Integer)off + 1);
    return 2;
  }
  if (err != HPE_PAUSED) return push_error(L, q, err, (lua_Integer)off + 1);
  if (q->event == EV_HEAD || q->head_out || q->fused) {
    if (head_too_large(q, off - start))
      return too_large(L, q, (lua_Integer)off + 1);
    q->raw = 0;
    if (q->head_out) {                 /* paused at its end, in fact */
      q->head_out = 0;
      q->done_next = 1;
    }
    event(L, E_HEAD);
    lua_pushinteger(L, (lua_Integer)off + 1);
    push_head(L, q);
    if (!q->fused) return 3;
    lua_pushboolean(L, 1);
    return 4;
  }
  event(L, E_DONE);
  lua_pushinteger(L, (lua_Integer)off + 1);
  push_body(L, q);
  return 3;
}

/* p:finish(): the connection ended (see the top). */
static int p_finish (lua_State *L) {
  Parser *q = checkparser(L);
  llhttp_errno_t err = llhttp_get_errno(&q->p);
  if (q->stuck) return push_error(L, q, HPE_USER, 0);
  if (q->done_next) {                  /* the end of a head without body */
    q->done_next = 0;
    event(L, E_DONE);
    push_body(L, q);
    return 2;
  }
  if (err == HPE_PAUSED_UPGRADE) return 0;
  if (err != HPE_OK && err != HPE_PAUSED)   /* failed before: fails again */
    return push_error(L, q, err, 0);
  q->event = EV_NONE;
  q->blen = 0;
  if (err == HPE_PAUSED) {
    /* llhttp_finish judges the state at the pause, but what follows a
       message's end or a head (the message's end, the choice of a body)
       is still to run: run it */
    llhttp_resume(&q->p);
    err = llhttp_execute(&q->p, "", 0);
    if (err == HPE_PAUSED_UPGRADE) return 0;
    if (err != HPE_OK && !(err == HPE_PAUSED && q->event == EV_DONE))
      return push_error(L, q, err, 0);
  }
  if (q->event != EV_DONE) {           /* (else a message ended above) */
    err = llhttp_finish(&q->p);
    if (err != HPE_OK && err != HPE_PAUSED) {
      q->stuck = 1;                    /* later calls fail as this one */
      refuse(q, llhttp_errno_name(err), llhttp_get_error_reason(&q->p));
      return push_error(L, q, HPE_USER, 0);
    }
    if (q->event != EV_DONE) return 0;
  }
  event(L, E_DONE);
  push_body(L, q);
  return 2;
}

/* p:skip_body(): the coming response answers a HEAD request. */
static int p_skip_body (lua_State *L) {
  checkparser(L)->skip = 1;
  return 0;
}

static int p_gc (lua_State *L) {
  Parser *q = (Parser *)lua_touserdata(L, 1);
  free(q->head);
  free(q->fields);
  free(q->body);
  q->head = q->body = NULL;
  q->fields = NULL;
  q->hcap = q->bcap = 0;
  q->fcap = 0;
  q->collected = 1;
  return 0;
}

static size_t limit (lua_State *L, int t, const char *k, size_t d) {
  lua_Integer v;
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return d;
  }
  v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  if (v <= 0)
    luaL_error(L, "http_parser: limit '%s' must be a positive integer", k);
  lua_pop(L, 1);
  return (size_t)v;
}

/* core.http_parser(kind [, limits]) -> parser */
static int l_http_parser (lua_State *L) {
  static const char *const kinds[] = {"request", "response", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  Parser *q;
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  q = (Parser *)lua_newuserdatauv(L, sizeof(Parser), 0);
  memset(q, 0, sizeof(*q));
  luaL_setmetatable(L, LUAIO_HTTP_PARSER);
  q->in_head = 1;
  q->max_head = 8192;
  q->max_uri = 8192;
  q->max_headers = 100;
  if (!lua_isnoneornil(L, 2)) {
    size_t mh;
    q->max_head = limit(L, 2, "max_head", q->max_head);
    q->max_uri = limit(L, 2, "max_uri", q->max_uri);
    mh = limit(L, 2, "max_headers", 100);
    q->max_headers = mh > INT_MAX ? INT_MAX : (int)mh;   /* (no wrap) */
    lua_getfield(L, 2, "done_with_head");
    q->fuse = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  llhttp_settings_init(&q->s);
  q->s.on_message_begin = on_message_begin;
  q->s.on_url = on_first_line;
  q->s.on_status = on_first_line;
  q->s.on_header_field = on_header_field;
  q->s.on_header_field_complete = on_header_field_complete;
  q->s.on_header_value = on_header_value;
  q->s.on_headers_complete = on_headers_complete;
  q->s.on_body = on_body;
  q->s.on_message_complete = on_message_complete;
  llhttp_init(&q->p, kind == 0 ? HTTP_REQUEST : HTTP_RESPONSE, &q->s);
  q->p.data = q;
  return 1;
}

static const luaL_Reg methods[] = {
  {"execute", p_execute},
  {"finish", p_finish},
  {"skip_body", p_skip_body},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"http_parser", l_http_parser},
  {NULL, NULL}
};

void luaio__http_parser_open (lua_State *L) {
  if (luaL_newmetatable(L, LUAIO_HTTP_PARSER)) {
    size_t i;
    lua_newtable(L);
    lua_pushvalue(L, -2);                       /* U_MT */
    lua_newtable(L);                            /* U_METHODS */
    for (i = 0; i < sizeof(upkeys) / sizeof(upkeys[0]); i++)
      lua_pushstring(L, upkeys[i]);
    luaL_setfuncs(L, methods, NUPVALUES);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, p_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "HttpParser");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
