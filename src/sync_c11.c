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

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != thrd_success) mtmsg_sync_abort(rc_, __FILE__, __LINE__); } while (0)

void mtmsg_once(MtOnce *o, void (*f)(void)) { call_once(o, f); }

void mtmsg_mutex_init(MtMutex *m) { CHECK(mtx_init(m, mtx_plain)); }
void mtmsg_mutex_destroy(MtMutex *m) { mtx_destroy(m); }
void mtmsg_mutex_lockwait(MtMutex *m) { CHECK(mtx_lock(m)); }
void mtmsg_mutex_unlock(MtMutex *m) { CHECK(mtx_unlock(m)); }
int mtmsg_mutex_trylock(MtMutex *m) {
    int rc = mtx_trylock(m);
    if (rc == thrd_busy) return 0;
    CHECK(rc);
    return 1;
}

void mtmsg_cond_init(MtCond *c) { CHECK(cnd_init(c)); }
void mtmsg_cond_destroy(MtCond *c) { cnd_destroy(c); }
void mtmsg_cond_wait(MtCond *c, MtMutex *m) { CHECK(cnd_wait(c, m)); }
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
    rc = cnd_timedwait(c, m, &ts);
    if (rc == thrd_timedout) return mtmsg_clock_mono() < deadline;  /* 0 once it has passed */
    CHECK(rc);
    return 1;
}
/* } */
#else
typedef int mtmsg_sync_c11_unused;          /* ISO C wants a declaration per file */
#endif
