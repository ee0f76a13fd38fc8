/*
 * Threads layer: atomics, mutex, condition variable, clocks. The only file that
 * knows the thread backend (POSIX threads now; C11 threads or Windows would go here).
 *
 * LOCK ORDER (never invert): registry lock -> listener mutex -> buffer mutex.
 * A buffer that belongs to a listener uses its listener's mutex, so taking the
 * "listener -> buffer" step is never needed for those. No lock is held while Lua
 * code runs, while a Lua error may be raised, or while a foreign notifier is called.
 */
#ifndef MTMSG_SYNC_H
#define MTMSG_SYNC_H

#include <stddef.h>

#if defined(_WIN32)
#error "mtmsg: Windows threads are not implemented yet (sync.c is the place to add them)"
#endif

#if !defined(MTMSG_USE_PTHREAD)
#define MTMSG_USE_PTHREAD 1
#endif

#if MTMSG_USE_PTHREAD
#include <pthread.h>
typedef pthread_mutex_t MtMutex;
typedef pthread_cond_t MtCond;
#define MTMSG_THREAD_BACKEND "pthread"
#else
#error "mtmsg: no thread backend selected"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MTMSG_ATOMIC_BACKEND "gcc-atomic-builtins"
#define MTMSG_THREAD_LOCAL __thread         /* storage class of per-thread variables */
#else
#error "mtmsg: needs GCC/Clang __atomic builtins (C11 stdatomic backend not written yet)"
#endif

/* A failed sync primitive is a bug, not a Lua error: print and abort. */
void mtmsg_sync_abort(int rc, const char *file, int line);

/* Keeps this module loaded until the process ends (see sync.c). */
void mtmsg_sync_pinmodule(void);

void mtmsg_mutex_init(MtMutex *m);
void mtmsg_mutex_destroy(MtMutex *m);
void mtmsg_mutex_lock(MtMutex *m);
int  mtmsg_mutex_trylock(MtMutex *m);      /* 1 when acquired, 0 when busy */
void mtmsg_mutex_unlock(MtMutex *m);

void mtmsg_cond_init(MtCond *c);           /* waits measure the monotonic clock */
void mtmsg_cond_destroy(MtCond *c);
void mtmsg_cond_wait(MtCond *c, MtMutex *m);
/* Waits until signalled or until the monotonic clock reaches `deadline` (seconds,
 * as from mtmsg_clock_mono). Returns 0 on timeout, 1 otherwise (maybe spurious). */
int  mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline);
void mtmsg_cond_signal(MtCond *c);
void mtmsg_cond_broadcast(MtCond *c);

double mtmsg_clock_mono(void);             /* monotonic seconds, for deadlines */
double mtmsg_clock_wall(void);             /* wall-clock seconds since the epoch */

/* Bounded spinning before a condition wait (see mtmsg_spin). */
typedef struct MtSpin {
    unsigned budget_ns;     /* current spin limit; adapts between a floor and a ceiling */
} MtSpin;
#define MTMSG_SPIN_INIT_NS 20000u
void mtmsg_spin_init(MtSpin *s);

/* Atomics, sequentially consistent unless the name says otherwise. */
typedef size_t MtAtomic;
static inline size_t mtmsg_atomic_load(const MtAtomic *a) {
    return __atomic_load_n(a, __ATOMIC_ACQUIRE);
}
static inline void mtmsg_atomic_store(MtAtomic *a, size_t v) {
    __atomic_store_n(a, v, __ATOMIC_RELEASE);
}
static inline size_t mtmsg_atomic_inc(MtAtomic *a) {       /* returns the new value */
    return __atomic_add_fetch(a, 1, __ATOMIC_ACQ_REL);
}
static inline size_t mtmsg_atomic_dec(MtAtomic *a) {       /* returns the new value */
    return __atomic_sub_fetch(a, 1, __ATOMIC_ACQ_REL);
}
/* One more on a counter that is only written with its owner's lock held. */
static inline void mtmsg_atomic_bump_locked(MtAtomic *a) {
    __atomic_store_n(a, __atomic_load_n(a, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}
/* Replaces *a by `desired` if it equals *expected; else loads *a into *expected. */
static inline int mtmsg_atomic_cas(MtAtomic *a, size_t *expected, size_t desired) {
    return __atomic_compare_exchange_n(a, expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Waits, without a lock and without sleeping, until *seq differs from `seen`, for at
 * most the budget in *s (and at most max_s seconds when max_s >= 0); *t0 gets the
 * start time. Returns 1 if *seq changed. Never spins on a single CPU. */
int mtmsg_spin(const MtSpin *s, const MtAtomic *seq, size_t seen, double max_s,
               unsigned long long *t0);
/* After a take that spun (from t0 on): adapts the budget to the time it waited. */
void mtmsg_spin_learn(MtSpin *s, unsigned long long t0);
unsigned long long mtmsg_clock_ns(void);   /* monotonic nanoseconds */

/* Locks m, or with `nonblock` only tries to: 1 when held, 0 when busy. */
int mtmsg_mutex_acquire(MtMutex *m, int nonblock);

/* The waiting part of a take loop, shared by buffers and listeners. The loop checks its
 * predicate under the mutex; when there is nothing to take it calls mtmsg_wait_locked,
 * which returns 0 once the timeout has passed (timeout 0: at once), else waits (first a
 * bounded spin with the mutex released, later on the condition variable) and returns 1:
 * look again. After the loop, mtmsg_wait_done_locked adapts the object's spin budget. */
typedef struct MtWait {
    double timeout;             /* < 0: forever; becomes 0 when the deadline has passed */
    double deadline;            /* monotonic, set when the spin starts (timeout > 0) */
    int spun;
    unsigned long long spun_at;
} MtWait;
void mtmsg_wait_init(MtWait *w, double timeout);
int  mtmsg_wait_locked(MtWait *w, MtCond *c, MtMutex *m, int *nwaiters, const MtAtomic *seq,
                       const MtSpin *spin);
void mtmsg_wait_done_locked(const MtWait *w, MtSpin *spin);

static inline void mtmsg_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

#endif
