/*
 * Lua classes: metatables, and the argument checks shared by every class (class.h).
 */
#include <stdint.h>

#include "class.h"
#include "compat.h"

void mtmsg_open_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *metamethods, const luaL_Reg *funcs) {
    luaL_newmetatable(L, tname);                    /* module, scratch, mt */
    lua_pushvalue(L, -2);
    lua_pushnil(L);
    lua_pushlightuserdata(L, (void *)(uintptr_t)lua_topointer(L, -3));
    lua_pushlightuserdata(L, (void *)(uintptr_t)tname);
    luaL_setfuncs(L, metamethods, 4);               /* upvalues: scratch, nil, &mt, tag */
    lua_newtable(L);                                /* module, scratch, mt, methods */
    lua_pushvalue(L, -3);
    lua_pushnil(L);                                 /* upvalue 2: see BusyBuf in buffer.c */
    lua_pushlightuserdata(L, (void *)(uintptr_t)lua_topointer(L, -4));  /* upvalue 3: &mt */
    lua_pushlightuserdata(L, (void *)(uintptr_t)tname);                  /* upvalue 4: tag */
    luaL_setfuncs(L, methods, 4);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__metatable");
    lua_pushstring(L, tname);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);                                  /* module, scratch */
    lua_pushvalue(L, -1);
    lua_insert(L, -3);                              /* scratch, module, scratch */
    luaL_setfuncs(L, funcs, 1);                     /* scratch, module */
    lua_insert(L, -2);                              /* module, scratch */
}

void mtmsg_checksize(lua_State *L, int arg, size_t *size, double *grow) {
    lua_Integer s = lua_isnoneornil(L, arg) ? 1024 : mtmsg_checkinteger(L, arg);
    lua_Number g = luaL_optnumber(L, arg + 1, 2);
    /* beyond the address space (32-bit size_t): as much as there is, which then fails */
    *size = s < 0 ? 0 : (unsigned long long)s > (size_t)-1 ? (size_t)-1 : (size_t)s;
    *grow = g < 0 ? 0 : (double)g;
}

int mtmsg_checkflag(lua_State *L, int arg) {
    if (lua_isnone(L, arg)) return 1;
    luaL_checktype(L, arg, LUA_TBOOLEAN);
    return lua_toboolean(L, arg);
}
