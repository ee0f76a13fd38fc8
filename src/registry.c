/*
 * Registry of live buffers and listeners (see registry.h). Open-addressing hash tables
 * (linear probing, at most half full, doubled when needed), so lookup by id or by name
 * costs the same with 100 or 100,000 objects. A slot holds the object's key (its id, or
 * the hash of its name) next to the pointer: probing past other objects reads the slot
 * array only, and a lookup touches the object it finds, not the ones it skips.
 * One mutex guards all tables, the id counter and the global abort flag.
 */
#include "registry.h"

#include <string.h>

typedef struct Slot {
    unsigned long long key;         /* the id, or the name hash */
    MsgObject *o;                   /* NULL: free */
} Slot;

typedef struct HashTable {
    Slot *slots;
    size_t nslots;      /* power of two, or 0 before first use */
    size_t count;       /* at most nslots / 2 */
} HashTable;

/* Ids start far above small counts and stay below 2^53 (exact in a double). */
#define FIRST_ID 0x100000001ULL

static MtMutex reg_mutex;
static MtCond reg_cond;                     /* mtmsg.sleep waits here; abort broadcasts */
static HashTable by_id;                     /* guarded by: reg_mutex */
static HashTable by_name[2];                /* guarded by: reg_mutex; per kind */
static unsigned long long next_id = FIRST_ID;  /* guarded by: reg_mutex */
static int global_abort;                    /* guarded by: reg_mutex */
static MtOnce reg_once = MTMSG_ONCE_INIT;

static void reg_init(void) {
    mtmsg_mutex_init(&reg_mutex);
    mtmsg_cond_init(&reg_cond);
}
static void reg_lock(void) {
    mtmsg_once(&reg_once, reg_init);
    mtmsg_mutex_lock(&reg_mutex);
}
static void reg_unlock(void) { mtmsg_mutex_unlock(&reg_mutex); }

/* Home slot of a key: its bits mixed (linear probing needs well spread indices). */
static size_t home_of(const HashTable *t, unsigned long long key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (t->nslots - 1);
}

/* FNV-1a over all bytes of the name. */
static size_t hash_name(const char *s, size_t len) {
    unsigned long long h = 0xcbf29ce484222325ULL;
    size_t i;
    for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 0x100000001b3ULL; }
    return (size_t)(h ^ (h >> 29));
}

static unsigned long long key_of(const MsgObject *o, int byname) {
    return byname ? o->namehash : o->id;
}

static void table_put(HashTable *t, unsigned long long key, MsgObject *o) {
    size_t i = home_of(t, key);
    while (t->slots[i].o) i = (i + 1) & (t->nslots - 1);
    t->slots[i].key = key;
    t->slots[i].o = o;
}

/* Makes room for one more entry; 0 on allocation failure (table unchanged). */
static int table_grow(HashTable *t) {
    HashTable old = *t;
    size_t i;
    if (t->count < t->nslots / 2) return 1;
    t->nslots = old.nslots ? old.nslots * 2 : 64;
    t->slots = mtmsg_malloc(t->nslots * sizeof *t->slots);
    if (!t->slots) { *t = old; return 0; }
    memset(t->slots, 0, t->nslots * sizeof *t->slots);
    for (i = 0; i < old.nslots; i++)
        if (old.slots[i].o) table_put(t, old.slots[i].key, old.slots[i].o);
    mtmsg_free(old.slots);
    return 1;
}

static void table_insert(HashTable *t, MsgObject *o, int byname) {
    table_put(t, key_of(o, byname), o);
    t->count++;
}

static void table_remove(HashTable *t, MsgObject *o, int byname) {
    size_t mask = t->nslots - 1, i, j;
    if (!t->nslots) return;
    for (i = home_of(t, key_of(o, byname)); t->slots[i].o != o; i = (i + 1) & mask)
        if (!t->slots[i].o) return;                         /* not in the table */
    /* Backward shift: an entry further along the run moves into the hole when its home
     * slot is not between the hole and itself, so that no probe run is broken. */
    for (j = (i + 1) & mask; t->slots[j].o; j = (j + 1) & mask) {
        if (((j - home_of(t, t->slots[j].key)) & mask) >= ((j - i) & mask)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].o = NULL;
    t->count--;
}

MsgStatus mtmsg_registry_initobject(MsgObject *o, MsgKind kind, const char *name, size_t namelen,
                                    void (*setabort)(MsgObject *, int)) {
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->refs = 1;
    o->setabort = setabort;
    if (name) {
        if (namelen <= MTMSG_SHORTNAME_MAX) o->name = o->shortname;
        else if (!(o->name = mtmsg_malloc(namelen + 1))) return MSG_NOMEM;
        memcpy(o->name, name, namelen);
        o->name[namelen] = '\0';
        o->namelen = namelen;
        o->namehash = hash_name(name, namelen);
    }
    return MSG_OK;
}

void mtmsg_registry_freeobject(MsgObject *o) {
    if (o->name != o->shortname) mtmsg_free(o->name);
    o->name = NULL;
}

MsgStatus mtmsg_registry_add(MsgObject *o, MsgStatus (*also)(void *), void *ud) {
    MsgStatus st = MSG_OK;
    reg_lock();
    if (global_abort) st = MSG_ABORTED;
    else if (!table_grow(&by_id) || (o->name && !table_grow(&by_name[o->kind])))
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
        if (by_id.nslots) {
            size_t i;
            for (i = home_of(&by_id, id); by_id.slots[i].o; i = (i + 1) & (by_id.nslots - 1))
                if (by_id.slots[i].key == id) { o = by_id.slots[i].o; break; }
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
    size_t h = hash_name(name, len);
    reg_lock();
    *st = MSG_EMPTY;
    if (global_abort) *st = MSG_ABORTED;
    else if (t->nslots) {
        size_t i;
        /* the whole run: a second object of that name makes the name ambiguous */
        for (i = home_of(t, h); t->slots[i].o; i = (i + 1) & (t->nslots - 1)) {
            MsgObject *o = t->slots[i].o;
            if (t->slots[i].key == h && o->namelen == len && memcmp(o->name, name, len) == 0) {
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

int mtmsg_registry_tryretain(MsgObject *o) {
    size_t r = mtmsg_atomic_load(&o->refs);
    /* a count raised from 1 here is not lowered to 0 by a release racing with us: that
     * one decrements atomically after its check and sees the 2 */
    while (r > 0)
        if (mtmsg_atomic_cas(&o->refs, &r, r + 1)) return 1;
    return 0;
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
    for (i = 0; i < by_id.nslots; i++)
        if (by_id.slots[i].o) by_id.slots[i].o->setabort(by_id.slots[i].o, flag);
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
