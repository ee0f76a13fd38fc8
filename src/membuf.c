/*
 * MemBuf: growable byte queue with the size/grow rules of the mtmsg API, and the
 * module allocator (with optional failure injection for tests).
 */
#include "membuf.h"

#include <stdlib.h>
#include <string.h>

#if defined(MTMSG_FAILALLOC)
#include "sync.h"
static MtAtomic fail_at;   /* 0: never fail; else the counter value that fails */
static MtAtomic alloc_calls;
void mtmsg_failalloc_set(long n) {
    mtmsg_atomic_store(&alloc_calls, 0);
    mtmsg_atomic_store(&fail_at, (size_t)(n > 0 ? n : 0));
}
long mtmsg_failalloc_count(void) { return (long)mtmsg_atomic_load(&alloc_calls); }
static int should_fail(void) {
    size_t at = mtmsg_atomic_load(&fail_at);
    size_t nth = mtmsg_atomic_inc(&alloc_calls);
    return at != 0 && nth >= at;
}
#else
#define should_fail() 0
#endif

void *mtmsg_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }
void *mtmsg_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }
void  mtmsg_free(void *p) { free(p); }

void mtmsg_membuf_init(MemBuf *mb, size_t cap, double grow) {
    mb->data = NULL;
    mb->start = mb->len = 0;
    mb->cap = cap;
    mb->grow = grow < 0 ? 0 : grow;
    mb->failsize = 0;
}

void mtmsg_membuf_free(MemBuf *mb) {
    mtmsg_free(mb->data);
    mb->data = NULL;
    mb->start = mb->len = 0;
}

/* New capacity for `need` bytes in use under the grow rule; 0 on overflow. */
static size_t grown_cap(const MemBuf *mb, size_t need) {
    size_t c = mb->cap;
    if (mb->grow > 1 && c > 0) {
        double d = (double)c * mb->grow;    /* one step, at least what is needed: a */
        if (d < (double)need) d = (double)need;  /* factor near 1 must not loop for long */
        if (d >= (double)((size_t)-1 / 2)) return need;
        c = (size_t)d;
        return c < need ? need : c;
    }
    return need;
}

MsgStatus mtmsg_membuf_reserve_slow(MemBuf *mb, size_t n) {
    size_t need;
    if (n > (size_t)-1 - mb->len) {
        if (mb->grow == 0) return MSG_TOO_BIG;
        mb->failsize = (size_t)-1;            /* more than any address space */
        return MSG_NOMEM;
    }
    need = mb->len + n;
    if (mb->data && mb->start + need <= mb->cap) return MSG_OK;
    /* Room at the front: move the data there, unless a growing buffer is more than half
     * full. A queue that stays nearly full would otherwise move almost all its bytes
     * for every few added (a queue of len bytes in cap moves len bytes per cap - len
     * added); growing moves them once and doubles the room. */
    if (need <= mb->cap && (mb->grow <= 1 || mb->len <= mb->cap / 2 || !mb->data)) {
        if (!mb->data) {                      /* first use: allocate the initial size */
            mb->data = mtmsg_malloc(mb->cap);
            if (!mb->data) { mb->failsize = mb->cap; return MSG_NOMEM; }
        } else {
            memmove(mb->data, mb->data + mb->start, mb->len);
        }
        mb->start = 0;
        return MSG_OK;
    }
    if (mb->grow == 0) return n > mb->cap ? MSG_TOO_BIG : MSG_FULL;
    {
        size_t ncap = grown_cap(mb, need);
        char *p;
        if (mb->start > 0) {                  /* compact before realloc copies */
            memmove(mb->data, mb->data + mb->start, mb->len);
            mb->start = 0;
        }
        p = mtmsg_realloc(mb->data, ncap);
        if (!p && need <= mb->cap) return MSG_OK;   /* compacted: that was room enough */
        if (!p && ncap > need) { ncap = need; p = mtmsg_realloc(mb->data, ncap); }
        if (!p) { mb->failsize = ncap; return MSG_NOMEM; }
        mb->data = p;
        mb->cap = ncap;
    }
    return MSG_OK;
}

MsgStatus mtmsg_membuf_reset(MemBuf *mb, size_t n) {
    if (n <= mb->cap || !mb->data) {
        MsgStatus st;
        size_t len = mb->len, start = mb->start;
        mb->len = mb->start = 0;
        st = mtmsg_membuf_reserve(mb, n);
        if (st != MSG_OK) { mb->len = len; mb->start = start; }
        return st;
    }
    if (mb->grow == 0) return MSG_TOO_BIG;
    {
        size_t ncap = grown_cap(mb, n);
        char *p = mtmsg_malloc(ncap);
        if (!p) { mb->failsize = ncap; return MSG_NOMEM; }
        mtmsg_free(mb->data);
        mb->data = p;
        mb->cap = ncap;
        mb->start = mb->len = 0;
    }
    return MSG_OK;
}

