/*
** sigpipe.c -- SIGPIPE ignored, and standard output still closing the
** program: core.ignore_sigpipe().
*/
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "internal.h"

/*
** The CLI and stock lua5.4 with luaio ignore SIGPIPE, so that writing to
** a closed socket raises EPIPE instead of killing the process.  Left at
** that, print and io.write would ignore a closed standard output (print
** returns nothing; io.write's failure is seldom looked at) and `luaio
** script | head -1` would spin.  So luaio replaces print, io.write,
** io.flush and the files' write and flush with its own, which do what
** Lua's do and, when a write to stdout or stderr fails with EPIPE and
** luaio is why SIGPIPE is ignored, give SIGPIPE its default back and
** raise it: the process ends as lua5.4's would (status 141 in the
** shell).  A process that ignored SIGPIPE itself keeps lua5.4's
** behaviour; an embedding host's functions and dispositions are its own.
*/

static int sigpipe_ours;       /* luaio changed SIGPIPE from default to
                                  ignored (once per process) */

/* A write to f failed (with errno en): dies if it was stdout's or
   stderr's, closed, and SIGPIPE is still ignored because of luaio. */
static void check_epipe (FILE *f, int en) {
  struct sigaction cur;
  sigset_t set;
  if (en != EPIPE || (f != stdout && f != stderr) || !sigpipe_ours ||
      sigaction(SIGPIPE, NULL, &cur) != 0 || cur.sa_handler != SIG_IGN)
    return;
  signal(SIGPIPE, SIG_DFL);
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  raise(SIGPIPE);
}

/* print(...), as Lua's */
static int l_print (lua_State *L) {
  int n = lua_gettop(L), i, en = 0;
  for (i = 1; i <= n; i++) {
    size_t l;
    const char *s = luaL_tolstring(L, i, &l);
    if (i > 1 && fwrite("\t", 1, 1, stdout) != 1 && en == 0) en = errno;
    if (fwrite(s, 1, l, stdout) != l && en == 0) en = errno;
    lua_pop(L, 1);
  }
  if (fwrite("\n", 1, 1, stdout) != 1 && en == 0) en = errno;
  if (fflush(stdout) != 0 && en == 0) en = errno;
  if (en != 0) check_epipe(stdout, en);
  return 0;
}

/* The FILE of the open file handle at idx (as io's methods check it). */
static FILE *tofile (lua_State *L, int idx) {
  luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, idx, LUA_FILEHANDLE);
  if (p->closef == NULL) luaL_error(L, "attempt to use a closed file");
  return p->f;
}

/* Pushes the default output (upvalue 1 is io.output) -> its FILE. */
static FILE *default_output (lua_State *L) {
  luaL_Stream *p;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_call(L, 0, 1);
  p = (luaL_Stream *)luaL_testudata(L, -1, LUA_FILEHANDLE);
  if (p == NULL || p->closef == NULL)
    luaL_error(L, "default output file is closed");
  return p->f;
}

/* Writes the values from arg up to the file handle at the top, as io
   does: the file handle, or fail, message, errno. */
static int write_values (lua_State *L, FILE *f, int arg) {
  int n = lua_gettop(L) - arg, ok = 1;
  for (; n--; arg++) {
    if (lua_type(L, arg) == LUA_TNUMBER) {
      int len = lua_isinteger(L, arg)
                ? fprintf(f, LUA_INTEGER_FMT,
                          (LUAI_UACINT)lua_tointeger(L, arg))
                : fprintf(f, LUA_NUMBER_FMT,
                          (LUAI_UACNUMBER)lua_tonumber(L, arg));
      ok = ok && len > 0;
    }
    else {
      size_t l;
      const char *s = luaL_checklstring(L, arg, &l);
      ok = ok && fwrite(s, 1, l, f) == l;
    }
  }
  if (ok) return 1;
  check_epipe(f, errno);
  return luaL_fileresult(L, 0, NULL);
}

static int flush (lua_State *L, FILE *f) {
  if (fflush(f) == 0) return luaL_fileresult(L, 1, NULL);
  check_epipe(f, errno);
  return luaL_fileresult(L, 0, NULL);
}

/* io.write(...) */
static int l_io_write (lua_State *L) {
  FILE *f = default_output(L);
  return write_values(L, f, 1);
}

/* io.flush() */
static int l_io_flush (lua_State *L) {
  return flush(L, default_output(L));
}

/* file:write(...) */
static int l_file_write (lua_State *L) {
  FILE *f = tofile(L, 1);
  lua_pushvalue(L, 1);
  return write_values(L, f, 2);
}

/* file:flush() */
static int l_file_flush (lua_State *L) {
  return flush(L, tofile(L, 1));
}

/*
** Sets t[k] (t at -1, below nup upvalues for fn) to fn, when t[k] is a
** C function other than fn (the standard library's); pops the upvalues.
*/
static void replace (lua_State *L, const char *k, lua_CFunction fn,
                     int nup) {
  int t = lua_absindex(L, -nup - 1);
  lua_getfield(L, t, k);
  if (lua_iscfunction(L, -1) && lua_tocfunction(L, -1) != fn) {
    lua_pop(L, 1);
    lua_pushcclosure(L, fn, nup);
    lua_setfield(L, t, k);
  }
  else lua_pop(L, nup + 1);
}

/* print, io.write, io.flush and the files' write and flush of L become
   luaio's. */
static void guard_writes (lua_State *L) {
  int top = lua_gettop(L);
  lua_pushglobaltable(L);
  replace(L, "print", l_print, 0);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "io") == LUA_TTABLE &&
      lua_getfield(L, -1, "output") == LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_getfield(L, -1, "output");
    replace(L, "write", l_io_write, 1);
    lua_getfield(L, -1, "output");
    replace(L, "flush", l_io_flush, 1);
  }
  lua_settop(L, top);
  if (luaL_getmetatable(L, LUA_FILEHANDLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "__index") == LUA_TTABLE) {
    replace(L, "write", l_file_write, 0);
    replace(L, "flush", l_file_flush, 0);
  }
  lua_settop(L, top);
}

/*
** core.ignore_sigpipe(): SIGPIPE at its default becomes ignored, so that
** writing to a closed peer raises EPIPE instead of killing the process,
** and writes to the standard output and error are luaio's (above); the
** CLI and stock lua5.4.  An embedding host's dispositions are its own.
*/
static int l_ignore_sigpipe (lua_State *L) {
  struct sigaction cur;
  if (luaio__state(L)->embedded) return 0;
  if (sigaction(SIGPIPE, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
    sigpipe_ours = 1;
  }
  if (sigpipe_ours) guard_writes(L);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"ignore_sigpipe", l_ignore_sigpipe},
  {NULL, NULL}
};

void luaio__sigpipe_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
