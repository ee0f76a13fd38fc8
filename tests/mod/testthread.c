/*
 * testthread: a small llthreads2-like helper for the mtmsg test suite (test-only).
 * thread.start(f, ...) runs a Lua function (or source string) with plain arguments in
 * a fresh lua_State on a new thread (POSIX threads, or Win32 threads on Windows);
 * t:join([timeout]) copies its results back.
 */
#if defined(_WIN32)
#if !defined(_WIN32_WINNT) || _WIN32_WINNT < 0x0600
#undef _WIN32_WINNT
#define _WIN32_WINNT 0x0600 /* SRW locks and condition variables: Vista and later */
#endif
#include <windows.h>
#include <process.h>
#else
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#endif
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

static const char THREAD_MT[] = "testthread.thread";

/* C stack of each thread: Lua recursion and pattern matching need more than musl's
   or a small RLIMIT_STACK's default. */
#define THREAD_STACK_SIZE (4u * 1024u * 1024u)

/* ---- Threads, locks and clocks: POSIX threads or Win32 ---------------------- */

#if defined(_WIN32)
typedef SRWLOCK TMutex;
typedef CONDITION_VARIABLE TCond;
typedef HANDLE TThread;

static int tmutex_init(TMutex *m) { InitializeSRWLock(m); return 0; }
static void tmutex_destroy(TMutex *m) { (void)m; }
static void tmutex_lock(TMutex *m) { AcquireSRWLockExclusive(m); }
static void tmutex_unlock(TMutex *m) { ReleaseSRWLockExclusive(m); }
static int tcond_init(TCond *c) { InitializeConditionVariable(c); return 0; }
static void tcond_destroy(TCond *c) { (void)c; }
static void tcond_wait(TCond *c, TMutex *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static void tcond_broadcast(TCond *c) { WakeAllConditionVariable(c); }

/* Monotonic seconds. */
static double tclock(void) { return (double)GetTickCount64() * 1e-3; }

/* Waits until signalled or until tclock() reaches deadline (maybe spuriously). */
static void tcond_waituntil(TCond *c, TMutex *m, double deadline) {
    double left = deadline - tclock();
    DWORD ms = left <= 0 ? 0 : left >= 4e6 ? 4000000000u : (DWORD)(left * 1e3) + 1;
    SleepConditionVariableSRW(c, m, ms, 0);
}
#else
typedef pthread_mutex_t TMutex;
typedef pthread_cond_t TCond;
typedef pthread_t TThread;

static int tmutex_init(TMutex *m) { return pthread_mutex_init(m, NULL); }
static void tmutex_destroy(TMutex *m) { pthread_mutex_destroy(m); }
static void tmutex_lock(TMutex *m) { pthread_mutex_lock(m); }
static void tmutex_unlock(TMutex *m) { pthread_mutex_unlock(m); }

/* A condition variable whose timed waits measure CLOCK_MONOTONIC. */
static int tcond_init(TCond *c) {
    pthread_condattr_t ca;
    int err = pthread_condattr_init(&ca);
    if (err != 0) return err;
    err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (err == 0) err = pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
    return err;
}
static void tcond_destroy(TCond *c) { pthread_cond_destroy(c); }
static void tcond_wait(TCond *c, TMutex *m) { pthread_cond_wait(c, m); }
static void tcond_broadcast(TCond *c) { pthread_cond_broadcast(c); }

/* Monotonic seconds. */
static double tclock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits until signalled or until tclock() reaches deadline (maybe spuriously). */
static void tcond_waituntil(TCond *c, TMutex *m, double deadline) {
    struct timespec ts;
    double secs = deadline > 0 ? deadline : 0;
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
    pthread_cond_timedwait(c, m, &ts);
}
#endif

/* Value tags of the serialization format (args and results); numbers and lengths are
   stored in native layout: both ends are in the same process. */
enum { TAG_NIL = 'n', TAG_FALSE = 'f', TAG_TRUE = 't', TAG_INT = 'i', TAG_NUM = 'd',
       TAG_STR = 's' };

/* A growable malloc'd byte buffer; on allocation failure `failed` is set and further
   appends are ignored. */
typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} Buf;

/* State shared between a thread object and its thread, freed by whichever drops the
   last reference. `code`, `args`, `path`, `cpath` are owned by the thread once it runs;
   `ok`, `res`, `reslen` are written once under `mu` before `done` is set. */
typedef struct {
    TMutex mu;
    TCond cv;          /* signalled (broadcast) when done becomes 1 */
    int refs;          /* 2 while both the userdata and the thread hold it */
    int done;
    int ok;            /* 1: the function returned; 0: it raised (res holds the message) */
    Buf res;           /* serialized results, or the error message as one string */
    Buf code;          /* dumped function or source text */
    Buf args;          /* serialized arguments */
    char *path, *cpath; /* package.path/cpath for the new state, or NULL to keep defaults */
} Shared;

/* The Lua userdata: s is NULL once collected. */
typedef struct {
    Shared *s;
    TThread tid;
    int reaped; /* joined (thread_reap done) */
} Thread;

/* ---- Lua version differences ------------------------------------------------ */

#if LUA_VERSION_NUM < 502
/* Sets the functions of l into the table on the top of the stack. */
static void setfuncs(lua_State *L, const luaL_Reg *l) { luaL_register(L, NULL, l); }
#else
static void setfuncs(lua_State *L, const luaL_Reg *l) { luaL_setfuncs(L, l, 0); }
#endif

#if LUA_VERSION_NUM >= 503
#define DUMP(L, w, d) lua_dump((L), (w), (d), 0)
#else
#define DUMP(L, w, d) lua_dump((L), (w), (d))
#endif

/* ---- Buffers and serialization ---------------------------------------------- */

/* Appends n bytes (sets b->failed when out of memory). */
static void buf_add(Buf *b, const void *data, size_t n) {
    if (b->failed) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;
        while (cap - b->len < n) {
            if (cap > (size_t)-1 / 2) { b->failed = 1; return; }
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_free(Buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

static void put_tag(Buf *b, char tag) { buf_add(b, &tag, 1); }

static void put_string(Buf *b, const char *str, size_t len) {
    put_tag(b, TAG_STR);
    buf_add(b, &len, sizeof len);
    buf_add(b, str, len);
}

/* Whether the value at idx can be transferred as itself (nil, boolean, number, string). */
static int is_plain(lua_State *L, int idx) {
    int t = lua_type(L, idx);
    return t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING;
}

/* Appends the value at idx; a value that is not plain is written as the string
   "<typename>". Never raises a Lua error. */
static void put_value(Buf *b, lua_State *L, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TNIL: put_tag(b, TAG_NIL); break;
    case LUA_TBOOLEAN: put_tag(b, lua_toboolean(L, idx) ? TAG_TRUE : TAG_FALSE); break;
    case LUA_TNUMBER:
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            put_tag(b, TAG_INT);
            buf_add(b, &i, sizeof i);
            break;
        }
#endif
        {
            lua_Number n = lua_tonumber(L, idx);
            put_tag(b, TAG_NUM);
            buf_add(b, &n, sizeof n);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        put_string(b, str, len);
        break;
    }
    default: {
        const char *name = luaL_typename(L, idx);
        size_t nlen = strlen(name);
        size_t len = nlen + 2;
        put_tag(b, TAG_STR);
        buf_add(b, &len, sizeof len);
        buf_add(b, "<", 1);
        buf_add(b, name, nlen);
        buf_add(b, ">", 1);
        break;
    }
    }
}

/* Pushes every value serialized in data[0..len) (a buffer written by put_value) and
   returns how many. */
static int push_values(lua_State *L, const char *data, size_t len) {
    size_t pos = 0;
    int n = 0;
    while (pos < len) {
        char tag = data[pos++];
        luaL_checkstack(L, 1, "too many values");
        switch (tag) {
        case TAG_NIL: lua_pushnil(L); break;
        case TAG_FALSE: lua_pushboolean(L, 0); break;
        case TAG_TRUE: lua_pushboolean(L, 1); break;
#if LUA_VERSION_NUM >= 503
        case TAG_INT: {
            lua_Integer i;
            memcpy(&i, data + pos, sizeof i);
            pos += sizeof i;
            lua_pushinteger(L, i);
            break;
        }
#endif
        case TAG_NUM: {
            lua_Number x;
            memcpy(&x, data + pos, sizeof x);
            pos += sizeof x;
            lua_pushnumber(L, x);
            break;
        }
        default: { /* TAG_STR */
            size_t slen;
            memcpy(&slen, data + pos, sizeof slen);
            pos += sizeof slen;
            lua_pushlstring(L, data + pos, slen);
            pos += slen;
            break;
        }
        }
        n++;
    }
    return n;
}

/* lua_Writer appending a function dump to a Buf; nonzero stops the dump on failure. */
static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
    Buf *b = ud;
    buf_add(b, p, sz);
    return b->failed;
}

/* ---- Shared state ------------------------------------------------------------- */

/* Frees s and everything it owns; no other reference may remain. */
static void shared_free(Shared *s) {
    tmutex_destroy(&s->mu);
    tcond_destroy(&s->cv);
    buf_free(&s->res);
    buf_free(&s->code);
    buf_free(&s->args);
    free(s->path);
    free(s->cpath);
    free(s);
}

/* Drops one reference to s, freeing it when it was the last. */
static void shared_release(Shared *s) {
    int last;
    tmutex_lock(&s->mu);
    last = --s->refs == 0;
    tmutex_unlock(&s->mu);
    if (last) shared_free(s);
}

/* Returns a new Shared with 2 references and everything else empty, or NULL. */
static Shared *shared_new(void) {
    Shared *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    if (tmutex_init(&s->mu) != 0) { free(s); return NULL; }
    if (tcond_init(&s->cv) != 0) {
        tmutex_destroy(&s->mu);
        free(s);
        return NULL;
    }
    s->refs = 2;
    return s;
}

/* strdup for the package paths (strdup is not C99); NULL for NULL or on failure. */
static char *dup_string(const char *str) {
    char *copy;
    size_t n;
    if (str == NULL) return NULL;
    n = strlen(str) + 1;
    copy = malloc(n);
    if (copy) memcpy(copy, str, n);
    return copy;
}

/* ---- The new thread ----------------------------------------------------------- */

/* Message handler in the child state: tostring(err) with a traceback appended. */
static int child_msgh(lua_State *L) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushvalue(L, -3);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
    return 1;
}

#if LUA_VERSION_NUM >= 502
/* For the function on the top of the stack, just loaded from a dump or source:
   lua_load put the globals into its first upvalue whatever its name; when that one is
   a named upvalue other than _ENV (debug info present), set it to nil and give the
   globals to the upvalue named _ENV, if any. The other upvalues are already nil. */
static void fix_upvalues(lua_State *L) {
    int i;
    const char *name = lua_getupvalue(L, -1, 1);
    if (name == NULL) return;
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") == 0 || !(name[0] == '_' || isalpha((unsigned char)name[0])))
        return;
    lua_pushnil(L);
    lua_setupvalue(L, -2, 1);
    for (i = 2; (name = lua_getupvalue(L, -1, i)) != NULL; i++) {
        lua_pop(L, 1);
        if (strcmp(name, "_ENV") == 0) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
            lua_setupvalue(L, -2, i);
            break;
        }
    }
}
#endif

/* Sets package[field] = value when value is not NULL. */
static void set_package_field(lua_State *L, const char *field, const char *value) {
    if (value == NULL) return;
    lua_getglobal(L, "package");
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
    lua_pop(L, 1);
}

/* Runs in a protected call in the fresh state with the Shared as light userdata:
   opens the libraries, loads and calls the code with the arguments, and returns
   true, results... or false, message. */
static int child_run(lua_State *L) {
    Shared *s = lua_touserdata(L, 1);
    int nargs;
    lua_settop(L, 0);
    luaL_openlibs(L);
    set_package_field(L, "path", s->path);
    set_package_field(L, "cpath", s->cpath);
    lua_pushcfunction(L, child_msgh); /* index 1, replaced by the status at the end */
    if (luaL_loadbuffer(L, s->code.p, s->code.len, "=testthread") != 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
#if LUA_VERSION_NUM >= 502
    fix_upvalues(L);
#endif
    nargs = push_values(L, s->args.p, s->args.len);
    lua_pushboolean(L, lua_pcall(L, nargs, LUA_MULTRET, 1) == 0);
    lua_replace(L, 1);
    return lua_gettop(L);
}

/* Replaces the results in b by the error message msg and clears *ok. */
static void set_error(Buf *b, int *ok, const char *msg) {
    buf_free(b);
    put_string(b, msg, strlen(msg));
    *ok = 0;
}

/* Body of the new thread: runs the code in a fresh state, publishes the serialized
   results in s, and drops the thread's reference. */
static void thread_run(Shared *s) {
    Buf res = {NULL, 0, 0, 0};
    int ok = 0, last;
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        set_error(&res, &ok, "testthread: cannot create a Lua state");
    } else {
        lua_pushcfunction(L, child_run);
        lua_pushlightuserdata(L, s);
        if (lua_pcall(L, 1, LUA_MULTRET, 0) == 0) {
            int i, top = lua_gettop(L);
            ok = lua_toboolean(L, 1);
            for (i = 2; i <= top; i++) put_value(&res, L, i);
        } else { /* failure outside the user's code (e.g. out of memory) */
            put_value(&res, L, -1);
        }
        if (res.failed) set_error(&res, &ok, "testthread: out of memory for the results");
        lua_close(L);
    }
    buf_free(&s->code);
    buf_free(&s->args);
    free(s->path);
    free(s->cpath);
    s->path = s->cpath = NULL;

    tmutex_lock(&s->mu);
    s->res = res;
    s->ok = ok;
    s->done = 1;
    last = --s->refs == 0;
    tcond_broadcast(&s->cv);
    tmutex_unlock(&s->mu);
    if (last) shared_free(s); /* the userdata was collected and has detached us */
}

/* ---- Starting, joining and detaching threads ------------------------------------ */

#if defined(_WIN32)
static unsigned __stdcall thread_main(void *arg) {
    thread_run(arg);
    return 0;
}

/* Starts thread_main(s) with a THREAD_STACK_SIZE stack; 0 or an errno value. */
static int thread_start(TThread *tid, Shared *s) {
    uintptr_t h = _beginthreadex(NULL, THREAD_STACK_SIZE, thread_main, s,
                                 STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (h == 0) return errno ? errno : EAGAIN;
    *tid = (HANDLE)h;
    return 0;
}
static void thread_reap(TThread tid) {
    WaitForSingleObject(tid, INFINITE);
    CloseHandle(tid);
}
static void thread_detach(TThread tid) { CloseHandle(tid); }

/* Number of logical processors (at least 1). */
static long thread_ncpu(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return (long)si.dwNumberOfProcessors;
}

/* Keeps this DLL loaded for the life of the process (see the POSIX version). */
static void pin_library(void) {
    HMODULE h;
    GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                       THREAD_MT, &h);
}
#else
static void *thread_main(void *arg) {
    thread_run(arg);
    return NULL;
}

/* Starts thread_main(s) with a THREAD_STACK_SIZE stack; 0 or an errno value. */
static int thread_start(TThread *tid, Shared *s) {
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (err == 0) {
        err = pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
        if (err == 0) err = pthread_create(tid, &attr, thread_main, s);
        pthread_attr_destroy(&attr);
    }
    return err;
}
static void thread_reap(TThread tid) { pthread_join(tid, NULL); }
static void thread_detach(TThread tid) { pthread_detach(tid); }

/* Number of online CPUs (maybe less than 1 when unknown). */
static long thread_ncpu(void) { return sysconf(_SC_NPROCESSORS_ONLN); }

/* Keeps this library mapped for the life of the process: a detached thread may still
   be running its code when the loading state is closed and dlcloses the library.
   Best effort: without it only that rare case is at risk. */
static void pin_library(void) {
    Dl_info info;
    if (dladdr(THREAD_MT, &info) != 0 && info.dli_fname != NULL)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}
#endif

/* ---- Lua API -------------------------------------------------------------------- */

/* Returns the live Thread at arg 1 (raises if it is not one or was collected). */
static Thread *check_thread(lua_State *L) {
    Thread *t = luaL_checkudata(L, 1, THREAD_MT);
    if (t->s == NULL) luaL_error(L, "thread object was collected");
    return t;
}

/* Gets package[field] as a string, or NULL; the string stays on the stack. */
static const char *get_package_field(lua_State *L, const char *field) {
    lua_getglobal(L, "package");
    if (!lua_istable(L, -1)) return NULL;
    lua_getfield(L, -1, field);
    return lua_tostring(L, -1);
}

/* thread.start(f, ...) -> thread object. f: Lua function (dumped, upvalues become nil)
   or a source string; the arguments must be nil, booleans, numbers or strings. */
static int l_start(lua_State *L) {
    int i, top = lua_gettop(L), err;
    const char *path, *cpath;
    Thread *t;
    Shared *s;

    if (lua_type(L, 1) == LUA_TFUNCTION) {
        luaL_argcheck(L, !lua_iscfunction(L, 1), 1, "Lua function expected, got C function");
    } else if (lua_type(L, 1) != LUA_TSTRING) {
        return luaL_argerror(L, 1, lua_pushfstring(L, "function or string expected, got %s",
                                                   luaL_typename(L, 1)));
    }
    for (i = 2; i <= top; i++) {
        if (!is_plain(L, i))
            return luaL_argerror(L, i, lua_pushfstring(L,
                "nil, boolean, number or string expected, got %s", luaL_typename(L, i)));
    }

    t = lua_newuserdata(L, sizeof *t);
    t->s = NULL;
    t->reaped = 1;
    luaL_getmetatable(L, THREAD_MT);
    lua_setmetatable(L, -2);
    path = get_package_field(L, "path");
    cpath = get_package_field(L, "cpath");

    s = shared_new();
    if (s == NULL) return luaL_error(L, "testthread: out of memory");
    if (lua_type(L, 1) == LUA_TFUNCTION) {
        lua_pushvalue(L, 1);
        if (DUMP(L, dump_writer, &s->code) != 0 && !s->code.failed) {
            shared_free(s);
            return luaL_error(L, "testthread: cannot dump the function");
        }
        lua_pop(L, 1);
    } else {
        size_t len;
        const char *src = lua_tolstring(L, 1, &len);
        buf_add(&s->code, src, len);
    }
    for (i = 2; i <= top; i++) put_value(&s->args, L, i);
    s->path = dup_string(path);
    s->cpath = dup_string(cpath);
    if (s->code.failed || s->args.failed || (path && !s->path) || (cpath && !s->cpath)) {
        shared_free(s);
        return luaL_error(L, "testthread: out of memory");
    }

    err = thread_start(&t->tid, s);
    if (err != 0) {
        shared_free(s);
        return luaL_error(L, "testthread: cannot create a thread: %s", strerror(err));
    }
    t->s = s;
    t->reaped = 0;
    lua_pushvalue(L, top + 1); /* the userdata */
    return 1;
}

/* t:join([timeout]) -> true, results... | false, message | nil, "timeout".
   Without timeout waits until the thread finishes; timeout is in seconds. */
static int l_join(lua_State *L) {
    Thread *t = check_thread(L);
    Shared *s = t->s;
    int done;
    if (lua_isnoneornil(L, 2)) {
        tmutex_lock(&s->mu);
        while (!s->done) tcond_wait(&s->cv, &s->mu);
        tmutex_unlock(&s->mu);
    } else {
        lua_Number timeout = luaL_checknumber(L, 2);
        double deadline;
        if (!(timeout > 0)) timeout = 0; /* also NaN */
        if (timeout > 1e9) timeout = 1e9;
        deadline = tclock() + (double)timeout;
        tmutex_lock(&s->mu);
        while (!s->done && tclock() < deadline) tcond_waituntil(&s->cv, &s->mu, deadline);
        done = s->done;
        tmutex_unlock(&s->mu);
        if (!done) {
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            return 2;
        }
    }
    if (!t->reaped) { /* the thread has published its results and is about to exit */
        thread_reap(t->tid);
        t->reaped = 1;
    }
    lua_pushboolean(L, s->ok);
    return 1 + push_values(L, s->res.p, s->res.len);
}

/* t:isdone() -> whether the thread has finished (never blocks for long). */
static int l_isdone(lua_State *L) {
    Thread *t = check_thread(L);
    int done;
    tmutex_lock(&t->s->mu);
    done = t->s->done;
    tmutex_unlock(&t->s->mu);
    lua_pushboolean(L, done);
    return 1;
}

/* __gc: detaches a thread not joined yet (it then frees the shared state when it
   finishes) and drops the userdata's reference. Never blocks on the thread. */
static int l_gc(lua_State *L) {
    Thread *t = luaL_checkudata(L, 1, THREAD_MT);
    if (t->s == NULL) return 0;
    if (!t->reaped) thread_detach(t->tid);
    shared_release(t->s);
    t->s = NULL;
    return 0;
}

/* thread.ncpu() -> number of online CPUs (at least 1). */
static int l_ncpu(lua_State *L) {
    long n = thread_ncpu();
    lua_pushinteger(L, n > 0 ? (lua_Integer)n : 1);
    return 1;
}

EXPORT int luaopen_testthread(lua_State *L);

/* Module entry: returns the table {start, ncpu}. */
EXPORT int luaopen_testthread(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"join", l_join}, {"isdone", l_isdone}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"start", l_start}, {"ncpu", l_ncpu}, {NULL, NULL}};
    pin_library();
    if (luaL_newmetatable(L, THREAD_MT)) {
        lua_newtable(L);
        setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    setfuncs(L, funcs);
    return 1;
}
