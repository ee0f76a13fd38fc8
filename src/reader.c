/*
 * Reader objects: take a whole message from a buffer or listener in one step with
 * reader:nextmsg and hand out its elements with reader:next. Owned by one Lua state.
 */
#include "writer.h"

#include <math.h>

#include "buffer.h"
#include "capi.h"
#include "carray.h"
#include "codec.h"
#include "compat.h"
#include "error.h"
#include "listener.h"

typedef struct Reader {
    MemBuf mb;              /* payload of the current message */
    size_t pos;             /* offset of the next element in mb */
    int decoding;           /* reader:next calls in progress (nested ones from __gc) */
    char *retired;          /* storage still read by an interrupted reader:next */
} Reader;

static Reader *checkreader(lua_State *L, int idx) {
    return mtmsg_checkclass(L, idx, MTMSG_READER_MT);
}

static int m_newreader(lua_State *L) {
    size_t size;
    double grow;
    Reader *r;
    mtmsg_checksize(L, 1, &size, &grow);
    r = lua_newuserdatauv(L, sizeof *r, 0);
    mtmsg_membuf_init(&r->mb, size, grow);
    r->pos = 0;
    r->decoding = 0;
    r->retired = NULL;
    luaL_getmetatable(L, MTMSG_READER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int reader_gc(lua_State *L) {
    Reader *r = checkreader(L, 1);
    mtmsg_membuf_free(&r->mb);
    mtmsg_free(r->retired);
    r->retired = NULL;
    return 0;
}

static int reader_next(lua_State *L) {
    Reader *r = checkreader(L, 1);
    lua_Integer count = 1;
    CarrayReuse reuse;
    const char *base;
    size_t pos;
    int first = 2, n, t = lua_type(L, 2);
    if (t == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, 2);
        if (d != floor(d)) return luaL_argerror(L, 2, "integer or carray expected");
        count = d < 0 ? 0 : d > 0x7fffffff ? 0x7fffffff : (lua_Integer)d;
        first = 3;
    } else if (t == LUA_TNIL || t == LUA_TNONE) {
        first = 3;
    } else {
        mtmsg_carray_checkarg(L, 2, "integer or carray expected");
    }
    mtmsg_carray_checkreuse(L, first, lua_gettop(L), &reuse);
    /* `require "carray"` runs Lua code (which might use this reader): before decoding */
    if (!reuse.ready && mtmsg_carray_neednew(&reuse, mtmsg_membuf_begin(&r->mb), r->mb.len,
                                             r->pos, (int)count))
        mtmsg_carray_load(L, &reuse);
    /* Decoding allocates; a __gc finalizer run by an allocation may call nextmsg on this
     * reader, which then leaves the storage read here alone (retired, freed below). */
    base = r->mb.data;
    pos = r->pos;
    r->decoding++;
    n = mtmsg_codec_decode(L, mtmsg_membuf_begin(&r->mb), r->mb.len, &pos, (int)count, &reuse);
    if (r->mb.data == base) r->pos = pos;  /* else a nested nextmsg replaced the message */
    if (--r->decoding == 0 && r->retired) {
        mtmsg_free(r->retired);
        r->retired = NULL;
    }
    if (n < 0) mtmsg_sync_abort(-1, __FILE__, __LINE__);    /* our own bytes: a bug */
    mtmsg_carray_finishreuse(L, &reuse);
    return n;
}

static int reader_nextmsg(lua_State *L) {
    Reader *r = checkreader(L, 1);
    BufferHandle *bh = mtmsg_buffer_test(L, 2);
    ListenerHandle *lh = bh ? NULL : mtmsg_listener_test(L, 2);
    int nonblock;
    double timeout;
    MsgStatus st;
    MsgObject *o;
    MsgFire fire;
    if (!bh && !lh) return luaL_argerror(L, 2, "buffer or listener expected");
    nonblock = bh ? bh->nonblock : lh->nonblock;
    if (lua_isnoneornil(L, 3)) timeout = nonblock ? 0 : -1;
    else if (lua_type(L, 3) == LUA_TNUMBER) {
        timeout = (double)lua_tonumber(L, 3);
        if (!(timeout > 0)) timeout = 0;
    } else return luaL_argerror(L, 3, "timeout seconds expected");
    if (r->decoding && !r->retired) {      /* called from a finalizer during reader:next */
        r->retired = r->mb.data;
        r->mb.data = NULL;
        r->mb.start = r->mb.len = 0;
        r->pos = 0;
    }
    if (bh) {
        o = &bh->b->obj;
        st = mtmsg_buffer_take(bh->b, &r->mb, nonblock, timeout, NULL, &fire);
    } else {
        o = &lh->l->obj;
        st = mtmsg_listener_take(lh->l, &r->mb, nonblock, timeout, NULL, &fire);
    }
    switch (st) {
    case MSG_OK:
        r->pos = 0;
        if (fire.api) mtmsg_capi_firelua(L, &fire);
        lua_pushboolean(L, 1);
        return 1;
    case MSG_EMPTY: case MSG_BUSY:
        lua_pushboolean(L, 0);
        return 1;
    case MSG_TOO_BIG:
        return mtmsg_error_status(L, st, NULL, MTMSG_READER_MT, &r->mb, r->mb.failsize);
    default:
        return mtmsg_error_status(L, st, o, NULL, &r->mb, 0);
    }
}

static int reader_clear(lua_State *L) {
    Reader *r = checkreader(L, 1);
    mtmsg_membuf_clear(&r->mb);
    r->pos = 0;
    return 0;
}

static int reader_tostring(lua_State *L) {
    lua_pushfstring(L, MTMSG_READER_MT ": %p", (void *)checkreader(L, 1));
    return 1;
}

static const luaL_Reg reader_methods[] = {
    {"next", reader_next}, {"nextmsg", reader_nextmsg}, {"clear", reader_clear},
    {NULL, NULL}
};

static const luaL_Reg reader_metamethods[] = {
    {"__gc", reader_gc}, {"__tostring", reader_tostring}, {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
    {"newreader", m_newreader}, {NULL, NULL}
};

void mtmsg_reader_open(lua_State *L) {
    mtmsg_open_class(L, MTMSG_READER_MT, reader_methods, reader_metamethods, module_funcs);
}
