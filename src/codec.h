/*
 * Message codec: Lua values <-> the tagged byte format of messages (wire format in
 * docs/DESIGN.md). Every element takes exactly the bytes that mtmsg 0.4.3 counts
 * against a size limit, so a queue's, writer's or reader's byte length is its
 * accounted size. Takes no locks; the plain-C element functions are also used by the
 * native C APIs, which have no Lua state.
 */
#ifndef MTMSG_CODEC_H
#define MTMSG_CODEC_H

#include "lua.h"
#include "membuf.h"

/* Element tags (the first byte of every element). */
enum {
    TAG_NIL = 0x00,       /* -                                           1 byte  */
    TAG_BOOL = 0x01,      /* 0 or 1                                      2 bytes */
    TAG_BYTE = 0x02,      /* integer 0..255 in one byte                  2 bytes */
    TAG_INT = 0x03,       /* any other integer, native lua_Integer       1 + sizeof(lua_Integer) */
    TAG_FLOAT = 0x04,     /* native lua_Number                           1 + sizeof(lua_Number) */
    TAG_STR8 = 0x05,      /* length 0..255 in one byte, the bytes        2 + n */
    TAG_STR = 0x06,       /* length > 255 as native size_t, the bytes    1 + sizeof(size_t) + n */
    TAG_LUDATA = 0x07,    /* native void*                                1 + sizeof(void*) */
    TAG_CFUNC = 0x08,     /* native lua_CFunction                        1 + sizeof(lua_CFunction) */
    TAG_NEGZERO = 0x09,   /* -0.0 on Lua without integers, then a 0 byte 2 bytes */
    TAG_TABLE8 = 0x0A,    /* narr byte, nhash byte (both <= 255)         3 bytes + contents */
    TAG_TABLE = 0x0B,     /* narr, nhash as native size_t (one > 255)    1 + 2 * sizeof(size_t) + contents */
                          /* contents: narr values (keys 1..narr), then nhash key/value pairs,
                             each an element (nested tables inline) */
    TAG_ARRAY = 0xCA      /* type byte, element size byte (1..255 or 0 for no elements),
                             native size_t count, size*count bytes       3 + sizeof(size_t) + size*count */
};

/* Element sizes (each one the byte count of mtmsg 0.4.3 on the same platform). */
#define MTMSG_SIZE_NIL     ((size_t)1)
#define MTMSG_SIZE_BOOL    ((size_t)2)
#define MTMSG_SIZE_BYTE    ((size_t)2)
#define MTMSG_SIZE_INT     (1 + sizeof(lua_Integer))
#define MTMSG_SIZE_FLOAT   (1 + sizeof(lua_Number))
#define MTMSG_SIZE_NEGZERO ((size_t)2)
#define MTMSG_SIZE_LUDATA  (1 + sizeof(void *))
#define MTMSG_SIZE_CFUNC   (1 + sizeof(lua_CFunction))
#define MTMSG_SIZE_STR8    ((size_t)2)                  /* plus the bytes */
#define MTMSG_SIZE_STR     (1 + sizeof(size_t))         /* plus the bytes */
#define MTMSG_SIZE_ARRAY   (3 + sizeof(size_t))         /* plus the elements */
#define MTMSG_SIZE_TABLE8  ((size_t)3)                  /* plus the contents */
#define MTMSG_SIZE_TABLE   (1 + 2 * sizeof(size_t))     /* plus the contents */
#define MTMSG_TABLE8_MAX   255                          /* counts of the short table header */
/* Tables nest at most this deep (a table element is depth 1); deeper is an argument
 * error on encoding and malformed on decoding. Bounds the C recursion of both. */
#if !defined(MTMSG_TABLE_DEPTH)
#define MTMSG_TABLE_DEPTH  100
#endif
#define MTMSG_STR8_MAX     255
#define MTMSG_BYTE_MAX     255
#define MTMSG_ELEMSIZE_MAX 255                          /* array element sizes that fit */

/* Size of an integer element. */
static inline size_t mtmsg_codec_intsize(lua_Integer i) {
    return i >= 0 && i <= MTMSG_BYTE_MAX ? MTMSG_SIZE_BYTE : MTMSG_SIZE_INT;
}
/* Size of a string element of len bytes; 0 when that overflows size_t. */
static inline size_t mtmsg_codec_strsize(size_t len) {
    size_t head = len <= MTMSG_STR8_MAX ? MTMSG_SIZE_STR8 : MTMSG_SIZE_STR;
    return len > (size_t)-1 - head ? 0 : head + len;
}

/* Value kinds; the numbers equal the Sender C API value codes. */
typedef enum MsgValType {
    VAL_NONE = 0, VAL_NIL, VAL_BOOL, VAL_INT, VAL_FLOAT, VAL_LUDATA, VAL_CFUNC, VAL_STR, VAL_ARRAY,
    VAL_TABLE
} MsgValType;

typedef struct MsgValue {
    MsgValType type;
    union {
        int b;
        lua_Integer i;
        lua_Number n;
        void *p;
        lua_CFunction f;
        struct { const char *ptr; size_t len; } s;
        struct { int type; size_t elemsize; size_t count; const char *data; } a;
        /* a table: its counts and its contents (data[0..len), already validated) */
        struct { size_t narr; size_t nhash; const char *data; size_t len; } t;
    } u;
} MsgValue;

/* Appending single elements; MSG_OK, MSG_FULL/MSG_TOO_BIG (fixed MemBuf), MSG_NOMEM.
 * On failure nothing is appended. */
MsgStatus mtmsg_codec_putnil(MemBuf *mb);
MsgStatus mtmsg_codec_putbool(MemBuf *mb, int b);
MsgStatus mtmsg_codec_putint(MemBuf *mb, lua_Integer i);
MsgStatus mtmsg_codec_putfloat(MemBuf *mb, lua_Number n);
MsgStatus mtmsg_codec_putstr(MemBuf *mb, const char *s, size_t len);
/* tag TAG_LUDATA (size sizeof(void*)) or TAG_CFUNC (size sizeof(lua_CFunction)) */
MsgStatus mtmsg_codec_putptr(MemBuf *mb, int tag, const void *p, size_t size);
/* Appends an array header and reserves its payload; *data receives where to write it.
 * type must be 0..255 and elemsize at most MTMSG_ELEMSIZE_MAX (else MSG_BADARG). */
MsgStatus mtmsg_codec_putarray(MemBuf *mb, int type, size_t elemsize, size_t count, char **data);

/* Parses the element at p[*pos] (of len bytes) into *v and advances *pos.
 * Returns 1, 0 at the end, -1 for malformed bytes (bounds always checked; only the
 * one encoding the put functions write is accepted for each value). A table element
 * is walked and validated whole (nesting, key rules) and skipped: VAL_TABLE. */
int mtmsg_codec_next(const char *p, size_t len, size_t *pos, MsgValue *v);
/* Whether the (validated) contents of a table value hold an array element anywhere. */
int mtmsg_codec_tablehasarray(const MsgValue *v);

struct CarrayReuse;
/* Appends the Lua values at stack indices first..last as elements of one message.
 * Tables are copied by value (see "Tables in messages" in docs/REFERENCE.md); no Lua
 * code runs and nothing raises before the result is known. MSG_BADARG: *badarg is the
 * offending index and *badmsg the argument error text (for a problem inside a table,
 * a string pushed on the stack: the only thing left there, and pushing it may raise a
 * memory error); nothing is appended then. Other failures as for the put functions. */
MsgStatus mtmsg_codec_encode(lua_State *L, int first, int last, MemBuf *out,
                             int *badarg, const char **badmsg);
/* Pushes up to `max` values (max < 0: all) decoded from p[*pos..len), advancing *pos.
 * Returns the number pushed, or -1 for malformed data. May raise Lua errors (memory,
 * carray creation); `reuse` (may be NULL) gives carrays to reuse for array values. */
int mtmsg_codec_decode(lua_State *L, const char *p, size_t len, size_t *pos, int max,
                       struct CarrayReuse *reuse);

/* Message frames in a buffer queue: a header, then the payload (the elements). The
 * header is one byte holding the payload length when that is below 255, else the byte
 * 255 and the length as native size_t. */
#define MTMSG_HEADER_SHORT 255
static inline size_t mtmsg_codec_headerlen(size_t payload) {
    return payload < MTMSG_HEADER_SHORT ? 1 : 1 + sizeof(size_t);
}
size_t mtmsg_codec_putheader(char *dst, size_t payload);      /* returns bytes written */
/* Reads a header at p[*pos..len); 0 on malformed/truncated input. */
int mtmsg_codec_getheader(const char *p, size_t len, size_t *pos, size_t *payload);

#endif
