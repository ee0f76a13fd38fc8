/*
 * POSIX threads backend of sync.h: mutex, condition variable, once. Timed waits use
 * CLOCK_MONOTONIC through pthread_condattr_setclock where the system has it, so that
 * wall-clock changes do not move deadlines; without it (macOS, MTMSG_PORTABLE_POSIX)
 * they wait on a CLOCK_REALTIME deadline computed from the monotonic time left, and
 * report a timeout only once the monotonic deadline has passed.
 */
#include "sync.h"

#if defined(MTMSG_USE_PTHREAD)
/* { */
#include <errno.h>
#include <math.h>
#include <time.h>
#include <unistd.h>                 /* _POSIX_CLOCK_SELECTION */

#if !defined(MTMSG_PORTABLE_POSIX) && defined(_POSIX_CLOCK_SELECTION) \
    && _POSIX_CLOCK_SELECTION > 0 && defined(CLOCK_MONOTONIC)
#define COND_MONOTONIC 1            /* condition variables measure CLOCK_MONOTONIC */
#else
#define COND_MONOTONIC 0            /* they measure CLOCK_REALTIME (the default) */
#endif

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != 0) mtmsg_sync_abort(rc_, __FILE__, __LINE__); } while (0)

void mtmsg_once(MtOnce *o, void (*f)(void)) { CHECK(pthread_once(o, f)); }

void mtmsg_mutex_init(MtMutex *m) { CHECK(pthread_mutex_init(m, NULL)); }
void mtmsg_mutex_destroy(MtMutex *m) { CHECK(pthread_mutex_destroy(m)); }
void mtmsg_mutex_lockwait(MtMutex *m) { CHECK(pthread_mutex_lock(m)); }
void mtmsg_mutex_unlock(MtMutex *m) { CHECK(pthread_mutex_unlock(m)); }
int mtmsg_mutex_trylock(MtMutex *m) {
    int rc = pthread_mutex_trylock(m);
    if (rc == EBUSY) return 0;
    CHECK(rc);
    return 1;
}

void mtmsg_cond_init(MtCond *c) {
#if COND_MONOTONIC
    pthread_condattr_t attr;
    CHECK(pthread_condattr_init(&attr));
    CHECK(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
    CHECK(pthread_cond_init(c, &attr));
    CHECK(pthread_condattr_destroy(&attr));
#else
    CHECK(pthread_cond_init(c, NULL));
#endif
}
void mtmsg_cond_destroy(MtCond *c) { CHECK(pthread_cond_destroy(c)); }
void mtmsg_cond_wait(MtCond *c, MtMutex *m) { CHECK(pthread_cond_wait(c, m)); }
void mtmsg_cond_signal(MtCond *c) { CHECK(pthread_cond_signal(c)); }
void mtmsg_cond_broadcast(MtCond *c) { CHECK(pthread_cond_broadcast(c)); }

int mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline) {
    struct timespec ts;
    double left = mtmsg_clock_left(deadline), at, secs;
    int rc;
    if (left <= 0) return 0;
    /* the absolute time on the condition variable's clock */
    at = (COND_MONOTONIC ? mtmsg_clock_mono() : mtmsg_clock_wall()) + left;
    secs = floor(at);
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((at - secs) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec += 1; ts.tv_nsec -= 1000000000L; }
    rc = pthread_cond_timedwait(c, m, &ts);
    if (rc == ETIMEDOUT) return mtmsg_clock_mono() < deadline;  /* 0 once it has passed */
    CHECK(rc);
    return 1;
}
/* } */
#else
typedef int mtmsg_sync_pthread_unused;      /* ISO C wants a declaration per file */
#endif
