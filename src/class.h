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
 * static array, its tag for mtmsg_checkclass. Stack: module, scratch (the state's one,
 * held by the registry: see ClassCtx). */
void mtmsg_open_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *metamethods, const luaL_Reg *funcs);

/* What the functions of one class share in one Lua state: a userdata, upvalue
 * MTMSG_CLASS_UPVALUE of each of its methods and metamethods (mtmsg_open_class keeps
 * one per class and state, in the registry, so a second load of the module shares it). */
typedef struct ClassCtx {
    const void *mt;     /* the class metatable's address (it stays in the registry) */
    void *self;         /* a class may cache its last checked handle here: see buffer.c */
    void *scratch;      /* the state's scratch BusyBuf (upvalue 1), kept in the registry */
    void *recv;         /* a class may keep a registry-held receive BusyBuf here */
} ClassCtx;

/* luaL_checkudata(L, idx, tname), with a fast path for the methods and metamethods of
 * the class that `tname` names. mtmsg_open_class gives each of those two upvalues:
 * MTMSG_CLASS_UPVALUE, the class's ClassCtx, and MTMSG_TAG_UPVALUE, the class tag: the
 * address of the class's own static `tname` array, one per class, as a light userdata.
 * Only when the running function's tag is `tname` (so upvalue MTMSG_CLASS_UPVALUE is
 * that class's ClassCtx) does one pointer comparison with the metatable decide;
 * anywhere else (a writer method checking its buffer argument, a function called
 * without its upvalues) this is luaL_checkudata, with its error messages. So an object
 * is never taken for another class's, wherever this runs. `tname` must be that static
 * array (the one given to mtmsg_open_class), not an equal string literal, or every
 * check takes the slow path. */
#define MTMSG_CLASS_UPVALUE 3
#define MTMSG_TAG_UPVALUE 4
static inline int mtmsg_hasclassmt(lua_State *L, int idx, const ClassCtx *ctx) {
    int same = 0;
    if (lua_getmetatable(L, idx)) {
        same = lua_topointer(L, -1) == ctx->mt;
        lua_pop(L, 1);
    }
    return same;
}

static inline void *mtmsg_checkclass(lua_State *L, int idx, const char *tname) {
    if (lua_touserdata(L, lua_upvalueindex(MTMSG_TAG_UPVALUE)) == (const void *)tname) {
        const ClassCtx *ctx = lua_touserdata(L, lua_upvalueindex(MTMSG_CLASS_UPVALUE));
        void *p = lua_touserdata(L, idx);
        if (p && ctx && mtmsg_hasclassmt(L, idx, ctx)) return p;
    }
    return luaL_checkudata(L, idx, tname);
}

/* The ClassCtx of the running method, for the functions that mtmsg_open_class
 * registered as a class's methods or metamethods only (never in a function another
 * class or module may register: there upvalue MTMSG_CLASS_UPVALUE may be anything). */
static inline ClassCtx *mtmsg_classctx(lua_State *L) {
    return (ClassCtx *)lua_touserdata(L, lua_upvalueindex(MTMSG_CLASS_UPVALUE));
}

/* The check of self (argument 1) in such a method of the class `tname` names, given its
 * ClassCtx: the tag needs no check there. Otherwise as mtmsg_checkclass(L, 1, tname). */
static inline void *mtmsg_checkself(lua_State *L, const ClassCtx *ctx, const char *tname) {
    void *p = lua_touserdata(L, 1);
    if (p && ctx && mtmsg_hasclassmt(L, 1, ctx)) return p;
    return luaL_checkudata(L, 1, tname);
}

/* The ClassCtx of the class `tname` names in this state (after mtmsg_open_class). */
ClassCtx *mtmsg_class_getctx(lua_State *L, const char *tname);

/* Optional boolean flag at arg: true when absent; any non-boolean is an argument error. */
int mtmsg_checkflag(lua_State *L, int arg);

/* Size options ([size [, grow]]) at arg: defaults 1024 and 2; negatives count as 0. */
void mtmsg_checksize(lua_State *L, int arg, size_t *size, double *grow);

#endif
