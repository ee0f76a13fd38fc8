/*
 * Threads layer: atomics, mutex, condition variable, once, clocks, spinning, module
 * pinning, thread-local storage and the export macro. The only header that knows the
 * platform: no other file tests _WIN32, pthreads or C11 threads (docs/DESIGN.md, "Sync").
 *
 * LOCK ORDER (never invert): registry lock -> listener mutex -> buffer's batch mutex
 * (fmutex, standalone buffers only) -> buffer mutex. Every buffer has its own mutex,
 * listener buffers too; the exceptions are trylocks, which cannot deadlock: of the
 * listener's mutex while holding a buffer's (buffer.c, unlock_sync), and of a buffer's
 * fmutex while holding its mutex (buffer.c, mtmsg_buffer_take). No lock is held while Lua
 * code runs, while a Lua error may be raised, or while a foreign notifier is called.
 *
 * Backends, chosen here at build time (each can be forced with -D...=1):
 *   threads  MTMSG_USE_PTHREAD (default off Windows), MTMSG_USE_C11THREADS,
 *            MTMSG_USE_WIN32 (default on Windows)
 *   atomics  MTMSG_USE_GCC_ATOMICS (default with GCC/Clang), MTMSG_USE_STDATOMIC
 *            (default for other C11 compilers), MTMSG_USE_INTERLOCKED (default with MSVC)
 *   MTMSG_PORTABLE_POSIX  pthreads without pthread_condattr_setclock (as on macOS): timed
 *            waits take a CLOCK_REALTIME deadline derived from the monotonic one. Also
 *            chosen by itself where <unistd.h> says the clock attribute is missing.
 * The operating-system services (clocks, CPU count, yield, pinning) follow the system:
 * Win32 on Windows (sync_win32.c), POSIX elsewhere (sync_posix.c), whatever the thread
 * API. sync.c holds what is the same everywhere (spinning, the take-loop wait).
 */
#ifndef MTMSG_SYNC_H
#define MTMSG_SYNC_H

#include <stddef.h>

/* ===== Backend selection ===== */
/* { */
#if defined(MTMSG_USE_PTHREAD) + defined(MTMSG_USE_C11THREADS) + defined(MTMSG_USE_WIN32) > 1
#error "mtmsg: define at most one of MTMSG_USE_PTHREAD, MTMSG_USE_C11THREADS, MTMSG_USE_WIN32"
#endif
#if defined(MTMSG_USE_GCC_ATOMICS) + defined(MTMSG_USE_STDATOMIC) \
    + defined(MTMSG_USE_INTERLOCKED) > 1
#error "mtmsg: define at most one of MTMSG_USE_GCC_ATOMICS, MTMSG_USE_STDATOMIC, MTMSG_USE_INTERLOCKED"
#endif

#if !defined(MTMSG_USE_PTHREAD) && !defined(MTMSG_USE_C11THREADS) && !defined(MTMSG_USE_WIN32)
#if defined(_WIN32)
#define MTMSG_USE_WIN32 1
#else
#define MTMSG_USE_PTHREAD 1
#endif
#endif

#if !defined(MTMSG_USE_GCC_ATOMICS) && !defined(MTMSG_USE_STDATOMIC) \
    && !defined(MTMSG_USE_INTERLOCKED)
#if defined(__GNUC__) || defined(__clang__)
#define MTMSG_USE_GCC_ATOMICS 1
#elif defined(_MSC_VER)
#define MTMSG_USE_INTERLOCKED 1
#else
#define MTMSG_USE_STDATOMIC 1
#endif
#endif

#if defined(MTMSG_USE_WIN32) && !defined(_WIN32)
#error "mtmsg: MTMSG_USE_WIN32 needs a Windows target"
#endif
#if defined(MTMSG_USE_INTERLOCKED) && !defined(_WIN32)
#error "mtmsg: MTMSG_USE_INTERLOCKED needs a Windows target"
#endif
#if defined(MTMSG_USE_C11THREADS) \
    && (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L || defined(__STDC_NO_THREADS__))
#error "mtmsg: MTMSG_USE_C11THREADS needs a C11 compiler (-std=c11) and <threads.h>"
#endif
#if defined(MTMSG_USE_STDATOMIC) \
    && (!defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L || defined(__STDC_NO_ATOMICS__))
#error "mtmsg: MTMSG_USE_STDATOMIC needs a C11 compiler (-std=c11) and <stdatomic.h>"
#endif
#if defined(MTMSG_USE_GCC_ATOMICS) && !defined(__GNUC__) && !defined(__clang__)
#error "mtmsg: MTMSG_USE_GCC_ATOMICS needs GCC or Clang"
#endif
#if defined(MTMSG_PORTABLE_POSIX) && !defined(MTMSG_USE_PTHREAD)
#error "mtmsg: MTMSG_PORTABLE_POSIX applies to the pthread backend only"
#endif
/* } */

/* ===== Platform macros: export, thread-local storage ===== */
/* Only luaopen_mtmsg is exported (the build hides everything else). */
#if defined(_WIN32)
#define MTMSG_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define MTMSG_API __attribute__((visibility("default")))
#else
#define MTMSG_API
#endif

/* Storage class of per-thread variables. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define MTMSG_THREAD_LOCAL _Thread_local
#elif defined(__GNUC__) || defined(__clang__)
#define MTMSG_THREAD_LOCAL __thread
#elif defined(_MSC_VER)
#define MTMSG_THREAD_LOCAL __declspec(thread)
#else
#error "mtmsg: no thread-local storage class known for this compiler"
#endif

/* ===== Thread backend types ===== */
/* { */
#if defined(MTMSG_USE_PTHREAD)
#include <pthread.h>
typedef pthread_mutex_t MtMutex;
typedef pthread_cond_t MtCond;
typedef pthread_once_t MtOnce;
#define MTMSG_ONCE_INIT PTHREAD_ONCE_INIT
#if defined(MTMSG_PORTABLE_POSIX)
#define MTMSG_THREAD_BACKEND "pthread (portable: realtime condvar deadlines)"
#else
#define MTMSG_THREAD_BACKEND "pthread"
#endif
/* }{ */
#elif defined(MTMSG_USE_C11THREADS)
#include <threads.h>
typedef mtx_t MtMutex;
typedef cnd_t MtCond;
typedef once_flag MtOnce;
#define MTMSG_ONCE_INIT ONCE_FLAG_INIT
#define MTMSG_THREAD_BACKEND "c11-threads"
/* }{ */
#else
/* SRWLOCK, CONDITION_VARIABLE and INIT_ONCE are each one pointer; sync_win32.c casts
 * (and checks the sizes), so that users of this header need no <windows.h>. */
typedef struct MtMutex { void *p; } MtMutex;
typedef struct MtCond { void *p; } MtCond;
typedef struct MtOnce { void *p; } MtOnce;
#define MTMSG_ONCE_INIT {0}
#define MTMSG_THREAD_BACKEND "win32"
#endif
/* } */

/* A failed sync primitive is a bug, not a Lua error: print and abort. */
void mtmsg_sync_abort(int rc, const char *file, int line);

/* Keeps this module loaded until the process ends (see sync_posix.c, sync_win32.c). */
void mtmsg_sync_pinmodule(void);

/* Runs f exactly once per process, whichever thread calls first; others wait for it. */
void mtmsg_once(MtOnce *o, void (*f)(void));

void mtmsg_mutex_init(MtMutex *m);
void mtmsg_mutex_destroy(MtMutex *m);
void mtmsg_mutex_lock(MtMutex *m);         /* three quick tries (more than one CPU), then blocks */
int  mtmsg_mutex_trylock(MtMutex *m);      /* 1 when acquired, 0 when busy */
void mtmsg_mutex_unlock(MtMutex *m);
void mtmsg_mutex_lockwait(MtMutex *m);     /* backend: blocks at once (no spin) */

void mtmsg_cond_init(MtCond *c);
void mtmsg_cond_destroy(MtCond *c);
void mtmsg_cond_wait(MtCond *c, MtMutex *m);
/* Waits until signalled or until the monotonic clock reaches `deadline` (seconds,
 * as from mtmsg_clock_mono), however the backend measures time. Returns 0 on timeout
 * (the monotonic deadline has passed), 1 otherwise (maybe spurious: loop on the predicate). */
int  mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline);
void mtmsg_cond_signal(MtCond *c);
void mtmsg_cond_broadcast(MtCond *c);

double mtmsg_clock_mono(void);             /* monotonic seconds, for deadlines */
double mtmsg_clock_wall(void);             /* wall-clock seconds since the epoch */
unsigned long long mtmsg_clock_ns(void);   /* monotonic nanoseconds */
/* For backends whose timed waits take another clock: how many seconds are left until
 * the monotonic `deadline`, capped at MTMSG_WAIT_CHUNK_S (a longer wait then returns
 * early, as a spurious wakeup, and the caller loops); <= 0 when it has passed. */
#define MTMSG_WAIT_CHUNK_S 1e7      /* keeps absolute times inside a 32-bit time_t */
double mtmsg_clock_left(double deadline);

int  mtmsg_sync_ncpu(void);                /* online CPUs, at least 1 */
void mtmsg_sync_yield(void);               /* gives the CPU to another runnable thread */

/* ===== Wake-up descriptors (sync_posix.c, sync_win32.c) =====
 * A file descriptor that event loops can poll, readable while its owner says "on".
 * Linux: one eventfd (EFD_NONBLOCK | EFD_CLOEXEC); other POSIX systems and the
 * MTMSG_PORTABLE_POSIX build: a pipe, both ends O_NONBLOCK and FD_CLOEXEC (define
 * MTMSG_WAKE_PIPE to force it on Linux); Windows: not supported (open fails). The
 * owner keeps `on` and calls mtmsg_wake_set with its own lock held, so that the
 * descriptor's level follows the owner's state in the same order as the state
 * changes: a change of level costs one non-blocking read or write that cannot block
 * or raise; no change costs nothing. */
typedef struct MtWake {
    int rfd, wfd;           /* read end (what loops poll) and write end; one eventfd: equal */
    int open;               /* 0 until mtmsg_wake_open succeeded */
    int on;                 /* the descriptor is signalled (readable) */
} MtWake;
#define MTMSG_WAKE_OK          0
#define MTMSG_WAKE_NOFILES     1    /* out of file descriptors (process or system) */
#define MTMSG_WAKE_UNSUPPORTED 2    /* not on this platform */
#define MTMSG_WAKE_FAILED      3    /* another failure */
/* Opens a descriptor pair into *w (off); MTMSG_WAKE_OK or another code above. */
int  mtmsg_wake_open(MtWake *w);
/* Makes the descriptor readable (on) or drains it (off): one system call. */
void mtmsg_wake_write(MtWake *w, int on);
/* Closes the descriptors of an open *w (the owner is being freed). */
void mtmsg_wake_close(MtWake *w);
/* With the owner's lock held: the descriptor readable exactly when `on`. */
static inline void mtmsg_wake_set(MtWake *w, int on) {
    if (on != w->on) {
        w->on = on;
        mtmsg_wake_write(w, on);
    }
}

/* ===== Atomics ===== */
/* Sequentially consistent unless the comment says otherwise; MtAtomic is a size_t. */
/* { */
#if defined(MTMSG_USE_GCC_ATOMICS)
#define MTMSG_ATOMIC_BACKEND "gcc-atomic-builtins"
typedef size_t MtAtomic;
static inline size_t mtmsg_atomic_load(const MtAtomic *a) {           /* acquire */
    return __atomic_load_n(a, __ATOMIC_ACQUIRE);
}
static inline void mtmsg_atomic_store(MtAtomic *a, size_t v) {        /* release */
    __atomic_store_n(a, v, __ATOMIC_RELEASE);
}
static inline size_t mtmsg_atomic_inc(MtAtomic *a) {       /* acq_rel; returns the new value */
    return __atomic_add_fetch(a, 1, __ATOMIC_ACQ_REL);
}
static inline size_t mtmsg_atomic_dec(MtAtomic *a) {       /* acq_rel; returns the new value */
    return __atomic_sub_fetch(a, 1, __ATOMIC_ACQ_REL);
}
/* One more on a counter that is only written with its owner's lock held (release). */
static inline void mtmsg_atomic_bump_locked(MtAtomic *a) {
    __atomic_store_n(a, __atomic_load_n(a, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}
/* Replaces *a by `desired` if it equals *expected; else loads *a into *expected. */
static inline int mtmsg_atomic_cas(MtAtomic *a, size_t *expected, size_t desired) {
    return __atomic_compare_exchange_n(a, expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
/* }{ */
#elif defined(MTMSG_USE_STDATOMIC)
#include <stdatomic.h>
#define MTMSG_ATOMIC_BACKEND "c11-stdatomic"
typedef _Atomic size_t MtAtomic;
static inline size_t mtmsg_atomic_load(const MtAtomic *a) {
    return atomic_load_explicit(a, memory_order_acquire);
}
static inline void mtmsg_atomic_store(MtAtomic *a, size_t v) {
    atomic_store_explicit(a, v, memory_order_release);
}
static inline size_t mtmsg_atomic_inc(MtAtomic *a) {
    return atomic_fetch_add_explicit(a, 1, memory_order_acq_rel) + 1;
}
static inline size_t mtmsg_atomic_dec(MtAtomic *a) {
    return atomic_fetch_sub_explicit(a, 1, memory_order_acq_rel) - 1;
}
static inline void mtmsg_atomic_bump_locked(MtAtomic *a) {
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + 1,
                          memory_order_release);
}
static inline int mtmsg_atomic_cas(MtAtomic *a, size_t *expected, size_t desired) {
    return atomic_compare_exchange_strong_explicit(a, expected, desired,
                                                   memory_order_acq_rel, memory_order_acquire);
}
/* }{ */
#else   /* MTMSG_USE_INTERLOCKED: the compiler intrinsics, all full barriers */
#include <intrin.h>
#define MTMSG_ATOMIC_BACKEND "win32-interlocked"
typedef size_t MtAtomic;
#if defined(_WIN64)
typedef __int64 MtIlk;
#define MTMSG_ILK_CAS _InterlockedCompareExchange64
#define MTMSG_ILK_INC _InterlockedIncrement64
#define MTMSG_ILK_DEC _InterlockedDecrement64
#define MTMSG_ILK_XCHG _InterlockedExchange64
#else
typedef long MtIlk;
#define MTMSG_ILK_CAS _InterlockedCompareExchange
#define MTMSG_ILK_INC _InterlockedIncrement
#define MTMSG_ILK_DEC _InterlockedDecrement
#define MTMSG_ILK_XCHG _InterlockedExchange
#endif
typedef char mtmsg_ilk_size_check[sizeof(MtIlk) == sizeof(size_t) ? 1 : -1];
/* The address as the intrinsics' type; the step through size_t (pointer-sized on
 * Windows) drops a const that only mtmsg_atomic_load's compare-exchange sees, which
 * never changes the value. */
#define MTMSG_ILK(a) ((volatile MtIlk *)(size_t)(a))
static inline size_t mtmsg_atomic_load(const MtAtomic *a) {
    return (size_t)MTMSG_ILK_CAS(MTMSG_ILK(a), 0, 0);      /* stores 0 only over 0 */
}
static inline void mtmsg_atomic_store(MtAtomic *a, size_t v) {
    MTMSG_ILK_XCHG(MTMSG_ILK(a), (MtIlk)v);
}
static inline size_t mtmsg_atomic_inc(MtAtomic *a) { return (size_t)MTMSG_ILK_INC(MTMSG_ILK(a)); }
static inline size_t mtmsg_atomic_dec(MtAtomic *a) { return (size_t)MTMSG_ILK_DEC(MTMSG_ILK(a)); }
static inline void mtmsg_atomic_bump_locked(MtAtomic *a) { MTMSG_ILK_INC(MTMSG_ILK(a)); }
static inline int mtmsg_atomic_cas(MtAtomic *a, size_t *expected, size_t desired) {
    size_t old = (size_t)MTMSG_ILK_CAS(MTMSG_ILK(a), (MtIlk)desired, (MtIlk)*expected);
    if (old == *expected) return 1;
    *expected = old;
    return 0;
}
#endif
/* } */

/* ===== Spinning and the take-loop wait (sync.c) ===== */

/* Bounded spinning before a condition wait (see mtmsg_spin). */
typedef struct MtSpin {
    unsigned budget_ns;     /* current spin limit; adapts between a floor and a ceiling */
} MtSpin;
#define MTMSG_SPIN_INIT_NS 20000u
void mtmsg_spin_init(MtSpin *s);

/* Waits, without a lock and without sleeping, until *seq differs from `seen`, for at
 * most the budget in *s (and at most max_s seconds when max_s >= 0); *t0 gets the
 * start time. Returns 1 if *seq changed. Never spins on a single CPU, with the
 * environment variable MTMSG_NOSPIN set, or while ncpu other threads spin (sync.c). */
int mtmsg_spin(const MtSpin *s, const MtAtomic *seq, size_t seen, double max_s,
               unsigned long long *t0);
/* After a take that spun (from t0 on): adapts the budget to the time it waited. */
void mtmsg_spin_learn(MtSpin *s, unsigned long long t0);

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

/* One pause of a spin loop. */
#if defined(_WIN32)
void mtmsg_cpu_relax(void);                /* YieldProcessor (sync_win32.c) */
#else
static inline void mtmsg_cpu_relax(void) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && (defined(__aarch64__) || defined(__arm__))
    __asm__ __volatile__("yield" ::: "memory");
#endif
}
#endif

#endif
