/* receiver_capi.h: the Receiver C API ("_capi_receiver", version 2.0.0). Native code in any
 * thread builds a message in a private writer and hands it to a receiving object in one step.
 * mtmsg buffers implement it. Written from docs/CAPI.md; owns no state and needs no locks.
 */
#ifndef RECEIVER_CAPI_H
#define RECEIVER_CAPI_H

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
#define RECEIVER_CAPI_ID_STRING     "_capi_receiver"
#define RECEIVER_CAPI_VERSION_MAJOR 2
#define RECEIVER_CAPI_VERSION_MINOR 0
#define RECEIVER_CAPI_VERSION_PATCH 0

/* Reasons reported through receiver_get_capi()'s errorReason. */
#define RECEIVER_CAPI_ERR_VERSION 1 /* an API is present, but no compatible version */
#define RECEIVER_CAPI_ERR_NOAPI   2 /* no (valid) API marker in the value's metatable */

/* ===== Types ===== */

/* Element type codes of array values; the numbers are shared with the Sender and Carray APIs.
 * 0 is invalid. long and long long are distinct codes even where they have the same size. */
typedef enum receiver_array_type {
    RECEIVER_UCHAR  = 1,  /* unsigned char */
    RECEIVER_SCHAR  = 2,  /* signed char */
    RECEIVER_SHORT  = 3,  /* short */
    RECEIVER_USHORT = 4,  /* unsigned short */
    RECEIVER_INT    = 5,  /* int */
    RECEIVER_UINT   = 6,  /* unsigned int */
    RECEIVER_LONG   = 7,  /* long */
    RECEIVER_ULONG  = 8,  /* unsigned long */
    RECEIVER_FLOAT  = 9,  /* float */
    RECEIVER_DOUBLE = 10, /* double */
    RECEIVER_LLONG  = 11, /* long long (always present: C99 has it) */
    RECEIVER_ULLONG = 12  /* unsigned long long */
} receiver_array_type;

/* Opaque handles; each implementation defines the structs privately. A writer belongs to the
 * record that created it and must only be used with that record's functions. */
typedef struct receiver_object receiver_object;
typedef struct receiver_writer receiver_writer;

/* Receives failure descriptions: msg is valid during the call only and is not necessarily
 * NUL-terminated (use msglen). */
typedef void (*receiver_error_handler)(void* ehdata, const char* msg, size_t msglen);

/* ===== The API record ===== */

/* Published with static storage duration; consumers never copy or free it. Functions that take
 * a writer are not thread safe per writer (one thread at a time); msgToReceiver, retain and
 * release may be called from any thread concurrently. */
typedef struct receiver_capi {
    /* common head of every C API record */
    int   version_major;
    int   version_minor;
    int   version_patch;
    void* next_capi;     /* another receiver_capi record (other version) or NULL */

    /* The receiver behind the value at index, or NULL. Does not raise, leaves the stack alone;
     * only in the thread running L. Valid while the Lua value lives; retain it to keep it. */
    receiver_object* (*toReceiver)(lua_State* L, int index);

    /* Add / drop a reference; thread safe. */
    void (*retainReceiver)(receiver_object* r);
    void (*releaseReceiver)(receiver_object* r);

    /* A new, empty writer; NULL when out of memory. initialCapacity is in bytes; a growFactor
     * > 0 lets the writer grow (multiplying its capacity, never by less than needed), <= 0 keeps
     * the capacity fixed so that adding beyond it fails. */
    receiver_writer* (*newWriter)(size_t initialCapacity, float growFactor);
    void (*freeWriter)(receiver_writer* w);     /* NULL is accepted */

    /* Hands the writer's values to the receiver as one message. clear != 0 drops the messages
     * the receiver still holds first; nonblock != 0 returns 3 instead of waiting for the
     * receiver's lock. Returns 0 (accepted; the writer is empty afterwards) or one of the
     * RECEIVER_CAPI_RC_* codes below (the writer keeps its content). */
    int (*msgToReceiver)(receiver_object* r, receiver_writer* w, int clear, int nonblock,
                         receiver_error_handler eh, void* ehdata);

    /* Discards everything added so far. */
    void (*clearWriter)(receiver_writer* w);

    /* Append one value (addBytesToWriter: len integer values 0..255, not a string). Return 0,
     * or non-zero when the value could not be stored (nothing is appended then). */
    int (*addBooleanToWriter)(receiver_writer* w, int b);
    int (*addIntegerToWriter)(receiver_writer* w, lua_Integer i);
    int (*addNumberToWriter)(receiver_writer* w, lua_Number n);
    int (*addStringToWriter)(receiver_writer* w, const char* s, size_t len);
    int (*addBytesToWriter)(receiver_writer* w, const unsigned char* s, size_t len);

    /* Reserves an array value of elementCount elements of type t and returns where to write
     * the elements (no alignment promised: use memcpy). Fill it before the next call on this
     * writer. NULL for an unknown type or when no room is left; non-NULL for 0 elements. */
    void* (*addArrayToWriter)(receiver_writer* w, receiver_array_type t, size_t elementCount);
} receiver_capi;

/* Return codes of msgToReceiver (other values are implementation specific; mtmsg uses 999:
 * the message was stored, but a notifier connected to the buffer failed). */
#define RECEIVER_CAPI_RC_OK        0
#define RECEIVER_CAPI_RC_CLOSED    1 /* closed for good; release the receiver */
#define RECEIVER_CAPI_RC_ABORTED   2 /* aborted; may work again later */
#define RECEIVER_CAPI_RC_BUSY      3 /* nonblock and the receiver is not ready */
#define RECEIVER_CAPI_RC_FULL      4 /* fixed memory limit: retry after the receiver drained */
#define RECEIVER_CAPI_RC_TOO_BIG   5 /* fixed memory limit: this message can never fit */
#define RECEIVER_CAPI_RC_NOMEM     6 /* unlimited memory, but allocation failed */

/* ===== Layout checks ===== */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define RECEIVER_CAPI_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define RECEIVER_CAPI_STATIC_ASSERT(cond, name) \
    typedef char receiver_capi_static_assert_##name[(cond) ? 1 : -1]
#endif

/* LP64 (pointers of 8 bytes, int and enums of 4): the documented sizes and offsets. */
#define RECEIVER_CAPI_LP64_ \
    (sizeof(void*) == 8 && sizeof(int) == 4 && sizeof(receiver_array_type) == 4)

RECEIVER_CAPI_STATIC_ASSERT(!RECEIVER_CAPI_LP64_ || sizeof(receiver_capi) == 128, record_size);
RECEIVER_CAPI_STATIC_ASSERT(!RECEIVER_CAPI_LP64_ || offsetof(receiver_capi, toReceiver) == 24,
                            record_first_function);
RECEIVER_CAPI_STATIC_ASSERT(!RECEIVER_CAPI_LP64_ || offsetof(receiver_capi, msgToReceiver) == 64,
                            record_msg_to_receiver);
RECEIVER_CAPI_STATIC_ASSERT(!RECEIVER_CAPI_LP64_
                            || offsetof(receiver_capi, addNumberToWriter) == 96,
                            record_add_number);
RECEIVER_CAPI_STATIC_ASSERT(!RECEIVER_CAPI_LP64_
                            || offsetof(receiver_capi, addArrayToWriter) == 120,
                            record_last_function);

/* ===== Consumer helper ===== */

/* Finds a Receiver API record compatible with this header on the value at index (any type);
 * same rule as notify_get_capi(): raw metatable field RECEIVER_CAPI_ID_STRING holding a full
 * userdata [record pointer][key bytes with NUL], then the next_capi chain is searched for our
 * major and at least our minor. Returns NULL and sets *errorReason (if non-NULL) to
 * RECEIVER_CAPI_ERR_VERSION or RECEIVER_CAPI_ERR_NOAPI. Leaves the stack balanced. */
static inline const receiver_capi* receiver_get_capi(lua_State* L, int index, int* errorReason)
{
    const size_t keySize = sizeof(RECEIVER_CAPI_ID_STRING); /* includes the NUL */
    const receiver_capi* found = NULL;
    int reason = RECEIVER_CAPI_ERR_NOAPI;

    if (luaL_getmetafield(L, index, RECEIVER_CAPI_ID_STRING)) {   /* field */
        const char* block = (const char*)lua_touserdata(L, -1);
#if LUA_VERSION_NUM >= 502
        size_t blockLen = (size_t)lua_rawlen(L, -1);
#else
        size_t blockLen = (size_t)lua_objlen(L, -1);
#endif
        if (block != NULL && blockLen >= sizeof(void*) + keySize
            && memcmp(block + sizeof(void*), RECEIVER_CAPI_ID_STRING, keySize) == 0) {
            const receiver_capi* rec;
            memcpy(&rec, block, sizeof rec);
            reason = RECEIVER_CAPI_ERR_VERSION;
            while (rec != NULL) {
                if (rec->version_major == RECEIVER_CAPI_VERSION_MAJOR
                    && rec->version_minor >= RECEIVER_CAPI_VERSION_MINOR) {
                    found = rec;
                    break;
                }
                rec = (const receiver_capi*)rec->next_capi;
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

#endif /* RECEIVER_CAPI_H */
