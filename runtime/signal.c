/*
** signal.c -- loop:add_signal_handler(sig, fn, ...) and
** remove_signal_handler(sig).
**
** One uv_signal_t per watched signal and runtime.  The libuv callback only
** schedules an entry; the drain calls fn(...) like a call_soon callback
** (not a task: it may not suspend; its errors go to the exception
** handler).  The functions live in R.signals[signum].  A watched signal
** keeps the loop alive, so a main task waiting for it does not deadlock.
**
** Ctrl-C: while run() runs, SIGINT cancels the main task (a second one
** kills the process as SIGINT says), as asyncio.run does.  Setting a
** SIGINT handler replaces this.  A runtime's watches and its Ctrl-C
** watch are kept in its ext slot and closed by its hook at shutdown.
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

/* A runtime's signal state. */
typedef struct Signals {
  Hook hook;                   /* on rt->open: closes it all at shutdown */
  luaio_Runtime *rt;
  Watch *watches;
  uv_signal_t sigint;          /* run()'s Ctrl-C watch */
  int sigint_on;               /* initialised (an open handle) */
  int user_sigint;             /* a SIGINT handler replaces Ctrl-C's */
  struct sigaction old_sigint; /* restored when run() returns */
} Signals;

static const char KEY = 'S';   /* its ext slot */

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



/* ---------------------------------------------------------- per runtime */

static void close_all (luaio_Runtime *rt, Hook *h);
static void rewatch_sigint (luaio_Runtime *rt);

/* rt's signal state, made on first use (NULL: out of memory). */
static Signals *signals_of (luaio_Runtime *rt) {
  Signals *g = (Signals *)luaio__ext(rt, &KEY);
  if (g != NULL) return g;
  g = (Signals *)calloc(1, sizeof(Signals));
  if (g == NULL) return NULL;
  if (!luaio__set_ext(rt, &KEY, g)) {
    free(g);
    return NULL;
  }
  g->rt = rt;
  luaio__hook(&rt->open, &g->hook, close_all);
  return g;
}

static Watch *find (luaio_Runtime *rt, int signum) {
  Signals *g = (Signals *)luaio__ext(rt, &KEY);
  Watch *w;
  for (w = g != NULL ? g->watches : NULL; w != NULL; w = w->next)
    if (w->signum == signum) return w;
  return NULL;
}


/* ---------------------------------------------------------- handlers */

/* Runs the handler of signum (from the drain). */
static void run_signal (lua_State *L, luaio_Runtime *rt, void *p,
                        int signum) {
  int n, i, top = lua_gettop(L);
  (void)p;
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

static void on_signal (uv_signal_t *h, int signum) {
  Watch *w = (Watch *)h->data;
  luaio__schedule(w->rt, run_signal, NULL, signum);
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
  Signals *g;
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
    if ((g = signals_of(rt)) == NULL ||
        (w = (Watch *)calloc(1, sizeof(Watch))) == NULL)
      return luaL_error(L, "not enough memory");
    if (uv_signal_init(rt->loop, &w->h) != 0) {
      free(w);
      return luaL_error(L, "add_signal_handler: cannot watch signals");
    }
    w->h.data = w;
    w->rt = rt;
    w->signum = signum;
    w->next = g->watches;
    g->watches = w;
    rt->open_handles++;
  }
  if (!w->active) {
    int r = uv_signal_start(&w->h, on_signal, signum);
    if (r != 0)
      return luaL_error(L, "add_signal_handler: %s", uv_strerror(r));
    w->active = 1;
  }
  if (signum == SIGINT) {               /* replaces run()'s Ctrl-C */
    g = signals_of(rt);
    g->user_sigint = 1;
    if (g->sigint_on) uv_signal_stop(&g->sigint);
  }
  return 0;
}

static void unlink_watch (luaio_Runtime *rt, Watch *w) {
  Signals *g = (Signals *)luaio__ext(rt, &KEY);
  Watch **pp;
  for (pp = &g->watches; *pp != NULL; pp = &(*pp)->next)
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
  if (signum == SIGINT) rewatch_sigint(rt);  /* run()'s Ctrl-C again */
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

/* ---------------------------------------------------------- Ctrl-C */

static int interrupt_main (lua_State *L) {
  luaio_Runtime *rt = (luaio_Runtime *)lua_touserdata(L, 1);
  if (rt->main != NULL && rt->main->tstate != T_DONE)
    luaio__task_cancel(L, rt->main, 0);
  return 0;
}

static void on_sigint (uv_signal_t *h, int signum) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  lua_State *S = rt->S;
  int top;
  (void)signum;
  if (rt->interrupted || rt->closed) {  /* second Ctrl-C (or the Lua state
                                           is gone): die as SIGINT says */
    uv_signal_stop(h);
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
    return;
  }
  rt->interrupted = 1;
  top = lua_gettop(S);
  lua_pushcfunction(S, interrupt_main);
  lua_pushlightuserdata(S, rt);
  lua_pcall(S, 1, 0, 0);
  lua_settop(S, top);
  luaio__kick(rt);
}

/*
** Watches SIGINT while run() runs, unless the process ignores it.  The
** watch keeps the loop alive: a main task sleeping forever waits for
** Ctrl-C, as in asyncio.  Only when nothing at all could wake the main
** task does run() report a deadlock.
*/
int luaio__watch_sigint (luaio_Runtime *rt) {
  struct sigaction cur;
  Signals *g = signals_of(rt);
  if (g == NULL || g->user_sigint) return 0;
  if (sigaction(SIGINT, NULL, &cur) != 0 || cur.sa_handler == SIG_IGN)
    return 0;
  if (!g->sigint_on) {
    uv_signal_init(rt->loop, &g->sigint);
    g->sigint.data = rt;
    g->sigint_on = 1;
    rt->open_handles++;
    rt->own_handles++;
  }
  g->old_sigint = cur;
  uv_signal_start(&g->sigint, on_sigint, SIGINT);
  return 1;          /* referenced: Ctrl-C can still wake the main task */
}

/* run() returns: SIGINT is the process's again. */
void luaio__unwatch_sigint (luaio_Runtime *rt) {
  Signals *g = (Signals *)luaio__ext(rt, &KEY);
  uv_signal_stop(&g->sigint);
  sigaction(SIGINT, &g->old_sigint, NULL);
}

/* A user's SIGINT handler was removed: while run() runs, watch again. */
static void rewatch_sigint (luaio_Runtime *rt) {
  Signals *g = (Signals *)luaio__ext(rt, &KEY);
  g->user_sigint = 0;
  if (g->sigint_on && rt->running_depth > 0 && rt->main != NULL &&
      !uv_is_active((uv_handle_t *)&g->sigint))
    uv_signal_start(&g->sigint, on_sigint, SIGINT);
}


/* ---------------------------------------------------------- shutdown */

static void sigint_closed (uv_handle_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  Signals *g = (Signals *)((char *)h - offsetof(Signals, sigint));
  rt->open_handles--;
  rt->own_handles--;
  free(g);
}

/* rt's hook on its open list: closes every watch, then the state. */
static void close_all (luaio_Runtime *rt, Hook *h) {
  Signals *g = (Signals *)h;
  Watch *w = g->watches, *next;
  g->watches = NULL;
  for (; w != NULL; w = next) {
    next = w->next;
    uv_close((uv_handle_t *)&w->h, on_closed);
  }
  luaio__set_ext(rt, &KEY, NULL);
  if (g->sigint_on) uv_close((uv_handle_t *)&g->sigint, sigint_closed);
  else free(g);
}




static const luaL_Reg loop_methods[] = {
  {"add_signal_handler", loop_add},
  {"remove_signal_handler", loop_remove},
  {"_signal_unref", loop_unref},
  {NULL, NULL}
};

void luaio__signal_open (lua_State *L) {
  luaL_getmetatable(L, LUAIO_LOOP);
  lua_getfield(L, -1, "methods");
  luaio__setfuncs(L, loop_methods);
  lua_pop(L, 2);
}
