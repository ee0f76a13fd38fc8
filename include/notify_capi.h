/* notify_capi.h: the Notify C API ("_capi_notify", version 0.0.2). A notifier is an object that
 * native code in any thread can poke; what a notification means is up to the implementer (an
 * mtmsg buffer appends an empty message). mtmsg implements it on buffers and consumes it in
 * buffer:notifier(). Written from docs/CAPI.md; owns no state and needs no locks.
 */
#ifndef NOTIFY_CAPI_H
#define NOTIFY_CAPI_H

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
#define NOTIFY_CAPI_ID_STRING     "_capi_notify"
#define NOTIFY_CAPI_VERSION_MAJOR 0
#define NOTIFY_CAPI_VERSION_MINOR 0
#define NOTIFY_CAPI_VERSION_PATCH 2

/* Reasons reported through notify_get_capi()'s errorReason. */
#define NOTIFY_CAPI_ERR_VERSION 1 /* an API is present, but no record has a compatible version */
#define NOTIFY_CAPI_ERR_NOAPI   2 /* no (valid) API marker in the value's metatable */

/* ===== Types ===== */

/* Native notifier handle; each implementation defines the struct privately. */
typedef struct notify_notifier notify_notifier;

/* Receives failure descriptions: msg is valid during the call only and is not necessarily
 * NUL-terminated (use msglen). Called zero or more times before the failing function returns. */
typedef void (*notifier_error_handler)(void* ehdata, const char* msg, size_t msglen);

/* ===== The API record ===== */

/* Published with static storage duration; consumers never copy or free it. */
typedef struct notify_capi {
    /* common head of every C API record */
    int   version_major;
    int   version_minor;
    int   version_patch;
    void* next_capi;     /* another notify_capi record (other version) or NULL */

    /* The notifier behind the value at index, or NULL if it is not a notifier of this
     * implementation. Does not raise and leaves the stack alone. Only in the thread running L.
     * The handle lives as long as the Lua value; retain it to keep it longer. */
    notify_notifier* (*toNotifier)(lua_State* L, int index);

    /* Add / drop a reference; the notifier is destroyed when the last one is dropped.
     * Thread safe. */
    void (*retainNotifier)(notify_notifier* n);
    void (*releaseNotifier)(notify_notifier* n);

    /* Delivers one notification; thread safe, no Lua state needed. Returns 0 when delivered,
     * 1 when the notifier is closed for good (release it and stop calling), any other value for
     * an implementation-specific failure (eh, if not NULL, may have received a description). */
    int (*notify)(notify_notifier* n, notifier_error_handler eh, void* ehdata);
} notify_capi;

/* ===== Layout checks ===== */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define NOTIFY_CAPI_STATIC_ASSERT(cond, name) _Static_assert(cond, #name)
#else
#define NOTIFY_CAPI_STATIC_ASSERT(cond, name) \
    typedef char notify_capi_static_assert_##name[(cond) ? 1 : -1]
#endif

/* LP64 (pointers of 8 bytes, int of 4): the documented sizes and offsets. */
#define NOTIFY_CAPI_LP64_ (sizeof(void*) == 8 && sizeof(int) == 4)

NOTIFY_CAPI_STATIC_ASSERT(!NOTIFY_CAPI_LP64_ || sizeof(notify_capi) == 56, record_size);
NOTIFY_CAPI_STATIC_ASSERT(!NOTIFY_CAPI_LP64_ || offsetof(notify_capi, next_capi) == 16,
                          record_next_capi);
NOTIFY_CAPI_STATIC_ASSERT(!NOTIFY_CAPI_LP64_ || offsetof(notify_capi, toNotifier) == 24,
                          record_first_function);
NOTIFY_CAPI_STATIC_ASSERT(!NOTIFY_CAPI_LP64_ || offsetof(notify_capi, notify) == 48,
                          record_last_function);

/* ===== Consumer helper ===== */

/* Finds a Notify API record compatible with this header on the value at index (any type):
 * reads the raw metatable field NOTIFY_CAPI_ID_STRING, checks that it is a full userdata block
 * [record pointer][key bytes with NUL], then follows next_capi until a record has our major and
 * at least our minor. Returns NULL and sets *errorReason (if errorReason is non-NULL) to
 * NOTIFY_CAPI_ERR_VERSION or NOTIFY_CAPI_ERR_NOAPI. Leaves the stack as it found it; does not
 * raise (except for memory errors inside luaL_getmetafield). */
static inline const notify_capi* notify_get_capi(lua_State* L, int index, int* errorReason)
{
    const size_t keySize = sizeof(NOTIFY_CAPI_ID_STRING); /* includes the NUL */
    const notify_capi* found = NULL;
    int reason = NOTIFY_CAPI_ERR_NOAPI;

    /* pushes the field only when found; 5.1/5.2 return 0/1, 5.3+ return the type (0 = nil) */
    if (luaL_getmetafield(L, index, NOTIFY_CAPI_ID_STRING)) {     /* field */
        const char* block = (const char*)lua_touserdata(L, -1);
#if LUA_VERSION_NUM >= 502
        size_t blockLen = (size_t)lua_rawlen(L, -1);
#else
        size_t blockLen = (size_t)lua_objlen(L, -1);
#endif
        /* a light userdata has length 0 and is rejected here */
        if (block != NULL && blockLen >= sizeof(void*) + keySize
            && memcmp(block + sizeof(void*), NOTIFY_CAPI_ID_STRING, keySize) == 0) {
            const notify_capi* rec;
            memcpy(&rec, block, sizeof rec);
            reason = NOTIFY_CAPI_ERR_VERSION;
            while (rec != NULL) {
                if (rec->version_major == NOTIFY_CAPI_VERSION_MAJOR
                    && rec->version_minor >= NOTIFY_CAPI_VERSION_MINOR) {
                    found = rec;
                    break;
                }
                rec = (const notify_capi*)rec->next_capi;
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

#endif /* NOTIFY_CAPI_H */
