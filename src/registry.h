/*
 * Process-wide registry of buffers and listeners: ids, names, the global abort flag.
 * Owns hash tables by id (shared id space) and by name (one per kind), all guarded
 * by the registry lock, which comes first in the lock order (see sync.h).
 */
#ifndef MTMSG_REGISTRY_H
#define MTMSG_REGISTRY_H

#include <stddef.h>
#include "membuf.h"
#include "sync.h"

typedef enum MsgKind { KIND_BUFFER = 0, KIND_LISTENER = 1 } MsgKind;

/* Names up to this many bytes are stored inside the object (no separate allocation). */
#if !defined(MTMSG_SHORTNAME_MAX)
#define MTMSG_SHORTNAME_MAX 31
#endif

/* Common head of buffers and listeners. What a lookup by name reads (the count it
 * raises, the length and bytes of a short name) comes first, so that a lookup costs
 * one object cache line or two, whatever the alignment of the allocation. */
typedef struct MsgObject {
    MtAtomic refs;                  /* atomic: Lua handles + C retains */
    MsgKind kind;                   /* immutable */
    size_t namelen;                 /* immutable */
    char *name;                     /* immutable; NULL when unnamed; maybe shortname */
    char shortname[MTMSG_SHORTNAME_MAX + 1];   /* immutable */
    size_t namehash;                /* immutable */
    unsigned long long id;          /* immutable after registration */
    /* Sets or clears the object's abort flag and wakes its waiters; takes the
     * object's own lock (called with the registry lock held: order registry -> object). */
    void (*setabort)(struct MsgObject *o, int flag);   /* immutable */
} MsgObject;

/* Fills the head (refs = 1, name copied); MSG_NOMEM if the name copy fails. */
MsgStatus mtmsg_registry_initobject(MsgObject *o, MsgKind kind, const char *name, size_t namelen,
                                    void (*setabort)(MsgObject *, int));
void mtmsg_registry_freeobject(MsgObject *o);
/* Gives `o` a new id and makes it findable. MSG_ABORTED while mtmsg.abort() is in force,
 * MSG_NOMEM if a table could not grow. `also` (may be NULL) runs under the registry lock
 * right before insertion and may veto with a status (used to attach to a listener). */
MsgStatus mtmsg_registry_add(MsgObject *o, MsgStatus (*also)(void *), void *ud);
/* Lookups return the object retained (refs + 1), or NULL with *st = MSG_EMPTY (not found),
 * MSG_FULL (name ambiguous), MSG_ABORTED (global abort). */
MsgObject *mtmsg_registry_find_id(MsgKind kind, unsigned long long id, MsgStatus *st);
MsgObject *mtmsg_registry_find_name(MsgKind kind, const char *name, size_t len, MsgStatus *st);
/* One more reference for a caller that already holds one. */
void mtmsg_registry_retain(MsgObject *o);
/* One more reference unless the count is 0 (the object is being unregistered, or was):
 * returns 1 if it took one. For callers that hold no reference but keep the object's
 * memory alive otherwise (a lock under which it cannot be freed). */
int mtmsg_registry_tryretain(MsgObject *o);
/* Drops a reference. Returns 1 if it was the last one: the object has been removed from
 * the tables and the caller must finalize it; 0 otherwise. */
int mtmsg_registry_release(MsgObject *o);

int  mtmsg_registry_isabort(void);
/* Sets or clears the global flag and the flag of every registered object. */
void mtmsg_registry_abort(int flag);
/* Sleeps `seconds` unless aborted: MSG_OK, or MSG_ABORTED (also when already aborted). */
MsgStatus mtmsg_registry_sleep(double seconds);

#endif
