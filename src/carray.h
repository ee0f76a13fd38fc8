/*
 * carray objects as message elements (the Carray C API, consumed): copying arrays
 * into messages on send and creating or reusing carrays on receive.
 */
#ifndef MTMSG_CARRAY_H
#define MTMSG_CARRAY_H

#include "lua.h"
#include "codec.h"
#include "membuf.h"

/* The receive-side reuse list: carrays given to nextmsg/next at stack indices
 * first..last, consumed left to right (`next` is the next index to look at). */
typedef struct CarrayReuse {
    int first, last, next;
} CarrayReuse;

/* Appends the userdata at idx as an array element if it is a carray. MSG_BADARG with
 * *badmsg when it is not (or has an incompatible API). Call without locks held. */
MsgStatus mtmsg_carray_encode(lua_State *L, int idx, MemBuf *out, const char **badmsg);
/* Pushes the array value v as a carray, reusing one from `reuse` when it matches. */
void mtmsg_carray_push(lua_State *L, const MsgValue *v, CarrayReuse *reuse);

/* Receive side, before anything is taken: raises argerror(arg, msg) unless the
 * value at arg is a usable carray; validates every non-nil entry of first..last. */
void mtmsg_carray_checkarg(lua_State *L, int arg, const char *msg);
void mtmsg_carray_checkreuse(lua_State *L, int first, int last);
/* After decoding: resets the unused carrays of the reuse list to length 0. */
void mtmsg_carray_finishreuse(lua_State *L, CarrayReuse *reuse);

#endif
