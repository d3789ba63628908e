/*
** signal.c -- loop:add_signal_handler(sig, fn, ...) and
** remove_signal_handler(sig).
**
** One uv_signal_t per watched signal and runtime.  The libuv callback only
** schedules an entry; the drain calls fn(...) like a call_soon callback
** (not a task: it may not suspend; its errors go to the exception
** handler).  The functions live in R.signals[signum].  A watched signal
** keeps the loop alive, so a main task waiting for it does not deadlock.
** Setting a SIGINT handler replaces run()'s Ctrl-C handling.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct Watch {
  uv_signal_t h;
  luaio_Runtime *rt;
  struct Watch *next;
  int signum;
  int active;
} Watch;

static const struct { const char *name; int num; } names[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGIO", SIGIO}, {"SIGSYS", SIGSYS}, {NULL, 0}
};

/* A signal number from a number or a name ("SIGTERM" or "TERM"). */
int luaio__checksignal (lua_State *L, int arg, const char *fname) {
  int i;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n;
    if (!lua_isinteger(L, arg))
      luaio__argerror(L, arg, fname, "invalid signal number");
    n = lua_tointeger(L, arg);
    if (n <= 0 || n >= 65)
      luaio__argerror(L, arg, fname, "invalid signal number");
    return (int)n;
  }
  if (lua_type(L, arg) == LUA_TSTRING) {
    const char *s = lua_tostring(L, arg);
    for (i = 0; names[i].name != NULL; i++)
      if (strcmp(s, names[i].name) == 0 || strcmp(s, names[i].name + 3) == 0)
        return names[i].num;
    luaio__argerror(L, arg, fname, lua_pushfstring(L, "unknown signal '%s'", s));
  }
  luaio__typeerror(L, arg, fname, "signal number or name");
  return 0;
}

static Watch *find (luaio_Runtime *rt, int signum) {
  Watch *w;
  for (w = (Watch *)rt->signals; w != NULL; w = w->next)
    if (w->signum == signum) return w;
  return NULL;
}

static void on_signal (uv_signal_t *h, int signum) {
  Watch *w = (Watch *)h->data;
  luaio__schedule(w->rt, E_SIGNAL, NULL, signum);
}

/* Runs the handler of signum (from the drain). */
void luaio__run_signal (lua_State *L, luaio_Runtime *rt, int signum) {
  int n, i, top = lua_gettop(L);
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "signals");
  if (lua_rawgeti(L, -1, signum) != LUA_TTABLE) { lua_settop(L, top); return; }
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n + 4, "too many arguments");
  for (i = 1; i <= n; i++) lua_rawgeti(L, top + 3, i);
  luaio__call_reporting(L, rt, n - 1, "signal", top + 3);
  lua_settop(L, top);
}

static void on_closed (uv_handle_t *h) {
  Watch *w = (Watch *)h->data;
  w->rt->open_handles--;
  free(w);
}

/* loop:add_signal_handler(sig, fn, ...) */
static int loop_add (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  int signum = luaio__checksignal(L, 2, "add_signal_handler");
  int n = lua_gettop(L), i;
  Watch *w;
  if (lua_type(L, 3) != LUA_TFUNCTION)
    return luaio__typeerror(L, 3, "add_signal_handler", "function");
  if (signum == SIGKILL || signum == SIGSTOP)
    return luaio__argerror(L, 2, "add_signal_handler",
                           "this signal cannot be caught");
  luaio__push_R(L, rt);
  if (lua_getfield(L, -1, "signals") != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "signals");
  }
  lua_createtable(L, n - 2, 1);        /* fn, args..., n (nils kept) */
  for (i = 3; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i - 2);
  }
  lua_pushinteger(L, n - 2);
  lua_setfield(L, -2, "n");
  lua_rawseti(L, -2, signum);
  w = find(rt, signum);
  if (w == NULL) {
    w = (Watch *)calloc(1, sizeof(Watch));
    if (w == NULL) return luaL_error(L, "not enough memory");
    if (uv_signal_init(rt->loop, &w->h) != 0) {
      free(w);
      return luaL_error(L, "add_signal_handler: cannot watch signals");
    }
    w->h.data = w;
    w->rt = rt;
    w->signum = signum;
    w->next = (Watch *)rt->signals;
    rt->signals = w;
    rt->open_handles++;
  }
  if (!w->active) {
    int r = uv_signal_start(&w->h, on_signal, signum);
    if (r != 0)
      return luaL_error(L, "add_signal_handler: %s", uv_strerror(r));
    w->active = 1;
  }
  if (signum == SIGINT) {               /* replaces run()'s Ctrl-C */
    rt->user_sigint = 1;
    if (rt->sigint_on) uv_signal_stop(&rt->sigint);
  }
  return 0;
}

static void unlink_watch (luaio_Runtime *rt, Watch *w) {
  Watch **pp;
  for (pp = (Watch **)&rt->signals; *pp != NULL; pp = &(*pp)->next)
    if (*pp == w) { *pp = w->next; break; }
}

/* loop:remove_signal_handler(sig) -> true if a handler was removed */
static int loop_remove (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  int signum = luaio__checksignal(L, 2, "remove_signal_handler");
  Watch *w = find(rt, signum);
  if (w == NULL || !w->active) {
    lua_pushboolean(L, 0);
    return 1;
  }
  w->active = 0;
  unlink_watch(rt, w);
  uv_close((uv_handle_t *)&w->h, on_closed);   /* stops it too */
  if (signum == SIGINT) {
    rt->user_sigint = 0;
    luaio__rewatch_sigint(rt);         /* run()'s Ctrl-C again, if it runs */
  }
  luaio__push_R(L, rt);
  lua_getfield(L, -1, "signals");
  lua_pushnil(L);
  lua_rawseti(L, -2, signum);
  lua_pushboolean(L, 1);
  return 1;
}

/* loop:_signal_unref(sig): the watch no longer keeps the loop alive (the
   CLI's SIGUSR1 dump must not hide a deadlock). */
static int loop_unref (lua_State *L) {
  luaio_Runtime *rt = luaio__checkloop(L, 1);
  Watch *w = find(rt, luaio__checksignal(L, 2, "_signal_unref"));
  if (w != NULL) uv_unref((uv_handle_t *)&w->h);
  return 0;
}

/* Closes every signal watch of rt (shutdown). */
void luaio__close_signals (luaio_Runtime *rt) {
  Watch *w = (Watch *)rt->signals, *next;
  rt->signals = NULL;
  for (; w != NULL; w = next) {
    next = w->next;
    uv_close((uv_handle_t *)&w->h, on_closed);
  }
}

/*
** core.ignore_sigpipe(): SIGPIPE at its default becomes ignored, so that
** writing to a closed peer raises EPIPE instead of killing the process
** (the CLI and stock lua5.4; an embedding host's dispositions are its own).
*/
static int l_ignore_sigpipe (lua_State *L) {
  struct sigaction cur;
  if (!luaio__state(L)->embedded && sigaction(SIGPIPE, NULL, &cur) == 0 &&
      cur.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  return 0;
}

static const luaL_Reg loop_methods[] = {
  {"add_signal_handler", loop_add},
  {"remove_signal_handler", loop_remove},
  {"_signal_unref", loop_unref},
  {NULL, NULL}
};

void luaio__signal_open (lua_State *L) {
  lua_pushcfunction(L, l_ignore_sigpipe);
  lua_setfield(L, -2, "ignore_sigpipe");
  luaL_getmetatable(L, LUAIO_LOOP);
  lua_getfield(L, -1, "methods");
  luaio__setfuncs(L, loop_methods);
  lua_pop(L, 2);
}
