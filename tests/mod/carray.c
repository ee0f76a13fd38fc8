/* carray.c: a test-only stand-in for osch/lua-carray (module "carray"), written from
 * docs/CAPI.md sections 1 and 5. It owns refcounted native arrays (struct carray) and publishes
 * the Carray C API 1.0.0 plus hooks for lookup edge cases. No locks: only the reference count
 * is atomic; an array must not be used by two threads at once.
 *
 * Lua API (see also tests/carray_spec.lua):
 *   carray.new(typename [, "readonly"|"default"] [, count | {values}])   zero-filled or given
 *   carray.newref(typename, count [, "readonly"])   array over caller memory (newCarrayRef)
 *   carray.refreleases()        number of release callbacks run so far for newref arrays
 *   carray.newchained(typename [, count])   array whose record chain is 2.0.0 -> 1.0.0
 *   carray.newbadversion(typename [, count]) array whose only record is 99.0.0 (reason 1)
 *   carray.newnoapi()           userdata whose metatable has no _capi_carray (reason 2)
 *   carray.newbadmarker(kind)   userdata with a malformed _capi_carray field (reason 2); kind is
 *                               "string", "light", "short", "key" or "table"
 *   carray.lookup(v)            carray_get_capi() on v: major, minor, patch | nil, reason
 *   carray.info(v)              toReadableCarray()/toWritableCarray() on v: a table or nil
 *   carray.selftest()           exercises the 11 C API functions; true or raises
 *   a:type() a:len() #a a:get(i [, j]) a:set(i, v...) a:append(v...) a:setlen(n)
 *   a:isreadonly() a:capacity()
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#include "carray_capi.h"

#if defined(_WIN32)
#define CARRAY_EXPORT __declspec(dllexport)
#else
#define CARRAY_EXPORT __attribute__((visibility("default")))
#endif

/* Metatable names in the registry. */
#define CARRAY_MT            "carray"            /* ordinary arrays, record 1.0.0 */
#define CARRAY_CHAINED_MT    "carray.chained"    /* arrays, record 2.0.0 -> 1.0.0 */
#define CARRAY_BADVERSION_MT "carray.badversion" /* arrays, record 99.0.0 only */
#define CARRAY_NOAPI_MT      "carray.noapi"      /* plain userdata, no API */

/* ===== Lua version differences ===== */

#if LUA_VERSION_NUM >= 503
/* integer element types come back as Lua integers, float types as floats */
#define push_integral(L, v) lua_pushinteger(L, (lua_Integer)(v))
#define is_integer(L, i)    lua_isinteger(L, i)
#else
#define push_integral(L, v) lua_pushnumber(L, (lua_Number)(v))
#define is_integer(L, i)    0
#endif

/* luaL_setfuncs without upvalues (missing from Lua 5.1). */
static void setfuncs(lua_State* L, const luaL_Reg* funcs)
{
    for (; funcs->name != NULL; funcs++) {
        lua_pushcfunction(L, funcs->func);
        lua_setfield(L, -2, funcs->name);
    }
}

/* luaL_testudata (missing from Lua 5.1): the block if the value at i is a full userdata whose
 * metatable is the registry's tname, else NULL. */
static void* testudata(lua_State* L, int i, const char* tname)
{
    void* p = lua_touserdata(L, i);
    int same;
    if (p == NULL || !lua_getmetatable(L, i)) {
        return NULL;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, tname);     /* mt, expected */
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

/* ===== The native array ===== */

struct carray {
    int         refcount;       /* atomic; the Lua handle holds one */
    carray_type type;           /* immutable */
    carray_attr attr;           /* immutable */
    size_t      elemSize;       /* immutable */
    size_t      count;
    size_t      capacity;       /* in elements */
    char*       data;           /* NULL when capacity is 0 */
    int         isRef;          /* immutable: data is caller memory (newCarrayRef) */
    size_t      refCount;       /* immutable: element count given to newCarrayRef */
    void      (*releaseCallback)(void* dataRef, size_t elementCount); /* immutable */
};

/* The Lua object: a thin handle. a is NULL only between push and creation. */
typedef struct CarrayHandle {
    carray* a;
} CarrayHandle;

static const char* const typeNames[] = {
    "unsigned char", "signed char", "short", "unsigned short", "int", "unsigned int",
    "long", "unsigned long", "float", "double", "long long", "unsigned long long", NULL
};

/* Element size for a type code, 0 for an invalid code. */
static size_t elemsize(int t)
{
    switch (t) {
    case CARRAY_UCHAR:  return sizeof(unsigned char);
    case CARRAY_SCHAR:  return sizeof(signed char);
    case CARRAY_SHORT:  return sizeof(short);
    case CARRAY_USHORT: return sizeof(unsigned short);
    case CARRAY_INT:    return sizeof(int);
    case CARRAY_UINT:   return sizeof(unsigned int);
    case CARRAY_LONG:   return sizeof(long);
    case CARRAY_ULONG:  return sizeof(unsigned long);
    case CARRAY_FLOAT:  return sizeof(float);
    case CARRAY_DOUBLE: return sizeof(double);
    case CARRAY_LLONG:  return sizeof(long long);
    case CARRAY_ULLONG: return sizeof(unsigned long long);
    default:            return 0;
    }
}

static int refReleases; /* atomic: release callbacks run for newref arrays */

/* Sets the capacity to exactly cap elements (owned storage only). 0 on allocation failure,
 * leaving the array unchanged. */
static int setcapacity(carray* a, size_t cap)
{
    char* p;
    if (cap == 0) {
        free(a->data);
        a->data = NULL;
        a->capacity = 0;
        return 1;
    }
    if (cap > SIZE_MAX / a->elemSize) {
        return 0;
    }
    p = (char*)realloc(a->data, cap * a->elemSize);
    if (p == NULL) {
        return 0;
    }
    a->data = p;
    a->capacity = cap;
    return 1;
}

/* Makes room for n elements following reservePercent (see carray_capi.h); never shrinks. */
static int reserve(carray* a, size_t n, int reservePercent)
{
    size_t cap = n;
    if (n <= a->capacity) {
        return 1;
    }
    if (reservePercent > 0) {
        size_t extra = n / 100 * (size_t)reservePercent
                     + n % 100 * (size_t)reservePercent / 100;
        if (extra <= SIZE_MAX - n) {
            cap = n + extra;
        }
    }
    return setcapacity(a, cap) || (cap != n && setcapacity(a, n));
}

static void freearray(carray* a)
{
    if (a->isRef) {
        if (a->releaseCallback != NULL) {
            a->releaseCallback(a->data, a->refCount);
        }
    } else {
        free(a->data);
    }
    free(a);
}

/* ===== The C API functions ===== */

static void pushclassmt(lua_State* L, const char* tname);

/* Pushes a new handle with the given metatable and creates its array (owned storage, count
 * elements, zeroed if zero is set). Raises on allocation failure. */
static carray* pusharray(lua_State* L, const char* tname, carray_type t, carray_attr attr,
                         size_t count, int zero)
{
    size_t size = elemsize(t);
    CarrayHandle* h = (CarrayHandle*)lua_newuserdata(L, sizeof *h);  /* ud */
    carray* a;
    h->a = NULL;
    pushclassmt(L, tname);                                            /* ud, mt */
    lua_setmetatable(L, -2);                                          /* ud */
    if (count > SIZE_MAX / size) {
        luaL_error(L, "carray too large");
    }
    a = (carray*)calloc(1, sizeof *a);
    if (a == NULL) {
        luaL_error(L, "not enough memory");
    }
    a->refcount = 1;
    a->type = t;
    a->attr = attr;
    a->elemSize = size;
    if (count > 0) {
        a->data = (char*)(zero ? calloc(count, size) : malloc(count * size));
        if (a->data == NULL) {
            free(a);
            luaL_error(L, "not enough memory");
        }
    }
    a->count = count;
    a->capacity = count;
    h->a = a;  /* the handle's reference */
    return a;
}

static carray* capi_newCarray(lua_State* L, carray_type t, carray_attr attr,
                              size_t elementCount, void** data)
{
    carray* a;
    if (elemsize(t) == 0) {
        return NULL;
    }
    a = pusharray(L, CARRAY_MT, t, attr, elementCount, data == NULL);
    if (data != NULL && elementCount > 0) {
        *data = a->data;
    }
    return a;
}

static carray* capi_newCarrayRef(lua_State* L, carray_type t, carray_attr attr,
                                 void* dataRef, size_t elementCount,
                                 void (*releaseCallback)(void* dataRef, size_t elementCount))
{
    carray* a;
    if (elemsize(t) == 0) {
        return NULL;
    }
    a = pusharray(L, CARRAY_MT, t, attr, 0, 0);
    a->isRef = 1;
    a->data = (char*)dataRef;
    a->count = elementCount;
    a->capacity = elementCount;
    a->refCount = elementCount;
    a->releaseCallback = releaseCallback;
    return a;
}

/* The array behind the value at i if it is one of ours that carries the 1.0.0 record
 * (directly or chained), else NULL. */
static carray* toarray(lua_State* L, int i)
{
    CarrayHandle* h = (CarrayHandle*)testudata(L, i, CARRAY_MT);
    if (h == NULL) {
        h = (CarrayHandle*)testudata(L, i, CARRAY_CHAINED_MT);
    }
    return h != NULL ? h->a : NULL;
}

static void fillinfo(const carray* a, carray_info* info, int withCapacity)
{
    info->elementType = a->type;
    info->attr = a->attr;
    info->elementSize = a->elemSize;
    info->elementCount = a->count;
    info->elementCapacity = withCapacity ? a->capacity : 0;
}

static const carray* capi_toReadableCarray(lua_State* L, int index, carray_info* info)
{
    carray* a = toarray(L, index);
    if (a != NULL && info != NULL) {
        fillinfo(a, info, 1);
    }
    return a;
}

/* Like lua-carray, leaves info->elementCapacity at 0. */
static carray* capi_toWritableCarray(lua_State* L, int index, carray_info* info)
{
    carray* a = toarray(L, index);
    if (a == NULL || (a->attr & CARRAY_READONLY)) {
        return NULL;
    }
    if (info != NULL) {
        fillinfo(a, info, 0);
    }
    return a;
}

static void capi_retainCarray(const carray* ca)
{
    carray* a = (carray*)(uintptr_t)ca;  /* the count is mutable even through const handles */
    __atomic_add_fetch(&a->refcount, 1, __ATOMIC_RELAXED);  /* caller already holds one */
}

static void capi_releaseCarray(const carray* ca)
{
    carray* a = (carray*)(uintptr_t)ca;
    /* acq_rel: the last releaser must see every other holder's writes before freeing */
    if (__atomic_sub_fetch(&a->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
        freearray(a);
    }
}

static const void* capi_getReadableElementPtr(const carray* a, size_t offset, size_t count)
{
    if (count == 0 || offset > a->count || count > a->count - offset) {
        return NULL;
    }
    return a->data + offset * a->elemSize;
}

static void* capi_getWritableElementPtr(carray* a, size_t offset, size_t count)
{
    if ((a->attr & CARRAY_READONLY)
        || count == 0 || offset > a->count || count > a->count - offset) {
        return NULL;
    }
    return a->data + offset * a->elemSize;
}

static void* capi_resizeCarray(carray* a, size_t newElementCount, int reservePercent)
{
    if ((a->attr & CARRAY_READONLY) || a->isRef) {
        return NULL;
    }
    if (newElementCount > a->capacity) {
        if (!reserve(a, newElementCount, reservePercent)) {
            return NULL;
        }
    } else if (reservePercent < 0 && newElementCount < a->capacity) {
        if (!setcapacity(a, newElementCount)) {
            return NULL;
        }
    }
    a->count = newElementCount;
    return a->data;  /* NULL for 0 elements without storage */
}

static void* capi_insertElements(carray* a, size_t offset, size_t insertCount,
                                 int reservePercent)
{
    size_t s = a->elemSize;
    if ((a->attr & CARRAY_READONLY) || a->isRef || insertCount == 0 || offset > a->count
        || insertCount > SIZE_MAX - a->count) {
        return NULL;
    }
    if (!reserve(a, a->count + insertCount, reservePercent)) {
        return NULL;
    }
    memmove(a->data + (offset + insertCount) * s, a->data + offset * s,
            (a->count - offset) * s);
    a->count += insertCount;
    return a->data + offset * s;
}

static void capi_removeElements(carray* a, size_t offset, size_t removeCount,
                                int reservePercent)
{
    size_t s = a->elemSize;
    if ((a->attr & CARRAY_READONLY) || a->isRef || offset >= a->count || removeCount == 0) {
        return;
    }
    if (removeCount > a->count - offset) {
        removeCount = a->count - offset;
    }
    memmove(a->data + offset * s, a->data + (offset + removeCount) * s,
            (a->count - offset - removeCount) * s);
    a->count -= removeCount;
    if (reservePercent < 0) {
        setcapacity(a, a->count);  /* shrinking; on failure the old block stays */
    }
}

/* The record published by ordinary arrays and the module table. */
static const carray_capi capiV1 = {
    CARRAY_CAPI_VERSION_MAJOR, CARRAY_CAPI_VERSION_MINOR, CARRAY_CAPI_VERSION_PATCH, NULL,
    capi_newCarray, capi_newCarrayRef, capi_toReadableCarray, capi_toWritableCarray,
    capi_retainCarray, capi_releaseCarray, capi_getWritableElementPtr,
    capi_getReadableElementPtr, capi_resizeCarray, capi_insertElements, capi_removeElements
};

/* A second, non-const 1.0.0 record as the target of a chain (next_capi is a plain void*). */
static carray_capi capiV1Chained = {
    CARRAY_CAPI_VERSION_MAJOR, CARRAY_CAPI_VERSION_MINOR, CARRAY_CAPI_VERSION_PATCH, NULL,
    capi_newCarray, capi_newCarrayRef, capi_toReadableCarray, capi_toWritableCarray,
    capi_retainCarray, capi_releaseCarray, capi_getWritableElementPtr,
    capi_getReadableElementPtr, capi_resizeCarray, capi_insertElements, capi_removeElements
};

/* Heads of foreign versions. A consumer of 1.x must not call through them; the slots still
 * hold our functions so that a consumer which ignores the version fails a test, not the run. */
static const carray_capi capiV2Chain = {
    2, 0, 0, &capiV1Chained,
    capi_newCarray, capi_newCarrayRef, capi_toReadableCarray, capi_toWritableCarray,
    capi_retainCarray, capi_releaseCarray, capi_getWritableElementPtr,
    capi_getReadableElementPtr, capi_resizeCarray, capi_insertElements, capi_removeElements
};
static const carray_capi capiV99 = {
    99, 0, 0, NULL,
    capi_newCarray, capi_newCarrayRef, capi_toReadableCarray, capi_toWritableCarray,
    capi_retainCarray, capi_releaseCarray, capi_getWritableElementPtr,
    capi_getReadableElementPtr, capi_resizeCarray, capi_insertElements, capi_removeElements
};

/* Pushes a marker userdata: [record pointer][key bytes + NUL]. */
static void pushmarker(lua_State* L, const carray_capi* rec)
{
    const size_t keySize = sizeof(CARRAY_CAPI_ID_STRING);
    char* block = (char*)lua_newuserdata(L, sizeof(void*) + keySize);
    memcpy(block, &rec, sizeof(void*));
    memcpy(block + sizeof(void*), CARRAY_CAPI_ID_STRING, keySize);
}

/* ===== Element access ===== */

static carray* checkany(lua_State* L, int i);

/* Pushes element i (0-based, in range). */
static void pushelem(lua_State* L, const carray* a, size_t i)
{
    const char* p = a->data + i * a->elemSize;
#define PUSH_AS(T, push) do { T v_; memcpy(&v_, p, sizeof v_); push(L, v_); } while (0)
    switch (a->type) {
    case CARRAY_UCHAR:  PUSH_AS(unsigned char, push_integral); break;
    case CARRAY_SCHAR:  PUSH_AS(signed char, push_integral); break;
    case CARRAY_SHORT:  PUSH_AS(short, push_integral); break;
    case CARRAY_USHORT: PUSH_AS(unsigned short, push_integral); break;
    case CARRAY_INT:    PUSH_AS(int, push_integral); break;
    case CARRAY_UINT:   PUSH_AS(unsigned int, push_integral); break;
    case CARRAY_LONG:   PUSH_AS(long, push_integral); break;
    case CARRAY_ULONG:  PUSH_AS(unsigned long, push_integral); break;
    case CARRAY_FLOAT:  PUSH_AS(float, lua_pushnumber); break;
    case CARRAY_DOUBLE: PUSH_AS(double, lua_pushnumber); break;
    case CARRAY_LLONG:  PUSH_AS(long long, push_integral); break;
    case CARRAY_ULLONG: PUSH_AS(unsigned long long, push_integral); break;
    }
#undef PUSH_AS
}

/* The integral value of Lua argument arg as 64 bits (two's complement for negatives);
 * integers wrap into the element type, floats must be whole and in 64-bit range. */
static unsigned long long checkbits(lua_State* L, int arg)
{
    lua_Number n;
    if (is_integer(L, arg)) {
        return (unsigned long long)lua_tointeger(L, arg);
    }
    n = luaL_checknumber(L, arg);
    if (n >= -9223372036854775808.0 && n < 9223372036854775808.0
        && (lua_Number)(long long)n == n) {
        return (unsigned long long)(long long)n;
    }
    if (n >= 9223372036854775808.0 && n < 18446744073709551616.0
        && (lua_Number)(unsigned long long)n == n) {
        return (unsigned long long)n;
    }
    luaL_argerror(L, arg, "number has no integer representation");
    return 0;
}

/* Stores Lua argument arg into element i (0-based, in range); raises for a bad value. */
static void setelem(lua_State* L, carray* a, size_t i, int arg)
{
    char* p = a->data + i * a->elemSize;
#define STORE_AS(T, v) do { T v_ = (T)(v); memcpy(p, &v_, sizeof v_); } while (0)
    if (a->type == CARRAY_FLOAT) {
        STORE_AS(float, luaL_checknumber(L, arg));
    } else if (a->type == CARRAY_DOUBLE) {
        STORE_AS(double, luaL_checknumber(L, arg));
    } else {
        unsigned long long bits = checkbits(L, arg);
        switch (a->type) {
        case CARRAY_UCHAR:  STORE_AS(unsigned char, bits); break;
        case CARRAY_SCHAR:  STORE_AS(signed char, bits); break;
        case CARRAY_SHORT:  STORE_AS(short, bits); break;
        case CARRAY_USHORT: STORE_AS(unsigned short, bits); break;
        case CARRAY_INT:    STORE_AS(int, bits); break;
        case CARRAY_UINT:   STORE_AS(unsigned int, bits); break;
        case CARRAY_LONG:   STORE_AS(long, bits); break;
        case CARRAY_ULONG:  STORE_AS(unsigned long, bits); break;
        case CARRAY_LLONG:  STORE_AS(long long, bits); break;
        case CARRAY_ULLONG: STORE_AS(unsigned long long, bits); break;
        default: break;
        }
    }
#undef STORE_AS
}

/* Raises unless the array may change its contents / its length from Lua. */
static carray* checkwritable(lua_State* L, int i, int resizing)
{
    carray* a = checkany(L, i);
    luaL_argcheck(L, !(a->attr & CARRAY_READONLY), i, "read-only carray");
    luaL_argcheck(L, !(resizing && a->isRef), i, "fixed-size carray");
    return a;
}

/* Raises unless arguments first..top are numbers (checked before any change). */
static void checknumbers(lua_State* L, int first)
{
    int top = lua_gettop(L);
    int i;
    for (i = first; i <= top; i++) {
        luaL_checknumber(L, i);
    }
}

/* ===== Lua methods ===== */

/* Accepts the arrays of every metatable (1.0.0, chained and bad-version ones). */
static carray* checkany(lua_State* L, int i)
{
    CarrayHandle* h = (CarrayHandle*)testudata(L, i, CARRAY_MT);
    if (h == NULL) {
        h = (CarrayHandle*)testudata(L, i, CARRAY_CHAINED_MT);
    }
    if (h == NULL) {
        h = (CarrayHandle*)testudata(L, i, CARRAY_BADVERSION_MT);
    }
    luaL_argcheck(L, h != NULL && h->a != NULL, i, "carray expected");
    return h->a;
}

static int array_type(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_pushstring(L, typeNames[a->type - 1]);
    return 1;
}

static int array_len(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_pushinteger(L, (lua_Integer)a->count);
    return 1;
}

static int array_capacity(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_pushinteger(L, (lua_Integer)a->capacity);
    return 1;
}

static int array_isreadonly(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_pushboolean(L, (a->attr & CARRAY_READONLY) != 0);
    return 1;
}

/* a:get(i [, j]): elements i..j (1-based, j defaults to i); nothing if j < i. */
static int array_get(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    lua_Integer j = luaL_optinteger(L, 3, i);
    lua_Integer k;
    luaL_argcheck(L, i >= 1 && (lua_Integer)a->count >= i, 2, "index out of range");
    luaL_argcheck(L, j <= (lua_Integer)a->count, 3, "index out of range");
    if (j < i) {
        return 0;
    }
    luaL_argcheck(L, j - i < INT_MAX, 3, "too many results");
    luaL_checkstack(L, (int)(j - i + 1), "too many results");
    for (k = i; k <= j; k++) {
        pushelem(L, a, (size_t)(k - 1));
    }
    return (int)(j - i + 1);
}

/* a:set(i, v...): stores the values at i, i+1, ... (all within the current length). */
static int array_set(lua_State* L)
{
    carray* a = checkwritable(L, 1, 0);
    lua_Integer i = luaL_checkinteger(L, 2);
    int n = lua_gettop(L) - 2;
    int k;
    luaL_argcheck(L, i >= 1 && (lua_Integer)a->count >= i - 1 + n
                     && (n > 0 || (lua_Integer)a->count >= i), 2, "index out of range");
    checknumbers(L, 3);
    for (k = 0; k < n; k++) {
        setelem(L, a, (size_t)(i - 1 + k), 3 + k);
    }
    return 0;
}

/* a:append(v...): adds the values at the end. */
static int array_append(lua_State* L)
{
    carray* a = checkwritable(L, 1, 1);
    int n = lua_gettop(L) - 1;
    size_t old = a->count;
    int k;
    checknumbers(L, 2);
    if (n == 0) {
        return 0;
    }
    if (capi_resizeCarray(a, old + (size_t)n, 25) == NULL) {
        return luaL_error(L, "not enough memory");
    }
    for (k = 0; k < n; k++) {
        setelem(L, a, old + (size_t)k, 2 + k);
    }
    return 0;
}

/* a:setlen(n): new elements are zero. */
static int array_setlen(lua_State* L)
{
    carray* a = checkwritable(L, 1, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    size_t old = a->count;
    luaL_argcheck(L, n >= 0, 2, "length must be >= 0");
    if (capi_resizeCarray(a, (size_t)n, 0) == NULL && n > 0) {
        return luaL_error(L, "not enough memory");
    }
    if ((size_t)n > old) {
        memset(a->data + old * a->elemSize, 0, ((size_t)n - old) * a->elemSize);
    }
    return 0;
}

static int array_tostring(lua_State* L)
{
    carray* a = checkany(L, 1);
    lua_pushfstring(L, "carray: %p (%s[%d])", (void*)a, typeNames[a->type - 1], (int)a->count);
    return 1;
}

/* __gc: drops the handle's reference; tolerates a NULL array and a second run. */
static int array_gc(lua_State* L)
{
    CarrayHandle* h = (CarrayHandle*)lua_touserdata(L, 1);
    if (h != NULL && h->a != NULL) {
        carray* a = h->a;
        h->a = NULL;
        capi_releaseCarray(a);
    }
    return 0;
}

static const luaL_Reg array_methods[] = {
    {"type", array_type},
    {"len", array_len},
    {"capacity", array_capacity},
    {"isreadonly", array_isreadonly},
    {"get", array_get},
    {"set", array_set},
    {"append", array_append},
    {"setlen", array_setlen},
    {NULL, NULL}
};

static const luaL_Reg array_metamethods[] = {
    {"__len", array_len},
    {"__tostring", array_tostring},
    {"__gc", array_gc},
    {NULL, NULL}
};

/* Pushes the registry metatable tname (one of the three array classes), creating it in this
 * state if needed: methods, metamethods, a protected __metatable and the _capi_carray marker. */
static void pushclassmt(lua_State* L, const char* tname)
{
    const carray_capi* rec = &capiV1;
    if (!luaL_newmetatable(L, tname)) {                 /* mt */
        return;
    }
    if (strcmp(tname, CARRAY_CHAINED_MT) == 0) {
        rec = &capiV2Chain;
    } else if (strcmp(tname, CARRAY_BADVERSION_MT) == 0) {
        rec = &capiV99;
    }
    setfuncs(L, array_metamethods);
    lua_newtable(L);                                    /* mt, methods */
    setfuncs(L, array_methods);
    lua_setfield(L, -2, "__index");                     /* mt */
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    lua_pushstring(L, "carray");
    lua_setfield(L, -2, "__metatable");
    pushmarker(L, rec);                                 /* mt, marker */
    lua_setfield(L, -2, CARRAY_CAPI_ID_STRING);         /* mt */
}

/* ===== Module functions ===== */

/* Type code for argument arg (a type name). */
static carray_type checktype(lua_State* L, int arg)
{
    return (carray_type)(luaL_checkoption(L, arg, NULL, typeNames) + 1);
}

static size_t checkcount(lua_State* L, int arg)
{
    lua_Integer n = luaL_optinteger(L, arg, 0);
    luaL_argcheck(L, n >= 0, arg, "count must be >= 0");
    return (size_t)n;
}

/* Creates an array of class tname from (typename [, attr] [, count | values]) at arg 1. */
static int newfromargs(lua_State* L, const char* tname)
{
    static const char* const attrNames[] = {"default", "readonly", NULL};
    carray_type t = checktype(L, 1);
    carray_attr attr = CARRAY_DEFAULT;
    int init = 2;
    size_t count = 0, k;
    carray* a;
    if (lua_type(L, 2) == LUA_TSTRING) {
        attr = luaL_checkoption(L, 2, NULL, attrNames) ? CARRAY_READONLY : CARRAY_DEFAULT;
        init = 3;
    }
    if (lua_istable(L, init)) {
#if LUA_VERSION_NUM >= 502
        count = (size_t)lua_rawlen(L, init);
#else
        count = lua_objlen(L, init);
#endif
        for (k = 1; k <= count; k++) {                  /* check all before creating */
            lua_rawgeti(L, init, (int)k);
            luaL_argcheck(L, lua_type(L, -1) == LUA_TNUMBER, init, "numbers expected");
            lua_pop(L, 1);
        }
    } else {
        count = checkcount(L, init);
    }
    lua_settop(L, init);
    a = pusharray(L, tname, t, attr, count, 1);         /* ..., a */
    if (lua_istable(L, init)) {
        for (k = 1; k <= count; k++) {
            lua_rawgeti(L, init, (int)k);               /* ..., a, v */
            setelem(L, a, k - 1, -1);
            lua_pop(L, 1);
        }
    }
    return 1;
}

/* carray.new(typename [, "readonly"|"default"] [, count | {values}]) */
static int m_new(lua_State* L)
{
    return newfromargs(L, CARRAY_MT);
}

/* carray.newchained(typename [, ...]): same arguments; record chain 2.0.0 -> 1.0.0. */
static int m_newchained(lua_State* L)
{
    return newfromargs(L, CARRAY_CHAINED_MT);
}

/* carray.newbadversion(typename [, ...]): same arguments; only record is 99.0.0. */
static int m_newbadversion(lua_State* L)
{
    return newfromargs(L, CARRAY_BADVERSION_MT);
}

static void refrelease(void* dataRef, size_t elementCount)
{
    (void)elementCount;
    free(dataRef);
    __atomic_add_fetch(&refReleases, 1, __ATOMIC_RELAXED);  /* only a statistic */
}

/* carray.newref(typename, count [, "readonly"]): zeroed caller-style memory, via newCarrayRef;
 * the release callback frees it and counts (see carray.refreleases()). */
static int m_newref(lua_State* L)
{
    static const char* const attrNames[] = {"default", "readonly", NULL};
    carray_type t = checktype(L, 1);
    size_t count = checkcount(L, 2);
    carray_attr attr = luaL_checkoption(L, 3, "default", attrNames) ? CARRAY_READONLY
                                                                      : CARRAY_DEFAULT;
    void* mem = NULL;
    luaL_argcheck(L, count <= SIZE_MAX / elemsize(t), 2, "count too large");
    if (count > 0 && (mem = calloc(count, elemsize(t))) == NULL) {
        return luaL_error(L, "not enough memory");
    }
    lua_settop(L, 0);
    /* if newCarrayRef raises (out of memory), mem leaks; acceptable in a test module */
    capi_newCarrayRef(L, t, attr, mem, count, refrelease);
    return 1;
}

static int m_refreleases(lua_State* L)
{
    lua_pushinteger(L, __atomic_load_n(&refReleases, __ATOMIC_RELAXED));
    return 1;
}

/* carray.newnoapi(): a userdata whose metatable carries no _capi_carray field. */
static int m_newnoapi(lua_State* L)
{
    lua_newuserdata(L, 1);                              /* ud */
    if (luaL_newmetatable(L, CARRAY_NOAPI_MT)) {        /* ud, mt */
        lua_pushstring(L, CARRAY_NOAPI_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);                            /* ud */
    return 1;
}

/* carray.newbadmarker(kind): a userdata whose metatable has an invalid _capi_carray field:
 * "string" the key as a string, "light" a light userdata to a valid block, "short" a block
 * one byte too short, "key" a block with a wrong key, "table" a table. */
static int m_newbadmarker(lua_State* L)
{
    static const char* const kinds[] = {"string", "light", "short", "key", "table", NULL};
    static char lightBlock[sizeof(void*) + sizeof(CARRAY_CAPI_ID_STRING)];
    const carray_capi* rec = &capiV1;
    int kind = luaL_checkoption(L, 1, NULL, kinds);
    char* block;
    lua_newuserdata(L, 1);                              /* ud */
    lua_newtable(L);                                    /* ud, mt */
    switch (kind) {
    case 0:
        lua_pushstring(L, CARRAY_CAPI_ID_STRING);
        break;
    case 1:
        memcpy(lightBlock, &rec, sizeof(void*));
        memcpy(lightBlock + sizeof(void*), CARRAY_CAPI_ID_STRING,
               sizeof(CARRAY_CAPI_ID_STRING));
        lua_pushlightuserdata(L, lightBlock);
        break;
    case 2:
        block = (char*)lua_newuserdata(L, sizeof(void*) + sizeof(CARRAY_CAPI_ID_STRING) - 1);
        memcpy(block, &rec, sizeof(void*));
        memcpy(block + sizeof(void*), CARRAY_CAPI_ID_STRING,
               sizeof(CARRAY_CAPI_ID_STRING) - 1);      /* no NUL */
        break;
    case 3:
        block = (char*)lua_newuserdata(L, sizeof(void*) + sizeof(CARRAY_CAPI_ID_STRING));
        memcpy(block, &rec, sizeof(void*));
        memcpy(block + sizeof(void*), "_capi_carrax", sizeof(CARRAY_CAPI_ID_STRING));
        break;
    default:
        lua_newtable(L);
        break;
    }                                                   /* ud, mt, field */
    lua_setfield(L, -2, CARRAY_CAPI_ID_STRING);         /* ud, mt */
    lua_setmetatable(L, -2);                            /* ud */
    return 1;
}

/* carray.lookup(v): applies carray_get_capi() to v: major, minor, patch or nil, reason. */
static int m_lookup(lua_State* L)
{
    int reason = 0;
    const carray_capi* capi;
    luaL_checkany(L, 1);
    capi = carray_get_capi(L, 1, &reason);
    if (capi == NULL) {
        lua_pushnil(L);
        lua_pushinteger(L, reason);
        return 2;
    }
    lua_pushinteger(L, capi->version_major);
    lua_pushinteger(L, capi->version_minor);
    lua_pushinteger(L, capi->version_patch);
    return 3;
}

/* carray.info(v): nil if toReadableCarray(v) is NULL, else {type, attr, elementSize,
 * elementCount, elementCapacity, writable, writableCapacity} (the last from toWritableCarray,
 * nil unless writable). */
static int m_info(lua_State* L)
{
    carray_info ri, wi;
    luaL_checkany(L, 1);
    if (capiV1.toReadableCarray(L, 1, &ri) == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, ri.elementType);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, ri.attr);
    lua_setfield(L, -2, "attr");
    lua_pushinteger(L, (lua_Integer)ri.elementSize);
    lua_setfield(L, -2, "elementSize");
    lua_pushinteger(L, (lua_Integer)ri.elementCount);
    lua_setfield(L, -2, "elementCount");
    lua_pushinteger(L, (lua_Integer)ri.elementCapacity);
    lua_setfield(L, -2, "elementCapacity");
    lua_pushboolean(L, capiV1.toWritableCarray(L, 1, &wi) != NULL);
    lua_setfield(L, -2, "writable");
    if (capiV1.toWritableCarray(L, 1, &wi) != NULL) {
        lua_pushinteger(L, (lua_Integer)wi.elementCapacity);
        lua_setfield(L, -2, "writableCapacity");
    }
    return 1;
}

/* ===== Self test of the C API (carray.selftest()) ===== */

/* Caller memory for the reference test; the callback records its calls in it (so that
 * concurrent self tests in several states do not share state). */
typedef struct SelfRef {
    int    mem[4];
    int    calls;
    size_t count;
} SelfRef;

static void selfrefrelease(void* dataRef, size_t elementCount)
{
    SelfRef* r = (SelfRef*)dataRef;  /* mem is the first member */
    r->calls++;
    r->count = elementCount;
}

#define CHECK(cond) \
    do { if (!(cond)) return luaL_error(L, "selftest failed at line %d: %s", __LINE__, #cond); \
    } while (0)

static int m_selftest(lua_State* L)
{
    const carray_capi* api;
    carray_info info;
    carray* a;
    const carray* ra;
    void* data;
    int* ip;
    const int* cip;
    double* dp;
    int reason = 0, top, k;
    SelfRef ref = {{1, 2, 3, 4}, 0, 0};

    lua_settop(L, 0);
    /* lookup through the module table and through an array */
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "carray");                      /* loaded, module */
    api = carray_get_capi(L, -1, &reason);
    CHECK(api == &capiV1 && lua_gettop(L) == 2);
    lua_settop(L, 0);
    lua_pushnil(L);
    api = carray_get_capi(L, 1, &reason);               /* no metatable */
    CHECK(api == NULL && reason == CARRAY_CAPI_ERR_NOAPI && lua_gettop(L) == 1);
    lua_settop(L, 0);

    /* invalid types push nothing */
    api = &capiV1;
    CHECK(api->newCarray(L, (carray_type)0, CARRAY_DEFAULT, 1, NULL) == NULL);
    CHECK(api->newCarray(L, (carray_type)13, CARRAY_DEFAULT, 1, NULL) == NULL);
    CHECK(api->newCarrayRef(L, (carray_type)0, CARRAY_DEFAULT, NULL, 0, NULL) == NULL);
    CHECK(lua_gettop(L) == 0);

    /* newCarray with data, info, element pointers */
    data = NULL;
    a = api->newCarray(L, CARRAY_INT, CARRAY_DEFAULT, 3, &data);
    CHECK(a != NULL && data != NULL && lua_gettop(L) == 1);
    CHECK(carray_get_capi(L, 1, NULL) == &capiV1 && lua_gettop(L) == 1);
    ip = (int*)data;
    ip[0] = 10; ip[1] = 20; ip[2] = 30;
    CHECK(api->toReadableCarray(L, 1, &info) == a);
    CHECK(info.elementType == CARRAY_INT && info.attr == CARRAY_DEFAULT);
    CHECK(info.elementSize == sizeof(int) && info.elementCount == 3);
    CHECK(info.elementCapacity == 3);
    info.elementCapacity = 77;
    CHECK(api->toWritableCarray(L, -1, &info) == a && info.elementCapacity == 0);
    CHECK(api->toReadableCarray(L, 1, NULL) == a && api->toWritableCarray(L, 1, NULL) == a);
    CHECK(api->getReadableElementPtr(a, 0, 3) == data);
    CHECK(api->getReadableElementPtr(a, 2, 1) == ip + 2);
    CHECK(api->getReadableElementPtr(a, 2, 2) == NULL);
    CHECK(api->getReadableElementPtr(a, 3, 1) == NULL);
    CHECK(api->getReadableElementPtr(a, 0, 0) == NULL);
    CHECK(api->getWritableElementPtr(a, 1, 2) == ip + 1);
    CHECK(api->getWritableElementPtr(a, 4, 0) == NULL);

    /* insert / remove */
    ip = (int*)api->insertElements(a, 1, 2, 0);
    CHECK(ip != NULL && api->toReadableCarray(L, 1, &info) == a && info.elementCount == 5);
    ip[0] = 11; ip[1] = 12;
    cip = (const int*)api->getReadableElementPtr(a, 0, 5);
    CHECK(cip[0] == 10 && cip[1] == 11 && cip[2] == 12 && cip[3] == 20 && cip[4] == 30);
    CHECK(api->insertElements(a, 6, 1, 0) == NULL && api->insertElements(a, 0, 0, 0) == NULL);
    ip = (int*)api->insertElements(a, 5, 1, 0);         /* at the end */
    CHECK(ip != NULL);
    *ip = 40;
    api->removeElements(a, 1, 2, 0);
    cip = (const int*)api->getReadableElementPtr(a, 0, 4);
    CHECK(cip != NULL && cip[0] == 10 && cip[1] == 20 && cip[2] == 30 && cip[3] == 40);
    api->removeElements(a, 3, 100, 0);                  /* clamped */
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 3);
    api->removeElements(a, 0, 3, -1);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 0
          && info.elementCapacity == 0);

    /* resize and reservePercent */
    CHECK(api->resizeCarray(a, 0, 0) == NULL);          /* no storage left */
    CHECK(api->resizeCarray(a, 10, 50) != NULL);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 10
          && info.elementCapacity == 15);
    CHECK(api->resizeCarray(a, 12, 0) != NULL);         /* within capacity */
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCapacity == 15);
    CHECK(api->resizeCarray(a, 5, 0) != NULL);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 5
          && info.elementCapacity == 15);
    CHECK(api->resizeCarray(a, 0, 0) != NULL);          /* storage kept */
    CHECK(api->resizeCarray(a, 5, -1) != NULL);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCapacity == 5);
    CHECK(api->resizeCarray(a, 7, -1) != NULL);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCapacity == 7);
    CHECK(api->resizeCarray(a, 0, -1) == NULL);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 0
          && info.elementCapacity == 0);
    lua_settop(L, 0);

    /* count 0: *data untouched, zeroed elements without data */
    data = &reason;
    a = api->newCarray(L, CARRAY_DOUBLE, CARRAY_DEFAULT, 0, &data);
    CHECK(a != NULL && data == &reason && lua_gettop(L) == 1);
    CHECK(api->getReadableElementPtr(a, 0, 0) == NULL);
    CHECK(api->getReadableElementPtr(a, 0, 1) == NULL);
    a = api->newCarray(L, CARRAY_DOUBLE, CARRAY_DEFAULT, 4, NULL);
    dp = (double*)api->getWritableElementPtr(a, 0, 4);
    CHECK(dp != NULL && dp[0] == 0.0 && dp[3] == 0.0);
    lua_settop(L, 0);

    /* read-only */
    a = api->newCarray(L, CARRAY_ULLONG, CARRAY_READONLY, 2, NULL);
    CHECK(a != NULL && api->toWritableCarray(L, 1, &info) == NULL);
    CHECK(api->toReadableCarray(L, 1, &info) == a && info.attr == CARRAY_READONLY
          && info.elementSize == sizeof(unsigned long long));
    CHECK(api->getWritableElementPtr(a, 0, 1) == NULL);
    CHECK(api->getReadableElementPtr(a, 0, 2) != NULL);
    CHECK(api->resizeCarray(a, 3, 0) == NULL && api->insertElements(a, 0, 1, 0) == NULL);
    api->removeElements(a, 0, 1, 0);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 2);
    lua_settop(L, 0);

    /* references: not resizable, callback after the last release */
    a = api->newCarrayRef(L, CARRAY_INT, CARRAY_DEFAULT, &ref, 4, selfrefrelease);
    CHECK(a != NULL && lua_gettop(L) == 1);
    CHECK(api->getWritableElementPtr(a, 0, 4) == (void*)ref.mem);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 4);
    CHECK(api->resizeCarray(a, 5, 0) == NULL && api->resizeCarray(a, 2, -1) == NULL);
    CHECK(api->insertElements(a, 0, 1, 0) == NULL);
    api->removeElements(a, 0, 1, 0);
    CHECK(api->toReadableCarray(L, 1, &info) && info.elementCount == 4);
    ra = api->toReadableCarray(L, 1, NULL);
    api->retainCarray(ra);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    CHECK(ref.calls == 0 && ((const int*)api->getReadableElementPtr(ra, 3, 1))[0] == 4);
    api->releaseCarray(ra);
    CHECK(ref.calls == 1 && ref.count == 4);

    /* retain keeps an owned array alive past its Lua object */
    a = api->newCarray(L, CARRAY_SHORT, CARRAY_DEFAULT, 2, &data);
    ((short*)data)[1] = -7;
    api->retainCarray(a);
    api->retainCarray(a);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    api->releaseCarray(a);
    CHECK(((const short*)api->getReadableElementPtr(a, 1, 1))[0] == -7);
    api->releaseCarray(a);

    /* foreign values, including our own bad-version arrays */
    lua_pushinteger(L, 1);
    lua_newtable(L);
    lua_pushstring(L, "int");
    m_newnoapi(L);
    pusharray(L, CARRAY_BADVERSION_MT, CARRAY_INT, CARRAY_DEFAULT, 1, 1);
    top = lua_gettop(L);
    for (k = 1; k <= top; k++) {
        CHECK(api->toReadableCarray(L, k, &info) == NULL);
        CHECK(api->toWritableCarray(L, k, &info) == NULL);
    }
    reason = 0;
    CHECK(carray_get_capi(L, top, &reason) == NULL && reason == CARRAY_CAPI_ERR_VERSION);
    CHECK(lua_gettop(L) == top);

    /* the chained class is ours too */
    lua_settop(L, 0);
    pusharray(L, CARRAY_CHAINED_MT, CARRAY_FLOAT, CARRAY_DEFAULT, 1, 1);
    CHECK(carray_get_capi(L, -1, NULL) == &capiV1Chained);
    CHECK(api->toReadableCarray(L, -1, &info) != NULL && info.elementType == CARRAY_FLOAT);
    lua_settop(L, 0);

    lua_pushboolean(L, 1);
    return 1;
}

#undef CHECK

static const luaL_Reg module_funcs[] = {
    {"new", m_new},
    {"newref", m_newref},
    {"refreleases", m_refreleases},
    {"newchained", m_newchained},
    {"newbadversion", m_newbadversion},
    {"newnoapi", m_newnoapi},
    {"newbadmarker", m_newbadmarker},
    {"lookup", m_lookup},
    {"info", m_info},
    {"selftest", m_selftest},
    {NULL, NULL}
};

CARRAY_EXPORT int luaopen_carray(lua_State* L);

int luaopen_carray(lua_State* L)
{
    pushclassmt(L, CARRAY_MT);
    pushclassmt(L, CARRAY_CHAINED_MT);
    pushclassmt(L, CARRAY_BADVERSION_MT);
    lua_pop(L, 3);
    lua_newtable(L);                                    /* module */
    setfuncs(L, module_funcs);
    lua_pushliteral(L, "carray (mtmsg test provider) 1.0.0");
    lua_setfield(L, -2, "_VERSION");
    lua_newtable(L);                                    /* module, mt */
    pushmarker(L, &capiV1);                             /* module, mt, marker */
    lua_setfield(L, -2, CARRAY_CAPI_ID_STRING);         /* module, mt */
    lua_setmetatable(L, -2);                            /* module */
    return 1;
}
