/*
 * Message buffers: a shared, reference-counted queue of encoded messages. Every
 * buffer has its own mutex; the fields marked "guarded by: mutex" are only touched
 * with it held. A buffer of a listener also has links that its listener's mutex
 * guards (marked "listener's mutex"); lock order: listener, then buffer.
 *
 * A standalone buffer also has a takers' batch (`front`, under `fmutex`): a taker
 * that finds the batch empty and several messages queued moves them all there at
 * once, then takes from the batch under fmutex alone, so that producers and takers
 * seldom share a lock or a cache line (docs/DESIGN.md, "The takers' batch"). The
 * batch holds older messages than the queue; the buffer's messages are both.
 * Lock order: listener, fmutex, mutex (fmutex is only tried with mutex held).
 */
#ifndef MTMSG_BUFFER_H
#define MTMSG_BUFFER_H

#include "lua.h"
#include "membuf.h"
#include "registry.h"
#include "sync.h"

#define MTMSG_BUFFER_MT "mtmsg.buffer"

struct MsgListener;
struct CarrayReuse;
struct notify_capi;
struct notify_notifier;

/* A notifier connected with buffer:notifier (see capi.h); api == NULL: none. */
typedef struct MsgNotifier {
    const struct notify_capi *api;
    struct notify_notifier *n;          /* retained while connected */
    long long threshold;
} MsgNotifier;
#define MTMSG_NTF_ADD    0              /* ">": called after a message was added */
#define MTMSG_NTF_REMOVE 1              /* "<": called after a message was removed */

typedef struct MsgBuffer {
    MsgObject obj;                      /* first: a MsgObject * is this buffer; id, name,
                                           user reference count */
    /* ---- what adds and takes touch, kept together: fewer cache lines move between
       the threads that share the buffer (S2 in docs/BENCHMARKS.md) ---- */
    MtMutex mutex;
    MemBuf queue;                       /* guarded by: mutex; frames of messages */
    size_t msgcnt;                      /* guarded by: mutex */
    int closed, aborted;                /* guarded by: mutex */
    int ended;                          /* guarded by: mutex; finish(): no more adds; EOS
                                           once drained (flow control, an extension) */
    int in_ready;                       /* in the listener's ready list: written with both
                                           mutexes held, so either one guards a read */
    int nwaiters;                       /* guarded by: mutex; threads in cond wait */
    MtSpin spin;                        /* guarded by: mutex */
    MtAtomic seq;                       /* written under mutex, also read by spinning
                                           takers: bumped when there is news for them */
    struct MsgSendWaiter *sw_head;      /* guarded by: mutex; see flow control below */
    size_t limit;                       /* guarded by: mutex; most messages queued at once;
                                           0: no limit (flow control) */
    size_t hiwater;                     /* guarded by: mutex; most messages queued so far */
    struct MsgListener *listener;       /* immutable; NULL for standalone buffers */
    MtWake wake;                        /* guarded by: mutex; buffer:getfd, opened on demand */
    MsgNotifier ntf[2];                 /* guarded by: mutex; [MTMSG_NTF_ADD/REMOVE] */
    size_t batchmax;                    /* guarded by: mutex; the batch's size when last
                                           filled: frontcnt <= batchmax; 0 until the
                                           first batch and after a clear */
    /* ---- the rest ---- */
    MtCond cond;                        /* buffer:nextmsg waiters; uses mutex */
    int orphan;                         /* listener's mutex; no user refs, messages left */
    struct MsgBuffer *ready_next, *ready_prev;    /* listener's mutex */
    struct MsgBuffer *member_next, *member_prev;  /* listener's mutex */
    /* flow control (extensions: see flow_* in buffer.c), guarded by: mutex */
    struct MsgSendWaiter *sw_tail;      /* senders blocked in waitaddmsg, FIFO from sw_head */
    size_t nsw;                         /* how many there are */
    MtAtomic sw_seq;                    /* bumped by takes while senders wait (they spin) */
    /* ---- the takers' batch: what a taker touches when it takes from it, apart from
       what producers touch (the cold fields above keep them off the hot cache lines) */
    MtMutex fmutex;                     /* guards front; order: fmutex, then mutex */
    MemBuf front;                       /* guarded by: fmutex; frames older than queue's */
    MtAtomic frontcnt;                  /* messages in front: read anywhere (under mutex
                                           it can only shrink), lowered under fmutex,
                                           raised and zeroed with both mutexes held */
    int batch;                          /* written with both mutexes held, read under
                                           either: the batch may be taken from under
                                           fmutex alone (no listener, flow control, "<"
                                           notifier or wake-up handle, not closed or
                                           aborted: mtmsg_buffer_replan_locked) */
    char pad[64];                       /* every take reads frontcnt: keep the next
                                           allocation (maybe written all the time by
                                           another thread) off its cache line */
} MsgBuffer;

/* The buffer's message count (queue and batch). With b->mutex held: a snapshot (the
 * batch can only shrink meanwhile, and is only raised with mutex held). A buffer that
 * never had a batch (listener buffers) leaves the takers' cache line alone. */
static inline size_t mtmsg_buffer_count_locked(const MsgBuffer *b) {
    return b->msgcnt + (b->batchmax ? mtmsg_atomic_load(&b->frontcnt) : 0);
}

/* With b->mutex held, after msgcnt, closed, aborted or ended changed: the wake-up
 * descriptor (if any) is readable while there is a message to take, an end of stream
 * or an error to see. One branch when nobody asked for the descriptor. */
static inline void mtmsg_buffer_wake_locked(MsgBuffer *b) {
    if (b->wake.open)
        mtmsg_wake_set(&b->wake, mtmsg_buffer_count_locked(b) > 0 || b->closed || b->aborted
                                 || b->ended);
}

/* A sender blocked in mtmsg_buffer_putwait: lives on its stack, linked into the
 * buffer's FIFO while it waits; a take signals the head only. */
typedef struct MsgSendWaiter {
    MtCond cond;
    struct MsgSendWaiter *next;
} MsgSendWaiter;

/* A notifier call decided while the buffer was locked and made after unlocking
 * (mtmsg_capi_fire / mtmsg_capi_firelua). The operations below set api = NULL when
 * nothing is to be called, so callers need not initialise it. */
typedef struct MsgFire {
    const struct notify_capi *api;
    struct notify_notifier *n;          /* an extra reference, held for the call */
    struct MsgBuffer *b;                /* whose notifier it is; NULL: b is gone */
    struct MsgListener *l;              /* set when the caller does not keep b alive */
    int which;                          /* MTMSG_NTF_ADD or MTMSG_NTF_REMOVE */
} MsgFire;

/* Creates and registers a buffer (attached to `l` if not NULL); refs = 1.
 * NULL with *st = MSG_NOMEM, MSG_ABORTED or MSG_CLOSED (closed listener). */
MsgBuffer *mtmsg_buffer_new(struct MsgListener *l, const char *name, size_t namelen,
                            size_t size, double grow, MsgStatus *st);
void mtmsg_buffer_retain(MsgBuffer *b);
/* Drops one user reference; the last one unregisters the buffer and frees it, or
 * leaves it to its listener while it still holds messages. Takes no lock on entry. */
void mtmsg_buffer_release(MsgBuffer *b);
/* Frees a buffer that nobody references any more. Call with no lock held. */
void mtmsg_buffer_free(MsgBuffer *b);

/* Queues one message (an encoded payload); clear: drop older messages first. It costs
 * mtmsg_codec_headerlen(len) + len bytes of a fixed-size buffer's limit.
 * MSG_OK, MSG_BUSY (nonblock), MSG_CLOSED, MSG_ABORTED, MSG_FULL, MSG_TOO_BIG, MSG_NOMEM
 * (then *failsize, if failsize is not NULL, is the size of the allocation that failed).
 * *fire receives the ">" notifier call to make after a successful put. */
MsgStatus mtmsg_buffer_put(MsgBuffer *b, const char *payload, size_t len, int clear, int nonblock,
                           MsgFire *fire, size_t *failsize);
/* As mtmsg_buffer_put (no clear), but when the buffer is full (count limit or fixed
 * size) waits for room up to `timeout` seconds (< 0: forever, 0: not at all), in
 * arrival order with other waiting senders. MSG_FULL on timeout; MSG_ENDED after
 * finish; MSG_CLOSED/MSG_ABORTED also end the wait. */
MsgStatus mtmsg_buffer_putwait(MsgBuffer *b, const char *payload, size_t len, int nonblock,
                               double timeout, MsgFire *fire, size_t *failsize);
/* Wakes every sender waiting in mtmsg_buffer_putwait (close, abort, finish). */
void mtmsg_buffer_wakesenders_locked(MsgBuffer *b);
/* Moves the next message's payload into `out` (emptied first). timeout < 0 waits
 * forever, 0 polls. MSG_OK, MSG_EMPTY, MSG_BUSY, MSG_CLOSED, MSG_ABORTED, and
 * MSG_NOMEM/MSG_TOO_BIG when `out` cannot hold it (the message stays queued), and
 * MSG_ENDED when the buffer is empty and finished (end of stream).
 * check (may be NULL): MSG_NEEDCARRAY, message left queued, when decoding it with that
 * reuse list would create carrays (see mtmsg_carray_neednew). *fire receives the "<"
 * notifier call to make after a successful take. */
MsgStatus mtmsg_buffer_take(MsgBuffer *b, MemBuf *out, int nonblock, double timeout,
                            const struct CarrayReuse *check, MsgFire *fire);

/* Both mutexes of b (fmutex first), for what changes the batch or what the batch path
 * reads (b->batch); the listener's mutex, if any, comes before. */
void mtmsg_buffer_lockall(MsgBuffer *b);
void mtmsg_buffer_unlockall(MsgBuffer *b);
/* With both held, after the limit, "<" notifier, wake-up handle, closed or aborted
 * changed: whether takers may use the batch without b->mutex (b->batch). */
void mtmsg_buffer_replan_locked(MsgBuffer *b);

/* For listener.c, with b->mutex held (listener buffers never have a batch): */
/* Pops the first message into `out`; the message stays on failure (and on
 * MSG_NEEDCARRAY, see mtmsg_buffer_take). Leaves the listener's ready list alone. */
MsgStatus mtmsg_buffer_pop_locked(MsgBuffer *b, MemBuf *out, const struct CarrayReuse *check,
                                  MsgFire *fire);
/* Drops all messages (clear: keep memory; close: free it); the ready list as above.
 * A standalone buffer's caller holds both mutexes (mtmsg_buffer_lockall). */
void mtmsg_buffer_empty_locked(MsgBuffer *b, int freemem);

/* Lua side */
/* A message that buffer:nextmsg or listener:nextmsg took but did not return because the
 * "<" notifier failed (the call raised): the handle keeps it, and its next nextmsg
 * returns it. `has` tells an empty message from none. Freed with the handle. */
typedef struct HeldMsg {
    int has;
    MemBuf mb;          /* the payload, when has */
} HeldMsg;
void mtmsg_heldmsg_init(HeldMsg *hm);
void mtmsg_heldmsg_free(HeldMsg *hm);

typedef struct BufferHandle {
    MsgBuffer *b;       /* NULL until construction completes; retained */
    int nonblock;       /* per-handle mode */
    HeldMsg held;       /* see HeldMsg */
} BufferHandle;

BufferHandle *mtmsg_buffer_check(lua_State *L, int idx);
BufferHandle *mtmsg_buffer_test(lua_State *L, int idx);
/* Parses ([name,] [size [, grow]]) starting at `arg` and creates a buffer of `l`,
 * leaving its new handle on the stack. Used by mtmsg.newbuffer and listener:newbuffer. */
int mtmsg_buffer_create(lua_State *L, int arg, struct MsgListener *l);
/* Registers the metatable and adds newbuffer/buffer to the module table at -2;
 * the scratch BusyBuf userdata (upvalue 1 of all functions) is at -1. */
void mtmsg_buffer_open(lua_State *L);

/* Finds the buffer or listener named by the id or name at `arg`, retained; raises
 * unknown_object, ambiguous_name or operation_aborted. Call with the handle pushed. */
MsgObject *mtmsg_lookup(lua_State *L, int arg, MsgKind kind);
/* Checks the argument of mtmsg.buffer(x) / mtmsg.listener(x): a name (string) or an
 * integer id; else "<what> name or id expected, got <type>". */
void mtmsg_checknameorid(lua_State *L, int arg, const char *what);
/* __tostring of buffers and listeners: "<tname>: 0x... (name=\"x\",id=N)". */
int mtmsg_pushtostring(lua_State *L, const char *tname, const MsgObject *o);

/* Receive-side arguments shared by buffer, listener and reader: timeout/carray list. */
double mtmsg_buffer_recvargs(lua_State *L, int arg, int nonblock, struct CarrayReuse *reuse);
/* writer:addmsg/setmsg: queues the payload in `src` through handle h and empties `src`
 * once it is stored (before the notifier call, which may raise); returns the Lua
 * result (true/false) or raises. */
int mtmsg_buffer_putraw(lua_State *L, BufferHandle *h, MemBuf *src, int clear);
/* Per-state work buffers (see buffer.c): upvalue MTMSG_UP_SCRATCH of every module
 * function encodes messages, upvalue MTMSG_UP_RECV of buffer/listener:nextmsg receives
 * them. acquire returns the upvalue's buffer, or a temporary pushed on the stack when
 * that one is busy (a nested call from a __gc finalizer); release takes the stack
 * index the temporary would have (the top before acquire, plus one). */
typedef struct BusyBuf { MemBuf mb; int busy; } BusyBuf;
#define MTMSG_BUSYBUF_MT "mtmsg.workbuffer"
#define MTMSG_UP_SCRATCH 1
#define MTMSG_UP_RECV 2
#define MTMSG_SCRATCH_KEEP (1u << 20) /* work memory kept between calls */
MemBuf *mtmsg_busybuf_acquire(lua_State *L, int up);
/* Pushes the state's BusyBuf kept in the registry under `key` (an address), made on
 * first use: one per state, shared by every load of the module. Needs the BusyBuf
 * metatable (luaopen_mtmsg makes it first). */
BusyBuf *mtmsg_busybuf_pushstate(lua_State *L, const void *key);
void mtmsg_busybuf_release(lua_State *L, int up, MemBuf *mb, int idx);
/* buffer/listener:nextmsg after argument checks: returns the values of the message
 * held by the handle, else takes a message from `o` and returns its values (none for a
 * timeout or an empty nonblocking read), or raises. When the "<" notifier fails after
 * the take, the message goes to `held` and the notifier's error is raised. */
int mtmsg_buffer_receive(lua_State *L, MsgObject *o, int nonblock, double timeout,
                         struct CarrayReuse *reuse, HeldMsg *held);
/* Flow control (extensions). mtmsg.EOS, the end-of-stream result, lives in the
 * registry under MTMSG_EOS_KEY. */
#define MTMSG_EOS_KEY "mtmsg.EOS"
void mtmsg_buffer_pusheos(lua_State *L);
int mtmsg_buffer_iseos(lua_State *L, int idx);
/* A timeout argument: nil/none -> -1 (forever), or 0 with nonblock; a number (<= 0 and
 * NaN -> 0); else an argument error. */
double mtmsg_buffer_timeoutarg(lua_State *L, int arg, int nonblock);
/* writer:waitaddmsg: as mtmsg_buffer_putraw, waiting up to `timeout` for room. */
int mtmsg_buffer_putrawwait(lua_State *L, BufferHandle *h, MemBuf *src, double timeout);
/* buffer/listener:messages(timeout): pushes the iterator (a closure of `step` with the
 * calling method's upvalues 1-4 and the timeout), the handle at 1 and 0. step calls
 * mtmsg_buffer_iterstep with its handle's object. */
int mtmsg_buffer_pushiter(lua_State *L, lua_CFunction step);
int mtmsg_buffer_iterstep(lua_State *L, MsgObject *o, int nonblock, HeldMsg *held);
/* buffer:nextmsg and listener:nextmsg after the self check: the arguments from 2 on
 * (timeout, carrays), then as mtmsg_buffer_receive. ctx: the method's class context,
 * whose receive buffer (ClassCtx.recv) it uses when free, or NULL. */
struct ClassCtx;
int mtmsg_buffer_nextmsg(lua_State *L, MsgObject *o, int nonblock, HeldMsg *held,
                         const struct ClassCtx *ctx);
/* Sets ctx->recv to the state's receive buffer (created in the registry on first use). */
void mtmsg_buffer_setrecv(lua_State *L, struct ClassCtx *ctx);
/* Decodes the payload in `mb` onto the stack; returns the number of values. */
int mtmsg_buffer_pushmsg(lua_State *L, MemBuf *mb, struct CarrayReuse *reuse);

#endif
