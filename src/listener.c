/*
 * Listeners (see listener.h). The listener mutex guards the listener, its ready list
 * (buffers with messages, served round-robin) and its member list; each member buffer
 * has its own mutex for its queue, taken after the listener's. Orphans (buffers
 * without handles but with messages) are freed here.
 */
#include "listener.h"

#include <string.h>

#include "capi.h"
#include "carray.h"
#include "class.h"
#include "compat.h"
#include "error.h"
#include "wakeup.h"

/* ===== Lists (l->mutex held; and b->mutex where in_ready changes) ===== */

/* The wake-up descriptor (if any) is readable while a buffer is ready, all live buffers
 * are finished (end of stream), or there is an error to see. After the ready list,
 * closed, aborted, nlive or nended changed. */
void mtmsg_listener_wake_locked(MsgListener *l) {
    if (l->wake.open)
        mtmsg_wake_set(&l->wake, l->ready_head || l->closed || l->aborted
                                 || (l->nlive && l->nended == l->nlive));
}

void mtmsg_listener_ready_add_locked(MsgListener *l, MsgBuffer *b) {
    b->ready_next = NULL;
    b->ready_prev = l->ready_tail;
    if (l->ready_tail) l->ready_tail->ready_next = b;
    else l->ready_head = b;
    l->ready_tail = b;
    b->in_ready = 1;
    mtmsg_listener_wake_locked(l);
}

void mtmsg_listener_ready_remove_locked(MsgListener *l, MsgBuffer *b) {
    if (b->ready_prev) b->ready_prev->ready_next = b->ready_next;
    else l->ready_head = b->ready_next;
    if (b->ready_next) b->ready_next->ready_prev = b->ready_prev;
    else l->ready_tail = b->ready_prev;
    b->ready_next = b->ready_prev = NULL;
    b->in_ready = 0;
    mtmsg_listener_wake_locked(l);
}

void mtmsg_listener_attach_locked(MsgListener *l, MsgBuffer *b) {
    b->member_prev = NULL;
    b->member_next = l->members;
    if (l->members) l->members->member_prev = b;
    l->members = b;
    l->nlive++;
    l->nbuf++;
}

/* Unlinks b from both lists (b->mutex held too); b no longer counts for l. */
void mtmsg_listener_detach_locked(MsgListener *l, MsgBuffer *b) {
    if (b->in_ready) mtmsg_listener_ready_remove_locked(l, b);
    if (b->member_prev) b->member_prev->member_next = b->member_next;
    else l->members = b->member_next;
    if (b->member_next) b->member_next->member_prev = b->member_prev;
    b->member_next = b->member_prev = NULL;
    l->nbuf--;
}

void mtmsg_listener_sync_locked(MsgListener *l, MsgBuffer *b) {
    if (b->msgcnt > 0 && !b->in_ready) {
        mtmsg_listener_ready_add_locked(l, b);
        mtmsg_atomic_bump_locked(&l->seq);          /* news for spinning takers */
        if (l->nwaiters) mtmsg_cond_signal(&l->cond);
    } else if (b->msgcnt == 0 && b->in_ready) {
        mtmsg_listener_ready_remove_locked(l, b);
    }
}

void mtmsg_listener_sync(MsgListener *l, MsgBuffer *b) {
    mtmsg_mutex_lock(&l->mutex);
    mtmsg_mutex_lock(&b->mutex);
    mtmsg_listener_sync_locked(l, b);
    mtmsg_mutex_unlock(&b->mutex);
    mtmsg_mutex_unlock(&l->mutex);
}

/* Detaches all orphans and returns them as a list (linked by member_next) to be
 * freed with free_orphans after unlocking. */
static MsgBuffer *detach_orphans_locked(MsgListener *l) {
    MsgBuffer *b = l->members, *list = NULL;
    while (b) {
        MsgBuffer *next = b->member_next;
        if (b->orphan) {
            mtmsg_mutex_lock(&b->mutex);
            mtmsg_listener_detach_locked(l, b);
            mtmsg_mutex_unlock(&b->mutex);
            b->member_next = list;
            list = b;
        }
        b = next;
    }
    return list;
}

static void free_orphans(MsgBuffer *list) {
    while (list) {
        MsgBuffer *next = list->member_next;
        mtmsg_buffer_free(list);
        list = next;
    }
}

/* ===== Shared object ===== */

static void listener_setabort(MsgObject *o, int flag) {
    MsgListener *l = (MsgListener *)o;
    MsgBuffer *b;
    mtmsg_mutex_lock(&l->mutex);
    l->aborted = flag;
    mtmsg_atomic_bump_locked(&l->seq);
    for (b = l->members; b; b = b->member_next) {
        mtmsg_mutex_lock(&b->mutex);
        mtmsg_atomic_bump_locked(&b->seq);
        b->aborted = flag;
        if (flag) mtmsg_cond_broadcast(&b->cond);
        mtmsg_buffer_wake_locked(b);
        if (flag) mtmsg_buffer_wakesenders_locked(b);
        mtmsg_mutex_unlock(&b->mutex);
    }
    if (flag) mtmsg_cond_broadcast(&l->cond);
    mtmsg_listener_wake_locked(l);
    mtmsg_mutex_unlock(&l->mutex);
}

static MsgListener *listener_new(const char *name, size_t namelen, MsgStatus *st) {
    MsgListener *l = mtmsg_malloc(sizeof *l);
    if (!l) { *st = MSG_NOMEM; return NULL; }
    memset(l, 0, sizeof *l);
    *st = mtmsg_registry_initobject(&l->obj, KIND_LISTENER, name, namelen, listener_setabort);
    if (*st != MSG_OK) { mtmsg_free(l); return NULL; }
    mtmsg_mutex_init(&l->mutex);
    mtmsg_cond_init(&l->cond);
    mtmsg_spin_init(&l->spin);
    *st = mtmsg_registry_add(&l->obj, NULL, NULL);
    if (*st != MSG_OK) { mtmsg_listener_free(l); return NULL; }
    return l;
}

void mtmsg_listener_free(MsgListener *l) {
    mtmsg_wake_close(&l->wake);
    mtmsg_cond_destroy(&l->cond);
    mtmsg_mutex_destroy(&l->mutex);
    mtmsg_registry_freeobject(&l->obj);
    mtmsg_free(l);
}

/* Drops a user reference. The last one makes the listener unfindable and frees its
 * orphans (nobody can read them any more); the memory goes with the last buffer. */
static void listener_release(MsgListener *l) {
    MsgBuffer *orphans;
    int freel;
    if (!mtmsg_registry_release(&l->obj)) return;
    mtmsg_mutex_lock(&l->mutex);
    l->unreferenced = 1;
    orphans = detach_orphans_locked(l);
    freel = l->nbuf == 0;
    mtmsg_mutex_unlock(&l->mutex);
    free_orphans(orphans);
    if (freel) mtmsg_listener_free(l);
}

MsgStatus mtmsg_listener_take(MsgListener *l, MemBuf *out, int nonblock, double timeout,
                              const CarrayReuse *check, MsgFire *fire) {
    MsgStatus st;
    MsgBuffer *drained = NULL;
    MtWait w;
    fire->api = NULL;
    if (!mtmsg_mutex_acquire(&l->mutex, nonblock)) return MSG_BUSY;
    mtmsg_wait_init(&w, timeout);
    for (;;) {
        MsgBuffer *b = l->ready_head;
        if (l->closed) { st = MSG_CLOSED; break; }
        if (l->aborted) { st = MSG_ABORTED; break; }
        if (b) {
            if (!mtmsg_mutex_acquire(&b->mutex, nonblock)) { st = MSG_BUSY; break; }
            if (b->msgcnt == 0) {               /* emptied by buffer:nextmsg or clear, */
                mtmsg_listener_ready_remove_locked(l, b);   /* which have not synced yet */
                mtmsg_mutex_unlock(&b->mutex);
                continue;
            }
            st = mtmsg_buffer_pop_locked(b, out, check, fire);
            if (st == MSG_OK) {
                fire->l = l;                    /* our caller does not keep b alive */
                if (b->msgcnt == 0) {
                    mtmsg_listener_ready_remove_locked(l, b);
                    if (b->orphan) {
                        mtmsg_listener_detach_locked(l, b);
                        drained = b;
                        fire->b = NULL;         /* freed below, with its notifiers */
                    }
                } else if (b->ready_next) {     /* round-robin: to the back */
                    mtmsg_listener_ready_remove_locked(l, b);
                    mtmsg_listener_ready_add_locked(l, b);
                }
                if (l->ready_head) {            /* pass the baton to another taker */
                    mtmsg_atomic_bump_locked(&l->seq);
                    if (l->nwaiters) mtmsg_cond_signal(&l->cond);
                }
            }
            mtmsg_mutex_unlock(&b->mutex);
            break;
        }
        if (l->nlive == 0) { st = MSG_NOBUFFERS; break; }
        if (l->nended == l->nlive) { st = MSG_ENDED; break; }  /* all finished, drained */
        if (!mtmsg_wait_locked(&w, &l->cond, &l->mutex, &l->nwaiters, &l->seq, &l->spin)) {
            st = MSG_EMPTY;
            break;
        }
    }
    mtmsg_wait_done_locked(&w, &l->spin);
    mtmsg_mutex_unlock(&l->mutex);
    if (drained) mtmsg_buffer_free(drained);
    return st;
}

/* ===== Lua binding ===== */

ListenerHandle *mtmsg_listener_test(lua_State *L, int idx) {
    ListenerHandle *h = luaL_testudata(L, idx, MTMSG_LISTENER_MT);
    return (h && h->l) ? h : NULL;
}

static const char listener_class[] = MTMSG_LISTENER_MT; /* class tag: see compat.h */

static ListenerHandle *checklistener(lua_State *L, int idx) {
    ListenerHandle *h = mtmsg_checkclass(L, idx, listener_class);
    if (!h->l) luaL_argerror(L, idx, "listener expected");
    return h;
}

static ListenerHandle *newhandle(lua_State *L) {
    ListenerHandle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->l = NULL;
    h->nonblock = 0;
    mtmsg_heldmsg_init(&h->held);
    luaL_getmetatable(L, MTMSG_LISTENER_MT);
    lua_setmetatable(L, -2);
    return h;
}

static int m_newlistener(lua_State *L) {
    size_t len = 0;
    const char *name = luaL_optlstring(L, 1, NULL, &len);
    ListenerHandle *h = newhandle(L);
    MsgStatus st;
    h->l = listener_new(name, len, &st);
    if (!h->l) return mtmsg_error_status(L, st, NULL, NULL, NULL, sizeof(MsgListener));
    return 1;
}

static int m_listener(lua_State *L) {
    ListenerHandle *h;
    mtmsg_checknameorid(L, 1, "listener");
    h = newhandle(L);
    h->l = (MsgListener *)mtmsg_lookup(L, 1, KIND_LISTENER);
    return 1;
}

static int listener_gc(lua_State *L) {
    ListenerHandle *h = luaL_checkudata(L, 1, MTMSG_LISTENER_MT);
    mtmsg_heldmsg_free(&h->held);
    if (h->l) {
        MsgListener *l = h->l;
        h->l = NULL;
        listener_release(l);
    }
    return 0;
}

static int listener_tostring(lua_State *L) {
    return mtmsg_pushtostring(L, MTMSG_LISTENER_MT, &checklistener(L, 1)->l->obj);
}

static int listener_id(lua_State *L) {
    mtmsg_pushinteger(L, (lua_Integer)checklistener(L, 1)->l->obj.id);
    return 1;
}

static int listener_name(lua_State *L) {
    MsgListener *l = checklistener(L, 1)->l;
    if (!l->obj.name) return 0;
    lua_pushlstring(L, l->obj.name, l->obj.namelen);
    return 1;
}

static int listener_newbuffer(lua_State *L) {
    ListenerHandle *h = checklistener(L, 1);
    return mtmsg_buffer_create(L, 2, h->l);
}

static int listener_nextmsg(lua_State *L) {
    const ClassCtx *ctx = mtmsg_classctx(L);    /* a listener method: its class's */
    ListenerHandle *h = mtmsg_checkself(L, ctx, listener_class);
    if (!h->l) luaL_argerror(L, 1, "listener expected");    /* half-constructed */
    return mtmsg_buffer_nextmsg(L, &h->l->obj, h->nonblock, &h->held, ctx);
}

static int listener_nonblock(lua_State *L) {
    ListenerHandle *h = checklistener(L, 1);
    int flag = mtmsg_checkflag(L, 2);
    MsgStatus st = MSG_OK;
    mtmsg_mutex_lock(&h->l->mutex);
    if (h->l->closed) st = MSG_CLOSED;
    else if (h->l->aborted) st = MSG_ABORTED;
    mtmsg_mutex_unlock(&h->l->mutex);
    if (st != MSG_OK) return mtmsg_error_status(L, st, &h->l->obj, NULL, NULL, 0);
    h->nonblock = flag;
    return 0;
}

static int listener_isnonblock(lua_State *L) {
    lua_pushboolean(L, checklistener(L, 1)->nonblock);
    return 1;
}

/* listener:clear() in nonblock mode (l->mutex held): all or nothing. It tries every
 * member's lock first; if one is busy it unlocks those it got and returns 0, having
 * changed nothing, so that false means "nothing cleared" as for buffer:clear. Holding
 * all of them at once cannot deadlock: they come after the listener's in the lock
 * order and are only tried, never waited for (and no other code holds two buffer
 * locks at once). Otherwise it empties them all and detaches the orphans, now empty,
 * onto *orphans, as the blocking path does in two passes. */
static int clear_nonblock_locked(MsgListener *l, MsgBuffer **orphans) {
    MsgBuffer *b, *c, *next;
    for (b = l->members; b; b = b->member_next) {
        if (!mtmsg_mutex_trylock(&b->mutex)) {
            for (c = l->members; c != b; c = c->member_next) mtmsg_mutex_unlock(&c->mutex);
            return 0;
        }
    }
    for (b = l->members; b; b = next) {
        next = b->member_next;
        mtmsg_buffer_empty_locked(b, 0);
        mtmsg_listener_sync_locked(l, b);
        if (b->orphan) {
            mtmsg_listener_detach_locked(l, b);
            b->member_next = *orphans;
            *orphans = b;
        }
        mtmsg_mutex_unlock(&b->mutex);
    }
    return 1;
}

static int listener_clear(lua_State *L) {
    ListenerHandle *h = checklistener(L, 1);
    MsgListener *l = h->l;
    MsgBuffer *b, *orphans = NULL;
    MsgStatus st = MSG_OK;
    if (!mtmsg_mutex_acquire(&l->mutex, h->nonblock)) st = MSG_BUSY;
    if (st == MSG_OK) {
        if (l->closed) st = MSG_CLOSED;
        else if (h->nonblock) {
            if (!clear_nonblock_locked(l, &orphans)) st = MSG_BUSY;
        } else {
            for (b = l->members; b; b = b->member_next) {
                mtmsg_mutex_lock(&b->mutex);
                mtmsg_buffer_empty_locked(b, 0);
                mtmsg_listener_sync_locked(l, b);
                mtmsg_mutex_unlock(&b->mutex);
            }
            orphans = detach_orphans_locked(l);
        }
        mtmsg_mutex_unlock(&l->mutex);
    }
    free_orphans(orphans);
    if (st == MSG_CLOSED) return mtmsg_error_status(L, st, &l->obj, NULL, NULL, 0);
    lua_pushboolean(L, st == MSG_OK);
    return 1;
}

static int listener_close(lua_State *L) {
    MsgListener *l = checklistener(L, 1)->l;
    MsgBuffer *b, *orphans = NULL;
    mtmsg_mutex_lock(&l->mutex);
    if (!l->closed) {
        l->closed = 1;
        mtmsg_atomic_bump_locked(&l->seq);
        for (b = l->members; b; b = b->member_next) {
            mtmsg_mutex_lock(&b->mutex);
            mtmsg_atomic_bump_locked(&b->seq);
            b->closed = 1;
            mtmsg_buffer_empty_locked(b, 1);
            mtmsg_listener_sync_locked(l, b);
            mtmsg_cond_broadcast(&b->cond);
            mtmsg_buffer_wakesenders_locked(b);
            mtmsg_mutex_unlock(&b->mutex);
        }
        orphans = detach_orphans_locked(l);
        mtmsg_cond_broadcast(&l->cond);
        mtmsg_listener_wake_locked(l);
    }
    mtmsg_mutex_unlock(&l->mutex);
    free_orphans(orphans);
    return 0;
}

static int listener_abort(lua_State *L) {
    ListenerHandle *h = checklistener(L, 1);
    listener_setabort(&h->l->obj, mtmsg_checkflag(L, 2));
    return 0;
}

static int listener_isabort(lua_State *L) {
    MsgListener *l = checklistener(L, 1)->l;
    int f;
    mtmsg_mutex_lock(&l->mutex);
    f = l->aborted;
    mtmsg_mutex_unlock(&l->mutex);
    lua_pushboolean(L, f);
    return 1;
}

/* ===== Event loops: the wake-up handle (see buffer:getfd) ===== */

static int listener_wakestate(void *self) {
    MsgListener *l = self;
    if (l->closed) return -1;
    return l->ready_head != NULL || l->aborted || (l->nlive && l->nended == l->nlive);
}

static int listener_getfd(lua_State *L) {
    MsgListener *l = checklistener(L, 1)->l;
    WakeOwner o;
    o.obj = &l->obj;
    o.outer = NULL;
    o.mutex = &l->mutex;
    o.wake = &l->wake;
    o.state = listener_wakestate;
    o.opened = NULL;
    o.self = l;
    return mtmsg_wakeup_pushfd(L, &o);
}

static int listener_events(lua_State *L) {
    checklistener(L, 1);
    lua_pushliteral(L, "r");
    return 1;
}

static int listener_timeout(lua_State *L) {
    checklistener(L, 1);
    lua_pushnil(L);
    return 1;
}

/* listener:messages(timeout) (extension): see mtmsg_buffer_pushiter. */
static int listener_iter(lua_State *L) {
    ListenerHandle *h = checklistener(L, 1);
    return mtmsg_buffer_iterstep(L, &h->l->obj, h->nonblock, &h->held);
}

static int listener_messages(lua_State *L) {
    checklistener(L, 1);
    return mtmsg_buffer_pushiter(L, listener_iter);
}

static const luaL_Reg listener_methods[] = {
    {"id", listener_id}, {"name", listener_name}, {"newbuffer", listener_newbuffer},
    {"nextmsg", listener_nextmsg}, {"nonblock", listener_nonblock},
    {"isnonblock", listener_isnonblock}, {"clear", listener_clear},
    {"close", listener_close}, {"abort", listener_abort}, {"isabort", listener_isabort},
    /* flow control and event loops (extensions) */
    {"messages", listener_messages},
    {"getfd", listener_getfd}, {"pollfd", listener_getfd}, {"events", listener_events},
    {"timeout", listener_timeout}, {NULL, NULL}
};

static const luaL_Reg listener_metamethods[] = {
    {"__gc", listener_gc}, {"__tostring", listener_tostring}, {"__close", listener_close},
    {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
    {"newlistener", m_newlistener}, {"listener", m_listener}, {NULL, NULL}
};

void mtmsg_listener_open(lua_State *L) {
    mtmsg_open_class(L, listener_class, listener_methods, listener_metamethods, module_funcs);
    mtmsg_buffer_setrecv(L, mtmsg_class_getctx(L, listener_class));
}
