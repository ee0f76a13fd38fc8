/*
 * Message codec (see codec.h and the wire format in docs/DESIGN.md). Every read is
 * bounds-checked in the overflow-proof form `n <= len - pos`, so arbitrary bytes
 * can be parsed safely (the fuzz targets rely on it).
 */
#include "codec.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
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

/* One element that is not a table (table tags are malformed here). */
static int nextscalar(const char *p, size_t len, size_t *pos, MsgValue *v) {
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

/* ===== Tables: parsing ===== */

/* Reads a table header at p[*pos] (tag included); 0 if malformed or if the counts
 * cannot be there: every element takes at least one byte. */
static int tableheader(const char *p, size_t len, size_t *pos, size_t *narr, size_t *nhash) {
    size_t i = *pos, na, nh, rem;
    if (i >= len) return 0;
    if ((unsigned char)p[i] == TAG_TABLE8) {
        if (MTMSG_SIZE_TABLE8 > len - i) return 0;
        na = (unsigned char)p[i + 1];
        nh = (unsigned char)p[i + 2];
        i += MTMSG_SIZE_TABLE8;
    } else if ((unsigned char)p[i] == TAG_TABLE) {
        if (MTMSG_SIZE_TABLE > len - i) return 0;
        memcpy(&na, p + i + 1, sizeof na);
        memcpy(&nh, p + i + 1 + sizeof na, sizeof nh);
        if (na <= MTMSG_TABLE8_MAX && nh <= MTMSG_TABLE8_MAX) return 0;   /* that is TABLE8 */
        i += MTMSG_SIZE_TABLE;
    } else {
        return 0;
    }
    rem = len - i;
    if (nh > rem / 2 || na > rem - 2 * nh) return 0;      /* no overflow: bounded by rem */
    *pos = i; *narr = na; *nhash = nh;
    return 1;
}

static int istabletag(unsigned char tag) { return tag == TAG_TABLE8 || tag == TAG_TABLE; }

/* Walks the contents of a table whose header ends at *pos, iteratively (a stack of
 * MTMSG_TABLE_DEPTH levels), and checks every rule: nesting depth, no nil (a table
 * holds none), keys not NaN and not an integer 1..narr (those are in the array part). */
static int walktable(const char *p, size_t len, size_t *pos, size_t narr, size_t nhash) {
    struct { size_t narr, total, k; } lv[MTMSG_TABLE_DEPTH];
    int d = 0;
    size_t i = *pos;
    lv[0].narr = narr; lv[0].total = narr + 2 * nhash; lv[0].k = 0;
    for (;;) {
        size_t k;
        MsgValue v;
        while (lv[d].k == lv[d].total) {
            if (d == 0) { *pos = i; return 1; }
            d--;
        }
        k = lv[d].k++;
        if (i >= len) return -1;
        if (istabletag((unsigned char)p[i])) {
            size_t na, nh;
            if (d + 1 >= MTMSG_TABLE_DEPTH || !tableheader(p, len, &i, &na, &nh)) return -1;
            d++;
            lv[d].narr = na; lv[d].total = na + 2 * nh; lv[d].k = 0;
            continue;
        }
        if (nextscalar(p, len, &i, &v) != 1 || v.type == VAL_NIL) return -1;   /* no nil inside */
        if (k >= lv[d].narr && ((k - lv[d].narr) & 1) == 0) {           /* a key */
            if (v.type == VAL_NIL) return -1;
            if (v.type == VAL_INT && v.u.i >= 1 && (unsigned long long)v.u.i <= (unsigned long long)lv[d].narr) return -1;
            if (v.type == VAL_FLOAT) {
                lua_Number x = v.u.n;
                if (x != x) return -1;
                if (x >= 1 && x <= (lua_Number)lv[d].narr && x == floor(x)) return -1;
            }
        }
    }
}

int mtmsg_codec_next(const char *p, size_t len, size_t *pos, MsgValue *v) {
    size_t i = *pos, na, nh;
    if (i < len && istabletag((unsigned char)p[i])) {
        size_t start;
        if (!tableheader(p, len, &i, &na, &nh)) return -1;
        start = i;
        if (walktable(p, len, &i, na, nh) != 1) return -1;
        v->type = VAL_TABLE;
        v->u.t.narr = na; v->u.t.nhash = nh;
        v->u.t.data = p + start; v->u.t.len = i - start;
        *pos = i;
        return 1;
    }
    return nextscalar(p, len, pos, v);
}

int mtmsg_codec_tablehasarray(const MsgValue *v) {
    const char *p = v->u.t.data;
    size_t len = v->u.t.len, i = 0, na, nh;
    MsgValue x;
    if (len == 0 || !memchr(p, TAG_ARRAY, len)) return 0;
    while (i < len) {                   /* the contents are flat: nested headers inline */
        if (istabletag((unsigned char)p[i])) {
            if (!tableheader(p, len, &i, &na, &nh)) return 0;
        } else {
            if (nextscalar(p, len, &i, &x) != 1) return 0;
            if (x.type == VAL_ARRAY) return 1;
        }
    }
    return 0;
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

/* Appends one value that is not a table; MSG_BADARG with *why for unsupported types. */
static MsgStatus putvalue(lua_State *L, int i, MemBuf *out, const char **why) {
    switch (lua_type(L, i)) {
    case LUA_TNIL: return mtmsg_codec_putnil(out);
    case LUA_TBOOLEAN: return mtmsg_codec_putbool(out, lua_toboolean(L, i));
    case LUA_TNUMBER: return putnumber(L, i, out);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, i, &len);
        return mtmsg_codec_putstr(out, s, len);
    }
    case LUA_TLIGHTUSERDATA: {
        void *p = lua_touserdata(L, i);
        return mtmsg_codec_putptr(out, TAG_LUDATA, &p, sizeof p);
    }
    case LUA_TFUNCTION: {
        lua_CFunction f = lua_tocfunction(L, i);
        if (f && lua_iscfunction(L, i)) return mtmsg_codec_putptr(out, TAG_CFUNC, &f, sizeof f);
        break;
    }
    case LUA_TUSERDATA:
        return mtmsg_carray_encode(L, i, out, why);
    default:
        break;
    }
    *why = "parameter type not supported";
    return MSG_BADARG;
}

/* ===== Tables: encoding =====
 * Recursion bounded by MTMSG_TABLE_DEPTH; only raw access (lua_next, no metamethods) and
 * type queries, so no Lua code runs and nothing raises. The tables met so far in the
 * message are kept in a pointer set (C memory, freed on every return). */

#define MTMSG_STR_(x) #x
#define MTMSG_STR(x) MTMSG_STR_(x)
#define ENC_INLINE 32                   /* set slots on the C stack (a power of 2) */
#define ENC_MSGMAX 200                  /* room for an error text */
#define ENC_COMPMAX 128                 /* room for one path component */

typedef struct Enc {
    lua_State *L;
    MemBuf *out;
    const void **set;                   /* open addressing, NULL = empty */
    size_t setcap, setn;
    int depth;                          /* tables entered */
    int tab[MTMSG_TABLE_DEPTH];         /* stack index of each entered table */
    int key[MTMSG_TABLE_DEPTH];         /* stack index of its current key */
    const void *inl[ENC_INLINE];
    char msg[ENC_MSGMAX];
} Enc;

static size_t hashptr(const void *p, size_t cap) {
    size_t h = (size_t)(uintptr_t)p;
    h ^= h >> 17;
    h *= (size_t)0x9E3779B97F4A7C15ull;
    return (h ^ (h >> 29)) & (cap - 1);
}

/* Adds p to the set: 1 added, 0 already there, -1 no memory (out->failsize set). */
static int setadd(Enc *e, const void *p) {
    size_t h = hashptr(p, e->setcap);
    while (e->set[h]) {
        if (e->set[h] == p) return 0;
        h = (h + 1) & (e->setcap - 1);
    }
    if (2 * (e->setn + 1) > e->setcap) {          /* grow to keep the load at most 1/2 */
        size_t cap = e->setcap * 2, i;
        const void **s;
        if (cap > (size_t)-1 / sizeof *s) { e->out->failsize = (size_t)-1; return -1; }
        s = (const void **)mtmsg_malloc(cap * sizeof *s);
        if (!s) { e->out->failsize = cap * sizeof *s; return -1; }
        memset(s, 0, cap * sizeof *s);
        for (i = 0; i < e->setcap; i++) {
            if (e->set[i]) {
                size_t j = hashptr(e->set[i], cap);
                while (s[j]) j = (j + 1) & (cap - 1);
                s[j] = e->set[i];
            }
        }
        if (e->set != e->inl) mtmsg_free((void *)e->set);
        e->set = s; e->setcap = cap;
        h = hashptr(p, cap);
        while (e->set[h]) h = (h + 1) & (cap - 1);
    }
    e->set[h] = p;
    e->setn++;
    return 1;
}

static int isident(const char *s, size_t n) {
    static const char *const kw[] = {
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
        "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
        NULL
    };
    size_t i;
    int k;
    if (n == 0 || n > 32 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
            return 0;
    }
    for (k = 0; kw[k]; k++) if (strlen(kw[k]) == n && memcmp(kw[k], s, n) == 0) return 0;
    return 1;
}

/* Writes the path component of the key at stack index i (.name or [...]) into buf
 * (at least ENC_COMPMAX bytes: 20 string bytes escaped to 4 each at most, plus [""...]);
 * returns its length. No Lua allocation. */
static size_t keytext(lua_State *L, int i, char *buf) {
    lua_Integer n;
    switch (lua_type(L, i)) {
    case LUA_TSTRING: {
        size_t len, k, o = 0, cut;
        const char *s = lua_tolstring(L, i, &len);
        if (isident(s, len)) { buf[0] = '.'; memcpy(buf + 1, s, len); return len + 1; }
        cut = len > 20 ? 20 : len;
        buf[o++] = '['; buf[o++] = '"';
        for (k = 0; k < cut; k++) {
            unsigned char c = (unsigned char)s[k];
            if (c == '"' || c == '\\') { buf[o++] = '\\'; buf[o++] = (char)c; }
            else if (c < 32 || c == 127) o += (size_t)snprintf(buf + o, 5, "\\%d", c);
            else buf[o++] = (char)c;
        }
        if (cut < len) { memcpy(buf + o, "...", 3); o += 3; }
        buf[o++] = '"'; buf[o++] = ']';
        return o;
    }
    case LUA_TNUMBER:
        if (mtmsg_tointeger(L, i, &n)) return (size_t)snprintf(buf, 64, "[%lld]", (long long)n);
        return (size_t)snprintf(buf, 64, "[%.14g]", (double)lua_tonumber(L, i));
    case LUA_TBOOLEAN:
        return (size_t)snprintf(buf, 64, "[%s]", lua_toboolean(L, i) ? "true" : "false");
    default:
        return (size_t)snprintf(buf, 64, "[%s]", lua_typename(L, lua_type(L, i)));
    }
}

/* Sets e->msg to "<path>: <what>", the path of the value where the first `levels`
 * entered tables' current keys lead, shortened in the middle when long. */
static MsgStatus fail(Enc *e, int levels, const char *what) {
    size_t len[MTMSG_TABLE_DEPTH], total = 1, o = 1, head = 0, tail;
    char comp[ENC_COMPMAX];
    int l, first, last;
    e->msg[0] = 't';
    for (l = 0; l < levels; l++) { len[l] = keytext(e->L, e->key[l], comp); total += len[l]; }
    first = levels; last = levels;                  /* components first..last-1 are cut */
    if (total > 100) {
        for (first = 0; first < levels && head + len[first] <= 40; first++) head += len[first];
        for (tail = 0, last = levels; last > first && tail + len[last - 1] <= 50; last--)
            tail += len[last - 1];
    }
    for (l = 0; l < levels; l++) {
        if (l >= first && l < last) {
            if (l == first) { memcpy(e->msg + o, "...", 3); o += 3; }
            continue;
        }
        keytext(e->L, e->key[l], comp);
        memcpy(e->msg + o, comp, len[l]);
        o += len[l];
    }
    snprintf(e->msg + o, ENC_MSGMAX - o, ": %s", what);
    return MSG_BADARG;
}

static MsgStatus enctable(Enc *e, int t);

/* A value inside a table (or a message element when e->depth is 0). */
static MsgStatus encvalue(Enc *e, int i, int iskey) {
    lua_State *L = e->L;
    const char *why = NULL;
    MsgStatus st;
    int type = lua_type(L, i);
    if (type == LUA_TTABLE) return enctable(e, i);
    st = putvalue(L, i, e->out, &why);
    if (st != MSG_BADARG || e->depth == 0) {
        if (st == MSG_BADARG) snprintf(e->msg, ENC_MSGMAX, "%s", why);
        return st;
    }
    {
        char what[80];
        if (type == LUA_TUSERDATA && strstr(why, "carray"))         /* keep its own words */
            snprintf(what, sizeof what, "%s%s", iskey ? "key: " : "", why);
        else
            snprintf(what, sizeof what, "%s%s not supported",
                     type == LUA_TFUNCTION ? "Lua function" : lua_typename(L, type),
                     iskey ? " as a key" : "");
        return fail(e, iskey ? e->depth - 1 : e->depth, what);
    }
}

static MsgStatus enctable(Enc *e, int t) {
    lua_State *L = e->L;
    const void *self = lua_topointer(L, t);
    size_t narr = 0, nhash, k = 0, hpos;
    lua_Integer n;
    int prefix = 1, r, lv = e->depth;
    MsgStatus st;
    char *h;
    if (lua_getmetatable(L, t)) {
        lua_pop(L, 1);
        return fail(e, lv, "table with a metatable not supported");
    }
    r = setadd(e, self);
    if (r < 0) return MSG_NOMEM;
    if (r == 0) {
        int a;
        for (a = 0; a < lv; a++)
            if (lua_topointer(L, e->tab[a]) == self) return fail(e, lv, "table cycle not supported");
        return fail(e, lv, "table appears twice in the message");
    }
    if (lv >= MTMSG_TABLE_DEPTH) return fail(e, lv, "tables nested more than " MTMSG_STR(MTMSG_TABLE_DEPTH) " deep");
    /* One pass: the leading run of keys 1, 2, 3... in lua_next order is the array part
     * (values only), the rest are key/value pairs. The header is written short and
     * widened afterwards if a count exceeds 255: every step appends exactly bytes of
     * the final element, so a fixed size fails exactly when the element does not fit. */
    hpos = e->out->len;
    h = grab(e->out, MTMSG_SIZE_TABLE8, &st);
    if (!h) return st;
    e->tab[lv] = t;
    e->depth = lv + 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int top = lua_gettop(L);
        e->key[lv] = top - 1;
        k++;
        if (prefix && mtmsg_tointeger(L, top - 1, &n) && n == (lua_Integer)k) {
            narr = k;
        } else {
            prefix = 0;
            st = encvalue(e, top - 1, 1);
            if (st != MSG_OK) return st;
        }
        st = encvalue(e, top, 0);
        if (st != MSG_OK) return st;
        lua_pop(L, 1);
    }
    nhash = k - narr;
    if (narr <= MTMSG_TABLE8_MAX && nhash <= MTMSG_TABLE8_MAX) {
        h = mtmsg_membuf_begin(e->out) + hpos;
        h[0] = TAG_TABLE8; h[1] = (char)(unsigned char)narr; h[2] = (char)(unsigned char)nhash;
    } else {
        size_t body = e->out->len - hpos - MTMSG_SIZE_TABLE8;
        if (!grab(e->out, MTMSG_SIZE_TABLE - MTMSG_SIZE_TABLE8, &st)) return st;
        h = mtmsg_membuf_begin(e->out) + hpos;
        memmove(h + MTMSG_SIZE_TABLE, h + MTMSG_SIZE_TABLE8, body);
        h[0] = TAG_TABLE;
        memcpy(h + 1, &narr, sizeof narr);
        memcpy(h + 1 + sizeof narr, &nhash, sizeof nhash);
    }
    e->depth = lv;
    return MSG_OK;
}

/* The message from the first table on: with the table machinery. */
static MsgStatus encode_tables(lua_State *L, int first, int last, MemBuf *out,
                               int *badarg, const char **badmsg) {
    Enc e;
    MsgStatus st = MSG_OK;
    int top = lua_gettop(L), i;
    e.L = L; e.out = out;
    e.set = e.inl; e.setcap = ENC_INLINE; e.setn = 0;
    memset(e.inl, 0, sizeof e.inl);
    for (i = first; i <= last; i++) {
        e.depth = 0;
        st = encvalue(&e, i, 0);
        if (st != MSG_OK) break;
    }
    if (e.set != e.inl) mtmsg_free((void *)e.set);
    lua_settop(L, top);
    if (st == MSG_BADARG) {
        *badarg = i;
        lua_pushstring(L, e.msg);                   /* may raise; nothing to clean up */
        *badmsg = lua_tostring(L, -1);
    }
    return st;
}

MsgStatus mtmsg_codec_encode(lua_State *L, int first, int last, MemBuf *out,
                             int *badarg, const char **badmsg) {
    size_t mark = out->len;
    int i;
    for (i = first; i <= last; i++) {
        MsgStatus st;
        int t = lua_type(L, i);
        /* Fast path: nil, booleans, integers and short strings written in place when the
         * room after the used bytes holds them (the same bytes as the put functions). */
        size_t room = out->data ? out->cap - out->start - out->len : 0;
        if (room >= MTMSG_SIZE_INT) {
            char *p = out->data + out->start + out->len;
            lua_Integer n;
            switch (t) {
            case LUA_TNIL:
                p[0] = TAG_NIL;
                out->len += MTMSG_SIZE_NIL;
                continue;
            case LUA_TBOOLEAN:
                p[0] = TAG_BOOL; p[1] = (char)(lua_toboolean(L, i) != 0);
                out->len += MTMSG_SIZE_BOOL;
                continue;
            case LUA_TNUMBER:
                if (!mtmsg_tointeger(L, i, &n)) break;
                if (n >= 0 && n <= MTMSG_BYTE_MAX) {
                    p[0] = TAG_BYTE; p[1] = (char)(unsigned char)n;
                    out->len += MTMSG_SIZE_BYTE;
                } else {
                    p[0] = TAG_INT; memcpy(p + 1, &n, sizeof n);
                    out->len += MTMSG_SIZE_INT;
                }
                continue;
            case LUA_TSTRING: {
                size_t len;
                const char *s = lua_tolstring(L, i, &len);
                if (len > MTMSG_STR8_MAX || len > room - MTMSG_SIZE_STR8) {
                    st = mtmsg_codec_putstr(out, s, len);
                    if (st != MSG_OK) { out->len = mark; return st; }
                    continue;
                }
                p[0] = TAG_STR8; p[1] = (char)(unsigned char)len;
                memcpy(p + MTMSG_SIZE_STR8, s, len);
                out->len += MTMSG_SIZE_STR8 + len;
                continue;
            }
            default:
                break;
            }
        }
        if (t == LUA_TTABLE) {
            /* start over (nothing appended yet) with room for the table walk: lua_checkstack
             * may raise a memory error on 5.1, before any C memory is held */
            out->len = mark;
            if (!lua_checkstack(L, 2 * MTMSG_TABLE_DEPTH + 8)) {
                *badarg = i; *badmsg = "no Lua stack left for the table";
                return MSG_BADARG;
            }
            st = encode_tables(L, first, last, out, badarg, badmsg);
            if (st != MSG_OK) out->len = mark;
            return st;
        }
        st = putvalue(L, i, out, badmsg);
        if (st == MSG_BADARG) *badarg = i;
        if (st != MSG_OK) { out->len = mark; return st; }
    }
    return MSG_OK;
}

/* ===== Decoding ===== */

static void pushscalar(lua_State *L, const MsgValue *v, struct CarrayReuse *reuse) {
    switch (v->type) {
    case VAL_NIL: lua_pushnil(L); break;
    case VAL_BOOL: lua_pushboolean(L, v->u.b); break;
    case VAL_INT: mtmsg_pushinteger(L, v->u.i); break;
    case VAL_FLOAT: lua_pushnumber(L, v->u.n); break;
    case VAL_STR: lua_pushlstring(L, v->u.s.ptr, v->u.s.len); break;
    case VAL_LUDATA: lua_pushlightuserdata(L, v->u.p); break;
    case VAL_CFUNC: lua_pushcfunction(L, v->u.f); break;
    case VAL_ARRAY: mtmsg_carray_push(L, v, reuse); break;
    default: break;
    }
}

static int pushtable(lua_State *L, const char *p, size_t len, size_t *pos, int depth);

/* Whether a scalar key breaks the rules of walktable (the same checks, for decoding). */
static int badkey(const MsgValue *v, size_t narr) {
    if (v->type == VAL_NIL) return 1;
    if (v->type == VAL_INT) return v->u.i >= 1 && (unsigned long long)v->u.i <= (unsigned long long)narr;
    if (v->type == VAL_FLOAT) {
        lua_Number x = v->u.n;
        return x != x || (x >= 1 && x <= (lua_Number)narr && x == floor(x));
    }
    return 0;
}

/* Pushes the element at p[*pos] inside a table of depth `depth`; a key (iskey) of a
 * table with narr array values is checked as walktable does. 1, or -1 for malformed
 * bytes (then the stack holds garbage above the caller's values). */
static int pushelem(lua_State *L, const char *p, size_t len, size_t *pos, int depth, int iskey,
                    size_t narr) {
    size_t i = *pos;
    unsigned char tag;
    MsgValue v;
    if (i >= len) return -1;
    tag = (unsigned char)p[i];
    if (len - i >= 2) {                             /* fast paths */
        unsigned char b = (unsigned char)p[i + 1];
        if (tag == TAG_STR8 && b <= len - i - 2) {
            lua_pushlstring(L, p + i + 2, b);
            *pos = i + 2 + b;
            return 1;
        }
        if (tag == TAG_BYTE && !(iskey && b >= 1 && b <= narr)) {
            mtmsg_pushinteger(L, (lua_Integer)b);
            *pos = i + 2;
            return 1;
        }
        if (tag == TAG_BOOL && b <= 1) {
            lua_pushboolean(L, b);
            *pos = i + 2;
            return 1;
        }
    }
    if (istabletag(tag)) {
        if (depth >= MTMSG_TABLE_DEPTH) return -1;
        return pushtable(L, p, len, pos, depth + 1);
    }
    if (nextscalar(p, len, pos, &v) != 1 || v.type == VAL_NIL || (iskey && badkey(&v, narr)))
        return -1;
    pushscalar(L, &v, NULL);                        /* carrays in tables are always new */
    return 1;
}

/* Builds the table whose header is at p[*pos] (recursion at most MTMSG_TABLE_DEPTH deep,
 * bounds checked). The presize is capped by the bytes left (tableheader: each element
 * takes one at least) and by int. 1, or -1 for malformed bytes. */
static int pushtable(lua_State *L, const char *p, size_t len, size_t *pos, int depth) {
    size_t narr, nhash, k;
    if (!tableheader(p, len, pos, &narr, &nhash)) return -1;
    luaL_checkstack(L, 4, "message table");
    lua_createtable(L, narr > INT_MAX ? INT_MAX : (int)narr, nhash > INT_MAX ? INT_MAX : (int)nhash);
    for (k = 1; k <= narr; k++) {
        if (pushelem(L, p, len, pos, depth, 0, 0) < 0) return -1;
        if (k <= INT_MAX) {
            lua_rawseti(L, -2, (int)k);
        } else {
            mtmsg_pushinteger(L, (lua_Integer)k);
            lua_insert(L, -2);
            lua_rawset(L, -3);
        }
    }
    for (k = 0; k < nhash; k++) {
        if (pushelem(L, p, len, pos, depth, 1, narr) < 0) return -1;
        if (pushelem(L, p, len, pos, depth, 0, 0) < 0) return -1;
        lua_rawset(L, -3);
    }
    return 1;
}

int mtmsg_codec_decode(lua_State *L, const char *p, size_t len, size_t *pos, int max,
                       struct CarrayReuse *reuse) {
    int n = 0;
    size_t i = *pos;                    /* *pos: stored before anything that can raise */
    MsgValue v;
    while (max < 0 || n < max) {
        int r;
        if (i >= len) break;
        *pos = i;                       /* a raise while pushing leaves the element unread */
        if ((n & 31) == 0) luaL_checkstack(L, 34, "too many message elements");
        if (len - i >= 2) {             /* fast path: the two-byte elements, short strings */
            unsigned char tag = (unsigned char)p[i], b = (unsigned char)p[i + 1];
            if (tag == TAG_BYTE) {
                mtmsg_pushinteger(L, (lua_Integer)b);
                i += 2; n++; continue;
            }
            if (tag == TAG_STR8) {
                if (b > len - i - 2) break;             /* malformed: the slow path says so */
                lua_pushlstring(L, p + i + 2, b);
                i += 2 + (size_t)b; n++; continue;
            }
            if (tag == TAG_BOOL && b <= 1) {
                lua_pushboolean(L, b);
                i += 2; n++; continue;
            }
            if (tag == TAG_INT && len - i >= MTMSG_SIZE_INT) {
                lua_Integer x;
                memcpy(&x, p + i + 1, sizeof x);
                if (x >= 0 && x <= MTMSG_BYTE_MAX) break;   /* malformed (that is TAG_BYTE) */
                mtmsg_pushinteger(L, x);
                i += MTMSG_SIZE_INT; n++; continue;
            }
        }
        if (istabletag((unsigned char)p[i])) {
            /* built straight from the bytes, checked as mtmsg_codec_next checks them;
             * consumed only once complete: after an error (memory) nothing half-built is
             * reachable and *pos still points at the table */
            size_t tpos = i;
            if (pushtable(L, p, len, &tpos, 1) < 0) return -1;
            i = tpos;
            n++;
            continue;
        }
        r = mtmsg_codec_next(p, len, &i, &v);
        if (r < 0) return -1;
        *pos = i;                       /* read: a raise while pushing it consumes it */
        pushscalar(L, &v, reuse);
        n++;
    }
    *pos = i;
    if (i < len && (max < 0 || n < max)) return -1;     /* malformed bytes in a fast path */
    return n;
}
