/*
** process.c -- child processes: core.spawn, and the Process handle
** (lua/luaio/process.lua makes aio.create_subprocess_exec/_shell on it).
**
**   core.spawn(file, args, opts) -> proc, stdin writer, stdout reader,
**                                   stderr reader (nil when not piped)
**   opts: cwd, env (list of "NAME=value"), stdin/stdout/stderr =
**         "pipe" | "devnull" | "inherit" | "stdout" (stderr only) | a
**         StreamReader (stdin) or StreamWriter (stdout, stderr), handed
**         to the child: its descriptor becomes the child's, ours is
**         closed, so a pipeline's bytes never pass through Lua | a
**         descriptor (integer), which the child gets a copy of;
**         start_new_session (setsid: the child leads a session and a
**         process group); pass_fds (descriptors > 2 the child keeps, at
**         the same numbers); fname (for messages)
**   proc:pid(), proc:returncode() (nil while running; minus the signal
**   number when a signal killed it), proc:wait() (suspends),
**   proc:kill(signal), proc:killpg(signal) (its whole group)
**
** A program, argument, env entry or cwd holding a '\0' is refused before
** anything starts (the child would get it cut there).
** The handle stays open until the child exits, so libuv always reaps it:
** a cancelled wait() leaves no zombie.  Children get every signal
** disposition back to its default (libuv resets them), SIGPIPE included.
** A running child is counted as a request (request.h: a virtual clock
** does not jump past it), but not abandoned: a Proc is a handle its close
** callback frees, and a cancelled wait() just leaves its wait list.
*/
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define LUAIO_PROCESS "luaio.Process"

typedef struct Proc {
  Hook node;                   /* on rt->open until the child exits */
  uv_process_t h;
  luaio_Runtime *rt;
  int exited, open, refs;
  int leader;                  /* leads a session and group of its own */
  int pid;
  int64_t status;
  int signal;
  WaitList waiters;
} Proc;

typedef struct PBox { Proc *p; } PBox;

/*
** Raises fmt's message at the position of the function level levels up:
** the user's call, past process.lua's frames (2: a method of Process; 3:
** create_subprocess_exec/_shell, through their spawn).
*/
static int raise_at (lua_State *L, int level, const char *fmt, ...) {
  va_list ap;
  luaL_where(L, level);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

static void on_closed (uv_handle_t *h) {
  Proc *p = (Proc *)h->data;
  luaio_Runtime *rt = p->rt;
  luaio__unhook(&rt->open, &p->node);
  rt->open_handles--;
  p->open = 0;
  if (p->refs == 0) free(p);
}

static void on_failed (uv_handle_t *h) {
  Proc *p = (Proc *)h->data;
  p->rt->open_handles--;
  free(p);
}

static void on_child_exit (uv_process_t *h, int64_t status, int signal) {
  Proc *p = (Proc *)h->data;
  p->exited = 1;
  p->status = status;
  p->signal = signal;
  luaio__request_done(p->rt);
  luaio__wake_all(&p->waiters);
  uv_close((uv_handle_t *)h, on_closed);
}

/* Shutdown: rt's hook for a child still running stops tracking it (the
   child keeps running). */
static void close_hook (luaio_Runtime *rt, Hook *h) {
  Proc *p = (Proc *)h;
  if (!p->exited && !uv_is_closing((uv_handle_t *)&p->h)) {
    p->exited = 1;
    p->status = -1;
    luaio__request_done(rt);
    uv_close((uv_handle_t *)&p->h, on_closed);
  }
}

static Proc *checkproc (lua_State *L) {
  PBox *b = (PBox *)luaL_checkudata(L, 1, LUAIO_PROCESS);
  return b->p;
}

static int push_code (lua_State *L, Proc *p) {
  if (!p->exited) lua_pushnil(L);
  else if (p->signal != 0) lua_pushinteger(L, -p->signal);
  else lua_pushinteger(L, (lua_Integer)p->status);
  return 1;
}

static int p_pid (lua_State *L) {
  lua_pushinteger(L, checkproc(L)->h.pid);
  return 1;
}

static int p_returncode (lua_State *L) {
  return push_code(L, checkproc(L));
}

static int wait_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return push_code(L, checkproc(L));
}

/* wait() -> exit code (minus the signal number if a signal killed it) */
static int p_wait (lua_State *L) {
  Proc *p = checkproc(L);
  Task *t;
  if (p->exited) return push_code(L, p);
  t = luaio__check_suspend(L, "wait");
  return luaio__park(L, t, &p->waiters, NULL, "process wait", p, 0, wait_k);
}

/* kill(signal): signal a running child; ESRCH once it has exited. */
static int p_kill (lua_State *L) {
  Proc *p = checkproc(L);
  int sig = luaio__checksignal(L, 2, "send_signal");
  int r;
  if (p->exited) return luaio__oserror(L, UV_ESRCH, "send_signal");
  r = uv_process_kill(&p->h, sig);
  if (r != 0) return luaio__oserror(L, r, "send_signal");
  return 0;
}

/* killpg(signal): signal the child's process group, which outlives it
   while its own children run. */
static int p_killpg (lua_State *L) {
  Proc *p = checkproc(L);
  int sig = luaio__checksignal(L, 2, "killpg");
  int r;
  if (!p->leader)
    return raise_at(L, 2, "killpg: the process does not lead a process "
                    "group of its own (start it with start_new_session = "
                    "true)");
  r = uv_kill(-p->pid, sig);
  if (r != 0) return luaio__oserror(L, r, "killpg");
  return 0;
}

static int p_gc (lua_State *L) {
  PBox *b = (PBox *)lua_touserdata(L, 1);
  Proc *p = b->p;
  if (p == NULL) return 0;
  b->p = NULL;
  p->refs = 0;
  if (!p->open) free(p);               /* else freed when closed */
  return 0;
}

/* opts[name]: "inherit" 0, "pipe" 1, "devnull" 2, "stdout" 3, a stream
   object to hand over, 4, left on the stack at *idx, or a descriptor
   the child gets a copy of, 5, left there too. */
static int stdio_mode (lua_State *L, int opts, const char *name, int *idx) {
  static const char *const modes[] = {"inherit", "pipe", "devnull", "stdout", NULL};
  int m;
  int t = lua_getfield(L, opts, name);
  if (t == LUA_TUSERDATA || t == LUA_TNUMBER) {
    *idx = lua_gettop(L);
    return t == LUA_TUSERDATA ? 4 : 5;
  }
  m = luaL_checkoption(L, -1, "inherit", modes);
  lua_pop(L, 1);
  if (m == 3 && strcmp(name, "stderr") != 0)
    luaL_error(L, "create_subprocess: STDOUT is only for stderr");
  return m;
}

/* The descriptors of the streams handed over (mode 4) and the ones given
   (5) into fds; raises for one that cannot be, before anything is made. */
static void lend_fds (lua_State *L, const char *fname, const int *mode,
                      const int *idx, int *fds) {
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  const char *why;
  int i;
  for (i = 0; i < 3; i++) {
    if (mode[i] == 5) {                /* a descriptor of ours: a copy */
      fds[i] = (int)lua_tointeger(L, idx[i]);
      if (fcntl(fds[i], F_GETFD) == -1)
        raise_at(L, 3, "%s: option '%s': descriptor %d is not open", fname,
                 names[i], fds[i]);
      continue;
    }
    if (mode[i] != 4) continue;
    fds[i] = luaio__stream_lendable(L, idx[i], i == 0, &why);
    if (fds[i] < 0)
      raise_at(L, 3, "%s: option '%s': the %s %s", fname, names[i],
               i == 0 ? "StreamReader" : "StreamWriter", why);
  }
}

/*
** The stdio containers: 3, or up to the highest of opts.pass_fds (a list
** of integers > 2, process.lua checked), each of which the child keeps;
** the others are closed (close-on-exec).  Raises for one not open.
*/
static uv_stdio_container_t *containers (lua_State *L, int opts,
                                         const char *fname, int *count) {
  uv_stdio_container_t *io;
  int n = 0, i, max = 2, fd;
  if (lua_getfield(L, opts, "pass_fds") == LUA_TTABLE) n = (int)luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    fd = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (fcntl(fd, F_GETFD) == -1)
      raise_at(L, 3, "%s: pass_fds: descriptor %d is not open", fname, fd);
    if (fd > max) max = fd;
  }
  *count = max + 1;
  io = (uv_stdio_container_t *)lua_newuserdatauv(
         L, sizeof(uv_stdio_container_t) * (size_t)*count, 0);
  for (i = 3; i < *count; i++) io[i].flags = UV_IGNORE;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    fd = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    io[fd].flags = UV_INHERIT_FD;
    io[fd].data.fd = fd;
  }
  lua_remove(L, -2);                   /* pass_fds; io stays */
  return io;
}

/* Raises for the entry of opts.env at the top, which holds a '\0'
   (process.lua made it "NAME=value"; the NAME shown ends at the '\0'). */
static int bad_env (lua_State *L) {
  const char *e = luaL_checkstring(L, -1);
  const char *eq = strchr(e, '=');
  size_t n = eq != NULL ? (size_t)(eq - e) : strlen(e);
  return luaL_error(L, "create_subprocess: option 'env' has an embedded "
                    "null byte (variable '%s')", lua_pushlstring(L, e, n));
}

/* core.spawn(file, args, opts) */
static int l_spawn (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "create_subprocess");
  const char *file = luaio__checkcstring(L, 1, "create_subprocess");
  uv_process_options_t o;
  uv_stdio_container_t *io;
  void *pipes[3] = {NULL, NULL, NULL};
  char **args, **env = NULL;
  const char *fname;
  int nargs, nenv = 0, i, r, mode[3], merged[2] = {-1, -1};
  int lent[3] = {0, 0, 0}, lentfd[3], count;
  Proc *p;
  PBox *b;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "fname");
  fname = lua_isstring(L, -1) ? lua_tostring(L, -1) : "create_subprocess";
  mode[0] = stdio_mode(L, 3, "stdin", &lent[0]);
  mode[1] = stdio_mode(L, 3, "stdout", &lent[1]);
  mode[2] = stdio_mode(L, 3, "stderr", &lent[2]);
  lend_fds(L, fname, mode, lent, lentfd);
  io = containers(L, 3, fname, &count);
  nargs = (int)luaL_len(L, 2);
  args = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(nargs + 2), 0);
  args[0] = (char *)file;
  luaL_checkstack(L, nargs + 8, "too many arguments");
  for (i = 1; i <= nargs; i++) {       /* the strings stay on the stack */
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "create_subprocess: argument %d is not a string", i);
    args[i] = (char *)luaio__tocstring(L, -1);
    if (args[i] == NULL)
      return luaL_error(L, "create_subprocess: argument %d has an embedded "
                           "null byte", i);
  }
  args[nargs + 1] = NULL;
  if (lua_getfield(L, 3, "env") == LUA_TTABLE) {
    nenv = (int)luaL_len(L, -1);
    env = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(nenv + 1), 0);
    for (i = 1; i <= nenv; i++) {     /* process.lua made them: strings */
      lua_rawgeti(L, -2, i);
      env[i - 1] = (char *)luaio__tocstring(L, -1);
      if (env[i - 1] == NULL) return bad_env(L);
      lua_pop(L, 1);
    }
    env[nenv] = NULL;
  }
  memset(&o, 0, sizeof o);
  o.file = file;
  o.args = args;
  o.env = env;
  o.exit_cb = on_child_exit;
  if (lua_getfield(L, 3, "start_new_session") != LUA_TNIL && lua_toboolean(L, -1))
    o.flags |= UV_PROCESS_DETACHED;    /* setsid() in the child */
  if (lua_getfield(L, 3, "cwd") == LUA_TSTRING) {
    o.cwd = luaio__tocstring(L, -1);
    if (o.cwd == NULL)
      return luaL_error(L, "create_subprocess: option 'cwd' has an embedded "
                           "null byte");
  }
  for (i = 0; i < 3; i++) {
    switch (mode[i]) {
      case 0: io[i].flags = UV_INHERIT_FD; io[i].data.fd = i; break;
      case 2: io[i].flags = UV_IGNORE; break;
      case 4: case 5:
        io[i].flags = UV_INHERIT_FD;
        io[i].data.fd = lentfd[i];
        break;
      case 1:
        pipes[i] = luaio__stream_pipe(rt);
        if (pipes[i] == NULL) return luaL_error(L, "not enough memory");
        io[i].flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                      (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
        io[i].data.stream = luaio__stream_handle(pipes[i]);
        break;
      default:                         /* stderr = STDOUT */
        io[2] = io[1];
        if (mode[1] == 1) {
          /* Both into one pipe: make it here (UV_CREATE_PIPE cannot be
             shared), give the child its write end twice. */
          uv_file fds[2];
          if ((r = uv_pipe(fds, 0, 0)) != 0) {
            luaio__stream_discard(pipes[1]);
            return luaio__oserror(L, r, "create_subprocess");
          }
          uv_pipe_open((uv_pipe_t *)luaio__stream_handle(pipes[1]), fds[0]);
          merged[1] = fds[1];
          io[1].flags = UV_INHERIT_FD;
          io[1].data.fd = fds[1];
          io[2] = io[1];
        }
        break;
    }
  }
  o.stdio = io;
  o.stdio_count = count;
  p = (Proc *)calloc(1, sizeof(Proc));
  if (p == NULL) return luaL_error(L, "not enough memory");
  p->rt = rt;
  p->h.data = p;
  r = uv_spawn(rt->loop, &p->h, &o);
  if (merged[1] >= 0) {                /* the child has its copy now */
    uv_fs_t c;
    uv_fs_close(NULL, &c, merged[1], NULL);
    uv_fs_req_cleanup(&c);
  }
  if (r != 0) {
    /* libuv initialised the handle: it must still be closed */
    uv_close((uv_handle_t *)&p->h, on_failed);
    rt->open_handles++;
    for (i = 0; i < 3; i++) if (pipes[i]) luaio__stream_discard(pipes[i]);
    return luaio__oserror(L, r, lua_pushfstring(L, "create_subprocess '%s'", file));
  }
  p->open = 1;
  p->pid = p->h.pid;
  p->leader = (o.flags & UV_PROCESS_DETACHED) != 0;
  for (i = 0; i < 3; i++)              /* the child has its copies now */
    if (mode[i] == 4) luaio__stream_hand_over(L, lent[i]);
  luaio__hook(&rt->open, &p->node, close_hook);
  rt->open_handles++;
  luaio__request_add(rt);
  b = (PBox *)lua_newuserdatauv(L, sizeof(PBox), 0);
  b->p = p;
  p->refs = 1;
  luaL_setmetatable(L, LUAIO_PROCESS);
  for (i = 0; i < 3; i++) {
    if (pipes[i]) luaio__push_stream_end(L, pipes[i], i != 0);
    else lua_pushnil(L);
  }
  return 4;
}

static const luaL_Reg methods[] = {
  {"pid", p_pid},
  {"returncode", p_returncode},
  {"wait", p_wait},
  {"kill", p_kill},
  {"killpg", p_killpg},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {NULL, NULL}
};

void luaio__process_open (lua_State *L) {
  luaL_newmetatable(L, LUAIO_PROCESS);
  lua_newtable(L);
  luaio__setfuncs(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, p_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaio__setfuncs(L, funcs);
}
