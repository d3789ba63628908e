/*
** timer.c -- the clock and the timer heap: aio.time, aio.sleep.
**
** Every deadline of a runtime (sleeping tasks, call_later handles) lives in
** one binary heap ordered by (deadline, creation order); one uv_timer_t
** wakes the loop for the earliest.  A sleeping task costs one heap entry:
** no handle, table or closure.
**
** Clock: nanoseconds, uv_hrtime() read fresh, or a virtual clock that
** moves only when the loop would otherwise block (see on_timer).
**
** sleep(delay, ...): negative = 0; 0 yields once (the task goes to the
** back of the ready queue); math.huge or beyond the clock's range waits
** until cancelled; NaN or a non-number is an error.  Cancellation while
** sleeping removes the heap entry and raises CancelledError there.
*/
#include <math.h>
#include <stdlib.h>

#include "internal.h"

/* Delays beyond this many seconds (about 146 years) wait forever. */
#define MAX_DELAY 4.6e9


/* ---------------------------------------------------------- clock */

uint64_t luaio__now (luaio_Runtime *rt) {
  return rt->virtual_clock ? rt->vnow : uv_hrtime();
}

/*
** Reads a delay in seconds at arg: sets *ns and returns 0, or returns 1
** for "forever".  Raises on NaN or a non-number.
*/
int luaio__delay_ns (lua_State *L, int arg, const char *fname,
                    uint64_t *ns) {
  double d;
  if (lua_type(L, arg) != LUA_TNUMBER) luaio__typeerror(L, arg, fname, "number");
  d = lua_tonumber(L, arg);
  if (d != d) luaio__argerror(L, arg, fname, "delay is NaN");
  if (d >= MAX_DELAY) return 1;
  *ns = d > 0 ? (uint64_t)(d * 1e9) : 0;
  return 0;
}

/* The real clock's time seconds (>= 0) from now; a longer wait than
   MAX_DELAY (math.huge) is as long as MAX_DELAY. */
uint64_t luaio__real_after (double seconds) {
  if (seconds > MAX_DELAY) seconds = MAX_DELAY;
  return uv_hrtime() + (uint64_t)(seconds * 1e9);
}


/* ---------------------------------------------------------- the heap */

static int earlier (const TimerEntry *a, const TimerEntry *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

/* The heap index of an entry's owner (see TimerEntry). */
static int *owner_index (const TimerEntry *e) {
  return e->run == NULL ? &((Task *)e->p)->heap : (int *)e->p;
}

static void place (luaio_Runtime *rt, size_t i, TimerEntry e) {
  rt->heap[i] = e;
  *owner_index(&e) = (int)i + 1;
}

static void sift_up (luaio_Runtime *rt, size_t i, TimerEntry e) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!earlier(&e, &rt->heap[parent])) break;
    place(rt, i, rt->heap[parent]);
    i = parent;
  }
  place(rt, i, e);
}

static void sift_down (luaio_Runtime *rt, size_t i, TimerEntry e) {
  size_t n = rt->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && earlier(&rt->heap[c + 1], &rt->heap[c])) c++;
    if (!earlier(&rt->heap[c], &e)) break;
    place(rt, i, rt->heap[c]);
    i = c;
  }
  place(rt, i, e);
}

/* Adds a deadline: run NULL wakes task p, else p is scheduled with run;
   returns 0 when out of memory. */
int luaio__heap_push (luaio_Runtime *rt, uint64_t when, RunFn run, void *p) {
  TimerEntry e;
  if (rt->nheap == rt->heapcap) {
    size_t cap = rt->heapcap ? rt->heapcap * 2 : 256;
    TimerEntry *h = (TimerEntry *)realloc(rt->heap, cap * sizeof(*h));
    if (h == NULL) return 0;
    rt->heap = h;
    rt->heapcap = cap;
  }
  e.when = when;
  e.seq = rt->timer_seq++;
  e.run = run;
  e.p = p;
  rt->nheap++;
  sift_up(rt, rt->nheap - 1, e);
  return 1;
}

/* Removes the entry at pos (0-based) and clears its owner's index. */
void luaio__heap_remove (luaio_Runtime *rt, int pos) {
  TimerEntry gone = rt->heap[pos], last;
  *owner_index(&gone) = 0;
  last = rt->heap[--rt->nheap];
  if ((size_t)pos < rt->nheap) {
    if (pos > 0 && earlier(&last, &rt->heap[(pos - 1) / 2]))
      sift_up(rt, (size_t)pos, last);
    else
      sift_down(rt, (size_t)pos, last);
  }
}

/* Moves every entry due by now to the ready queue; returns how many. */
int luaio__move_due (luaio_Runtime *rt, uint64_t now) {
  int n = 0;
  while (rt->nheap > 0 && rt->heap[0].when <= now) {
    TimerEntry e = rt->heap[0];
    luaio__heap_remove(rt, 0);
    if (e.run == NULL) luaio__wake(rt, (Task *)e.p);
    else luaio__schedule(rt, e.run, e.p, 0);
    n++;
  }
  return n;
}

static void on_timer (uv_timer_t *h) {
  luaio_Runtime *rt = (luaio_Runtime *)h->data;
  rt->timer_on = 0;
  if (rt->nheap == 0) return;
  /* Virtual time jumps only when nothing else could happen: nothing is
     ready, the poll just made found no I/O, no request is outstanding. */
  if (rt->virtual_clock && rt->qlen == 0 && rt->nrequests == 0 &&
      rt->heap[0].when > rt->vnow)
    rt->vnow = rt->heap[0].when;
  luaio__move_due(rt, luaio__now(rt));
  if (rt->qlen == 0) luaio__arm_timer(rt);
}

/*
** Arms the loop's timer for the earliest deadline (called when the ready
** queue is empty).  libuv counts whole milliseconds from a cached time, so
** the delay is rounded up and on_timer re-arms if it woke early.
*/
void luaio__arm_timer (luaio_Runtime *rt) {
  uint64_t now, when, ms;
  if (rt->closed) return;
  if (rt->nheap == 0) {
    if (rt->timer_on) uv_timer_stop(&rt->timer);
    rt->timer_on = 0;
    return;
  }
  if (rt->virtual_clock) {
    /* A zero timeout: poll once without blocking, then jump (on_timer).
       While requests are outstanding, block on them instead. */
    if (rt->nrequests > 0) {
      if (rt->timer_on) uv_timer_stop(&rt->timer);
      rt->timer_on = 0;
      return;
    }
    ms = 0;
  }
  else {
    now = uv_hrtime();
    when = rt->heap[0].when;
    ms = when > now ? (when - now + 999999) / 1000000 : 0;
    uv_update_time(rt->loop);
  }
  rt->timer_on = 1;
  uv_timer_start(&rt->timer, on_timer, ms, 0);
}


/* ---------------------------------------------------------- sleep */

/* Abort hook of a sleeping task: drop its deadline. */
static int sleep_abort (lua_State *L, luaio_Runtime *rt, Task *t) {
  (void)L;
  if (t->heap > 0) luaio__heap_remove(rt, t->heap - 1);
  return 0;
}

/* ctx: the GState (no upvalue look-up). */
static int sleep_k (lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  luaio__resumed_G(L, (GState *)ctx);
  return lua_gettop(L) - 1;            /* the values after the delay */
}

/* aio.sleep(delay, ...) -> ... */
static int l_sleep (lua_State *L) {
  GState *G = luaio__G(L);
  lua_KContext ctx = (lua_KContext)G;
  uint64_t ns = 0;
  int forever = 0;
  Task *t;
  luaio_Runtime *rt;
  if (!lua_isinteger(L, 1) || lua_tointeger(L, 1) > 0)   /* (sleep(0):
                                  no conversion to seconds) */
    forever = luaio__delay_ns(L, 1, "sleep", &ns);
  t = luaio__check_suspend_G(L, G, "sleep");
  rt = t->rt;
  if (forever)
    return luaio__park(L, t, NULL, NULL, "sleep forever", NULL, ctx, sleep_k);
  if (ns == 0) {                       /* yield once */
    t->tstate = T_SCHEDULED;
    luaio__schedule_task(rt, t);
    lua_pushlightuserdata(L, (void *)&luaio__sentinel);
    return lua_yieldk(L, 1, ctx, sleep_k);
  }
  if (!luaio__heap_push(rt, luaio__now(rt) + ns, NULL, t))
    return luaL_error(L, "not enough memory");
  return luaio__park(L, t, NULL, sleep_abort, "sleep", NULL, ctx, sleep_k);
}

/* core.advance(seconds): moves a virtual clock forward (tests). */
static int l_advance (lua_State *L) {
  luaio_Runtime *rt = luaio__need_rt(L, "advance");
  uint64_t ns = 0;
  if (!rt->virtual_clock)
    return luaL_error(L, "advance: the loop's clock is not virtual");
  if (luaio__delay_ns(L, 1, "advance", &ns))
    return luaio__argerror(L, 1, "advance", "delay must be finite");
  rt->vnow += ns;
  luaio__kick(rt);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"sleep", l_sleep},
  {"advance", l_advance},
  {"can_suspend", luaio__can_suspend},
  {NULL, NULL}
};

void luaio__timer_open (lua_State *L) {
  luaio__setfuncs(L, funcs);
}
