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

#endif
