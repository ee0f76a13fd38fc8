/*
 * Windows parts of sync.h. Always on Windows: clocks (QueryPerformanceCounter; the
 * precise system time where the SDK targets Windows 8+), CPU count, yield, cpu relax,
 * module pinning and the (unsupported) wake-up descriptors. With MTMSG_USE_WIN32 also
 * the thread backend: SRWLOCK, CONDITION_VARIABLE (timed waits in milliseconds toward
 * the monotonic deadline) and InitOnceExecuteOnce.
 */
#if defined(_WIN32)
/* { */
#if !defined(WIN32_LEAN_AND_MEAN)
#define WIN32_LEAN_AND_MEAN 1
#endif
#include <windows.h>

#include "sync.h"

/* ===== Operating-system services ===== */

static LARGE_INTEGER qpc_freq;              /* ticks per second; constant after boot */
static MtOnce qpc_once = MTMSG_ONCE_INIT;
static void qpc_init(void) { QueryPerformanceFrequency(&qpc_freq); }

static unsigned long long qpc_ticks(void) {
    LARGE_INTEGER t;
    mtmsg_once(&qpc_once, qpc_init);
    QueryPerformanceCounter(&t);
    return (unsigned long long)t.QuadPart;
}

double mtmsg_clock_mono(void) {
    return (double)qpc_ticks() / (double)qpc_freq.QuadPart;
}

unsigned long long mtmsg_clock_ns(void) {
    unsigned long long t = qpc_ticks(), f = (unsigned long long)qpc_freq.QuadPart;
    return t / f * 1000000000ull + t % f * 1000000000ull / f;   /* no overflow */
}

/* FILETIME counts 100 ns since 1601-01-01; the Unix epoch is 11644473600 s later. */
double mtmsg_clock_wall(void) {
    FILETIME ft;
    ULARGE_INTEGER u;
#if defined(_WIN32_WINNT) && _WIN32_WINNT >= 0x0602
    GetSystemTimePreciseAsFileTime(&ft);
#else
    GetSystemTimeAsFileTime(&ft);
#endif
    u.LowPart = ft.dwLowDateTime;
    u.HighPart = ft.dwHighDateTime;
    return (double)(u.QuadPart - 116444736000000000ull) * 1e-7;
}

int mtmsg_sync_ncpu(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 1 ? (int)si.dwNumberOfProcessors : 1;
}

void mtmsg_sync_yield(void) { SwitchToThread(); }

void mtmsg_cpu_relax(void) { YieldProcessor(); }

/* Once per process: pins this DLL (it stays loaded until the process ends), for the
 * same reason as the POSIX RTLD_NODELETE (see sync_posix.c). */
static const char pin_anchor = 0;           /* an address inside this module */
static MtOnce pin_once = MTMSG_ONCE_INIT;
static void pin(void) {
    HMODULE h;
    GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_PIN | GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
                       (LPCWSTR)(const void *)&pin_anchor, &h);
}
void mtmsg_sync_pinmodule(void) { mtmsg_once(&pin_once, pin); }

/* Wake-up descriptors: not supported on Windows (a socket pair or an event HANDLE
 * would be the candidates; neither is what the Lua event loops there poll). */
int mtmsg_wake_open(MtWake *w) { (void)w; return MTMSG_WAKE_UNSUPPORTED; }
void mtmsg_wake_write(MtWake *w, int on) { (void)w; (void)on; }
void mtmsg_wake_close(MtWake *w) { w->open = 0; }

/* ===== Thread backend ===== */
#if defined(MTMSG_USE_WIN32)
/* { */
typedef char srw_size_check[sizeof(SRWLOCK) == sizeof(MtMutex) ? 1 : -1];
typedef char cv_size_check[sizeof(CONDITION_VARIABLE) == sizeof(MtCond) ? 1 : -1];
typedef char once_size_check[sizeof(INIT_ONCE) == sizeof(MtOnce) ? 1 : -1];
#define SRW(m) ((PSRWLOCK)(void *)(m))
#define CV(c) ((PCONDITION_VARIABLE)(void *)(c))

typedef struct OnceCall { void (*f)(void); } OnceCall;
static BOOL CALLBACK once_run(PINIT_ONCE o, PVOID param, PVOID *ctx) {
    (void)o; (void)ctx;
    ((OnceCall *)param)->f();
    return TRUE;
}
void mtmsg_once(MtOnce *o, void (*f)(void)) {
    OnceCall call;
    call.f = f;
    if (!InitOnceExecuteOnce((PINIT_ONCE)(void *)o, once_run, &call, NULL))
        mtmsg_sync_abort((int)GetLastError(), __FILE__, __LINE__);
}

void mtmsg_mutex_init(MtMutex *m) { InitializeSRWLock(SRW(m)); }
void mtmsg_mutex_destroy(MtMutex *m) { (void)m; }      /* SRW locks hold no resources */
void mtmsg_mutex_lockwait(MtMutex *m) { AcquireSRWLockExclusive(SRW(m)); }
void mtmsg_mutex_unlock(MtMutex *m) { ReleaseSRWLockExclusive(SRW(m)); }
int mtmsg_mutex_trylock(MtMutex *m) { return TryAcquireSRWLockExclusive(SRW(m)) != 0; }

void mtmsg_cond_init(MtCond *c) { InitializeConditionVariable(CV(c)); }
void mtmsg_cond_destroy(MtCond *c) { (void)c; }
void mtmsg_cond_signal(MtCond *c) { WakeConditionVariable(CV(c)); }
void mtmsg_cond_broadcast(MtCond *c) { WakeAllConditionVariable(CV(c)); }

static int cond_sleep(MtCond *c, MtMutex *m, DWORD ms) {      /* 0: timed out */
    if (SleepConditionVariableSRW(CV(c), SRW(m), ms, 0)) return 1;
    if (GetLastError() != ERROR_TIMEOUT) mtmsg_sync_abort((int)GetLastError(), __FILE__, __LINE__);
    return 0;
}

void mtmsg_cond_wait(MtCond *c, MtMutex *m) { cond_sleep(c, m, INFINITE); }

int mtmsg_cond_waituntil(MtCond *c, MtMutex *m, double deadline) {
    double left = mtmsg_clock_left(deadline);
    if (left <= 0) return 0;
    /* rounded up to whole milliseconds, so that a timeout means the deadline passed;
     * MTMSG_WAIT_CHUNK_S keeps it below INFINITE */
    if (!cond_sleep(c, m, (DWORD)(left * 1000.0) + 1)) return mtmsg_clock_mono() < deadline;
    return 1;
}
/* } */
#endif
/* } */
#else
typedef int mtmsg_sync_win32_unused;        /* ISO C wants a declaration per file */
#endif
