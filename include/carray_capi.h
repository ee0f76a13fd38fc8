/* carray_capi.h: the Carray C API ("_capi_carray", version 1.0.0) as seen by implementers and
 * consumers. mtmsg consumes it; tests/mod/carray.c implements it. Written from docs/CAPI.md
 * (sections 1 and 5); owns no state and needs no locks.
 */
#ifndef CARRAY_CAPI_H
#define CARRAY_CAPI_H

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
#define CARRAY_CAPI_ID_STRING     "_capi_carray"
#define CARRAY_CAPI_VERSION_MAJOR 1
#define CARRAY_CAPI_VERSION_MINOR 0
#define CARRAY_CAPI_VERSION_PATCH 0

/* Reasons reported through carray_get_capi()'s errorReason. */
#define CARRAY_CAPI_ERR_VERSION 1 /* an API is present, but no record has a compatible version */
#define CARRAY_CAPI_ERR_NOAPI   2 /* no (valid) API marker in the value's metatable */

/* ===== Types ===== */

/* Element type codes; the numbers are shared with the Receiver and Sender APIs. 0 is invalid.
 * long and long long are distinct codes even where they have the same size. */
typedef enum carray_type {
    CARRAY_UCHAR  = 1,  /* unsigned char */
    CARRAY_SCHAR  = 2,  /* signed char */
    CARRAY_SHORT  = 3,  /* short */
    CARRAY_USHORT = 4,  /* unsigned short */
    CARRAY_INT    = 5,  /* int */
    CARRAY_UINT   = 6,  /* unsigned int */
    CARRAY_LONG   = 7,  /* long */
    CARRAY_ULONG  = 8,  /* unsigned long */
    CARRAY_FLOAT  = 9,  /* float */
    CARRAY_DOUBLE = 10, /* double */
    CARRAY_LLONG  = 11, /* long long (always present: C99 has it) */
    CARRAY_ULLONG = 12  /* unsigned long long */
} carray_type;

/* Array attributes. */
typedef enum carray_attr {
    CARRAY_DEFAULT  = 0,
    CARRAY_READONLY = 1
} carray_attr;

/* What toReadableCarray/toWritableCarray report about an array. */
typedef struct carray_info {
    carray_type elementType;
    carray_attr attr;
    size_t      elementSize;     /* bytes per element */
    size_t      elementCount;
    size_t      elementCapacity; /* lua-carray leaves this 0 in toWritableCarray */
} carray_info;

/* Native array handle; each implementation defines the struct privately. */
typedef struct carray carray;

/* ===== The API record ===== */

/* Published with static storage duration; consumers never copy or free it. Functions taking
 * an L run in that Lua thread; the others act on one array the caller does not share. */
typedef struct carray_capi {
    /* common head of every C API record */
    int   version_major;
    int   version_minor;
    int   version_patch;
    void* next_capi;     /* another carray_capi record (other version) or NULL */

    /* Creates an array with count elements and pushes it onto L's stack; returns its handle.
     * If data is non-NULL, *data gets the uninitialised storage (not written when count is 0);
     * otherwise the elements are zeroed. Returns NULL, pushing nothing, for an invalid type.
     * May raise on allocation failure. */
    carray* (*newCarray)(lua_State* L, carray_type elementType, carray_attr attr,
                         size_t elementCount, void** data);

    /* Like newCarray, but the array uses caller-owned memory dataRef; releaseCallback (may be
     * NULL) is called once the array no longer needs it. Such arrays cannot change size. */
    carray* (*newCarrayRef)(lua_State* L, carray_type elementType, carray_attr attr,
                            void* dataRef, size_t elementCount,
                            void (*releaseCallback)(void* dataRef, size_t elementCount));

    /* The handle if the value at index is an array of this implementation, else NULL. Fills
     * *info when info is non-NULL. Valid while the Lua value lives (see retainCarray). */
    const carray* (*toReadableCarray)(lua_State* L, int index, carray_info* info);

    /* Same as toReadableCarray, but NULL for read-only arrays. */
    carray* (*toWritableCarray)(lua_State* L, int index, carray_info* info);

    /* Add / drop a reference; the array is destroyed when the last one is dropped. */
    void (*retainCarray)(const carray* a);
    void (*releaseCarray)(const carray* a);

    /* Pointer to element offset, valid for count elements; NULL if count is 0, if the range
     * exceeds the element count, or if the array is read-only. */
    void* (*getWritableElementPtr)(carray* a, size_t offset, size_t count);

    /* Same, for reading; read-only arrays are fine. */
    const void* (*getReadableElementPtr)(const carray* a, size_t offset, size_t count);

    /* Sets the element count; new elements are uninitialised. reservePercent < 0: capacity
     * becomes exactly the new count; 0: capacity kept when shrinking; > 0: that many percent
     * extra when growing. Returns element 0's address, NULL on failure, for read-only and
     * reference arrays, and possibly for newElementCount 0 (not a failure then). */
    void* (*resizeCarray)(carray* a, size_t newElementCount, int reservePercent);

    /* Inserts insertCount uninitialised elements at offset; returns the first new one's
     * address, NULL on failure or when insertCount is 0. */
    void* (*insertElements)(carray* a, size_t offset, size_t insertCount, int reservePercent);

    /* Removes removeCount elements starting at offset. */
    void (*removeElements)(carray* a, size_t offset, size_t removeCount, int reservePercent);
} carray_capi;

/* ===== Layout checks ===== */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CARRAY_CAPI_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define CARRAY_CAPI_STATIC_ASSERT(cond, name) \
    typedef char carray_capi_static_assert_##name[(cond) ? 1 : -1]
#endif

/* LP64 (pointers, long and size_t of 8 bytes, int of 4): the documented sizes and offsets. */
#define CARRAY_CAPI_LP64_ \
    (sizeof(void*) == 8 && sizeof(size_t) == 8 && sizeof(int) == 4 && sizeof(carray_type) == 4)

CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || sizeof(carray_capi) == 112, record_size);
CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || offsetof(carray_capi, newCarray) == 24,
                          record_first_function);
CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || offsetof(carray_capi, removeElements) == 104,
                          record_last_function);
CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || sizeof(carray_info) == 32, info_size);
CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || offsetof(carray_info, elementSize) == 8,
                          info_element_size);
CARRAY_CAPI_STATIC_ASSERT(!CARRAY_CAPI_LP64_ || offsetof(carray_info, elementCapacity) == 24,
                          info_element_capacity);

/* ===== Consumer helper ===== */

/* Finds a Carray API record compatible with this header on the value at index (any type):
 * reads the raw metatable field CARRAY_CAPI_ID_STRING, checks that it is a full userdata block
 * [record pointer][key bytes with NUL], then follows next_capi until a record has our major and
 * at least our minor. Returns NULL and sets *errorReason (if errorReason is non-NULL) to
 * CARRAY_CAPI_ERR_VERSION or CARRAY_CAPI_ERR_NOAPI. Leaves the stack as it found it; does not
 * raise (except for memory errors inside luaL_getmetafield). */
static inline const carray_capi* carray_get_capi(lua_State* L, int index, int* errorReason)
{
    const size_t keySize = sizeof(CARRAY_CAPI_ID_STRING); /* includes the NUL */
    const carray_capi* found = NULL;
    int reason = CARRAY_CAPI_ERR_NOAPI;

    /* pushes the field only when found; 5.1/5.2 return 0/1, 5.3+ return the type (0 = nil) */
    if (luaL_getmetafield(L, index, CARRAY_CAPI_ID_STRING)) {     /* field */
        const char* block = (const char*)lua_touserdata(L, -1);
#if LUA_VERSION_NUM >= 502
        size_t blockLen = (size_t)lua_rawlen(L, -1);
#else
        size_t blockLen = (size_t)lua_objlen(L, -1);
#endif
        /* a light userdata has length 0 and is rejected here */
        if (block != NULL && blockLen >= sizeof(void*) + keySize
            && memcmp(block + sizeof(void*), CARRAY_CAPI_ID_STRING, keySize) == 0) {
            const carray_capi* rec;
            memcpy(&rec, block, sizeof rec);
            reason = CARRAY_CAPI_ERR_VERSION;
            while (rec != NULL) {
                if (rec->version_major == CARRAY_CAPI_VERSION_MAJOR
                    && rec->version_minor >= CARRAY_CAPI_VERSION_MINOR) {
                    found = rec;
                    break;
                }
                rec = (const carray_capi*)rec->next_capi;
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

#endif /* CARRAY_CAPI_H */
