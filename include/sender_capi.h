/* sender_capi.h: the Sender C API ("_capi_sender", version 1.0.0). Native code in any thread
 * moves the next message of a sending object into a private reader and then walks its values.
 * mtmsg buffers implement it. Written from docs/CAPI.md; owns no state and needs no locks.
 */
#ifndef SENDER_CAPI_H
#define SENDER_CAPI_H

#include <stddef.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===== Identification ===== */

/* The raw metatable key under which the API is published, and the version of this header.
 * A consumer built from this header accepts a record with the same major and a minor >= ours. */
#define SENDER_CAPI_ID_STRING     "_capi_sender"
#define SENDER_CAPI_VERSION_MAJOR 1
#define SENDER_CAPI_VERSION_MINOR 0
#define SENDER_CAPI_VERSION_PATCH 0

/* Reasons reported through sender_get_capi()'s errorReason. */
#define SENDER_CAPI_ERR_VERSION 1 /* an API is present, but no compatible version */
#define SENDER_CAPI_ERR_NOAPI   2 /* no (valid) API marker in the value's metatable */

/* ===== Types ===== */

/* Element type codes of array values; the numbers are shared with the Receiver and Carray APIs.
 * 0 is reported for an element type the implementation does not know. */
typedef enum sender_array_type {
    SENDER_UCHAR  = 1,  /* unsigned char */
    SENDER_SCHAR  = 2,  /* signed char */
    SENDER_SHORT  = 3,  /* short */
    SENDER_USHORT = 4,  /* unsigned short */
    SENDER_INT    = 5,  /* int */
    SENDER_UINT   = 6,  /* unsigned int */
    SENDER_LONG   = 7,  /* long */
    SENDER_ULONG  = 8,  /* unsigned long */
    SENDER_FLOAT  = 9,  /* float */
    SENDER_DOUBLE = 10, /* double */
    SENDER_LLONG  = 11, /* long long (always present: C99 has it) */
    SENDER_ULLONG = 12  /* unsigned long long */
} sender_array_type;

/* Kinds of values handed out by nextValueFromReader. */
typedef enum sender_capi_value_type {
    SENDER_CAPI_TYPE_NONE = 0,          /* no value left in the reader */
    SENDER_CAPI_TYPE_NIL,
    SENDER_CAPI_TYPE_BOOLEAN,           /* boolVal */
    SENDER_CAPI_TYPE_INTEGER,           /* intVal */
    SENDER_CAPI_TYPE_NUMBER,            /* numVal */
    SENDER_CAPI_TYPE_LIGHTUSERDATA,     /* ptrVal */
    SENDER_CAPI_TYPE_CFUNCTION,         /* funcVal */
    SENDER_CAPI_TYPE_STRING,            /* strVal */
    SENDER_CAPI_TYPE_ARRAY,             /* arrayVal */
    SENDER_CAPI_TYPE_TABLE              /* mtmsg extension: a Lua table element, skipped whole;
                                           no member is set (see docs/CAPI.md) */
} sender_capi_value_type;

/* The members after `type` share one anonymous union (C11; a GNU extension before). */
#if defined(__GNUC__) && !defined(__cplusplus)
#define SENDER_CAPI_ANON_UNION_ __extension__ union
#else
#define SENDER_CAPI_ANON_UNION_ union
#endif

/* One value of a message, filled by nextValueFromReader; the consumer allocates it. Pointers
 * refer into the reader's memory: valid until clearReader, freeReader or the next
 * nextMessageFromSender on that reader; strings are not NUL-terminated in general, and array
 * data has no alignment guarantee (copy it with memcpy). */
typedef struct sender_capi_value {
    sender_capi_value_type type;
    SENDER_CAPI_ANON_UNION_ {
        int           boolVal;      /* 0 or 1 */
        lua_Integer   intVal;
        lua_Number    numVal;
        void*         ptrVal;
        lua_CFunction funcVal;      /* upvalues of C closures are not transported */
        struct {
            const char* ptr;
            size_t      len;
        } strVal;
        struct {
            sender_array_type type; /* element type code, 0 if unknown */
            size_t      elementSize;
            size_t      elementCount;
            const void* data;
        } arrayVal;
    };
} sender_capi_value;

/* Opaque handles; each implementation defines the structs privately. A reader belongs to the
 * record that created it and must only be used with that record's functions. */
typedef struct sender_object sender_object;
typedef struct sender_reader sender_reader;

/* Receives failure descriptions: msg is valid during the call only and is not necessarily
 * NUL-terminated (use msglen). */
typedef void (*sender_error_handler)(void* ehdata, const char* msg, size_t msglen);

/* ===== The API record ===== */

/* Published with static storage duration; consumers never copy or free it. Functions that take
 * a reader are not thread safe per reader; nextMessageFromSender, retain and release may be
 * called from any thread concurrently. */
typedef struct sender_capi {
    /* common head of every C API record */
    int   version_major;
    int   version_minor;
    int   version_patch;
    void* next_capi;     /* another sender_capi record (other version) or NULL */

    /* The sender behind the value at index, or NULL. Does not raise, leaves the stack alone;
     * only in the thread running L. Valid while the Lua value lives; retain it to keep it. */
    sender_object* (*toSender)(lua_State* L, int index);

    /* Add / drop a reference; thread safe. */
    void (*retainSender)(sender_object* s);
    void (*releaseSender)(sender_object* s);

    /* A new, empty reader (NULL when out of memory); capacities as for receiver newWriter: a
     * growFactor <= 0 fixes the capacity, and a message that does not fit makes
     * nextMessageFromSender return 4. */
    sender_reader* (*newReader)(size_t initialCapacity, float growFactor);
    void (*freeReader)(sender_reader* r);       /* NULL is accepted */

    /* Discards the values still in the reader. */
    void (*clearReader)(sender_reader* r);

    /* Takes the next value out of the reader into *out; out->type is NONE when none is left. */
    void (*nextValueFromReader)(sender_reader* r, sender_capi_value* out);

    /* Moves the next message of the sender into the reader, replacing what it held. Waiting:
     * nonblock 0 and timeout < 0 waits without limit; timeout == 0 polls; nonblock 0 and
     * timeout > 0 waits up to timeout seconds; nonblock 1 returns 3 at once if the sender's
     * lock is busy (and, with timeout < 0, also when no message is there). Returns 0 or one of
     * the SENDER_CAPI_RC_* codes below. */
    int (*nextMessageFromSender)(sender_object* s, sender_reader* r, int nonblock,
                                 double timeout, sender_error_handler eh, void* ehdata);
} sender_capi;

/* Return codes of nextMessageFromSender (other values are implementation specific; mtmsg uses
 * 999: the message is in the reader, but a notifier connected to the buffer failed). */
#define SENDER_CAPI_RC_OK       0
#define SENDER_CAPI_RC_CLOSED   1 /* closed for good (also ends a blocking wait) */
#define SENDER_CAPI_RC_ABORTED  2 /* aborted; may work again later (also ends a wait) */
#define SENDER_CAPI_RC_EMPTY    3 /* no message: timeout, poll or nonblock */
#define SENDER_CAPI_RC_TOO_BIG  4 /* does not fit the reader's fixed limit; it stays queued */
#define SENDER_CAPI_RC_NOMEM    5 /* unlimited reader, but allocation failed */

/* ===== Layout checks ===== */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define SENDER_CAPI_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define SENDER_CAPI_STATIC_ASSERT(cond, name) \
    typedef char sender_capi_static_assert_##name[(cond) ? 1 : -1]
#endif

/* LP64 (pointers, size_t, lua_Integer and lua_Number of 8 bytes, int and enums of 4). */
#define SENDER_CAPI_LP64_ \
    (sizeof(void*) == 8 && sizeof(size_t) == 8 && sizeof(int) == 4 \
     && sizeof(sender_capi_value_type) == 4 && sizeof(lua_Integer) == 8 \
     && sizeof(lua_Number) == 8)

SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_ || sizeof(sender_capi) == 88, record_size);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_ || offsetof(sender_capi, toSender) == 24,
                          record_first_function);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_
                          || offsetof(sender_capi, nextMessageFromSender) == 80,
                          record_last_function);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_ || sizeof(sender_capi_value) == 40, value_size);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_ || offsetof(sender_capi_value, intVal) == 8,
                          value_union);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_
                          || offsetof(sender_capi_value, strVal.len) == 16, value_str_len);
SENDER_CAPI_STATIC_ASSERT(!SENDER_CAPI_LP64_
                          || offsetof(sender_capi_value, arrayVal.data) == 32, value_array_data);

/* ===== Consumer helper ===== */

/* Finds a Sender API record compatible with this header on the value at index (any type);
 * same rule as notify_get_capi(): raw metatable field SENDER_CAPI_ID_STRING holding a full
 * userdata [record pointer][key bytes with NUL], then the next_capi chain is searched for our
 * major and at least our minor. Returns NULL and sets *errorReason (if non-NULL) to
 * SENDER_CAPI_ERR_VERSION or SENDER_CAPI_ERR_NOAPI. Leaves the stack balanced. */
static inline const sender_capi* sender_get_capi(lua_State* L, int index, int* errorReason)
{
    const size_t keySize = sizeof(SENDER_CAPI_ID_STRING); /* includes the NUL */
    const sender_capi* found = NULL;
    int reason = SENDER_CAPI_ERR_NOAPI;

    if (luaL_getmetafield(L, index, SENDER_CAPI_ID_STRING)) {     /* field */
        const char* block = (const char*)lua_touserdata(L, -1);
#if LUA_VERSION_NUM >= 502
        size_t blockLen = (size_t)lua_rawlen(L, -1);
#else
        size_t blockLen = (size_t)lua_objlen(L, -1);
#endif
        if (block != NULL && blockLen >= sizeof(void*) + keySize
            && memcmp(block + sizeof(void*), SENDER_CAPI_ID_STRING, keySize) == 0) {
            const sender_capi* rec;
            memcpy(&rec, block, sizeof rec);
            reason = SENDER_CAPI_ERR_VERSION;
            while (rec != NULL) {
                if (rec->version_major == SENDER_CAPI_VERSION_MAJOR
                    && rec->version_minor >= SENDER_CAPI_VERSION_MINOR) {
                    found = rec;
                    break;
                }
                rec = (const sender_capi*)rec->next_capi;
            }
        }
        lua_pop(L, 1);                                              /* -- */
    }
    if (found == NULL && errorReason != NULL) {
        *errorReason = reason;
    }
    return found;
}

#ifdef __cplusplus
}
#endif

#endif /* SENDER_CAPI_H */
