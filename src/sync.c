/*
 * POSIX implementation of the threads layer declared in sync.h. Condition
 * variables wait on CLOCK_MONOTONIC, so wall-clock changes do not move deadlines.
 */
#define _GNU_SOURCE             /* dladdr, RTLD_NODELETE */
#include "sync.h"

#include <dlfcn.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != 0) mtmsg_sync_abort(rc_, __FILE__, __LINE__); } while (0)

void mtmsg_sync_abort(int rc, const char *file, int line) {
    fprintf(stderr, "mtmsg: fatal: sync primitive failed (rc=%d) at %s:%d\n", rc, file, line);
    abort();
}

void mtmsg_mutex_init(MtMutex *m) { CHECK(pthread_mutex_init(m, NULL)); }
void mtmsg_mutex_destroy(MtMutex *m) { CHECK(pthread_mutex_destroy(m)); }
void mtmsg_mutex_lock(MtMutex *m) { CHECK(pthread_mutex_lock(m)); }
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
