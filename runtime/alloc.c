/*
** alloc.c -- a lua_Alloc for many small objects (coroutines, tasks,
** closures): blocks of up to 512 bytes come from per-size free lists and
** 64 KiB chunks, so they carry no malloc header and do not fragment;
** larger blocks go to malloc.  A chunk is carved as it is used (a bump
** pointer per size), so its pages are touched only when needed: carving
** whole chunks up front cost ~400 page faults at start-up.  Memory of freed small blocks is
** kept for reuse, not returned to the system.  One allocator serves one
** lua_State (no locking).  The CLI uses it unless LUAIO_ALLOC=malloc.
*/
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define GRAIN 16                       /* size classes: 16, 32, ... 512 */
#define MAXSMALL 512
#define NCLASSES (MAXSMALL / GRAIN)
#define CHUNK (64 * 1024)

typedef struct Block { struct Block *next; } Block;

typedef struct Chunk { struct Chunk *next; } Chunk;

struct luaio_Allocator {
  Block *free[NCLASSES];
  char *next[NCLASSES];                /* the chunk being carved, per size */
  char *limit[NCLASSES];
  Chunk *chunks;                       /* every chunk, to free them all */
};

static int class_of (size_t n) {
  return (int)((n + GRAIN - 1) / GRAIN) - 1;
}

/* A new chunk to carve blocks of class c from. */
static int new_chunk (luaio_Allocator *a, int c) {
  char *p = (char *)malloc(CHUNK);
  if (p == NULL) return 0;
  ((Chunk *)p)->next = a->chunks;
  a->chunks = (Chunk *)p;
  a->next[c] = p + GRAIN * 2;          /* (the first 32 bytes hold the link) */
  a->limit[c] = p + CHUNK;
  return 1;
}

static void *small_alloc (luaio_Allocator *a, size_t n) {
  int c = class_of(n);
  size_t size = (size_t)(c + 1) * GRAIN;
  Block *b = a->free[c];
  char *p;
  if (b != NULL) {
    a->free[c] = b->next;
    return b;
  }
  if (a->next[c] == NULL || (size_t)(a->limit[c] - a->next[c]) < size) {
    if (!new_chunk(a, c)) return NULL;
  }
  p = a->next[c];
  a->next[c] = p + size;
  return p;
}

static void small_free (luaio_Allocator *a, void *p, size_t n) {
  int c = class_of(n);
  Block *b = (Block *)p;
  b->next = a->free[c];
  a->free[c] = b;
}

LUAIO_API void *luaio_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  luaio_Allocator *a = (luaio_Allocator *)ud;
  void *q;
  if (ptr == NULL) osize = 0;          /* then osize is a type tag */
  if (nsize == 0) {
    if (ptr != NULL) {
      if (osize <= MAXSMALL) small_free(a, ptr, osize);
      else free(ptr);
    }
    return NULL;
  }
  if (ptr != NULL && osize <= MAXSMALL && nsize <= MAXSMALL &&
      class_of(osize) == class_of(nsize))
    return ptr;                        /* same block size */
  if (ptr != NULL && osize > MAXSMALL && nsize > MAXSMALL)
    return realloc(ptr, nsize);
  q = nsize <= MAXSMALL ? small_alloc(a, nsize) : malloc(nsize);
  if (q == NULL) return NULL;
  if (ptr != NULL) {
    memcpy(q, ptr, osize < nsize ? osize : nsize);
    if (osize <= MAXSMALL) small_free(a, ptr, osize);
    else free(ptr);
  }
  return q;
}

LUAIO_API luaio_Allocator *luaio_allocator_new (void) {
  return (luaio_Allocator *)calloc(1, sizeof(luaio_Allocator));
}

/* Frees every chunk: only once the lua_State using it is closed. */
LUAIO_API void luaio_allocator_free (luaio_Allocator *a) {
  while (a->chunks != NULL) {
    Chunk *c = a->chunks;
    a->chunks = c->next;
    free(c);
  }
  free(a);
}
