/*
 * Native interop of buffers (see capi.h): the Notify, Receiver and Sender records that
 * the buffer metatable publishes, private writers and readers for native code, and the
 * buffer as a Notify consumer. The APIs work on the shared MsgBuffer with its one
 * reference count; every lock taken here is the buffer's (or its listener's) mutex, and
 * no foreign notifier runs while it is held, except for retainNotifier (a refcount).
 */
#include "capi.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "codec.h"
#include "compat.h"
#include "error.h"
#include "listener.h"
#include "notify_capi.h"
#include "receiver_capi.h"
#include "sender_capi.h"

/* Longest notifier error text kept (longer texts are cut). */
#if !defined(MTMSG_NOTIFIER_ERRMAX)
#define MTMSG_NOTIFIER_ERRMAX 1024
#endif

/* Notifier calls nested in one thread (a buffer notifying itself or a ring of buffers
 * would otherwise recurse until the C stack overflows). */
#if !defined(MTMSG_NOTIFIER_DEPTH)
#define MTMSG_NOTIFIER_DEPTH 16
#endif

/* mtmsg's code for "the operation succeeded, but the buffer's notifier failed". */
#define CAPI_RC_NOTIFIER 999

static const notify_capi notify_record;     /* the Notify API of mtmsg buffers, below */

MsgBuffer *mtmsg_capi_notifierbuffer(const MsgNotifier *nt) {
    return nt->api == &notify_record ? (MsgBuffer *)nt->n : NULL;
}

void mtmsg_capi_releaseforeign(const MsgNotifier *nt) {
    nt->api->releaseNotifier(nt->n);
}

/* Whether the notifier nt of b is b itself (connected without a reference). */
static int isself(const MsgBuffer *b, const notify_capi *api, const notify_notifier *n) {
    return api == &notify_record && (const MsgBuffer *)n == b;
}

/* ===== Notifier calls (consumer side) ===== */

/* Error text of a failed notifier call: prefix plus the eh messages joined with "\n". */
typedef struct NotifierError {
    int calls;                          /* eh calls received */
    size_t len;
    char text[MTMSG_NOTIFIER_ERRMAX];
} NotifierError;

static void err_append(NotifierError *e, const char *s, size_t n) {
    if (n > sizeof e->text - e->len) n = sizeof e->text - e->len;
    memcpy(e->text + e->len, s, n);
    e->len += n;
}

#define NOTIFIER_PREFIX "Error while calling notifier: "

/* The error handler given to foreign notifiers. */
static void err_collect(void *ehdata, const char *msg, size_t msglen) {
    NotifierError *e = ehdata;
    if (e->calls++ == 0) err_append(e, NOTIFIER_PREFIX, sizeof NOTIFIER_PREFIX - 1);
    else err_append(e, "\n", 1);
    if (msg) err_append(e, msg, msglen);
}

void mtmsg_capi_arm_locked(MsgBuffer *b, int which, MsgFire *f) {
    const MsgNotifier *nt = &b->ntf[which];
    long long th = nt->threshold;
    unsigned long long cnt = mtmsg_buffer_count_locked(b);
    int go = which == MTMSG_NTF_ADD ? (th < 0 || cnt > (unsigned long long)th)
                                    : (th <= 0 || cnt < (unsigned long long)th);
    if (!go) return;
    if (isself(b, nt->api, nt->n)) {
        /* b holds no reference to itself: a count of 0 means that b is on its way out
         * (an orphan, or a last release in progress): nobody is left to notify */
        if (!mtmsg_registry_tryretain(&b->obj)) return;
    } else {
        nt->api->retainNotifier(nt->n);     /* a reference count: safe under our lock */
    }
    f->api = nt->api;
    f->n = nt->n;
    f->b = b;
    f->l = NULL;
    f->which = which;
}

static int ismember_locked(const MsgListener *l, const MsgBuffer *b) {
    const MsgBuffer *m;
    for (m = l->members; m; m = m->member_next)
        if (m == b) return 1;
    return 0;
}

/* rc 1: drops the notifier if it is still the connected one. When f->l is set, f->b may
 * have been freed meanwhile: it is only touched if still a member of its listener (the
 * listener lives, our caller holds it; members are detached before they are freed). */
static void disconnect(const MsgFire *f, const notify_capi *api) {
    MsgBuffer *b = f->b;
    int drop = 0;
    if (f->l) mtmsg_mutex_lock(&f->l->mutex);       /* guards its member list */
    if (!f->l || ismember_locked(f->l, b)) {
        MsgNotifier *nt = &b->ntf[f->which];
        mtmsg_mutex_lock(&b->mutex);
        if (nt->api == api && nt->n == f->n) {
            nt->api = NULL;
            nt->n = NULL;
            drop = !isself(b, api, f->n);             /* self: no reference to drop */
        }
        mtmsg_mutex_unlock(&b->mutex);
    }
    if (f->l) mtmsg_mutex_unlock(&f->l->mutex);
    if (drop) api->releaseNotifier(f->n);           /* the connection's reference */
}

static MTMSG_THREAD_LOCAL int fire_depth;     /* notifier calls active in this thread */

/* Makes the call; 0, or 1 with the error text in *e. */
static int fire(MsgFire *f, NotifierError *e) {
    static const char toodeep[] = "notifier calls nested too deeply";
    const notify_capi *api = f->api;
    int rc;
    e->calls = 0;
    e->len = 0;
    f->api = NULL;
    if (fire_depth >= MTMSG_NOTIFIER_DEPTH) {
        api->releaseNotifier(f->n);
        err_collect(e, toodeep, sizeof toodeep - 1);
        return 1;
    }
    fire_depth++;
    rc = api->notify(f->n, err_collect, e);
    fire_depth--;
    if (rc == 2 && api == &notify_record) {        /* an mtmsg buffer that is aborted */
        char what[MTMSG_DESCRIBE_MAX];
        mtmsg_error_describe(what, &((MsgBuffer *)f->n)->obj);     /* n lives: retained */
        e->len = (size_t)snprintf(e->text, sizeof e->text,
                                  "mtmsg.error.operation_aborted: notifier %s is aborted", what);
        if (e->len >= sizeof e->text) e->len = sizeof e->text - 1;
        e->calls = 1;
    }
    if (rc == 1 && f->b) disconnect(f, api);
    api->releaseNotifier(f->n);                     /* the call's reference */
    if (rc == 0 || rc == 1) return 0;
    if (e->calls == 0) {
        e->len = (size_t)snprintf(e->text, sizeof e->text,
                                  "Unknown error while calling notifier. (rc=%d)", rc);
        if (e->len >= sizeof e->text) e->len = sizeof e->text - 1;
    }
    return 1;
}

int mtmsg_capi_fireerror(lua_State *L, MsgFire *f) {
    NotifierError e;
    if (!f->api || !fire(f, &e)) return 0;
    lua_pushlstring(L, e.text, e.len);
    return 1;
}

void mtmsg_capi_firelua(lua_State *L, MsgFire *f) {
    if (mtmsg_capi_fireerror(L, f)) lua_error(L);
}

/* From the C APIs: 0, or CAPI_RC_NOTIFIER after handing the text to eh. */
static int fire_capi(MsgFire *f, void (*eh)(void *, const char *, size_t), void *ehdata) {
    NotifierError e;
    if (!f->api || !fire(f, &e)) return 0;
    if (eh) eh(ehdata, e.text, e.len);
    return CAPI_RC_NOTIFIER;
}

static const char *const notifier_types[] = {">", "<", NULL};   /* MTMSG_NTF_ADD/REMOVE */

int mtmsg_capi_setnotifier(lua_State *L) {
    MsgBuffer *b = mtmsg_buffer_check(L, 1)->b;
    const notify_capi *api = NULL;
    notify_notifier *n = NULL;
    MsgNotifier old = {NULL, NULL, 0};
    MsgStatus st = MSG_OK;
    long long threshold = 0;
    int which;
    if (lua_isnone(L, 2)) return luaL_argerror(L, 2, "notifier or nil expected");
    if (!lua_isnil(L, 2)) {
        int reason = NOTIFY_CAPI_ERR_NOAPI;
        api = notify_get_capi(L, 2, &reason);
        if (!api)
            return luaL_argerror(L, 2, reason == NOTIFY_CAPI_ERR_VERSION
                                           ? "notifier api version mismatch" : "notifier expected");
        n = api->toNotifier(L, 2);
        if (!n) return luaL_argerror(L, 2, "invalid notifier");
    }
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TSTRING);  /* LuaJIT would take any */
    which = luaL_checkoption(L, 3, ">", notifier_types);
    if (!lua_isnoneornil(L, 4)) threshold = (long long)mtmsg_checkinteger(L, 4);
    if (api) api->retainNotifier(n);                /* before the lock: foreign code */
    mtmsg_buffer_lockall(b);                        /* a "<" one ends the takers' batch */
    if (!api) {
        old = b->ntf[which];
        b->ntf[which].api = NULL;
        b->ntf[which].n = NULL;
    } else if (b->closed) {
        st = MSG_CLOSED;
    } else if (b->ntf[which].api) {
        st = MSG_FULL;                              /* has_notifier */
    } else {
        b->ntf[which].api = api;
        b->ntf[which].n = n;
        b->ntf[which].threshold = threshold;
    }
    mtmsg_buffer_replan_locked(b);
    mtmsg_buffer_unlockall(b);
    if (old.api && !isself(b, old.api, old.n)) old.api->releaseNotifier(old.n);
    /* b as its own notifier keeps no reference (the handle at 1 holds another one) */
    if (st == MSG_OK && !isself(b, api, n)) return 0;
    api->releaseNotifier(n);
    if (st == MSG_OK) return 0;
    if (st == MSG_CLOSED) return mtmsg_error_status(L, st, &b->obj, NULL, NULL, 0);
    return mtmsg_error_raise(L, ERR_HAS_NOTIFIER, NULL);
}

/* ===== Shared by the three APIs ===== */

/* The buffer behind the value at index: a full userdata with the registry's buffer
 * metatable and a complete handle; else NULL. Raises nothing, stack unchanged. */
static MsgBuffer *tobuffer(lua_State *L, int index) {
    BufferHandle *h;
    if (index < 0 && index > LUA_REGISTRYINDEX) index = lua_gettop(L) + index + 1;
    if (lua_type(L, index) != LUA_TUSERDATA) return NULL;
    h = luaL_testudata(L, index, MTMSG_BUFFER_MT);
    return h ? h->b : NULL;
}

/* Element size of an array type code (1.8 of docs/CAPI.md); 0 for an unknown code. */
static size_t elemsize(int t) {
    switch (t) {
    case RECEIVER_UCHAR:  return sizeof(unsigned char);
    case RECEIVER_SCHAR:  return sizeof(signed char);
    case RECEIVER_SHORT:  return sizeof(short);
    case RECEIVER_USHORT: return sizeof(unsigned short);
    case RECEIVER_INT:    return sizeof(int);
    case RECEIVER_UINT:   return sizeof(unsigned int);
    case RECEIVER_LONG:   return sizeof(long);
    case RECEIVER_ULONG:  return sizeof(unsigned long);
    case RECEIVER_FLOAT:  return sizeof(float);
    case RECEIVER_DOUBLE: return sizeof(double);
    case RECEIVER_LLONG:  return sizeof(long long);
    case RECEIVER_ULLONG: return sizeof(unsigned long long);
    default:              return 0;
    }
}

/* Capacity hints of newWriter/newReader: growFactor <= 0 (or NaN) fixes the size. */
static void init_membuf(MemBuf *mb, size_t cap, float grow) {
    mtmsg_membuf_init(mb, cap, grow > 0 ? (double)grow : 0);
}

/* ===== Notify API ===== */

static notify_notifier *n_toNotifier(lua_State *L, int index) {
    return (notify_notifier *)tobuffer(L, index);
}

static void n_retain(notify_notifier *n) { mtmsg_buffer_retain((MsgBuffer *)n); }
static void n_release(notify_notifier *n) { mtmsg_buffer_release((MsgBuffer *)n); }

/* A notification is an empty message, like buffer:addmsg(). */
static int n_notify(notify_notifier *n, notifier_error_handler eh, void *ehdata) {
    MsgFire f;
    const char *why;
    switch (mtmsg_buffer_put((MsgBuffer *)n, "", 0, 0, 0, &f, NULL)) {
    case MSG_OK: return fire_capi(&f, eh, ehdata);
    case MSG_CLOSED: return 1;
    case MSG_ABORTED:
        if (eh) {
            char what[32 + MTMSG_DESCRIBE_MAX];
            size_t k = sizeof "mtmsg.error.operation_aborted: " - 1;
            memcpy(what, "mtmsg.error.operation_aborted: ", k);
            k += mtmsg_error_describe(what + k, &((MsgBuffer *)n)->obj);
            eh(ehdata, what, k);
        }
        return 2;
    case MSG_NOMEM: why = "mtmsg.error.out_of_memory"; break;
    case MSG_ENDED: why = "mtmsg.error.stream_ended"; break;
    default: why = "mtmsg.error.message_size: buffer is full"; break;
    }
    if (eh) eh(ehdata, why, strlen(why));
    return CAPI_RC_NOTIFIER;
}

static const notify_capi notify_record = {
    NOTIFY_CAPI_VERSION_MAJOR, NOTIFY_CAPI_VERSION_MINOR, NOTIFY_CAPI_VERSION_PATCH, NULL,
    n_toNotifier, n_retain, n_release, n_notify
};

/* ===== Receiver API ===== */

struct receiver_writer {
    MemBuf mb;              /* the encoded values of the message under construction */
};

static receiver_object *r_toReceiver(lua_State *L, int index) {
    return (receiver_object *)tobuffer(L, index);
}

static void r_retain(receiver_object *r) { mtmsg_buffer_retain((MsgBuffer *)r); }
static void r_release(receiver_object *r) { mtmsg_buffer_release((MsgBuffer *)r); }

static receiver_writer *r_newWriter(size_t initialCapacity, float growFactor) {
    receiver_writer *w = mtmsg_malloc(sizeof *w);
    if (w) init_membuf(&w->mb, initialCapacity, growFactor);
    return w;
}

static void r_freeWriter(receiver_writer *w) {
    if (!w) return;
    mtmsg_membuf_free(&w->mb);
    mtmsg_free(w);
}

/* Writer calls return 0, 1 (fixed capacity exceeded) or 2 (out of memory). */
static int wstatus(MsgStatus st) {
    return st == MSG_OK ? 0 : st == MSG_NOMEM ? 2 : 1;
}

/* Return codes of msgToReceiver. The writer is cleared once the message is stored, also
 * when the buffer's notifier failed afterwards (CAPI_RC_NOTIFIER): it was delivered. */
static int r_msgToReceiver(receiver_object *r, receiver_writer *w, int clear, int nonblock,
                           receiver_error_handler eh, void *ehdata) {
    MsgFire f;
    int rc;
    const char *p = w->mb.len ? mtmsg_membuf_begin(&w->mb) : "";
    switch (mtmsg_buffer_put((MsgBuffer *)r, p, w->mb.len, clear != 0, nonblock != 0, &f, NULL)) {
    case MSG_OK: break;
    case MSG_CLOSED: case MSG_ENDED: return RECEIVER_CAPI_RC_CLOSED;
    case MSG_ABORTED: return RECEIVER_CAPI_RC_ABORTED;
    case MSG_BUSY: return RECEIVER_CAPI_RC_BUSY;
    case MSG_FULL: return RECEIVER_CAPI_RC_FULL;
    case MSG_TOO_BIG: return RECEIVER_CAPI_RC_TOO_BIG;
    default: return RECEIVER_CAPI_RC_NOMEM;
    }
    mtmsg_membuf_clear(&w->mb);
    rc = fire_capi(&f, eh, ehdata);
    return rc;
}

static void r_clearWriter(receiver_writer *w) {
    mtmsg_membuf_clear(&w->mb);
}

static int r_addBoolean(receiver_writer *w, int b) {
    return wstatus(mtmsg_codec_putbool(&w->mb, b != 0));
}

static int r_addInteger(receiver_writer *w, lua_Integer i) {
    return wstatus(mtmsg_codec_putint(&w->mb, i));
}

static int r_addNumber(receiver_writer *w, lua_Number n) {
    return wstatus(mtmsg_codec_putfloat(&w->mb, n));
}

static int r_addString(receiver_writer *w, const char *s, size_t len) {
    if (!s) {
        if (len) return 1;
        s = "";
    }
    return wstatus(mtmsg_codec_putstr(&w->mb, s, len));
}

/* len integer values, all or nothing: the room (MTMSG_SIZE_BYTE each) is reserved first. */
static int r_addBytes(receiver_writer *w, const unsigned char *s, size_t len) {
    size_t i;
    MsgStatus st;
    if (len > (size_t)-1 / MTMSG_SIZE_BYTE) return 2;
    st = mtmsg_membuf_reserve(&w->mb, len * MTMSG_SIZE_BYTE);
    for (i = 0; st == MSG_OK && i < len; i++) st = mtmsg_codec_putint(&w->mb, (lua_Integer)s[i]);
    return wstatus(st);
}

static void *r_addArray(receiver_writer *w, receiver_array_type t, size_t elementCount) {
    size_t size = elemsize((int)t);
    char *data;
    if (size == 0) return NULL;
    if (mtmsg_codec_putarray(&w->mb, (int)t, size, elementCount, &data) != MSG_OK) return NULL;
    return data;            /* never NULL: points behind the header for 0 elements */
}

static const receiver_capi receiver_record = {
    RECEIVER_CAPI_VERSION_MAJOR, RECEIVER_CAPI_VERSION_MINOR, RECEIVER_CAPI_VERSION_PATCH, NULL,
    r_toReceiver, r_retain, r_release, r_newWriter, r_freeWriter, r_msgToReceiver,
    r_clearWriter, r_addBoolean, r_addInteger, r_addNumber, r_addString, r_addBytes,
    r_addArray
};

/* ===== Sender API ===== */

struct sender_reader {
    MemBuf mb;              /* payload of the current message */
    size_t pos;             /* offset of the next value */
};

static sender_object *s_toSender(lua_State *L, int index) {
    return (sender_object *)tobuffer(L, index);
}

static void s_retain(sender_object *s) { mtmsg_buffer_retain((MsgBuffer *)s); }
static void s_release(sender_object *s) { mtmsg_buffer_release((MsgBuffer *)s); }

static sender_reader *s_newReader(size_t initialCapacity, float growFactor) {
    sender_reader *r = mtmsg_malloc(sizeof *r);
    if (r) {
        init_membuf(&r->mb, initialCapacity, growFactor);
        r->pos = 0;
    }
    return r;
}

static void s_freeReader(sender_reader *r) {
    if (!r) return;
    mtmsg_membuf_free(&r->mb);
    mtmsg_free(r);
}

static void s_clearReader(sender_reader *r) {
    mtmsg_membuf_clear(&r->mb);
    r->pos = 0;
}

/* Pointers handed out point into r->mb, which only a new message, clear or free changes. */
static void s_nextValue(sender_reader *r, sender_capi_value *out) {
    MsgValue v;
    if (mtmsg_codec_next(mtmsg_membuf_begin(&r->mb), r->mb.len, &r->pos, &v) <= 0) {
        out->type = SENDER_CAPI_TYPE_NONE;
        return;
    }
    switch (v.type) {
    case VAL_NIL: out->type = SENDER_CAPI_TYPE_NIL; break;
    case VAL_BOOL: out->type = SENDER_CAPI_TYPE_BOOLEAN; out->boolVal = v.u.b != 0; break;
    case VAL_INT: out->type = SENDER_CAPI_TYPE_INTEGER; out->intVal = v.u.i; break;
    case VAL_FLOAT: out->type = SENDER_CAPI_TYPE_NUMBER; out->numVal = v.u.n; break;
    case VAL_LUDATA: out->type = SENDER_CAPI_TYPE_LIGHTUSERDATA; out->ptrVal = v.u.p; break;
    case VAL_CFUNC: out->type = SENDER_CAPI_TYPE_CFUNCTION; out->funcVal = v.u.f; break;
    case VAL_STR:
        out->type = SENDER_CAPI_TYPE_STRING;
        out->strVal.ptr = v.u.s.ptr;
        out->strVal.len = v.u.s.len;
        break;
    case VAL_ARRAY:                 /* mtmsg_codec_next has skipped the element bytes */
        out->type = SENDER_CAPI_TYPE_ARRAY;
        out->arrayVal.type = elemsize(v.u.a.type) ? (sender_array_type)v.u.a.type
                                                  : (sender_array_type)0;
        out->arrayVal.elementSize = v.u.a.elemsize;
        out->arrayVal.elementCount = v.u.a.count;
        out->arrayVal.data = v.u.a.data;
        break;
    case VAL_TABLE:                 /* not representable: skipped whole, no member set */
        out->type = SENDER_CAPI_TYPE_TABLE;
        break;
    default:
        out->type = SENDER_CAPI_TYPE_NONE;
        break;
    }
}

/* Waiting rules: timeout > 0 waits up to timeout (nonblock: not for the lock); timeout < 0
 * without nonblock waits forever; everything else polls (trylock, no wait). */
static int s_nextMessage(sender_object *s, sender_reader *r, int nonblock, double timeout,
                         sender_error_handler eh, void *ehdata) {
    MsgBuffer *b = (MsgBuffer *)s;
    MsgFire f;
    MsgStatus st;
    if (timeout > 0) st = mtmsg_buffer_take(b, &r->mb, nonblock != 0, timeout, NULL, &f);
    else if (timeout < 0 && !nonblock) st = mtmsg_buffer_take(b, &r->mb, 0, -1, NULL, &f);
    else st = mtmsg_buffer_take(b, &r->mb, 1, 0, NULL, &f);
    switch (st) {
    case MSG_OK: break;
    case MSG_CLOSED: case MSG_ENDED: return SENDER_CAPI_RC_CLOSED;
    case MSG_ABORTED: return SENDER_CAPI_RC_ABORTED;
    case MSG_EMPTY: case MSG_BUSY: return SENDER_CAPI_RC_EMPTY;
    case MSG_FULL: case MSG_TOO_BIG: return SENDER_CAPI_RC_TOO_BIG;
    default: return SENDER_CAPI_RC_NOMEM;
    }
    r->pos = 0;                     /* the reader holds this message only */
    return fire_capi(&f, eh, ehdata);
}

static const sender_capi sender_record = {
    SENDER_CAPI_VERSION_MAJOR, SENDER_CAPI_VERSION_MINOR, SENDER_CAPI_VERSION_PATCH, NULL,
    s_toSender, s_retain, s_release, s_newReader, s_freeReader, s_clearReader, s_nextValue,
    s_nextMessage
};

/* ===== Publication ===== */

/* Sets mt[key] = a marker userdata [record pointer][key bytes + NUL]. Stack: mt. */
static void publish(lua_State *L, const char *key, const void *rec) {
    size_t keysize = strlen(key) + 1;
    char *block = lua_newuserdatauv(L, sizeof rec + keysize, 0);   /* mt, marker */
    memcpy(block, &rec, sizeof rec);
    memcpy(block + sizeof rec, key, keysize);
    lua_pushstring(L, key);                                         /* mt, marker, key */
    lua_insert(L, -2);                                              /* mt, key, marker */
    lua_rawset(L, -3);                                              /* mt */
}

void mtmsg_capi_publish(lua_State *L) {
    publish(L, NOTIFY_CAPI_ID_STRING, &notify_record);
    publish(L, RECEIVER_CAPI_ID_STRING, &receiver_record);
    publish(L, SENDER_CAPI_ID_STRING, &sender_record);
}
