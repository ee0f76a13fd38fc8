/*
 * POSIX operating-system services of sync.h (every system but Windows, whatever the
 * thread backend): clocks, CPU count, yield, module pinning. Only POSIX calls, except
 * dladdr and RTLD_NODELETE for pinning, which each libc shows under its own feature
 * macro (below); without them the module is not pinned (MTMSG_NO_PIN forces that).
 */
#if !defined(_WIN32)
/* { */
#if !defined(MTMSG_NO_PIN)
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE 1          /* dladdr, Dl_info despite _POSIX_C_SOURCE */
#elif defined(__linux__) || defined(__CYGWIN__) || defined(__GNU__)
#define _GNU_SOURCE 1               /* glibc and musl: dladdr, Dl_info, RTLD_NODELETE */
#elif defined(__NetBSD__)
#define _NETBSD_SOURCE 1
#elif defined(__FreeBSD__) || defined(__DragonFly__) || defined(__OpenBSD__)
#undef _POSIX_C_SOURCE              /* their dladdr needs __BSD_VISIBLE: the full namespace */
#endif
#endif

#include "sync.h"

#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#if !defined(MTMSG_NO_PIN)
#include <dlfcn.h>
#endif

#define CHECK(rc) do { int rc_ = (rc); if (rc_ != 0) mtmsg_sync_abort(errno, __FILE__, __LINE__); } while (0)

static double clock_read(clockid_t id) {
    struct timespec ts;
    CHECK(clock_gettime(id, &ts));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double mtmsg_clock_mono(void) { return clock_read(CLOCK_MONOTONIC); }
double mtmsg_clock_wall(void) { return clock_read(CLOCK_REALTIME); }

unsigned long long mtmsg_clock_ns(void) {
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &ts));
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

int mtmsg_sync_ncpu(void) {
#if defined(_SC_NPROCESSORS_ONLN)   /* not POSIX, but Linux, macOS and the BSDs have it */
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c > 1 ? (int)c : 1;
#else
    return 2;                       /* unknown: assume spinning can pay */
#endif
}

void mtmsg_sync_yield(void) { sched_yield(); }

/* Once per process: opens our own shared object again with RTLD_NODELETE, so that it
 * stays mapped after every lua_State that loaded it is closed. Buffers can outlive the
 * states (C API retains, threads), and the C API records and notifier calls point into
 * this library, so unloading it would leave dangling code pointers. */
static const char pin_anchor = 0;   /* an address inside this module */
static MtOnce pin_once = MTMSG_ONCE_INIT;
static void pin(void) {
#if !defined(MTMSG_NO_PIN) && defined(RTLD_NODELETE)
    Dl_info info;
    if (dladdr(&pin_anchor, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
#endif
}
void mtmsg_sync_pinmodule(void) { mtmsg_once(&pin_once, pin); }
/* } */
#else
typedef int mtmsg_sync_posix_unused;        /* ISO C wants a declaration per file */
#endif
