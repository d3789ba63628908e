/*
** queue.c -- queue storage and waiting, in C: Queue (FIFO), LifoQueue,
** PriorityQueue (asyncio 3.13 queues.py).
**
** A queue object is a Lua table {[1] = this userdata, maxsize = n} whose
** metatable (lua/luaio/queues.lua) holds these C methods.  Items live in
** the userdata's user value 1: a ring (FIFO), a stack (LIFO) or a binary
** heap (priority; user value 2 is the `less` function, else `<`).  A FIFO
** of at most MAXINL items keeps its ring in user values 3.. instead: a
** user value is set and read without a table look-up (W2 through two
** Queue(1): -7 % instructions per round trip).
** Getters, putters and joiners park on C wait lists.
**
** The hot methods (put, get and their continuations) keep C API calls
** few: self is checked once and its userdata left on top of the stack
** ("ud" is that index), the items table is fetched per access and left
** there, and a parked call carries its Queue in the continuation's
** context.  The userdata is recognised by its size and a tag (the address
** of a private static) rather than by its metatable: as safe (the tag is
** read only from a block of the right size, and no Lua code can write a
** userdata's bytes) and without the metatable and state look-ups.  A put
** gives its item to the queue, not to a waiting getter: as in asyncio, a woken getter takes the queue's first
** item when it runs, and until then the item is the queue's (qsize,
** get_nowait and maxsize see it).
**
** Cancellation (asyncio's rules): a getter or putter cancelled while it
** waits just leaves its list; one cancelled after a wake-up reached it
** passes that wake-up on to the next waiter when the queue can still
** serve it, so no wake-up, item or slot is lost.  nil cannot be queued.
*/
#include <limits.h>
#include <string.h>

#include "internal.h"

#define LUAIO_QUEUE "luaio.Queue"

enum { QFIFO, QLIFO, QPRIO };

static const char QTAG = 'Q';

typedef struct Queue {
  const char *tag;             /* &QTAG */
  int kind;
  int shutdown;
  lua_Integer maxsize;         /* <= 0: unbounded */
  lua_Integer n;               /* items */
  lua_Integer head, cap;       /* the FIFO ring: 0-based start, capacity
                                  (0 or a power of two) */
  lua_Integer unfinished;      /* put and not yet task_done */
  int inl;                     /* FIFO ring in user values INL.., 0: none */
  unsigned loop_id;
  GState *G;              /* of the Lua state that made it */
  WaitList getters, putters, joiners;
} Queue;

#define ITEMS 1
#define LESS 2
#define INL 3                          /* the first inline ring slot */
#define MAXINL 16


/* ---------------------------------------------------------- access */

/*
** The Queue of the object at arg 1 (a table holding it at [1]).  Pushes
** the userdata; *ud is its index.  A continuation finds the same stack:
** ud is then the top.
*/
static Queue *checkq (lua_State *L, int *ud) {
  if (lua_type(L, 1) == LUA_TTABLE && lua_rawgeti(L, 1, 1) == LUA_TUSERDATA) {
    Queue *q = (Queue *)lua_touserdata(L, -1);
    if (lua_rawlen(L, -1) == sizeof(Queue) && q->tag == &QTAG) {
      *ud = lua_gettop(L);
      return q;
    }
  }
  luaio__check_self(L, 1, LUAIO_QUEUE);
  lua_settop(L, 0);
  luaL_error(L, "bad self: a queue expected");
  return NULL;
}

#define UD(L) lua_gettop(L)            /* ud in a continuation */

static int full (Queue *q) {
  return q->maxsize > 0 && q->n >= q->maxsize;
}

static void bind_loop (lua_State *L, Queue *q, luaio_Runtime *rt, const char *f) {
  if (q->loop_id == 0) q->loop_id = rt->id;
  else if (q->loop_id != rt->id)
    luaL_error(L, "%s: the queue belongs to another event loop", f);
}


/* ---------------------------------------------------------- storage */

/* Is item a "less than" item b (the values at a, b)?  May raise. */
static int less (lua_State *L, int ud, int a, int b) {
  int r;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_getiuservalue(L, ud, LESS) == LUA_TFUNCTION) {
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    lua_call(L, 2, 1);
    r = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return r;
  }
  lua_pop(L, 1);
  return lua_compare(L, a, b, LUA_OPLT);
}

/* Heap in items[1..n]: the item at slot i moves up (items table at t). */
static void heap_up (lua_State *L, int ud, int t, lua_Integer i) {
  while (i > 1) {
    lua_Integer p = i / 2;
    int lt;
    lua_rawgeti(L, t, i);
    lua_rawgeti(L, t, p);
    lt = less(L, ud, -2, -1);
    if (!lt) { lua_pop(L, 2); break; }
    lua_rawseti(L, t, i);              /* swap: items[i] = parent */
    lua_rawseti(L, t, p);
    i = p;
  }
}

static void heap_down (lua_State *L, int ud, int t, lua_Integer i,
                       lua_Integer n) {
  for (;;) {
    lua_Integer c = 2 * i;
    if (c > n) break;
    if (c + 1 <= n) {
      int lt;
      lua_rawgeti(L, t, c + 1);
      lua_rawgeti(L, t, c);
      lt = less(L, ud, -2, -1);
      lua_pop(L, 2);
      if (lt) c++;
    }
    {
      int lt;
      lua_rawgeti(L, t, c);
      lua_rawgeti(L, t, i);
      lt = less(L, ud, -2, -1);
      if (!lt) { lua_pop(L, 2); break; }
      lua_rawseti(L, t, c);            /* swap */
      lua_rawseti(L, t, i);
      i = c;
    }
  }
}

/* Stores the value at v; may leave the items table pushed. */
static void store (lua_State *L, Queue *q, int ud, int v) {
  int t;
  if (q->inl > 0) {                    /* a small bounded FIFO */
    lua_Integer pos = q->head + q->n;
    if (pos >= q->inl) pos -= q->inl;
    lua_pushvalue(L, v);
    lua_setiuservalue(L, ud, INL + (int)pos);
    q->n++;
    return;
  }
  lua_getiuservalue(L, ud, ITEMS);
  t = lua_gettop(L);
  switch (q->kind) {
    case QFIFO:
      if (q->n == q->cap) {            /* grow the ring, keeping order */
        lua_Integer cap = q->cap ? q->cap * 2 : 8, i;
        if (cap > INT_MAX) luaL_error(L, "the queue is too large");
        /* A new table whose array part holds the whole ring: its slots
           are then set and cleared in place.  (In a table grown by
           rawseti, a ring's cleared keys are dropped at each rehash and
           the next store to them rehashes again.) */
        lua_createtable(L, (int)cap, 0);
        for (i = 0; i < q->n; i++) {
          lua_rawgeti(L, t, ((q->head + i) & (q->cap - 1)) + 1);
          lua_rawseti(L, t + 1, i + 1);
        }
        lua_pushvalue(L, t + 1);
        lua_setiuservalue(L, ud, ITEMS);
        lua_replace(L, t);
        q->head = 0;
        q->cap = cap;
      }
      lua_pushvalue(L, v);
      lua_rawseti(L, t, ((q->head + q->n) & (q->cap - 1)) + 1);
      break;
    case QLIFO:
      lua_pushvalue(L, v);
      lua_rawseti(L, t, q->n + 1);
      break;
    default:
      lua_pushvalue(L, v);
      lua_rawseti(L, t, q->n + 1);
      q->n++;                          /* counted before: heap_up may raise */
      heap_up(L, ud, t, q->n);
      return;
  }
  q->n++;
}

/* Pushes the next item, removing it (the items table may sit below). */
static void take (lua_State *L, Queue *q, int ud) {
  int t;
  if (q->inl > 0) {
    int slot = INL + (int)q->head;
    lua_getiuservalue(L, ud, slot);
    lua_pushnil(L);
    lua_setiuservalue(L, ud, slot);
    if (++q->head == q->inl) q->head = 0;
    q->n--;
    return;
  }
  lua_getiuservalue(L, ud, ITEMS);
  t = lua_gettop(L);
  switch (q->kind) {
    case QFIFO:
      lua_rawgeti(L, t, q->head + 1);
      lua_pushnil(L);
      lua_rawseti(L, t, q->head + 1);
      q->head = (q->head + 1) & (q->cap - 1);
      q->n--;
      break;
    case QLIFO:
      lua_rawgeti(L, t, q->n);
      lua_pushnil(L);
      lua_rawseti(L, t, q->n);
      q->n--;
      break;
    default:
      lua_rawgeti(L, t, 1);
      lua_rawgeti(L, t, q->n);
      lua_rawseti(L, t, 1);
      lua_pushnil(L);
      lua_rawseti(L, t, q->n);
      q->n--;
      if (q->n > 1) heap_down(L, ud, t, 1, q->n);
      break;
  }
}


/* ---------------------------------------------------------- nowait */

/* Puts the item at arg 2. */
static int do_put (lua_State *L, Queue *q, int ud) {
  if (q->shutdown)
    return luaio__error(L, "QueueShutDown", "the queue is shut down");
  if (full(q)) return luaio__error(L, "QueueFull", "the queue is full");
  store(L, q, ud, 2);
  q->unfinished++;
  luaio__wake_first(&q->getters);
  return 0;
}

/* Returns the next item (on top). */
static int do_get (lua_State *L, Queue *q, int ud) {
  if (q->n == 0) {
    if (q->shutdown)
      return luaio__error(L, "QueueShutDown", "the queue is shut down");
    return luaio__error(L, "QueueEmpty", "the queue is empty");
  }
  take(L, q, ud);
  luaio__wake_first(&q->putters);
  return 1;
}

/* After checkq (whose pushes may sit at index 2): was arg 2 nil/none? */
static void checkitem (lua_State *L, int isnil, const char *fname) {
  if (isnil) luaL_error(L, "%s: nil cannot be queued", fname);
}

static int q_put_nowait (lua_State *L) {
  int isnil = lua_type(L, 2) <= LUA_TNIL, ud;
  Queue *q = checkq(L, &ud);
  checkitem(L, isnil, "put_nowait");
  return do_put(L, q, ud);
}

static int q_get_nowait (lua_State *L) {
  int ud;
  Queue *q = checkq(L, &ud);
  return do_get(L, q, ud);
}


/* ---------------------------------------------------------- waiting */

static int put_k (lua_State *L, int status, lua_KContext ctx);
static int get_k (lua_State *L, int status, lua_KContext ctx);

/* The task running a queue call, else the outside-a-task error. */
static luaio_Runtime *need_task (lua_State *L, GState *G,
                                 const char *fname) {
  luaio_Runtime *rt = G->rt;
  if (rt == NULL || rt->current == NULL)
    luaL_error(L, "%s: needs a running task (called outside a task)", fname);
  return rt;
}

/*
** In a continuation: the task the scheduler resumed (luaio__resumed_task
** without the upvalue lookup: the queue knows its state).
*/
static Task *resumed (lua_State *L, Queue *q) {
  luaio_Runtime *rt = q->G->rt;
  if (rt == NULL || L != rt->running)
    luaL_error(L, "a suspended luaio call was resumed by something other "
               "than luaio's scheduler");
  return rt->current;
}

/* put(x): waits while the queue is full. */
static int put_loop (lua_State *L, Queue *q, int ud) {
  if (full(q)) {
    Task *t;
    if (q->shutdown)
      return luaio__error(L, "QueueShutDown", "the queue is shut down");
    t = luaio__check_suspend_G(L, q->G, "put");
    bind_loop(L, q, t->rt, "put");
    return luaio__park(L, t, &q->putters, NULL, "queue put", q,
                       (lua_KContext)q, put_k);
  }
  return do_put(L, q, ud);
}

static int put_k (lua_State *L, int status, lua_KContext ctx) {
  Queue *q = (Queue *)ctx;
  Task *t = resumed(L, q);
  (void)status;
  if (t->must_cancel) {
    if (!t->aborted && !full(q)) luaio__wake_first(&q->putters);  /* pass it on */
    return luaio__raise_cancel(L, t);
  }
  return put_loop(L, q, UD(L));
}

static int q_put (lua_State *L) {
  int isnil = lua_type(L, 2) <= LUA_TNIL, ud;
  Queue *q = checkq(L, &ud);
  checkitem(L, isnil, "put");
  need_task(L, q->G, "put");
  return put_loop(L, q, ud);
}

/* get(): waits while the queue is empty. */
static int get_loop (lua_State *L, Queue *q, int ud) {
  if (q->n == 0) {
    Task *t;
    if (q->shutdown)
      return luaio__error(L, "QueueShutDown", "the queue is shut down");
    t = luaio__check_suspend_G(L, q->G, "get");
    bind_loop(L, q, t->rt, "get");
    return luaio__park(L, t, &q->getters, NULL, "queue get", q,
                       (lua_KContext)q, get_k);
  }
  return do_get(L, q, ud);
}

static int get_k (lua_State *L, int status, lua_KContext ctx) {
  Queue *q = (Queue *)ctx;
  Task *t = resumed(L, q);
  (void)status;
  if (t->must_cancel) {
    if (!t->aborted && q->n > 0) luaio__wake_first(&q->getters);  /* pass it on */
    return luaio__raise_cancel(L, t);
  }
  return get_loop(L, q, UD(L));
}

static int q_get (lua_State *L) {
  int ud;
  Queue *q = checkq(L, &ud);
  need_task(L, q->G, "get");
  return get_loop(L, q, ud);
}

static int join_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  luaio__resumed(L);
  return 0;
}

/* join(): waits until every item put has been marked task_done. */
static int q_join (lua_State *L) {
  int ud;
  Queue *q = checkq(L, &ud);
  Task *t;
  if (q->unfinished == 0) {
    need_task(L, q->G, "join");
    return 0;
  }
  t = luaio__check_suspend_G(L, q->G, "join");
  bind_loop(L, q, t->rt, "join");
  return luaio__park(L, t, &q->joiners, NULL, "queue join", q, 0, join_k);
}

static int q_task_done (lua_State *L) {
  int ud;
  Queue *q = checkq(L, &ud);
  if (q->unfinished <= 0)
    return luaL_error(L, "task_done: called more times than items were put");
  if (--q->unfinished == 0) luaio__wake_all(&q->joiners);
  return 0;
}

/* shutdown([immediate]) (asyncio 3.13). */
static int q_shutdown (lua_State *L) {
  int immediate = lua_toboolean(L, 2), ud;
  Queue *q = checkq(L, &ud);
  q->shutdown = 1;
  if (immediate) {
    while (q->n > 0) {
      take(L, q, ud);
      lua_settop(L, ud);
      if (q->unfinished > 0) q->unfinished--;
    }
    if (q->unfinished == 0) luaio__wake_all(&q->joiners);
  }
  luaio__wake_all(&q->getters);
  luaio__wake_all(&q->putters);
  return 0;
}


/* ---------------------------------------------------------- the rest */

static Queue *checkq_ (lua_State *L) {
  int ud;
  return checkq(L, &ud);
}

static int q_qsize (lua_State *L) {
  lua_pushinteger(L, checkq_(L)->n);
  return 1;
}

static int q_empty (lua_State *L) {
  lua_pushboolean(L, checkq_(L)->n == 0);
  return 1;
}

static int q_full (lua_State *L) {
  lua_pushboolean(L, full(checkq_(L)));
  return 1;
}

static int q_is_shutdown (lua_State *L) {
  lua_pushboolean(L, checkq_(L)->shutdown);
  return 1;
}

static int q_unfinished (lua_State *L) {
  lua_pushinteger(L, checkq_(L)->unfinished);
  return 1;
}

/* core.new_queue(kind, maxsize [, less]) -> udata; kind "fifo"|"lifo"|"priority" */
static int l_new_queue (lua_State *L) {
  static const char *const kinds[] = {"fifo", "lifo", "priority", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  Queue *q;
  int inl;
  lua_Integer maxsize = 0;
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_isinteger(L, 2))
      return luaL_error(L, "bad argument #1 to 'Queue' (integer expected, "
                        "got %s)", luaL_typename(L, 2));
    maxsize = lua_tointeger(L, 2);
  }
  if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TFUNCTION)
    return luaL_error(L, "bad argument #2 to 'PriorityQueue' (function "
                      "expected, got %s)", luaL_typename(L, 3));
  /* a FIFO of at most MAXINL items keeps them in user values: no table
     look-up per put and get */
  inl = kind == QFIFO && maxsize > 0 && maxsize <= MAXINL ? (int)maxsize : 0;
  q = (Queue *)lua_newuserdatauv(L, sizeof(Queue), INL - 1 + inl);
  memset(q, 0, sizeof(*q));
  q->inl = inl;
  q->tag = &QTAG;
  q->G = luaio__state(L);
  q->kind = kind;
  q->maxsize = maxsize > 0 ? maxsize : 0;
  luaL_setmetatable(L, LUAIO_QUEUE);
  lua_newtable(L);
  lua_setiuservalue(L, -2, ITEMS);
  if (lua_type(L, 3) == LUA_TFUNCTION) {
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, -2, LESS);
  }
  return 1;
}

static const luaL_Reg methods[] = {
  {"put", q_put},
  {"get", q_get},
  {"put_nowait", q_put_nowait},
  {"get_nowait", q_get_nowait},
  {"join", q_join},
  {"task_done", q_task_done},
  {"shutdown", q_shutdown},
  {"qsize", q_qsize},
  {"empty", q_empty},
  {"full", q_full},
  {"is_shutdown", q_is_shutdown},
  {"_unfinished", q_unfinished},
  {NULL, NULL}
};

void luaio__queue_open (lua_State *L) {
  luaL_newmetatable(L, LUAIO_QUEUE);
  lua_newtable(L);
  luaio__setfuncs(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");      /* (for luaio__check_self) */
  lua_setfield(L, -3, "QueueMethods");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new_queue);
  lua_setfield(L, -2, "new_queue");
}
