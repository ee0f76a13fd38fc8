/*
 * Writers and readers: per-Lua-state objects (not shared between threads) that build
 * a message element by element, or take one apart. Each owns a private MemBuf.
 */
#ifndef MTMSG_WRITER_H
#define MTMSG_WRITER_H

#include <stddef.h>
#include "lua.h"
#include "lauxlib.h"

#define MTMSG_WRITER_MT "mtmsg.writer"
#define MTMSG_READER_MT "mtmsg.reader"

/* Add the metatables and newwriter / newreader to the module table at -2 (scratch at -1). */
void mtmsg_writer_open(lua_State *L);
void mtmsg_reader_open(lua_State *L);

/* Size options ([size [, grow]]) at arg: defaults 1024 and 2; negatives count as 0. */
void mtmsg_checksize(lua_State *L, int arg, size_t *size, double *grow);
/* Creates metatable `tname` (methods, metamethods, __name, protected __metatable) and
 * adds `funcs` to the module; all get the scratch upvalue. `tname` is the class's own
 * static array, its tag for mtmsg_checkclass (compat.h). Stack: module, scratch. */
void mtmsg_open_class(lua_State *L, const char *tname, const luaL_Reg *methods,
                      const luaL_Reg *metamethods, const luaL_Reg *funcs);

#endif
