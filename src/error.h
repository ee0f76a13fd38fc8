/*
 * Error kinds of mtmsg and the only place that formats error text. Errors are plain
 * strings "mtmsg.error.<kind>[: <details>]" raised without position information.
 */
#ifndef MTMSG_ERROR_H
#define MTMSG_ERROR_H

#include "lua.h"
#include "membuf.h"

typedef enum MsgErrKind {
    ERR_AMBIGUOUS_NAME,
    ERR_MESSAGE_SIZE,
    ERR_NO_BUFFERS,
    ERR_HAS_NOTIFIER,
    ERR_OBJECT_CLOSED,
    ERR_OPERATION_ABORTED,
    ERR_OUT_OF_MEMORY,
    ERR_UNKNOWN_OBJECT,
    ERR_STREAM_ENDED,       /* extension: add to a finished buffer */
    ERR_WAKEUP_UNAVAILABLE, /* extension: getfd cannot make a descriptor */
    ERR_COUNT
} MsgErrKind;

struct MsgObject;

/* Pushes the mtmsg.error table (kind name -> error string). */
void mtmsg_error_pushtable(lua_State *L);
/* Pushes the error string of `kind`, with details from the formatted text (may be NULL). */
void mtmsg_error_push(lua_State *L, MsgErrKind kind, const char *detailfmt, ...);
/* Raises `kind` with optional details (lua_pushfstring format). Never returns. */
int mtmsg_error_raise(lua_State *L, MsgErrKind kind, const char *detailfmt, ...);
/* Names longer than this many bytes are cut in error texts (see mtmsg_error_describe). */
#if !defined(MTMSG_ERRNAME_MAX)
#define MTMSG_ERRNAME_MAX 64
#endif
/* Room mtmsg_error_describe needs at most (a cut name escapes to twice its length). */
#define MTMSG_DESCRIBE_MAX (2 * MTMSG_ERRNAME_MAX + 64)

/* Plain C, no Lua, callable anywhere: writes the description of an object as used in
 * error texts, mtmsg.buffer(name="x",id=N) or mtmsg.listener(id=N), NUL-terminated, into
 * out (MTMSG_DESCRIBE_MAX bytes); returns its length. A name longer than
 * MTMSG_ERRNAME_MAX bytes is cut to its first MTMSG_ERRNAME_MAX - 4 bytes (not inside a
 * UTF-8 sequence), followed by ... after the closing quote: name="abc"...,id=N. */
size_t mtmsg_error_describe(char *out, const struct MsgObject *o);
/* Pushes the description of an object: the one of mtmsg_error_describe, or with full
 * set, the whole name (what tostring shows). */
void mtmsg_error_pushobject(lua_State *L, const struct MsgObject *o, int full);
/* Raises unknown_object or ambiguous_name for a lookup of `what` ("buffer") by name
 * (a long name is cut as in mtmsg_error_describe). */
int mtmsg_error_lookup(lua_State *L, MsgErrKind kind, const char *what,
                       const char *name, size_t len);
/* Raises the error for a failed operation on `o` (NULL for writer/reader scratch space):
 * MSG_CLOSED, MSG_ABORTED, MSG_TOO_BIG (size `size`, limit of `mb`), MSG_NOMEM, MSG_NOBUFFERS.
 * `what` names a non-object owner for size errors ("mtmsg.writer"). Never returns. */
int mtmsg_error_status(lua_State *L, MsgStatus st, const struct MsgObject *o,
                       const char *what, const MemBuf *mb, size_t size);
/* Pushes an integer id as decimal text (ids may exceed lua_pushfstring's %d). */
void mtmsg_error_pushid(lua_State *L, long long id);

#endif
