/*
 * Error strings of mtmsg: the mtmsg.error table and every raised message. Errors are
 * raised with lua_error on a plain string (no "file:line:" prefix).
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "compat.h"
#include "registry.h"

static const char *const kind_names[ERR_COUNT] = {
    "ambiguous_name", "message_size", "no_buffers", "has_notifier",
    "object_closed", "operation_aborted", "out_of_memory", "unknown_object",
    "stream_ended", "wakeup_unavailable"
};

void mtmsg_error_pushtable(lua_State *L) {
    int k;
    lua_createtable(L, 0, ERR_COUNT);
    for (k = 0; k < ERR_COUNT; k++) {
        lua_pushfstring(L, "mtmsg.error.%s", kind_names[k]);
        lua_setfield(L, -2, kind_names[k]);
    }
}

static void push_kind(lua_State *L, MsgErrKind kind, const char *fmt, va_list ap) {
    if (fmt) {
        lua_pushfstring(L, "mtmsg.error.%s: ", kind_names[kind]);
        lua_pushvfstring(L, fmt, ap);
        lua_concat(L, 2);
    } else {
        lua_pushfstring(L, "mtmsg.error.%s", kind_names[kind]);
    }
}

void mtmsg_error_push(lua_State *L, MsgErrKind kind, const char *detailfmt, ...) {
    va_list ap;
    va_start(ap, detailfmt);
    push_kind(L, kind, detailfmt, ap);
    va_end(ap);
}

int mtmsg_error_raise(lua_State *L, MsgErrKind kind, const char *detailfmt, ...) {
    va_list ap;
    va_start(ap, detailfmt);
    push_kind(L, kind, detailfmt, ap);
    va_end(ap);
    return lua_error(L);
}

void mtmsg_error_pushid(lua_State *L, long long id) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", id);
    lua_pushstring(L, buf);
}

/* Adds name in double quotes, with ", \ and NUL escaped (the whole name: tostring). */
static void addname(luaL_Buffer *b, const char *name, size_t len) {
    size_t i;
    luaL_addchar(b, '"');
    for (i = 0; i < len; i++) {
        char c = name[i];
        if (c == '"' || c == '\\') { luaL_addchar(b, '\\'); luaL_addchar(b, c); }
        else if (c == '\0') luaL_addstring(b, "\\0");
        else luaL_addchar(b, c);
    }
    luaL_addchar(b, '"');
}

/* Writes name as error texts show it: quoted and escaped as addname does, a name of
 * more than MTMSG_ERRNAME_MAX bytes cut (at most 2 * MTMSG_ERRNAME_MAX + 8 bytes
 * written, no NUL). Returns the length. */
static size_t putname(char *out, const char *name, size_t len) {
    size_t i, k = 0, n = len;
    if (len > MTMSG_ERRNAME_MAX) {
        n = MTMSG_ERRNAME_MAX - 4;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) n--;   /* UTF-8 */
    }
    out[k++] = '"';
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (c == '"' || c == '\\') { out[k++] = '\\'; out[k++] = c; }
        else if (c == '\0') { out[k++] = '\\'; out[k++] = '0'; }
        else out[k++] = c;
    }
    out[k++] = '"';
    if (n < len) { memcpy(out + k, "...", 3); k += 3; }
    return k;
}

size_t mtmsg_error_describe(char *out, const MsgObject *o) {
    size_t k;
    const char *head = o->kind == KIND_BUFFER ? "mtmsg.buffer(" : "mtmsg.listener(";
    k = strlen(head);
    memcpy(out, head, k);
    if (o->name) {
        memcpy(out + k, "name=", 5);
        k += 5;
        k += putname(out + k, o->name, o->namelen);
        out[k++] = ',';
    }
    k += (size_t)snprintf(out + k, MTMSG_DESCRIBE_MAX - k, "id=%llu)", o->id);
    return k;
}

void mtmsg_error_pushobject(lua_State *L, const MsgObject *o, int full) {
    luaL_Buffer b;
    char idbuf[48];
    if (!full) {
        char text[MTMSG_DESCRIBE_MAX];
        size_t len = mtmsg_error_describe(text, o);
        lua_pushlstring(L, text, len);
        return;
    }
    luaL_buffinit(L, &b);
    luaL_addstring(&b, o->kind == KIND_BUFFER ? "mtmsg.buffer(" : "mtmsg.listener(");
    if (o->name) {
        luaL_addstring(&b, "name=");
        addname(&b, o->name, o->namelen);
        luaL_addchar(&b, ',');
    }
    snprintf(idbuf, sizeof idbuf, "id=%llu)", o->id);
    luaL_addstring(&b, idbuf);
    luaL_pushresult(&b);
}

int mtmsg_error_lookup(lua_State *L, MsgErrKind kind, const char *what,
                       const char *name, size_t len) {
    char text[2 * MTMSG_ERRNAME_MAX + 8];
    size_t n = putname(text, name, len);
    lua_pushfstring(L, "mtmsg.error.%s: %s name ", kind_names[kind], what);
    lua_pushlstring(L, text, n);
    lua_concat(L, 2);
    return lua_error(L);
}

int mtmsg_error_status(lua_State *L, MsgStatus st, const MsgObject *o,
                       const char *what, const MemBuf *mb, size_t size) {
    char num[64];
    switch (st) {
    case MSG_CLOSED:
        lua_pushstring(L, "mtmsg.error.object_closed: ");
        mtmsg_error_pushobject(L, o, 0);
        lua_concat(L, 2);
        break;
    case MSG_ENDED:
        lua_pushstring(L, "mtmsg.error.stream_ended: ");
        mtmsg_error_pushobject(L, o, 0);
        lua_concat(L, 2);
        break;
    case MSG_NOBUFFERS:
        lua_pushstring(L, "mtmsg.error.no_buffers: ");
        mtmsg_error_pushobject(L, o, 0);
        lua_concat(L, 2);
        break;
    case MSG_ABORTED:
        mtmsg_error_push(L, ERR_OPERATION_ABORTED, NULL);
        break;
    case MSG_TOO_BIG: {
        char lim[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)size);
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)(mb ? mb->cap : 0));
        lua_pushfstring(L, "mtmsg.error.message_size: message size %s exceeds limit of %s bytes for ",
                        num, lim);
        if (o) mtmsg_error_pushobject(L, o, 0);
        else lua_pushstring(L, what ? what : "mtmsg");
        lua_concat(L, 2);
        break;
    }
    case MSG_NOMEM:
    default:
        snprintf(num, sizeof num, "%llu", (unsigned long long)(mb ? mb->failsize : size));
        mtmsg_error_push(L, ERR_OUT_OF_MEMORY, "failed to allocate %s bytes", num);
        break;
    }
    return lua_error(L);
}
