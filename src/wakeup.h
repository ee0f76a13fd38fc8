/*
 * Wake-up handles of buffers and listeners, Lua side (buffer:getfd and friends): the
 * descriptor of sync.h (MtWake) opened on first request and installed in the object
 * under its lock, and the methods of the event-loop protocols (LuaSocket's getfd,
 * cqueues' pollfd/events/timeout). The object keeps the level right itself: buffer.c
 * and listener.c call mtmsg_wake_set at each change of what there is to take.
 */
#ifndef MTMSG_WAKEUP_H
#define MTMSG_WAKEUP_H

#include "lua.h"
#include "registry.h"
#include "sync.h"

/* The object side, given to mtmsg_wakeup_pushfd. */
typedef struct WakeOwner {
    MsgObject *obj;                 /* for error texts */
    MtMutex *outer;                 /* NULL, or locked before mutex to install the descriptor */
    MtMutex *mutex;                 /* guards *wake and what state() reads */
    MtWake *wake;                   /* the object's descriptor (open = 0: none yet) */
    int (*state)(void *self);       /* with *mutex held: -1 closed, else the level (0/1) */
    void (*opened)(void *self);     /* NULL, or called with both held once it is installed */
    void *self;
} WakeOwner;

/* Pushes the object's wake-up descriptor, opening it on the first call (outside the
 * lock; a loser of a race closes its own). An existing descriptor is returned also
 * after close; a new one for a closed object raises object_closed. Raises a plain error
 * when no descriptor can be made (none left, or not on this platform). */
int mtmsg_wakeup_pushfd(lua_State *L, const WakeOwner *o);

#endif
