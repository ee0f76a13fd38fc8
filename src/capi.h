/*
 * Native interop of buffers: the Notify, Receiver and Sender C API records published in
 * the buffer metatable, and the buffer's side as a Notify consumer (buffer:notifier and
 * the notifier calls made after an add or a removal). Owns no state of its own; the
 * notifier fields it touches live in MsgBuffer, guarded by the buffer's mutex.
 */
#ifndef MTMSG_CAPI_H
#define MTMSG_CAPI_H

#include "lua.h"
#include "buffer.h"
#include "membuf.h"

/* Sets the raw fields _capi_notify, _capi_receiver and _capi_sender of the buffer
 * metatable at the top of the stack (stack unchanged). */
void mtmsg_capi_publish(lua_State *L);

/* With *b->mutex held, right after a message was added (MTMSG_NTF_ADD) or removed
 * (MTMSG_NTF_REMOVE) and b->msgcnt updated: if the notifier of that kind is connected and
 * its threshold says so, fills *f and retains the notifier for the call. Only called when
 * b->ntf[which].api is set, so that buffers without notifiers pay one branch. */
void mtmsg_capi_arm_locked(MsgBuffer *b, int which, MsgFire *f);

/* From a Lua method, with no lock held: makes the call armed in *f (nothing when f->api
 * is NULL) and drops the extra reference. rc 1 disconnects the notifier if it is still
 * the connected one; rc 2 from an mtmsg buffer (aborted) raises
 * "mtmsg.error.operation_aborted: notifier mtmsg.buffer(...) is aborted"; any other rc but
 * 0 and 1 raises "Error while calling notifier: <texts the notifier reported, joined by
 * newlines>" or "Unknown error while calling notifier. (rc=N)". The C APIs do the same
 * and return 999 with that text given to their eh. */
void mtmsg_capi_firelua(lua_State *L, MsgFire *f);
/* Like mtmsg_capi_firelua, but pushes the error text and returns 1 instead of raising. */
int mtmsg_capi_fireerror(lua_State *L, MsgFire *f);

/* The mtmsg buffer that a connected notifier is, or NULL for any other notifier. A
 * buffer that is its own notifier holds no reference to itself (it would never be
 * freed); a notifier that is another buffer is one reference of that buffer. */
MsgBuffer *mtmsg_capi_notifierbuffer(const MsgNotifier *nt);
/* Drops the reference of a foreign notifier (one that is not an mtmsg buffer). No lock
 * held: it runs foreign code. */
void mtmsg_capi_releaseforeign(const MsgNotifier *nt);

/* buffer:notifier(ntf [, type [, threshold]]) */
int mtmsg_capi_setnotifier(lua_State *L);

#endif
