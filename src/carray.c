/*
 * carray elements (see carray.h): the Carray C API consumer. Sending copies the
 * elements of a carray into the message; receiving fills carrays of the reuse list or
 * creates new ones through the API of the `carray` module, which is looked up once per
 * Lua state (before a message is taken, so that its Lua code never runs mid-decode).
 */
#include "carray.h"

#include <stdint.h>
#include <string.h>

#include "lauxlib.h"
#include "carray_capi.h"

/* Registry key: a light userdata holding the carray module's API record. */
static const char capi_key = 0;

/* ===== The carray module's API ===== */

static const carray_capi *cached_api(lua_State *L) {
    const carray_capi *api;
    lua_pushlightuserdata(L, (void *)(uintptr_t)&capi_key);
    lua_rawget(L, LUA_REGISTRYINDEX);                   /* api | nil */
    api = (const carray_capi *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return api;
}

/* The API for new carrays: cached, or found on `require "carray"` (Lua code runs). */
static const carray_capi *module_api(lua_State *L) {
    const carray_capi *api = cached_api(L);
    int reason = CARRAY_CAPI_ERR_NOAPI;
    if (api) return api;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "carray");
    lua_call(L, 1, 1);                                  /* module */
    api = carray_get_capi(L, -1, &reason);
    lua_pop(L, 1);
    if (!api)
        luaL_error(L, reason == CARRAY_CAPI_ERR_VERSION ? "carray capi version mismatch"
                                                        : "carray capi not found");
    lua_pushlightuserdata(L, (void *)(uintptr_t)&capi_key);
    lua_pushlightuserdata(L, (void *)(uintptr_t)api);   /* static record: never freed */
    lua_rawset(L, LUA_REGISTRYINDEX);
    return api;
}

int mtmsg_carray_load(lua_State *L, CarrayReuse *reuse) {
    module_api(L);
    reuse->ready = 1;
    return 1;
}

/* ===== Sending ===== */

MsgStatus mtmsg_carray_encode(lua_State *L, int idx, MemBuf *out, const char **badmsg) {
    int reason = CARRAY_CAPI_ERR_NOAPI;
    const carray_capi *api = carray_get_capi(L, idx, &reason);
    const carray *a = NULL;
    carray_info info;
    char *dst;
    MsgStatus st;
    if (!api) {
        *badmsg = reason == CARRAY_CAPI_ERR_VERSION ? "carray capi version mismatch"
                                                    : "parameter type not supported";
        return MSG_BADARG;
    }
    memset(&info, 0, sizeof info);
    a = api->toReadableCarray(L, idx, &info);
    /* type and element size must fit their bytes; elements need a size */
    if (!a || (int)info.elementType < 1 || (int)info.elementType > 255
        || info.elementSize > MTMSG_ELEMSIZE_MAX
        || (info.elementSize == 0 && info.elementCount > 0)) {
        *badmsg = "parameter type not supported";
        return MSG_BADARG;
    }
    st = mtmsg_codec_putarray(out, (int)info.elementType, info.elementSize, info.elementCount,
                              &dst);
    if (st != MSG_OK) return st;
    if (info.elementCount > 0) {
        const void *src = api->getReadableElementPtr(a, 0, info.elementCount);
        if (!src) {             /* inconsistent provider; the caller drops what we appended */
            *badmsg = "parameter type not supported";
            return MSG_BADARG;
        }
        memcpy(dst, src, info.elementSize * info.elementCount);
    }
    return MSG_OK;
}

/* ===== Receiving ===== */

/* The carray at i as a writable array, or an argument error at i. */
static carray *checkwritable(lua_State *L, int i, carray_info *info, const carray_capi **apip) {
    int reason = CARRAY_CAPI_ERR_NOAPI;
    /* full userdata only: Lua code can give a table a metatable with any API marker */
    const carray_capi *api = lua_type(L, i) == LUA_TUSERDATA ? carray_get_capi(L, i, &reason)
                                                             : NULL;
    carray *a;
    if (!api)
        luaL_argerror(L, i, reason == CARRAY_CAPI_ERR_VERSION
                                ? "carray capi version mismatch" : "carray expected");
    a = api->toWritableCarray(L, i, info);
    if (!a)
        luaL_argerror(L, i, api->toReadableCarray(L, i, NULL) ? "writable carray expected"
                                                               : "carray expected");
    *apip = api;
    return a;
}

void mtmsg_carray_checkarg(lua_State *L, int arg, const char *msg) {
    int reason = CARRAY_CAPI_ERR_NOAPI;
    if (lua_type(L, arg) != LUA_TUSERDATA) luaL_argerror(L, arg, msg);
    if (!carray_get_capi(L, arg, &reason))
        luaL_argerror(L, arg, reason == CARRAY_CAPI_ERR_VERSION
                                  ? "carray capi version mismatch" : msg);
}

void mtmsg_carray_checkreuse(lua_State *L, int first, int last, CarrayReuse *reuse) {
    int i;
    reuse->first = reuse->next = first;
    reuse->last = last;
    reuse->ntypes = 0;
    if (first > last) {
        /* No reuse list, no registry lookup: `ready` stays 0, the take checks the
         * message (cheap, see neednew) and loads the API only when an array arrives
         * (MSG_NEEDCARRAY, then mtmsg_carray_load finds it cached). */
        reuse->ready = 0;
        return;
    }
    for (i = first; i <= last; i++) {
        carray_info info;
        const carray_capi *api;
        if (lua_isnil(L, i)) continue;
        memset(&info, 0, sizeof info);
        checkwritable(L, i, &info, &api);
        if (reuse->ntypes < MTMSG_REUSE_TYPES) {
            reuse->types[reuse->ntypes].type = (int)info.elementType;
            reuse->types[reuse->ntypes].size = info.elementSize;
        }
        reuse->ntypes++;
    }
    reuse->ready = cached_api(L) != NULL;
}

int mtmsg_carray_neednew(const CarrayReuse *reuse, const char *p, size_t len, size_t pos,
                         int max) {
    MsgValue v;
    int n = 0, k = 0;
    /* Fast path: no array tag byte anywhere means no array element (small payloads
     * only: memchr over a big one would cost more than the element walk). */
    if (len - pos <= 256 && (len == pos || !memchr(p + pos, TAG_ARRAY, len - pos)))
        return 0;                       /* (len == pos first: p is NULL for an empty reader) */
    while (max < 0 || n < max) {
        if (mtmsg_codec_next(p, len, &pos, &v) <= 0) break;
        n++;
        /* arrays inside tables always become new carrays */
        if (v.type == VAL_TABLE && mtmsg_codec_tablehasarray(&v)) return 1;
        if (v.type != VAL_ARRAY) continue;
        /* walk the reuse list as mtmsg_carray_push will: mismatches are consumed */
        for (;;) {
            if (k >= reuse->ntypes || k >= MTMSG_REUSE_TYPES) return 1;   /* or unknown */
            k++;
            if (reuse->types[k - 1].type == v.u.a.type
                && reuse->types[k - 1].size == v.u.a.elemsize) break;
        }
    }
    return 0;
}

/* Pushes a new carray holding the array value v. */
static void pushnew(lua_State *L, const MsgValue *v) {
    const carray_capi *api = module_api(L);
    size_t count = v->u.a.count;
    void *data = NULL;
    carray_info info;
    carray *a = api->newCarray(L, (carray_type)v->u.a.type, CARRAY_DEFAULT, count, &data);
    if (!a) luaL_error(L, "carray element type %d not supported", v->u.a.type);
    if (count == 0) return;
    memset(&info, 0, sizeof info);
    if (!api->toReadableCarray(L, -1, &info) || info.elementSize != v->u.a.elemsize
        || info.elementCount != count)
        luaL_error(L, "carray element size mismatch for element type %d", v->u.a.type);
    if (!data) data = api->getWritableElementPtr(a, 0, count);
    if (!data) luaL_error(L, "cannot fill carray");
    memcpy(data, v->u.a.data, count * v->u.a.elemsize);
}

void mtmsg_carray_push(lua_State *L, const MsgValue *v, CarrayReuse *reuse) {
    size_t count = v->u.a.count;
    while (reuse && reuse->next <= reuse->last) {
        int i = reuse->next++;
        const carray_capi *api;
        carray_info info;
        carray *a;
        if (lua_isnil(L, i)) continue;
        memset(&info, 0, sizeof info);
        a = checkwritable(L, i, &info, &api);
        if ((int)info.elementType == v->u.a.type && info.elementSize == v->u.a.elemsize) {
            void *dst = api->resizeCarray(a, count, 0);
            if (count > 0) {        /* NULL for 0 elements is no failure (no storage yet) */
                if (!dst) luaL_error(L, "cannot resize carray");
                memcpy(dst, v->u.a.data, count * v->u.a.elemsize);
            }
            lua_pushvalue(L, i);
            return;
        }
        api->resizeCarray(a, 0, 0);
    }
    pushnew(L, v);
}

void mtmsg_carray_finishreuse(lua_State *L, CarrayReuse *reuse) {
    while (reuse->next <= reuse->last) {
        int i = reuse->next++;
        const carray_capi *api;
        carray *a;
        if (lua_isnil(L, i)) continue;
        a = checkwritable(L, i, NULL, &api);
        api->resizeCarray(a, 0, 0);
    }
}
