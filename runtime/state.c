/*
** state.c -- the ground floor: the per-state context (GState), the
** running runtime, anchors, and per-runtime slots for subsystems.
**
** GState is a full userdata kept in the registry under the address of a
** static; every core C function has it as upvalue 1 (luaio__setfuncs),
** so no function looks it up.  A runtime's Lua-side table R and its Loop
** object are made by loop.c; this file only finds them.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char GKEY = 'G';       /* registry: the GState */


/* ---------------------------------------------------------- per state */

/*
** The state is closing (lua_close, or os.exit(code, true) from a task):
** stop what could call back into it.  A finaliser never runs or closes a
** loop, so the runtime's memory is left to the process (or, for a borrowed
** loop, to the host that closes it).
*/
static int state_gc (lua_State *L) {
  GState *G = (GState *)lua_touserdata(L, 1);
  luaio_Runtime *rt;
  for (rt = G->open; rt != NULL; rt = rt->next)
    luaio__sched_stop(rt);             /* (signal.c's Ctrl-C watch stops
                                          itself when it sees rt->closed) */
  G->open = NULL;
  G->rt = NULL;
  free(G->pool);
  G->pool = NULL;
  G->npool = G->poolcap = 0;
  return 0;
}

GState *luaio__state (lua_State *L) {
  GState *G;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &GKEY) == LUA_TUSERDATA) {
    G = (GState *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return G;
  }
  lua_pop(L, 1);
  G = (GState *)lua_newuserdatauv(L, sizeof(GState), 0);
  memset(G, 0, sizeof(*G));
  G->next_id = 1;
  lua_newtable(L);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &GKEY);
  return G;
}

/* Is the value at idx a userdata with metatable mt (a cached pointer)? */
int luaio__hasmt (lua_State *L, int idx, const void *mt) {
  int r;
  if (mt == NULL || !lua_getmetatable(L, idx)) return 0;
  r = lua_topointer(L, -1) == mt;
  lua_pop(L, 1);
  return r;
}

/* luaL_checkudata by the cached metatable mt: the lookup by name (and
   lauxlib's message) only when that check fails. */
void *luaio__checkudata (lua_State *L, int idx, const void *mt,
                         const char *tname) {
  if (luaio__hasmt(L, idx, mt)) return lua_touserdata(L, idx);
  return luaio__checkclass(L, idx, tname);
}

void luaio__setfuncs (lua_State *L, const luaL_Reg *l) {
  GState *G = luaio__state(L);
  lua_pushlightuserdata(L, G);
  luaL_setfuncs(L, l, 1);
}


/* ---------------------------------------------------------- lookups */

luaio_Runtime *luaio__rt (lua_State *L) {
  return luaio__G(L)->rt;
}

luaio_Runtime *luaio__need_rt (lua_State *L, const char *fname) {
  luaio_Runtime *rt = luaio__G(L)->rt;
  if (rt == NULL)
    luaL_error(L, "%s: no running event loop", fname);
  return rt;
}

luaio_Runtime *luaio__find_rt (GState *G, unsigned id) {
  luaio_Runtime *rt;
  for (rt = G->open; rt != NULL; rt = rt->next)
    if (rt->id == id) return rt;
  return NULL;
}

void luaio__push_R (lua_State *L, luaio_Runtime *rt) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_R);
}

/* The runtime of the Loop object at idx (made by loop.c); raises if it
   is closed. */
luaio_Runtime *luaio__checkloop (lua_State *L, int idx) {
  LoopBox *b = (LoopBox *)luaio__checkclass(L, idx, LUAIO_LOOP);
  if (b->rt == NULL) luaL_error(L, "the event loop is closed");
  return b->rt;
}

void luaio__push_loop (lua_State *L, luaio_Runtime *rt) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->ref_loop);
}


/* ---------------------------------------------------------- anchors */

/*
** What the loop keeps alive sits in integer slots of the registry: pushing
** an anchored value is one registry read.  A runtime owns the slots it
** took (rt->slots) and recycles them through a C free list; a free slot
** holds false, never nil.  When the runtime is freed its slots go to the
** state's pool (G->pool) for the next runtime.  New slots are claimed
** only at keys that are nil, from the registry's border on: luaL_ref
** hands out the border + 1 or refs it freed itself (which hold integers),
** so the two never meet.
*/

/* Room for n slots in both lists (the free list never grows on its own,
   so releasing a slot cannot fail); 0 when out of memory. */
static int slot_room (luaio_Runtime *rt, int n) {
  int *p;
  if (n <= rt->slotcap) return 1;
  p = (int *)realloc(rt->slots, (size_t)n * sizeof(int));
  if (p == NULL) return 0;
  rt->slots = p;
  p = (int *)realloc(rt->freeslots, (size_t)n * sizeof(int));
  if (p == NULL) return 0;
  rt->freeslots = p;
  rt->slotcap = n;
  return 1;
}

/*
** A registry key that is nil, for a new slot: the one after the last we
** claimed, else past the border.  Never luaL_ref's free-list head
** (LUA_RIDX_LAST + 1), which is nil until its first use.
*/
static int free_key (lua_State *L, GState *G) {
  int k = G->next_key, n;
  for (;;) {
    if (k <= LUA_RIDX_LAST + 1) k = LUA_RIDX_LAST + 2;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, k) == LUA_TNIL) break;
    lua_pop(L, 1);
    n = (int)lua_rawlen(L, LUA_REGISTRYINDEX) + 1;   /* a border + 1 */
    k = n > k ? n : k + 1;
  }
  lua_pop(L, 1);
  G->next_key = k + 1;
  return k;
}

/* Keeps the value on top alive in a slot; pops it.  The value is never
   nil (a nil slot would be taken again by free_key). */
int luaio__anchor (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  int slot;
  if (rt->nfree > 0) slot = rt->freeslots[--rt->nfree];
  else {
    if (rt->nslots == rt->slotcap &&
        !slot_room(rt, rt->slotcap > 0 ? 2 * rt->slotcap : 64))
      luaL_error(L, "not enough memory");
    slot = G->npool > 0 ? G->pool[--G->npool] : free_key(L, G);
    rt->slots[rt->nslots++] = slot;
  }
  lua_rawseti(L, LUA_REGISTRYINDEX, slot);
  return slot;
}

void luaio__push_anchor (lua_State *L, luaio_Runtime *rt, int slot) {
  (void)rt;
  lua_rawgeti(L, LUA_REGISTRYINDEX, slot);
}

/* Releases a slot.  Never raises. */
void luaio__unanchor (lua_State *L, luaio_Runtime *rt, int slot) {
  if (slot <= 0) return;
  lua_pushboolean(L, 0);
  lua_rawseti(L, LUA_REGISTRYINDEX, slot);
  rt->freeslots[rt->nfree++] = slot;
}

/* The runtime is being freed: its slots, emptied, go to the state's pool
   (or back to luaL_ref's free list if the pool cannot grow). */
void luaio__free_slots (lua_State *L, luaio_Runtime *rt) {
  GState *G = rt->G;
  int i;
  if (G->npool + rt->nslots > G->poolcap) {
    int cap = G->npool + rt->nslots;
    int *p = (int *)realloc(G->pool, (size_t)cap * sizeof(int));
    if (p != NULL) { G->pool = p; G->poolcap = cap; }
  }
  for (i = 0; i < rt->nslots; i++) {
    if (G->npool < G->poolcap) {
      lua_pushboolean(L, 0);
      lua_rawseti(L, LUA_REGISTRYINDEX, rt->slots[i]);
      G->pool[G->npool++] = rt->slots[i];
    }
    else luaL_unref(L, LUA_REGISTRYINDEX, rt->slots[i]);
  }
  free(rt->slots);
  free(rt->freeslots);
}


/* ---------------------------------------------------------- ext slots */

/*
** A subsystem that keeps state once per runtime (signal watches, an
** embedding host's) finds it under a key of its own, the address of one
** of its statics: the runtime names no subsystem.
*/
void *luaio__ext (luaio_Runtime *rt, const void *key) {
  int i;
  for (i = 0; i < LUAIO_NEXT; i++)
    if (rt->ext[i].key == key) return rt->ext[i].p;
  return NULL;
}

/* Sets (p != NULL) or clears key's slot; 0 when all slots are taken. */
int luaio__set_ext (luaio_Runtime *rt, const void *key, void *p) {
  int i, spare = -1;
  for (i = 0; i < LUAIO_NEXT; i++) {
    if (rt->ext[i].key == key) break;
    if (rt->ext[i].key == NULL && spare < 0) spare = i;
  }
  if (i == LUAIO_NEXT) {
    if (p == NULL) return 1;
    if (spare < 0) return 0;
    i = spare;
  }
  rt->ext[i].key = p != NULL ? key : NULL;
  rt->ext[i].p = p;
  return 1;
}
