/*
 * luaopen_mtmsg: the module table, module-level functions (abort, isabort, time,
 * sleep, type), the error table, _VERSION and _INFO. Each Lua state that loads the
 * module has one scratch BusyBuf, upvalue 1 of all module functions (see buffer.c).
 */
#include <string.h>

#include "buffer.h"
#include "class.h"
#include "compat.h"
#include "error.h"
#include "listener.h"
#include "registry.h"
#include "sync.h"
#include "writer.h"

#if !defined(MTMSG_VERSION)
#define MTMSG_VERSION "0.0.0-dev"
#endif

static int m_abort(lua_State *L) {
    mtmsg_registry_abort(mtmsg_checkflag(L, 1));
    return 0;
}

static int m_isabort(lua_State *L) {
    lua_pushboolean(L, mtmsg_registry_isabort());
    return 1;
}

static int m_time(lua_State *L) {
    lua_pushnumber(L, (lua_Number)mtmsg_clock_wall());
    return 1;
}

static int m_sleep(lua_State *L) {
    double t = (double)luaL_checknumber(L, 1);
    if (mtmsg_registry_sleep(t) == MSG_ABORTED)
        return mtmsg_error_raise(L, ERR_OPERATION_ABORTED, NULL);
    return 0;
}

/* type(arg), but for userdata the registered __name of its metatable. */
static int m_type(lua_State *L) {
    luaL_checkany(L, 1);
    if (lua_type(L, 1) == LUA_TUSERDATA && lua_getmetatable(L, 1)) {   /* mt */
        lua_pushliteral(L, "__name");
        lua_rawget(L, -2);                                             /* mt, name */
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -1);
            lua_rawget(L, LUA_REGISTRYINDEX);                          /* mt, name, reg[name] */
            if (lua_rawequal(L, -1, -3)) {
                lua_pop(L, 1);
                return 1;
            }
        }
        lua_settop(L, 1);
    }
    lua_pushstring(L, luaL_typename(L, 1));
    return 1;
}

static int workbuf_gc(lua_State *L) {
    /* checked: the debug library can call this with anything */
    mtmsg_membuf_free(&((BusyBuf *)luaL_checkudata(L, 1, MTMSG_BUSYBUF_MT))->mb);
    return 0;
}

#if defined(MTMSG_FAILALLOC)
/* Test builds only (-DMTMSG_FAILALLOC, see docs/RELIABILITY.md): mtmsg._failalloc([n])
 * makes the module's allocation number n (1-based, counted from this call) and every
 * later one fail; 0 or none turns that off. Returns how many allocations the module made
 * since the previous call. */
static int m_failalloc(lua_State *L) {
    long made = mtmsg_failalloc_count();
    mtmsg_failalloc_set((long)luaL_optinteger(L, 1, 0));
    lua_pushinteger(L, (lua_Integer)made);
    return 1;
}
#endif

static const luaL_Reg module_funcs[] = {
    {"abort", m_abort}, {"isabort", m_isabort}, {"time", m_time}, {"sleep", m_sleep},
    {"type", m_type},
#if defined(MTMSG_FAILALLOC)
    {"_failalloc", m_failalloc},
#endif
    {NULL, NULL}
};

/* Registry key of the state's scratch BusyBuf. */
static char scratch_key;  /* only its address matters */

/* Pushes the scratch BusyBuf of this Lua state: one per state, kept in the registry, so
 * that a second load of the module shares it (the class contexts point to it). */
static void pushscratch(lua_State *L) {
    if (luaL_newmetatable(L, MTMSG_BUSYBUF_MT)) {       /* the BusyBuf metatable */
        lua_pushcfunction(L, workbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    mtmsg_busybuf_pushstate(L, &scratch_key);
}

MTMSG_API int luaopen_mtmsg(lua_State *L);
MTMSG_API int luaopen_mtmsg(lua_State *L) {
    mtmsg_sync_pinmodule();
    lua_newtable(L);                                    /* module */
    pushscratch(L);                                     /* module, scratch */
    mtmsg_buffer_open(L);
    mtmsg_listener_open(L);
    mtmsg_writer_open(L);
    mtmsg_reader_open(L);
    lua_pop(L, 1);                                      /* module */
    luaL_setfuncs(L, module_funcs, 0);
    mtmsg_error_pushtable(L);
    lua_setfield(L, -2, "error");
    lua_pushliteral(L, MTMSG_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushliteral(L, "mtmsg " MTMSG_VERSION ": threads " MTMSG_THREAD_BACKEND
                       ", atomics " MTMSG_ATOMIC_BACKEND ", " LUA_VERSION);
    lua_setfield(L, -2, "_INFO");
    return 1;
}
