/* Slab allocator inside a shared-memory zone.
 *
 * Layout of the region [s, s + size), everything addressed by offsets from s:
 *
 *   [pt_shm_slab: magic, lock, journal, 9 classes][page descriptors x npages][pad]
 *   [page 0][page 1]...[page npages-1]                  pages_off: 4 KiB-aligned offset
 *
 * A page belongs to no class (on the free page list) or to one class, whose slots of
 * 16 << k bytes (16 .. 4096) it holds; its descriptor, outside the page so the page is
 * all payload, carries the class, a bitmap of used slots (256 bits: 4096 / 16) and its
 * links on exactly one of three kinds of list: free pages (one list), and per class the
 * partial pages (some slots free: allocations come from its first page) and the full ones.
 * A page whose last slot is freed goes back to the free list for any class to take.
 *
 * Crash consistency. Everything is changed under one robust mutex (pt_shm_mutex). Before
 * alloc or free changes anything it writes the journal (op, class, page, slot and the
 * class's counter before the op), and clears it when done. The bitmaps are the truth:
 * lists, per-page and per-class counts are derived from them. When a process dies holding
 * the lock, the next owner gets PT_AGAIN and pt_shm_slab_repair()
 *   - frees the journal's slot: an interrupted alloc never returned it to anyone alive, an
 *     interrupted free was asked for; and sets the class's counter to what the op leaves
 *     (alloc undone, free done), so allocs - frees == used holds exactly;
 *   - rebuilds every list and count from the bitmaps (O(pages)).
 * So after a death: no slot is handed out twice, no list is corrupt, no slot leaks inside
 * the slab, and the counters are exact. What the slab cannot know is what its dead caller
 * did with memory outside an alloc or free: a slot allocated but not yet linked into the
 * module's index, a slot half written; the module's own repair deals with that (see
 * shm_list.h). A death in the repair itself leaves the journal set, and the next owner
 * repairs again (the repair is idempotent). */
#include "portico/core.h"       /* first: config.h defines _GNU_SOURCE */

#include <stdarg.h>
#include <stdio.h>

#include "portico/log.h"
#include "portico/shm.h"
#include "portico/shm_slab.h"

#define SLAB_MAGIC       0x3162616c736d6870ULL      /* "phmslab1": bump on layout change */
#define SLAB_MAP_WORDS   (PT_SHM_SLAB_PAGE / PT_SHM_SLAB_MIN / 64)
#define SLAB_NO_CLASS    0xff

enum { LIST_FREE = 1, LIST_PARTIAL, LIST_FULL };

typedef struct slab_page {
    uint32_t next;                  /* page number + 1 on the same list, 0 = end */
    uint32_t prev;
    uint8_t  cls;                   /* class index, SLAB_NO_CLASS on the free list */
    uint8_t  list;                  /* LIST_*: which list it is on (for the checker) */
    uint16_t used;                  /* bits set in map */
    uint32_t reserved;
    uint64_t map[SLAB_MAP_WORDS];   /* bit set = slot handed out */
} slab_page;

pt_shm_slab_hook_fn pt_shm_slab_test_hook;

#define slab_hook(s, op, step) \
    do { if (pt_unlikely(pt_shm_slab_test_hook != NULL)) pt_shm_slab_test_hook(s, op, step); \
    } while (0)

/* Death is the only "concurrent" observer of a lock holder's stores, and stores that were
 * executed are in the shared pages when the process dies: only the compiler's order
 * matters, so a compiler barrier keeps the journal ahead of the changes it describes. */
#define slab_barrier()   __atomic_signal_fence(__ATOMIC_SEQ_CST)

#define slab_header_size()  ((sizeof(pt_shm_slab) + 63) & ~(size_t) 63)


static inline slab_page *page_at(pt_shm_slab *s, uint32_t n)
{
    return (slab_page *) (void *) ((char *) s + slab_header_size()) + n;
}

static inline uint32_t page_no(pt_shm_slab *s, slab_page *pg)
{
    return (uint32_t) (pg - page_at(s, 0));
}

static inline char *page_data(pt_shm_slab *s, uint32_t n)
{
    return (char *) s + s->pages_off + (size_t) n * PT_SHM_SLAB_PAGE;
}

size_t pt_shm_slab_class_size(size_t n)
{
    if (n == 0 || n > PT_SHM_SLAB_MAX)
        return 0;
    size_t size = PT_SHM_SLAB_MIN;
    while (size < n)
        size <<= 1;
    return size;
}

static unsigned class_of(size_t n)          /* n in 1..PT_SHM_SLAB_MAX */
{
    if (n <= PT_SHM_SLAB_MIN)
        return 0;
    /* ceil(log2(n)) - log2(PT_SHM_SLAB_MIN) */
    return (unsigned) (64 - __builtin_clzll((unsigned long long) (n - 1))) - 4;
}


/* Page lists ---------------------------------------------------------------------------- */

static uint32_t *list_head(pt_shm_slab *s, unsigned list, unsigned cls)
{
    if (list == LIST_FREE)
        return &s->free_head;
    return list == LIST_PARTIAL ? &s->cls[cls].partial : &s->cls[cls].full;
}

static void page_unlink(pt_shm_slab *s, slab_page *pg)
{
    uint32_t *head = list_head(s, pg->list, pg->cls);
    if (pg->prev)
        page_at(s, pg->prev - 1)->next = pg->next;
    else
        *head = pg->next;
    if (pg->next)
        page_at(s, pg->next - 1)->prev = pg->prev;
    pg->next = pg->prev = 0;
    pg->list = 0;
}

static void page_push(pt_shm_slab *s, slab_page *pg, unsigned list)
{
    uint32_t *head = list_head(s, list, pg->cls);
    pg->list = (uint8_t) list;
    pg->prev = 0;
    pg->next = *head;
    if (*head)
        page_at(s, *head - 1)->prev = page_no(s, pg) + 1;
    *head = page_no(s, pg) + 1;
}

static void journal_begin(pt_shm_slab *s, unsigned op, unsigned cls, uint32_t page,
                          unsigned slot, uint64_t count)
{
    s->journal.cls = cls;
    s->journal.page = page;
    s->journal.slot = slot;
    s->journal.count = count;
    slab_barrier();
    s->journal.op = op;         /* last: op != NONE means the fields above are valid */
    slab_barrier();
}

static void journal_end(pt_shm_slab *s)
{
    slab_barrier();
    s->journal.op = PT_SHM_SLAB_OP_NONE;
}


/* Init and attach ----------------------------------------------------------------------- */

/* How many pages fit: header, one descriptor per page, padding to a page boundary (offsets
 * from s), the pages. */
static uint32_t slab_geometry(size_t size, uint64_t *pages_off)
{
    size_t hdr = slab_header_size();
    if (size < hdr + sizeof(slab_page) + PT_SHM_SLAB_PAGE)
        return 0;
    size_t n = (size - hdr) / (sizeof(slab_page) + PT_SHM_SLAB_PAGE);
    if (n > UINT32_MAX - 1)
        n = UINT32_MAX - 1;
    for (; n > 0; n--) {
        size_t off = (hdr + n * sizeof(slab_page) + PT_SHM_SLAB_PAGE - 1)
                     & ~((size_t) PT_SHM_SLAB_PAGE - 1);
        if (off + n * PT_SHM_SLAB_PAGE <= size) {
            *pages_off = off;
            break;
        }
    }
    return (uint32_t) n;
}

pt_shm_slab *pt_shm_slab_init(void *addr, size_t size)
{
    uint64_t pages_off = 0;
    uint32_t n = slab_geometry(size, &pages_off);
    if (addr == NULL || ((uintptr_t) addr & (PT_SHM_SLAB_MIN - 1)) || n == 0)
        return NULL;

    pt_shm_slab *s = addr;
    memset(s, 0, slab_header_size() + n * sizeof(slab_page));
    if (pt_shm_mutex_init(&s->lock) != PT_OK)
        return NULL;
    s->size = size;
    s->pages_off = pages_off;
    s->npages = n;
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++) {
        s->cls[c].size = PT_SHM_SLAB_MIN << c;
        s->cls[c].slots = PT_SHM_SLAB_PAGE / s->cls[c].size;
    }
    for (uint32_t i = n; i-- > 0;) {           /* backwards: the list comes out in order */
        slab_page *pg = page_at(s, i);
        pg->cls = SLAB_NO_CLASS;
        page_push(s, pg, LIST_FREE);
    }
    s->free_pages = n;
    slab_barrier();
    s->magic = SLAB_MAGIC;
    return s;
}

pt_shm_slab *pt_shm_slab_attach(void *addr, size_t size)
{
    pt_shm_slab *s = addr;
    uint64_t pages_off = 0;
    uint32_t n = slab_geometry(size, &pages_off);
    if (s == NULL || n == 0 || s->magic != SLAB_MAGIC || s->size != size
        || s->npages != n || s->pages_off != pages_off)
        return NULL;
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++)
        if (s->cls[c].size != ((uint32_t) PT_SHM_SLAB_MIN << c))
            return NULL;
    return s;
}


/* Under the lock: every page back on the free list, as init leaves them, the lock kept.
 * For a module whose own structures are beyond repair: starting over leaks nothing. */
void pt_shm_slab_clear_locked(pt_shm_slab *s)
{
    memset(page_at(s, 0), 0, s->npages * sizeof(slab_page));
    s->free_head = 0;
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++) {
        pt_shm_slab_class *k = &s->cls[c];
        k->partial = k->full = 0;
        k->pages = k->used = 0;
        k->frees = k->allocs;           /* allocs - frees == used holds */
    }
    for (uint32_t i = s->npages; i-- > 0;) {
        slab_page *pg = page_at(s, i);
        pg->cls = SLAB_NO_CLASS;
        page_push(s, pg, LIST_FREE);
    }
    s->free_pages = s->npages;
    journal_end(s);
}


/* Lock and repair ----------------------------------------------------------------------- */

int pt_shm_slab_lock(pt_shm_slab *s)
{
    int rc = pt_shm_mutex_lock(&s->lock);
    if (rc == PT_AGAIN)
        pt_shm_slab_repair(s);
    return rc;
}

void pt_shm_slab_unlock(pt_shm_slab *s)
{
    pt_shm_mutex_unlock(&s->lock);
}

static unsigned page_count(slab_page *pg, unsigned slots)
{
    unsigned n = 0;
    for (unsigned w = 0; w < SLAB_MAP_WORDS; w++) {
        if (slots < (w + 1) * 64)       /* bits past the last slot never mean anything */
            pg->map[w] &= slots > w * 64 ? (1ULL << (slots - w * 64)) - 1 : 0;
        n += (unsigned) __builtin_popcountll(pg->map[w]);
    }
    return n;
}

/* The page lists and counts, rebuilt from the pages' bitmaps (which are right but for
 * the one slot a journal names). */
static void rebuild_lists(pt_shm_slab *s)
{
    s->free_head = 0;
    s->free_pages = 0;
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++) {
        s->cls[c].partial = s->cls[c].full = 0;
        s->cls[c].pages = s->cls[c].used = 0;
    }
    for (uint32_t i = s->npages; i-- > 0;) {
        slab_page *pg = page_at(s, i);
        unsigned n = pg->cls < PT_SHM_SLAB_CLASSES
                     ? page_count(pg, s->cls[pg->cls].slots) : 0;
        pg->used = (uint16_t) n;
        if (n == 0) {
            memset(pg->map, 0, sizeof(pg->map));
            pg->cls = SLAB_NO_CLASS;
            page_push(s, pg, LIST_FREE);
            s->free_pages++;
            continue;
        }
        pt_shm_slab_class *k = &s->cls[pg->cls];
        page_push(s, pg, n == k->slots ? LIST_FULL : LIST_PARTIAL);
        k->pages++;
        k->used += n;
    }
}

void pt_shm_slab_reload(pt_shm_slab *s)
{
    if (s->journal.op != PT_SHM_SLAB_OP_NONE) {
        pt_shm_slab_repair(s);          /* it stopped in an operation: that is news */
        return;
    }
    rebuild_lists(s);
    journal_end(s);
}

void pt_shm_slab_repair(pt_shm_slab *s)
{
    static const char *const ops[] = { "none", "alloc", "free" };
    pt_shm_slab_journal j = s->journal;
    bool valid = j.op != PT_SHM_SLAB_OP_NONE && j.op <= PT_SHM_SLAB_OP_FREE
                 && j.cls < PT_SHM_SLAB_CLASSES && j.page < s->npages
                 && j.slot < s->cls[j.cls].slots;

    if (valid) {
        slab_page *pg = page_at(s, j.page);
        if (pg->cls == j.cls)
            pg->map[j.slot / 64] &= ~(1ULL << (j.slot % 64));
        if (j.op == PT_SHM_SLAB_OP_ALLOC)
            s->cls[j.cls].allocs = j.count;
        else
            s->cls[j.cls].frees = j.count + 1;
    }
    rebuild_lists(s);
    s->repairs++;
    journal_end(s);

    if (j.op == PT_SHM_SLAB_OP_NONE)
        pt_log(PT_LOG_WARN, "shared memory slab %p: a process died holding its lock "
               "outside alloc and free; page lists rebuilt", (void *) s);
    else
        pt_log(PT_LOG_WARN, "shared memory slab %p: a process died holding its lock in "
               "%s (class %u, page %u, slot %u); %s, page lists rebuilt", (void *) s,
               j.op <= PT_SHM_SLAB_OP_FREE ? ops[j.op] : "?", valid ? s->cls[j.cls].size : 0,
               j.page, j.slot, !valid ? "journal unusable"
               : j.op == PT_SHM_SLAB_OP_ALLOC ? "allocation undone" : "free completed");
#ifdef PT_DEBUG
    char err[160];
    if (pt_shm_slab_check(s, err, sizeof(err)) != PT_OK)
        pt_log(PT_LOG_CRIT, "shared memory slab %p: inconsistent after repair: %s",
               (void *) s, err);
#endif
}


/* Alloc and free ------------------------------------------------------------------------ */

static unsigned first_free_slot(slab_page *pg, unsigned slots)
{
    /* A partial page has a clear bit below slots, and the lowest clear bit is the first. */
    for (unsigned w = 0; w < (slots + 63) / 64; w++)
        if (~pg->map[w])
            return w * 64 + (unsigned) __builtin_ctzll(~pg->map[w]);
    return slots;
}

void *pt_shm_slab_alloc_locked(pt_shm_slab *s, size_t n)
{
    if (n == 0 || n > PT_SHM_SLAB_MAX) {
        s->oversize++;
        return NULL;
    }
    unsigned c = class_of(n);
    pt_shm_slab_class *k = &s->cls[c];
    uint32_t pn = k->partial ? k->partial : s->free_head;
    if (pn == 0) {
        k->failures++;
        return NULL;
    }
    slab_page *pg = page_at(s, pn - 1);
    bool fresh = pg->list == LIST_FREE;
    unsigned slot = fresh ? 0 : first_free_slot(pg, k->slots);

    journal_begin(s, PT_SHM_SLAB_OP_ALLOC, c, pn - 1, slot, k->allocs);
    slab_hook(s, PT_SHM_SLAB_OP_ALLOC, 1);
    if (fresh) {
        page_unlink(s, pg);
        s->free_pages--;
        pg->cls = (uint8_t) c;
        pg->used = 0;
        page_push(s, pg, LIST_PARTIAL);
        k->pages++;
    }
    slab_hook(s, PT_SHM_SLAB_OP_ALLOC, 2);
    pg->map[slot / 64] |= 1ULL << (slot % 64);
    pg->used++;
    k->used++;
    k->allocs++;
    slab_hook(s, PT_SHM_SLAB_OP_ALLOC, 3);
    if (pg->used == k->slots) {
        page_unlink(s, pg);
        page_push(s, pg, LIST_FULL);
    }
    journal_end(s);

    return page_data(s, pn - 1) + (size_t) slot * k->size;
}

int pt_shm_slab_free_locked(pt_shm_slab *s, void *p)
{
    const char *why;
    uintptr_t off = (uintptr_t) p - (uintptr_t) s;    /* wraps for p below s: caught too */
    if (p == NULL) {
        why = "NULL";
        goto bad;
    }
    if (off < s->pages_off
        || off - s->pages_off >= (uintptr_t) s->npages * PT_SHM_SLAB_PAGE) {
        why = "outside the slab";
        goto bad;
    }
    uint32_t pn = (uint32_t) ((off - s->pages_off) / PT_SHM_SLAB_PAGE);
    size_t in = (off - s->pages_off) % PT_SHM_SLAB_PAGE;
    slab_page *pg = page_at(s, pn);
    if (pg->cls >= PT_SHM_SLAB_CLASSES) {
        why = "in a free page";
        goto bad;
    }
    unsigned c = pg->cls;
    pt_shm_slab_class *k = &s->cls[c];
    if (in % k->size) {
        why = "inside a slot";
        goto bad;
    }
    unsigned slot = (unsigned) (in / k->size);
    uint64_t bit = 1ULL << (slot % 64);
    if (!(pg->map[slot / 64] & bit)) {
        why = "already free";
        goto bad;
    }

    journal_begin(s, PT_SHM_SLAB_OP_FREE, c, pn, slot, k->frees);
    slab_hook(s, PT_SHM_SLAB_OP_FREE, 1);
    pg->map[slot / 64] &= ~bit;
    pg->used--;
    k->used--;
    k->frees++;
    slab_hook(s, PT_SHM_SLAB_OP_FREE, 2);
    if (pg->used == 0) {
        page_unlink(s, pg);
        k->pages--;
        pg->cls = SLAB_NO_CLASS;
        page_push(s, pg, LIST_FREE);
        s->free_pages++;
    } else if (pg->list == LIST_FULL) {
        page_unlink(s, pg);
        page_push(s, pg, LIST_PARTIAL);
    }
    slab_hook(s, PT_SHM_SLAB_OP_FREE, 3);
    journal_end(s);
    return PT_OK;

bad:
    pt_log(PT_LOG_ALERT, "shared memory slab %p: free of %p refused: %s", (void *) s, p, why);
    return PT_ERROR;
}

void *pt_shm_slab_alloc(pt_shm_slab *s, size_t n)
{
    if (pt_shm_slab_lock(s) == PT_ERROR)
        return NULL;
    void *p = pt_shm_slab_alloc_locked(s, n);
    pt_shm_slab_unlock(s);
    return p;
}

int pt_shm_slab_free(pt_shm_slab *s, void *p)
{
    if (pt_shm_slab_lock(s) == PT_ERROR)
        return PT_ERROR;
    int rc = pt_shm_slab_free_locked(s, p);
    pt_shm_slab_unlock(s);
    return rc;
}


uint64_t pt_shm_slab_sweep_locked(pt_shm_slab *s, bool (*keep)(void *arg, void *slot),
                                  void *arg)
{
    uint64_t freed = 0;
    for (uint32_t i = 0; i < s->npages; i++) {
        slab_page *pg = page_at(s, i);
        if (pg->cls >= PT_SHM_SLAB_CLASSES)
            continue;
        const pt_shm_slab_class *k = &s->cls[pg->cls];
        unsigned slots = k->slots, size = k->size;
        for (unsigned slot = 0; slot < slots; slot++) {
            if (!(pg->map[slot / 64] & (1ULL << (slot % 64))))
                continue;
            void *p = page_data(s, i) + (size_t) slot * size;
            if (keep(arg, p))
                continue;
            /* the page may leave the class when its last slot goes: stop with it */
            bool last = pg->used == 1;
            if (pt_shm_slab_free_locked(s, p) == PT_OK)
                freed++;
            if (last)
                break;
        }
    }
    return freed;
}


/* Consistency check --------------------------------------------------------------------- */

static int check_fail(char *err, size_t len, const char *fmt, ...) PT_PRINTF(3, 4);

static int check_fail(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return PT_ERROR;
}

/* Walks one list: links both ways, every page tagged for this list and class, counts
 * agreeing with the bitmap. Adds its pages and used slots to *pages and *used. */
static int check_list(pt_shm_slab *s, unsigned list, unsigned c, uint64_t *pages,
                      uint64_t *used, char *err, size_t len)
{
    static const char *const names[] = { "", "free", "partial", "full" };
    unsigned slots = list == LIST_FREE ? 0 : s->cls[c].slots;
    uint32_t prev = 0, steps = 0;

    for (uint32_t pn = *list_head(s, list, c); pn; pn = page_at(s, pn - 1)->next) {
        if (pn > s->npages || ++steps > s->npages)
            return check_fail(err, len, "%s list of class %u: %s at page %u", names[list],
                              c, pn > s->npages ? "link out of range" : "cycle", pn - 1);
        slab_page *pg = page_at(s, pn - 1);
        unsigned n = 0;
        for (unsigned w = 0; w < SLAB_MAP_WORDS; w++)
            n += (unsigned) __builtin_popcountll(pg->map[w]);
        bool stray = false;
        for (unsigned b = slots; b < SLAB_MAP_WORDS * 64; b++)
            if (pg->map[b / 64] & (1ULL << (b % 64)))
                stray = true;
        const char *bad =
            pg->prev != prev ? "back link wrong"
            : pg->list != list ? "tagged for another list"
            : list == LIST_FREE && pg->cls != SLAB_NO_CLASS ? "free page has a class"
            : list != LIST_FREE && pg->cls != c ? "page of another class"
            : stray ? "bit set past the last slot"
            : pg->used != n ? "used count differs from the bitmap"
            : list == LIST_FREE && n != 0 ? "free page has slots in use"
            : list == LIST_PARTIAL && (n == 0 || n >= slots) ? "partial page not partial"
            : list == LIST_FULL && n != slots ? "full page not full"
            : NULL;
        if (bad)
            return check_fail(err, len, "page %u on the %s list of class %u: %s", pn - 1,
                              names[list], list == LIST_FREE ? 0 : s->cls[c].size, bad);
        *pages += 1;
        *used += n;
        prev = pn;
    }
    return PT_OK;
}

int pt_shm_slab_check(pt_shm_slab *s, char *err, size_t len)
{
    uint64_t pages_off = 0;
    if (s == NULL || s->magic != SLAB_MAGIC)
        return check_fail(err, len, "no slab (bad magic)");
    if (slab_geometry(s->size, &pages_off) != s->npages || pages_off != s->pages_off)
        return check_fail(err, len, "geometry does not match the size");
    if (s->journal.op != PT_SHM_SLAB_OP_NONE)
        return check_fail(err, len, "operation %u in progress", s->journal.op);

    uint64_t total = 0, used = 0;
    if (check_list(s, LIST_FREE, 0, &total, &used, err, len) != PT_OK)
        return PT_ERROR;
    if (total != s->free_pages)
        return check_fail(err, len, "%llu pages on the free list, %llu counted",
                          (unsigned long long) total, (unsigned long long) s->free_pages);
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++) {
        pt_shm_slab_class *k = &s->cls[c];
        uint64_t pages = 0, slots = 0;
        if (k->size != ((uint32_t) PT_SHM_SLAB_MIN << c)
            || k->slots != PT_SHM_SLAB_PAGE / k->size)
            return check_fail(err, len, "class %u: wrong size", c);
        if (check_list(s, LIST_PARTIAL, c, &pages, &slots, err, len) != PT_OK
            || check_list(s, LIST_FULL, c, &pages, &slots, err, len) != PT_OK)
            return PT_ERROR;
        if (pages != k->pages || slots != k->used || k->allocs - k->frees != k->used)
            return check_fail(err, len, "class %u: %llu pages and %llu slots on its lists, "
                              "counted %llu and %llu, allocs - frees = %llu", k->size,
                              (unsigned long long) pages, (unsigned long long) slots,
                              (unsigned long long) k->pages, (unsigned long long) k->used,
                              (unsigned long long) (k->allocs - k->frees));
        total += pages;
    }
    if (total != s->npages)
        return check_fail(err, len, "%llu pages on lists, %u in the slab",
                          (unsigned long long) total, s->npages);
    return PT_OK;
}
