/*
** cli.c -- the luaio command: lua.c's interface, where the script's main
** chunk runs as the main task of an event loop.
**
**   luaio [options] [script [args]]
**
** Options as lua's: -e stat, -l mod, -i, -v, -E, -W, --, - (stdin);
** --workers N runs the script in N worker processes (luaio.workers).
** The C part parses the command line, makes the state, preloads the
** embedded stdlib and hands over to luaio._cli (Lua), which runs
** LUA_INIT, -e, -l and the script inside the main task and returns the
** exit status.  Errors are printed here, as lua.c prints them.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "luaio.h"

static const char *progname = "luaio";

/* registry["luaio.exepath"]() -> the path of this executable, or nil. */
static int exepath (lua_State *L) {
  char exe[4096];
  size_t n = sizeof exe;
  if (uv_exepath(exe, &n) != 0) return 0;
  lua_pushlstring(L, exe, n);
  return 1;
}



/* ---------------------------------------------------------- readline */

/*
** luaio._readline (only in the CLI, when built with GNU readline):
** readline(prompt) -> line, nil at EOF, or false after interrupt(); read
** through the loop with readline's callback interface on a uv_poll of
** stdin, so that tasks keep running while the prompt waits.  The task
** waits with the embedding API (luaio_pending / luaio_resolve).
** hide() clears the prompt and the line being typed, if shown (true
** then), so that a background task's output does not mix with them;
** show() draws them again below it.  history(path) loads the history
** file and appends each line to it; close() trims it.
**
** The library itself is loaded (dlopen) when the REPL first asks for it:
** linked in, it cost every luaio run ~80 us of start-up.
*/
#ifdef LUAIO_READLINE
#include <dlfcn.h>
#include <errno.h>
#include <readline/readline.h>
#include <readline/history.h>

#define HISTORY_KEEP 1000              /* lines the history file keeps */

static struct {
  __typeof__(add_history) *add_history;
  __typeof__(rl_callback_handler_install) *handler_install;
  __typeof__(rl_callback_handler_remove) *handler_remove;
  __typeof__(rl_callback_read_char) *read_char;
  __typeof__(rl_crlf) *crlf;
  __typeof__(rl_free_line_state) *free_line_state;
  __typeof__(rl_replace_line) *replace_line;
  __typeof__(rl_clear_visible_line) *clear_visible_line;
  __typeof__(rl_forced_update_display) *forced_update_display;
  __typeof__(read_history) *read_history;
  __typeof__(write_history) *write_history;
  __typeof__(append_history) *append_history;
  __typeof__(history_truncate_file) *history_truncate_file;
  int *catch_signals;
} rl;

/* Loads GNU readline once; 0 if it cannot be found. */
static int load_readline (void) {
  static const char *const names[] = {"libreadline.so.8", "libreadline.so", NULL};
  void *h = NULL;
  int i;
  if (rl.add_history != NULL) return 1;
  for (i = 0; names[i] != NULL && h == NULL; i++)
    h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return 0;
#define SYM(f, name) rl.f = (__typeof__(rl.f))dlsym(h, name)
  SYM(add_history, "add_history");
  SYM(handler_install, "rl_callback_handler_install");
  SYM(handler_remove, "rl_callback_handler_remove");
  SYM(read_char, "rl_callback_read_char");
  SYM(crlf, "rl_crlf");
  SYM(free_line_state, "rl_free_line_state");
  SYM(replace_line, "rl_replace_line");
  SYM(clear_visible_line, "rl_clear_visible_line");
  SYM(forced_update_display, "rl_forced_update_display");
  SYM(read_history, "read_history");
  SYM(write_history, "write_history");
  SYM(append_history, "append_history");
  SYM(history_truncate_file, "history_truncate_file");
  SYM(catch_signals, "rl_catch_signals");
#undef SYM
  if (!rl.add_history || !rl.handler_install || !rl.handler_remove ||
      !rl.read_char || !rl.crlf || !rl.free_line_state ||
      !rl.replace_line || !rl.clear_visible_line ||
      !rl.forced_update_display || !rl.read_history || !rl.write_history ||
      !rl.append_history || !rl.history_truncate_file || !rl.catch_signals) {
    memset(&rl, 0, sizeof rl);
    dlclose(h);
    return 0;
  }
  return 1;
}

static uv_poll_t rl_poll;
static int rl_polling, rl_inited, rl_hidden;
static luaio_Pending *rl_waiting;
static char *rl_line;
static int rl_eof, rl_interrupted;
static char *history_path;             /* NULL: no history file */

/* (L NULL: the task was cancelled after the line came; it is dropped) */
static int push_line (lua_State *L, void *ud) {
  int eof = rl_eof, interrupted = rl_interrupted;
  (void)ud;
  rl_eof = rl_interrupted = 0;
  if (L != NULL) {
    if (eof) lua_pushnil(L);
    else if (interrupted) lua_pushboolean(L, 0);   /* Ctrl-C: input dropped */
    else lua_pushstring(L, rl_line);
  }
  free(rl_line);
  rl_line = NULL;
  return L != NULL;
}

static void stop_polling (void) {
  if (rl_polling) { uv_poll_stop(&rl_poll); rl_polling = 0; }
}

/* The pending readline() returns (push_line says what). */
static void finish_read (void) {
  rl.handler_remove();
  stop_polling();
  rl_hidden = 0;
  if (rl_waiting != NULL) {
    luaio_Pending *p = rl_waiting;
    rl_waiting = NULL;
    luaio_resolve(p, push_line, NULL);
  }
}

static void on_rl_line (char *line) {
  if (line == NULL) rl_eof = 1;
  else {
    if (*line) {
      rl.add_history(line);
      if (history_path != NULL) rl.append_history(1, history_path);
    }
    rl_line = line;
  }
  finish_read();
}

static void on_rl_poll (uv_poll_t *h, int status, int events) {
  (void)h; (void)status; (void)events;
  rl.read_char();
}

/* The waiting task was cancelled: stop reading, and resolve (nobody will
   receive a line), so that the pending is freed and no shutdown waits. */
static void on_rl_cancel (void *ud) {
  luaio_Pending *p = rl_waiting;
  (void)ud;
  rl_waiting = NULL;
  rl.handler_remove();
  stop_polling();
  if (p != NULL) luaio_resolve(p, NULL, NULL);
}

static int l_readline (lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, "> ");
  luaio_Runtime *rt = luaio_running(L);
  luaio_Pending *p;
  if (rt == NULL) return luaL_error(L, "readline: no running loop");
  if (!rl_inited) {
    uv_poll_init(luaio_loop(rt), &rl_poll, 0);
    uv_unref((uv_handle_t *)&rl_poll);
    *rl.catch_signals = 0;              /* luaio handles SIGINT */
    rl_inited = 1;
  }
  p = luaio_pending(L);
  rl_waiting = p;
  luaio_pending_on_cancel(p, on_rl_cancel, NULL);
  rl.handler_install(prompt, on_rl_line);
  uv_poll_start(&rl_poll, UV_READABLE, on_rl_poll);
  rl_polling = 1;
  return luaio_await(L, p);
}

/* interrupt(): Ctrl-C at the prompt: what was typed is dropped and the
   waiting readline() returns false (the REPL drops its lines too). */
static int l_rl_interrupt (lua_State *L) {
  (void)L;
  if (!rl_polling) return 0;
  rl.free_line_state();
  rl.replace_line("", 0);
  rl.crlf();
  rl_interrupted = 1;
  finish_read();
  return 0;
}

/* hide() -> true if the prompt was shown and is cleared now. */
static int l_rl_hide (lua_State *L) {
  int hide = rl_polling && !rl_hidden;
  if (hide) {
    rl.clear_visible_line();
    fflush(stdout);
    rl_hidden = 1;
  }
  lua_pushboolean(L, hide);
  return 1;
}

/* show(): the prompt and the line being typed, drawn again. */
static int l_rl_show (lua_State *L) {
  (void)L;
  if (rl_polling && rl_hidden) {
    rl_hidden = 0;
    fflush(stdout);
    fflush(stderr);
    rl.forced_update_display();
  }
  return 0;
}

/* history(path): loads it (made, empty, when missing) and appends each
   line read to it.  -> true, or nil and why. */
static int l_rl_history (lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int r = rl.read_history(path);
  if (r == ENOENT) r = rl.write_history(path);
  if (r != 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(r));
    return 2;
  }
  free(history_path);
  history_path = strdup(path);
  lua_pushboolean(L, 1);
  return 1;
}

/* close(): before exit (the poll handle belongs to the closing loop). */
static int l_rl_close (lua_State *L) {
  (void)L;
  if (rl_inited) {
    rl.handler_remove();
    stop_polling();
    uv_close((uv_handle_t *)&rl_poll, NULL);
    rl_inited = 0;
  }
  if (history_path != NULL) {
    rl.history_truncate_file(history_path, HISTORY_KEEP);
    free(history_path);
    history_path = NULL;
  }
  return 0;
}

static int open_readline (lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"readline", l_readline}, {"interrupt", l_rl_interrupt},
    {"hide", l_rl_hide}, {"show", l_rl_show}, {"history", l_rl_history},
    {"close", l_rl_close}, {NULL, NULL}
  };
  if (!load_readline())
    return luaL_error(L, "GNU readline (libreadline.so.8) could not be loaded");
  luaL_newlib(L, funcs);
  return 1;
}
#endif

static void print_usage (const char *badoption) {
  if (badoption != NULL) {
    if (badoption[1] == 'e' || badoption[1] == 'l')
      fprintf(stderr, "%s: '%s' needs argument\n", progname, badoption);
    else
      fprintf(stderr, "%s: unrecognized option '%s'\n", progname, badoption);
  }
  fprintf(stderr,
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat   execute string 'stat'\n"
    "  -i        enter interactive mode after executing 'script'\n"
    "  -l mod    require library 'mod' into global 'mod'\n"
    "  -v        show version information\n"
    "  -E        ignore environment variables\n"
    "  -W        turn warnings on\n"
    "  -h        show this help\n"
    "  --workers N  run the script in N worker processes sharing its\n"
    "            listening ports, under a supervisor (N: a number or auto)\n"
    "  --        stop handling options\n"
    "  -         stop handling options and execute stdin\n"
    "The script runs as the main task of an event loop: it may call\n"
    "aio.sleep() and every other suspending function at top level\n"
    "(aio = require \"luaio\"; at the prompt, aio is there already).\n"
    "The prompt keeps its history in LUAIO_HISTORY (empty: none), else\n"
    "$XDG_STATE_HOME/luaio_history, else ~/.luaio_history.\n",
    progname);
  fflush(stderr);
}

/* LUAIO_LUA_FROM: the build's word on which Lua the CLI links (Makefile,
   tools/lua_build.sh); none when it links the installed one as it is. */
#ifdef LUAIO_LUA_FROM
#define LUA_FROM " [" LUAIO_LUA_FROM "]"
#else
#define LUA_FROM ""
#endif

static void print_version (void) {
  printf("luaio %s (%s%s, libuv %s)\n", LUAIO_VERSION, LUA_RELEASE,
         LUA_FROM, uv_version_string());
  fflush(stdout);
}

static int panic (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "%s: PANIC: unprotected error in call to Lua API (%s)\n",
          progname, msg ? msg : "error object is not a string");
  fflush(stderr);
  return 0;                            /* abort */
}

/* Reports an error value on top as lua.c does. */
static void report (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL) msg = "(error object is not a string)";
  fprintf(stderr, "%s: %s\n", progname, msg);
  fflush(stderr);
  lua_pop(L, 1);
}

/* main's body, under lua_pcall: argv as a light userdata pair. */
static int pmain (lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int i, script = 0, noenv = 0, interactive = 0, warn = 0, nact = 0;
  const char *workers = NULL;
  lua_createtable(L, 8, 0);            /* actions: {"e", code} ... */
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { script = i; break; }
    if (strcmp(a, "--") == 0) { script = i + 1 < argc ? i + 1 : 0; break; }
    if (strcmp(a, "-") == 0) { script = i; break; }
    if (strcmp(a, "-E") == 0) noenv = 1;
    else if (strcmp(a, "-W") == 0) warn = 1;
    else if (strcmp(a, "-i") == 0) interactive = 1;
    else if (strcmp(a, "-v") == 0) print_version();
    else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      print_usage(NULL);
      lua_pushinteger(L, 0);
      return 1;
    }
    else if (strncmp(a, "--workers", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
      workers = a[9] == '=' ? a + 10 : argv[++i];
      if (workers == NULL) {
        fprintf(stderr, "%s: '--workers' needs argument\n", progname);
        print_usage(NULL);
        lua_pushinteger(L, 1);
        return 1;
      }
    }
    else if ((a[1] == 'e' || a[1] == 'l')) {
      const char *v = a[2] != '\0' ? a + 2 : argv[++i];
      if (v == NULL) { print_usage(a); lua_pushinteger(L, 1); return 1; }
      lua_createtable(L, 2, 0);
      lua_pushlstring(L, a + 1, 1);
      lua_rawseti(L, -2, 1);
      lua_pushstring(L, v);
      lua_rawseti(L, -2, 2);
      lua_rawseti(L, -2, ++nact);
    }
    else { print_usage(a); lua_pushinteger(L, 1); return 1; }
  }
  if (noenv) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  if (warn) lua_warning(L, "@on", 0);
  luaio_preload(L);
  lua_pushcfunction(L, exepath);       /* luaio._cli finds luaio.tls by it */
  lua_setfield(L, LUA_REGISTRYINDEX, "luaio.exepath");
#ifdef LUAIO_READLINE
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_readline);
  lua_setfield(L, -2, "luaio._readline");
  lua_pop(L, 1);
#endif
  /* arg: script at 0, interpreter and options below */
  {
    int base = script > 0 ? script : argc;
    lua_createtable(L, argc - base, base + 1);
    for (i = 0; i < argc; i++) {
      lua_pushstring(L, argv[i]);
      lua_rawseti(L, -2, i - base);
    }
    lua_setglobal(L, "arg");
  }
  lua_getglobal(L, "require");
  lua_pushliteral(L, "luaio._cli");
  lua_call(L, 1, 1);
  lua_pushvalue(L, 3);                 /* actions */
  if (script > 0) lua_pushstring(L, argv[script]);
  else lua_pushnil(L);
  lua_pushboolean(L, noenv);
  lua_pushboolean(L, interactive || (script == 0 && nact == 0 &&
                                     isatty(0)));
  lua_pushboolean(L, script == 0 && nact == 0 && !interactive && !isatty(0));
  if (workers != NULL) lua_pushstring(L, workers);
  else lua_pushnil(L);
  lua_call(L, 6, 1);
  return 1;
}

/* ",a,b" -> a, b (each may be missing; sscanf costs ~10 us at start-up) */
static void two_ints (const char *s, int *a, int *b) {
  char *end;
  if (*s != ',') return;
  *a = (int)strtol(s + 1, &end, 10);
  if (*end == ',') *b = (int)strtol(end + 1, NULL, 10);
}

/*
** LUAIO_GC: "incremental[,pause[,stepmul]]" or "generational[,minor[,major]]".
** Default: incremental with pause 400 and step multiplier 200 (the heap
** may grow to 4x between cycles): measured best for many small coroutines
** (W1 in bench/).  A number left out of "incremental" keeps that default;
** of "generational", Lua's.
*/
static void set_gc (lua_State *L) {
  const char *s = getenv("LUAIO_GC");
  int a = 0, b = 0;
  if (s == NULL || *s == '\0') s = "incremental";
  if (strncmp(s, "generational", 12) == 0) {
    two_ints(s + 12, &a, &b);
    lua_gc(L, LUA_GCGEN, a, b);
    return;
  }
  if (strncmp(s, "incremental", 11) != 0) {
    fprintf(stderr, "%s: LUAIO_GC: unknown mode '%s' (the default is "
            "used)\n", progname, s);
    s = "incremental";
  }
  a = 400;
  b = 200;
  two_ints(s + 11, &a, &b);
  lua_gc(L, LUA_GCINC, a, b, 0);
}

/* Warnings as lauxlib's default: off until "@on"; "Lua warning: " lines. */
static int warn_on, warn_cont;

static void warnf (void *ud, const char *msg, int tocont) {
  (void)ud;
  if (!warn_cont && *msg == '@') {     /* a control message */
    if (strcmp(msg, "@off") == 0) warn_on = 0;
    else if (strcmp(msg, "@on") == 0) warn_on = 1;
    return;
  }
  if (warn_on) {
    if (!warn_cont) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputs("\n", stderr);
    fflush(stderr);
  }
  warn_cont = tocont;
}

/* The allocator: luaio's small-object one unless LUAIO_ALLOC=malloc. */
static lua_State *new_state (luaio_Allocator **a) {
  const char *s = getenv("LUAIO_ALLOC");
  lua_State *L;
  *a = NULL;
  if (s != NULL && strcmp(s, "malloc") == 0) return luaL_newstate();
  *a = luaio_allocator_new();
  if (*a == NULL) return NULL;
  L = lua_newstate(luaio_alloc, *a);
  if (L != NULL) {
    lua_atpanic(L, panic);
    lua_setwarnf(L, warnf, NULL);
  }
  return L;
}

int main (int argc, char **argv) {
  luaio_Allocator *alloc;
  lua_State *L = new_state(&alloc);
  int status, code = 1;
  if (argv[0] && argv[0][0]) progname = argv[0];
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return 1;
  }
  set_gc(L);
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  status = lua_pcall(L, 2, 1, 0);
  if (status != LUA_OK) report(L);
  else code = (int)lua_tointeger(L, -1);
  lua_close(L);
  if (alloc != NULL) luaio_allocator_free(alloc);
  return code;
}
