/*
 * carray elements (see carray.h). Placeholder until the Carray C API consumer lands:
 * userdata elements are rejected, array values cannot occur.
 */
#include "carray.h"

#include "lauxlib.h"

MsgStatus mtmsg_carray_encode(lua_State *L, int idx, MemBuf *out, const char **badmsg) {
    (void)L; (void)idx; (void)out;
    *badmsg = "parameter type not supported";
    return MSG_BADARG;
}

void mtmsg_carray_push(lua_State *L, const MsgValue *v, CarrayReuse *reuse) {
    (void)v; (void)reuse;
    luaL_error(L, "carray support not available");
}

void mtmsg_carray_checkarg(lua_State *L, int arg, const char *msg) {
    luaL_argerror(L, arg, msg);
}

void mtmsg_carray_checkreuse(lua_State *L, int first, int last) {
    int i;
    for (i = first; i <= last; i++)
        if (!lua_isnil(L, i)) luaL_argerror(L, i, "carray expected");
}

void mtmsg_carray_finishreuse(lua_State *L, CarrayReuse *reuse) {
    (void)L; (void)reuse;
}
