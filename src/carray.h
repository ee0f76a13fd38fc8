/*
 * carray objects as message elements (the Carray C API, consumed): copying arrays
 * into messages on send and creating or reusing carrays on receive. No locks; the
 * API record of the carray module is cached per Lua state in the registry.
 */
#ifndef MTMSG_CARRAY_H
#define MTMSG_CARRAY_H

#include "lua.h"
#include "codec.h"
#include "membuf.h"

/* Element types of the first reuse entries, recorded for mtmsg_carray_neednew. */
#if !defined(MTMSG_REUSE_TYPES)
#define MTMSG_REUSE_TYPES 16
#endif

/* The receive-side reuse list: carrays given to nextmsg/next at stack indices
 * first..last, consumed left to right (`next` is the next index to look at). */
typedef struct CarrayReuse {
    int first, last, next;
    int ready;              /* the carray module's API is cached: new carrays run no Lua */
    int ntypes;             /* non-nil entries (may exceed MTMSG_REUSE_TYPES) */
    struct { int type; size_t size; } types[MTMSG_REUSE_TYPES];   /* theirs, in order */
} CarrayReuse;

/* The `check` argument of the take functions: NULL once new carrays can be created
 * without running Lua code. */
static inline const CarrayReuse *mtmsg_carray_check(const CarrayReuse *r) {
    return r->ready ? NULL : r;
}

/* Appends the userdata at idx as an array element if it is a carray. MSG_BADARG with
 * *badmsg when it is not (or has an incompatible API). Call without locks held. */
MsgStatus mtmsg_carray_encode(lua_State *L, int idx, MemBuf *out, const char **badmsg);
/* Pushes the array value v as a carray, reusing one from `reuse` (may be NULL) when it
 * matches. Raises when a carray cannot be resized or created. */
void mtmsg_carray_push(lua_State *L, const MsgValue *v, CarrayReuse *reuse);

/* Receive side, before anything is taken: raises argerror(arg, msg) unless the
 * value at arg is a userdata with a compatible carray API. */
void mtmsg_carray_checkarg(lua_State *L, int arg, const char *msg);
/* Validates every non-nil entry of first..last as a writable carray (argerror otherwise)
 * and sets up *reuse for them. */
void mtmsg_carray_checkreuse(lua_State *L, int first, int last, CarrayReuse *reuse);
/* After decoding: resets the unused carrays of the reuse list to length 0. */
void mtmsg_carray_finishreuse(lua_State *L, CarrayReuse *reuse);

/* Plain C, callable under a lock: whether decoding the values p[pos..len) (at most max,
 * max < 0: all) with the reuse list `reuse` would create a new carray. */
int mtmsg_carray_neednew(const CarrayReuse *reuse, const char *p, size_t len, size_t pos,
                         int max);
/* Runs `require "carray"` and caches its API for this Lua state (raises "carray capi not
 * found" / "carray capi version mismatch"); sets reuse->ready. Returns 1. No lock held. */
int mtmsg_carray_load(lua_State *L, CarrayReuse *reuse);

#endif
