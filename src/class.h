/*
 * Lua classes of the module: each class's metatable with its methods and metamethods
 * (mtmsg_open_class), the typed check that the class accessors build on, and the
 * argument checks that every class shares. Used by buffer, listener, writer, reader.
 */
#ifndef MTMSG_CLASS_H
#define MTMSG_CLASS_H

#include <stddef.h>
#include "lua.h"
#include "lauxlib.h"

/* Creates metatable `tname` (methods, metamethods, __name, protected __metatable) and
 * adds `funcs` to the module; all get the scratch upvalue. `tname` is the class's own
 * static array, its tag for mtmsg_checkclass. Stack: module, scratch. */
void mtmsg_open_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *metamethods, const luaL_Reg *funcs);

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

/* The check of self (argument 1) in a method of the class that `tname` names, for the
 * functions that mtmsg_open_class registered as that class's methods or metamethods
 * only (never in a function another class or module may register): their
 * MTMSG_CLASS_UPVALUE is that class's metatable, so the tag needs no check. Otherwise
 * as mtmsg_checkclass(L, 1, tname). The hot methods (addmsg, nextmsg) use it. */
static inline void *mtmsg_checkself(lua_State *L, const char *tname) {
    void *p = lua_touserdata(L, 1);
    if (p && lua_getmetatable(L, 1)) {
        int same = lua_topointer(L, -1)
                   == lua_touserdata(L, lua_upvalueindex(MTMSG_CLASS_UPVALUE));
        lua_pop(L, 1);
        if (same) return p;
    }
    return luaL_checkudata(L, 1, tname);
}

/* Optional boolean flag at arg: true when absent; any non-boolean is an argument error. */
int mtmsg_checkflag(lua_State *L, int arg);

/* Size options ([size [, grow]]) at arg: defaults 1024 and 2; negatives count as 0. */
void mtmsg_checksize(lua_State *L, int arg, size_t *size, double *grow);

#endif
