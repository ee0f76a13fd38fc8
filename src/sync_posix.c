/*
 * POSIX operating-system services of sync.h (every system but Windows, whatever the
 * thread backend): clocks, CPU count, yield, module pinning. Only POSIX calls, except
 * dladdr and RTLD_NODELETE for pinning, which each libc shows under its own feature
 * macro (below); without them the module is not pinned (MTMSG_NO_PIN forces that).
 * Also the wake-up descriptors of sync.h: an eventfd on Linux, a pipe elsewhere.
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
#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#if !defined(MTMSG_NO_PIN)
#include <dlfcn.h>
#endif

/* The eventfd unless the build asks for the portable pipe. */
#if defined(__linux__) && !defined(MTMSG_PORTABLE_POSIX) && !defined(MTMSG_WAKE_PIPE)
#define WAKE_EVENTFD 1
#include <stdint.h>
#include <sys/eventfd.h>
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

/* ===== Wake-up descriptors ===== */

static int wake_code(int err) {
    return err == EMFILE || err == ENFILE ? MTMSG_WAKE_NOFILES : MTMSG_WAKE_FAILED;
}

#if !defined(WAKE_EVENTFD)
static int set_flags(int fd) {      /* O_NONBLOCK and FD_CLOEXEC; 0 on success */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -1;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) return -1;
    return 0;
}
#endif

int mtmsg_wake_open(MtWake *w) {
#if defined(WAKE_EVENTFD)
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return wake_code(errno);
    w->rfd = w->wfd = fd;
#else
    int fds[2];
    if (pipe(fds) != 0) return wake_code(errno);
    /* a fork+exec in another thread between pipe and fcntl may inherit them: POSIX
     * before 2024 has no pipe2 */
    if (set_flags(fds[0]) != 0 || set_flags(fds[1]) != 0) {
        int err = errno;
        close(fds[0]);
        close(fds[1]);
        return wake_code(err);
    }
    w->rfd = fds[0];
    w->wfd = fds[1];
#endif
    w->open = 1;
    w->on = 0;
    return MTMSG_WAKE_OK;
}

/* Errors are ignored: EAGAIN means the level is already there (a full counter or pipe),
 * and the descriptors are ours: anything else means someone closed them, which only
 * loses the wake-ups of that misuse. */
void mtmsg_wake_write(MtWake *w, int on) {
#if defined(WAKE_EVENTFD)
    uint64_t v = 1;
    ssize_t r;
    do r = on ? write(w->wfd, &v, sizeof v) : read(w->rfd, &v, sizeof v);
    while (r < 0 && errno == EINTR);
#else
    char c[16] = {0};
    ssize_t r;
    if (on) {
        do r = write(w->wfd, c, 1);
        while (r < 0 && errno == EINTR);
    } else {
        do r = read(w->rfd, c, sizeof c);           /* one byte at most is there */
        while (r > 0 || (r < 0 && errno == EINTR));
    }
#endif
}

void mtmsg_wake_close(MtWake *w) {
    if (!w->open) return;
    close(w->rfd);
    if (w->wfd != w->rfd) close(w->wfd);
    w->open = 0;
}
/* } */
#else
typedef int mtmsg_sync_posix_unused;        /* ISO C wants a declaration per file */
#endif
