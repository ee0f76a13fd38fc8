/*
 * fuzz_roundtrip: encoder -> decoder round trip (libFuzzer target). The input picks a
 * MemBuf size/grow and a list of values (nil, booleans, integers, floats with any bit
 * pattern, strings, light userdata, C function pointers, arrays); each is appended with
 * the put functions of codec.c. Checks:
 *  - a put either appends exactly the element's size (0.4.3's byte accounting) or nothing, with
 *    MSG_FULL / MSG_TOO_BIG only for a fixed size (TOO_BIG exactly when it can never fit);
 *  - mtmsg_codec_next gives back every appended value, bit for bit, then the end;
 *  - for the values a Lua state can hold, mtmsg_codec_encode of the same values on a
 *    Lua 5.4 stack writes the same bytes, and mtmsg_codec_decode pushes equal values;
 *  - the same values as keys and values of nested tables: the encoded size is the sum the
 *    table rules give, and decoding then encoding again gives the same size and counts.
 * Build and run: scripts/fuzz.sh (make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "codec.h"
#include "membuf.h"

#define FUZZ_CHECK(c) do { if (!(c)) { \
    fprintf(stderr, "fuzz_roundtrip: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

#define MAXVALS 4096

static lua_State *L;

typedef struct Reader { const uint8_t *p; size_t len, pos; } Reader;

static unsigned get8(Reader *r) { return r->pos < r->len ? r->p[r->pos++] : 0; }
static void getn(Reader *r, void *dst, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) ((unsigned char *)dst)[i] = (unsigned char)get8(r);
}
/* n bytes of the input as a pointer into it, or a fixed pattern past its end */
static const char *getbytes(Reader *r, size_t n) {
    static char pattern[65536];
    if (n <= r->len - r->pos) { const char *s = (const char *)r->p + r->pos; r->pos += n; return s; }
    if (!pattern[1]) { size_t i; for (i = 0; i < sizeof pattern; i++) pattern[i] = (char)(i * 7 + 1); }
    r->pos = r->len;
    return n <= sizeof pattern ? pattern : NULL;
}

/* Wire size of a value: the byte accounting of mtmsg 0.4.3 (docs/REFERENCE.md, "Message
 * sizes"), stated here from that table rather than taken from codec.h. */
static size_t wiresize(const MsgValue *v) {
    switch (v->type) {
    case VAL_NIL: return 1;
    case VAL_BOOL: return 2;
    case VAL_INT: return v->u.i >= 0 && v->u.i <= 255 ? 2 : 1 + sizeof(lua_Integer);
    case VAL_FLOAT: return 1 + sizeof(lua_Number);
    case VAL_STR: return (v->u.s.len <= 255 ? 2 : 1 + sizeof(size_t)) + v->u.s.len;
    case VAL_LUDATA: return 1 + sizeof(void *);
    case VAL_CFUNC: return 1 + sizeof(lua_CFunction);
    case VAL_ARRAY: return 3 + sizeof(size_t) + v->u.a.elemsize * v->u.a.count;
    default: abort();
    }
}

static int same_value(const MsgValue *a, const MsgValue *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case VAL_NIL: return 1;
    case VAL_BOOL: return !a->u.b == !b->u.b;
    case VAL_INT: return a->u.i == b->u.i;
    case VAL_FLOAT: return memcmp(&a->u.n, &b->u.n, sizeof(lua_Number)) == 0;
    case VAL_STR: return a->u.s.len == b->u.s.len && (a->u.s.len == 0 || memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    case VAL_LUDATA: return a->u.p == b->u.p;
    case VAL_CFUNC: return a->u.f == b->u.f;
    case VAL_ARRAY:
        return a->u.a.type == b->u.a.type && a->u.a.elemsize == b->u.a.elemsize
            && a->u.a.count == b->u.a.count
            && (a->u.a.elemsize * a->u.a.count == 0
                || memcmp(a->u.a.data, b->u.a.data, a->u.a.elemsize * a->u.a.count) == 0);
    default: return 0;
    }
}

static MsgStatus put(MemBuf *mb, const MsgValue *v) {
    switch (v->type) {
    case VAL_NIL: return mtmsg_codec_putnil(mb);
    case VAL_BOOL: return mtmsg_codec_putbool(mb, v->u.b);
    case VAL_INT: return mtmsg_codec_putint(mb, v->u.i);
    case VAL_FLOAT: return mtmsg_codec_putfloat(mb, v->u.n);
    case VAL_STR: return mtmsg_codec_putstr(mb, v->u.s.ptr, v->u.s.len);
    case VAL_LUDATA: return mtmsg_codec_putptr(mb, TAG_LUDATA, &v->u.p, sizeof v->u.p);
    case VAL_CFUNC: return mtmsg_codec_putptr(mb, TAG_CFUNC, &v->u.f, sizeof v->u.f);
    case VAL_ARRAY: {
        char *data = NULL;
        MsgStatus st = mtmsg_codec_putarray(mb, v->u.a.type, v->u.a.elemsize, v->u.a.count, &data);
        if (st == MSG_OK && v->u.a.elemsize * v->u.a.count)
            memcpy(data, v->u.a.data, v->u.a.elemsize * v->u.a.count);
        return st;
    }
    default: abort();
    }
}

static void push(lua_State *LS, const MsgValue *v) {
    switch (v->type) {
    case VAL_NIL: lua_pushnil(LS); break;
    case VAL_BOOL: lua_pushboolean(LS, v->u.b); break;
    case VAL_INT: lua_pushinteger(LS, (lua_Integer)v->u.i); break;
    case VAL_FLOAT: lua_pushnumber(LS, v->u.n); break;
    case VAL_STR: lua_pushlstring(LS, v->u.s.ptr, v->u.s.len); break;
    case VAL_LUDATA: lua_pushlightuserdata(LS, v->u.p); break;
    case VAL_CFUNC: lua_pushcfunction(LS, v->u.f); break;
    default: abort();
    }
}

typedef struct LuaLeg {
    const MsgValue *vals;
    int n;
    const MemBuf *expect;
} LuaLeg;

/* lua_CFunction: pushes the values, encodes them, compares bytes, decodes, compares. */
static int lua_leg(lua_State *LS) {
    LuaLeg *leg = lua_touserdata(LS, 1);
    MemBuf out;
    int i, badarg = 0, n;
    const char *badmsg = NULL;
    size_t pos = 0;
    MsgStatus st;
    lua_settop(LS, 0);
    luaL_checkstack(LS, leg->n + 40, "values");
    for (i = 0; i < leg->n; i++) push(LS, &leg->vals[i]);
    mtmsg_membuf_init(&out, 0, 2);
    st = mtmsg_codec_encode(LS, 1, leg->n, &out, &badarg, &badmsg);
    FUZZ_CHECK(st == MSG_OK);
    FUZZ_CHECK(out.len == leg->expect->len);
    FUZZ_CHECK(out.len == 0 || memcmp(mtmsg_membuf_begin(&out),
                                      mtmsg_membuf_begin((MemBuf *)leg->expect), out.len) == 0);
    n = mtmsg_codec_decode(LS, mtmsg_membuf_begin(&out), out.len, &pos, -1, NULL);
    mtmsg_membuf_free(&out);
    FUZZ_CHECK(n == leg->n && lua_gettop(LS) == 2 * leg->n);
    for (i = 1; i <= n; i++) {
        int a = i, b = i + n;
        if (lua_type(LS, a) == LUA_TNUMBER && !lua_isinteger(LS, a)) {
            lua_Number x = lua_tonumber(LS, a), y;
            FUZZ_CHECK(lua_type(LS, b) == LUA_TNUMBER && !lua_isinteger(LS, b));
            y = lua_tonumber(LS, b);
            FUZZ_CHECK(memcmp(&x, &y, sizeof x) == 0);
        } else {
            FUZZ_CHECK(lua_type(LS, a) == lua_type(LS, b));
            FUZZ_CHECK(lua_rawequal(LS, a, b));
            if (lua_type(LS, a) == LUA_TNUMBER) FUZZ_CHECK(lua_isinteger(LS, b));
        }
    }
    lua_settop(LS, 0);
    return 0;
}

/* lua_CFunction: builds nested tables from the input bytes (keys and values from the
 * values list, nesting up to 4 levels), encodes them, decodes them, encodes the result
 * again: the same size and the same counts (the order of pairs may differ), and the
 * sizes the encoder gives add up as docs/REFERENCE.md states for tables. */
typedef struct TableLeg { const MsgValue *vals; int n; const uint8_t *shape; size_t nshape; } TableLeg;

static size_t table_size(size_t narr, size_t nhash) {
    return (narr <= 255 && nhash <= 255) ? 3 : 1 + 2 * sizeof(size_t);
}

static size_t build(lua_State *LS, TableLeg *tl, size_t *si, int *vi, int depth) {
    size_t narr = 0, nhash = 0, size = 0, want, k;
    unsigned s = *si < tl->nshape ? tl->shape[(*si)++] : 0;
    lua_newtable(LS);
    want = s % 8;
    for (k = 0; k < want && tl->n > 0; k++) {
        const MsgValue *v = &tl->vals[(*vi)++ % tl->n];
        if (v->type == VAL_NIL) continue;
        if ((s >> 3) & 1 && depth < 4 && k == 0) size += build(LS, tl, si, vi, depth + 1);
        else { push(LS, v); size += wiresize(v); }
        lua_rawseti(LS, -2, (lua_Integer)++narr);
    }
    want = (s >> 4) % 8;
    for (k = 0; k < want && tl->n > 0; k++) {
        const MsgValue *key = &tl->vals[(*vi)++ % tl->n];
        const MsgValue *v = &tl->vals[(*vi)++ % tl->n];
        size_t vs;
        if (key->type == VAL_NIL || v->type == VAL_NIL) continue;
        if (key->type == VAL_FLOAT && key->u.n != key->u.n) continue;
        if (key->type == VAL_INT && key->u.i >= 1 && (size_t)key->u.i <= narr + 1) continue;
        if (key->type == VAL_FLOAT) continue;       /* may collide with integer keys */
        push(LS, key);
        lua_pushvalue(LS, -1);
        lua_rawget(LS, -3);
        if (!lua_isnil(LS, -1)) { lua_pop(LS, 2); continue; }     /* key taken */
        lua_pop(LS, 1);
        if ((s >> 7) & 1 && depth < 4 && k == 0) vs = build(LS, tl, si, vi, depth + 1);
        else { push(LS, v); vs = wiresize(v); }
        lua_rawset(LS, -3);
        size += wiresize(key) + vs;
        nhash++;
    }
    return size + table_size(narr, nhash);
}

static int table_leg(lua_State *LS) {
    TableLeg *tl = lua_touserdata(LS, 1);
    MemBuf a, b;
    int badarg = 0, vi = 0;
    const char *badmsg = NULL;
    size_t si = 0, pos = 0, expect;
    MsgValue va, vb;
    lua_settop(LS, 0);
    expect = build(LS, tl, &si, &vi, 1);
    mtmsg_membuf_init(&a, 0, 2);
    mtmsg_membuf_init(&b, 0, 2);
    FUZZ_CHECK(mtmsg_codec_encode(LS, 1, 1, &a, &badarg, &badmsg) == MSG_OK);
    FUZZ_CHECK(a.len == expect);
    FUZZ_CHECK(mtmsg_codec_decode(LS, mtmsg_membuf_begin(&a), a.len, &pos, -1, NULL) == 1);
    FUZZ_CHECK(pos == a.len && lua_istable(LS, 2));
    FUZZ_CHECK(mtmsg_codec_encode(LS, 2, 2, &b, &badarg, &badmsg) == MSG_OK);
    FUZZ_CHECK(b.len == a.len);
    pos = 0;
    FUZZ_CHECK(mtmsg_codec_next(mtmsg_membuf_begin(&a), a.len, &pos, &va) == 1 && pos == a.len);
    pos = 0;
    FUZZ_CHECK(mtmsg_codec_next(mtmsg_membuf_begin(&b), b.len, &pos, &vb) == 1 && pos == b.len);
    FUZZ_CHECK(va.type == VAL_TABLE && vb.type == VAL_TABLE);
    FUZZ_CHECK(va.u.t.narr + va.u.t.nhash == vb.u.t.narr + vb.u.t.nhash);
    mtmsg_membuf_free(&a);
    mtmsg_membuf_free(&b);
    lua_settop(LS, 0);
    return 0;
}

/* At exit: closing the state frees all it holds, so LeakSanitizer sees real leaks only. */
static void close_state(void) { lua_close(L); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = luaL_newstate();
    if (!L) abort();
    atexit(close_state);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t sizes[8] = {0, 1, 7, 16, 64, 256, 1024, 5};
    static const double grows[5] = {0, 0.5, 1, 1.5, 2};
    static MsgValue vals[MAXVALS];
    Reader r = {data, size, 0};
    MemBuf mb;
    int nvals = 0, luaok = 1, i;
    size_t pos = 0;
    unsigned cfg = get8(&r);
    double grow = grows[(cfg >> 3) % 5];
    mtmsg_membuf_init(&mb, sizes[cfg & 7], grow);

    while (r.pos < r.len && nvals < MAXVALS) {
        MsgValue v;
        size_t before = mb.len, ws;
        MsgStatus st;
        unsigned tag = get8(&r);
        memset(&v, 0, sizeof v);
        switch (tag % 10) {
        case 0: v.type = VAL_NIL; break;
        case 1: v.type = VAL_BOOL; v.u.b = (tag >> 4) & 1; break;
        case 2: {                                   /* integers near the interesting edges */
            static const long long edges[8] = {0, 255, 128, -1, -64, 1LL << 53, INT64_MAX, INT64_MIN};
            unsigned e = (tag >> 4) & 7;
            long long d = (long long)(signed char)get8(&r);
            v.type = VAL_INT;
            v.u.i = (lua_Integer)(e >= 6 ? edges[e] : edges[e] + d);          /* no overflow at the ends */
            break;
        }
        case 3: { uint64_t u; v.type = VAL_INT; getn(&r, &u, 8); v.u.i = (lua_Integer)u; break; }
        case 4: v.type = VAL_FLOAT; getn(&r, &v.u.n, sizeof v.u.n); break;
        case 5: {
            size_t len = get8(&r);
            if (tag & 0x10) len = len * 37 + get8(&r);           /* up to ~9.7 KB */
            v.type = VAL_STR; v.u.s.len = len; v.u.s.ptr = getbytes(&r, len);
            if (!v.u.s.ptr) continue;
            break;
        }
        case 6: v.type = VAL_LUDATA; getn(&r, &v.u.p, sizeof v.u.p); break;
        case 7: v.type = VAL_CFUNC; getn(&r, &v.u.f, sizeof v.u.f); if (!v.u.f) luaok = 0; break;
        default: {
            v.type = VAL_ARRAY;
            v.u.a.type = (int)get8(&r);
            v.u.a.elemsize = get8(&r) % 17;
            v.u.a.count = v.u.a.elemsize ? get8(&r) % 64 : 0;
            v.u.a.data = getbytes(&r, v.u.a.elemsize * v.u.a.count);
            if (!v.u.a.data) continue;
            luaok = 0;
            break;
        }
        }
        ws = wiresize(&v);
        st = put(&mb, &v);
        if (st == MSG_OK) {
            FUZZ_CHECK(mb.len == before + ws);
            vals[nvals++] = v;
        } else {
            FUZZ_CHECK(mb.len == before);
            FUZZ_CHECK(grow == 0);
            FUZZ_CHECK(st == (ws > mb.cap ? MSG_TOO_BIG : MSG_FULL));
            luaok = 0;                  /* the Lua leg encodes everything in one go */
        }
        FUZZ_CHECK(mb.len <= mb.cap && (mb.len == 0 || mb.start + mb.len <= mb.cap));
    }

    /* parse back */
    for (i = 0; i < nvals; i++) {
        MsgValue got;
        FUZZ_CHECK(mtmsg_codec_next(mtmsg_membuf_begin(&mb), mb.len, &pos, &got) == 1);
        FUZZ_CHECK(same_value(&got, &vals[i]));
    }
    {
        MsgValue end;
        FUZZ_CHECK(mtmsg_codec_next(mtmsg_membuf_begin(&mb), mb.len, &pos, &end) == 0);
        FUZZ_CHECK(pos == mb.len);
    }

    if (luaok) {
        LuaLeg leg;
        leg.vals = vals; leg.n = nvals; leg.expect = &mb;
        lua_settop(L, 0);
        lua_pushcfunction(L, lua_leg);
        lua_pushlightuserdata(L, &leg);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            FUZZ_CHECK(msg && strstr(msg, "not enough memory"));
        }
        lua_settop(L, 0);
    }
    if (luaok && nvals > 0) {                   /* the same values inside tables */
        TableLeg tl;
        tl.vals = vals; tl.n = nvals; tl.shape = data; tl.nshape = size;
        lua_settop(L, 0);
        lua_pushcfunction(L, table_leg);
        lua_pushlightuserdata(L, &tl);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            FUZZ_CHECK(msg && strstr(msg, "not enough memory"));
        }
        lua_settop(L, 0);
    }
    mtmsg_membuf_free(&mb);
    return 0;
}
