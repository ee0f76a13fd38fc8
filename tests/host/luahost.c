/*
 * luahost: a minimal stand-in for the `lua` command (test-only), linked with a
 * sanitizer runtime (ASan+UBSan or TSan) so that the interpreter itself stays
 * uninstrumented (Debian's liblua) while the runtime is part of the executable:
 * no LD_PRELOAD, so child processes (gcc run by luarocks in rockspec_spec) do not
 * inherit the runtime. Usage: luahost script.lua [args...]  (like `lua script args`).
 * Sets the global `arg` as lua.c does, runs the script with a traceback handler,
 * closes the state and exits 0, or 1 on an error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

/* Lua closes C modules with dlclose when the state closes; the leak check runs after
 * that, and stacks in an unmapped module cannot be symbolized. Keep them mapped (the
 * host is test-only; the liblua call binds to this definition). */
int dlclose(void *handle);
int dlclose(void *handle) {
    (void)handle;
    return 0;
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* Runs in protected mode: arg table, load, call with the script arguments. */
static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int i, base;
    luaL_openlibs(L);
    lua_createtable(L, argc - 2, 2);                /* arg[-1] = host, arg[0] = script */
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    lua_pushcfunction(L, msghandler);
    base = lua_gettop(L);
    if (luaL_loadfile(L, argv[1]) != LUA_OK) return lua_error(L);
    luaL_checkstack(L, argc, "too many arguments");
    for (i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 2, 0, base) != LUA_OK) return lua_error(L);
    lua_pushboolean(L, 1);
    return 1;
}

int main(int argc, char **argv) {
    lua_State *L;
    int status;
    if (argc < 2) {
        fprintf(stderr, "usage: %s script.lua [args...]\n", argv[0]);
        return 2;
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
#if defined(LUA_GCGEN)
    lua_gc(L, LUA_GCGEN, 0, 0);                     /* as lua.c 5.4 does */
#endif
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    status = lua_pcall(L, 2, 1, 0);
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        fprintf(stderr, "%s: %s\n", argv[0], msg ? msg : "(error object is not a string)");
        fflush(stderr);
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
