/*
 * C11 <threads.h> backend of sync.h: mtx_t, cnd_t, call_once. cnd_timedwait takes a
 * TIME_UTC (wall-clock) deadline: it is computed from the monotonic time left, and a
 * timeout counts only once the monotonic deadline has passed.
 */
#include "sync.h"

#if defined(MTMSG_USE_C11THREADS)
/* { */
#include <math.h>
#include <time.h>

/* ThreadSanitizer intercepts pthread_mutex_lock but (up to LLVM 14 at least) not
 * mtx_lock, which glibc implements with internal calls: each operation is announced
 * through the sanitizer's mutex annotations, or every guarded access is a "race". */
#if defined(__SANITIZE_THREAD__)
#define TSAN_ANNOTATE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_ANNOTATE 1
#endif
#endif
#if defined(TSAN_ANNOTATE)
#include <sanitizer/tsan_interface.h>
#define TSAN_CREATE(m) __tsan_mutex_create((m), __tsan_mutex_not_static)
#define TSAN_DESTROY(m) __tsan_mutex_destroy((m), __tsan_mutex_not_static)
#define TSAN_PRE_LOCK(m, f) __tsan_mutex_pre_lock((m), (f))
#define TSAN_POST_LOCK(m, f) __tsan_mutex_post_lock((m), (f), 0)
#define TSAN_PRE_UNLOCK(m) __tsan_mutex_pre_unlock((m), 0)
#define TSAN_POST_UNLOCK(m) __tsan_mutex_post_unlock((m), 0)
#define TSAN_TRY __tsan_mutex_try_lock
#define TSAN_TRY_FAILED (__tsan_mutex_try_lock | __tsan_mutex_try_lock_failed)
#else
#define TSAN_CREATE(m) ((void)0)
#define TSAN_DESTROY(m) ((void)0)
#define TSAN_PRE_LOCK(m, f) ((void)0)
#define TSAN_POST_LOCK(m, f) ((void)0)
#define TSAN_PRE_UNLOCK(m) ((void)0)
#define TSAN_POST_UNLOCK(m) ((void)0)
#define TSAN_TRY 0
#define TSAN_TRY_FAILED 0
#endif

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != thrd_success) mtmsg_sync_abort(rc_, __FILE__, __LINE__); } while (0)

void mtmsg_once(MtOnce *o, void (*f)(void)) { call_once(o, f); }

void mtmsg_mutex_init(MtMutex *m) { CHECK(mtx_init(m, mtx_plain)); TSAN_CREATE(m); }
void mtmsg_mutex_destroy(MtMutex *m) { TSAN_DESTROY(m); mtx_destroy(m); }
void mtmsg_mutex_lockwait(MtMutex *m) {
    TSAN_PRE_LOCK(m, 0);
    CHECK(mtx_lock(m));
    TSAN_POST_LOCK(m, 0);
}
void mtmsg_mutex_unlock(MtMutex *m) {
    TSAN_PRE_UNLOCK(m);
    CHECK(mtx_unlock(m));
    TSAN_POST_UNLOCK(m);
}
int mtmsg_mutex_trylock(MtMutex *m) {
    int rc;
    TSAN_PRE_LOCK(m, TSAN_TRY);
    rc = mtx_trylock(m);
    if (rc == thrd_busy) {
        TSAN_POST_LOCK(m, TSAN_TRY_FAILED);
        return 0;
    }
    CHECK(rc);
    TSAN_POST_LOCK(m, TSAN_TRY);
    return 1;
}

/* A condition wait releases m and takes it again: told to the sanitizer as an unlock
 * before the wait and a lock after it (the real ones happen inside). */
static int cond_wait(MtCond *c, MtMutex *m, const struct timespec *ts) {
    int rc;
    TSAN_PRE_UNLOCK(m);
    TSAN_POST_UNLOCK(m);
    rc = ts ? cnd_timedwait(c, m, ts) : cnd_wait(c, m);
    TSAN_PRE_LOCK(m, 0);
    TSAN_POST_LOCK(m, 0);
    return rc;
}

void mtmsg_cond_init(MtCond *c) { CHECK(cnd_init(c)); }
void mtmsg_cond_destroy(MtCond *c) { cnd_destroy(c); }
void mtmsg_cond_wait(MtCond *c, MtMutex *m) { CHECK(cond_wait(c, m, NULL)); }
void mtmsg_cond_signal(MtCond *c) { CHECK(cnd_signal(c)); }
void mtmsg_cond_broadcast(MtCond *c) { CHECK(cnd_broadcast(c)); }

int mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline) {
    struct timespec ts;
    double left = mtmsg_clock_left(deadline), at, secs;
    int rc;
    if (left <= 0) return 0;
    if (timespec_get(&ts, TIME_UTC) != TIME_UTC) mtmsg_sync_abort(0, __FILE__, __LINE__);
    at = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + left;
    secs = floor(at);
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((at - secs) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000L; }
    rc = cond_wait(c, m, &ts);
    if (rc == thrd_timedout) return mtmsg_clock_mono() < deadline;  /* 0 once it has passed */
    CHECK(rc);
    return 1;
}
/* } */
#else
typedef int mtmsg_sync_c11_unused;          /* ISO C wants a declaration per file */
#endif
