/*
 * floor: the Lua-call floor of benchmark S1 (bench-only module, no queue, no lock).
 * f("hello", i, true) keeps a copy of the three values and returns true, like
 * buffer:addmsg; f() returns the kept values, like buffer:nextmsg. One pair of such
 * calls is the least any Lua C API for "send three values, receive three values"
 * can cost, so S1 is reported as a ratio to it.
 */
#include <string.h>

#include "lua.h"
#include "lauxlib.h"

#define EXPORT __attribute__((visibility("default")))

static struct {
    char str[32];
    size_t len;
    lua_Integer i;
    int b;
} slot;    /* one thread only: S1 runs in the main thread */

static int l_f(lua_State *L) {
    if (lua_gettop(L) == 0) {
        lua_pushlstring(L, slot.str, slot.len);
        lua_pushinteger(L, slot.i);
        lua_pushboolean(L, slot.b);
        return 3;
    } else {
        size_t len;
        const char *s = luaL_checklstring(L, 1, &len);
        if (len > sizeof slot.str) len = sizeof slot.str;
        memcpy(slot.str, s, len);
        slot.len = len;
        slot.i = luaL_checkinteger(L, 2);
        slot.b = lua_toboolean(L, 3);
        lua_pushboolean(L, 1);
        return 1;
    }
}

EXPORT int luaopen_floor(lua_State *L);
EXPORT int luaopen_floor(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, l_f);
    lua_setfield(L, -2, "f");
    return 1;
}
