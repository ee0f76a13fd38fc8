/*
 * Buffers: shared message queues (see buffer.h). Owns the queue memory; guarded by
 * the buffer's own mutex. No Lua call and no possible raise happens while it is held.
 * An operation that changes a listener buffer's message count from or to zero also
 * puts the buffer into or takes it out of its listener's ready list (unlock_sync).
 */
#include "buffer.h"

#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "capi.h"
#include "carray.h"
#include "class.h"
#include "codec.h"
#include "compat.h"
#include "error.h"
#include "listener.h"
#include "wakeup.h"

/* ===== Shared object ===== */

/* Whether takers may use the batch without b->mutex: nothing else must happen when a
 * message leaves (see mtmsg_buffer_replan_locked). */
static int batchable(const MsgBuffer *b) {
    return !b->listener && b->queue.grow != 0 && b->limit == 0 && !b->closed && !b->aborted
           && !b->ntf[MTMSG_NTF_REMOVE].api && !b->wake.open;
}

/* mtmsg_buffer_lockall, trying in nonblock mode: 0 (nothing held) when one is busy. */
static int acquire_all(MsgBuffer *b, int nonblock) {
    if (!b->listener && !mtmsg_mutex_acquire(&b->fmutex, nonblock)) return 0;
    if (mtmsg_mutex_acquire(&b->mutex, nonblock)) return 1;
    if (!b->listener) mtmsg_mutex_unlock(&b->fmutex);
    return 0;
}

void mtmsg_buffer_lockall(MsgBuffer *b) {
    (void)acquire_all(b, 0);            /* listener buffers: no batch, no fmutex */
}

void mtmsg_buffer_unlockall(MsgBuffer *b) {
    mtmsg_mutex_unlock(&b->mutex);
    if (!b->listener) mtmsg_mutex_unlock(&b->fmutex);
}

void mtmsg_buffer_replan_locked(MsgBuffer *b) {
    b->batch = batchable(b);
}

static void buffer_setabort(MsgObject *o, int flag) {
    MsgBuffer *b = (MsgBuffer *)o;
    mtmsg_buffer_lockall(b);
    b->aborted = flag;
    mtmsg_atomic_bump_locked(&b->seq);
    if (flag) mtmsg_cond_broadcast(&b->cond);
    mtmsg_buffer_wake_locked(b);
    mtmsg_buffer_replan_locked(b);
    if (flag) mtmsg_buffer_wakesenders_locked(b);
    mtmsg_buffer_unlockall(b);
}

/* Runs under the registry lock while the new buffer is registered (order registry ->
 * listener): attaches it to its listener unless that one is closed. */
static MsgStatus buffer_attach(void *ud) {
    MsgBuffer *b = ud;
    MsgListener *l = b->listener;
    MsgStatus st = MSG_OK;
    mtmsg_mutex_lock(&l->mutex);
    if (l->closed) st = MSG_CLOSED;
    else if (l->aborted) st = MSG_ABORTED;
    else mtmsg_listener_attach_locked(l, b);
    mtmsg_mutex_unlock(&l->mutex);
    return st;
}

MsgBuffer *mtmsg_buffer_new(MsgListener *l, const char *name, size_t namelen,
                            size_t size, double grow, MsgStatus *st) {
    MsgBuffer *b = mtmsg_malloc(sizeof *b);
    if (!b) { *st = MSG_NOMEM; return NULL; }
    memset(b, 0, sizeof *b);
    *st = mtmsg_registry_initobject(&b->obj, KIND_BUFFER, name, namelen, buffer_setabort);
    if (*st != MSG_OK) { mtmsg_free(b); return NULL; }
    mtmsg_membuf_init(&b->queue, size, grow);
    mtmsg_membuf_init(&b->front, size, grow);   /* no storage until a batch is taken */
    b->listener = l;
    b->batch = batchable(b);
    mtmsg_mutex_init(&b->mutex);
    mtmsg_mutex_init(&b->fmutex);
    mtmsg_cond_init(&b->cond);
    mtmsg_spin_init(&b->spin);
    *st = mtmsg_registry_add(&b->obj, l ? buffer_attach : NULL, b);
    if (*st != MSG_OK) {
        b->listener = NULL;              /* never attached */
        mtmsg_buffer_free(b);
        return NULL;
    }
    return b;
}

/* After the last user reference of b went (b is no longer findable): returns 1 if b
 * is to be freed now, 0 if it stays with its listener (pending messages). *freel: the
 * listener, if b was its last buffer and it has no handles either (free it too). */
static int unreferenced(MsgBuffer *b, MsgListener **freel) {
    MsgListener *l = b->listener;
    int freeb = 1;
    *freel = NULL;
    if (!l) return 1;
    mtmsg_mutex_lock(&l->mutex);
    mtmsg_mutex_lock(&b->mutex);
    l->nlive--;
    if (b->ended) l->nended--;          /* flow control: counts live ended buffers */
    mtmsg_listener_wake_locked(l);
    if (b->msgcnt > 0 && !l->unreferenced && !l->closed) {
        b->orphan = 1;
        freeb = 0;
    } else {
        mtmsg_listener_detach_locked(l, b);
        if (l->unreferenced && l->nbuf == 0) *freel = l;
    }
    mtmsg_mutex_unlock(&b->mutex);
    if (l->nwaiters) mtmsg_cond_broadcast(&l->cond);   /* maybe no buffers now */
    mtmsg_mutex_unlock(&l->mutex);
    return freeb;
}

/* Freeing a buffer releases its notifiers; a notifier that is another mtmsg buffer may
 * lose its last reference and be freed in turn, and so on along a chain of any length.
 * So that the C stack does not grow with the chain, buffers to free go to a work list
 * (linked by ready_next, unused once a buffer is detached) instead of a nested call. */
void mtmsg_buffer_free(MsgBuffer *b) {
    MsgBuffer *work = b;
    b->ready_next = NULL;
    while (work) {
        MsgBuffer *x = work;
        MsgNotifier ntf[2];
        int i;
        work = x->ready_next;
        memcpy(ntf, x->ntf, sizeof ntf);
        for (i = 0; i < 2; i++)             /* a buffer holds no reference to itself */
            if (ntf[i].api && mtmsg_capi_notifierbuffer(&ntf[i]) == x) ntf[i].api = NULL;
        mtmsg_membuf_free(&x->queue);
        mtmsg_membuf_free(&x->front);
        mtmsg_wake_close(&x->wake);
        mtmsg_cond_destroy(&x->cond);
        mtmsg_mutex_destroy(&x->mutex);
        mtmsg_mutex_destroy(&x->fmutex);
        mtmsg_registry_freeobject(&x->obj);
        mtmsg_free(x);
        for (i = 0; i < 2; i++) {           /* no lock held: they may re-enter mtmsg */
            MsgBuffer *nb;
            MsgListener *l;
            if (!ntf[i].api) continue;
            nb = mtmsg_capi_notifierbuffer(&ntf[i]);
            if (!nb) {
                mtmsg_capi_releaseforeign(&ntf[i]);
                continue;
            }
            if (!mtmsg_registry_release(&nb->obj)) continue;
            if (unreferenced(nb, &l)) {
                nb->ready_next = work;
                work = nb;
            }
            if (l) mtmsg_listener_free(l);  /* nb no longer uses it (nb->mutex is its own) */
        }
    }
}

void mtmsg_buffer_retain(MsgBuffer *b) {
    mtmsg_registry_retain(&b->obj);
}

void mtmsg_buffer_release(MsgBuffer *b) {
    MsgListener *l;
    /* Only the count is touched unless this is the last reference: a handle collected
     * long after its lookup finds the buffer out of the caches (one miss, not two). */
    if (!mtmsg_registry_release(&b->obj)) return;
    /* Last user reference: b is no longer findable. A listener buffer with pending
     * messages stays with its listener (orphan) until they are taken. */
    if (unreferenced(b, &l)) mtmsg_buffer_free(b);
    if (l) mtmsg_listener_free(l);
}

/* Wakes one waiter of the buffer, if any waits and there is something to take.
 * Called with the mutex held, after the queue changed. The listener's takers hear of
 * a buffer when it joins the ready list (mtmsg_listener_sync_locked). */
static void notify_takers_locked(MsgBuffer *b) {
    if (mtmsg_buffer_count_locked(b) == 0) return;
    mtmsg_atomic_bump_locked(&b->seq);
    if (b->nwaiters) mtmsg_cond_signal(&b->cond);
}

/* With both mutexes held: empties the takers' batch (see mtmsg_buffer_take) (freemem: and frees its storage). */
static void front_empty_locked(MsgBuffer *b, int freemem) {
    if (freemem) mtmsg_membuf_free(&b->front);
    else mtmsg_membuf_clear(&b->front);
    mtmsg_atomic_store(&b->frontcnt, 0);
    b->batchmax = 0;
}

/* Unlocks b->mutex after an operation that may have changed b's message count. A
 * listener buffer that got its first message must join the listener's ready list, one
 * that lost its last must leave it; that takes the listener's mutex, which comes first
 * in the lock order: try it while b is still locked, else lock both afresh after
 * unlocking (mtmsg_listener_sync re-checks). In between, the listener may see b with
 * messages but not ready (its taker waits for the sync, which signals it) or ready
 * but empty (its taker drops b from the list). The caller keeps b alive. held: the
 * caller holds the listener's mutex already (nonblock_hold); it is unlocked here. */
static void unlock_sync(MsgBuffer *b, int held) {
    MsgListener *l = b->listener;
    int sync = l && (b->msgcnt > 0) != b->in_ready;
    if (sync && !held) held = mtmsg_mutex_trylock(&l->mutex);
    if (held) {
        if (sync) mtmsg_listener_sync_locked(l, b);
        mtmsg_mutex_unlock(&l->mutex);
        sync = 0;
    }
    mtmsg_mutex_unlock(&b->mutex);
    if (sync) mtmsg_listener_sync(l, b);
}

/* unlock_sync after acquire_all / mtmsg_buffer_lockall: also the batch's mutex. */
static void unlock_sync_all(MsgBuffer *b, int held) {
    unlock_sync(b, held);
    if (!b->listener) mtmsg_mutex_unlock(&b->fmutex);
}

/* Nonblock mode waits for no lock, the listener's included: with b locked, before an
 * operation that will move b into or out of its listener's ready list (willsync),
 * takes the listener's mutex with a trylock. 0: busy, change nothing. *held: taken. */
static int nonblock_hold(MsgBuffer *b, int nonblock, int willsync, int *held) {
    *held = 0;
    if (!nonblock || !willsync || !b->listener) return 1;
    *held = mtmsg_mutex_trylock(&b->listener->mutex);
    return *held;
}

/* The body of mtmsg_buffer_put, with b->mutex held. me: the calling sender when it
 * heads the queue of waiting senders (mtmsg_buffer_putwait), else NULL: a plain add
 * does not pass waiting senders. */
static MsgStatus put_locked(MsgBuffer *b, const char *payload, size_t len, size_t hl, int clear,
                            const MsgSendWaiter *me, MsgFire *fire, size_t *failsize) {
    MsgStatus st;
    if (b->closed) st = MSG_CLOSED;
    else if (b->aborted) st = MSG_ABORTED;
    else if (b->ended) st = MSG_ENDED;
    else if (!clear && (b->sw_head != me || (b->limit && mtmsg_buffer_count_locked(b) >= b->limit)))
        st = MSG_FULL;
    else {
        st = clear ? mtmsg_membuf_reset(&b->queue, hl + len)
                   : mtmsg_membuf_reserve(&b->queue, hl + len);
        if (st == MSG_OK) {
            char *p = mtmsg_membuf_end(&b->queue);
            if (clear) {
                b->msgcnt = 0;
                if (!b->listener) front_empty_locked(b, 0);    /* the caller holds fmutex */
            }
            p += mtmsg_codec_putheader(p, len);
            if (len) memcpy(p, payload, len);     /* payload may be NULL when empty */
            b->queue.len += hl + len;
            b->msgcnt++;
            /* the batch may hold up to batchmax more: count it only when that matters
             * (frontcnt's cache line is the takers') */
            if (b->msgcnt + b->batchmax > b->hiwater) {
                size_t n = mtmsg_buffer_count_locked(b);
                if (n > b->hiwater) b->hiwater = n;
            }
            notify_takers_locked(b);
            mtmsg_buffer_wake_locked(b);
            if (clear && b->sw_head) mtmsg_cond_signal(&b->sw_head->cond);    /* room */
            if (b->ntf[MTMSG_NTF_ADD].api) mtmsg_capi_arm_locked(b, MTMSG_NTF_ADD, fire);
        } else if (st == MSG_NOMEM && failsize) {
            *failsize = b->queue.failsize;        /* read under the lock */
        }
    }
    return st;
}

/* The frame header length of a len-byte message into *hl; 0 (and the size that cannot
 * be had in *failsize) when header and message do not fit in a size_t. */
static int put_headerlen(size_t len, size_t *hl, size_t *failsize) {
    *hl = mtmsg_codec_headerlen(len);
    if (len <= (size_t)-1 - *hl) return 1;
    if (failsize) *failsize = (size_t)-1;
    return 0;
}

MsgStatus mtmsg_buffer_put(MsgBuffer *b, const char *payload, size_t len, int clear, int nonblock,
                           MsgFire *fire, size_t *failsize) {
    MsgStatus st;
    size_t hl;
    int held;
    fire->api = NULL;
    if (!put_headerlen(len, &hl, failsize)) return MSG_NOMEM;
    /* a clear empties the takers' batch too */
    if (!(clear ? acquire_all(b, nonblock) : mtmsg_mutex_acquire(&b->mutex, nonblock)))
        return MSG_BUSY;
    if (!nonblock_hold(b, nonblock, !b->in_ready, &held)) {
        mtmsg_mutex_unlock(&b->mutex);
        return MSG_BUSY;                    /* (a listener buffer: no fmutex) */
    }
    st = put_locked(b, payload, len, hl, clear, NULL, fire, failsize);
    if (clear) unlock_sync_all(b, held);
    else unlock_sync(b, held);
    return st;
}

/* ===== Flow control: waiting senders (extension) =====
 * A sender that finds no room (count limit or fixed size) queues an MsgSendWaiter, with
 * a condition variable of its own, at the tail of the buffer's FIFO and sleeps on it.
 * Only the head may store (put_locked's `me`); plain adds return false while anyone
 * waits, so room goes to waiting senders in arrival order. A take signals the head
 * (one branch, sw_head, on the take path); a head that leaves (stored, timed out,
 * closed, aborted) passes the signal on when there may be room for the next one.
 * close, abort and finish wake every waiter. All of it under the buffer's mutex. */

/* After a take, with a sender waiting: tells a spinning head (sw_seq) and wakes a
 * sleeping one. */
static void flow_wakehead_locked(MsgBuffer *b) {
    mtmsg_atomic_bump_locked(&b->sw_seq);
    mtmsg_cond_signal(&b->sw_head->cond);
}

void mtmsg_buffer_wakesenders_locked(MsgBuffer *b) {
    MsgSendWaiter *w;
    for (w = b->sw_head; w; w = w->next) mtmsg_cond_signal(&w->cond);
}

static void flow_enqueue_locked(MsgBuffer *b, MsgSendWaiter *w) {
    mtmsg_cond_init(&w->cond);
    w->next = NULL;
    if (b->sw_tail) b->sw_tail->next = w;
    else b->sw_head = w;
    b->sw_tail = w;
    b->nsw++;
}

static void flow_dequeue_locked(MsgBuffer *b, MsgSendWaiter *w) {
    MsgSendWaiter **pp = &b->sw_head, *prev = NULL;
    int washead = b->sw_head == w;
    while (*pp != w) { prev = *pp; pp = &(*pp)->next; }
    *pp = w->next;
    if (b->sw_tail == w) b->sw_tail = prev;
    b->nsw--;
    if (washead && b->sw_head && (b->limit == 0 || mtmsg_buffer_count_locked(b) < b->limit))
        mtmsg_cond_signal(&b->sw_head->cond);       /* maybe room for the next one */
}

MsgStatus mtmsg_buffer_putwait(MsgBuffer *b, const char *payload, size_t len, int nonblock,
                               double timeout, MsgFire *fire, size_t *failsize) {
    MsgStatus st;
    MsgSendWaiter w;
    int queued = 0, spun = 0, held = 0;
    double deadline = 0;
    size_t hl;
    fire->api = NULL;
    if (!put_headerlen(len, &hl, failsize)) return MSG_NOMEM;
    if (!mtmsg_mutex_acquire(&b->mutex, nonblock)) return MSG_BUSY;
    for (;;) {
        if (!nonblock_hold(b, nonblock, !b->in_ready, &held)) { st = MSG_BUSY; break; }
        st = put_locked(b, payload, len, hl, 0, queued ? &w : NULL, fire, failsize);
        if (st != MSG_FULL || timeout == 0) break;
        if (held) {                         /* not across a wait for room */
            mtmsg_mutex_unlock(&b->listener->mutex);
            held = 0;
        }
        if (!queued) {
            flow_enqueue_locked(b, &w);
            queued = 1;
            if (timeout > 0) deadline = mtmsg_clock_mono() + timeout;
        }
        if (!spun && b->sw_head == &w) {    /* the head: once, spin briefly for a take */
            size_t seen = mtmsg_atomic_load(&b->sw_seq);
            MtSpin sp = b->spin;
            unsigned long long t0;
            spun = 1;
            mtmsg_mutex_unlock(&b->mutex);
            mtmsg_spin(&sp, &b->sw_seq, seen, timeout, &t0);
            mtmsg_mutex_lock(&b->mutex);
            continue;
        }
        if (timeout < 0) mtmsg_cond_wait(&w.cond, &b->mutex);
        else if (mtmsg_clock_mono() >= deadline) break;             /* MSG_FULL */
        else mtmsg_cond_waituntil(&w.cond, &b->mutex, deadline);
    }
    if (queued) flow_dequeue_locked(b, &w);
    unlock_sync(b, held);
    if (queued) mtmsg_cond_destroy(&w.cond);        /* unlinked: nobody signals it now */
    return st;
}

/* Copies the first message of q into `out` (emptied first) and leaves it in q; *frame:
 * its bytes in q, header included. MSG_OK, MSG_NEEDCARRAY (see mtmsg_buffer_take), or
 * MSG_NOMEM / MSG_TOO_BIG when `out` cannot hold it. */
static inline MsgStatus copy_first(MemBuf *q, MemBuf *out, const CarrayReuse *check, size_t *frame) {
    size_t pos = 0, len;
    MsgStatus st;
    const char *p = mtmsg_membuf_begin(q);
    if (!mtmsg_codec_getheader(p, q->len, &pos, &len) || len > q->len - pos)
        mtmsg_sync_abort(-1, __FILE__, __LINE__);           /* corrupt queue: a bug */
    if (check && mtmsg_carray_neednew(check, p + pos, len, 0, -1))
        return MSG_NEEDCARRAY;
    st = mtmsg_membuf_reset(out, len);
    if (st != MSG_OK) {
        if (st == MSG_TOO_BIG) out->failsize = len;    /* size for the error text */
        return st;
    }
    if (len) memcpy(out->data, p + pos, len);
    out->len = len;
    *frame = pos + len;
    return MSG_OK;
}

/* Copies the next message's payload into `out` without removing it (see
 * mtmsg_buffer_pop_locked). A standalone buffer's caller holds both mutexes. */
static MsgStatus flow_peek_locked(MsgBuffer *b, MemBuf *out, const CarrayReuse *check) {
    size_t frame;
    return copy_first(mtmsg_atomic_load(&b->frontcnt) > 0 ? &b->front : &b->queue, out, check,
                      &frame);
}

/* With b->mutex held, after a message left b: room for a waiting sender, the baton for
 * the next taker, the wake-up level, the "<" notifier. */
static inline void taken_locked(MsgBuffer *b, MsgFire *fire) {
    if (b->sw_head) flow_wakehead_locked(b);    /* room for a waiting sender */
    notify_takers_locked(b);        /* pass the baton if more is waiting */
    mtmsg_buffer_wake_locked(b);
    if (b->ntf[MTMSG_NTF_REMOVE].api) mtmsg_capi_arm_locked(b, MTMSG_NTF_REMOVE, fire);
}

MsgStatus mtmsg_buffer_pop_locked(MsgBuffer *b, MemBuf *out, const CarrayReuse *check,
                                  MsgFire *fire) {
    size_t frame;
    MsgStatus st;
    fire->api = NULL;
    st = copy_first(&b->queue, out, check, &frame);
    if (st != MSG_OK) return st;
    mtmsg_membuf_consume(&b->queue, frame);
    b->msgcnt--;
    taken_locked(b, fire);
    return MSG_OK;
}

/* ===== The takers' batch (docs/DESIGN.md, "The takers' batch") =====
 * A taker that holds both mutexes, finds the batch empty and two or more messages
 * queued swaps the two MemBufs: the queue's frames become the batch, and producers go
 * on in the batch's old (empty) storage. While b->batch says that nothing but the
 * copy has to happen when a message leaves, takers then take from the batch under
 * fmutex alone; otherwise (flow control, a "<" notifier, a wake-up handle, closed or
 * aborted: messages may stay in the batch when one of those comes) with both. The
 * batch is older than the queue, so it is always taken first: a taker that holds
 * only b->mutex and sees frontcnt > 0 tries fmutex, or starts again. */

#define MTMSG_BATCH_KEEP ((size_t)16 << 20)

/* With fmutex held: the first message of the batch into `out`. */
static MsgStatus front_pop(MsgBuffer *b, MemBuf *out, const CarrayReuse *check) {
    size_t frame;
    MsgStatus st = copy_first(&b->front, out, check, &frame);
    if (st != MSG_OK) return st;
    mtmsg_membuf_consume(&b->front, frame);
    mtmsg_atomic_store(&b->frontcnt, mtmsg_atomic_load(&b->frontcnt) - 1);
    return MSG_OK;
}

/* With both mutexes held and the batch empty: the queued messages become the batch. */
static void front_fill_locked(MsgBuffer *b) {
    MemBuf t = b->front;            /* empty (consume resets start): the queue's now */
    b->front = b->queue;
    b->queue = t;
    /* Storage left from a big backlog (over 16 MiB) sixteen times this one, a spike that
     * is over, goes: it should not stay allocated twice. A steady stream keeps both
     * (freeing and growing 4 MiB again and again cost S5 a third of its speed). */
    if (b->queue.cap > MTMSG_BATCH_KEEP && b->queue.cap / 16 > b->front.len)
        mtmsg_membuf_shrink(&b->queue, MTMSG_SCRATCH_KEEP);
    b->batchmax = b->msgcnt;
    mtmsg_atomic_store(&b->frontcnt, b->msgcnt);
    b->msgcnt = 0;
}

void mtmsg_buffer_empty_locked(MsgBuffer *b, int freemem) {
    if (freemem) mtmsg_membuf_free(&b->queue);
    else mtmsg_membuf_clear(&b->queue);
    b->msgcnt = 0;
    if (!b->listener) front_empty_locked(b, freemem);
    mtmsg_buffer_wake_locked(b);
    if (b->sw_head) mtmsg_cond_signal(&b->sw_head->cond);  /* room for a waiting sender */
}

MsgStatus mtmsg_buffer_take(MsgBuffer *b, MemBuf *out, int nonblock, double timeout,
                            const CarrayReuse *check, MsgFire *fire) {
    MsgStatus st;
    MtWait w;
    int held = 0, front, again = 0;
    fire->api = NULL;
    mtmsg_wait_init(&w, timeout);
    do {
        /* Nonblock mode tries the locks once. A call that may wait (a timeout) is busy
         * only when the buffer's mutex is, as in 0.4.3; once it has that one it waits
         * for fmutex (held for a copy), as a condition wait takes its mutex back. */
        int trylocks = nonblock && !again;
        front = 0;                  /* fmutex held */
        again = 0;                  /* fmutex was busy: start again, waiting for it */
        if (mtmsg_atomic_load(&b->frontcnt) > 0) {
            if (!mtmsg_mutex_acquire(&b->fmutex, trylocks)) {
                if (timeout == 0) return MSG_BUSY;
                /* else see below whether the buffer's mutex is free */
            } else if (mtmsg_atomic_load(&b->frontcnt) == 0) {     /* taken meanwhile */
                mtmsg_mutex_unlock(&b->fmutex);
            } else if (b->batch) {                          /* the fast path */
                st = front_pop(b, out, check);
                mtmsg_mutex_unlock(&b->fmutex);
                return st;
            } else {
                front = 1;          /* and the batch is not empty: no wait below holds it */
            }
        }
        if (!mtmsg_mutex_acquire(&b->mutex, trylocks)) {
            if (front) mtmsg_mutex_unlock(&b->fmutex);
            return MSG_BUSY;
        }
        for (;;) {
            if (b->closed) { st = MSG_CLOSED; break; }
            if (b->aborted) { st = MSG_ABORTED; break; }
            if (mtmsg_atomic_load(&b->frontcnt) > 0) {  /* older than the queue's */
                if (!front && !(front = mtmsg_mutex_trylock(&b->fmutex))) {
                    st = MSG_BUSY;
                    again = !nonblock || timeout != 0;  /* nonblock without a wait: busy */
                    break;
                }
                if (mtmsg_atomic_load(&b->frontcnt) == 0) {
                    /* a taker on the fast path took the last one before we got fmutex:
                     * look again without it (we may have to wait) */
                    mtmsg_mutex_unlock(&b->fmutex);
                    front = 0;
                    continue;
                }
                if ((st = front_pop(b, out, check)) == MSG_OK) taken_locked(b, fire);
                break;
            }
            if (b->msgcnt > 1 && b->batch && (front || (front = mtmsg_mutex_trylock(&b->fmutex)))) {
                front_fill_locked(b);
                if ((st = front_pop(b, out, check)) == MSG_OK) taken_locked(b, fire);
                break;
            }
            if (b->msgcnt > 0) {
                if (!nonblock_hold(b, nonblock, b->msgcnt == 1 && b->in_ready, &held))
                    st = MSG_BUSY;
                else
                    st = mtmsg_buffer_pop_locked(b, out, check, fire);
                break;
            }
            if (b->ended) { st = MSG_ENDED; break; }            /* drained: end of stream */
            if (!mtmsg_wait_locked(&w, &b->cond, &b->mutex, &b->nwaiters, &b->seq, &b->spin)) {
                st = MSG_EMPTY;
                break;
            }
        }
        if (!again) mtmsg_wait_done_locked(&w, &b->spin);
        unlock_sync(b, held);
        if (front) mtmsg_mutex_unlock(&b->fmutex);
    } while (again);
    return st;
}

/* ===== Lua binding ===== */


BufferHandle *mtmsg_buffer_test(lua_State *L, int idx) {
    BufferHandle *h = luaL_testudata(L, idx, MTMSG_BUFFER_MT);
    return (h && h->b) ? h : NULL;
}

static const char buffer_class[] = MTMSG_BUFFER_MT;     /* class tag: see compat.h */

BufferHandle *mtmsg_buffer_check(lua_State *L, int idx) {
    BufferHandle *h = mtmsg_checkclass(L, idx, buffer_class);
    if (!h->b) luaL_argerror(L, idx, "buffer expected");    /* half-constructed */
    return h;
}

/* mtmsg_buffer_check(L, 1) in the methods and metamethods that mtmsg_open_class
 * registers for buffers (see mtmsg_classctx). The class context remembers the last
 * handle that passed (ctx->self): the next call with the same handle as self takes one
 * pointer comparison. A complete handle (b set) keeps its b until buffer_gc, which
 * forgets it (clears ctx->self) before its memory can be freed and reused; handles
 * without b are never remembered. So ctx->self is always a live handle. It may have
 * lost its b all the same: a __gc without upvalues (one that travelled in a message,
 * reached through the debug library) has no context to clear; hence the h->b test. */
static inline BufferHandle *checkself(lua_State *L, ClassCtx **ctxp) {
    ClassCtx *ctx = *ctxp = mtmsg_classctx(L);
    BufferHandle *h = (BufferHandle *)lua_touserdata(L, 1);
    if (h && ctx && h == ctx->self && h->b) return h;
    h = mtmsg_checkself(L, ctx, buffer_class);
    if (!h->b) luaL_argerror(L, 1, "buffer expected");      /* half-constructed */
    if (ctx) ctx->self = h;
    return h;
}

/* Pushes an empty handle (phase one of construction). */
static BufferHandle *newhandle(lua_State *L) {
    BufferHandle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->b = NULL;
    h->nonblock = 0;
    mtmsg_heldmsg_init(&h->held);
    luaL_getmetatable(L, MTMSG_BUFFER_MT);
    lua_setmetatable(L, -2);
    return h;
}

/* Options of newbuffer: ([name,] [size [, grow]]) from `arg`. */
int mtmsg_buffer_create(lua_State *L, int arg, MsgListener *l) {
    const char *name = NULL;
    size_t namelen = 0;
    size_t size;
    double grow;
    BufferHandle *h;
    MsgStatus st;
    int t = lua_type(L, arg);
    if (t == LUA_TSTRING) name = lua_tolstring(L, arg++, &namelen);
    else if (t == LUA_TNIL) arg++;          /* nil: no name; size and grow follow */
    else if (t != LUA_TNUMBER && t != LUA_TNONE)
        return luaL_argerror(L, arg, lua_pushfstring(L, "buffer name or size expected, got %s",
                                                     luaL_typename(L, arg)));
    mtmsg_checksize(L, arg, &size, &grow);
    h = newhandle(L);
    h->b = mtmsg_buffer_new(l, name, namelen, size, grow, &st);
    if (!h->b) {
        if (st == MSG_CLOSED) return mtmsg_error_status(L, st, &l->obj, NULL, NULL, 0);
        return mtmsg_error_status(L, st, NULL, NULL, NULL, sizeof(MsgBuffer));
    }
    return 1;
}

static int m_newbuffer(lua_State *L) {
    return mtmsg_buffer_create(L, 1, NULL);
}

MsgObject *mtmsg_lookup(lua_State *L, int arg, MsgKind kind) {
    const char *what = kind == KIND_BUFFER ? "buffer" : "listener";
    MsgObject *o;
    MsgStatus st;
    if (lua_type(L, arg) == LUA_TSTRING) {
        size_t len;
        const char *name = lua_tolstring(L, arg, &len);
        o = mtmsg_registry_find_name(kind, name, len, &st);
        if (!o && st != MSG_ABORTED)
            mtmsg_error_lookup(L, st == MSG_FULL ? ERR_AMBIGUOUS_NAME : ERR_UNKNOWN_OBJECT,
                               what, name, len);
    } else {
        long long id = (long long)mtmsg_checkinteger(L, arg);
        o = mtmsg_registry_find_id(kind, (unsigned long long)id, &st);
        if (!o && st != MSG_ABORTED) {
            mtmsg_error_pushid(L, id);
            mtmsg_error_raise(L, ERR_UNKNOWN_OBJECT, "%s id %s", what, lua_tostring(L, -1));
        }
    }
    if (!o) mtmsg_error_raise(L, ERR_OPERATION_ABORTED, NULL);
    return o;
}

/* The argument of mtmsg.buffer(x) and mtmsg.listener(x): a name or an integer id. */
void mtmsg_checknameorid(lua_State *L, int arg, const char *what) {
    int t = lua_type(L, arg);
    if (t == LUA_TSTRING) return;
    if (t != LUA_TNUMBER)
        luaL_argerror(L, arg, lua_pushfstring(L, "%s name or id expected, got %s", what,
                                              luaL_typename(L, arg)));
    mtmsg_checkinteger(L, arg);
}

static int m_buffer(lua_State *L) {
    BufferHandle *h;
    mtmsg_checknameorid(L, 1, "buffer");
    h = newhandle(L);
    h->b = (MsgBuffer *)mtmsg_lookup(L, 1, KIND_BUFFER);
    return 1;
}

static int buffer_gc(lua_State *L) {
    BufferHandle *h = luaL_checkudata(L, 1, MTMSG_BUFFER_MT);
    ClassCtx *ctx = mtmsg_classctx(L);
    if (ctx && ctx->self == h) ctx->self = NULL;    /* see checkself */
    mtmsg_heldmsg_free(&h->held);
    if (h->b) {
        MsgBuffer *b = h->b;
        h->b = NULL;
        mtmsg_buffer_release(b);
    }
    return 0;
}

int mtmsg_pushtostring(lua_State *L, const char *tname, const MsgObject *o) {
    size_t skip = strlen(tname);
    lua_pushfstring(L, "%s: %p ", tname, (const void *)o);
    mtmsg_error_pushobject(L, o, 1);                /* "mtmsg.buffer(name=..,id=N)" */
    lua_pushstring(L, lua_tostring(L, -1) + skip);  /* "(name=..,id=N)" */
    lua_remove(L, -2);
    lua_concat(L, 2);
    return 1;
}

static int buffer_tostring(lua_State *L) {
    return mtmsg_pushtostring(L, MTMSG_BUFFER_MT, &mtmsg_buffer_check(L, 1)->b->obj);
}

static int buffer_id(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    mtmsg_pushinteger(L, (lua_Integer)h->b->obj.id);
    return 1;
}

static int buffer_name(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    if (!h->b->obj.name) return 0;
    lua_pushlstring(L, h->b->obj.name, h->b->obj.namelen);
    return 1;
}

/* Turns the status of a put of a `len`-byte payload into the Lua result: true, false,
 * or a raise. failsize: the allocation that failed, for MSG_NOMEM. */
static int put_result(lua_State *L, MsgBuffer *b, MsgStatus st, size_t len, size_t failsize) {
    switch (st) {
    case MSG_OK: lua_pushboolean(L, 1); return 1;
    case MSG_BUSY: case MSG_FULL: lua_pushboolean(L, 0); return 1;
    case MSG_TOO_BIG:   /* the limit of a fixed size is immutable: read it unlocked */
        return mtmsg_error_status(L, st, &b->obj, NULL, &b->queue,
                                  mtmsg_codec_headerlen(len) + len);
    default:
        return mtmsg_error_status(L, st, &b->obj, NULL, NULL, failsize);
    }
}

/* ===== Per-state work buffers =====
 * Upvalue 1 of every function is the scratch buffer that messages are encoded into;
 * upvalue 2 of buffer:nextmsg and listener:nextmsg is their receive buffer. Both are
 * BusyBuf userdata. Encoding and decoding can allocate Lua memory, an allocation may
 * run __gc finalizers, and a finalizer may call mtmsg in this same state: such a
 * nested call finds the buffer busy and works in a temporary BusyBuf pushed on the
 * stack, which the collector frees even when a Lua error unwinds. Every raise of
 * ours releases first; if a Lua error escapes while an upvalue's buffer is busy (a
 * memory error while decoding), it stays busy and later calls use temporaries:
 * still correct, only slower. */

/* Pushes a new, free BusyBuf (its metatable's __gc frees the memory). */
static BusyBuf *busybuf_new(lua_State *L) {
    BusyBuf *bb = (BusyBuf *)lua_newuserdatauv(L, sizeof *bb, 0);
    mtmsg_membuf_init(&bb->mb, 256, 2);
    bb->busy = 0;
    luaL_getmetatable(L, MTMSG_BUSYBUF_MT);
    lua_setmetatable(L, -2);
    return bb;
}

BusyBuf *mtmsg_busybuf_pushstate(lua_State *L, const void *key) {
    BusyBuf *bb;
    lua_pushlightuserdata(L, (void *)(uintptr_t)key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    bb = (BusyBuf *)lua_touserdata(L, -1);
    if (bb) return bb;
    lua_pop(L, 1);
    bb = busybuf_new(L);
    lua_pushlightuserdata(L, (void *)(uintptr_t)key);
    lua_pushvalue(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return bb;
}

MemBuf *mtmsg_busybuf_acquire(lua_State *L, int up) {
    BusyBuf *bb = (BusyBuf *)lua_touserdata(L, lua_upvalueindex(up));
    int keep = bb == NULL && lua_type(L, lua_upvalueindex(up)) == LUA_TNIL;
    if (bb && !bb->busy) { bb->busy = 1; return &bb->mb; }     /* nothing pushed */
    bb = busybuf_new(L);
    bb->busy = 1;
    if (keep) lua_replace(L, lua_upvalueindex(up));         /* first use: nothing pushed */
    return &bb->mb;                                         /* else: a temporary on top */
}

void mtmsg_busybuf_release(lua_State *L, int up, MemBuf *mb, int idx) {
    BusyBuf *bb = (BusyBuf *)lua_touserdata(L, lua_upvalueindex(up));
    mtmsg_membuf_shrink(mb, MTMSG_SCRATCH_KEEP);
    if (bb && mb == &bb->mb) bb->busy = 0;
    else lua_remove(L, idx);
}

/* The common case of acquire/release, inline: the upvalue's buffer is free. WorkBuf
 * remembers which buffer was acquired, so that release needs no upvalue lookup. */
typedef struct WorkBuf {
    BusyBuf *bb;        /* the upvalue's buffer, or NULL: mb is what acquire returned */
    MemBuf *mb;
} WorkBuf;

/* bb: the buffer to use if it is free (from the class context), or NULL: the
 * upvalue's. Either way the upvalue's (or a temporary) when bb is busy. */
static inline MemBuf *workbuf_acquire(lua_State *L, int up, BusyBuf *bb, WorkBuf *w) {
    if (!bb) bb = (BusyBuf *)lua_touserdata(L, lua_upvalueindex(up));
    if (bb && !bb->busy) {
        bb->busy = 1;
        w->bb = bb;
        return w->mb = &bb->mb;
    }
    w->bb = NULL;
    return w->mb = mtmsg_busybuf_acquire(L, up);
}

/* idx: the top before acquire, plus one (see mtmsg_busybuf_release). */
static inline void workbuf_release(lua_State *L, int up, WorkBuf *w, int idx) {
    mtmsg_membuf_shrink(w->mb, MTMSG_SCRATCH_KEEP);
    if (w->bb) w->bb->busy = 0;
    else mtmsg_busybuf_release(L, up, w->mb, idx);
}

static int put_args(lua_State *L, int clear) {
    ClassCtx *ctx;
    BufferHandle *h = checkself(L, &ctx);
    int top = lua_gettop(L), badarg = 0;
    const char *badmsg = NULL;
    WorkBuf w;
    MemBuf *mb = workbuf_acquire(L, MTMSG_UP_SCRATCH, ctx ? (BusyBuf *)ctx->scratch : NULL, &w),
           copy;
    MsgStatus st;
    MsgFire fire;
    size_t len, failsize = 0;
    mtmsg_membuf_clear(mb);
    st = mtmsg_codec_encode(L, 2, top, mb, &badarg, &badmsg);
    if (st != MSG_OK) {                    /* bad argument or no memory: nothing sent */
        copy = *mb;                        /* for the error text, after release */
        workbuf_release(L, MTMSG_UP_SCRATCH, &w, top + 1);
        if (st == MSG_BADARG) return luaL_argerror(L, badarg, badmsg);
        return mtmsg_error_status(L, st, NULL, NULL, &copy, 0);
    }
    len = mb->len;
    st = mtmsg_buffer_put(h->b, mtmsg_membuf_begin(mb), len, clear, h->nonblock, &fire,
                          &failsize);
    workbuf_release(L, MTMSG_UP_SCRATCH, &w, top + 1);
    if (fire.api) mtmsg_capi_firelua(L, &fire);
    return put_result(L, h->b, st, len, failsize);
}

static int buffer_addmsg(lua_State *L) { return put_args(L, 0); }
static int buffer_setmsg(lua_State *L) { return put_args(L, 1); }

int mtmsg_buffer_putraw(lua_State *L, BufferHandle *h, MemBuf *src, int clear) {
    MsgFire fire;
    size_t len = src->len, failsize = 0;
    MsgStatus st = mtmsg_buffer_put(h->b, mtmsg_membuf_begin(src), len, clear, h->nonblock,
                                    &fire, &failsize);
    if (st == MSG_OK) mtmsg_membuf_clear(src);    /* stored: before a notifier can raise */
    if (fire.api) mtmsg_capi_firelua(L, &fire);
    return put_result(L, h->b, st, len, failsize);
}

/* The getters: the size_t or int field at offset `off` of self's buffer, read under
 * its mutex. */
static size_t locked_size(lua_State *L, size_t off) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    size_t v;
    mtmsg_mutex_lock(&b->mutex);
    v = *(const size_t *)(const void *)((const char *)b + off);
    mtmsg_mutex_unlock(&b->mutex);
    return v;
}

static int locked_flag(lua_State *L, size_t off) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    int v;
    mtmsg_mutex_lock(&b->mutex);
    v = *(const int *)(const void *)((const char *)b + off);
    mtmsg_mutex_unlock(&b->mutex);
    return v;
}

static int buffer_msgcnt(lua_State *L) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    size_t n;
    mtmsg_mutex_lock(&b->mutex);
    n = mtmsg_buffer_count_locked(b);
    mtmsg_mutex_unlock(&b->mutex);
    mtmsg_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int buffer_clear(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    MsgBuffer *b = h->b;
    MsgStatus st = MSG_OK;
    int held = 0;
    if (!acquire_all(b, h->nonblock)) st = MSG_BUSY;    /* the takers' batch goes too */
    else if (!nonblock_hold(b, h->nonblock, b->in_ready, &held)) {
        mtmsg_mutex_unlock(&b->mutex);      /* (a listener buffer: no fmutex) */
        st = MSG_BUSY;
    }
    if (st == MSG_OK) {
        if (b->closed) st = MSG_CLOSED;
        else mtmsg_buffer_empty_locked(b, 0);
        unlock_sync_all(b, held);
    }
    if (st == MSG_CLOSED) return mtmsg_error_status(L, st, &b->obj, NULL, NULL, 0);
    lua_pushboolean(L, st == MSG_OK);
    return 1;
}

/* The reuse list of a receive without carray arguments: as mtmsg_carray_checkreuse(L,
 * top + 1, top, reuse) sets it up, without a call. */
static inline void noreuse(CarrayReuse *reuse, int top) {
    reuse->first = reuse->next = top + 1;
    reuse->last = top;
    reuse->ntypes = 0;
    reuse->ready = 0;
}

double mtmsg_buffer_recvargs(lua_State *L, int arg, int nonblock, CarrayReuse *reuse) {
    double timeout = nonblock ? 0 : -1;
    int t, top = lua_gettop(L);
    if (top < arg) {                    /* no arguments */
        noreuse(reuse, top);
        return timeout;
    }
    t = lua_type(L, arg);
    if (t == LUA_TNUMBER) {
        timeout = (double)lua_tonumber(L, arg);
        if (!(timeout > 0)) timeout = 0;             /* also NaN */
        arg++;
    } else if (t == LUA_TNIL || t == LUA_TNONE) {
        arg++;
    } else {
        mtmsg_carray_checkarg(L, arg, "timeout seconds or carray expected");
    }
    mtmsg_carray_checkreuse(L, arg, lua_gettop(L), reuse);
    return timeout;
}

int mtmsg_buffer_pushmsg(lua_State *L, MemBuf *mb, CarrayReuse *reuse) {
    size_t pos = 0;
    int n = mtmsg_codec_decode(L, mtmsg_membuf_begin(mb), mb->len, &pos, -1, reuse);
    if (n < 0) mtmsg_sync_abort(-1, __FILE__, __LINE__);    /* our own bytes: a bug */
    if (reuse->next <= reuse->last) mtmsg_carray_finishreuse(L, reuse);    /* carrays left */
    return n;
}

/* The storage a held message is moved in and out of the receive buffer with (no
 * allocation on the error path: the receive buffer and the held slot swap storage). */
void mtmsg_heldmsg_init(HeldMsg *hm) {
    hm->has = 0;
    mtmsg_membuf_init(&hm->mb, 256, 2);     /* as the receive buffers */
}

void mtmsg_heldmsg_free(HeldMsg *hm) {
    mtmsg_membuf_free(&hm->mb);
    mtmsg_heldmsg_init(hm);
}

/* Moves the message in mb to the empty held slot, or back (swapping storage). */
static void swap_held(MemBuf *mb, HeldMsg *held) {
    MemBuf t = held->mb;
    held->mb = *mb;
    *mb = t;
    held->has = !held->has;
}

/* Returns the values of the held message (moved into the receive buffer first, so that
 * a nested call from a finalizer or an error while decoding does not see it again). */
static int receive_held(lua_State *L, HeldMsg *held, CarrayReuse *reuse) {
    int top = lua_gettop(L), n;
    MemBuf *mb;
    /* `require "carray"` runs Lua code: before the message leaves the handle */
    if (!reuse->ready && mtmsg_carray_neednew(reuse, mtmsg_membuf_begin(&held->mb),
                                              held->mb.len, 0, -1))
        mtmsg_carray_load(L, reuse);
    mb = mtmsg_busybuf_acquire(L, MTMSG_UP_RECV);
    swap_held(mb, held);
    mtmsg_heldmsg_free(held);               /* the receive buffer's old storage */
    n = mtmsg_buffer_pushmsg(L, mb, reuse);
    mtmsg_busybuf_release(L, MTMSG_UP_RECV, mb, top + 1);
    return n;
}

/* As mtmsg_buffer_receive; *got (may be NULL) tells whether a message was returned
 * (an empty message and a timeout both return no values). */
static int receive_got(lua_State *L, int top, BusyBuf *recv, MsgObject *o, int nonblock,
                       double timeout, CarrayReuse *reuse, HeldMsg *held, int *got) {
    int n;
    WorkBuf w;
    MemBuf *mb, copy;
    MsgFire fire;
    MsgStatus st;
    if (got) *got = 1;
    if (held->has) return receive_held(L, held, reuse);
    for (;;) {
        mb = workbuf_acquire(L, MTMSG_UP_RECV, recv, &w);
        st = o->kind == KIND_BUFFER
           ? mtmsg_buffer_take((MsgBuffer *)o, mb, nonblock, timeout, mtmsg_carray_check(reuse),
                               &fire)
           : mtmsg_listener_take((MsgListener *)o, mb, nonblock, timeout,
                                 mtmsg_carray_check(reuse), &fire);
        if (st != MSG_NEEDCARRAY) break;
        workbuf_release(L, MTMSG_UP_RECV, &w, top + 1);
        mtmsg_carray_load(L, reuse);       /* require "carray", nothing held; then retry */
    }
    if (st != MSG_OK) {
        copy = *mb;                        /* for the error text, after release */
        workbuf_release(L, MTMSG_UP_RECV, &w, top + 1);
        if (st == MSG_EMPTY || st == MSG_BUSY) {
            if (reuse->next <= reuse->last) mtmsg_carray_finishreuse(L, reuse);
            if (got) *got = 0;
            return 0;
        }
        if (st == MSG_ENDED) {             /* end of stream: the EOS sentinel */
            mtmsg_carray_finishreuse(L, reuse);
            if (got) *got = 0;
            mtmsg_buffer_pusheos(L);
            return 1;
        }
        return mtmsg_error_status(L, st, o, NULL, &copy, 0);
    }
    if (fire.api) {
        /* The message was taken: it goes to the handle's held slot (empty: a held message
         * is returned before anything is taken) for the call, and stays there if the
         * notifier fails. Pushing the error text may run a finalizer that calls nextmsg
         * on this handle: that one gets the message. */
        swap_held(mb, held);
        if (mtmsg_capi_fireerror(L, &fire)) {               /* pushed the error text */
            workbuf_release(L, MTMSG_UP_RECV, &w, top + 1);
            return lua_error(L);
        }
        swap_held(mb, held);                                /* no Lua ran: mb is ours */
    }
    n = mtmsg_buffer_pushmsg(L, mb, reuse);             /* [temporary], values */
    workbuf_release(L, MTMSG_UP_RECV, &w, top + 1);
    return n;
}

int mtmsg_buffer_receive(lua_State *L, MsgObject *o, int nonblock, double timeout,
                         CarrayReuse *reuse, HeldMsg *held) {
    return receive_got(L, lua_gettop(L), NULL, o, nonblock, timeout, reuse, held, NULL);
}

int mtmsg_buffer_nextmsg(lua_State *L, MsgObject *o, int nonblock, HeldMsg *held,
                         const ClassCtx *ctx) {
    CarrayReuse reuse;
    double timeout = mtmsg_buffer_recvargs(L, 2, nonblock, &reuse);
    return receive_got(L, lua_gettop(L), ctx ? (BusyBuf *)ctx->recv : NULL, o, nonblock, timeout,
                       &reuse, held, NULL);
}

static int buffer_nextmsg(lua_State *L) {
    ClassCtx *ctx;
    BufferHandle *h = checkself(L, &ctx);
    return mtmsg_buffer_nextmsg(L, &h->b->obj, h->nonblock, &h->held, ctx);
}

static int buffer_nonblock(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    int flag = mtmsg_checkflag(L, 2);
    MsgStatus st = MSG_OK;
    mtmsg_mutex_lock(&h->b->mutex);
    if (h->b->closed) st = MSG_CLOSED;
    else if (h->b->aborted) st = MSG_ABORTED;
    mtmsg_mutex_unlock(&h->b->mutex);
    if (st != MSG_OK) return mtmsg_error_status(L, st, &h->b->obj, NULL, NULL, 0);
    h->nonblock = flag;
    return 0;
}

static int buffer_isnonblock(lua_State *L) {
    lua_pushboolean(L, mtmsg_buffer_check(L, 1)->nonblock);
    return 1;
}

static int buffer_close(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    MsgBuffer *b = h->b;
    mtmsg_buffer_lockall(b);
    if (!b->closed) {
        b->closed = 1;
        mtmsg_buffer_empty_locked(b, 1);
        mtmsg_atomic_bump_locked(&b->seq);
        mtmsg_cond_broadcast(&b->cond);
        mtmsg_buffer_wakesenders_locked(b);
        mtmsg_buffer_replan_locked(b);
    }
    unlock_sync_all(b, 0);              /* (a listener buffer leaves the ready list) */
    return 0;
}

static int buffer_abort(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    buffer_setabort(&h->b->obj, mtmsg_checkflag(L, 2));
    return 0;
}

static int buffer_isabort(lua_State *L) {
    lua_pushboolean(L, locked_flag(L, offsetof(MsgBuffer, aborted)));
    return 1;
}

/* ===== Event loops: the wake-up handle ===== */

static int buffer_wakestate(void *self) {
    MsgBuffer *b = self;
    if (b->closed) return -1;
    return mtmsg_buffer_count_locked(b) > 0 || b->aborted || b->ended;
}

/* With both mutexes held, once the descriptor is there (at the level that
 * buffer_wakestate gave): no more takes without b->mutex, which keeps that level. */
static void buffer_wakeopened(void *self) {
    mtmsg_buffer_replan_locked(self);
}

/* buffer:getfd() and buffer:pollfd() (LuaSocket and cqueues names). */
static int buffer_getfd(lua_State *L) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    WakeOwner o;
    o.obj = &b->obj;
    o.outer = b->listener ? NULL : &b->fmutex;
    o.mutex = &b->mutex;
    o.wake = &b->wake;
    o.state = buffer_wakestate;
    o.opened = buffer_wakeopened;
    o.self = b;
    return mtmsg_wakeup_pushfd(L, &o);
}

/* cqueues' pollable protocol: wait for readability, without a timeout of our own. */
static int buffer_events(lua_State *L) {
    mtmsg_buffer_check(L, 1);
    lua_pushliteral(L, "r");
    return 1;
}

static int buffer_timeout(lua_State *L) {
    mtmsg_buffer_check(L, 1);
    lua_pushnil(L);
    return 1;
}

/* ===== Flow control: Lua methods (extensions) ===== */

void mtmsg_buffer_pusheos(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, MTMSG_EOS_KEY);
}

int mtmsg_buffer_iseos(lua_State *L, int idx) {
    int r;
    if (idx < 0) idx = lua_gettop(L) + idx + 1;
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    mtmsg_buffer_pusheos(L);
    r = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return r;
}

double mtmsg_buffer_timeoutarg(lua_State *L, int arg, int nonblock) {
    double t;
    if (lua_isnoneornil(L, arg)) return nonblock ? 0 : -1;
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_argerror(L, arg, lua_pushfstring(L, "timeout seconds or nil expected, got %s",
                                              luaL_typename(L, arg)));
    t = (double)lua_tonumber(L, arg);
    return t > 0 ? t : 0;                       /* also NaN */
}

/* buffer:waitaddmsg(timeout, ...): encodes first (no lock), then waits for room. */
static int buffer_waitaddmsg(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    double timeout = mtmsg_buffer_timeoutarg(L, 2, h->nonblock);
    int top = lua_gettop(L), badarg = 0;
    const char *badmsg = NULL;
    MemBuf *mb, copy;
    MsgStatus st;
    MsgFire fire;
    size_t len, failsize = 0;
    if (top < 2) lua_settop(L, top = 2);
    mb = mtmsg_busybuf_acquire(L, MTMSG_UP_SCRATCH);
    mtmsg_membuf_clear(mb);
    st = mtmsg_codec_encode(L, 3, top, mb, &badarg, &badmsg);
    if (st != MSG_OK) {                    /* bad argument or no memory: nothing sent */
        copy = *mb;
        mtmsg_busybuf_release(L, MTMSG_UP_SCRATCH, mb, top + 1);
        if (st == MSG_BADARG) return luaL_argerror(L, badarg, badmsg);
        return mtmsg_error_status(L, st, NULL, NULL, &copy, 0);
    }
    len = mb->len;
    st = mtmsg_buffer_putwait(h->b, mtmsg_membuf_begin(mb), len, h->nonblock, timeout, &fire,
                              &failsize);
    mtmsg_busybuf_release(L, MTMSG_UP_SCRATCH, mb, top + 1);
    if (fire.api) mtmsg_capi_firelua(L, &fire);
    return put_result(L, h->b, st, len, failsize);
}

int mtmsg_buffer_putrawwait(lua_State *L, BufferHandle *h, MemBuf *src, double timeout) {
    MsgFire fire;
    size_t len = src->len, failsize = 0;
    MsgStatus st = mtmsg_buffer_putwait(h->b, mtmsg_membuf_begin(src), len, h->nonblock,
                                        timeout, &fire, &failsize);
    if (st == MSG_OK) mtmsg_membuf_clear(src);    /* stored: before a notifier can raise */
    if (fire.api) mtmsg_capi_firelua(L, &fire);
    return put_result(L, h->b, st, len, failsize);
}

/* buffer:setlimit(n | nil): at most n queued messages (nil: no limit). */
static int buffer_setlimit(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    MsgBuffer *b = h->b;
    size_t lim = 0, cnt = 0;
    MsgStatus st = MSG_OK;
    if (!lua_isnoneornil(L, 2)) {
        double d;
        if (lua_type(L, 2) != LUA_TNUMBER)
            return luaL_argerror(L, 2, lua_pushfstring(L, "message count limit or nil expected, got %s",
                                                       luaL_typename(L, 2)));
        d = (double)lua_tonumber(L, 2);
        if (!(d >= 1) || d != floor(d))         /* also NaN, -inf; +inf is "no limit" */
            return luaL_argerror(L, 2, lua_pushfstring(L,
                "message count limit must be a positive integer or nil, got %s",
                lua_tostring(L, 2)));
        lim = d >= (double)(size_t)-1 ? (size_t)-1 : (size_t)d;    /* huge: no limit */
    }
    mtmsg_buffer_lockall(b);
    cnt = mtmsg_buffer_count_locked(b);
    if (b->closed) st = MSG_CLOSED;
    else if (lim && cnt > lim) st = MSG_FULL;
    else {
        b->limit = lim == (size_t)-1 ? 0 : lim;
        if (b->sw_head) mtmsg_cond_signal(&b->sw_head->cond);  /* maybe room now */
        mtmsg_buffer_replan_locked(b);
    }
    mtmsg_buffer_unlockall(b);
    if (st == MSG_FULL) {
        char n[32], c[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)lim);
        snprintf(c, sizeof c, "%llu", (unsigned long long)cnt);
        return luaL_argerror(L, 2, lua_pushfstring(L,
            "message count limit %s is below the %s messages queued", n, c));
    }
    if (st != MSG_OK) return mtmsg_error_status(L, st, &b->obj, NULL, NULL, 0);
    return 0;
}

/* buffer:limit(): the message count limit, or nil. */
static int buffer_limit(lua_State *L) {
    size_t lim = locked_size(L, offsetof(MsgBuffer, limit));
    if (!lim) return 0;
    mtmsg_pushinteger(L, (lua_Integer)lim);
    return 1;
}

/* buffer:bytes(): bytes queued, capacity (the limit of a fixed buffer, else what is
 * allocated or will be at first), and whether the capacity is a fixed limit. */
static int buffer_bytes(lua_State *L) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    size_t used, cap;
    int fixed;
    mtmsg_buffer_lockall(b);
    used = b->queue.len + b->front.len;
    /* what is allocated (a swap can leave the queue without storage while the batch has
     * it); before the first allocation, the initial size (fixed: never a batch) */
    cap = (b->queue.data ? b->queue.cap : 0) + (b->front.data ? b->front.cap : 0);
    if (!b->queue.data && !b->front.data) cap = b->queue.cap;
    fixed = b->queue.grow == 0;
    mtmsg_buffer_unlockall(b);
    mtmsg_pushinteger(L, (lua_Integer)used);
    mtmsg_pushinteger(L, (lua_Integer)cap);
    lua_pushboolean(L, fixed);
    return 3;
}

/* buffer:highwater([reset]): the most messages queued at once; reset: start again
 * from the current count. */
static int buffer_highwater(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    int reset = lua_toboolean(L, 2);
    size_t hw;
    mtmsg_mutex_lock(&h->b->mutex);
    hw = h->b->hiwater;
    if (reset) h->b->hiwater = mtmsg_buffer_count_locked(h->b);
    mtmsg_mutex_unlock(&h->b->mutex);
    mtmsg_pushinteger(L, (lua_Integer)hw);
    return 1;
}

/* buffer:finish(): ends the stream. Receivers get the queued messages, then mtmsg.EOS;
 * adds raise stream_ended; waiting senders and receivers wake. */
static int buffer_finish(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    MsgBuffer *b = h->b;
    MsgListener *l = b->listener;       /* its nended counts b: lock it first */
    int closed;
    if (l) mtmsg_mutex_lock(&l->mutex);
    mtmsg_mutex_lock(&b->mutex);
    closed = b->closed;
    if (!closed && !b->ended) {
        b->ended = 1;
        mtmsg_buffer_wake_locked(b);
        mtmsg_atomic_bump_locked(&b->seq);
        mtmsg_cond_broadcast(&b->cond);
        mtmsg_buffer_wakesenders_locked(b);
        if (l) {
            l->nended++;
            /* an add that gave b its first message may not have synced yet: b joins
             * the ready list now, or a taker would see "all finished" before it */
            mtmsg_listener_sync_locked(l, b);
            mtmsg_listener_wake_locked(l);
            mtmsg_atomic_bump_locked(&l->seq);
            if (l->nwaiters) mtmsg_cond_broadcast(&l->cond);
        }
    }
    mtmsg_mutex_unlock(&b->mutex);
    if (l) mtmsg_mutex_unlock(&l->mutex);
    if (closed) return mtmsg_error_status(L, MSG_CLOSED, &b->obj, NULL, NULL, 0);
    return 0;
}

/* buffer:waitingsenders(): how many senders wait for room in waitaddmsg. */
static int buffer_waitingsenders(lua_State *L) {
    mtmsg_pushinteger(L, (lua_Integer)locked_size(L, offsetof(MsgBuffer, nsw)));
    return 1;
}

static int buffer_isfinished(lua_State *L) {
    lua_pushboolean(L, locked_flag(L, offsetof(MsgBuffer, ended)));
    return 1;
}

/* buffer:peekmsg(): the values of the next message, left queued (copied under the
 * lock, decoded after); nothing when empty, mtmsg.EOS at the end of a stream. */
static int buffer_peekmsg(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    MsgBuffer *b = h->b;
    CarrayReuse reuse;
    int top, n;
    MemBuf *mb, copy;
    MsgStatus st;
    mtmsg_carray_checkreuse(L, 2, lua_gettop(L), &reuse);
    top = lua_gettop(L);
    for (;;) {
        mb = mtmsg_busybuf_acquire(L, MTMSG_UP_RECV);
        if (h->held.has) {                 /* what nextmsg returns next: a copy of it */
            st = mtmsg_membuf_reset(mb, h->held.mb.len);
            if (st == MSG_OK) {
                if (h->held.mb.len)
                    memcpy(mb->data, mtmsg_membuf_begin(&h->held.mb), h->held.mb.len);
                mb->len = h->held.mb.len;
                if (!reuse.ready && mtmsg_carray_neednew(&reuse, mb->data, mb->len, 0, -1))
                    st = MSG_NEEDCARRAY;
            }
        } else if (!acquire_all(b, h->nonblock)) {
            st = MSG_BUSY;
        } else {
            if (b->closed) st = MSG_CLOSED;
            else if (b->aborted) st = MSG_ABORTED;
            else if (mtmsg_buffer_count_locked(b) > 0)
                st = flow_peek_locked(b, mb, mtmsg_carray_check(&reuse));
            else st = b->ended ? MSG_ENDED : MSG_EMPTY;
            mtmsg_buffer_unlockall(b);
        }
        if (st != MSG_NEEDCARRAY) break;
        mtmsg_busybuf_release(L, MTMSG_UP_RECV, mb, top + 1);
        mtmsg_carray_load(L, &reuse);
    }
    if (st != MSG_OK) {
        copy = *mb;
        mtmsg_busybuf_release(L, MTMSG_UP_RECV, mb, top + 1);
        mtmsg_carray_finishreuse(L, &reuse);
        if (st == MSG_EMPTY || st == MSG_BUSY) return 0;
        if (st == MSG_ENDED) { mtmsg_buffer_pusheos(L); return 1; }
        return mtmsg_error_status(L, st, &b->obj, NULL, &copy, 0);
    }
    n = mtmsg_buffer_pushmsg(L, mb, &reuse);
    mtmsg_busybuf_release(L, MTMSG_UP_RECV, mb, top + 1);
    return n;
}

/* The iterator of buffer:messages / listener:messages: (handle, count) -> count + 1 and
 * the values of the next message; nothing at end of stream or timeout. Upvalue 5: the
 * timeout (nil: forever, or no wait in nonblock mode). */
int mtmsg_buffer_iterstep(lua_State *L, MsgObject *o, int nonblock, HeldMsg *held) {
    lua_Integer i = lua_tointeger(L, 2);
    double timeout = mtmsg_buffer_timeoutarg(L, lua_upvalueindex(5), nonblock);
    CarrayReuse reuse;
    int n, got;
    lua_settop(L, 1);                                   /* the handle stays referenced */
    mtmsg_carray_checkreuse(L, 2, 1, &reuse);           /* no reuse list */
    mtmsg_pushinteger(L, i + 1);
    n = receive_got(L, lua_gettop(L), NULL, o, nonblock, timeout, &reuse, held, &got);
    if (!got) return 0;                                 /* end of stream or timeout */
    return n + 1;
}

int mtmsg_buffer_pushiter(lua_State *L, lua_CFunction step) {
    int k;
    lua_settop(L, 2);
    mtmsg_buffer_timeoutarg(L, 2, 0);                   /* checks it */
    for (k = 1; k <= 4; k++) lua_pushvalue(L, lua_upvalueindex(k));
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, step, 5);
    lua_pushvalue(L, 1);
    mtmsg_pushinteger(L, 0);
    return 3;
}

static int buffer_iter(lua_State *L) {
    BufferHandle *h = mtmsg_buffer_check(L, 1);
    return mtmsg_buffer_iterstep(L, &h->b->obj, h->nonblock, &h->held);
}

static int buffer_messages(lua_State *L) {
    mtmsg_buffer_check(L, 1);
    return mtmsg_buffer_pushiter(L, buffer_iter);
}

static int eos_tostring(lua_State *L) {
    lua_pushliteral(L, "mtmsg.EOS");
    return 1;
}

static int eos_newindex(lua_State *L) {
    return luaL_error(L, "mtmsg.EOS is read-only");
}

/* module.EOS: one empty, read-only table per lua_State. A received table is always a
 * fresh one, and EOS itself has a metatable, so it cannot be sent: no message value is
 * ever the same value as EOS. Module table at -2. */
static void flow_open(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, MTMSG_EOS_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);                                /* EOS */
        lua_createtable(L, 0, 3);                       /* EOS, mt */
        lua_pushcfunction(L, eos_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, eos_newindex);
        lua_setfield(L, -2, "__newindex");
        lua_pushliteral(L, "mtmsg.EOS");
        lua_setfield(L, -2, "__metatable");
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, MTMSG_EOS_KEY);
    }
    lua_setfield(L, -3, "EOS");
}

static const luaL_Reg buffer_methods[] = {
    {"id", buffer_id}, {"name", buffer_name}, {"addmsg", buffer_addmsg},
    {"setmsg", buffer_setmsg}, {"msgcnt", buffer_msgcnt}, {"clear", buffer_clear},
    {"nextmsg", buffer_nextmsg}, {"nonblock", buffer_nonblock},
    {"isnonblock", buffer_isnonblock}, {"close", buffer_close}, {"abort", buffer_abort},
    {"isabort", buffer_isabort}, {"notifier", mtmsg_capi_setnotifier},
    /* event loops (extensions) */
    {"getfd", buffer_getfd}, {"pollfd", buffer_getfd}, {"events", buffer_events},
    {"timeout", buffer_timeout},
    /* flow control (extensions) */
    {"waitaddmsg", buffer_waitaddmsg}, {"setlimit", buffer_setlimit}, {"limit", buffer_limit},
    {"bytes", buffer_bytes}, {"highwater", buffer_highwater}, {"finish", buffer_finish},
    {"isfinished", buffer_isfinished}, {"peekmsg", buffer_peekmsg},
    {"messages", buffer_messages}, {"waitingsenders", buffer_waitingsenders}, {NULL, NULL}
};

static const luaL_Reg buffer_metamethods[] = {
    {"__gc", buffer_gc}, {"__tostring", buffer_tostring}, {"__close", buffer_close},
    {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
    {"newbuffer", m_newbuffer}, {"buffer", m_buffer}, {NULL, NULL}
};

/* Registry key of the state's receive BusyBuf of buffer:nextmsg and listener:nextmsg
 * (ClassCtx.recv of both classes). */
static char recv_key;  /* only its address matters */

void mtmsg_buffer_setrecv(lua_State *L, ClassCtx *ctx) {
    ctx->recv = mtmsg_busybuf_pushstate(L, &recv_key);
    lua_pop(L, 1);
}

void mtmsg_buffer_open(lua_State *L) {
    mtmsg_open_class(L, buffer_class, buffer_methods, buffer_metamethods, module_funcs);
    mtmsg_buffer_setrecv(L, mtmsg_class_getctx(L, buffer_class));
    luaL_getmetatable(L, MTMSG_BUFFER_MT);          /* module, scratch, mt */
    mtmsg_capi_publish(L);
    lua_pop(L, 1);                                  /* module, scratch */
    flow_open(L);
}
