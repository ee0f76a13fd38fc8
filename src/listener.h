/*
 * Listeners: one waiting point for several buffers. The listener's mutex guards the
 * listener, its ready list and its member list; each buffer has its own mutex for its
 * queue (lock order: listener, then buffer). Messages are served round-robin from the
 * buffers in the ready list. Buffers keep the listener alive (nbuf), handles do not
 * own buffers.
 */
#ifndef MTMSG_LISTENER_H
#define MTMSG_LISTENER_H

#include "lua.h"
#include "buffer.h"
#include "registry.h"
#include "sync.h"

#define MTMSG_LISTENER_MT "mtmsg.listener"

typedef struct MsgListener {
    MsgObject obj;
    MtMutex mutex;                  /* guards the fields below and the members' links */
    MtCond cond;                    /* listener:nextmsg waiters */
    int closed, aborted;            /* guarded by: mutex */
    int nwaiters;                   /* guarded by: mutex */
    MtAtomic seq;                   /* as MsgBuffer.seq, for listener:nextmsg spinners */
    MtSpin spin;                    /* guarded by: mutex */
    int unreferenced;               /* guarded by: mutex; user references gone */
    size_t nlive;                   /* guarded by: mutex; member buffers with user refs */
    size_t nbuf;                    /* guarded by: mutex; member buffers not yet freed */
    size_t nended;                  /* guarded by: mutex; live members that are finished */
    MsgBuffer *ready_head, *ready_tail;   /* guarded by: mutex; buffers with messages */
    MsgBuffer *members;             /* guarded by: mutex; all member buffers */
    MtWake wake;                    /* guarded by: mutex; listener:getfd, opened on demand */
} MsgListener;

/* For buffer.c, with l->mutex held (and b->mutex where b's in_ready may change): */
void mtmsg_listener_ready_add_locked(MsgListener *l, MsgBuffer *b);
void mtmsg_listener_ready_remove_locked(MsgListener *l, MsgBuffer *b);
void mtmsg_listener_attach_locked(MsgListener *l, MsgBuffer *b);
void mtmsg_listener_detach_locked(MsgListener *l, MsgBuffer *b);
/* With both mutexes held: b joins the ready list if it has messages and is not in it
 * (and a taker of l hears of it), or leaves it if it is empty. */
void mtmsg_listener_sync_locked(MsgListener *l, MsgBuffer *b);
/* The same, with no lock held on entry: locks l, then b. */
void mtmsg_listener_sync(MsgListener *l, MsgBuffer *b);
/* After what a take could see changed: the wake-up descriptor follows (see buffer:getfd). */
void mtmsg_listener_wake_locked(MsgListener *l);
/* Frees the listener's memory (after its last handle and last buffer are gone). */
void mtmsg_listener_free(MsgListener *l);

/* Adds the metatable and newlistener/listener to the module table at -2 (scratch at -1). */
void mtmsg_listener_open(lua_State *L);
typedef struct ListenerHandle {
    MsgListener *l;     /* NULL until construction completes; retained */
    int nonblock;       /* per-handle mode */
    HeldMsg held;       /* a message taken by a nextmsg that raised (see HeldMsg) */
} ListenerHandle;
ListenerHandle *mtmsg_listener_test(lua_State *L, int idx);
/* Takes the next message of the listener into `out` (see mtmsg_buffer_take, also for
 * check and fire); also MSG_NOBUFFERS. fire->l is set: the buffer may go away. */
MsgStatus mtmsg_listener_take(MsgListener *l, MemBuf *out, int nonblock, double timeout,
                              const struct CarrayReuse *check, MsgFire *fire);

#endif
