/*
 * Lua classes: metatables, and the argument checks shared by every class (class.h).
 */
#include <stdint.h>

#include "class.h"
#include "compat.h"

/* Pushes the class's ClassCtx: the one in the registry (key: the tag) or a new one;
 * its metatable is at (absolute) index mt. */
static void pushctx(lua_State *L, const char *tname, int mt) {
    ClassCtx *ctx;
    void *scratch = lua_touserdata(L, mt - 1);
    lua_pushlightuserdata(L, (void *)(uintptr_t)tname);
    lua_rawget(L, LUA_REGISTRYINDEX);               /* ctx | nil */
    ctx = (ClassCtx *)lua_touserdata(L, -1);
    if (!ctx) {
        lua_pop(L, 1);
        ctx = (ClassCtx *)lua_newuserdatauv(L, sizeof *ctx, 0);
        ctx->self = NULL;
        ctx->recv = NULL;
        lua_pushlightuserdata(L, (void *)(uintptr_t)tname);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);           /* ctx */
    }
    ctx->mt = lua_topointer(L, mt);
    ctx->scratch = scratch;
}

ClassCtx *mtmsg_class_getctx(lua_State *L, const char *tname) {
    ClassCtx *ctx;
    lua_pushlightuserdata(L, (void *)(uintptr_t)tname);
    lua_rawget(L, LUA_REGISTRYINDEX);
    ctx = (ClassCtx *)lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ctx;
}

void mtmsg_open_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *metamethods, const luaL_Reg *funcs) {
    int mt;
    luaL_newmetatable(L, tname);                    /* module, scratch, mt */
    mt = lua_gettop(L);
    lua_pushvalue(L, -2);
    lua_pushnil(L);
    pushctx(L, tname, mt);
    lua_pushlightuserdata(L, (void *)(uintptr_t)tname);
    luaL_setfuncs(L, metamethods, 4);               /* upvalues: scratch, nil, ctx, tag */
    lua_newtable(L);                                /* module, scratch, mt, methods */
    lua_pushvalue(L, -3);
    lua_pushnil(L);                                 /* upvalue 2: see BusyBuf in buffer.c */
    pushctx(L, tname, mt);                          /* upvalue 3: the ClassCtx */
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
