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
 * lua_Integer (not -0.0). */
int mtmsg_tointeger(lua_State *L, int i, lua_Integer *out);
/* Pushes an integer-valued number (integer subtype where Lua has one). */
void mtmsg_pushinteger(lua_State *L, lua_Integer v);
/* luaL_getmetafield returning 1/0 on every version. */
int mtmsg_getmetafield(lua_State *L, int obj, const char *e);
/* Like luaL_checkinteger, but on 5.1/5.2 also rejects non-integral numbers. */
lua_Integer mtmsg_checkinteger(lua_State *L, int arg);

/* luaL_checkudata(L, idx, tname), with a fast path for the methods and metamethods of
 * the class that `tname` names. mtmsg_open_class gives each of those two upvalues:
 * MTMSG_CLASS_UPVALUE, the address of the class metatable as a light userdata (the
 * metatable stays in the registry, so the address stays valid), and MTMSG_TAG_UPVALUE,
 * the class tag: the address of the class's own static `tname` array, one per class.
 * Only when the running function's tag is `tname` does one pointer comparison with
 * the metatable decide; anywhere else (a writer method checking its buffer argument,
 * a function called without its upvalues) this is luaL_checkudata, with its error
 * messages. So an object is never taken for another class's, wherever this runs.
 * `tname` must be that static array (the one given to mtmsg_open_class), not an equal
 * string literal, or every check takes the slow path. */
#define MTMSG_CLASS_UPVALUE 3
#define MTMSG_TAG_UPVALUE 4
static inline void *mtmsg_checkclass(lua_State *L, int idx, const char *tname) {
    if (lua_touserdata(L, lua_upvalueindex(MTMSG_TAG_UPVALUE)) == (const void *)tname) {
        void *p = lua_touserdata(L, idx);
        if (p && lua_getmetatable(L, idx)) {
            int same = lua_topointer(L, -1)
                       == lua_touserdata(L, lua_upvalueindex(MTMSG_CLASS_UPVALUE));
            lua_pop(L, 1);
            if (same) return p;
        }
    }
    return luaL_checkudata(L, idx, tname);
}

/* Optional boolean flag at arg: true when absent; any non-boolean is an argument error. */
int mtmsg_checkflag(lua_State *L, int arg);

#endif
