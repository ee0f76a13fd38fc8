/* capiprobe.c: test-only consumer of the Notify, Receiver and Sender C APIs (module
 * "capiprobe"), written against the headers in include/ only: it finds the APIs on Lua values
 * with the lookup helpers and drives them from the Lua thread and from native threads that
 * have no Lua state. It also implements a fake notifier (Notify API 0.0.2) to test buffer:notifier().
 *
 * Lua API (see tests/capi_spec.lua):
 *   probe.lookup(v, kind)        kind "notify"|"receiver"|"sender": major, minor, patch | nil, reason
 *   probe.to(v, kind)            whether to<Kind>(L, i) returns non-NULL (stack must stay balanced)
 *   probe.sizes()                {notify=, receiver=, sender=, value=, ptr=, size_t=, integer=,
 *                                number=, cfunction=} sizes in bytes
 *   probe.fake(kind, major, minor [, buffer])   object publishing a fake record major.minor.0;
 *                                with buffer, its next_capi points to that buffer's real record
 *   probe.badmarker(kind, how)   object with a malformed marker: "string"|"light"|"short"|"key"
 *   probe.lud(n)                 light userdata with address n
 *   probe.cfaddr(f)              the C function pointer of f as a light userdata
 *   probe.rawlen(v)              lua_rawlen (lua_objlen on 5.1) of v
 *   probe.ref(buffer)            a native reference: finds all three APIs, checks that the three
 *                                to... functions agree, retains once. Methods:
 *       ref:retain(kind) ref:release([kind]) -> references still held   ref:ptr()
 *       ref:notify() -> rc, errtext
 *       ref:send(items [, clear [, nonblock]]) -> rc, errtext   (a fresh writer each time)
 *       ref:recv([nonblock [, timeout [, cap, grow]]]) -> rc, errtext, values (timeout 0)
 *   probe.newwriter(buffer [, cap, grow])   w:add(kind, ...) -> rc (array: true/false)
 *       w:send(ref [, clear [, nonblock]]) -> rc, errtext   w:clear()   w:free()
 *   probe.newreader(buffer [, cap, grow])   r:recv(ref [, nonblock [, timeout]]) -> rc, errtext
 *       r:values() -> list of value tables   r:next() -> value table | nil   r:clear() r:free()
 *   probe.newnotifier(["invalid"])          fake notifier: n:count() n:refs() n:set(rc, msgs...)
 *       n:reenter(ref, "send"|"recv"|nil) n:reenterrc() n:calledhere()
 *   probe.start(task, ref, ...) -> thread; t:join() -> results; t:stop()   tasks:
 *       "send", id, n        n messages (id, seq) via msgToReceiver -> sent, failures
 *       "recv"               until a message (-1): -> {id1, seq1, ...}, empties, failures
 *       "notify", n          n notifications -> delivered, other rcs
 *       "recvone", nonblock, timeout   -> rc, seconds, first value (integer) or nil
 *       "hog", size          big clear-sends until t:stop() (at least one) -> rounds
 * Items: {"bool", b} {"int", i} {"num", n} {"str", s} {"bytes", s} {"array", typename, {v...}}
 * {"rawarray", code, count}. Values: {t="nil"|"boolean"|"integer"|"number"|"string"|
 * "lightuserdata"|"cfunction"|"array", v=..., etype=, esize=, count=, bytes=}.
 */
#if defined(_WIN32)
#include <windows.h>
#include <process.h>
#else
#include <pthread.h>
#endif
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua.h"
#include "lauxlib.h"

#include "notify_capi.h"
#include "receiver_capi.h"
#include "sender_capi.h"

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

/* ===== Native threads: POSIX threads or Win32 ===== */

#if defined(_WIN32)
typedef HANDLE NativeThread;
typedef DWORD NativeId;
#define native_self() GetCurrentThreadId()
#define native_equal(a, b) ((a) == (b))
#else
typedef pthread_t NativeThread;
typedef pthread_t NativeId;
#define native_self() pthread_self()
#define native_equal(a, b) pthread_equal((a), (b))
#endif

#define REF_MT      "capiprobe.ref"
#define WRITER_MT   "capiprobe.writer"
#define READER_MT   "capiprobe.reader"
#define NOTIFIER_MT "capiprobe.notifier"
#define THREAD_MT   "capiprobe.thread"

/* ===== Lua version differences ===== */

#if LUA_VERSION_NUM >= 503
#define push_int(L, v) lua_pushinteger(L, (lua_Integer)(v))
#else
#define push_int(L, v) lua_pushnumber(L, (lua_Number)(v))
#endif

#if LUA_VERSION_NUM >= 502
#define rawlen(L, i) lua_rawlen(L, i)
#else
#define rawlen(L, i) lua_objlen(L, i)
#endif

static void setfuncs(lua_State *L, const luaL_Reg *f) {
    for (; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
}

static void *testudata(lua_State *L, int i, const char *tname) {
    void *p = lua_touserdata(L, i);
    int same;
    if (!p || lua_type(L, i) != LUA_TUSERDATA || !lua_getmetatable(L, i)) return NULL;
    lua_getfield(L, LUA_REGISTRYINDEX, tname);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

static void *checkud(lua_State *L, int i, const char *tname) {
    void *p = testudata(L, i, tname);
    if (!p) luaL_argerror(L, i, tname);
    return p;
}

/* Creates metatable tname with methods (as __index) and __gc. */
static void newclass(lua_State *L, const char *tname, const luaL_Reg *methods, lua_CFunction gc) {
    luaL_newmetatable(L, tname);
    lua_newtable(L);
    setfuncs(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}

#if defined(_WIN32)
static double now(void) {
    LARGE_INTEGER freq, c;
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)freq.QuadPart;
}
#else
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#endif

/* ===== Error texts from eh ===== */

typedef struct ErrText {
    char buf[2048];
    size_t len;
    int calls;
} ErrText;

static void eh_collect(void *ehdata, const char *msg, size_t len) {
    ErrText *e = ehdata;
    if (len > sizeof e->buf - e->len) len = sizeof e->buf - e->len;
    memcpy(e->buf + e->len, msg, len);
    e->len += len;
    e->calls++;
}

/* Pushes rc and the collected text (or nil). */
static int push_rc(lua_State *L, int rc, const ErrText *e) {
    lua_pushinteger(L, rc);
    if (e->calls) lua_pushlstring(L, e->buf, e->len);
    else lua_pushnil(L);
    return 2;
}

/* ===== Lookup ===== */

static int checkkind(lua_State *L, int arg) {
    static const char *const kinds[] = {"notify", "receiver", "sender", NULL};
    return luaL_checkoption(L, arg, NULL, kinds);
}

static const void *lookup(lua_State *L, int i, int kind, int *reason) {
    switch (kind) {
    case 0: return notify_get_capi(L, i, reason);
    case 1: return receiver_get_capi(L, i, reason);
    default: return sender_get_capi(L, i, reason);
    }
}

static int p_lookup(lua_State *L) {
    int kind = checkkind(L, 2), reason = 0, top;
    const int *head;
    luaL_checkany(L, 1);
    top = lua_gettop(L);
    head = lookup(L, 1, kind, &reason);
    if (lua_gettop(L) != top) return luaL_error(L, "lookup left the stack unbalanced");
    if (!head) {
        lua_pushnil(L);
        lua_pushinteger(L, reason);
        return 2;
    }
    lua_pushinteger(L, head[0]);        /* every record starts with three ints */
    lua_pushinteger(L, head[1]);
    lua_pushinteger(L, head[2]);
    return 3;
}

static int p_to(lua_State *L) {
    int kind = checkkind(L, 2), top;
    const void *api;
    void *h = NULL;
    luaL_checkany(L, 1);
    lua_settop(L, 2);
    api = lookup(L, 1, kind, NULL);
    if (!api) return luaL_error(L, "no compatible API");
    top = lua_gettop(L);
    /* a negative index too, to check relative indices */
    lua_pushvalue(L, 1);
    switch (kind) {
    case 0: h = ((const notify_capi *)api)->toNotifier(L, -1); break;
    case 1: h = ((const receiver_capi *)api)->toReceiver(L, -1); break;
    default: h = ((const sender_capi *)api)->toSender(L, -1); break;
    }
    lua_pop(L, 1);
    if (lua_gettop(L) != top) return luaL_error(L, "to... left the stack unbalanced");
    lua_pushboolean(L, h != NULL);
    return 1;
}

static int p_sizes(lua_State *L) {
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)sizeof(notify_capi));
    lua_setfield(L, -2, "notify");
    lua_pushinteger(L, (lua_Integer)sizeof(receiver_capi));
    lua_setfield(L, -2, "receiver");
    lua_pushinteger(L, (lua_Integer)sizeof(sender_capi));
    lua_setfield(L, -2, "sender");
    lua_pushinteger(L, (lua_Integer)sizeof(sender_capi_value));
    lua_setfield(L, -2, "value");
    lua_pushinteger(L, (lua_Integer)sizeof(void *));
    lua_setfield(L, -2, "ptr");
    lua_pushinteger(L, (lua_Integer)sizeof(size_t));        /* sizes of message elements */
    lua_setfield(L, -2, "size_t");
    lua_pushinteger(L, (lua_Integer)sizeof(lua_Integer));
    lua_setfield(L, -2, "integer");
    lua_pushinteger(L, (lua_Integer)sizeof(lua_Number));
    lua_setfield(L, -2, "number");
    lua_pushinteger(L, (lua_Integer)sizeof(lua_CFunction));
    lua_setfield(L, -2, "cfunction");
    return 1;
}

static const char *const idstrings[] = {
    NOTIFY_CAPI_ID_STRING, RECEIVER_CAPI_ID_STRING, SENDER_CAPI_ID_STRING
};

/* Pushes a marker block [rec][key + NUL] (extra: bytes to drop from the end). */
static void pushmarker(lua_State *L, const void *rec, const char *key, size_t drop) {
    size_t ks = strlen(key) + 1;
    char *block = lua_newuserdata(L, sizeof rec + ks - drop);
    memcpy(block, &rec, sizeof rec);
    memcpy(block + sizeof rec, key, ks - drop);
}

/* Fake records: the head plus a function area large enough for any of the three. */
typedef struct FakeRecord {
    int major, minor, patch;
    void *next;
    void *funcs[16];
} FakeRecord;

static void *fake_to(lua_State *L, int i) { (void)L; (void)i; return NULL; }
static void fake_nop(void *p) { (void)p; }

static int p_fake(lua_State *L) {
    int kind = checkkind(L, 1);
    int major = (int)luaL_checkinteger(L, 2), minor = (int)luaL_checkinteger(L, 3);
    const void *real = NULL;
    FakeRecord *rec;
    int k;
    if (!lua_isnoneornil(L, 4)) {
        real = lookup(L, 4, kind, NULL);
        if (!real) return luaL_argerror(L, 4, "object with the API expected");
    }
    lua_settop(L, 3);
    rec = lua_newuserdata(L, sizeof *rec);                          /* ud */
    memset(rec, 0, sizeof *rec);
    rec->major = major;
    rec->minor = minor;
    memcpy(&rec->next, &real, sizeof real);
    /* slot 0 is to...(); the rest take one pointer and do nothing */
    {
        void *(*to)(lua_State *, int) = fake_to;
        void (*nop)(void *) = fake_nop;
        memcpy(&rec->funcs[0], &to, sizeof to);
        for (k = 1; k < 16; k++) memcpy(&rec->funcs[k], &nop, sizeof nop);
    }
    lua_newtable(L);                                                /* ud, mt */
    pushmarker(L, rec, idstrings[kind], 0);                         /* ud, mt, marker */
    lua_setfield(L, -2, idstrings[kind]);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "record");      /* keeps the record alive with the metatable */
    lua_setmetatable(L, -2);                                        /* ud */
    return 1;
}

static int p_badmarker(lua_State *L) {
    static const char *const hows[] = {"string", "light", "short", "key", NULL};
    static const int dummy = 0;
    int kind = checkkind(L, 1), how = luaL_checkoption(L, 2, NULL, hows);
    const void *rec = &dummy;
    lua_newuserdata(L, 1);                                          /* ud */
    lua_newtable(L);                                                /* ud, mt */
    switch (how) {
    case 0: lua_pushstring(L, idstrings[kind]); break;
    case 1: lua_pushlightuserdata(L, (void *)(uintptr_t)&dummy); break;
    case 2: pushmarker(L, rec, idstrings[kind], 1); break;
    default: pushmarker(L, rec, "_capi_other", 0); break;
    }
    lua_setfield(L, -2, idstrings[kind]);
    lua_setmetatable(L, -2);
    return 1;
}

static int p_lud(lua_State *L) {
    lua_pushlightuserdata(L, (void *)(uintptr_t)luaL_checknumber(L, 1));
    return 1;
}

static int p_rawlen(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)rawlen(L, 1));
    return 1;
}

static int p_cfaddr(lua_State *L) {
    lua_CFunction f = lua_tocfunction(L, 1);
    void *p = NULL;
    memcpy(&p, &f, sizeof p < sizeof f ? sizeof p : sizeof f);
    lua_pushlightuserdata(L, p);
    return 1;
}

/* ===== Native references ===== */

typedef struct Apis {
    const notify_capi *n;
    const receiver_capi *r;
    const sender_capi *s;
} Apis;

typedef struct Ref {
    Apis api;
    void *obj;          /* the native buffer: what all three to... functions return */
    int held;           /* references this object holds */
} Ref;

/* Finds the three APIs on the value at i and its native object; raises if they disagree. */
static void *getobj(lua_State *L, int i, Apis *api) {
    void *a, *b, *c;
    api->n = notify_get_capi(L, i, NULL);
    api->r = receiver_get_capi(L, i, NULL);
    api->s = sender_get_capi(L, i, NULL);
    if (!api->n || !api->r || !api->s) luaL_argerror(L, i, "object with all three APIs expected");
    a = api->n->toNotifier(L, i);
    b = api->r->toReceiver(L, i);
    c = api->s->toSender(L, i);
    if (!a || a != b || b != c) luaL_error(L, "to... functions disagree");
    return a;
}

static int p_ref(lua_State *L) {
    Ref *ref = lua_newuserdata(L, sizeof *ref);
    ref->held = 0;
    luaL_getmetatable(L, REF_MT);
    lua_setmetatable(L, -2);
    ref->obj = getobj(L, 1, &ref->api);
    ref->api.r->retainReceiver(ref->obj);
    ref->held = 1;
    return 1;
}

static Ref *checkref(lua_State *L, int i) {
    Ref *ref = checkud(L, i, REF_MT);
    if (ref->held <= 0) luaL_argerror(L, i, "released reference");
    return ref;
}

static int ref_retain(lua_State *L) {
    Ref *ref = checkref(L, 1);
    switch (checkkind(L, 2)) {
    case 0: ref->api.n->retainNotifier(ref->obj); break;
    case 1: ref->api.r->retainReceiver(ref->obj); break;
    default: ref->api.s->retainSender(ref->obj); break;
    }
    lua_pushinteger(L, ++ref->held);
    return 1;
}

static int ref_release(lua_State *L) {
    Ref *ref = checkud(L, 1, REF_MT);
    int kind = lua_isnoneornil(L, 2) ? 1 : checkkind(L, 2);
    if (ref->held > 0) {
        ref->held--;
        switch (kind) {
        case 0: ref->api.n->releaseNotifier(ref->obj); break;
        case 1: ref->api.r->releaseReceiver(ref->obj); break;
        default: ref->api.s->releaseSender(ref->obj); break;
        }
    }
    lua_pushinteger(L, ref->held);
    return 1;
}

static int ref_gc(lua_State *L) {
    Ref *ref = lua_touserdata(L, 1);
    while (ref->held > 0) {
        ref->held--;
        ref->api.r->releaseReceiver(ref->obj);
    }
    return 0;
}

static int ref_ptr(lua_State *L) {
    lua_pushlightuserdata(L, checkref(L, 1)->obj);
    return 1;
}

static int ref_notify(lua_State *L) {
    Ref *ref = checkref(L, 1);
    ErrText e;
    int rc;
    e.len = 0; e.calls = 0;
    rc = ref->api.n->notify(ref->obj, eh_collect, &e);
    return push_rc(L, rc, &e);
}

/* ===== Array elements ===== */

static const char *const typenames[] = {
    "unsigned char", "signed char", "short", "unsigned short", "int", "unsigned int",
    "long", "unsigned long", "float", "double", "long long", "unsigned long long", NULL
};

static size_t typesize(int t) {
    switch (t) {
    case 1: return sizeof(unsigned char);   case 2: return sizeof(signed char);
    case 3: return sizeof(short);           case 4: return sizeof(unsigned short);
    case 5: return sizeof(int);             case 6: return sizeof(unsigned int);
    case 7: return sizeof(long);            case 8: return sizeof(unsigned long);
    case 9: return sizeof(float);           case 10: return sizeof(double);
    case 11: return sizeof(long long);      case 12: return sizeof(unsigned long long);
    default: return 0;
    }
}

/* Stores the number at stack index i as element type t at p (unaligned). */
static void putelem(lua_State *L, int t, char *p, int i) {
    lua_Number d = lua_tonumber(L, i);
    /* float -> integer outside [-2^63, 2^63) (or NaN) is undefined behaviour: use 0 */
    int inrange = d >= -9223372036854775808.0 && d < 9223372036854775808.0;
#if LUA_VERSION_NUM >= 503
    lua_Integer n = lua_isinteger(L, i) ? lua_tointeger(L, i) : inrange ? (lua_Integer)d : 0;
#else
    long long n = inrange ? (long long)d : 0;
#endif
#define PUT_AS(T, v) do { T x_ = (T)(v); memcpy(p, &x_, sizeof x_); } while (0)
    switch (t) {
    case 1: PUT_AS(unsigned char, n); break;    case 2: PUT_AS(signed char, n); break;
    case 3: PUT_AS(short, n); break;            case 4: PUT_AS(unsigned short, n); break;
    case 5: PUT_AS(int, n); break;              case 6: PUT_AS(unsigned int, n); break;
    case 7: PUT_AS(long, n); break;             case 8: PUT_AS(unsigned long, n); break;
    case 9: PUT_AS(float, d); break;            case 10: PUT_AS(double, d); break;
    case 11: PUT_AS(long long, n); break;       case 12: PUT_AS(unsigned long long, n); break;
    default: break;
    }
#undef PUT_AS
}

/* Pushes element type t at p (unaligned) as a Lua number. */
static void pushelem(lua_State *L, int t, const char *p) {
#define GET_AS(T, push) do { T x_; memcpy(&x_, p, sizeof x_); push(L, x_); } while (0)
    switch (t) {
    case 1: GET_AS(unsigned char, push_int); break;     case 2: GET_AS(signed char, push_int); break;
    case 3: GET_AS(short, push_int); break;             case 4: GET_AS(unsigned short, push_int); break;
    case 5: GET_AS(int, push_int); break;               case 6: GET_AS(unsigned int, push_int); break;
    case 7: GET_AS(long, push_int); break;              case 8: GET_AS(unsigned long, push_int); break;
    case 9: GET_AS(float, lua_pushnumber); break;       case 10: GET_AS(double, lua_pushnumber); break;
    case 11: GET_AS(long long, push_int); break;        case 12: GET_AS(unsigned long long, push_int); break;
    default: lua_pushnil(L); break;
    }
#undef GET_AS
}

/* ===== Writers ===== */

/* Adds the item table at index i ({kind, args...}) to w; pushes the result (rc or boolean). */
static void additem(lua_State *L, const receiver_capi *api, receiver_writer *w, int i) {
    static const char *const kinds[] = {"bool", "int", "num", "str", "bytes", "array", "rawarray",
                                        NULL};
    int kind, top = lua_gettop(L);
    size_t len;
    const char *s;
    luaL_checktype(L, i, LUA_TTABLE);
    lua_rawgeti(L, i, 1);
    kind = luaL_checkoption(L, -1, NULL, kinds);
    lua_rawgeti(L, i, 2);                                           /* kind, a1 */
    switch (kind) {
    case 0: lua_pushinteger(L, api->addBooleanToWriter(w, lua_toboolean(L, -1))); break;
    case 1:
#if LUA_VERSION_NUM >= 503
        lua_pushinteger(L, api->addIntegerToWriter(w, lua_tointeger(L, -1)));
#else
        lua_pushinteger(L, api->addIntegerToWriter(w, (lua_Integer)lua_tonumber(L, -1)));
#endif
        break;
    case 2: lua_pushinteger(L, api->addNumberToWriter(w, lua_tonumber(L, -1))); break;
    case 3:
        s = luaL_checklstring(L, -1, &len);
        lua_pushinteger(L, api->addStringToWriter(w, s, len));
        break;
    case 4:
        s = luaL_checklstring(L, -1, &len);
        lua_pushinteger(L, api->addBytesToWriter(w, (const unsigned char *)s, len));
        break;
    case 5: {
        int t = luaL_checkoption(L, -1, NULL, typenames) + 1;
        size_t n, k, es = typesize(t);
        char *p;
        lua_rawgeti(L, i, 3);                                       /* kind, a1, values */
        luaL_checktype(L, -1, LUA_TTABLE);
        n = (size_t)rawlen(L, -1);
        p = api->addArrayToWriter(w, (receiver_array_type)t, n);
        if (p) {
            for (k = 0; k < n; k++) {
                lua_rawgeti(L, -1, (int)k + 1);
                putelem(L, t, p + k * es, lua_gettop(L));
                lua_pop(L, 1);
            }
        }
        lua_pushboolean(L, p != NULL);
        break;
    }
    default: {
        int t = (int)luaL_checkinteger(L, -1);
        lua_rawgeti(L, i, 3);
        lua_pushboolean(L, api->addArrayToWriter(w, (receiver_array_type)t,
                                                 (size_t)luaL_checkinteger(L, -1)) != NULL);
        break;
    }
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
}

typedef struct Writer {
    const receiver_capi *api;
    receiver_writer *w;
} Writer;

static Writer *checkwriter(lua_State *L, int i) {
    Writer *w = checkud(L, i, WRITER_MT);
    if (!w->w) luaL_argerror(L, i, "freed writer");
    return w;
}

static int p_newwriter(lua_State *L) {
    Apis api;
    Writer *w;
    size_t cap = (size_t)luaL_optinteger(L, 2, 64);
    float grow = (float)luaL_optnumber(L, 3, 2);
    getobj(L, 1, &api);
    w = lua_newuserdata(L, sizeof *w);
    w->api = api.r;
    w->w = NULL;
    luaL_getmetatable(L, WRITER_MT);
    lua_setmetatable(L, -2);
    w->w = api.r->newWriter(cap, grow);
    if (!w->w) return luaL_error(L, "newWriter failed");
    return 1;
}

static int writer_add(lua_State *L) {
    Writer *w = checkwriter(L, 1);
    lua_createtable(L, lua_gettop(L) - 1, 0);                       /* args..., item */
    {
        int k, n = lua_gettop(L) - 2;
        for (k = 1; k <= n; k++) {
            lua_pushvalue(L, k + 1);
            lua_rawseti(L, -2, k);
        }
    }
    additem(L, w->api, w->w, lua_gettop(L));
    return 1;
}

static int writer_send(lua_State *L) {
    Writer *w = checkwriter(L, 1);
    Ref *ref = checkref(L, 2);
    ErrText e;
    int rc;
    e.len = 0; e.calls = 0;
    rc = w->api->msgToReceiver(ref->obj, w->w, lua_toboolean(L, 3), lua_toboolean(L, 4),
                               eh_collect, &e);
    return push_rc(L, rc, &e);
}

static int writer_clear(lua_State *L) {
    Writer *w = checkwriter(L, 1);
    w->api->clearWriter(w->w);
    return 0;
}

static int writer_free(lua_State *L) {
    Writer *w = checkud(L, 1, WRITER_MT);
    if (w->w) w->api->freeWriter(w->w);
    w->w = NULL;
    return 0;
}

/* ref:send(items, clear, nonblock): a fresh writer with the items. */
static int ref_send(lua_State *L) {
    Ref *ref = checkref(L, 1);
    receiver_writer *w;
    ErrText e;
    int rc, k, n;
    luaL_checktype(L, 2, LUA_TTABLE);
    n = (int)rawlen(L, 2);
    w = ref->api.r->newWriter(64, 2);
    if (!w) return luaL_error(L, "newWriter failed");
    for (k = 1; k <= n; k++) {
        int ok;
        lua_rawgeti(L, 2, k);
        additem(L, ref->api.r, w, lua_gettop(L));
        ok = lua_type(L, -1) == LUA_TBOOLEAN ? lua_toboolean(L, -1) : lua_tointeger(L, -1) == 0;
        lua_pop(L, 2);
        if (!ok) {
            ref->api.r->freeWriter(w);
            return luaL_error(L, "adding item %d failed", k);
        }
    }
    e.len = 0; e.calls = 0;
    rc = ref->api.r->msgToReceiver(ref->obj, w, lua_toboolean(L, 3), lua_toboolean(L, 4),
                                   eh_collect, &e);
    ref->api.r->freeWriter(w);
    return push_rc(L, rc, &e);
}

/* ===== Readers ===== */

/* Pushes the value v as a table. */
static void pushvalue(lua_State *L, const sender_capi_value *v) {
    lua_createtable(L, 0, 6);
    switch (v->type) {
    case SENDER_CAPI_TYPE_NIL: lua_pushstring(L, "nil"); break;
    case SENDER_CAPI_TYPE_BOOLEAN:
        lua_pushboolean(L, v->boolVal);
        lua_setfield(L, -2, "v");
        lua_pushinteger(L, v->boolVal);
        lua_setfield(L, -2, "raw");
        lua_pushstring(L, "boolean");
        break;
    case SENDER_CAPI_TYPE_INTEGER:
        push_int(L, v->intVal);
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "integer");
        break;
    case SENDER_CAPI_TYPE_NUMBER:
        lua_pushnumber(L, v->numVal);
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "number");
        break;
    case SENDER_CAPI_TYPE_LIGHTUSERDATA:
        lua_pushlightuserdata(L, v->ptrVal);
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "lightuserdata");
        break;
    case SENDER_CAPI_TYPE_CFUNCTION: {
        void *p = NULL;
        memcpy(&p, &v->funcVal, sizeof p);
        lua_pushlightuserdata(L, p);
        lua_setfield(L, -2, "addr");
        lua_pushcfunction(L, v->funcVal);
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "cfunction");
        break;
    }
    case SENDER_CAPI_TYPE_STRING:
        lua_pushlstring(L, v->strVal.ptr, v->strVal.len);
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "string");
        break;
    case SENDER_CAPI_TYPE_ARRAY: {
        size_t k, n = v->arrayVal.elementCount, es = v->arrayVal.elementSize;
        const char *d = v->arrayVal.data;
        lua_pushinteger(L, (lua_Integer)v->arrayVal.type);
        lua_setfield(L, -2, "etype");
        lua_pushinteger(L, (lua_Integer)es);
        lua_setfield(L, -2, "esize");
        lua_pushinteger(L, (lua_Integer)n);
        lua_setfield(L, -2, "count");
        lua_pushboolean(L, d != NULL);
        lua_setfield(L, -2, "hasdata");
        lua_pushlstring(L, n ? d : "", n * es);
        lua_setfield(L, -2, "bytes");
        lua_createtable(L, (int)n, 0);
        if (typesize((int)v->arrayVal.type) == es)
            for (k = 0; k < n; k++) {
                pushelem(L, (int)v->arrayVal.type, d + k * es);
                lua_rawseti(L, -2, (int)k + 1);
            }
        lua_setfield(L, -2, "v");
        lua_pushstring(L, "array");
        break;
    }
    case SENDER_CAPI_TYPE_TABLE: lua_pushstring(L, "table"); break;   /* no member set */
    default: lua_pushstring(L, "none"); break;
    }
    lua_setfield(L, -2, "t");
}

/* All values of the reader as a list (with n). Every value is taken first and converted
 * afterwards: pointers handed out earlier must stay valid across later calls. */
static int pushvalues(lua_State *L, const sender_capi *api, sender_reader *r) {
    size_t n = 0, cap = 16, k;
    sender_capi_value *vals = malloc(cap * sizeof *vals);
    if (!vals) return luaL_error(L, "out of memory");
    for (;;) {
        if (n == cap) {
            sender_capi_value *nv = realloc(vals, 2 * cap * sizeof *vals);
            if (!nv) { free(vals); return luaL_error(L, "out of memory"); }
            vals = nv;
            cap *= 2;
        }
        api->nextValueFromReader(r, &vals[n]);
        if (vals[n].type == SENDER_CAPI_TYPE_NONE) break;
        n++;
    }
    lua_createtable(L, (int)n, 1);
    for (k = 0; k < n; k++) {
        pushvalue(L, &vals[k]);             /* may raise (memory): leaks vals; test only */
        lua_rawseti(L, -2, (int)k + 1);
    }
    free(vals);
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "n");
    return 1;
}

typedef struct Reader {
    const sender_capi *api;
    sender_reader *r;
} Reader;

static Reader *checkreader(lua_State *L, int i) {
    Reader *r = checkud(L, i, READER_MT);
    if (!r->r) luaL_argerror(L, i, "freed reader");
    return r;
}

static int p_newreader(lua_State *L) {
    Apis api;
    Reader *r;
    size_t cap = (size_t)luaL_optinteger(L, 2, 64);
    float grow = (float)luaL_optnumber(L, 3, 2);
    getobj(L, 1, &api);
    r = lua_newuserdata(L, sizeof *r);
    r->api = api.s;
    r->r = NULL;
    luaL_getmetatable(L, READER_MT);
    lua_setmetatable(L, -2);
    r->r = api.s->newReader(cap, grow);
    if (!r->r) return luaL_error(L, "newReader failed");
    return 1;
}

static int reader_recv(lua_State *L) {
    Reader *r = checkreader(L, 1);
    Ref *ref = checkref(L, 2);
    ErrText e;
    int rc;
    e.len = 0; e.calls = 0;
    rc = r->api->nextMessageFromSender(ref->obj, r->r, lua_toboolean(L, 3),
                                       luaL_optnumber(L, 4, 0), eh_collect, &e);
    return push_rc(L, rc, &e);
}

static int reader_values(lua_State *L) {
    Reader *r = checkreader(L, 1);
    return pushvalues(L, r->api, r->r);
}

static int reader_next(lua_State *L) {
    Reader *r = checkreader(L, 1);
    sender_capi_value v;
    memset(&v, 0xa5, sizeof v);
    r->api->nextValueFromReader(r->r, &v);
    if (v.type == SENDER_CAPI_TYPE_NONE) return 0;
    pushvalue(L, &v);
    return 1;
}

static int reader_clear(lua_State *L) {
    Reader *r = checkreader(L, 1);
    r->api->clearReader(r->r);
    return 0;
}

static int reader_free(lua_State *L) {
    Reader *r = checkud(L, 1, READER_MT);
    if (r->r) r->api->freeReader(r->r);
    r->r = NULL;
    return 0;
}

/* ref:recv(nonblock, timeout, cap, grow): a fresh reader; rc, errtext, values. */
static int ref_recv(lua_State *L) {
    Ref *ref = checkref(L, 1);
    sender_reader *r = ref->api.s->newReader((size_t)luaL_optinteger(L, 4, 64),
                                             (float)luaL_optnumber(L, 5, 2));
    ErrText e;
    int rc;
    if (!r) return luaL_error(L, "newReader failed");
    e.len = 0; e.calls = 0;
    rc = ref->api.s->nextMessageFromSender(ref->obj, r, lua_toboolean(L, 2),
                                           luaL_optnumber(L, 3, 0), eh_collect, &e);
    push_rc(L, rc, &e);
    if (rc == 0 || rc > 5) pushvalues(L, ref->api.s, r);
    else lua_pushnil(L);
    ref->api.s->freeReader(r);
    return 3;
}

/* ===== Fake notifier ===== */

typedef struct Fake {
    int refs;               /* atomic */
    int count;              /* atomic: notify calls */
    int rc;                 /* atomic: what notify returns */
    int invalid;            /* immutable: toNotifier returns NULL */
    char *msgs[4];          /* texts given to eh; set while nobody notifies */
    size_t msglens[4];
    int nmsgs;
    int mode;               /* 0: nothing, 1: send to target, 2: receive from target */
    Apis tapi;
    void *target;           /* retained while set */
    int reenter_rc;         /* atomic */
    NativeId last;          /* thread of the last call; guarded by the test's sequencing */
} Fake;

typedef struct FakeHandle {
    Fake *f;
} FakeHandle;

static void fake_settarget(Fake *f, const Apis *api, void *target, int mode) {
    if (f->target) f->tapi.r->releaseReceiver(f->target);
    f->target = NULL;
    f->mode = 0;
    if (target) {
        f->tapi = *api;
        api->r->retainReceiver(target);
        f->target = target;
        f->mode = mode;
    }
}

static void fake_free(Fake *f) {
    int k;
    fake_settarget(f, NULL, NULL, 0);
    for (k = 0; k < f->nmsgs; k++) free(f->msgs[k]);
    free(f);
}

static notify_notifier *fn_to(lua_State *L, int i) {
    FakeHandle *h = testudata(L, i, NOTIFIER_MT);
    return h && h->f && !h->f->invalid ? (notify_notifier *)h->f : NULL;
}

static void fn_retain(notify_notifier *n) {
    __atomic_add_fetch(&((Fake *)n)->refs, 1, __ATOMIC_RELAXED);
}

static void fn_release(notify_notifier *n) {
    Fake *f = (Fake *)n;
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0) fake_free(f);
}

static int fn_notify(notify_notifier *n, notifier_error_handler eh, void *ehdata) {
    Fake *f = (Fake *)n;
    int k, rc = __atomic_load_n(&f->rc, __ATOMIC_ACQUIRE);
    f->last = native_self();
    if (f->mode == 1) {
        receiver_writer *w = f->tapi.r->newWriter(64, 2);
        f->tapi.r->addStringToWriter(w, "reenter", 7);
        __atomic_store_n(&f->reenter_rc, f->tapi.r->msgToReceiver(f->target, w, 0, 1, NULL, NULL),
                         __ATOMIC_RELEASE);
        f->tapi.r->freeWriter(w);
    } else if (f->mode == 2) {
        sender_reader *r = f->tapi.s->newReader(64, 2);
        __atomic_store_n(&f->reenter_rc,
                         f->tapi.s->nextMessageFromSender(f->target, r, 1, -1, NULL, NULL),
                         __ATOMIC_RELEASE);
        f->tapi.s->freeReader(r);
    }
    if (rc != 0 && eh)
        for (k = 0; k < f->nmsgs; k++) eh(ehdata, f->msgs[k], f->msglens[k]);
    __atomic_add_fetch(&f->count, 1, __ATOMIC_ACQ_REL);
    return rc;
}

static const notify_capi fake_notify_record = {
    NOTIFY_CAPI_VERSION_MAJOR, NOTIFY_CAPI_VERSION_MINOR, NOTIFY_CAPI_VERSION_PATCH, NULL,
    fn_to, fn_retain, fn_release, fn_notify
};

static Fake *checkfake(lua_State *L, int i) {
    FakeHandle *h = checkud(L, i, NOTIFIER_MT);
    return h->f;
}

static int p_newnotifier(lua_State *L) {
    FakeHandle *h = lua_newuserdata(L, sizeof *h);
    h->f = NULL;
    luaL_getmetatable(L, NOTIFIER_MT);
    lua_setmetatable(L, -2);
    h->f = calloc(1, sizeof *h->f);
    if (!h->f) return luaL_error(L, "out of memory");
    h->f->refs = 1;
    h->f->invalid = lua_isstring(L, 1) && strcmp(lua_tostring(L, 1), "invalid") == 0;
    h->f->reenter_rc = -1;
    return 1;
}

static int fake_gc(lua_State *L) {
    FakeHandle *h = lua_touserdata(L, 1);
    if (h->f) fn_release((notify_notifier *)h->f);
    h->f = NULL;
    return 0;
}

static int fake_count(lua_State *L) {
    lua_pushinteger(L, __atomic_load_n(&checkfake(L, 1)->count, __ATOMIC_ACQUIRE));
    return 1;
}

static int fake_refs(lua_State *L) {
    lua_pushinteger(L, __atomic_load_n(&checkfake(L, 1)->refs, __ATOMIC_ACQUIRE));
    return 1;
}

static int fake_set(lua_State *L) {
    Fake *f = checkfake(L, 1);
    int k, n = lua_gettop(L) - 2;
    if (n > 4) n = 4;
    for (k = 0; k < f->nmsgs; k++) free(f->msgs[k]);
    f->nmsgs = 0;
    for (k = 0; k < n; k++) {
        size_t len;
        const char *s = luaL_checklstring(L, k + 3, &len);
        f->msgs[k] = malloc(len ? len : 1);
        if (!f->msgs[k]) break;
        memcpy(f->msgs[k], s, len);
        f->msglens[k] = len;
        f->nmsgs = k + 1;
    }
    __atomic_store_n(&f->rc, (int)luaL_checkinteger(L, 2), __ATOMIC_RELEASE);
    return 0;
}

static int fake_reenter(lua_State *L) {
    Fake *f = checkfake(L, 1);
    static const char *const modes[] = {"send", "recv", NULL};
    if (lua_isnoneornil(L, 2)) {
        fake_settarget(f, NULL, NULL, 0);
    } else {
        Ref *ref = checkref(L, 2);
        fake_settarget(f, &ref->api, ref->obj, luaL_checkoption(L, 3, NULL, modes) + 1);
    }
    f->reenter_rc = -1;
    return 0;
}

static int fake_reenterrc(lua_State *L) {
    lua_pushinteger(L, __atomic_load_n(&checkfake(L, 1)->reenter_rc, __ATOMIC_ACQUIRE));
    return 1;
}

static int fake_calledhere(lua_State *L) {
    Fake *f = checkfake(L, 1);
    lua_pushboolean(L, f->count > 0 && native_equal(f->last, native_self()));
    return 1;
}

/* ===== Native threads ===== */

enum { T_SEND, T_RECV, T_NOTIFY, T_RECVONE, T_HOG };

typedef struct Task {
    int kind;
    Apis api;
    void *obj;              /* retained for the task */
    long long id, n;        /* T_SEND: id, count; T_NOTIFY: count; T_HOG: size */
    int nonblock;
    double timeout;
    int stop;               /* atomic */
    /* results */
    long long ok, failed, empties, rounds;
    long long *pairs;       /* T_RECV: id, seq, ... */
    size_t npairs, cappairs;
    int rc;
    double seconds;
    int hasvalue;
    long long value;
} Task;

typedef struct Thread {
    NativeThread tid;
    Task *task;
    int running;
} Thread;

static void task_send(Task *t) {
    receiver_writer *w = t->api.r->newWriter(32, 2);
    long long seq;
    for (seq = 1; w && seq <= t->n; seq++) {
        int rc;
        t->api.r->addIntegerToWriter(w, (lua_Integer)t->id);
        t->api.r->addIntegerToWriter(w, (lua_Integer)seq);
        rc = t->api.r->msgToReceiver(t->obj, w, 0, 0, NULL, NULL);
        if (rc == 0) t->ok++;
        else { t->failed++; t->api.r->clearWriter(w); }
    }
    t->api.r->freeWriter(w);
}

static void task_recv(Task *t) {
    sender_reader *r = t->api.s->newReader(32, 2);
    for (;;) {
        sender_capi_value a, b;
        int rc = t->api.s->nextMessageFromSender(t->obj, r, 0, -1, NULL, NULL);
        if (rc != 0) { t->failed++; break; }
        t->api.s->nextValueFromReader(r, &a);
        if (a.type == SENDER_CAPI_TYPE_NONE) { t->empties++; continue; }
        if (a.type != SENDER_CAPI_TYPE_INTEGER) { t->failed++; continue; }
        if (a.intVal == -1) break;
        t->api.s->nextValueFromReader(r, &b);
        if (b.type != SENDER_CAPI_TYPE_INTEGER) { t->failed++; continue; }
        if (t->npairs + 2 > t->cappairs) {
            size_t nc = t->cappairs ? 2 * t->cappairs : 256;
            long long *np = realloc(t->pairs, nc * sizeof *np);
            if (!np) { t->failed++; break; }
            t->pairs = np;
            t->cappairs = nc;
        }
        t->pairs[t->npairs++] = (long long)a.intVal;
        t->pairs[t->npairs++] = (long long)b.intVal;
        t->ok++;
    }
    t->api.s->freeReader(r);
}

static void task_notify(Task *t) {
    long long k;
    for (k = 0; k < t->n; k++) {
        if (t->api.n->notify(t->obj, NULL, NULL) == 0) t->ok++;
        else t->failed++;
    }
}

static void task_recvone(Task *t) {
    sender_reader *r = t->api.s->newReader(32, 2);
    double t0 = now();
    t->rc = t->api.s->nextMessageFromSender(t->obj, r, t->nonblock, t->timeout, NULL, NULL);
    t->seconds = now() - t0;
    if (t->rc == 0) {
        sender_capi_value v;
        t->api.s->nextValueFromReader(r, &v);
        if (v.type == SENDER_CAPI_TYPE_INTEGER) { t->hasvalue = 1; t->value = v.intVal; }
    }
    t->api.s->freeReader(r);
}

static void task_hog(Task *t) {
    receiver_writer *w = t->api.r->newWriter((size_t)t->n + 64, 2);
    char *big = malloc((size_t)t->n);
    if (w && big) {
        memset(big, 'x', (size_t)t->n);
        /* At least one round, whenever stop comes: a test that stops the hog at once
         * (it met a busy lock that the hog did not cause) still checks that it sent. */
        do {
            t->api.r->addStringToWriter(w, big, (size_t)t->n);
            if (t->api.r->msgToReceiver(t->obj, w, 1, 0, NULL, NULL) != 0) {
                t->api.r->clearWriter(w);
                t->failed++;
            }
            t->rounds++;
        } while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE));
    }
    free(big);
    t->api.r->freeWriter(w);
}

static void thread_run(Task *t) {
    switch (t->kind) {
    case T_SEND: task_send(t); break;
    case T_RECV: task_recv(t); break;
    case T_NOTIFY: task_notify(t); break;
    case T_RECVONE: task_recvone(t); break;
    default: task_hog(t); break;
    }
    t->api.s->releaseSender(t->obj);        /* from this thread: release is thread safe */
}

#if defined(_WIN32)
static unsigned __stdcall thread_main(void *arg) {
    thread_run(arg);
    return 0;
}
/* Starts thread_main(t); 0 on success. */
static int native_start(NativeThread *tid, Task *t) {
    uintptr_t h = _beginthreadex(NULL, 0, thread_main, t, 0, NULL);
    if (h == 0) return -1;
    *tid = (HANDLE)h;
    return 0;
}
static void native_join(NativeThread tid) {
    WaitForSingleObject(tid, INFINITE);
    CloseHandle(tid);
}
#else
static void *thread_main(void *arg) {
    thread_run(arg);
    return NULL;
}
/* Starts thread_main(t); 0 on success. */
static int native_start(NativeThread *tid, Task *t) {
    return pthread_create(tid, NULL, thread_main, t);
}
static void native_join(NativeThread tid) { pthread_join(tid, NULL); }
#endif

static int p_start(lua_State *L) {
    static const char *const kinds[] = {"send", "recv", "notify", "recvone", "hog", NULL};
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    Ref *ref = checkref(L, 2);
    Thread *th;
    Task *t;
    th = lua_newuserdata(L, sizeof *th);
    th->running = 0;
    th->task = NULL;
    luaL_getmetatable(L, THREAD_MT);
    lua_setmetatable(L, -2);
    t = calloc(1, sizeof *t);
    if (!t) return luaL_error(L, "out of memory");
    th->task = t;
    t->kind = kind;
    t->api = ref->api;
    t->obj = ref->obj;
    switch (kind) {
    case T_SEND:
        t->id = (long long)luaL_checknumber(L, 3);
        t->n = (long long)luaL_checknumber(L, 4);
        break;
    case T_NOTIFY: case T_HOG:
        t->n = (long long)luaL_checknumber(L, 3);
        break;
    case T_RECVONE:
        t->nonblock = lua_toboolean(L, 3);
        t->timeout = luaL_optnumber(L, 4, -1);
        break;
    default: break;
    }
    t->api.s->retainSender(t->obj);
    if (native_start(&th->tid, t) != 0) {
        t->api.s->releaseSender(t->obj);
        return luaL_error(L, "cannot start a thread");
    }
    th->running = 1;
    return 1;
}

static void thread_reap(Thread *th) {
    if (th->running) {
        native_join(th->tid);
        th->running = 0;
    }
}

static void task_free(Task *t) {
    if (t) free(t->pairs);
    free(t);
}

static int thread_join(lua_State *L) {
    Thread *th = checkud(L, 1, THREAD_MT);
    Task *t = th->task;
    size_t k;
    int nres = 2;
    if (!t) return luaL_error(L, "already joined");
    thread_reap(th);
    switch (t->kind) {
    case T_SEND: case T_NOTIFY:
        lua_pushnumber(L, (lua_Number)t->ok);
        lua_pushnumber(L, (lua_Number)t->failed);
        break;
    case T_RECV:
        lua_createtable(L, (int)t->npairs, 0);
        for (k = 0; k < t->npairs; k++) {
            push_int(L, t->pairs[k]);
            lua_rawseti(L, -2, (int)k + 1);
        }
        lua_pushnumber(L, (lua_Number)t->empties);
        lua_pushnumber(L, (lua_Number)t->failed);
        break;
    case T_RECVONE:
        lua_pushinteger(L, t->rc);
        lua_pushnumber(L, t->seconds);
        if (t->hasvalue) push_int(L, t->value);
        else lua_pushnil(L);
        break;
    default:
        lua_pushnumber(L, (lua_Number)t->rounds);
        lua_pushnumber(L, (lua_Number)t->failed);
        break;
    }
    if (t->kind == T_RECV || t->kind == T_RECVONE) nres = 3;
    th->task = NULL;
    task_free(t);
    return nres;
}

static int thread_stop(lua_State *L) {
    Thread *th = checkud(L, 1, THREAD_MT);
    if (th->task) __atomic_store_n(&th->task->stop, 1, __ATOMIC_RELEASE);
    return 0;
}

static int thread_gc(lua_State *L) {
    Thread *th = lua_touserdata(L, 1);
    if (th->task) {
        __atomic_store_n(&th->task->stop, 1, __ATOMIC_RELEASE);
        thread_reap(th);
        task_free(th->task);
        th->task = NULL;
    }
    return 0;
}

/* ===== Module ===== */

static const luaL_Reg ref_methods[] = {
    {"retain", ref_retain}, {"release", ref_release}, {"ptr", ref_ptr},
    {"notify", ref_notify}, {"send", ref_send}, {"recv", ref_recv}, {NULL, NULL}
};
static const luaL_Reg writer_methods[] = {
    {"add", writer_add}, {"send", writer_send}, {"clear", writer_clear}, {"free", writer_free},
    {NULL, NULL}
};
static const luaL_Reg reader_methods[] = {
    {"recv", reader_recv}, {"values", reader_values}, {"next", reader_next},
    {"clear", reader_clear}, {"free", reader_free}, {NULL, NULL}
};
static const luaL_Reg fake_methods[] = {
    {"count", fake_count}, {"refs", fake_refs}, {"set", fake_set}, {"reenter", fake_reenter},
    {"reenterrc", fake_reenterrc}, {"calledhere", fake_calledhere}, {NULL, NULL}
};
static const luaL_Reg thread_methods[] = {
    {"join", thread_join}, {"stop", thread_stop}, {NULL, NULL}
};
static const luaL_Reg module_funcs[] = {
    {"lookup", p_lookup}, {"to", p_to}, {"sizes", p_sizes}, {"fake", p_fake},
    {"badmarker", p_badmarker}, {"lud", p_lud}, {"cfaddr", p_cfaddr},
    {"rawlen", p_rawlen}, {"ref", p_ref},
    {"newwriter", p_newwriter}, {"newreader", p_newreader}, {"newnotifier", p_newnotifier},
    {"start", p_start}, {NULL, NULL}
};

EXPORT int luaopen_capiprobe(lua_State *L);
int luaopen_capiprobe(lua_State *L) {
    newclass(L, REF_MT, ref_methods, ref_gc);
    newclass(L, WRITER_MT, writer_methods, writer_free);
    newclass(L, READER_MT, reader_methods, reader_free);
    newclass(L, THREAD_MT, thread_methods, thread_gc);
    newclass(L, NOTIFIER_MT, fake_methods, fake_gc);
    luaL_getmetatable(L, NOTIFIER_MT);
    pushmarker(L, &fake_notify_record, NOTIFY_CAPI_ID_STRING, 0);
    lua_setfield(L, -2, NOTIFY_CAPI_ID_STRING);
    lua_pop(L, 1);
    lua_newtable(L);
    setfuncs(L, module_funcs);
    return 1;
}
