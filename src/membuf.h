/*
 * Growable byte queue (plain C, no Lua): the storage of buffers, writers, readers
 * and scratch space. Bytes live in data[start, start+len); capacity is `cap`.
 * Not thread safe: the owner's lock (if any) guards it. Also the module's allocator.
 */
#ifndef MTMSG_MEMBUF_H
#define MTMSG_MEMBUF_H

#include <stddef.h>

/* Outcome of an internal operation; the Lua layer turns it into a return or a raise. */
typedef enum MsgStatus {
    MSG_OK = 0,
    MSG_EMPTY,      /* no message (timeout, empty non-blocking read) */
    MSG_BUSY,       /* non-blocking and the lock is held by another thread */
    MSG_CLOSED,     /* object closed */
    MSG_ABORTED,    /* object aborted */
    MSG_FULL,       /* fixed size: does not fit now, may fit later */
    MSG_TOO_BIG,    /* fixed size: can never fit */
    MSG_NOMEM,      /* allocation failed */
    MSG_NOBUFFERS,  /* listener without buffers and messages */
    MSG_BADARG,     /* a Lua argument cannot be encoded (argument error) */
    MSG_NEEDCARRAY, /* message left queued: decoding it needs the carray module loaded */
    MSG_ENDED       /* stream ended (finish): no more adds; no more messages once drained */
} MsgStatus;

typedef struct MemBuf {
    char  *data;
    size_t start;   /* offset of the first byte in use */
    size_t len;     /* bytes in use */
    size_t cap;     /* bytes allocated (or the fixed limit before the first allocation) */
    double grow;    /* 0: fixed at cap; <= 1: grow by what is needed; > 1: multiply */
    size_t failsize;/* size of the last allocation that failed, for error texts */
} MemBuf;

/* Sets up an empty MemBuf; allocates nothing (storage comes with the first reserve). */
void mtmsg_membuf_init(MemBuf *mb, size_t cap, double grow);
void mtmsg_membuf_free(MemBuf *mb);
/* Makes room for n more bytes after the used ones (moving data to the front when
 * that helps). MSG_OK, or MSG_FULL / MSG_TOO_BIG (fixed size), MSG_NOMEM. */
MsgStatus mtmsg_membuf_reserve_slow(MemBuf *mb, size_t n);
static inline MsgStatus mtmsg_membuf_reserve(MemBuf *mb, size_t n) {
    /* fast path: room after the used bytes (start + len <= cap while data is set) */
    if (mb->data && n <= mb->cap - mb->start - mb->len) return MSG_OK;
    return mtmsg_membuf_reserve_slow(mb, n);
}
/* Empties the buffer and makes room for n bytes; on failure nothing changes. */
MsgStatus mtmsg_membuf_reset(MemBuf *mb, size_t n);
/* Frees the storage if it has grown beyond `keep` bytes (scratch buffers). */
void mtmsg_membuf_free(MemBuf *mb);
static inline void mtmsg_membuf_shrink(MemBuf *mb, size_t keep) {
    if (mb->data && mb->cap > keep) {
        mtmsg_membuf_free(mb);
        mb->cap = keep;
    }
}

/* data is NULL until the first reserve: no arithmetic on it then (NULL + 0 is undefined). */
static inline char *mtmsg_membuf_end(MemBuf *mb) {
    return mb->data ? mb->data + mb->start + mb->len : mb->data;
}
static inline char *mtmsg_membuf_begin(MemBuf *mb) { return mb->data ? mb->data + mb->start : mb->data; }
static inline void mtmsg_membuf_clear(MemBuf *mb) { mb->start = 0; mb->len = 0; }
/* Drops n bytes from the front. */
static inline void mtmsg_membuf_consume(MemBuf *mb, size_t n) {
    mb->len -= n;
    mb->start = mb->len ? mb->start + n : 0;
}

/* The module's allocator. Builds with -DMTMSG_FAILALLOC can make the N-th call fail
 * (see mtmsg_failalloc_set) to test out-of-memory paths. */
void *mtmsg_malloc(size_t n);
void *mtmsg_realloc(void *p, size_t n);
void  mtmsg_free(void *p);
#if defined(MTMSG_FAILALLOC)
/* Allocation number `n` (1-based, counted from this call) and all later ones fail; 0 disables. */
void mtmsg_failalloc_set(long n);
long mtmsg_failalloc_count(void);
#endif

#endif
