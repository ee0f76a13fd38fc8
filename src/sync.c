/*
 * POSIX implementation of the threads layer declared in sync.h. Condition
 * variables wait on CLOCK_MONOTONIC, so wall-clock changes do not move deadlines.
 */
#define _GNU_SOURCE             /* dladdr, RTLD_NODELETE */
#include "sync.h"

#include <dlfcn.h>

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != 0) mtmsg_sync_abort(rc_, __FILE__, __LINE__); } while (0)

void mtmsg_sync_abort(int rc, const char *file, int line) {
    fprintf(stderr, "mtmsg: fatal: sync primitive failed (rc=%d) at %s:%d\n", rc, file, line);
    abort();
}

void mtmsg_mutex_init(MtMutex *m) { CHECK(pthread_mutex_init(m, NULL)); }
void mtmsg_mutex_destroy(MtMutex *m) { CHECK(pthread_mutex_destroy(m)); }
/* Critical sections are short (a memcpy of one message): when the mutex is busy,
 * retry for about a microsecond before sleeping in the kernel, so that a producer
 * and a consumer do not put each other to sleep (and pay a futex wake-up) on
 * every collision. */
#define LOCK_SPINS 64
void mtmsg_mutex_lock(MtMutex *m) {
    int k;
    for (k = 0; k < LOCK_SPINS; k++) {
        int rc = pthread_mutex_trylock(m);
        if (rc == 0) return;
        if (rc != EBUSY) mtmsg_sync_abort(rc, __FILE__, __LINE__);
        mtmsg_cpu_relax();
    }
    CHECK(pthread_mutex_lock(m));
}
void mtmsg_mutex_unlock(MtMutex *m) { CHECK(pthread_mutex_unlock(m)); }

int mtmsg_mutex_trylock(MtMutex *m) {
    int rc = pthread_mutex_trylock(m);
    if (rc == EBUSY) return 0;
    CHECK(rc);
    return 1;
}

void mtmsg_cond_init(MtCond *c) {
    pthread_condattr_t attr;
    CHECK(pthread_condattr_init(&attr));
    CHECK(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
    CHECK(pthread_cond_init(c, &attr));
    CHECK(pthread_condattr_destroy(&attr));
}
void mtmsg_cond_destroy(MtCond *c) { CHECK(pthread_cond_destroy(c)); }
void mtmsg_cond_wait(MtCond *c, MtMutex *m) { CHECK(pthread_cond_wait(c, m)); }
void mtmsg_cond_signal(MtCond *c) { CHECK(pthread_cond_signal(c)); }
void mtmsg_cond_broadcast(MtCond *c) { CHECK(pthread_cond_broadcast(c)); }

int mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline) {
    struct timespec ts;
    double secs = floor(deadline);
    int rc;
    if (deadline > 1e15) {                 /* effectively forever */
        mtmsg_cond_wait(c, m);
        return 1;
    }
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((deadline - secs) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000L; }
    rc = pthread_cond_timedwait(c, m, &ts);
    if (rc == ETIMEDOUT) return 0;
    CHECK(rc);
    return 1;
}

/* ----- Bounded adaptive spinning -----
 * A taker that finds nothing spins on the object's `seq` counter (bumped under the
 * lock whenever there is news) for a budget that adapts per object: doubled toward
 * the time a short wait actually took, halved after a long one, between 1 and 50 us.
 * After 2 us of pure spinning it yields between checks, so an oversubscribed machine
 * gets its core back. An idle waiter spins once, then sleeps on the condition. */

#define SPIN_MIN_NS 1000u
#define SPIN_PURE_NS 2000u
static int spin_ncpu;               /* 0 until known */
#if !defined(MTMSG_SPIN_MAX_NS)
#define MTMSG_SPIN_MAX_NS 50000u    /* longest spin before a condition wait */
#endif
static const unsigned spin_max_ns = MTMSG_SPIN_MAX_NS;
static const unsigned spin_pure_ns = SPIN_PURE_NS;  /* then yield between checks */

unsigned long long mtmsg_clock_ns(void) {
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

void mtmsg_spin_init(MtSpin *s) { s->budget_ns = MTMSG_SPIN_INIT_NS; }

int mtmsg_spin(const MtSpin *s, const MtAtomic *seq, size_t seen, double max_s,
               unsigned long long *t0) {
    unsigned long long limit = s->budget_ns;
    int n = __atomic_load_n(&spin_ncpu, __ATOMIC_ACQUIRE);
    if (n == 0) {                   /* racy first use: every thread computes the same */
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 1 ? (int)c : 1;
        __atomic_store_n(&spin_ncpu, n, __ATOMIC_RELEASE);
    }
    *t0 = mtmsg_clock_ns();
    if (n < 2) return 0;
    if (limit > spin_max_ns)
        limit = spin_max_ns;
    if (max_s >= 0 && max_s * 1e9 < (double)limit) limit = (unsigned long long)(max_s * 1e9);
    while (limit > 0) {
        int k;
        unsigned long long dt;
        for (k = 0; k < 16; k++) {
            if (__atomic_load_n(seq, __ATOMIC_ACQUIRE) != seen) return 1;
            mtmsg_cpu_relax();
        }
        dt = mtmsg_clock_ns() - *t0;
        if (dt >= limit) break;
        /* after a short pure spin, give the CPU to whoever is runnable here (maybe
         * the thread we wait for, when there are more threads than free CPUs) */
        if (dt >= spin_pure_ns) sched_yield();
    }
    return 0;
}

void mtmsg_spin_learn(MtSpin *s, unsigned long long t0) {
    unsigned long long waited = mtmsg_clock_ns() - t0;
    unsigned mx = spin_max_ns;
    if (waited <= mx) {             /* a short wait: spinning that long would have paid */
        if (2 * waited > s->budget_ns) s->budget_ns = (unsigned)(2 * waited < mx ? 2 * waited : mx);
    } else {                        /* a long wait: spin less next time */
        s->budget_ns = s->budget_ns / 2 > SPIN_MIN_NS ? s->budget_ns / 2 : SPIN_MIN_NS;
    }
}

int mtmsg_mutex_acquire(MtMutex *m, int nonblock) {
    if (nonblock) return mtmsg_mutex_trylock(m);
    mtmsg_mutex_lock(m);
    return 1;
}

void mtmsg_wait_init(MtWait *w, double timeout) {
    w->timeout = timeout;
    w->deadline = 0;
    w->spun = 0;
    w->spun_at = 0;
}

int mtmsg_wait_locked(MtWait *w, MtCond *c, MtMutex *m, int *nwaiters, const MtAtomic *seq,
                      const MtSpin *spin) {
    if (w->timeout == 0) return 0;
    if (!w->spun) {                 /* once per call: spin briefly before sleeping */
        size_t seen = mtmsg_atomic_load(seq);
        MtSpin sp = *spin;
        w->spun = 1;
        if (w->timeout > 0) w->deadline = mtmsg_clock_mono() + w->timeout;
        mtmsg_mutex_unlock(m);
        mtmsg_spin(&sp, seq, seen, w->timeout, &w->spun_at);
        mtmsg_mutex_lock(m);
        return 1;                   /* look again under the lock before sleeping */
    }
    (*nwaiters)++;
    if (w->timeout < 0) mtmsg_cond_wait(c, m);
    else if (mtmsg_clock_mono() >= w->deadline) w->timeout = 0;
    else mtmsg_cond_waituntil(c, m, w->deadline);
    (*nwaiters)--;
    return 1;
}

void mtmsg_wait_done_locked(const MtWait *w, MtSpin *spin) {
    if (w->spun) mtmsg_spin_learn(spin, w->spun_at);
}

static double clock_read(clockid_t id) {
    struct timespec ts;
    CHECK(clock_gettime(id, &ts));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double mtmsg_clock_mono(void) { return clock_read(CLOCK_MONOTONIC); }
double mtmsg_clock_wall(void) { return clock_read(CLOCK_REALTIME); }

/* Once per process: opens our own shared object again with RTLD_NODELETE, so that it
 * stays mapped after every lua_State that loaded it is closed. Buffers can outlive the
 * states (C API retains, threads), and the C API records and notifier calls point into
 * this library, so unloading it would leave dangling code pointers. */
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;
static void pin(void) {
    Dl_info info;
    if (dladdr((void *)&mtmsg_sync_pinmodule, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}
void mtmsg_sync_pinmodule(void) { pthread_once(&pin_once, pin); }
