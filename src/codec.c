/*
 * Message codec (see codec.h and the wire format in docs/DESIGN.md). Every read is
 * bounds-checked in the overflow-proof form `n <= len - pos`, so arbitrary bytes
 * can be parsed safely (the fuzz targets rely on it).
 */
#include "codec.h"

#include <math.h>
#include <string.h>

#include "carray.h"
#include "compat.h"

size_t mtmsg_codec_putheader(char *dst, size_t payload) {
    if (payload < MTMSG_HEADER_SHORT) {
        dst[0] = (char)payload;
        return 1;
    }
    dst[0] = (char)MTMSG_HEADER_SHORT;
    memcpy(dst + 1, &payload, sizeof payload);
    return 1 + sizeof payload;
}

int mtmsg_codec_getheader(const char *p, size_t len, size_t *pos, size_t *payload) {
    size_t i = *pos, n;
    if (i >= len) return 0;
    n = (unsigned char)p[i++];
    if (n == MTMSG_HEADER_SHORT) {
        if (sizeof n > len - i) return 0;
        memcpy(&n, p + i, sizeof n);
        i += sizeof n;
        if (n < MTMSG_HEADER_SHORT) return 0;          /* only one header per length */
    }
    *pos = i;
    *payload = n;
    return 1;
}

/* An element larger than size_t can count: never fits, or no memory for it. */
static MsgStatus overflow(MemBuf *mb) {
    if (mb->grow == 0) return MSG_TOO_BIG;
    mb->failsize = (size_t)-1;
    return MSG_NOMEM;
}

/* Reserves n bytes and returns where to write them, or NULL with *st set. */
static inline char *grab(MemBuf *mb, size_t n, MsgStatus *st) {
    char *p;
    *st = mtmsg_membuf_reserve(mb, n);
    if (*st != MSG_OK) return NULL;
    p = mtmsg_membuf_end(mb);
    mb->len += n;
    return p;
}

MsgStatus mtmsg_codec_putnil(MemBuf *mb) {
    MsgStatus st;
    char *p = grab(mb, MTMSG_SIZE_NIL, &st);
    if (p) *p = TAG_NIL;
    return st;
}

MsgStatus mtmsg_codec_putbool(MemBuf *mb, int b) {
    MsgStatus st;
    char *p = grab(mb, MTMSG_SIZE_BOOL, &st);
    if (p) { p[0] = TAG_BOOL; p[1] = (char)(b != 0); }
    return st;
}

MsgStatus mtmsg_codec_putint(MemBuf *mb, lua_Integer i) {
    MsgStatus st;
    char *p;
    if (i >= 0 && i <= MTMSG_BYTE_MAX) {
        p = grab(mb, MTMSG_SIZE_BYTE, &st);
        if (p) { p[0] = TAG_BYTE; p[1] = (char)(unsigned char)i; }
    } else {
        p = grab(mb, MTMSG_SIZE_INT, &st);
        if (p) { p[0] = TAG_INT; memcpy(p + 1, &i, sizeof i); }
    }
    return st;
}

MsgStatus mtmsg_codec_putfloat(MemBuf *mb, lua_Number n) {
    MsgStatus st;
    char *p = grab(mb, MTMSG_SIZE_FLOAT, &st);
    if (p) { p[0] = TAG_FLOAT; memcpy(p + 1, &n, sizeof n); }
    return st;
}

#if !MTMSG_HAS_INTEGERS
/* -0.0 where numbers have no integer subtype: it counts as the integer 0 (2 bytes)
 * there, and keeps its sign. */
static MsgStatus putnegzero(MemBuf *mb) {
    MsgStatus st;
    char *p = grab(mb, MTMSG_SIZE_NEGZERO, &st);
    if (p) { p[0] = TAG_NEGZERO; p[1] = 0; }
    return st;
}
#endif

MsgStatus mtmsg_codec_putstr(MemBuf *mb, const char *s, size_t len) {
    MsgStatus st;
    size_t size = mtmsg_codec_strsize(len);
    char *p;
    if (size == 0) return overflow(mb);
    p = grab(mb, size, &st);
    if (!p) return st;
    if (len <= MTMSG_STR8_MAX) {
        p[0] = TAG_STR8;
        p[1] = (char)(unsigned char)len;
        p += MTMSG_SIZE_STR8;
    } else {
        p[0] = TAG_STR;
        memcpy(p + 1, &len, sizeof len);
        p += MTMSG_SIZE_STR;
    }
    if (len) memcpy(p, s, len);
    return MSG_OK;
}

MsgStatus mtmsg_codec_putptr(MemBuf *mb, int tag, const void *ptr, size_t size) {
    MsgStatus st;
    char *p = grab(mb, 1 + size, &st);
    if (p) { *p = (char)tag; memcpy(p + 1, ptr, size); }
    return st;
}

MsgStatus mtmsg_codec_putarray(MemBuf *mb, int type, size_t elemsize, size_t count, char **data) {
    MsgStatus st;
    char *p;
    if (type < 0 || type > 255 || elemsize > MTMSG_ELEMSIZE_MAX || (elemsize == 0 && count > 0))
        return MSG_BADARG;
    if (elemsize && count > ((size_t)-1 - MTMSG_SIZE_ARRAY) / elemsize)
        return overflow(mb);
    p = grab(mb, MTMSG_SIZE_ARRAY + elemsize * count, &st);
    if (!p) return st;
    p[0] = (char)TAG_ARRAY;
    p[1] = (char)(unsigned char)type;
    p[2] = (char)(unsigned char)elemsize;
    memcpy(p + 3, &count, sizeof count);
    *data = p + MTMSG_SIZE_ARRAY;
    return MSG_OK;
}

int mtmsg_codec_next(const char *p, size_t len, size_t *pos, MsgValue *v) {
    size_t i = *pos, n;
    unsigned char tag;
    if (i >= len) { v->type = VAL_NONE; return 0; }
    tag = (unsigned char)p[i++];
    switch (tag) {
    case TAG_NIL: v->type = VAL_NIL; break;
    case TAG_BOOL:
        if (i >= len || (unsigned char)p[i] > 1) return -1;
        v->type = VAL_BOOL; v->u.b = p[i++];
        break;
    case TAG_BYTE:
        if (i >= len) return -1;
        v->type = VAL_INT; v->u.i = (unsigned char)p[i++];
        break;
    case TAG_INT:
        if (sizeof(lua_Integer) > len - i) return -1;
        v->type = VAL_INT; memcpy(&v->u.i, p + i, sizeof(lua_Integer));
        if (v->u.i >= 0 && v->u.i <= MTMSG_BYTE_MAX) return -1;      /* that is TAG_BYTE */
        i += sizeof(lua_Integer);
        break;
    case TAG_FLOAT:
        if (sizeof(lua_Number) > len - i) return -1;
        v->type = VAL_FLOAT; memcpy(&v->u.n, p + i, sizeof(lua_Number));
        i += sizeof(lua_Number);
        break;
    case TAG_NEGZERO:
        if (i >= len || p[i] != 0) return -1;
        v->type = VAL_FLOAT; v->u.n = -(lua_Number)0;
        i++;
        break;
    case TAG_STR8:
        if (i >= len) return -1;
        n = (unsigned char)p[i++];
        if (n > len - i) return -1;
        v->type = VAL_STR; v->u.s.ptr = p + i; v->u.s.len = n;
        i += n;
        break;
    case TAG_STR:
        if (sizeof n > len - i) return -1;
        memcpy(&n, p + i, sizeof n);
        i += sizeof n;
        if (n <= MTMSG_STR8_MAX || n > len - i) return -1;
        v->type = VAL_STR; v->u.s.ptr = p + i; v->u.s.len = n;
        i += n;
        break;
    case TAG_LUDATA:
        if (sizeof(void *) > len - i) return -1;
        v->type = VAL_LUDATA; memcpy(&v->u.p, p + i, sizeof(void *));
        i += sizeof(void *);
        break;
    case TAG_CFUNC:
        if (sizeof(lua_CFunction) > len - i) return -1;
        v->type = VAL_CFUNC; memcpy(&v->u.f, p + i, sizeof(lua_CFunction));
        i += sizeof(lua_CFunction);
        break;
    case TAG_ARRAY: {
        size_t es;
        if (MTMSG_SIZE_ARRAY - 1 > len - i) return -1;
        v->type = VAL_ARRAY;
        v->u.a.type = (unsigned char)p[i];
        es = (unsigned char)p[i + 1];
        memcpy(&n, p + i + 2, sizeof n);
        i += MTMSG_SIZE_ARRAY - 1;
        if (es == 0 ? n != 0 : n > (len - i) / es) return -1;
        v->u.a.elemsize = es; v->u.a.count = n;
        v->u.a.data = p + i;
        i += es * n;
        break;
    }
    default:
        return -1;
    }
    *pos = i;
    return 1;
}

/* A number: integer, -0.0 without integers (see putnegzero), or float. */
static MsgStatus putnumber(lua_State *L, int i, MemBuf *out) {
    lua_Integer n;
    lua_Number d;
    if (mtmsg_tointeger(L, i, &n)) return mtmsg_codec_putint(out, n);
    d = lua_tonumber(L, i);
#if !MTMSG_HAS_INTEGERS
    if (d == 0 && signbit(d)) return putnegzero(out);
#endif
    return mtmsg_codec_putfloat(out, d);
}

MsgStatus mtmsg_codec_encode(lua_State *L, int first, int last, MemBuf *out,
                             int *badarg, const char **badmsg) {
    size_t mark = out->len;
    int i;
    for (i = first; i <= last; i++) {
        MsgStatus st;
        switch (lua_type(L, i)) {
        case LUA_TNIL: st = mtmsg_codec_putnil(out); break;
        case LUA_TBOOLEAN: st = mtmsg_codec_putbool(out, lua_toboolean(L, i)); break;
        case LUA_TNUMBER: st = putnumber(L, i, out); break;
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, i, &len);
            st = mtmsg_codec_putstr(out, s, len);
            break;
        }
        case LUA_TLIGHTUSERDATA: {
            void *p = lua_touserdata(L, i);
            st = mtmsg_codec_putptr(out, TAG_LUDATA, &p, sizeof p);
            break;
        }
        case LUA_TFUNCTION: {
            lua_CFunction f = lua_tocfunction(L, i);
            if (f && lua_iscfunction(L, i)) {
                st = mtmsg_codec_putptr(out, TAG_CFUNC, &f, sizeof f);
                break;
            }
            *badarg = i; *badmsg = "parameter type not supported";
            st = MSG_BADARG;
            break;
        }
        case LUA_TUSERDATA:
            st = mtmsg_carray_encode(L, i, out, badmsg);
            if (st == MSG_BADARG) *badarg = i;
            break;
        default:
            *badarg = i; *badmsg = "parameter type not supported";
            st = MSG_BADARG;
            break;
        }
        if (st != MSG_OK) { out->len = mark; return st; }
    }
    return MSG_OK;
}

int mtmsg_codec_decode(lua_State *L, const char *p, size_t len, size_t *pos, int max,
                       struct CarrayReuse *reuse) {
    int n = 0;
    MsgValue v;
    while (max < 0 || n < max) {
        int r;
        if ((n & 31) == 0 && *pos < len) luaL_checkstack(L, 34, "too many message elements");
        if (len - *pos >= 2) {          /* fast path: the two-byte elements, short strings */
            unsigned char tag = (unsigned char)p[*pos], b = (unsigned char)p[*pos + 1];
            if (tag == TAG_BYTE) {
                mtmsg_pushinteger(L, (lua_Integer)b);
                *pos += 2; n++; continue;
            }
            if (tag == TAG_STR8) {
                if (b > len - *pos - 2) return -1;
                lua_pushlstring(L, p + *pos + 2, b);
                *pos += 2 + (size_t)b; n++; continue;
            }
            if (tag == TAG_BOOL && b <= 1) {
                lua_pushboolean(L, b);
                *pos += 2; n++; continue;
            }
        }
        r = mtmsg_codec_next(p, len, pos, &v);
        if (r == 0) break;
        if (r < 0) return -1;
        switch (v.type) {
        case VAL_NIL: lua_pushnil(L); break;
        case VAL_BOOL: lua_pushboolean(L, v.u.b); break;
        case VAL_INT: mtmsg_pushinteger(L, v.u.i); break;
        case VAL_FLOAT: lua_pushnumber(L, v.u.n); break;
        case VAL_STR: lua_pushlstring(L, v.u.s.ptr, v.u.s.len); break;
        case VAL_LUDATA: lua_pushlightuserdata(L, v.u.p); break;
        case VAL_CFUNC: lua_pushcfunction(L, v.u.f); break;
        case VAL_ARRAY: mtmsg_carray_push(L, &v, reuse); break;
        default: return -1;
        }
        n++;
    }
    return n;
}
