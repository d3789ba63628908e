/*
** fs.c -- file system requests on libuv's thread pool: core.fs(op, ...).
** The Lua side (lua/luaio/fs.lua) builds aio.fs and file objects on it.
**
**   open(path, flags, mode) -> fd      close(fd)
**   read(fd, len, offset) -> data ("" at EOF)
**   write(fd, data, offset) -> count  (offset -1: the file position)
**   stat(path) / fstat(fd) -> table    mkdir(path, mode)  rmdir(path)
**   unlink(path)  rename(from, to)     scandir(path) -> {{name, type}...}
**   ftruncate(fd, len)  fsync(fd)
**
** Each call suspends the task; the loop never blocks.  Each is a request
** of the request tier (request.h): cancelling the caller cancels a queued
** request, or abandons a running one (release closes what an abandoned
** open opened).  Failures raise aio.OSError ("ENOENT", ...); a path
** holding a '\0' is refused before anything starts ("embedded null
** byte": the system would see the path cut there).
*/
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

enum { OPEN, CLOSE, READ, WRITE, STAT, FSTAT, MKDIR, RMDIR, UNLINK, RENAME,
       SCANDIR, FTRUNCATE, FSYNC };

static const char *const ops[] = {
  "open", "close", "read", "write", "stat", "fstat", "mkdir", "rmdir",
  "unlink", "rename", "scandir", "ftruncate", "fsync", NULL
};

typedef struct FsReq {
  Request base;                /* first: the request tier's part */
  uv_fs_t req;
  int op;
  char *buf;                   /* read target / write copy */
  size_t len;
} FsReq;

static void release (Request *base) {
  FsReq *r = (FsReq *)base;
  if (r->op == OPEN && r->req.result >= 0) {   /* abandoned open */
    uv_fs_t c;
    uv_fs_close(NULL, &c, (uv_file)r->req.result, NULL);
    uv_fs_req_cleanup(&c);
  }
  uv_fs_req_cleanup(&r->req);
  free(r->buf);
  free(r);
}

static void on_done (uv_fs_t *req) {
  luaio__request_finish((Request *)req->data);
}

static const char *type_name (uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "other";
  }
}

static double ts (uv_timespec_t t) {
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void push_stat (lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 12);
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushnumber(L, ts(st->st_mtim));
  lua_setfield(L, -2, "mtime");
  lua_pushnumber(L, ts(st->st_atim));
  lua_setfield(L, -2, "atime");
  lua_pushnumber(L, ts(st->st_ctim));
  lua_setfield(L, -2, "ctime");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st->st_nlink);
  lua_setfield(L, -2, "nlink");
}

static const char *dirent_type (uv_dirent_type_t t) {
  switch (t) {
    case UV_DIRENT_FILE: return "file";
    case UV_DIRENT_DIR: return "directory";
    case UV_DIRENT_LINK: return "link";
    case UV_DIRENT_FIFO: return "fifo";
    case UV_DIRENT_SOCKET: return "socket";
    case UV_DIRENT_CHAR: return "char";
    case UV_DIRENT_BLOCK: return "block";
    default: return "unknown";
  }
}

/* Pushes the results of a completed request; returns how many. */
static int results (lua_State *L, FsReq *r) {
  uv_fs_t *req = &r->req;
  switch (r->op) {
    case OPEN: lua_pushinteger(L, (lua_Integer)req->result); return 1;
    case READ: lua_pushlstring(L, r->buf, (size_t)req->result); return 1;
    case WRITE: lua_pushinteger(L, (lua_Integer)req->result); return 1;
    case STAT: case FSTAT: push_stat(L, &req->statbuf); return 1;
    case SCANDIR: {
      uv_dirent_t ent;
      int i = 0;
      lua_newtable(L);
      while (uv_fs_scandir_next(req, &ent) != UV_EOF) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, ent.name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, dirent_type(ent.type));
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, ++i);
      }
      return 1;
    }
    default: return 0;
  }
}

static int fs_k (lua_State *L, int status, lua_KContext ctx) {
  FsReq *r = (FsReq *)ctx;
  int n;
  (void)status;
  luaio__request_resumed(L, &r->base);
  if (r->req.result < 0) {
    int err = (int)r->req.result;
    const char *what = lua_pushfstring(L, "%s%s%s%s", ops[r->op],
      lua_type(L, 2) == LUA_TSTRING ? " '" : "",
      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "",
      lua_type(L, 2) == LUA_TSTRING ? "'" : "");
    r->op = CLOSE;                     /* nothing to undo */
    release(&r->base);
    return luaio__oserror(L, err, what);
  }
  n = results(L, r);
  if (r->op == OPEN) r->req.result = -1;   /* the fd is the caller's now */
  release(&r->base);
  return n;
}

static int open_flags (lua_State *L, const char *m) {
  int plus = strchr(m, '+') != NULL;
  switch (m[0]) {
    case 'r': return plus ? O_RDWR : O_RDONLY;
    case 'w': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    case 'a': return (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND;
    default:
      return luaL_error(L, "open: invalid mode '%s' (use r, w, a, r+, w+, a+)", m);
  }
}

static uv_file checkfd (lua_State *L, int arg) {
  lua_Integer fd = luaL_checkinteger(L, arg);
  if (fd < 0 || fd > 0x7fffffff) luaL_argerror(L, arg, "invalid descriptor");
  return (uv_file)fd;
}

/* A path: the string at idx, the argument idx - 1 of aio.fs's op. */
static void checkpath (lua_State *L, int idx, int op) {
  luaL_checkstring(L, idx);
  if (luaio__tocstring(L, idx) == NULL)
    luaio__argerror(L, idx - 1, ops[op], "embedded null byte");
}

/* core.fs(op, ...) -> results (suspends) */
static int l_fs (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "fs");
  int op = luaL_checkoption(L, 1, NULL, ops);
  Task *t;
  FsReq *r;
  int e = 0;
  /* check every argument before any bookkeeping */
  switch (op) {
    case OPEN: checkpath(L, 2, op); open_flags(L, luaL_checkstring(L, 3)); break;
    case READ: checkfd(L, 2); luaL_checkinteger(L, 3); break;
    case WRITE: checkfd(L, 2); luaL_checkstring(L, 3); break;
    case CLOSE: case FSTAT: case FSYNC: checkfd(L, 2); break;
    case FTRUNCATE: checkfd(L, 2); luaL_checkinteger(L, 3); break;
    case RENAME: checkpath(L, 2, op); checkpath(L, 3, op); break;
    default: checkpath(L, 2, op); break;
  }
  t = luaio__check_suspend(L, ops[op]);
  luaio__request_pool(L, ops[op]);
  r = (FsReq *)calloc(1, sizeof(FsReq));
  if (r == NULL) return luaL_error(L, "not enough memory");
  luaio__request_init(&r->base, (uv_req_t *)&r->req, release);
  r->op = op;
  switch (op) {
    case OPEN:
      e = uv_fs_open(rt->loop, &r->req, lua_tostring(L, 2),
                     open_flags(L, lua_tostring(L, 3)),
                     (int)luaL_optinteger(L, 4, 0666), on_done);
      break;
    case CLOSE: e = uv_fs_close(rt->loop, &r->req, checkfd(L, 2), on_done); break;
    case READ: {
      lua_Integer len = luaL_checkinteger(L, 3);
      uv_buf_t b;
      if (len < 0) len = 0;
      r->buf = (char *)malloc((size_t)len + 1);
      r->len = (size_t)len;
      if (r->buf == NULL) { free(r); return luaL_error(L, "not enough memory"); }
      b = uv_buf_init(r->buf, (unsigned)len);
      e = uv_fs_read(rt->loop, &r->req, checkfd(L, 2), &b, 1,
                     luaL_optinteger(L, 4, -1), on_done);
      break;
    }
    case WRITE: {
      size_t len;
      const char *data = lua_tolstring(L, 3, &len);
      uv_buf_t b;
      r->buf = (char *)malloc(len + 1);
      if (r->buf == NULL) { free(r); return luaL_error(L, "not enough memory"); }
      memcpy(r->buf, data, len);
      r->len = len;
      b = uv_buf_init(r->buf, (unsigned)len);
      e = uv_fs_write(rt->loop, &r->req, checkfd(L, 2), &b, 1,
                      luaL_optinteger(L, 4, -1), on_done);
      break;
    }
    case STAT: e = uv_fs_stat(rt->loop, &r->req, lua_tostring(L, 2), on_done); break;
    case FSTAT: e = uv_fs_fstat(rt->loop, &r->req, checkfd(L, 2), on_done); break;
    case MKDIR:
      e = uv_fs_mkdir(rt->loop, &r->req, lua_tostring(L, 2),
                      (int)luaL_optinteger(L, 3, 0777), on_done);
      break;
    case RMDIR: e = uv_fs_rmdir(rt->loop, &r->req, lua_tostring(L, 2), on_done); break;
    case UNLINK: e = uv_fs_unlink(rt->loop, &r->req, lua_tostring(L, 2), on_done); break;
    case RENAME:
      e = uv_fs_rename(rt->loop, &r->req, lua_tostring(L, 2),
                       lua_tostring(L, 3), on_done);
      break;
    case SCANDIR: e = uv_fs_scandir(rt->loop, &r->req, lua_tostring(L, 2), 0, on_done); break;
    case FTRUNCATE:
      e = uv_fs_ftruncate(rt->loop, &r->req, checkfd(L, 2),
                          luaL_checkinteger(L, 3), on_done);
      break;
    case FSYNC: e = uv_fs_fsync(rt->loop, &r->req, checkfd(L, 2), on_done); break;
  }
  if (e != 0) {
    free(r->buf);
    free(r);
    return luaio__oserror(L, e, ops[op]);
  }
  return luaio__request_start(L, t, &r->base, ops[op], fs_k);
}

/* core.fs_close_sync(fd): for a file object collected while open. */
static int l_close_sync (lua_State *L) {
  uv_fs_t c;
  uv_fs_close(NULL, &c, checkfd(L, 1), NULL);
  uv_fs_req_cleanup(&c);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"fs", l_fs},
  {"fs_close_sync", l_close_sync},
  {NULL, NULL}
};

void luaio__fs_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
