/*
 * luahost: a minimal stand-in for the `lua` command (test-only), linked with a
 * sanitizer runtime (ASan+UBSan or TSan) so that the interpreter itself stays
 * uninstrumented (Debian's liblua) while the runtime is part of the executable:
 * no LD_PRELOAD, so child processes (gcc run by luarocks in rockspec_spec) do not
 * inherit the runtime. Usage: luahost script.lua [args...]  (like `lua script args`).
 * Sets the global `arg` as lua.c does, runs the script with a traceback handler,
 * closes the state and exits 0, or 1 on an error. Its allocator can fail on request
 * (__luahost_failcall, for tests/failalloc/scenario.lua); C modules stay mapped.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

/* Also builds against Lua 5.1 and LuaJIT (scripts/apifuzz.sh): no LUA_OK there, no
 * luaL_traceback in 5.1 (the message handler calls debug.traceback instead), and
 * x64 LuaJIT without GC64 refuses lua_newstate (luaL_newstate then; no failalloc). */
#if !defined(LUA_OK)
#define LUA_OK 0
#endif

/* Lua closes C modules with dlclose when the state closes; the leak check runs after
 * that, and stacks in an unmapped module cannot be symbolized. Keep them mapped (the
 * host is test-only; the liblua call binds to this definition). */
int dlclose(void *handle);
int dlclose(void *handle) {
    (void)handle;
    return 0;
}

/* Failure injection for Lua's own allocations (tests/failalloc/scenario.lua):
 * __luahost_failcall(k, f, ...) calls f(...) with allocation number k of the main state
 * (counted from the call) and every later one failing until f returns or raises (then
 * the error is raised again); __luahost_failalloc(n) arms directly, returns the count. Shrinking
 * never fails (Lua relies on that). Other states (threads) use their own allocator. */
static long fail_at, allocs;

static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (fail_at > 0 && (ptr == NULL || nsize > osize) && ++allocs >= fail_at) return NULL;
    return realloc(ptr, nsize);
}

static int host_failalloc(lua_State *L) {
    long n = (long)luaL_optinteger(L, 1, 0);
    lua_pushinteger(L, (lua_Integer)allocs);
    fail_at = n > 0 ? n : 0;
    allocs = 0;
    return 1;
}

static int host_failcall(lua_State *L) {
    long k = (long)luaL_checkinteger(L, 1);
    int status;
    luaL_checkany(L, 2);
    lua_remove(L, 1);                                   /* f, args */
    allocs = 0;
    fail_at = k > 0 ? k : 0;
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    fail_at = 0;                                        /* before anything allocates */
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "luahost: PANIC: unprotected error in call to Lua API (%s)\n", msg ? msg : "?");
    fflush(stderr);
    return 0;                                           /* then Lua aborts */
}

static int msghandler(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
#if LUA_VERSION_NUM >= 502
    luaL_traceback(L, L, msg, 1);
#else
    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    lua_pushstring(L, msg);
    lua_pushinteger(L, 2);
    lua_call(L, 2, 1);
#endif
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
    lua_pushcfunction(L, host_failalloc);
    lua_setglobal(L, "__luahost_failalloc");
    lua_pushcfunction(L, host_failcall);
    lua_setglobal(L, "__luahost_failcall");
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
    L = lua_newstate(host_alloc, NULL);
    if (L == NULL) L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
    lua_atpanic(L, panic);
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
