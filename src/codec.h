/*
 * Message codec: Lua values <-> the compact tagged byte format of messages (wire
 * format in docs/DESIGN.md). Takes no locks; the plain-C element functions are also
 * used by the native C APIs, which have no Lua state.
 */
#ifndef MTMSG_CODEC_H
#define MTMSG_CODEC_H

#include "lua.h"
#include "membuf.h"

/* Element tags. */
enum {
    TAG_NIL = 0x00, TAG_FALSE = 0x01, TAG_TRUE = 0x02,
    TAG_INT = 0x03,       /* zigzag LEB128 varint */
    TAG_FLOAT = 0x04,     /* 8 bytes, native double */
    TAG_STR = 0x05,       /* varint length, bytes */
    TAG_LUDATA = 0x06,    /* native void* */
    TAG_CFUNC = 0x07,     /* native lua_CFunction */
    TAG_ARRAY = 0x08,     /* type byte, varint element size, varint count, bytes */
    TAG_SHORTSTR = 0x40,  /* 0x40 + length (0..31), bytes */
    TAG_SMALLINT = 0x80   /* 0x80 + value (0..127) */
};
#define MTMSG_SHORTSTR_MAX 31
#define MTMSG_SMALLINT_MAX 127

/* Value kinds; the numbers equal the Sender C API value codes. */
typedef enum MsgValType {
    VAL_NONE = 0, VAL_NIL, VAL_BOOL, VAL_INT, VAL_FLOAT, VAL_LUDATA, VAL_CFUNC, VAL_STR, VAL_ARRAY
} MsgValType;

typedef struct MsgValue {
    MsgValType type;
    union {
        int b;
        long long i;
        double n;
        void *p;
        lua_CFunction f;
        struct { const char *ptr; size_t len; } s;
        struct { int type; size_t elemsize; size_t count; const char *data; } a;
    } u;
} MsgValue;

/* Appending single elements; MSG_OK, MSG_FULL/MSG_TOO_BIG (fixed MemBuf), MSG_NOMEM.
 * On failure nothing is appended. */
MsgStatus mtmsg_codec_putnil(MemBuf *mb);
MsgStatus mtmsg_codec_putbool(MemBuf *mb, int b);
MsgStatus mtmsg_codec_putint(MemBuf *mb, long long i);
MsgStatus mtmsg_codec_putfloat(MemBuf *mb, double n);
MsgStatus mtmsg_codec_putstr(MemBuf *mb, const char *s, size_t len);
MsgStatus mtmsg_codec_putptr(MemBuf *mb, int tag, const void *p, size_t size);
/* Appends an array header and reserves its payload; *data receives where to write it. */
MsgStatus mtmsg_codec_putarray(MemBuf *mb, int type, size_t elemsize, size_t count, char **data);

/* Parses the element at p[*pos] (of len bytes) into *v and advances *pos.
 * Returns 1, 0 at the end, -1 for malformed bytes (bounds always checked). */
int mtmsg_codec_next(const char *p, size_t len, size_t *pos, MsgValue *v);

struct CarrayReuse;
/* Appends the Lua values at stack indices first..last as elements of one message.
 * MSG_BADARG: *badarg is the offending index and *badmsg the argument error text;
 * nothing is appended then. Other failures as for the put functions. */
MsgStatus mtmsg_codec_encode(lua_State *L, int first, int last, MemBuf *out,
                             int *badarg, const char **badmsg);
/* Pushes up to `max` values (max < 0: all) decoded from p[*pos..len), advancing *pos.
 * Returns the number pushed, or -1 for malformed data. May raise Lua errors (memory,
 * carray creation); `reuse` (may be NULL) gives carrays to reuse for array values. */
int mtmsg_codec_decode(lua_State *L, const char *p, size_t len, size_t *pos, int max,
                       struct CarrayReuse *reuse);

/* Message frames in a buffer queue: varint payload length, then the payload. */
size_t mtmsg_codec_varintlen(size_t v);
size_t mtmsg_codec_putvarint(char *dst, size_t v);          /* returns bytes written */
/* Reads a varint at p[*pos..len); 0 on malformed/truncated input. */
int mtmsg_codec_getvarint(const char *p, size_t len, size_t *pos, unsigned long long *v);

#endif
