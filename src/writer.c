/*
 * Writer objects: build a message in a private byte buffer with writer:add() and
 * queue it atomically with writer:addmsg/setmsg. Owned by one Lua state; no lock.
 */
#include "writer.h"


#include "buffer.h"
#include "class.h"
#include "codec.h"
#include "compat.h"
#include "error.h"

typedef struct Writer {
    MemBuf mb;              /* encoded elements of the message under construction */
} Writer;

static const char writer_class[] = MTMSG_WRITER_MT;     /* class tag: see compat.h */

static Writer *checkwriter(lua_State *L, int idx) {
    return mtmsg_checkclass(L, idx, writer_class);
}

static int m_newwriter(lua_State *L) {
    size_t size;
    double grow;
    Writer *w;
    mtmsg_checksize(L, 1, &size, &grow);
    w = lua_newuserdatauv(L, sizeof *w, 0);
    mtmsg_membuf_init(&w->mb, size, grow);
    luaL_getmetatable(L, MTMSG_WRITER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int writer_gc(lua_State *L) {
    mtmsg_membuf_free(&checkwriter(L, 1)->mb);
    return 0;
}

static int writer_add(lua_State *L) {
    Writer *w = checkwriter(L, 1);
    int badarg = 0;
    const char *badmsg = NULL;
    MsgStatus st = mtmsg_codec_encode(L, 2, lua_gettop(L), &w->mb, &badarg, &badmsg);
    if (st == MSG_BADARG) return luaL_argerror(L, badarg, badmsg);
    if (st == MSG_FULL || st == MSG_TOO_BIG) {
        /* measure what did not fit, for the error text */
        int top = lua_gettop(L);
        MemBuf *tmp = mtmsg_busybuf_acquire(L, MTMSG_UP_SCRATCH);
        size_t more;
        mtmsg_membuf_clear(tmp);
        st = mtmsg_codec_encode(L, 2, top, tmp, &badarg, &badmsg);
        more = tmp->len;
        mtmsg_busybuf_release(L, MTMSG_UP_SCRATCH, tmp, top + 1);
        if (st == MSG_OK) st = MSG_TOO_BIG;
        return mtmsg_error_status(L, st, NULL, MTMSG_WRITER_MT, &w->mb, w->mb.len + more);
    }
    if (st != MSG_OK) return mtmsg_error_status(L, st, NULL, NULL, &w->mb, 0);
    return 0;
}

static int writer_put(lua_State *L, int clear) {
    Writer *w = checkwriter(L, 1);
    BufferHandle *h = mtmsg_buffer_check(L, 2);
    return mtmsg_buffer_putraw(L, h, &w->mb, clear);    /* empties w->mb once stored */
}

static int writer_addmsg(lua_State *L) { return writer_put(L, 0); }

/* writer:waitaddmsg(buffer [, timeout]) (extension): waits for room, see buffer.c. */
static int writer_waitaddmsg(lua_State *L) {
    Writer *w = checkwriter(L, 1);
    BufferHandle *h = mtmsg_buffer_check(L, 2);
    double timeout = mtmsg_buffer_timeoutarg(L, 3, h->nonblock);
    return mtmsg_buffer_putrawwait(L, h, &w->mb, timeout);
}
static int writer_setmsg(lua_State *L) { return writer_put(L, 1); }

static int writer_clear(lua_State *L) {
    mtmsg_membuf_clear(&checkwriter(L, 1)->mb);
    return 0;
}

static int writer_tostring(lua_State *L) {
    lua_pushfstring(L, MTMSG_WRITER_MT ": %p", (void *)checkwriter(L, 1));
    return 1;
}

static const luaL_Reg writer_methods[] = {
    {"add", writer_add}, {"addmsg", writer_addmsg}, {"setmsg", writer_setmsg},
    {"clear", writer_clear}, {"waitaddmsg", writer_waitaddmsg}, {NULL, NULL}
};

static const luaL_Reg writer_metamethods[] = {
    {"__gc", writer_gc}, {"__tostring", writer_tostring}, {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
    {"newwriter", m_newwriter}, {NULL, NULL}
};

void mtmsg_writer_open(lua_State *L) {
    mtmsg_open_class(L, writer_class, writer_methods, writer_metamethods, module_funcs);
}
