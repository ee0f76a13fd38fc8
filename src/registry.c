/*
 * Registry of live buffers and listeners (see registry.h). Chained hash tables that
 * double when full, so lookup by id or by name costs the same with 100 or 100,000
 * objects. One mutex guards all tables, the id counter and the global abort flag.
 */
#include "registry.h"

#include <string.h>

typedef struct HashTable {
    MsgObject **heads;
    size_t nbuckets;    /* power of two, or 0 before first use */
    size_t count;
} HashTable;

/* Ids start far above small counts and stay below 2^53 (exact in a double). */
#define FIRST_ID 0x100000001ULL

static MtMutex reg_mutex;
static MtCond reg_cond;                     /* mtmsg.sleep waits here; abort broadcasts */
static HashTable by_id;                     /* guarded by: reg_mutex */
static HashTable by_name[2];                /* guarded by: reg_mutex; per kind */
static unsigned long long next_id = FIRST_ID;  /* guarded by: reg_mutex */
static int global_abort;                    /* guarded by: reg_mutex */
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void reg_init(void) {
    mtmsg_mutex_init(&reg_mutex);
    mtmsg_cond_init(&reg_cond);
}
static void reg_lock(void) {
    pthread_once(&reg_once, reg_init);
    mtmsg_mutex_lock(&reg_mutex);
}
static void reg_unlock(void) { mtmsg_mutex_unlock(&reg_mutex); }

static size_t hash_id(unsigned long long id) {
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

/* FNV-1a over all bytes of the name. */
static size_t hash_name(const char *s, size_t len) {
    unsigned long long h = 0xcbf29ce484222325ULL;
    size_t i;
    for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ULL; }
    return (size_t)(h ^ (h >> 29));
}

static MsgObject **link_of(MsgObject *o, int byname) {
    return byname ? &o->name_next : &o->id_next;
}
static size_t hash_of(const MsgObject *o, int byname) {
    return byname ? o->namehash : hash_id(o->id);
}

/* Makes room for one more entry; 0 on allocation failure (table unchanged). */
static int table_grow(HashTable *t, int byname) {
    size_t n, i;
    MsgObject **heads;
    if (t->count < t->nbuckets) return 1;
    n = t->nbuckets ? t->nbuckets * 2 : 64;
    heads = mtmsg_malloc(n * sizeof *heads);
    if (!heads) return 0;
    memset(heads, 0, n * sizeof *heads);
    for (i = 0; i < t->nbuckets; i++) {
        MsgObject *o = t->heads[i];
        while (o) {
            MsgObject *next = *link_of(o, byname);
            size_t b = hash_of(o, byname) & (n - 1);
            *link_of(o, byname) = heads[b];
            heads[b] = o;
            o = next;
        }
    }
    mtmsg_free(t->heads);
    t->heads = heads;
    t->nbuckets = n;
    return 1;
}

static void table_insert(HashTable *t, MsgObject *o, int byname) {
    size_t b = hash_of(o, byname) & (t->nbuckets - 1);
    *link_of(o, byname) = t->heads[b];
    t->heads[b] = o;
    t->count++;
}

static void table_remove(HashTable *t, MsgObject *o, int byname) {
    MsgObject **p = &t->heads[hash_of(o, byname) & (t->nbuckets - 1)];
    while (*p && *p != o) p = link_of(*p, byname);
    if (*p) { *p = *link_of(o, byname); t->count--; }
}

MsgStatus mtmsg_registry_initobject(MsgObject *o, MsgKind kind, const char *name, size_t namelen,
                                    void (*setabort)(MsgObject *, int)) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->refs = 1;
    o->setabort = setabort;
    if (name) {
        o->name = mtmsg_malloc(namelen + 1);
        if (!o->name) return MSG_NOMEM;
        memcpy(o->name, name, namelen);
        o->name[namelen] = '\0';
        o->namelen = namelen;
        o->namehash = hash_name(name, namelen);
    }
    return MSG_OK;
}

void mtmsg_registry_freeobject(MsgObject *o) {
    mtmsg_free(o->name);
    o->name = NULL;
}

MsgStatus mtmsg_registry_add(MsgObject *o, MsgStatus (*also)(void *), void *ud) {
    MsgStatus st = MSG_OK;
    reg_lock();
    if (global_abort) st = MSG_ABORTED;
    else if (!table_grow(&by_id, 0) || (o->name && !table_grow(&by_name[o->kind], 1)))
        st = MSG_NOMEM;
    else if (also) st = also(ud);
    if (st == MSG_OK) {
        o->id = next_id++;
        table_insert(&by_id, o, 0);
        if (o->name) table_insert(&by_name[o->kind], o, 1);
    }
    reg_unlock();
    return st;
}

MsgObject *mtmsg_registry_find_id(MsgKind kind, unsigned long long id, MsgStatus *st) {
    MsgObject *o = NULL;
    reg_lock();
    if (global_abort) *st = MSG_ABORTED;
    else {
        *st = MSG_EMPTY;
        if (by_id.nbuckets) {
            for (o = by_id.heads[hash_id(id) & (by_id.nbuckets - 1)]; o; o = o->id_next)
                if (o->id == id) break;
        }
        if (o && o->kind != kind) o = NULL;
        if (o) { mtmsg_atomic_inc(&o->refs); *st = MSG_OK; }
    }
    reg_unlock();
    return o;
}

MsgObject *mtmsg_registry_find_name(MsgKind kind, const char *name, size_t len, MsgStatus *st) {
    MsgObject *found = NULL;
    HashTable *t = &by_name[kind];
    reg_lock();
    *st = MSG_EMPTY;
    if (global_abort) *st = MSG_ABORTED;
    else if (t->nbuckets) {
        size_t h = hash_name(name, len);
        MsgObject *o;
        for (o = t->heads[h & (t->nbuckets - 1)]; o; o = o->name_next) {
            if (o->namehash == h && o->namelen == len && memcmp(o->name, name, len) == 0) {
                if (found) { *st = MSG_FULL; found = NULL; break; }
                found = o;
            }
        }
        if (found) { mtmsg_atomic_inc(&found->refs); *st = MSG_OK; }
    }
    reg_unlock();
    return found;
}

void mtmsg_registry_retain(MsgObject *o) {
    mtmsg_atomic_inc(&o->refs);
}

int mtmsg_registry_release(MsgObject *o) {
    size_t r = mtmsg_atomic_load(&o->refs);
    /* Fast path: not the last reference, no lock. A count of 1 may be raised again by a
     * lookup (which holds the registry lock), so the last decrement happens under it. */
    while (r > 1)
        if (mtmsg_atomic_cas(&o->refs, &r, r - 1)) return 0;
    reg_lock();
    r = mtmsg_atomic_dec(&o->refs);
    if (r == 0) {
        table_remove(&by_id, o, 0);
        if (o->name) table_remove(&by_name[o->kind], o, 1);
    }
    reg_unlock();
    return r == 0;
}

int mtmsg_registry_isabort(void) {
    int f;
    reg_lock();
    f = global_abort;
    reg_unlock();
    return f;
}

void mtmsg_registry_abort(int flag) {
    size_t i;
    reg_lock();
    global_abort = flag;
    for (i = 0; i < by_id.nbuckets; i++) {
        MsgObject *o;
        for (o = by_id.heads[i]; o; o = o->id_next) o->setabort(o, flag);
    }
    mtmsg_cond_broadcast(&reg_cond);
    reg_unlock();
}

MsgStatus mtmsg_registry_sleep(double seconds) {
    double deadline = mtmsg_clock_mono() + (seconds > 0 ? seconds : 0);
    MsgStatus st = MSG_OK;
    reg_lock();
    for (;;) {
        if (global_abort) { st = MSG_ABORTED; break; }
        if (mtmsg_clock_mono() >= deadline) break;
        mtmsg_cond_waituntil(&reg_cond, &reg_mutex, deadline);
    }
    reg_unlock();
    return st;
}
