/*
 * fuzz_reader: reader:next over arbitrary message bytes (libFuzzer target). The reader's
 * private MemBuf is filled with the input (reader.c is compiled into this file so the
 * Reader struct is visible), then reader:next is called from Lua with counts taken from
 * the input (nil, 0, 1, 2, 5, huge, negative, inf, fractional, a bad carray argument) until
 * it returns nothing. Every value must equal what mtmsg_codec_next parses at that
 * position, the reader position must always sit on an element boundary, errors must be
 * clean Lua errors (argument errors consume nothing; an array element that cannot become
 * a carray is either consumed or stops the reader until clear()), and the end must be
 * reached.
 *
 * A queue only ever holds bytes written by the encoder, and reader:next treats malformed
 * bytes as a bug (abort). So the input is cut at its first malformed element: the valid
 * prefix is still any sequence of elements (pointers, function pointers, odd floats,
 * strings of any length, arrays of any element type and size).
 * Build and run: scripts/fuzz.sh (make fuzz).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lualib.h"

#include "../src/reader.c"

#define FUZZ_CHECK(c) do { if (!(c)) { \
    fprintf(stderr, "fuzz_reader: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

#define MAXELEMS 8192

static lua_State *L;
static size_t bounds[MAXELEMS + 1];     /* offset of element i */
static MsgValue elems[MAXELEMS];

int luaopen_mtmsg(lua_State *L);
int luaopen_carray(lua_State *L);      /* tests/mod/carray.c, linked in */

/* At exit: closing the state frees all it holds, so LeakSanitizer sees real leaks only. */
static void close_state(void) { lua_close(L); }

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    L = luaL_newstate();
    if (!L) abort();
    atexit(close_state);
    luaL_openlibs(L);
    luaL_requiref(L, "mtmsg", luaopen_mtmsg, 1);
    lua_setglobal(L, "mtmsg");
    /* array elements become carrays of the test-only carray module */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_carray);
    lua_setfield(L, -2, "carray");
    lua_pop(L, 1);
    return 0;
}

/* Index of the element that starts at offset pos (or nelems at the end); -1 if none. */
static int element_at(size_t pos, int nelems) {
    int lo = 0, hi = nelems;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (bounds[mid] == pos) return mid;
        if (bounds[mid] < pos) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

static void check_value(lua_State *LS, int idx, const MsgValue *v) {
    switch (v->type) {
    case VAL_NIL: FUZZ_CHECK(lua_isnil(LS, idx)); break;
    case VAL_BOOL: FUZZ_CHECK(lua_isboolean(LS, idx) && lua_toboolean(LS, idx) == v->u.b); break;
    case VAL_INT: FUZZ_CHECK(lua_isinteger(LS, idx) && lua_tointeger(LS, idx) == (lua_Integer)v->u.i); break;
    case VAL_FLOAT: {
        lua_Number x = lua_tonumber(LS, idx);
        FUZZ_CHECK(lua_type(LS, idx) == LUA_TNUMBER && !lua_isinteger(LS, idx));
        FUZZ_CHECK(memcmp(&x, &v->u.n, sizeof x) == 0);
        break;
    }
    case VAL_STR: {
        size_t l;
        const char *s = lua_tolstring(LS, idx, &l);
        FUZZ_CHECK(lua_type(LS, idx) == LUA_TSTRING && l == v->u.s.len);
        FUZZ_CHECK(l == 0 || memcmp(s, v->u.s.ptr, l) == 0);
        break;
    }
    case VAL_LUDATA: FUZZ_CHECK(lua_islightuserdata(LS, idx) && lua_touserdata(LS, idx) == v->u.p); break;
    case VAL_CFUNC: FUZZ_CHECK(lua_iscfunction(LS, idx) && lua_tocfunction(LS, idx) == v->u.f); break;
    case VAL_ARRAY: FUZZ_CHECK(lua_type(LS, idx) == LUA_TUSERDATA); break;
    case VAL_TABLE: FUZZ_CHECK(lua_type(LS, idx) == LUA_TTABLE); break;
    default: FUZZ_CHECK(0 && "unexpected value type");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const lua_Number counts[8] = {1, 0, 2, 5, 1e9, -3, HUGE_VAL, 2.5};
    const uint8_t *ops;
    const char *payload;
    size_t nops, plen, pos = 0;
    int nelems = 0, next = 0, reader, op = 0, guard = 0;
    Reader *r;
    MsgValue v;
    MsgStatus st;

    if (size < 2) return 0;
    nops = data[0] % 16;                 /* the first bytes choose the next() calls */
    if (size < 1 + nops) return 0;
    ops = data + 1;
    payload = (const char *)data + 1 + nops;
    plen = size - 1 - nops;

    /* valid prefix: element boundaries, cut at the first malformed element */
    bounds[0] = 0;
    while (nelems < MAXELEMS) {
        size_t before = pos;
        if (mtmsg_codec_next(payload, plen, &pos, &v) != 1) { pos = before; break; }
        elems[nelems++] = v;
        bounds[nelems] = pos;
    }
    plen = pos;

    lua_settop(L, 0);
    lua_getglobal(L, "mtmsg");
    lua_getfield(L, -1, "newreader");
    lua_remove(L, -2);
    if (ops[0] & 1) { lua_pushinteger(L, 16); lua_pushnumber(L, 0); lua_call(L, 2, 1); }
    else lua_call(L, 0, 1);
    reader = lua_gettop(L);
    r = luaL_checkudata(L, reader, MTMSG_READER_MT);
    st = mtmsg_membuf_reset(&r->mb, plen);
    if (st != MSG_OK) { FUZZ_CHECK(st == MSG_TOO_BIG && (ops[0] & 1)); lua_settop(L, 0); return 0; }
    if (plen) memcpy(mtmsg_membuf_begin(&r->mb), payload, plen);
    r->mb.len = plen;
    r->pos = 0;

    for (;;) {
        /* after 64 calls only plain next(), which always makes progress */
        unsigned o = (nops && guard < 64) ? ops[op++ % nops] : 0;
        int base = lua_gettop(L), n, i, status, at;
        FUZZ_CHECK(++guard < 4 * MAXELEMS + 64);
        lua_getfield(L, reader, "next");
        lua_pushvalue(L, reader);
        switch (o >> 5) {
        case 0: break;                                   /* next() */
        case 1: lua_pushnil(L); break;                   /* next(nil) */
        case 2: lua_pushinteger(L, 1); lua_newtable(L); break;   /* bad carray: argument error */
        case 3: lua_pushstring(L, "x"); break;           /* argument error */
        default: lua_pushnumber(L, counts[o & 7]); break;
        }
        status = lua_pcall(L, lua_gettop(L) - base - 1, LUA_MULTRET, 0);
        at = element_at(r->pos, nelems);
        FUZZ_CHECK(at >= next);                          /* on a boundary, never backwards */
        if (status != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            FUZZ_CHECK(msg != NULL);
            if (strstr(msg, "bad argument")) FUZZ_CHECK(at == next);   /* nothing consumed */
            else {
                /* only array elements (carray module or creation) or Lua memory may
                 * raise: an array among the elements this call asked for */
                lua_Number c = (o >> 5) >= 4 ? counts[o & 7] : 1;
                int k, arr = 0, upto = c >= nelems - next ? nelems : next + (int)c;
                for (k = next; k < upto || k < at; k++)
                    arr |= elems[k].type == VAL_ARRAY
                           || (elems[k].type == VAL_TABLE && mtmsg_codec_tablehasarray(&elems[k]));
                if (!(arr || strstr(msg, "not enough memory")))
                    fprintf(stderr, "fuzz_reader: unexpected error: %s\n", msg);
                FUZZ_CHECK(arr || strstr(msg, "not enough memory"));
                if (at == next) {
                    /* Nothing consumed: reader:next decodes into a local position, so an
                     * element that cannot be created raises again on every call. The
                     * reader must stay usable: clear() empties it. */
                    lua_settop(L, base);
                    lua_getfield(L, reader, "clear");
                    lua_pushvalue(L, reader);
                    lua_call(L, 1, 0);
                    lua_getfield(L, reader, "next");
                    lua_pushvalue(L, reader);
                    lua_call(L, 1, LUA_MULTRET);
                    FUZZ_CHECK(lua_gettop(L) == base);          /* empty after clear */
                    break;
                }
            }
            next = at;
            lua_settop(L, base);
            continue;
        }
        FUZZ_CHECK((o >> 5) != 2 && (o >> 5) != 3);         /* those must raise */
        n = lua_gettop(L) - base;
        FUZZ_CHECK(at - next == n);
        for (i = 0; i < n; i++) check_value(L, base + 1 + i, &elems[next + i]);
        next = at;
        lua_settop(L, base);
        if (n == 0) {
            lua_Number c = (o >> 5) >= 4 ? counts[o & 7] : 1;
            if (c >= 1) { FUZZ_CHECK(next == nelems); break; }   /* the end */
            FUZZ_CHECK(c <= 0);                                  /* next(0), next(-3) */
        } else {
            lua_Number c = (o >> 5) >= 4 ? counts[o & 7] : 1;
            FUZZ_CHECK(c >= n);
        }
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
