/*
 * Message codec (see codec.h and the wire format in docs/DESIGN.md). Every read is
 * bounds-checked in the overflow-proof form `n <= len - pos`, so arbitrary bytes
 * can be parsed safely (the fuzz targets rely on it).
 */
#include "codec.h"

#include <string.h>

#include "carray.h"
#include "compat.h"

size_t mtmsg_codec_varintlen(size_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

size_t mtmsg_codec_putvarint(char *dst, size_t v) {
    size_t n = 0;
    while (v >= 0x80) { dst[n++] = (char)((v & 0x7f) | 0x80); v >>= 7; }
    dst[n++] = (char)v;
    return n;
}

int mtmsg_codec_getvarint(const char *p, size_t len, size_t *pos, unsigned long long *v) {
    unsigned long long r = 0;
    int shift = 0;
    size_t i = *pos;
    for (;;) {
        unsigned char c;
        if (i >= len || shift > 63) return 0;
        c = (unsigned char)p[i++];
        r |= (unsigned long long)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        shift += 7;
    }
    *pos = i;
    *v = r;
    return 1;
}

/* Reserves n bytes and returns where to write them, or NULL with *st set. */
static char *grab(MemBuf *mb, size_t n, MsgStatus *st) {
    char *p;
    *st = mtmsg_membuf_reserve(mb, n);
    if (*st != MSG_OK) return NULL;
    p = mtmsg_membuf_end(mb);
    mb->len += n;
    return p;
}

MsgStatus mtmsg_codec_putnil(MemBuf *mb) {
    MsgStatus st;
    char *p = grab(mb, 1, &st);
    if (p) *p = TAG_NIL;
    return st;
}

MsgStatus mtmsg_codec_putbool(MemBuf *mb, int b) {
    MsgStatus st;
    char *p = grab(mb, 1, &st);
    if (p) *p = b ? TAG_TRUE : TAG_FALSE;
    return st;
}

MsgStatus mtmsg_codec_putint(MemBuf *mb, long long i) {
    MsgStatus st;
    char *p;
    if (i >= 0 && i <= MTMSG_SMALLINT_MAX) {
        p = grab(mb, 1, &st);
        if (p) *p = (char)(TAG_SMALLINT + i);
    } else {
        unsigned long long z = ((unsigned long long)i << 1) ^ (unsigned long long)(i >> 63);
        char tmp[11];
        size_t n = 0;
        while (z >= 0x80) { tmp[n++] = (char)((z & 0x7f) | 0x80); z >>= 7; }
        tmp[n++] = (char)z;
        p = grab(mb, 1 + n, &st);
        if (p) { *p = TAG_INT; memcpy(p + 1, tmp, n); }
    }
    return st;
}

MsgStatus mtmsg_codec_putfloat(MemBuf *mb, double n) {
    MsgStatus st;
    char *p = grab(mb, 1 + sizeof n, &st);
    if (p) { *p = TAG_FLOAT; memcpy(p + 1, &n, sizeof n); }
    return st;
}

MsgStatus mtmsg_codec_putstr(MemBuf *mb, const char *s, size_t len) {
    MsgStatus st;
    char *p;
    if (len <= MTMSG_SHORTSTR_MAX) {
        p = grab(mb, 1 + len, &st);
        if (p) { *p = (char)(TAG_SHORTSTR + len); memcpy(p + 1, s, len); }
    } else {
        size_t vl = mtmsg_codec_varintlen(len);
        if (len > (size_t)-1 - 1 - vl) return mb->grow == 0 ? MSG_TOO_BIG : MSG_NOMEM;
        p = grab(mb, 1 + vl + len, &st);
        if (p) { *p = TAG_STR; mtmsg_codec_putvarint(p + 1, len); memcpy(p + 1 + vl, s, len); }
    }
    return st;
}

MsgStatus mtmsg_codec_putptr(MemBuf *mb, int tag, const void *ptr, size_t size) {
    MsgStatus st;
    char *p = grab(mb, 1 + size, &st);
    if (p) { *p = (char)tag; memcpy(p + 1, ptr, size); }
    return st;
}

MsgStatus mtmsg_codec_putarray(MemBuf *mb, int type, size_t elemsize, size_t count, char **data) {
    MsgStatus st;
    size_t l1 = mtmsg_codec_varintlen(elemsize), l2 = mtmsg_codec_varintlen(count);
    size_t bytes, head = 2 + l1 + l2;
    char *p;
    if (elemsize && count > ((size_t)-1 - head) / elemsize)
        return mb->grow == 0 ? MSG_TOO_BIG : MSG_NOMEM;
    bytes = elemsize * count;
    p = grab(mb, head + bytes, &st);
    if (!p) return st;
    p[0] = TAG_ARRAY;
    p[1] = (char)type;
    mtmsg_codec_putvarint(p + 2, elemsize);
    mtmsg_codec_putvarint(p + 2 + l1, count);
    *data = p + head;
    return MSG_OK;
}

int mtmsg_codec_next(const char *p, size_t len, size_t *pos, MsgValue *v) {
    size_t i = *pos;
    unsigned char tag;
    unsigned long long a, b;
    if (i >= len) { v->type = VAL_NONE; return 0; }
    tag = (unsigned char)p[i++];
    if (tag >= TAG_SMALLINT) {
        v->type = VAL_INT; v->u.i = tag - TAG_SMALLINT;
    } else if (tag >= TAG_SHORTSTR) {
        size_t n = tag - TAG_SHORTSTR;
        if (n > MTMSG_SHORTSTR_MAX || n > len - i) return -1;
        v->type = VAL_STR; v->u.s.ptr = p + i; v->u.s.len = n;
        i += n;
    } else switch (tag) {
    case TAG_NIL: v->type = VAL_NIL; break;
    case TAG_FALSE: v->type = VAL_BOOL; v->u.b = 0; break;
    case TAG_TRUE: v->type = VAL_BOOL; v->u.b = 1; break;
    case TAG_INT:
        if (!mtmsg_codec_getvarint(p, len, &i, &a)) return -1;
        v->type = VAL_INT; v->u.i = (long long)(a >> 1) ^ -(long long)(a & 1);
        break;
    case TAG_FLOAT:
        if (sizeof(double) > len - i) return -1;
        v->type = VAL_FLOAT; memcpy(&v->u.n, p + i, sizeof(double));
        i += sizeof(double);
        break;
    case TAG_STR:
        if (!mtmsg_codec_getvarint(p, len, &i, &a) || a > len - i) return -1;
        v->type = VAL_STR; v->u.s.ptr = p + i; v->u.s.len = (size_t)a;
        i += (size_t)a;
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
    case TAG_ARRAY:
        if (i >= len) return -1;
        v->type = VAL_ARRAY; v->u.a.type = (unsigned char)p[i++];
        if (!mtmsg_codec_getvarint(p, len, &i, &a) || !mtmsg_codec_getvarint(p, len, &i, &b))
            return -1;
        if (a != 0 && b > (len - i) / a) return -1;
        if (a == 0 && b != 0) return -1;
        v->u.a.elemsize = (size_t)a; v->u.a.count = (size_t)b;
        v->u.a.data = p + i;
        i += (size_t)(a * b);
        break;
    default:
        return -1;
    }
    *pos = i;
    return 1;
}

MsgStatus mtmsg_codec_encode(lua_State *L, int first, int last, MemBuf *out,
                             int *badarg, const char **badmsg) {
    size_t mark = out->len;
    int i;
    for (i = first; i <= last; i++) {
        MsgStatus st;
        int t = lua_type(L, i);
        /* Fast path: nil, booleans, small integers and short strings straight into
         * reserved room (at most 32 bytes each). */
        if (t <= LUA_TSTRING && out->data && out->cap - out->start - out->len >= 32) {
            char *p = out->data + out->start + out->len;
            if (t == LUA_TBOOLEAN) { *p = lua_toboolean(L, i) ? TAG_TRUE : TAG_FALSE; out->len++; continue; }
            if (t == LUA_TNIL) { *p = TAG_NIL; out->len++; continue; }
            if (t == LUA_TNUMBER && lua_isinteger(L, i)) {
                long long n = (long long)lua_tointeger(L, i);
                if (n >= 0 && n <= MTMSG_SMALLINT_MAX) { *p = (char)(TAG_SMALLINT + n); out->len++; continue; }
                else {
                    unsigned long long z = ((unsigned long long)n << 1) ^ (unsigned long long)(n >> 63);
                    *p = TAG_INT;
                    size_t k = 1;
                    while (z >= 0x80) { p[k++] = (char)((z & 0x7f) | 0x80); z >>= 7; }
                    p[k++] = (char)z;
                    out->len += k;
                    continue;
                }
            } else if (t == LUA_TSTRING) {
                size_t len;
                const char *s = lua_tolstring(L, i, &len);
                if (len <= MTMSG_SHORTSTR_MAX) {
                    *p = (char)(TAG_SHORTSTR + len);
                    memcpy(p + 1, s, len);
                    out->len += 1 + len;
                    continue;
                }
            }
        }
        switch (t) {
        case LUA_TNIL: st = mtmsg_codec_putnil(out); break;
        case LUA_TBOOLEAN: st = mtmsg_codec_putbool(out, lua_toboolean(L, i)); break;
        case LUA_TNUMBER: {
            lua_Integer n;
            if (mtmsg_tointeger(L, i, &n)) st = mtmsg_codec_putint(out, (long long)n);
            else st = mtmsg_codec_putfloat(out, (double)lua_tonumber(L, i));
            break;
        }
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
        if (*pos < len) {               /* fast path: one-byte tags and short strings */
            unsigned char tag = (unsigned char)p[*pos];
            if (tag >= TAG_SMALLINT) {
                mtmsg_pushinteger(L, (lua_Integer)(tag - TAG_SMALLINT));
                (*pos)++; n++; continue;
            }
            if (tag >= TAG_SHORTSTR) {
                size_t sl = tag - TAG_SHORTSTR;
                if (sl > MTMSG_SHORTSTR_MAX || sl > len - *pos - 1) return -1;
                lua_pushlstring(L, p + *pos + 1, sl);
                *pos += 1 + sl; n++; continue;
            }
            if (tag <= TAG_TRUE) {
                if (tag == TAG_NIL) lua_pushnil(L);
                else lua_pushboolean(L, tag == TAG_TRUE);
                (*pos)++; n++; continue;
            }
            if (tag == TAG_INT) {
                unsigned long long z;
                size_t at = *pos + 1;
                if (!mtmsg_codec_getvarint(p, len, &at, &z)) return -1;
                mtmsg_pushinteger(L, (lua_Integer)((long long)(z >> 1) ^ -(long long)(z & 1)));
                *pos = at; n++; continue;
            }
        }
        r = mtmsg_codec_next(p, len, pos, &v);
        if (r == 0) break;
        if (r < 0) return -1;
        switch (v.type) {
        case VAL_NIL: lua_pushnil(L); break;
        case VAL_BOOL: lua_pushboolean(L, v.u.b); break;
        case VAL_INT: mtmsg_pushinteger(L, (lua_Integer)v.u.i); break;
        case VAL_FLOAT: lua_pushnumber(L, (lua_Number)v.u.n); break;
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
