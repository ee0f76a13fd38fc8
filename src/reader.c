/*
 * Reader objects: take a whole message from a buffer or listener in one step with
 * reader:nextmsg and hand out its elements with reader:next. Owned by one Lua state.
 */
#include "writer.h"

#include <math.h>

#include "buffer.h"
#include "capi.h"
#include "carray.h"
#include "class.h"
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

static const char reader_class[] = MTMSG_READER_MT;     /* class tag: see compat.h */

static Reader *checkreader(lua_State *L, int idx) {
    return mtmsg_checkclass(L, idx, reader_class);
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

/* During reader:next (r->decoding), the storage of the message being decoded is still
 * read: a nested call that replaces or frees it (nextmsg or __gc from a finalizer) sets
 * it aside, and the outermost reader:next frees it when it ends. */
static void reader_retire(Reader *r) {
    if (r->decoding && !r->retired) {
        r->retired = r->mb.data;
        r->mb.data = NULL;
        r->mb.start = r->mb.len = 0;
        r->pos = 0;
    }
}

static int reader_gc(lua_State *L) {
    Reader *r = checkreader(L, 1);
    reader_retire(r);                       /* __gc called by hand during reader:next */
    mtmsg_membuf_free(&r->mb);
    r->pos = 0;                             /* a hand-called __gc leaves an empty reader */
    if (!r->decoding) {
        mtmsg_free(r->retired);
        r->retired = NULL;
    }
    return 0;
}

/* What reader:next hands to its protected decoder. */
typedef struct DecodeJob {
    const char *p;
    size_t len, pos;
    int count;
    CarrayReuse reuse;      /* indices relative to the decoder's own stack */
} DecodeJob;

/* Runs under lua_pcall: (job, reuse carrays...) -> the decoded values. */
static int decode_protected(lua_State *L) {
    DecodeJob *j = (DecodeJob *)lua_touserdata(L, 1);
    int n = mtmsg_codec_decode(L, j->p, j->len, &j->pos, j->count, &j->reuse);
    if (n < 0) mtmsg_sync_abort(-1, __FILE__, __LINE__);    /* our own bytes: a bug */
    mtmsg_carray_finishreuse(L, &j->reuse);
    return n;
}

static int reader_next(lua_State *L) {
    Reader *r = checkreader(L, 1);
    lua_Integer count = 1;
    DecodeJob job;
    const char *base;
    int first = 2, top, i, rc, t = lua_type(L, 2);
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
    top = lua_gettop(L);
    mtmsg_carray_checkreuse(L, first, top, &job.reuse);
    /* `require "carray"` runs Lua code (which might use this reader): before decoding */
    if (!job.reuse.ready && mtmsg_carray_neednew(&job.reuse, mtmsg_membuf_begin(&r->mb),
                                                 r->mb.len, r->pos, (int)count))
        mtmsg_carray_load(L, &job.reuse);
    /* Decode under lua_pcall, so that the bookkeeping below also happens when an element
     * raises (that element is consumed). Decoding allocates; a __gc finalizer run by an
     * allocation may call nextmsg on this reader, which then leaves the storage read
     * here alone (retired, freed below). */
    luaL_checkstack(L, 2 + (top >= first ? top - first + 1 : 0), "too many arguments");
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &job);
    for (i = first; i <= top; i++) lua_pushvalue(L, i);
    job.reuse.first += 2 - first;                   /* the decoder's stack: job is 1 */
    job.reuse.last += 2 - first;
    job.reuse.next += 2 - first;
    job.p = mtmsg_membuf_begin(&r->mb);
    job.len = r->mb.len;
    job.pos = r->pos;
    job.count = (int)count;
    base = r->mb.data;
    r->decoding++;
    rc = lua_pcall(L, 1 + (top >= first ? top - first + 1 : 0), LUA_MULTRET, 0);
    if (r->mb.data == base) r->pos = job.pos;   /* else a nested nextmsg replaced the message */
    if (--r->decoding == 0 && r->retired) {
        mtmsg_free(r->retired);
        r->retired = NULL;
    }
    if (rc != 0) return lua_error(L);               /* the error value is on top */
    return lua_gettop(L) - top;
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
    reader_retire(r);                       /* called from a finalizer during reader:next */
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
    case MSG_ENDED:                     /* extension: end of stream */
        lua_pushboolean(L, 0);
        mtmsg_buffer_pusheos(L);
        return 2;
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
    mtmsg_open_class(L, reader_class, reader_methods, reader_metamethods, module_funcs);
}
