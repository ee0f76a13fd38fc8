/*
 * Wake-up handles, Lua side (see wakeup.h). Holds no state: the descriptor lives in
 * the buffer or listener and is closed when that is freed.
 */
#include "wakeup.h"

#include "compat.h"
#include "error.h"

int mtmsg_wakeup_pushfd(lua_State *L, const WakeOwner *o) {
    MtWake mine;
    int rc, fd = -1, closed;
    mtmsg_mutex_lock(o->mutex);
    closed = o->state(o->self) < 0;
    if (o->wake->open) fd = o->wake->rfd;
    mtmsg_mutex_unlock(o->mutex);
    if (fd < 0) {
        if (closed) return mtmsg_error_status(L, MSG_CLOSED, o->obj, NULL, NULL, 0);
        rc = mtmsg_wake_open(&mine);
        if (rc != MTMSG_WAKE_OK)
            return mtmsg_error_raise(L, ERR_WAKEUP_UNAVAILABLE, "%s",
                rc == MTMSG_WAKE_UNSUPPORTED ? "not supported on this platform"
                : rc == MTMSG_WAKE_NOFILES ? "too many open files"
                : "cannot create a descriptor");
        if (o->outer) mtmsg_mutex_lock(o->outer);
        mtmsg_mutex_lock(o->mutex);
        closed = o->state(o->self);
        if (o->wake->open) {
            fd = o->wake->rfd;                  /* another thread was first */
        } else if (closed >= 0) {
            *o->wake = mine;
            mine.open = 0;                      /* the object owns it now */
            mtmsg_wake_set(o->wake, closed);    /* the current level */
            fd = o->wake->rfd;
            if (o->opened) o->opened(o->self);
        }
        mtmsg_mutex_unlock(o->mutex);
        if (o->outer) mtmsg_mutex_unlock(o->outer);
        mtmsg_wake_close(&mine);                /* no-op when installed */
        if (fd < 0) return mtmsg_error_status(L, MSG_CLOSED, o->obj, NULL, NULL, 0);
    }
    mtmsg_pushinteger(L, (lua_Integer)fd);
    return 1;
}
