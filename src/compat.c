/*
 * Backfills for older Lua versions (see compat.h).
 */
#include "compat.h"

#include <math.h>

#if LUA_VERSION_NUM < 502 && !defined(LUAJIT_VERSION_NUM) && !defined(luaL_newlibtable)
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

void *luaL_testudata(lua_State *L, int ud, const char *tname) {
    void *p = lua_touserdata(L, ud);
    if (p && lua_getmetatable(L, ud)) {
        luaL_getmetatable(L, tname);
        if (!lua_rawequal(L, -1, -2)) p = NULL;
        lua_pop(L, 2);
        return p;
    }
    return NULL;
}
#endif

#if !MTMSG_HAS_INTEGERS
int mtmsg_tointeger(lua_State *L, int i, lua_Integer *out) {
    /* 2^(bits-1): also within lua_Integer where that is narrower (32-bit platforms) */
    const lua_Number ilim = (lua_Number)((lua_Integer)1 << (sizeof(lua_Integer) * 8 - 2)) * 2;
    lua_Number n = lua_tonumber(L, i);
    if (n >= -9007199254740992.0 && n <= 9007199254740992.0 && n == floor(n)
        && n >= -ilim && n < ilim && !(n == 0 && signbit(n))) {
        *out = (lua_Integer)n;
        return 1;
    }
    return 0;
}
#endif

int mtmsg_getmetafield(lua_State *L, int obj, const char *e) {
#if LUA_VERSION_NUM >= 503
    return luaL_getmetafield(L, obj, e) != LUA_TNIL;
#else
    return luaL_getmetafield(L, obj, e) != 0;
#endif
}

lua_Integer mtmsg_checkinteger(lua_State *L, int arg) {
#if MTMSG_HAS_INTEGERS
    return luaL_checkinteger(L, arg);
#else
    /* 2^63 for a 64-bit lua_Integer; converting NaN, inf or anything outside
     * [-2^63, 2^63) is undefined behaviour (UBSan float-cast-overflow) */
    const lua_Number lim = (lua_Number)((lua_Integer)1 << (sizeof(lua_Integer) * 8 - 2)) * 2;
    lua_Number n = luaL_checknumber(L, arg);
    if (!(n == floor(n) && n >= -lim && n < lim))
        luaL_argerror(L, arg, "number has no integer representation");
    return (lua_Integer)n;
#endif
}
