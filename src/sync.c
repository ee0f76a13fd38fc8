/*
 * The parts of the threads layer (sync.h) that are the same on every backend: the
 * abort path, the quick lock tries of mtmsg_mutex_lock, bounded adaptive spinning
 * and the take-loop wait. Backends: sync_pthread.c, sync_c11.c, sync_win32.c (threads),
 * sync_posix.c, sync_win32.c (clocks, CPU count, yield, pinning).
 */
#include "sync.h"

#include <stdio.h>
#include <stdlib.h>

/* ===== Whether to spin at all =====
 * Spinning pays only with a second CPU; the environment variable MTMSG_NOSPIN (set and
 * not "0", read once per process) turns every spin off: the lock spin, the take-loop
 * spin and the waiting sender's spin (for comparisons, and for machines where every
 * CPU is busy anyway). spin_ncpu is 0 until known, then the CPU count, or 1 when
 * spinning is off. */
static MtAtomic spin_ncpu;

static size_t spin_cpus(void) {
    size_t n = mtmsg_atomic_load(&spin_ncpu);
    if (n == 0) {                   /* racy first use: every thread computes the same */
        const char *e = getenv("MTMSG_NOSPIN");
        n = (e && *e && !(e[0] == '0' && e[1] == '\0')) ? 1 : (size_t)mtmsg_sync_ncpu();
        if (n == 0) n = 1;
        mtmsg_atomic_store(&spin_ncpu, n);
    }
    return n;
}

/* ===== Oversubscription: at most ncpu spinners =====
 * A spinner helps only while the thread it waits for runs on another CPU. Threads that
 * spin right now (in a take-loop spin or a waiting sender's spin) are
 * counted; when ncpu of them spin already, the next one blocks at once instead. With
 * more threads than CPUs this keeps spinners from piling up and eating the time of the
 * threads they wait for; a pair of threads on two CPUs (producer/consumer, ping-pong,
 * where both may spin for a moment at a hand-over) spins as before. (ncpu - 1 places
 * would make one side of a ping-pong sleep at almost every hand-over.) One load when
 * the places are taken, an increment and a decrement around each spin otherwise. */
static MtAtomic spinners;

static int spin_enter(void) {
    size_t n = spin_cpus();
    if (n < 2 || mtmsg_atomic_load(&spinners) >= n) return 0;
    if (mtmsg_atomic_inc(&spinners) <= n) return 1;
    mtmsg_atomic_dec(&spinners);            /* lost a race for the last place */
    return 0;
}

static void spin_leave(void) { mtmsg_atomic_dec(&spinners); }

void mtmsg_sync_abort(int rc, const char *file, int line) {
    fprintf(stderr, "mtmsg: fatal: sync primitive failed (rc=%d) at %s:%d\n", rc, file, line);
    abort();
}

/* Critical sections are short (a memcpy of one message): when the mutex is busy, retry
 * a few times (after 1, 2 and 4 pauses) before sleeping in the kernel, so that two
 * threads that collide do not put each other to sleep (and pay a futex wake-up) on
 * every collision. Backing off matters: a failed trylock takes the lock's cache line
 * away from the owner. The tries are
 * too short to take a place among the spinners (see spin_enter: its shared counter
 * would be one more cache line moving between the threads). A longer lock spin (64
 * tries) cost more CPU per message than no spinning in the producer sweep of `make
 * bench` and was no faster (docs/BENCHMARKS.md), so there is none. */
#define LOCK_TRIES 3
void mtmsg_mutex_lock(MtMutex *m) {
    int k, j, pause = 1;
    if (mtmsg_mutex_trylock(m)) return;
    if (spin_cpus() >= 2) {
        for (k = 0; k < LOCK_TRIES; k++, pause *= 2) {
            for (j = 0; j < pause; j++) mtmsg_cpu_relax();
            if (mtmsg_mutex_trylock(m)) return;
        }
    }
    mtmsg_mutex_lockwait(m);
}

int mtmsg_mutex_acquire(MtMutex *m, int nonblock) {
    if (nonblock) return mtmsg_mutex_trylock(m);
    mtmsg_mutex_lock(m);
    return 1;
}

/* ===== Bounded adaptive spinning =====
 * A taker that finds nothing spins on the object's `seq` counter (bumped under the
 * lock whenever there is news) for a budget that adapts per object: doubled toward
 * the time a short wait actually took, halved after a long one, between 1 and 50 us.
 * After 2 us of pure spinning it yields between checks, so an oversubscribed machine
 * gets its core back. An idle waiter spins once, then sleeps on the condition. */

#define SPIN_MIN_NS 1000u
#define SPIN_PURE_NS 2000u
#if !defined(MTMSG_SPIN_MAX_NS)
#define MTMSG_SPIN_MAX_NS 50000u    /* longest spin before a condition wait */
#endif
static const unsigned spin_max_ns = MTMSG_SPIN_MAX_NS;
static const unsigned spin_pure_ns = SPIN_PURE_NS;  /* then yield between checks */

void mtmsg_spin_init(MtSpin *s) { s->budget_ns = MTMSG_SPIN_INIT_NS; }

int mtmsg_spin(const MtSpin *s, const MtAtomic *seq, size_t seen, double max_s,
               unsigned long long *t0) {
    unsigned long long limit = s->budget_ns;
    int got = 0;
    *t0 = mtmsg_clock_ns();
    if (limit > spin_max_ns)
        limit = spin_max_ns;
    if (max_s >= 0 && max_s * 1e9 < (double)limit) limit = (unsigned long long)(max_s * 1e9);
    if (limit == 0 || !spin_enter()) return 0;
    for (;;) {
        int k;
        unsigned long long dt;
        for (k = 0; k < 16; k++) {
            /* acquire: what was published before the bump is visible after the lock */
            if (mtmsg_atomic_load(seq) != seen) { got = 1; break; }
            mtmsg_cpu_relax();
        }
        if (got) break;
        dt = mtmsg_clock_ns() - *t0;
        if (dt >= limit) break;
        /* after a short pure spin, give the CPU to whoever is runnable here (maybe
         * the thread we wait for, when there are more threads than free CPUs) */
        if (dt >= spin_pure_ns) mtmsg_sync_yield();
    }
    spin_leave();
    return got;
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

double mtmsg_clock_left(double deadline) {
    double left = deadline - mtmsg_clock_mono();
    return left > MTMSG_WAIT_CHUNK_S ? MTMSG_WAIT_CHUNK_S : left;
}

/* ===== The take-loop wait ===== */

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
