/*
 * Lua 5.1 / 5.2 / 5.3 / 5.4 / LuaJIT differences. The rest of the code is written
 * against the 5.4 API; this is the only file that tests LUA_VERSION_NUM.
 */
#ifndef MTMSG_COMPAT_H
#define MTMSG_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen(L, (i))
#if !defined(LUAJIT_VERSION_NUM) && !defined(luaL_newlibtable)
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void *luaL_testudata(lua_State *L, int ud, const char *tname);
#endif
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, sz, nuv) lua_newuserdata(L, (sz))
#endif

#if LUA_VERSION_NUM >= 503
#define MTMSG_HAS_INTEGERS 1
#else
#define MTMSG_HAS_INTEGERS 0
#define lua_isinteger(L, i) 0
#endif

/* Number at i as an integer if it has an exact integer value: on 5.3+ only for the
 * integer subtype; on 5.1/5.2 for integral doubles within +-2^53 and the range of
 * lua_Integer (not -0.0). Inline: the codec calls both on every integer element. */
#if MTMSG_HAS_INTEGERS
static inline int mtmsg_tointeger(lua_State *L, int i, lua_Integer *out) {
    if (!lua_isinteger(L, i)) return 0;
    *out = lua_tointeger(L, i);
    return 1;
}
#else
int mtmsg_tointeger(lua_State *L, int i, lua_Integer *out);
#endif
/* Pushes an integer-valued number (integer subtype where Lua has one). */
static inline void mtmsg_pushinteger(lua_State *L, lua_Integer v) {
#if MTMSG_HAS_INTEGERS
    lua_pushinteger(L, v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}
/* luaL_getmetafield returning 1/0 on every version. */
int mtmsg_getmetafield(lua_State *L, int obj, const char *e);
/* Like luaL_checkinteger, but on 5.1/5.2 also rejects non-integral numbers. */
lua_Integer mtmsg_checkinteger(lua_State *L, int arg);

#endif
