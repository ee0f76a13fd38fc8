/*
 * fuzz_codec: the message parser over arbitrary bytes (libFuzzer target).
 *  1. mtmsg_codec_next element by element: it must stop at the end (0) or report
 *     malformed bytes (-1), always advance, and every string/array it returns must lie
 *     inside the input (ASan checks the reads: the bytes are copied out).
 *  2. mtmsg_codec_getheader as the frame reader of a buffer queue (header, payload).
 *  3. mtmsg_codec_decode onto a Lua 5.4 stack (in a protected call): -1 exactly when the
 *     parser found malformed bytes, else the same number and values as step 1. Array
 *     elements may raise a Lua error instead (carray creation), never crash. Tables
 *     (validated whole by the parser: nesting depth, key rules, counts bounded by the
 *     bytes) decode to plain tables with at most the counted entries.
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
    fprintf(stderr, "fuzz_codec: check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
    abort(); } } while (0)

int luaopen_carray(lua_State *L);      /* tests/mod/carray.c, linked in */

static lua_State *L;
static volatile unsigned sink;      /* keeps the copied bytes alive */

typedef struct Input {
    const char *p;
    size_t len;
    int max;            /* max values per decode call, < 0: all */
    int n;              /* decoded values (result) */
    int malformed;
} Input;

/* lua_CFunction: decodes the whole input in chunks of `max`, checking each value. */
static int decode_all(lua_State *LS) {
    Input *in = lua_touserdata(LS, 1);
    size_t pos = 0, ppos = 0;
    int total = 0;
    lua_settop(LS, 0);
    for (;;) {
        size_t before = pos;
        int i, n = mtmsg_codec_decode(LS, in->p, in->len, &pos, in->max, NULL);
        if (n < 0) { in->malformed = 1; break; }
        FUZZ_CHECK(lua_gettop(LS) == n);
        FUZZ_CHECK(pos >= before && pos <= in->len);
        /* compare with a second parse of the same elements */
        for (i = 1; i <= n; i++) {
            MsgValue v;
            FUZZ_CHECK(mtmsg_codec_next(in->p, in->len, &ppos, &v) == 1);
            switch (v.type) {
            case VAL_NIL: FUZZ_CHECK(lua_isnil(LS, i)); break;
            case VAL_BOOL: FUZZ_CHECK(lua_isboolean(LS, i) && lua_toboolean(LS, i) == v.u.b); break;
            case VAL_INT:
                FUZZ_CHECK(lua_isinteger(LS, i) && lua_tointeger(LS, i) == (lua_Integer)v.u.i);
                break;
            case VAL_FLOAT: {
                lua_Number x = lua_tonumber(LS, i);
                FUZZ_CHECK(lua_type(LS, i) == LUA_TNUMBER && !lua_isinteger(LS, i));
                FUZZ_CHECK(memcmp(&x, &v.u.n, sizeof x) == 0);
                break;
            }
            case VAL_STR: {
                size_t l;
                const char *s = lua_tolstring(LS, i, &l);
                FUZZ_CHECK(lua_type(LS, i) == LUA_TSTRING && l == v.u.s.len);
                FUZZ_CHECK(l == 0 || memcmp(s, v.u.s.ptr, l) == 0);
                break;
            }
            case VAL_LUDATA:
                FUZZ_CHECK(lua_islightuserdata(LS, i) && lua_touserdata(LS, i) == v.u.p);
                break;
            case VAL_CFUNC:
                FUZZ_CHECK(lua_iscfunction(LS, i) && lua_tocfunction(LS, i) == v.u.f);
                break;
            case VAL_ARRAY:
                FUZZ_CHECK(lua_type(LS, i) == LUA_TUSERDATA);
                break;
            case VAL_TABLE: {                   /* the counts are those of the bytes */
                size_t cnt = 0;
                FUZZ_CHECK(lua_type(LS, i) == LUA_TTABLE && lua_getmetatable(LS, i) == 0);
                lua_pushnil(LS);
                while (lua_next(LS, i)) { cnt++; lua_pop(LS, 1); }
                FUZZ_CHECK(cnt <= v.u.t.narr + v.u.t.nhash);   /* duplicate keys: last wins */
                FUZZ_CHECK(lua_rawlen(LS, i) >= v.u.t.narr || v.u.t.narr == 0);
                break;
            }
            default:
                FUZZ_CHECK(0 && "unexpected value type");
            }
        }
        FUZZ_CHECK(ppos == pos);
        total += n;
        lua_settop(LS, 0);
        if (n == 0 || pos == in->len) {
            if (n == 0) FUZZ_CHECK(pos == in->len || in->max == 0);
            break;
        }
    }
    in->n = total;
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
    luaL_openlibs(L);
    /* array elements become carrays of the test-only carray module */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_carray);
    lua_setfield(L, -2, "carray");
    lua_pop(L, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p;
    char *copy;
    size_t pos = 0, elems = 0, arrays = 0;
    int r;
    MsgValue v;
    Input in;
    /* A private copy whose end is the end of a heap block: any overread is caught. */
    copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    p = copy;

    /* 1. element parser */
    for (;;) {
        size_t before = pos;
        r = mtmsg_codec_next(p, size, &pos, &v);
        if (r != 1) break;
        FUZZ_CHECK(pos > before && pos <= size);
        elems++;
        switch (v.type) {
        case VAL_STR:
            FUZZ_CHECK(v.u.s.len <= size);
            FUZZ_CHECK(v.u.s.ptr >= p && v.u.s.len <= (size_t)(p + size - v.u.s.ptr));
            if (v.u.s.len) sink += (unsigned char)v.u.s.ptr[0] + (unsigned char)v.u.s.ptr[v.u.s.len - 1];
            break;
        case VAL_ARRAY: {
            size_t bytes = v.u.a.elemsize * v.u.a.count;
            arrays++;
            FUZZ_CHECK(v.u.a.elemsize == 0 || v.u.a.count <= size / v.u.a.elemsize);
            FUZZ_CHECK(v.u.a.data >= p && bytes <= (size_t)(p + size - v.u.a.data));
            if (bytes) sink += (unsigned char)v.u.a.data[0] + (unsigned char)v.u.a.data[bytes - 1];
            break;
        }
        case VAL_TABLE:
            FUZZ_CHECK(v.u.t.data >= p && v.u.t.len <= (size_t)(p + size - v.u.t.data));
            FUZZ_CHECK(v.u.t.narr + 2 * v.u.t.nhash <= v.u.t.len);
            if (v.u.t.len) sink += (unsigned char)v.u.t.data[v.u.t.len - 1];
            if (mtmsg_codec_tablehasarray(&v)) arrays++;       /* decoded as new carrays */
            break;
        case VAL_NIL: case VAL_BOOL: case VAL_INT: case VAL_FLOAT: case VAL_LUDATA: case VAL_CFUNC:
            break;
        default:
            FUZZ_CHECK(0 && "unexpected value type");
        }
    }
    FUZZ_CHECK(r == 0 || r == -1);
    if (r == 0) FUZZ_CHECK(pos == size && v.type == VAL_NONE);
    else FUZZ_CHECK(pos < size);
    /* the decoder builds a table while it checks it: an array inside a malformed table
     * may raise its carray error before the malformed byte is reached */
    if (r < 0 && (unsigned char)p[pos] != TAG_ARRAY && memchr(p + pos, TAG_ARRAY, size - pos))
        arrays++;

    /* 2. queue frames: header + payload, as mtmsg_buffer_pop_locked reads them */
    {
        size_t fpos = 0, flen, at = 0;
        while (mtmsg_codec_getheader(p, size, &fpos, &flen)) {
            FUZZ_CHECK(fpos <= size && fpos - at == mtmsg_codec_headerlen(flen));
            if (flen > size - fpos) break;
            if (flen) sink += (unsigned char)p[fpos + flen - 1];
            fpos += flen;
            at = fpos;
        }
    }

    /* 3. decode onto a Lua stack, all at once and in chunks of 1..4 values */
    if (arrays == 0) {
        int max;
        for (max = -1; max <= 4; max += (max < 0 ? 2 : 3)) {     /* -1, 1, 4 */
            memset(&in, 0, sizeof in);
            in.p = p; in.len = size; in.max = max;
            lua_settop(L, 0);
            lua_pushcfunction(L, decode_all);
            lua_pushlightuserdata(L, &in);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
                /* only Lua's own memory errors are acceptable here */
                const char *msg = lua_tostring(L, -1);
                if (!(msg && strstr(msg, "not enough memory")))
                    fprintf(stderr, "fuzz_codec: unexpected error: %s\n", msg ? msg : "?");
                FUZZ_CHECK(msg && strstr(msg, "not enough memory"));
                continue;
            }
            FUZZ_CHECK(in.malformed == (r < 0));
            if (!in.malformed) FUZZ_CHECK((size_t)in.n == elems);
        }
    } else {
        /* arrays become carrays (or a Lua error without carray support): no crash */
        memset(&in, 0, sizeof in);
        in.p = p; in.len = size; in.max = -1;
        lua_settop(L, 0);
        lua_pushcfunction(L, decode_all);
        lua_pushlightuserdata(L, &in);
        (void)lua_pcall(L, 1, 0, 0);
    }
    lua_settop(L, 0);
    free(copy);
    /* Lua paces its collector by its own heap only; the carrays' storage is malloc'd
     * outside it, so garbage would pile up between cycles: collect now and then */
    {
        static unsigned calls;
        if (++calls % 1024 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
    }
    return 0;
}
