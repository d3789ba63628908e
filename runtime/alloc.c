/*
** alloc.c -- a lua_Alloc for many small objects (coroutines, tasks,
** closures, coroutine stacks): blocks of up to 1 KiB come from per-size
** free lists and 64 KiB chunks, so they carry no malloc header and do not
** fragment; larger blocks go to malloc.  A chunk is carved as it is used
** (a bump pointer per size), so its pages are touched only when needed:
** carving whole chunks up front cost ~400 page faults at start-up.
**
** Chunks are cut from 2 MiB arenas.  Past the first two (start-up and
** small scripts touch only the pages they use), an arena is populated in
** one call (MADV_POPULATE_WRITE, Linux 5.14+; elsewhere pages fault in as
** before) instead of 512 page faults.  W1 with a million tasks: 0.87 s
** of CPU instead of 0.92 s (perf stat, 8 runs each).  (Transparent huge
** pages did as well but stalled in compaction now and then.)  Memory of
** freed small blocks is kept for reuse, not returned to the system.  One allocator serves one
** lua_State (no locking).  The CLI uses it unless LUAIO_ALLOC=malloc.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#define GRAIN 16                       /* size classes: 16, 32, ... 1024 */
#define MAXSMALL 1024
#define NCLASSES (MAXSMALL / GRAIN)
#define CHUNK (64 * 1024)
#define ARENA (2 * 1024 * 1024)
#define PLAIN_ARENAS 2

typedef struct Block { struct Block *next; } Block;

typedef struct Arena { struct Arena *next; void *mem; } Arena;

struct luaio_Allocator {
  Block *free[NCLASSES];
  char *next[NCLASSES];                /* the chunk being carved, per size */
  char *limit[NCLASSES];
  char *arena_next, *arena_end;        /* the arena chunks are cut from */
  Arena *arenas;                       /* every arena, to free them all */
  int narenas;
};

/* The size class of a block of n bytes, 1 <= n <= MAXSMALL. */
static int class_of (size_t n) {
  return (int)((n - 1) / GRAIN);
}

/* A new arena to cut chunks from. */
static int new_arena (luaio_Allocator *a) {
  Arena *r = (Arena *)malloc(sizeof(Arena));   /* (kept apart: the arena
                                                   holds 32 whole chunks) */
  void *p;
  if (r == NULL) return 0;
  /* aligned to 2 MiB: measured ~5 % less CPU on W1 1M than arenas at
     any page boundary (page-table locality; the kernel's huge-page-aligned
     mappings) */
  if (posix_memalign(&p, ARENA, ARENA) != 0) { free(r); return 0; }
#ifdef MADV_POPULATE_WRITE
  if (a->narenas >= PLAIN_ARENAS) madvise(p, ARENA, MADV_POPULATE_WRITE);
#endif
  r->mem = p;
  r->next = a->arenas;
  a->arenas = r;
  a->narenas++;
  a->arena_next = (char *)p;
  a->arena_end = (char *)p + ARENA;
  return 1;
}

/* A new chunk to carve blocks of class c from (kept out of line: the
   allocator's fast paths then need no stack frame). */
NOINLINE static int new_chunk (luaio_Allocator *a, int c) {
  if (a->arena_next == NULL || (size_t)(a->arena_end - a->arena_next) < CHUNK) {
    if (!new_arena(a)) return 0;
  }
  a->next[c] = a->arena_next;
  a->limit[c] = a->arena_next + CHUNK;
  a->arena_next += CHUNK;
  return 1;
}

/* A new block of class c from the chunk being carved (or a new chunk). */
NOINLINE static void *carve (luaio_Allocator *a, int c) {
  size_t size = (size_t)(c + 1) * GRAIN;
  char *p = a->next[c];
  if ((uintptr_t)a->limit[c] - (uintptr_t)p < size) {  /* (both NULL at first) */
    if (!new_chunk(a, c)) return NULL;
    p = a->next[c];
  }
  a->next[c] = p + size;
  return p;
}

/* A block of n bytes, 1 <= n <= MAXSMALL: a freed one, else carved. */
static void *small_alloc (luaio_Allocator *a, size_t n) {
  int c = class_of(n);
  Block *b = a->free[c];
  if (b == NULL) return carve(a, c);
  a->free[c] = b->next;
  return b;
}

static void small_free (luaio_Allocator *a, void *p, size_t n) {
  int c = class_of(n);
  Block *b = (Block *)p;
  b->next = a->free[c];
  a->free[c] = b;
}

/* A block changes size (rare: stacks, tables, strings being built). */
NOINLINE static void *resize (luaio_Allocator *a, void *ptr, size_t osize,
                              size_t nsize) {
  void *q;
  if (osize <= MAXSMALL && nsize <= MAXSMALL &&
      class_of(osize) == class_of(nsize))
    return ptr;                        /* same block size */
  if (osize > MAXSMALL && nsize > MAXSMALL)
    return realloc(ptr, nsize);
  q = nsize <= MAXSMALL ? small_alloc(a, nsize) : malloc(nsize);
  if (q == NULL) return NULL;
  memcpy(q, ptr, osize < nsize ? osize : nsize);
  if (osize <= MAXSMALL) small_free(a, ptr, osize);
  else free(ptr);
  return q;
}

/*
** New blocks and freed ones come first: they are nearly every call
** (W1: eight of each per task).
*/
LUAIO_API void *luaio_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  luaio_Allocator *a = (luaio_Allocator *)ud;
  if (ptr == NULL) {                   /* osize is a type tag */
    if (nsize - 1 < MAXSMALL) return small_alloc(a, nsize);
    return nsize == 0 ? NULL : malloc(nsize);
  }
  if (nsize == 0) {
    if (osize <= MAXSMALL) small_free(a, ptr, osize);
    else free(ptr);
    return NULL;
  }
  return resize(a, ptr, osize, nsize);
}

LUAIO_API luaio_Allocator *luaio_allocator_new (void) {
  return (luaio_Allocator *)calloc(1, sizeof(luaio_Allocator));
}

/* Frees every arena: only once the lua_State using it is closed. */
LUAIO_API void luaio_allocator_free (luaio_Allocator *a) {
  while (a->arenas != NULL) {
    Arena *r = a->arenas;
    a->arenas = r->next;
    free(r->mem);
    free(r);
  }
  free(a);
}
