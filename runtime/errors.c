/*
** errors.c -- luaio's error classes, created once per lua_State (busted
** reloads Lua modules; the classes must stay the same tables).
**
** A class is a table: __name, __index (itself), __tostring, __super (its
** parent class).  An instance is a table {message =, traceback =, ...}
** whose metatable is its class.  Calling a class makes an instance:
** Class([message] [, fields]).  aio.is(v, Class) walks __super (and a
** class's second parent, __also: ExceptionGroup is both an Error and a
** BaseExceptionGroup, as in Python).
** BaseError is the root of every class (Python's BaseException); Error
** (Exception) is the root of the ordinary failures: CancelledError,
** KeyboardInterrupt, SystemExit and BaseExceptionGroup are not Errors,
** so aio.is(e, aio.Error) never matches a cancellation or an interrupt.
*/
#include <stdarg.h>
#include <string.h>

#include "internal.h"

static const char CLASSES = 'C';     /* registry: name -> class */
static const char CANCELLED = 'X';   /* registry: CancelledError */

static const char *const hierarchy[][2] = {
  {"BaseError", NULL},
  {"Error", "BaseError"},
  {"CancelledError", "BaseError"},
  {"KeyboardInterrupt", "BaseError"},
  {"SystemExit", "BaseError"},
  {"BaseExceptionGroup", "BaseError"},
  {"TimeoutError", "Error"},
  {"InvalidStateError", "Error"},
  {"QueueEmpty", "Error"},
  {"QueueFull", "Error"},
  {"QueueShutDown", "Error"},
  {"IncompleteReadError", "Error"},
  {"LimitOverrunError", "Error"},
  {"BrokenBarrierError", "Error"},
  {"ExceptionGroup", "Error"},
  {"OSError", "Error"},
  {"SSLError", "OSError"},
  {"HTTPError", "Error"},      /* aio.http's (client and server) */
  {"WebSocketError", "Error"}, /* aio.websocket's */
  {NULL, NULL}
};

/* __tostring of instances: "Name: message" or "Name". */
static int err_tostring (lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (lua_getmetatable(L, 1) && lua_getfield(L, -1, "__name") == LUA_TSTRING)
    luaL_addvalue(&b);
  else {
    lua_pop(L, 1);
    luaL_addstring(&b, "error");
  }
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "message") != LUA_TNIL) {
    luaL_addstring(&b, ": ");
    luaL_tolstring(L, -1, NULL);
    luaL_addvalue(&b);
  }
  lua_pop(L, 1);
  luaL_pushresult(&b);
  return 1;
}

/*
** Tracebacks.  luaL_traceback looks every function up in every table of
** package.loaded to print a global name for it; with luaio's modules
** loaded that was ~5,000 table steps per traceback, and error objects
** made in hot paths (a burst of wait_for timeouts) spent most of their
** time there.  This one prints the same layout but looks names up only
** in _G (so "in function 'error'"); other functions are named by how
** they were called ("in field 'sleep'", "in local 'f'") or by where they
** are defined ("in function <file:line>").
*/
#define TB_FIRST 10                    /* levels shown before a "..." */
#define TB_LAST 11                     /* and after it */

/* Pushes the key under which _G holds the function at the top, or nothing. */
static int global_name (lua_State *L) {
  int top = lua_gettop(L);
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, top)) {
      lua_pop(L, 1);                   /* the value */
      lua_remove(L, -2);               /* _G: the key stays */
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

/* Adds how the function of level ar of L1 is known ("function 'error'");
   globals: look the name up in _G first. */
static void describe_function (lua_State *L, lua_State *L1, luaL_Buffer *b,
                               lua_Debug *ar, int globals) {
  int named = 0;
  if (globals) {
    lua_getinfo(L1, "f", ar);          /* the function, on L1 */
    lua_xmove(L1, L, 1);
    named = global_name(L);
    lua_remove(L, named ? -2 : -1);    /* the function */
  }
  if (named) {
    lua_pushfstring(L, "function '%s'", lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  else if (*ar->namewhat != '\0')
    lua_pushfstring(L, "%s '%s'", ar->namewhat, ar->name);
  else if (*ar->what == 'm')
    lua_pushliteral(L, "main chunk");
  else if (*ar->what != 'C')
    lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
  else
    lua_pushliteral(L, "?");
  luaL_addvalue(b);
}

/* The deepest level of L1's stack (0 if it has none above level 0). */
static int last_level (lua_State *L1) {
  lua_Debug ar;
  int yes = 1, no = 1;                 /* a level that exists, one that does not */
  while (lua_getstack(L1, no, &ar)) { yes = no; no *= 2; }
  if (no == 1) return 0;
  while (yes < no - 1) {
    int m = (yes + no) / 2;
    if (lua_getstack(L1, m, &ar)) yes = m; else no = m;
  }
  return yes;
}

/*
** Pushes a traceback of L1 from level on, laid out as luaL_traceback's;
** globals 0 names functions only by how they were called (no look-up in
** _G: about half the cost, for tracebacks taken on a hot path).
*/
void luaio__traceback_ex (lua_State *L, lua_State *L1, const char *msg,
                          int level, int globals) {
  luaL_Buffer b;
  lua_Debug ar;
  int last = last_level(L1);
  int limit = (last - level > TB_FIRST + TB_LAST) ? TB_FIRST : -1;
  luaL_buffinit(L, &b);
  if (msg != NULL) {
    luaL_addstring(&b, msg);
    luaL_addchar(&b, '\n');
  }
  luaL_addstring(&b, "stack traceback:");
  while (lua_getstack(L1, level++, &ar)) {
    if (limit-- == 0) {                /* skip to the last TB_LAST levels */
      int n = last - level - TB_LAST + 1;
      lua_pushfstring(L, "\n\t...\t(skipping %d levels)", n);
      luaL_addvalue(&b);
      level += n;
      continue;
    }
    lua_getinfo(L1, "Slnt", &ar);
    if (ar.currentline <= 0) lua_pushfstring(L, "\n\t%s: in ", ar.short_src);
    else lua_pushfstring(L, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
    luaL_addvalue(&b);
    describe_function(L, L1, &b, &ar, globals);
    if (ar.istailcall) luaL_addstring(&b, "\n\t(...tail calls...)");
  }
  luaL_pushresult(&b);
}

void luaio__traceback (lua_State *L, lua_State *L1, const char *msg,
                       int level) {
  luaio__traceback_ex(L, L1, msg, level, 1);
}

/* Makes an instance of the class at cls; message at msg (0 = none). */
static void instance (lua_State *L, int cls, int msg, int traceback) {
  cls = lua_absindex(L, cls);
  if (msg != 0) msg = lua_absindex(L, msg);
  lua_createtable(L, 0, 2);
  if (msg != 0 && !lua_isnil(L, msg)) {
    lua_pushvalue(L, msg);
    lua_setfield(L, -2, "message");
  }
  if (traceback) {
    luaio__traceback(L, L, NULL, 1);
    lua_setfield(L, -2, "traceback");
  }
  lua_pushvalue(L, cls);
  lua_setmetatable(L, -2);
}

/* Class([message] [, fields]) -> instance */
static int class_call (lua_State *L) {
  int fields = 0, tb = 1;
  if (lua_istable(L, 2) && lua_getmetatable(L, 2) == 0) { fields = 2; }
  else if (lua_istable(L, 3)) fields = 3;
  lua_settop(L, 3);
  if (fields != 0) {                   /* fields giving a traceback: no need */
    tb = lua_getfield(L, fields, "traceback") == LUA_TNIL;
    lua_pop(L, 1);
  }
  instance(L, 1, fields == 2 ? 0 : 2, tb);
  if (fields != 0) {
    lua_pushnil(L);
    while (lua_next(L, fields) != 0) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  return 1;
}

static int class_tostring (lua_State *L) {
  lua_getfield(L, 1, "__name");
  lua_pushfstring(L, "class %s", lua_tostring(L, -1));
  return 1;
}

/* Makes a class named name with parent at parent (0 = none); pushes it. */
static void make_class (lua_State *L, const char *name, int parent) {
  if (parent != 0) parent = lua_absindex(L, parent);
  lua_createtable(L, 0, 6);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, err_tostring);
  lua_setfield(L, -2, "__tostring");
  if (parent != 0) {
    lua_pushvalue(L, parent);
    lua_setfield(L, -2, "__super");
  }
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, class_call);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, class_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setmetatable(L, -2);
}

/* Pushes the registry's class table, making every class the first time. */
static void push_classes (lua_State *L) {
  int i;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CLASSES) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  for (i = 0; hierarchy[i][0] != NULL; i++) {
    if (hierarchy[i][1] != NULL) {
      lua_getfield(L, -1, hierarchy[i][1]);
      make_class(L, hierarchy[i][0], -1);
      lua_remove(L, -2);
    }
    else make_class(L, hierarchy[i][0], 0);
    lua_setfield(L, -2, hierarchy[i][0]);
  }
  lua_getfield(L, -1, "ExceptionGroup");    /* its second parent */
  lua_getfield(L, -2, "BaseExceptionGroup");
  lua_setfield(L, -2, "__also");
  lua_pop(L, 1);
  lua_getfield(L, -1, "CancelledError");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CANCELLED);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CLASSES);
}

void luaio__new_error (lua_State *L, const char *cls, const char *msg,
                       int traceback) {
  push_classes(L);
  lua_getfield(L, -1, cls);
  lua_remove(L, -2);
  if (msg != NULL) lua_pushstring(L, msg);
  else lua_pushnil(L);
  instance(L, -2, -1, traceback);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/*
** luaL_argerror, naming the function fname whatever the call site looks
** like (lauxlib otherwise guesses a name from package.loaded, which gives
** 'luaio.core.sleep' or one of two aliases).
*/
int luaio__argerror (lua_State *L, int arg, const char *fname,
                     const char *extramsg) {
  lua_Debug ar;
  if (lua_getstack(L, 0, &ar)) {
    lua_getinfo(L, "n", &ar);
    if (ar.namewhat != NULL && strcmp(ar.namewhat, "method") == 0) {
      arg--;
      if (arg == 0)
        return luaL_error(L, "calling '%s' on bad self (%s)", fname, extramsg);
    }
  }
  return luaL_error(L, "bad argument #%d to '%s' (%s)", arg, fname, extramsg);
}

int luaio__typeerror (lua_State *L, int arg, const char *fname,
                      const char *tname) {
  const char *got;
  if (luaL_getmetafield(L, arg, "__name") == LUA_TSTRING)
    got = lua_tostring(L, -1);
  else if (lua_type(L, arg) == LUA_TLIGHTUSERDATA)
    got = "light userdata";
  else
    got = luaL_typename(L, arg);
  return luaio__argerror(L, arg, fname,
                         lua_pushfstring(L, "%s expected, got %s", tname, got));
}

/*
** Strings handed to the system are C strings: a '\0' inside one cuts it
** there ("a.txt\0.jpg" opens a.txt, "127.0.0.1\0evil" connects).  Every
** such argument goes through these two, so it is refused instead.
** luaio__tocstring: the string at idx (a string or a number), or NULL if
** it holds a '\0'.  luaio__checkcstring: luaL_checkstring for the
** system, raising "bad argument #arg to 'fname' (embedded null byte)".
*/
const char *luaio__tocstring (lua_State *L, int idx) {
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  return (s != NULL && strlen(s) == len) ? s : NULL;
}

const char *luaio__checkcstring (lua_State *L, int arg, const char *fname) {
  const char *s;
  if (lua_type(L, arg) != LUA_TSTRING && lua_type(L, arg) != LUA_TNUMBER)
    luaio__typeerror(L, arg, fname, "string");
  s = luaio__tocstring(L, arg);
  if (s == NULL) luaio__argerror(L, arg, fname, "embedded null byte");
  return s;
}

/*
** Pushes an aio.OSError for libuv error uverr: message "what: strerror",
** .errno (positive), .code (libuv's name, e.g. "ECONNREFUSED").
*/
void luaio__push_oserror (lua_State *L, int uverr, const char *what) {
  luaio__push_oserror_at(L, uverr, what, NULL);
}

/* The same, naming the address or path the call was about, as Python's
   asyncio does: "connect: connection refused (127.0.0.1:1)". */
void luaio__push_oserror_at (lua_State *L, int uverr, const char *what,
                             const char *addr) {
  if (what != NULL && addr != NULL)
    lua_pushfstring(L, "%s: %s (%s)", what, uv_strerror(uverr), addr);
  else if (what != NULL)
    lua_pushfstring(L, "%s: %s", what, uv_strerror(uverr));
  else
    lua_pushstring(L, uv_strerror(uverr));
  luaio__new_error(L, "OSError", lua_tostring(L, -1), 1);
  lua_remove(L, -2);
  lua_pushinteger(L, -uverr);
  lua_setfield(L, -2, "errno");
  lua_pushstring(L, uv_err_name(uverr));
  lua_setfield(L, -2, "code");
}

int luaio__oserror (lua_State *L, int uverr, const char *what) {
  luaio__push_oserror(L, uverr, what);
  return lua_error(L);
}

int luaio__oserror_at (lua_State *L, int uverr, const char *what,
                       const char *addr) {
  luaio__push_oserror_at(L, uverr, what, addr);
  return lua_error(L);
}

/* Pushes "ip:port" ("[ip]:port" for IPv6) and returns it. */
const char *luaio__push_hostport (lua_State *L, const char *ip, int port) {
  return lua_pushfstring(L, strchr(ip, ':') != NULL ? "[%s]:%d" : "%s:%d",
                         ip, port);
}

/* Raises a new error of class cls with a formatted message. */
int luaio__error (lua_State *L, const char *cls, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  luaio__new_error(L, cls, lua_tostring(L, -1), 1);
  return lua_error(L);
}

/* A CancelledError: no traceback (it is hot), except in debug mode. */
void luaio__push_cancelled (lua_State *L, int msgidx) {
  luaio_Runtime *rt = luaio__state(L)->rt;
  msgidx = lua_absindex(L, msgidx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CANCELLED);
  instance(L, -1, msgidx, rt != NULL && rt->debug);
  lua_remove(L, -2);
}

/* Is the class on the top cls or a subclass of it?  Pops it. */
static int is_subclass (lua_State *L, int cls, int depth) {
  while (depth++ < 64) {
    if (lua_rawequal(L, -1, cls)) { lua_pop(L, 1); return 1; }
    if (lua_getfield(L, -1, "__also") == LUA_TTABLE) {
      if (is_subclass(L, cls, depth)) { lua_pop(L, 1); return 1; }
    }
    else lua_pop(L, 1);
    if (lua_getfield(L, -1, "__super") != LUA_TTABLE) {
      lua_pop(L, 2);
      return 0;
    }
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  return 0;
}

/* Is v (at idx) an instance of the class at cls (or of a subclass)? */
static int is_instance (lua_State *L, int idx, int cls) {
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  return is_subclass(L, cls, 0);
}

int luaio__is_cancelled (lua_State *L, int idx) {
  int r;
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CANCELLED);
  r = is_instance(L, idx, lua_gettop(L));
  lua_pop(L, 1);
  return r;
}

/* Is the value at idx an instance of BaseError (any luaio error)? */
static int is_base_error (lua_State *L, int idx) {
  int r;
  idx = lua_absindex(L, idx);
  push_classes(L);
  lua_getfield(L, -1, "BaseError");
  r = is_instance(L, idx, lua_gettop(L));
  lua_pop(L, 2);
  return r;
}

/* Is the value at v (an error) e, or in e's chain of causes and contexts? */
static int in_chain (lua_State *L, int e, int v, int depth) {
  int r = 0, i;
  static const char *const links[] = {"cause", "context"};
  if (lua_rawequal(L, e, v)) return 1;
  if (depth > 64 || !lua_istable(L, e)) return 0;
  for (i = 0; i < 2 && !r; i++) {
    lua_pushstring(L, links[i]);
    if (lua_rawget(L, e) != LUA_TNIL) r = in_chain(L, lua_gettop(L), v, depth + 1);
    lua_pop(L, 1);
  }
  return r;
}

/*
** The error at eidx was raised while the one at ctxidx unwound (Python's
** implicit chaining): an error object without a context gets it as its
** .context, unless that would make a loop.
*/
void luaio__chain_context (lua_State *L, int eidx, int ctxidx) {
  eidx = lua_absindex(L, eidx);
  ctxidx = lua_absindex(L, ctxidx);
  if (lua_isnil(L, ctxidx) || !is_base_error(L, eidx)) return;
  lua_pushliteral(L, "context");
  if (lua_rawget(L, eidx) != LUA_TNIL || in_chain(L, ctxidx, eidx, 0)) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushliteral(L, "context");
  lua_pushvalue(L, ctxidx);
  lua_rawset(L, eidx);
}

/* Is the value at idx an instance of one of luaio's classes? */
int luaio__is_error_object (lua_State *L, int idx) {
  int r = 0;
  if (!lua_istable(L, idx) || !lua_getmetatable(L, idx)) return 0;
  if (lua_getfield(L, -1, "__tostring") == LUA_TFUNCTION)
    r = lua_tocfunction(L, -1) == err_tostring;
  lua_pop(L, 2);
  return r;
}

/* aio.is(v, Class) -> boolean */
static int l_is (lua_State *L) {
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushboolean(L, is_instance(L, 1, 2));
  return 1;
}

/* core.new_error_class(name [, parent]) -> class */
static int l_new_class (lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (lua_isnoneornil(L, 2)) {        /* default parent: aio.Error */
    push_classes(L);
    lua_getfield(L, -1, "Error");
    lua_replace(L, 2);
    lua_settop(L, 2);
  }
  make_class(L, name, 2);
  return 1;
}

/* A class's name for messages: its __name without "luaio.". */
static const char *class_name (const char *name) {
  return strncmp(name, "luaio.", 6) == 0 ? name + 6 : name;
}

/* Raises "calling 'Cls:m' on bad self (Cls expected, got x); call it
   with ':'" for the value at idx 1, blaming level as error() does. */
static int bad_self (lua_State *L, const char *cls, const char *m,
                     int level) {
  const char *got = luaL_typename(L, 1);
  if (luaL_getmetafield(L, 1, "__name") == LUA_TSTRING)
    got = class_name(lua_tostring(L, -1));
  luaL_where(L, level);
  lua_pushfstring(L, "calling '%s:%s' on bad self (%s expected, got %s);"
                  " call it with ':'", cls, m, cls, got);
  lua_concat(L, 2);
  return lua_error(L);
}

/*
** core.bad_self(self, "Lock", "acquire" [, level]): the error for a
** method of a Lua class called on something else -- almost always `x.m()`
** for `x:m()`.  Called only once the caller's own metatable check
** failed; level: as error()'s, counted from bad_self's caller (default
** 2: the method's caller, when the method itself calls bad_self).
*/
static int l_bad_self (lua_State *L) {
  const char *cls = luaL_checkstring(L, 2);
  const char *m = luaL_checkstring(L, 3);
  return bad_self(L, cls, m, (int)luaL_optinteger(L, 4, 2));
}

/* The key of the running function in the table at idx, pushed; NULL
   (nothing pushed) when it is not there. */
static const char *running_as (lua_State *L, int idx) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar)) return NULL;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, -3)) {
      lua_pop(L, 1);
      lua_remove(L, -2);
      return lua_tostring(L, -1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return NULL;
}

/*
** Called when arg idx is not an object of the core class tname (its
** metatable in the registry): when idx is 1 and the running C function
** is one of the class's methods, raises the bad-self error naming it
** (`x.m()` for `x:m()`); else returns, for the caller's own error.
*/
void luaio__check_self (lua_State *L, int idx, const char *tname) {
  int top = lua_gettop(L), mt, methods;
  const char *m, *cls;
  if (idx != 1 || luaL_getmetatable(L, tname) != LUA_TTABLE) {
    lua_settop(L, top);
    return;
  }
  mt = lua_gettop(L);
  lua_getfield(L, mt, "__name");
  cls = class_name(lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : tname);
  switch (lua_getfield(L, mt, "__index")) {  /* or the table behind a */
    case LUA_TFUNCTION:                     /* C closure's upvalue 1 */
      methods = lua_getupvalue(L, -1, 1) != NULL && lua_istable(L, -1)
                ? lua_gettop(L) : mt;
      break;
    case LUA_TTABLE: methods = lua_gettop(L); break;
    default: methods = mt;
  }
  m = running_as(L, methods);
  if (m != NULL) bad_self(L, cls, m, 1);
  lua_settop(L, top);
}

/* luaL_checkudata for a core class, with the bad-self error for its
   methods. */
void *luaio__checkclass (lua_State *L, int idx, const char *tname) {
  void *p = luaL_testudata(L, idx, tname);
  if (p == NULL) {
    luaio__check_self(L, idx, tname);
    p = luaL_checkudata(L, idx, tname);
  }
  return p;
}

/* Levenshtein distance between a and b (names up to 63 bytes; longer
   ones are never close). */
static size_t distance (const char *a, size_t la, const char *b, size_t lb) {
  size_t row[64], i, j;
  if (la >= 64 || lb >= 64) return (size_t)-1;
  for (j = 0; j <= lb; j++) row[j] = j;
  for (i = 1; i <= la; i++) {
    size_t diag = row[0], up;
    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t best = diag + (a[i - 1] != b[j - 1]);
      up = row[j];
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[lb];
}

/* Raises "fname: unknown option 'k'" for the key on the top, with a
   did-you-mean for the closest known key within 2 edits (ties: the
   first in byte order). */
static int unknown_option (lua_State *L, const char *fname, int known,
                           int level) {
  size_t lk, best_d = 3;
  const char *k = luaL_tolstring(L, -1, &lk), *best = NULL;
  int key = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, known)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && lua_type(L, key - 1) == LUA_TSTRING) {
      size_t ln;
      const char *n = lua_tolstring(L, -1, &ln);
      size_t d = distance(k, lk, n, ln);
      if (d < best_d || (d == best_d && best != NULL && strcmp(n, best) < 0)) {
        best_d = d;
        best = n;
      }
    }
  }
  luaL_where(L, level);
  if (best != NULL)
    lua_pushfstring(L, "%s: unknown option '%s' (did you mean '%s'?)",
                    fname, k, best);
  else lua_pushfstring(L, "%s: unknown option '%s'", fname, k);
  lua_concat(L, 2);
  return lua_error(L);
}

/*
** core.check_options(opts, fname, known [, level]): the one check of an
** options table: a key of opts (nil: none) that is not a key of known
** raises "fname: unknown option 'stdot' (did you mean 'stdout'?)",
** blaming level as error() does (default 1: check_options's caller).
*/
static int l_check_options (lua_State *L) {
  const char *fname = luaL_checkstring(L, 2);
  int level = (int)luaL_optinteger(L, 4, 1);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (lua_isnil(L, 1)) return 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, 3) == LUA_TNIL) {
      lua_pop(L, 1);
      return unknown_option(L, fname, 3, level);
    }
    lua_pop(L, 1);
  }
  return 0;
}

static const luaL_Reg funcs[] = {
  {"is", l_is},
  {"bad_self", l_bad_self},
  {"check_options", l_check_options},
  {"new_error_class", l_new_class},
  {NULL, NULL}
};

void luaio__errors_open (lua_State *L) {
  int i;
  luaio__setfuncs(L, funcs);
  push_classes(L);
  for (i = 0; hierarchy[i][0] != NULL; i++) {
    lua_getfield(L, -1, hierarchy[i][0]);
    lua_setfield(L, -3, hierarchy[i][0]);
  }
  lua_pop(L, 1);
}
