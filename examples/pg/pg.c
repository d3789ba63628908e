/*
** pg.c -- the module pg.core: PostgreSQL from luaio tasks through libpq's
** non-blocking API, waiting on the connection's socket with
** luaio_wait_fd.  Many tasks, many connections, one thread.
**
**   pg.connect(conninfo) -> conn            (suspends)
**   conn:query(sql) -> rows, status          (suspends)
**   conn:close()                             (also __close and __gc)
**
** rows: a list of rows, each a list of the column values (strings) that
** also maps column names to them; SQL NULL is pg.null.  status: the
** command tag ("SELECT 3", "INSERT 0 1").  An error from the server
** raises "pg: <its message> (SQLSTATE <code>)"; the connection stays
** usable.  One query at a time per connection.  A query whose wait was
** interrupted (the task cancelled, a timeout around it) leaves the
** connection in the middle of a reply: it is marked broken and every
** later query on it raises -- it is never used half-read.
**
** Build (Debian libpq-dev):  make pg-example   (build/examples/pg/core.so).
** The module calls luaio_wait_fd through luaio_module.h: the function
** table of whichever luaio loaded it (the CLI, luaio.core under stock
** lua5.4, a host), so it links neither libluaio nor liblua.
*/
#include <string.h>

#include <libpq-fe.h>

#include "lua.h"
#include "lauxlib.h"

#include "luaio_module.h"

#define PG_CONN "pg.Connection"

enum { IDLE, BUSY, BROKEN, CLOSED };

typedef struct Conn {
  PGconn *pg;
  int state;
  int started;                 /* connecting: PQconnectPoll called once */
} Conn;

static Conn *checkconn (lua_State *L) {
  Conn *c = (Conn *)luaL_checkudata(L, 1, PG_CONN);
  if (c->state == CLOSED) luaL_error(L, "pg: the connection is closed");
  return c;
}

static void conn_close (Conn *c) {
  if (c->pg != NULL) PQfinish(c->pg);
  c->pg = NULL;
  c->state = CLOSED;
}

/* Raises "pg: <libpq's message>" (its last line break dropped). */
static int pg_error (lua_State *L, const char *msg) {
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
  lua_pushliteral(L, "pg: ");
  lua_pushlstring(L, msg, n);
  lua_concat(L, 2);
  return lua_error(L);
}


/* ---------------------------------------------------------- connecting */

/* Continuation: one PQconnectPoll step, then wait for what it asks. */
static int connect_step (lua_State *L, int status, lua_KContext ctx) {
  Conn *c = (Conn *)lua_touserdata(L, (int)ctx);
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  (void)status;
  if (c->started) st = PQconnectPoll(c->pg);
  c->started = 1;
  switch (st) {
    case PGRES_POLLING_OK:
      c->state = IDLE;
      return 1;                        /* the userdata on top */
    case PGRES_POLLING_READING:
      return luaio_wait_fd(L, PQsocket(c->pg), LUAIO_READABLE, -1, ctx,
                           connect_step);
    case PGRES_POLLING_WRITING:
      return luaio_wait_fd(L, PQsocket(c->pg), LUAIO_WRITABLE, -1, ctx,
                           connect_step);
    default: {
      const char *m = PQerrorMessage(c->pg);
      lua_pushstring(L, m);
      conn_close(c);
      return pg_error(L, lua_tostring(L, -1));
    }
  }
}

/* pg.connect(conninfo) -> conn */
static int l_connect (lua_State *L) {
  const char *info = luaL_checkstring(L, 1);
  Conn *c;
  lua_settop(L, 1);
  c = (Conn *)lua_newuserdatauv(L, sizeof(Conn), 0);
  c->pg = NULL;
  c->state = BROKEN;
  c->started = 0;
  luaL_setmetatable(L, PG_CONN);
  c->pg = PQconnectStart(info);
  if (c->pg == NULL) return luaL_error(L, "pg: not enough memory");
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    lua_pushstring(L, PQerrorMessage(c->pg));
    conn_close(c);
    return pg_error(L, lua_tostring(L, -1));
  }
  return connect_step(L, 0, (lua_KContext)lua_gettop(L));
}


/* ---------------------------------------------------------- queries */

/* Stack of a query: 1 conn, 2 sql, 3 rows, 4 status, 5 error or nil. */

static void push_rows (lua_State *L, PGresult *r) {
  int nrows = PQntuples(r), ncols = PQnfields(r), i, j;
  lua_createtable(L, nrows, 0);
  for (i = 0; i < nrows; i++) {
    lua_createtable(L, ncols, ncols);
    for (j = 0; j < ncols; j++) {
      if (PQgetisnull(r, i, j)) lua_pushlightuserdata(L, NULL);
      else lua_pushlstring(L, PQgetvalue(r, i, j), (size_t)PQgetlength(r, i, j));
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, j + 1);
      lua_setfield(L, -2, PQfname(r, j));
    }
    lua_rawseti(L, -2, i + 1);
  }
}

/* Keeps what result r says (rows, the tag or the error); frees r. */
static void take_result (lua_State *L, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_TUPLES_OK) {
    push_rows(L, r);
    lua_replace(L, 3);
  }
  if (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
      st == PGRES_NONFATAL_ERROR) {
    const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (lua_isnil(L, 5)) {             /* the first error is the one */
      if (m != NULL)
        lua_pushfstring(L, "pg: %s (SQLSTATE %s)", m,
                        code != NULL ? code : "?");
      else
        lua_pushfstring(L, "pg: %s", PQresultErrorMessage(r));
      lua_replace(L, 5);
    }
  }
  else {
    lua_pushstring(L, PQcmdStatus(r));
    lua_replace(L, 4);
  }
  PQclear(r);
}

/* Continuation: read what arrived; wait for more while libpq is busy. */
static int query_step (lua_State *L, int status, lua_KContext ctx) {
  Conn *c = (Conn *)lua_touserdata(L, 1);
  PGresult *r;
  (void)status;
  if (!PQconsumeInput(c->pg)) {
    c->state = BROKEN;
    return pg_error(L, PQerrorMessage(c->pg));
  }
  while (!PQisBusy(c->pg)) {
    r = PQgetResult(c->pg);
    if (r == NULL) {                   /* the reply is complete */
      c->state = IDLE;
      if (!lua_isnil(L, 5)) {          /* the server's error */
        lua_pushvalue(L, 5);
        return lua_error(L);
      }
      lua_settop(L, 4);
      return 2;
    }
    take_result(L, r);
  }
  return luaio_wait_fd(L, PQsocket(c->pg), LUAIO_READABLE, -1, ctx,
                       query_step);
}

/* Continuation: send what libpq still holds, then read the reply. */
static int flush_step (lua_State *L, int status, lua_KContext ctx) {
  Conn *c = (Conn *)lua_touserdata(L, 1);
  int r = PQflush(c->pg);
  (void)status;
  if (r < 0) {
    c->state = BROKEN;
    return pg_error(L, PQerrorMessage(c->pg));
  }
  if (r == 1)
    return luaio_wait_fd(L, PQsocket(c->pg), LUAIO_WRITABLE, -1, ctx,
                         flush_step);
  return query_step(L, 0, ctx);
}

/* conn:query(sql) -> rows, status */
static int l_query (lua_State *L) {
  Conn *c = checkconn(L);
  const char *sql = luaL_checkstring(L, 2);
  if (c->state == BUSY || c->state == BROKEN)
    return luaL_error(L, "pg: the connection is unusable: a query on it "
                      "was interrupted (cancelled or timed out); close it");
  lua_settop(L, 2);
  lua_newtable(L);                     /* 3: rows */
  lua_pushnil(L);                      /* 4: status */
  lua_pushnil(L);                      /* 5: error */
  if (!PQsendQuery(c->pg, sql)) return pg_error(L, PQerrorMessage(c->pg));
  c->state = BUSY;                     /* until the whole reply is read */
  return flush_step(L, 0, 0);
}

static int l_close (lua_State *L) {
  Conn *c = (Conn *)luaL_checkudata(L, 1, PG_CONN);
  conn_close(c);
  return 0;
}

/* conn:state() -> "idle", "busy", "broken" or "closed" */
static int l_state (lua_State *L) {
  static const char *const names[] = {"idle", "busy", "broken", "closed"};
  Conn *c = (Conn *)luaL_checkudata(L, 1, PG_CONN);
  lua_pushstring(L, names[c->state]);
  return 1;
}

static const luaL_Reg methods[] = {
  {"query", l_query},
  {"close", l_close},
  {"state", l_state},
  {NULL, NULL}
};

LUAIO_API int luaopen_pg_core (lua_State *L) {
  luaio_module_init(L, "pg");
  if (luaL_newmetatable(L, PG_CONN)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "connect");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  return 1;
}
