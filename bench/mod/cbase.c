/*
 * cbase: plain-C baselines of the mtmsg benchmarks S2-S5 (bench-only module), and
 * the clocks the benchmark script uses.
 *
 * Each scenario function runs the whole scenario with pthreads and returns the
 * elapsed seconds, or raises if a check failed (count, order, content). The queue is
 * what a C programmer writes first: a byte ring (doubling when full) guarded by one
 * mutex, with one condition variable that is signalled only when somebody waits. It
 * carries a compact tagged encoding close in size to mtmsg's (a varint frame length,
 * then tagged elements: 0x45 "hello" 0x80+i 0x02 for ("hello", i, true); mtmsg's own
 * elements take the bytes mtmsg 0.4.3 counts, a few more per message); the
 * producer encodes into a scratch buffer and copies it into the queue, the consumer
 * copies a frame out under the lock and decodes it after unlocking, as mtmsg does.
 * Waiting is a plain pthread_cond_wait (no spinning).
 *
 *   cbase.s2(n)            one producer -> one consumer, n ("hello", i, true) messages
 *   cbase.s3(n)            ping-pong over two queues, n round trips
 *   cbase.s4(n, nprod)     nprod (1..16) producers -> one consumer (one shared mutex,
 *                          like a listener), n messages in all, ("hellP", i, true);
 *                          returns the elapsed seconds and the process CPU seconds
 *   cbase.s5(n, size, window, ackevery)
 *                          one producer -> one consumer, n messages (i, <size-byte string>);
 *                          flow control: the producer keeps at most `window` messages in
 *                          flight, the consumer acknowledges every `ackevery`-th
 *   cbase.now()            monotonic clock, seconds
 *   cbase.threadcpu()      CPU seconds used by the calling thread
 *   cbase.proccpu()        CPU seconds used by the whole process
 *   cbase.spincores(n, s)  runs n threads that only compute for s seconds; returns the
 *                          process CPU time / wall time: the cores we actually get
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua.h"
#include "lauxlib.h"

#define EXPORT __attribute__((visibility("default")))

static double clock_secs(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "cbase: %s failed\n", what);
    abort();
}

/* ===== The queue ===== */

typedef struct Queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf;     /* ring of cap bytes, cap a power of two */
    size_t cap, head, len;  /* bytes */
    size_t count;           /* frames */
    int nwaiters;
} Queue;

static void q_init(Queue *q) {
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->cap = 4096;
    q->buf = malloc(q->cap);
    if (!q->buf) die("malloc");
    q->head = q->len = q->count = 0;
    q->nwaiters = 0;
}

static void q_free(Queue *q) {
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->buf);
}

/* Copies n bytes from the ring at offset off (from head) into dst. */
static void ring_read(const Queue *q, size_t off, unsigned char *dst, size_t n) {
    size_t at = (q->head + off) & (q->cap - 1);
    size_t first = q->cap - at < n ? q->cap - at : n;
    memcpy(dst, q->buf + at, first);
    memcpy(dst + first, q->buf, n - first);
}

static void q_push(Queue *q, const unsigned char *frame, size_t n) {
    size_t at, first;
    pthread_mutex_lock(&q->mu);
    if (q->len + n > q->cap) {              /* grow: double and linearize */
        size_t ncap = q->cap * 2;
        unsigned char *nb;
        while (ncap < q->len + n) ncap *= 2;
        nb = malloc(ncap);
        if (!nb) die("malloc");
        ring_read(q, 0, nb, q->len);
        free(q->buf);
        q->buf = nb;
        q->cap = ncap;
        q->head = 0;
    }
    at = (q->head + q->len) & (q->cap - 1);
    first = q->cap - at < n ? q->cap - at : n;
    memcpy(q->buf + at, frame, first);
    memcpy(q->buf, frame + first, n - first);
    q->len += n;
    q->count++;
    if (q->nwaiters) pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

typedef struct Out { unsigned char *p; size_t len, cap; } Out;

/* Waits for a frame and copies its payload into out. */
static void q_pop(Queue *q, Out *out) {
    size_t pos = 0, plen = 0;
    int shift = 0;
    pthread_mutex_lock(&q->mu);
    while (q->count == 0) {
        q->nwaiters++;
        pthread_cond_wait(&q->cv, &q->mu);
        q->nwaiters--;
    }
    for (;;) {                              /* varint frame length */
        unsigned char c = q->buf[(q->head + pos++) & (q->cap - 1)];
        plen |= (size_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
    }
    if (plen > out->cap) {
        free(out->p);
        out->p = malloc(plen);
        if (!out->p) die("malloc");
        out->cap = plen;
    }
    ring_read(q, pos, out->p, plen);
    out->len = plen;
    q->head = (q->head + pos + plen) & (q->cap - 1);
    q->len -= pos + plen;
    q->count--;
    pthread_mutex_unlock(&q->mu);
}

/* ===== The codec (mtmsg's wire format, the elements used here) ===== */

enum { TAG_TRUE = 0x02, TAG_INT = 0x03, TAG_STR = 0x05, TAG_SHORTSTR = 0x40, TAG_SMALLINT = 0x80 };

static size_t put_varint(unsigned char *d, unsigned long long v) {
    size_t n = 0;
    while (v >= 0x80) { d[n++] = (unsigned char)((v & 0x7f) | 0x80); v >>= 7; }
    d[n++] = (unsigned char)v;
    return n;
}

static size_t get_varint(const unsigned char *p, size_t len, size_t *pos, unsigned long long *v) {
    unsigned long long r = 0;
    int shift = 0;
    size_t i = *pos;
    for (;;) {
        unsigned char c;
        if (i >= len || shift > 63) return 0;
        c = p[i++];
        r |= (unsigned long long)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
    }
    *pos = i;
    *v = r;
    return 1;
}

static size_t put_int(unsigned char *d, long long i) {
    if (i >= 0 && i <= 127) { d[0] = (unsigned char)(TAG_SMALLINT + i); return 1; }
    d[0] = TAG_INT;
    return 1 + put_varint(d + 1, ((unsigned long long)i << 1) ^ (unsigned long long)(i >> 63));
}

/* Returns 1 and the integer at p[*pos], or 0. */
static int get_int(const unsigned char *p, size_t len, size_t *pos, long long *i) {
    unsigned long long z;
    if (*pos >= len) return 0;
    if (p[*pos] >= TAG_SMALLINT) { *i = p[(*pos)++] - TAG_SMALLINT; return 1; }
    if (p[(*pos)++] != TAG_INT || !get_varint(p, len, pos, &z)) return 0;
    *i = (long long)(z >> 1) ^ -(long long)(z & 1);
    return 1;
}

/* A frame with ("hello" (5 bytes of s), i, true) into d; returns its size. */
static size_t encode_hello(unsigned char *d, const char *s, long long i) {
    unsigned char pl[32];
    size_t n = 0, h;
    pl[n++] = TAG_SHORTSTR + 5;
    memcpy(pl + n, s, 5); n += 5;
    n += put_int(pl + n, i);
    pl[n++] = TAG_TRUE;
    h = put_varint(d, n);
    memcpy(d + h, pl, n);
    return h + n;
}

/* Decodes ("xxxxx", i, true); the string is copied out as Lua would. 0 if malformed. */
static int decode_hello(const Out *o, char str[32], long long *i) {
    size_t pos = 0, sl;
    if (o->len < 1 || o->p[0] < TAG_SHORTSTR || o->p[0] >= TAG_SMALLINT) return 0;
    sl = o->p[pos++] - TAG_SHORTSTR;
    if (sl > 31 || sl > o->len - pos) return 0;
    memcpy(str, o->p + pos, sl);
    str[sl] = '\0';
    pos += sl;
    if (!get_int(o->p, o->len, &pos, i)) return 0;
    return pos + 1 == o->len && o->p[pos] == TAG_TRUE;
}

/* ===== Start gate: threads wait until the timer starts ===== */

typedef struct Gate { pthread_mutex_t mu; pthread_cond_t cv; int open; } Gate;

static void gate_init(Gate *g) {
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
}
static void gate_wait(Gate *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}
static void gate_open(Gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
static void gate_free(Gate *g) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* ===== Scenarios ===== */

typedef struct Job {
    Queue *in, *out;
    Gate *gate;
    long long n;
    int id;                 /* producer number (S4) */
    size_t size;            /* string size (S5) */
    long long window, acked; /* S5 flow control; acked guarded by ack.mu */
    Gate ack;               /* S5: acked changed (uses Gate's mutex and cond) */
    int failed;
} Job;

static void start(pthread_t *t, void *(*f)(void *), Job *j) {
    if (pthread_create(t, NULL, f, j) != 0) die("pthread_create");
}

static void *producer_hello(void *ud) {
    Job *j = ud;
    unsigned char frame[64];
    char s[6] = "hello";
    long long i;
    if (j->id) s[4] = (char)('0' + j->id);
    gate_wait(j->gate);
    for (i = 1; i <= j->n; i++) q_push(j->out, frame, encode_hello(frame, s, i));
    return NULL;
}

static int l_s2(lua_State *L) {
    long long n = luaL_checkinteger(L, 1), i;
    Queue q;
    Gate g;
    Job j;
    Out o = {NULL, 0, 0};
    pthread_t t;
    double t0, t1;
    int bad = 0;
    q_init(&q); gate_init(&g);
    memset(&j, 0, sizeof j);
    j.out = &q; j.gate = &g; j.n = n;
    start(&t, producer_hello, &j);
    t0 = clock_secs(CLOCK_MONOTONIC);
    gate_open(&g);
    for (i = 1; i <= n; i++) {
        char s[32];
        long long v;
        q_pop(&q, &o);
        if (!decode_hello(&o, s, &v) || v != i || strcmp(s, "hello") != 0) bad = 1;
    }
    t1 = clock_secs(CLOCK_MONOTONIC);
    pthread_join(t, NULL);
    q_free(&q); gate_free(&g); free(o.p);
    if (bad) return luaL_error(L, "cbase.s2: wrong message");
    lua_pushnumber(L, t1 - t0);
    return 1;
}

static void *ponger(void *ud) {
    Job *j = ud;
    unsigned char frame[64];
    Out o = {NULL, 0, 0};
    long long i;
    gate_wait(j->gate);
    for (i = 1; i <= j->n; i++) {
        char s[32];
        long long v;
        q_pop(j->in, &o);
        if (!decode_hello(&o, s, &v) || v != i) j->failed = 1;
        q_push(j->out, frame, encode_hello(frame, s, v));
    }
    free(o.p);
    return NULL;
}

static int l_s3(lua_State *L) {
    long long n = luaL_checkinteger(L, 1), i;
    Queue ping, pong;
    Gate g;
    Job j;
    Out o = {NULL, 0, 0};
    unsigned char frame[64];
    pthread_t t;
    double t0, t1;
    int bad = 0;
    q_init(&ping); q_init(&pong); gate_init(&g);
    memset(&j, 0, sizeof j);
    j.in = &ping; j.out = &pong; j.gate = &g; j.n = n;
    start(&t, ponger, &j);
    t0 = clock_secs(CLOCK_MONOTONIC);
    gate_open(&g);
    for (i = 1; i <= n; i++) {
        char s[32];
        long long v;
        q_push(&ping, frame, encode_hello(frame, "hello", i));
        q_pop(&pong, &o);
        if (!decode_hello(&o, s, &v) || v != i || strcmp(s, "hello") != 0) bad = 1;
    }
    t1 = clock_secs(CLOCK_MONOTONIC);
    pthread_join(t, NULL);
    q_free(&ping); q_free(&pong); gate_free(&g); free(o.p);
    if (bad || j.failed) return luaL_error(L, "cbase.s3: wrong message");
    lua_pushnumber(L, t1 - t0);
    return 1;
}

#define MAXPROD 16

static int l_s4(lua_State *L) {
    long long n = luaL_checkinteger(L, 1), i, last[MAXPROD + 1];
    int nprod = (int)luaL_checkinteger(L, 2), p;
    Queue q;
    Gate g;
    Job j[MAXPROD + 1];
    pthread_t t[MAXPROD + 1];
    Out o = {NULL, 0, 0};
    double t0, t1, c0, c1;
    int bad = 0;
    luaL_argcheck(L, nprod >= 1 && nprod <= MAXPROD && n % nprod == 0, 2, "1..16 dividing n");
    q_init(&q); gate_init(&g);
    for (p = 1; p <= nprod; p++) {
        memset(&j[p], 0, sizeof j[p]);
        j[p].out = &q; j[p].gate = &g; j[p].n = n / nprod; j[p].id = p;
        last[p] = 0;
        start(&t[p], producer_hello, &j[p]);
    }
    c0 = clock_secs(CLOCK_PROCESS_CPUTIME_ID);
    t0 = clock_secs(CLOCK_MONOTONIC);
    gate_open(&g);
    for (i = 1; i <= n; i++) {
        char s[32];
        long long v;
        q_pop(&q, &o);
        if (!decode_hello(&o, s, &v) || strncmp(s, "hell", 4) != 0) { bad = 1; continue; }
        p = s[4] - '0';             /* producers 1..16 are tagged '1'..'@' */
        if (p < 1 || p > nprod || v != last[p] + 1) bad = 1;
        else last[p] = v;
    }
    t1 = clock_secs(CLOCK_MONOTONIC);
    c1 = clock_secs(CLOCK_PROCESS_CPUTIME_ID);
    for (p = 1; p <= nprod; p++) {
        pthread_join(t[p], NULL);
        if (last[p] != n / nprod) bad = 1;
    }
    q_free(&q); gate_free(&g); free(o.p);
    if (bad) return luaL_error(L, "cbase.s4: wrong message");
    lua_pushnumber(L, t1 - t0);
    lua_pushnumber(L, c1 - c0);
    return 2;
}

static unsigned char *pattern(size_t size) {
    unsigned char *s = malloc(size ? size : 1);
    size_t k;
    if (!s) die("malloc");
    for (k = 0; k < size; k++) s[k] = (unsigned char)('a' + k % 26);
    return s;
}

static void *producer_big(void *ud) {
    Job *j = ud;
    unsigned char *src = pattern(j->size);
    size_t cap = j->size + 32;
    unsigned char *pl = malloc(cap), *frame = malloc(cap + 16);
    long long i;
    if (!pl || !frame) die("malloc");
    gate_wait(j->gate);
    for (i = 1; i <= j->n; i++) {
        size_t n = put_int(pl, i), h;        /* encode into scratch ... */
        pthread_mutex_lock(&j->ack.mu);       /* flow control */
        while (i - j->acked > j->window) pthread_cond_wait(&j->ack.cv, &j->ack.mu);
        pthread_mutex_unlock(&j->ack.mu);
        pl[n++] = TAG_STR;
        n += put_varint(pl + n, j->size);
        memcpy(pl + n, src, j->size);
        n += j->size;
        h = put_varint(frame, n);            /* ... frame it ... */
        memcpy(frame + h, pl, n);
        q_push(j->out, frame, h + n);        /* ... and copy it into the queue */
    }
    free(src); free(pl); free(frame);
    return NULL;
}

static int l_s5(lua_State *L) {
    long long n = luaL_checkinteger(L, 1), i;
    size_t size = (size_t)luaL_checkinteger(L, 2);
    long long window = luaL_checkinteger(L, 3), ackevery = luaL_checkinteger(L, 4);
    unsigned char *ref, *str;
    luaL_argcheck(L, ackevery >= 1 && window >= ackevery, 3, "window >= ackevery >= 1");
    ref = pattern(size);
    str = pattern(size);
    Queue q;
    Gate g;
    Job j;
    Out o = {NULL, 0, 0};
    pthread_t t;
    double t0, t1;
    int bad = 0;
    q_init(&q); gate_init(&g);
    memset(&j, 0, sizeof j);
    j.out = &q; j.gate = &g; j.n = n; j.size = size;
    j.window = window; j.acked = 0;
    gate_init(&j.ack);
    start(&t, producer_big, &j);
    t0 = clock_secs(CLOCK_MONOTONIC);
    gate_open(&g);
    for (i = 1; i <= n; i++) {
        size_t pos = 0;
        long long v;
        unsigned long long sl;
        q_pop(&q, &o);
        if (!get_int(o.p, o.len, &pos, &v) || v != i || pos >= o.len || o.p[pos++] != TAG_STR
            || !get_varint(o.p, o.len, &pos, &sl) || sl != size || sl != o.len - pos) {
            bad = 1;
        } else {
            /* The string value: copied out as lua_pushlstring does, into memory that
             * is reused (a malloc/free of 64 KiB per message makes glibc trim and
             * re-fault its heap each time: that would measure the allocator). */
            memcpy(str, o.p + pos, sl);
            if (size && (str[0] != ref[0] || str[size - 1] != ref[size - 1])) bad = 1;
            if (i % 256 == 0 && memcmp(str, ref, size) != 0) bad = 1;
        }
        if (i % ackevery == 0) {
            pthread_mutex_lock(&j.ack.mu);
            j.acked = i;
            pthread_cond_signal(&j.ack.cv);
            pthread_mutex_unlock(&j.ack.mu);
        }
    }
    t1 = clock_secs(CLOCK_MONOTONIC);
    pthread_join(t, NULL);
    q_free(&q); gate_free(&g); gate_free(&j.ack); free(o.p); free(ref); free(str);
    if (bad) return luaL_error(L, "cbase.s5: wrong message");
    lua_pushnumber(L, t1 - t0);
    return 1;
}

static void *spinner(void *ud) {
    double until = *(const double *)ud;
    volatile unsigned long x = 0;
    while (clock_secs(CLOCK_MONOTONIC) < until) {
        int k;
        for (k = 0; k < 10000; k++) x++;
    }
    return NULL;
}

static int l_spincores(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 1), k;
    double secs = luaL_checknumber(L, 2), c0, w0, until;
    pthread_t t[16];
    luaL_argcheck(L, n >= 1 && n <= 16, 1, "1..16 threads");
    c0 = clock_secs(CLOCK_PROCESS_CPUTIME_ID);
    w0 = clock_secs(CLOCK_MONOTONIC);
    until = w0 + secs;
    for (k = 0; k < n; k++)
        if (pthread_create(&t[k], NULL, spinner, &until) != 0) die("pthread_create");
    for (k = 0; k < n; k++) pthread_join(t[k], NULL);
    lua_pushnumber(L, (clock_secs(CLOCK_PROCESS_CPUTIME_ID) - c0)
                      / (clock_secs(CLOCK_MONOTONIC) - w0));
    return 1;
}

static int l_now(lua_State *L) { lua_pushnumber(L, clock_secs(CLOCK_MONOTONIC)); return 1; }
static int l_threadcpu(lua_State *L) { lua_pushnumber(L, clock_secs(CLOCK_THREAD_CPUTIME_ID)); return 1; }
static int l_proccpu(lua_State *L) { lua_pushnumber(L, clock_secs(CLOCK_PROCESS_CPUTIME_ID)); return 1; }

EXPORT int luaopen_cbase(lua_State *L);
EXPORT int luaopen_cbase(lua_State *L) {
    static const luaL_Reg funcs[] = {
        {"s2", l_s2}, {"s3", l_s3}, {"s4", l_s4}, {"s5", l_s5}, {"now", l_now},
        {"threadcpu", l_threadcpu}, {"proccpu", l_proccpu}, {"spincores", l_spincores},
        {NULL, NULL}
    };
    lua_newtable(L);
#if LUA_VERSION_NUM < 502
    luaL_register(L, NULL, funcs);
#else
    luaL_setfuncs(L, funcs, 0);
#endif
    return 1;
}
