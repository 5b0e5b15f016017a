/* The shared-memory slab allocator and the offset-linked lists: size classes, exhaustion,
 * a random workload against a shadow model, reuse across a reload, two mappings at
 * different addresses, processes killed in the middle of an operation, and several
 * processes at once. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "portico/shm_list.h"
#include "portico/shm_slab.h"
#include "tap.h"

#define PAGE PT_SHM_SLAB_PAGE

static char check_err[256];

static bool consistent(pt_shm_slab *s)
{
    check_err[0] = '\0';
    if (pt_shm_slab_check(s, check_err, sizeof(check_err)) == PT_OK)
        return true;
    tap_diag("  check: %s", check_err);
    return false;
}

static void *zone_map(size_t size)
{
    void *z = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (z == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return z;
}

/* A region of n pages: the header and n descriptors fit in the first page (n <= 70). */
static size_t region_for(unsigned n)
{
    return (size_t) (n + 1) * PAGE;
}

static int wait_child(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static uint64_t total_used(pt_shm_slab *s)
{
    uint64_t n = 0;
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++)
        n += s->cls[c].used;
    return n;
}

static pt_shm_slab_class *class_for(pt_shm_slab *s, size_t n)
{
    size_t size = pt_shm_slab_class_size(n);
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++)
        if (s->cls[c].size == size)
            return &s->cls[c];
    return NULL;
}


static void test_init(void)
{
    size_t size = region_for(8);
    char *z = zone_map(size);

    tap_ok(pt_shm_slab_init(z, PAGE) == NULL, "a region without room for one page: NULL");
    tap_ok(pt_shm_slab_init(z + 8, size - 8) == NULL, "a misaligned region: NULL");
    tap_ok(pt_shm_slab_attach(z, size) == NULL, "attach to a zone with no slab: NULL");

    pt_shm_slab *s = pt_shm_slab_init(z, size);
    tap_ok(s == (pt_shm_slab *) (void *) z, "slab at the start of the region");
    tap_is_int(s->npages, 8, "8 pages in 9 pages of region (header and descriptors in one)");
    tap_ok(s->pages_off % PAGE == 0 && s->pages_off + 8 * PAGE <= size,
           "pages page-aligned and inside the region");
    tap_is_int(s->free_pages, 8, "all pages free");
    tap_ok(consistent(s), "a new slab is consistent");

    pt_shm_slab *big = pt_shm_slab_init(z, size + 100);
    tap_ok(big && big->npages == 8, "a region a little larger: still 8 pages");
    tap_ok(pt_shm_slab_attach(z, size) == NULL, "attach with another size: NULL");
    tap_ok(pt_shm_slab_attach(z, size + 100) == big, "attach with the same size: the slab");
    munmap(z, size);

    /* Big regions put the descriptors in more than one page. */
    size = 1024 * PAGE;
    z = zone_map(size);
    s = pt_shm_slab_init(z, size);
    tap_ok(s && s->npages > 1000 && s->npages < 1024, "4 MiB: %u pages", s ? s->npages : 0);
    tap_ok(s && s->pages_off + (size_t) s->npages * PAGE <= size, "pages end inside");
    tap_ok(s && consistent(s), "consistent");
    munmap(z, size);
}

static void test_classes(void)
{
    static const struct { size_t n, want; } t[] = {
        { 0, 0 }, { 1, 16 }, { 15, 16 }, { 16, 16 }, { 17, 32 }, { 33, 64 }, { 100, 128 },
        { 128, 128 }, { 129, 256 }, { 1000, 1024 }, { 2049, 4096 }, { 4096, 4096 },
        { 4097, 0 }, { SIZE_MAX, 0 },
    };
    for (unsigned i = 0; i < pt_nelems(t); i++)
        tap_is_int(pt_shm_slab_class_size(t[i].n), t[i].want, "class of %zu bytes", t[i].n);

    size_t size = region_for(32);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);

    static const size_t sizes[] = { 1, 16, 17, 31, 32, 48, 64, 65, 200, 256, 511, 1024,
                                    1500, 2048, 3000, 4096 };
    char *p[pt_nelems(sizes)];
    bool aligned = true, inside = true;
    for (unsigned i = 0; i < pt_nelems(sizes); i++) {
        p[i] = pt_shm_slab_alloc(s, sizes[i]);
        size_t cs = pt_shm_slab_class_size(sizes[i]);
        if (p[i] == NULL || (uintptr_t) p[i] % cs != 0)
            aligned = false;
        if (p[i] == NULL || p[i] < z + s->pages_off || p[i] + cs > z + size)
            inside = false;
        if (p[i])
            memset(p[i], 'a' + (int) i, sizes[i]);
    }
    tap_ok(aligned, "each allocation aligned to its class size in a page-aligned zone");
    tap_ok(inside, "each allocation inside the page area");
    bool intact = true;
    for (unsigned i = 0; i < pt_nelems(sizes); i++)
        for (size_t j = 0; j < sizes[i]; j++)
            if (p[i][j] != 'a' + (int) i)
                intact = false;
    tap_ok(intact, "no allocation overwrote another");
    tap_is_int(class_for(s, 16)->used, 2, "class 16: 2 slots");
    tap_is_int(class_for(s, 16)->pages, 1, "class 16: 1 page");
    tap_is_int(class_for(s, 4096)->used, 2, "class 4096: 2 slots");
    tap_is_int(class_for(s, 4096)->pages, 2, "class 4096: a page each");
    tap_is_int(class_for(s, 4096)->partial, 0, "one-slot pages go straight to full");
    tap_is_int(s->free_pages, 32 - 10, "10 pages taken by 9 classes");
    tap_ok(consistent(s), "consistent");

    tap_ok(pt_shm_slab_alloc(s, 0) == NULL && pt_shm_slab_alloc(s, 4097) == NULL
           && pt_shm_slab_alloc(s, SIZE_MAX) == NULL, "0, 4097 and SIZE_MAX bytes: NULL");
    tap_is_int(s->oversize, 3, "counted as oversize");

    for (unsigned i = 0; i < pt_nelems(sizes); i++)
        pt_shm_slab_free(s, p[i]);
    tap_ok(s->free_pages == 32 && total_used(s) == 0, "all freed: every page free again");
    tap_ok(consistent(s), "consistent");
    munmap(z, size);
}

static void test_bad_free(void)
{
    size_t size = region_for(4);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    char *a = pt_shm_slab_alloc(s, 64), *b = pt_shm_slab_alloc(s, 64);
    int on_stack = 0;

    pt_log_level = -1;
    tap_is_int(pt_shm_slab_free(s, NULL), PT_ERROR, "free(NULL) refused");
    tap_is_int(pt_shm_slab_free(s, &on_stack), PT_ERROR, "a pointer outside the zone");
    tap_is_int(pt_shm_slab_free(s, z + 64), PT_ERROR, "a pointer into the header");
    tap_is_int(pt_shm_slab_free(s, a + 8), PT_ERROR, "a pointer inside a slot");
    tap_is_int(pt_shm_slab_free(s, b + 64), PT_ERROR, "a slot never allocated");
    tap_is_int(pt_shm_slab_free(s, z + s->pages_off + 2 * PAGE), PT_ERROR,
               "a pointer into a free page");
    tap_is_int(pt_shm_slab_free(s, z + size), PT_ERROR, "just past the last page");
    tap_is_int(pt_shm_slab_free(s, a), PT_OK, "a real free");
    tap_is_int(pt_shm_slab_free(s, a), PT_ERROR, "the same again: double free refused");
    pt_log_level = PT_LOG_INFO;
    tap_ok(class_for(s, 64)->frees == 1 && class_for(s, 64)->used == 1,
           "only the real free counted");
    tap_ok(consistent(s), "refused frees changed nothing");
    munmap(z, size);
}

static void test_exhaustion(void)
{
    enum { PAGES = 4 };
    size_t size = region_for(PAGES);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    static char *p[PAGES * PAGE / 64 + 1];
    unsigned n = 0;

    while (n < pt_nelems(p) && (p[n] = pt_shm_slab_alloc(s, 64)) != NULL)
        n++;
    tap_is_int(n, PAGES * PAGE / 64, "every 64-byte slot of every page handed out");
    tap_ok(pt_shm_slab_alloc(s, 64) == NULL, "then NULL");
    tap_ok(pt_shm_slab_alloc(s, 16) == NULL, "and NULL for another class: no free page");
    tap_ok(class_for(s, 64)->failures == 2 && class_for(s, 16)->failures == 1,
           "failures counted per class");
    tap_ok(class_for(s, 64)->pages == PAGES && class_for(s, 64)->partial == 0,
           "all pages full");
    tap_ok(consistent(s), "consistent when full");

    tap_is_int(pt_shm_slab_free(s, p[70]), PT_OK, "free one slot");
    char *again = pt_shm_slab_alloc(s, 60);
    tap_ok(again == p[70], "the next allocation of that class reuses it");
    tap_ok(pt_shm_slab_alloc(s, 64) == NULL, "and the slab is full again");

    /* Empty the second page: it goes back to the free pages, for any class. */
    for (unsigned i = 64; i < 128; i++)
        pt_shm_slab_free(s, p[i]);
    tap_is_int(s->free_pages, 1, "an emptied page returns to the free list");
    tap_is_int(class_for(s, 64)->pages, PAGES - 1, "and leaves its class");
    char *big = pt_shm_slab_alloc(s, 3000);
    tap_ok(big != NULL, "another class takes it");
    tap_ok(pt_shm_slab_alloc(s, 3000) == NULL, "only one page was free");
    tap_ok(consistent(s), "consistent");

    pt_shm_slab_free(s, big);
    for (unsigned i = 0; i < n; i++)
        if (i < 64 || i >= 128)
            pt_shm_slab_free(s, p[i]);
    tap_ok(s->free_pages == PAGES && total_used(s) == 0, "everything freed");
    tap_ok(class_for(s, 64)->allocs == class_for(s, 64)->frees,
           "allocs and frees balance");
    tap_ok(consistent(s), "consistent");
    munmap(z, size);
}

/* Random alloc and free against a shadow model: an owner per 16-byte granule, contents
 * filled with a pattern and checked before each free. */
static void test_random(void)
{
    enum { PAGES = 64, LIVE = 700, OPS = 40000 };
    size_t size = region_for(PAGES);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    char *area = z + s->pages_off;
    uint16_t *owner = calloc(PAGES * PAGE / 16, sizeof(uint16_t));
    struct { unsigned char *p; size_t n; uint16_t id; } live[LIVE];
    uint64_t model_used[PT_SHM_SLAB_CLASSES] = { 0 };
    unsigned nlive = 0, seed = 12345, nulls = 0, bad_null = 0, overlaps = 0, smashed = 0;
    unsigned inconsistent = 0, model_diff = 0;
    uint16_t next_id = 1;

    for (int op = 0; op < OPS; op++) {
        bool do_alloc = nlive == 0 || (nlive < LIVE && rand_r(&seed) % 100 < 55);
        if (do_alloc) {
            unsigned r = (unsigned) rand_r(&seed);
            size_t n = 1 + r % (r & 0x10000 ? 64 : r & 0x20000 ? 600 : 4096);
            unsigned c = 0;
            while (((size_t) PT_SHM_SLAB_MIN << c) < n)
                c++;
            unsigned char *p = pt_shm_slab_alloc(s, n);
            if (p == NULL) {
                nulls++;
                if (s->free_pages != 0 || s->cls[c].partial != 0)
                    bad_null++;
                continue;
            }
            size_t g0 = (size_t) (p - (unsigned char *) area) / 16;
            size_t cs = (size_t) PT_SHM_SLAB_MIN << c;
            for (size_t g = g0; g < g0 + cs / 16; g++) {
                if (owner[g])
                    overlaps++;
                owner[g] = next_id;
            }
            memset(p, next_id & 0xff, n);
            live[nlive].p = p;
            live[nlive].n = n;
            live[nlive].id = next_id;
            nlive++;
            model_used[c]++;
            if (++next_id == 0)
                next_id = 1;
        } else {
            unsigned k = (unsigned) rand_r(&seed) % nlive;
            unsigned char *p = live[k].p;
            for (size_t j = 0; j < live[k].n; j++)
                if (p[j] != (live[k].id & 0xff))
                    smashed++;
            size_t cs = pt_shm_slab_class_size(live[k].n);
            size_t g0 = (size_t) (p - (unsigned char *) area) / 16;
            for (size_t g = g0; g < g0 + cs / 16; g++)
                owner[g] = 0;
            unsigned c = 0;
            while (((size_t) PT_SHM_SLAB_MIN << c) < cs)
                c++;
            model_used[c]--;
            if (pt_shm_slab_free(s, p) != PT_OK)
                smashed++;
            live[k] = live[--nlive];
        }
        if (op % 2000 == 0) {
            if (pt_shm_slab_check(s, check_err, sizeof(check_err)) != PT_OK)
                inconsistent++;
            for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++)
                if (s->cls[c].used != model_used[c])
                    model_diff++;
        }
    }
    tap_ok(nulls > 0, "the workload filled the slab at times (%u NULLs)", nulls);
    tap_is_int(bad_null, 0, "NULL only when the class had no slot and no page was free");
    tap_is_int(overlaps, 0, "no slot handed out while another allocation owned its bytes");
    tap_is_int(smashed, 0, "contents intact, every free accepted");
    tap_is_int(inconsistent, 0, "the checker passed every 2000 operations");
    tap_is_int(model_diff, 0, "per-class counts matched the model");

    while (nlive)
        pt_shm_slab_free(s, live[--nlive].p);
    tap_ok(s->free_pages == PAGES && total_used(s) == 0, "all freed: all pages free");
    tap_ok(consistent(s), "consistent at the end");
    free(owner);
    munmap(z, size);
}


/* Lists ------------------------------------------------------------------------------ */

typedef struct entry {
    pt_shm_list lru;
    int         key;
} entry;

static entry *lru_entry(pt_shm_list *l)
{
    return l ? pt_container_of(l, entry, lru) : NULL;
}

/* The keys head to tail, as a string like "3 1 2". */
static const char *lru_keys(void *base, pt_shm_list *head)
{
    static char buf[256];
    pt_shm_list *l;
    size_t len = 0;
    buf[0] = '\0';
    pt_shm_list_foreach(base, head, l)
        len += (size_t) snprintf(buf + len, sizeof(buf) - len, len ? " %d" : "%d",
                                 lru_entry(l)->key);
    return buf;
}

static const char *lru_keys_backwards(void *base, pt_shm_list *head)
{
    static char buf[256];
    size_t len = 0;
    buf[0] = '\0';
    for (pt_shm_list *l = pt_shm_list_last(base, head); l;
         l = pt_shm_list_prev(base, head, l))
        len += (size_t) snprintf(buf + len, sizeof(buf) - len, len ? " %d" : "%d",
                                 lru_entry(l)->key);
    return buf;
}

static void test_lists(void)
{
    size_t size = region_for(4);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    pt_shm_list *head = pt_shm_slab_alloc(s, sizeof(*head));
    entry *e[6];

    pt_shm_list_init(s, head);
    tap_ok(pt_shm_list_empty(s, head), "a new list is empty");
    tap_ok(pt_shm_list_first(s, head) == NULL && pt_shm_list_last(s, head) == NULL,
           "no first, no last");
    tap_is_int(pt_shm_list_check(s, size, head), 0, "check: 0 nodes");
    for (int i = 0; i < 6; i++) {
        e[i] = pt_shm_slab_alloc(s, sizeof(entry));
        e[i]->key = i;
        pt_shm_list_node_init(&e[i]->lru);
        tap_ok(!pt_shm_list_linked(s, &e[i]->lru), "entry %d not on the list yet", i);
        pt_shm_list_insert_head(s, head, &e[i]->lru);
    }
    tap_is_str(lru_keys(s, head), "5 4 3 2 1 0", "insert at head: newest first");
    tap_is_str(lru_keys_backwards(s, head), "0 1 2 3 4 5", "and back from the tail");
    tap_is_int(lru_entry(pt_shm_list_last(s, head))->key, 0, "tail: the oldest");
    tap_ok(pt_shm_list_linked(s, &e[3]->lru), "an inserted entry is linked");

    pt_shm_list_move_head(s, head, &e[2]->lru);
    pt_shm_list_move_head(s, head, &e[0]->lru);
    pt_shm_list_move_head(s, head, &e[0]->lru);
    tap_is_str(lru_keys(s, head), "0 2 5 4 3 1", "move to head (twice for the head itself)");
    tap_is_int(lru_entry(pt_shm_list_last(s, head))->key, 1, "the tail moves up");

    pt_shm_list_remove(s, &e[4]->lru);
    pt_shm_list_remove(s, &e[1]->lru);
    pt_shm_list_remove(s, &e[0]->lru);
    tap_is_str(lru_keys(s, head), "2 5 3", "remove from the middle, the tail, the head");
    tap_is_str(lru_keys_backwards(s, head), "3 5 2", "back links follow");
    tap_ok(!pt_shm_list_linked(s, &e[4]->lru), "a removed entry is not linked");
    tap_is_int(pt_shm_list_check(s, size, head), 3, "check: 3 nodes");

    /* Evict from the tail while walking. */
    pt_shm_list *l;
    int evicted = 0;
    while ((l = pt_shm_list_last(s, head)) != NULL && lru_entry(l)->key != 2) {
        pt_shm_list_remove(s, l);
        evicted++;
    }
    tap_ok(evicted == 2 && strcmp(lru_keys(s, head), "2") == 0, "evicted up to key 2");
    pt_shm_list_remove(s, &e[2]->lru);
    tap_ok(pt_shm_list_empty(s, head), "empty again");

    /* A process that died in the middle of an insert (node links and the back link of the
     * old first done, the head's forward link not): the forward chain is intact, the
     * back link is wrong until repaired, and the entry is not linked. */
    for (int i = 0; i < 3; i++)
        pt_shm_list_insert_head(s, head, &e[i]->lru);
    e[5]->lru.next = head->next;
    e[5]->lru.prev = pt_shm_list_off(s, head);
    pt_shm_list_at(s, head->next)->prev = pt_shm_list_off(s, &e[5]->lru);
    tap_is_int(pt_shm_list_check(s, size, head), -1, "half an insert: check finds it");
    tap_is_int(pt_shm_list_repair(s, size, head), 3, "repair: the 3 nodes of the chain");
    tap_is_int(pt_shm_list_check(s, size, head), 3, "check passes after repair");
    tap_ok(!pt_shm_list_linked(s, &e[5]->lru), "the half-inserted entry is not linked");
    pt_shm_list_insert_head(s, head, &e[5]->lru);
    tap_is_str(lru_keys(s, head), "5 2 1 0", "and the module re-inserts it");

    /* Half a remove: the forward link skips it, the back link still names it. */
    pt_shm_list_at(s, e[1]->lru.prev)->next = e[1]->lru.next;
    tap_is_int(pt_shm_list_check(s, size, head), -1, "half a remove: check finds it");
    tap_is_int(pt_shm_list_repair(s, size, head), 3, "repair");
    tap_ok(!pt_shm_list_linked(s, &e[1]->lru) && pt_shm_list_check(s, size, head) == 3,
           "the entry is off the list, which is whole");
    tap_is_str(lru_keys_backwards(s, head), "0 2 5", "back links rebuilt");

    /* Broken chains are reported, not followed. */
    uint64_t saved = e[2]->lru.next;
    e[2]->lru.next = size + 64;
    tap_is_int(pt_shm_list_check(s, size, head), -1, "a link outside the region");
    e[2]->lru.next = pt_shm_list_off(s, &e[5]->lru);
    tap_is_int(pt_shm_list_repair(s, size, head), -1, "a loop");
    e[2]->lru.next = saved;
    tap_is_int(pt_shm_list_repair(s, size, head), 3, "restored");
    tap_ok(consistent(s), "the slab under the lists is consistent");
    munmap(z, size);
}

/* The same zone mapped at two addresses: offsets written through one mapping work
 * through the other. */
static void test_two_mappings(void)
{
    size_t size = region_for(4);
    int fd = memfd_create("pt-slab-test", 0);
    if (fd < 0 || ftruncate(fd, (off_t) size) != 0) {
        tap_ok(0, "memfd_create: %s", strerror(errno));
        return;
    }
    char *a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    tap_ok(a != MAP_FAILED && b != MAP_FAILED && a != b, "two mappings of one zone");

    pt_shm_slab *sa = pt_shm_slab_init(a, size);
    pt_shm_slab *sb = pt_shm_slab_attach(b, size);
    tap_ok(sb == (pt_shm_slab *) (void *) b, "attach through the second mapping");

    pt_shm_list *head = pt_shm_slab_alloc(sa, sizeof(*head));
    pt_shm_list_init(sa, head);
    for (int i = 0; i < 3; i++) {
        entry *e = pt_shm_slab_alloc(sa, sizeof(entry));
        e->key = 10 + i;
        pt_shm_list_insert_head(sa, head, &e->lru);
    }
    pt_shm_list *hb = pt_shm_slab_ptr(sb, pt_shm_slab_off(sa, head));
    tap_is_str(lru_keys(sb, hb), "12 11 10", "the list walks through the other mapping");
    entry *last = lru_entry(pt_shm_list_last(sb, hb));
    tap_ok((char *) last > b && (char *) last < b + size, "nodes found in the other mapping");
    pt_shm_list_remove(sb, &last->lru);
    tap_is_int(pt_shm_slab_free(sb, last), PT_OK, "freed through the other mapping");
    tap_is_str(lru_keys(sa, head), "12 11", "and the first mapping sees it gone");
    tap_ok(consistent(sa), "consistent seen from one");
    tap_ok(consistent(sb), "and from the other");
    munmap(a, size);
    munmap(b, size);
}


/* Reuse across a reload, through the real zone code. */

static int slab_zone_init(pt_shm_zone *z, bool reused)
{
    pt_shm_slab *s = reused ? pt_shm_slab_attach(z->addr, z->size) : NULL;
    if (s == NULL)
        s = pt_shm_slab_init(z->addr, z->size);
    z->data = s;
    return s ? PT_OK : PT_ERROR;
}

static pt_conf *conf_new(pt_conf_ctx *cx, const char *file)
{
    pt_conf *c = calloc(1, sizeof(*c));
    c->pool = pt_pool_create(4096);
    c->file = file;
    memset(cx, 0, sizeof(*cx));
    cx->conf = c;
    cx->pool = c->pool;
    cx->file = file;
    return c;
}

static void conf_del(pt_conf *c)
{
    pt_pool_destroy(c->pool);
    free(c);
}

static void test_reload(void)
{
    pt_conf_ctx cx1, cx2, cx3;
    pt_conf *c1 = conf_new(&cx1, "one.conf");
    pt_shm_zone *z1 = pt_shm_declare(&cx1, "cache", region_for(16), slab_zone_init, NULL);
    tap_is_int(pt_shm_map(c1, NULL), PT_OK, "zone mapped, slab created");
    pt_shm_slab *s1 = z1->data;
    char *kept = pt_shm_slab_alloc(s1, 100);
    strcpy(kept, "survives the reload");
    uint64_t off = pt_shm_slab_off(s1, kept);
    uint64_t allocs = class_for(s1, 100)->allocs;

    pt_conf *c2 = conf_new(&cx2, "two.conf");
    pt_shm_zone *z2 = pt_shm_declare(&cx2, "cache", region_for(16), slab_zone_init, NULL);
    tap_is_int(pt_shm_map(c2, c1), PT_OK, "reload: same name and size");
    pt_shm_slab *s2 = z2->data;
    tap_ok(z2->reused && s2 == s1, "the slab is attached, not re-created");
    tap_is_str(pt_shm_slab_ptr(s2, off), "survives the reload", "contents kept");
    tap_is_int(class_for(s2, 100)->allocs, allocs, "statistics kept");
    tap_ok(pt_shm_slab_alloc(s2, 100) != kept, "the kept slot stays taken");
    tap_ok(consistent(s2), "consistent after the reload");
    pt_shm_release(c1, c2);

    pt_conf *c3 = conf_new(&cx3, "three.conf");
    pt_shm_zone *z3 = pt_shm_declare(&cx3, "cache", region_for(32), slab_zone_init, NULL);
    tap_is_int(pt_shm_map(c3, c2), PT_OK, "reload with a new size");
    pt_shm_slab *s3 = z3->data;
    tap_ok(!z3->reused && s3 && s3->npages == 32 && total_used(s3) == 0,
           "a new zone, an empty slab");
    pt_shm_release(c2, c3);
    pt_shm_release(c3, NULL);
    conf_del(c1);
    conf_del(c2);
    conf_del(c3);
}


/* Death in mid-operation --------------------------------------------------------------- */

static int hook_fd = -1;
static unsigned hook_op, hook_step;

/* In the child: at the chosen point, tell the parent and wait to be killed. */
static void stop_hook(pt_shm_slab *s, unsigned op, unsigned step)
{
    if (op != hook_op || step != hook_step)
        return;
    char c = 'x';
    if (write(hook_fd, &c, 1) != 1)
        _exit(3);
    for (;;)
        pause();
}

/* A child runs alloc (of n bytes) or free (of victim) with the hook set at (op, step);
 * the parent kills it there. Returns true once the child is dead inside the operation. */
static bool kill_inside(pt_shm_slab *s, unsigned op, unsigned step, size_t n, void *victim)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        hook_fd = fds[1];
        hook_op = op;
        hook_step = step;
        pt_shm_slab_test_hook = stop_hook;
        if (op == PT_SHM_SLAB_OP_ALLOC)
            pt_shm_slab_alloc(s, n);
        else
            pt_shm_slab_free(s, victim);
        _exit(2);               /* the hook never returned: not reached */
    }
    close(fds[1]);
    char c;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int st = wait_child(pid);
    return got == 1 && st == 128 + SIGKILL;
}

typedef struct snapshot {
    uint64_t used, allocs, frees, free_pages, repairs;
} snapshot;

static snapshot snap(pt_shm_slab *s, size_t n)
{
    pt_shm_slab_class *k = class_for(s, n);
    return (snapshot) { k->used, k->allocs, k->frees, s->free_pages, s->repairs };
}

/* Allocates every remaining slot of the class of n and checks that none was in use;
 * frees them again. Returns how many there were. */
static unsigned drain_class(pt_shm_slab *s, size_t n, char **held, unsigned nheld)
{
    char *got[PAGE];
    unsigned k = 0;
    bool dup = false;
    while (k < pt_nelems(got) && (got[k] = pt_shm_slab_alloc(s, n)) != NULL) {
        for (unsigned i = 0; i < nheld; i++)
            if (held[i] == got[k])
                dup = true;
        k++;
    }
    for (unsigned i = 0; i < k; i++)
        pt_shm_slab_free(s, got[i]);
    return dup ? 0 : k;
}

static void test_death(void)
{
    enum { PAGES = 3, N = 256 };                 /* class 256: 16 slots a page */
    size_t size = region_for(PAGES);
    char *z = zone_map(size);
    pt_log_level = -1;          /* the repair's warnings */

    /* A child that dies holding the lock outside any operation. */
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    char *a = pt_shm_slab_alloc(s, N);
    pid_t pid = fork();
    if (pid == 0) {
        pt_shm_slab_lock(s);
        _exit(0);
    }
    wait_child(pid);
    snapshot before = snap(s, N);
    tap_is_int(pt_shm_slab_lock(s), PT_AGAIN, "owner died outside an operation: PT_AGAIN");
    tap_ok(consistent(s), "consistent");
    snapshot after = snap(s, N);
    tap_ok(after.used == before.used && after.allocs == before.allocs
           && after.repairs == before.repairs + 1, "nothing changed but the repair count");
    pt_shm_slab_unlock(s);
    tap_is_int(pt_shm_slab_lock(s), PT_OK, "then the lock is clean");
    pt_shm_slab_unlock(s);
    pt_shm_slab_free(s, a);

    /* Alloc, killed at each step: from a partial page, and taking a fresh page. */
    for (int fresh = 0; fresh <= 1; fresh++) {
        for (unsigned step = 1; step <= 3; step++) {
            s = pt_shm_slab_init(z, size);
            char *held[16];
            /* fresh: page 0 is full, the next alloc takes a free page */
            unsigned nheld = fresh ? 16 : 5;
            for (unsigned i = 0; i < nheld; i++)
                held[i] = pt_shm_slab_alloc(s, N);
            before = snap(s, N);
            bool killed = kill_inside(s, PT_SHM_SLAB_OP_ALLOC, step, N, NULL);
            const char *what = fresh ? "alloc taking a free page" : "alloc";
            tap_ok(killed, "%s: child killed at step %u holding the lock", what, step);
            int rc = pt_shm_slab_lock(s);
            tap_is_int(rc, PT_AGAIN, "%s, step %u: the next lock returns PT_AGAIN", what,
                       step);
            tap_ok(consistent(s), "%s, step %u: consistent after the repair", what, step);
            after = snap(s, N);
            tap_ok(after.used == before.used && after.allocs == before.allocs
                   && after.free_pages == before.free_pages, "%s, step %u: allocation undone "
                   "(used %llu, allocs %llu, free pages %llu)", what, step,
                   (unsigned long long) after.used, (unsigned long long) after.allocs,
                   (unsigned long long) after.free_pages);
            pt_shm_slab_unlock(s);
            unsigned avail = drain_class(s, N, held, nheld);
            tap_is_int(avail, PAGES * 16 - nheld, "%s, step %u: every other slot free, none "
                       "handed out twice, none leaked", what, step);
            tap_ok(consistent(s), "%s, step %u: consistent after draining", what, step);
        }
    }

    /* Free, killed at each step: in a partial page, of a full page's slot, of a page's
     * last slot. */
    static const char *const kinds[] = { "free", "free from a full page",
                                         "free of a page's last slot" };
    for (int kind = 0; kind < 3; kind++) {
        for (unsigned step = 1; step <= 3; step++) {
            s = pt_shm_slab_init(z, size);
            char *held[16];
            unsigned nheld = kind == 0 ? 5 : kind == 1 ? 16 : 1;
            for (unsigned i = 0; i < nheld; i++)
                held[i] = pt_shm_slab_alloc(s, N);
            char *victim = held[nheld - 1];
            before = snap(s, N);
            bool killed = kill_inside(s, PT_SHM_SLAB_OP_FREE, step, 0, victim);
            tap_ok(killed, "%s: child killed at step %u holding the lock", kinds[kind], step);
            tap_is_int(pt_shm_slab_lock(s), PT_AGAIN, "%s, step %u: PT_AGAIN", kinds[kind],
                       step);
            tap_ok(consistent(s), "%s, step %u: consistent after the repair", kinds[kind],
                   step);
            after = snap(s, N);
            tap_ok(after.used == before.used - 1 && after.frees == before.frees + 1
                   && after.free_pages == before.free_pages + (kind == 2),
                   "%s, step %u: the free completed", kinds[kind], step);
            pt_shm_slab_unlock(s);
            pt_log_level = -1;
            tap_is_int(pt_shm_slab_free(s, victim), PT_ERROR,
                       "%s, step %u: freeing it again is a double free", kinds[kind], step);
            unsigned avail = drain_class(s, N, held, nheld - 1);
            tap_is_int(avail, PAGES * 16 - (nheld - 1), "%s, step %u: the slot is reusable, "
                       "the others held", kinds[kind], step);
        }
    }

    /* The repair is idempotent: a process that dies in the repair, before it clears the
     * journal, leaves the next owner to repair the same thing again. */
    s = pt_shm_slab_init(z, size);
    a = pt_shm_slab_alloc(s, N);
    kill_inside(s, PT_SHM_SLAB_OP_ALLOC, 3, N, NULL);
    tap_is_int(pt_shm_slab_lock(s), PT_AGAIN, "killed inside alloc again: repaired once");
    before = snap(s, N);
    s->journal.op = PT_SHM_SLAB_OP_ALLOC;
    pt_shm_slab_repair(s);
    after = snap(s, N);
    tap_ok(consistent(s) && after.used == 1 && after.allocs == 1 && after.used == before.used
           && after.allocs == before.allocs && after.free_pages == before.free_pages,
           "repairing the same journal twice gives the same result");
    pt_shm_slab_unlock(s);
    pt_log_level = PT_LOG_INFO;
    munmap(z, size);
}


/* Several processes at once ------------------------------------------------------------ */

typedef struct shared_test {
    uint64_t allocs[8], frees[8], ops[8];
    uint32_t owner[];           /* per 16-byte granule of the page area: child + 1 */
} shared_test;

/* Allocates and frees at random; claims each granule of what it gets in the shared owner
 * map (a granule already claimed means a slot handed out twice). Some rounds take the
 * lock once for several operations, like a module. Exits non-zero on any corruption. */
static int hammer(pt_shm_slab *s, shared_test *t, int me, unsigned rounds)
{
    enum { LIVE = 40 };
    unsigned seed = (unsigned) me * 7919u + 17;
    unsigned char *mine[LIVE] = { 0 };
    size_t len[LIVE] = { 0 };
    char *area = (char *) s + s->pages_off;
    int bad = 0;

    for (unsigned r = 0; r < rounds; r++) {
        int batch = rand_r(&seed) % 8 == 0 ? 4 : 1;
        bool locked = batch > 1;
        if (locked && pt_shm_slab_lock(s) == PT_ERROR)
            return 10;
        for (int b = 0; b < batch; b++) {
            int k = rand_r(&seed) % LIVE;
            if (mine[k]) {
                size_t g0 = (size_t) ((char *) mine[k] - area) / 16;
                size_t cs = pt_shm_slab_class_size(len[k]);
                for (size_t j = 0; j < len[k]; j++)
                    if (mine[k][j] != (unsigned char) (me * 40 + k))
                        bad = 1;
                for (size_t g = g0; g < g0 + cs / 16; g++)
                    __atomic_store_n(&t->owner[g], 0, __ATOMIC_SEQ_CST);
                if ((locked ? pt_shm_slab_free_locked(s, mine[k])
                            : pt_shm_slab_free(s, mine[k])) != PT_OK)
                    bad = 2;
                t->frees[me]++;
                mine[k] = NULL;
            } else {
                unsigned x = (unsigned) rand_r(&seed);
                len[k] = 1 + x % (x & 1 ? 100 : 2000);
                mine[k] = locked ? pt_shm_slab_alloc_locked(s, len[k])
                                 : pt_shm_slab_alloc(s, len[k]);
                if (mine[k] == NULL)
                    continue;
                t->allocs[me]++;
                size_t g0 = (size_t) ((char *) mine[k] - area) / 16;
                size_t cs = pt_shm_slab_class_size(len[k]);
                for (size_t g = g0; g < g0 + cs / 16; g++) {
                    uint32_t none = 0;
                    if (!__atomic_compare_exchange_n(&t->owner[g], &none, (uint32_t) me + 1,
                                                     false, __ATOMIC_SEQ_CST,
                                                     __ATOMIC_SEQ_CST))
                        bad = 3;
                }
                memset(mine[k], me * 40 + k, len[k]);
            }
        }
        if (locked)
            pt_shm_slab_unlock(s);
        __atomic_store_n(&t->ops[me], r + 1, __ATOMIC_SEQ_CST);
    }
    for (int k = 0; k < LIVE; k++) {
        if (mine[k]) {
            size_t g0 = (size_t) ((char *) mine[k] - area) / 16;
            for (size_t g = g0; g < g0 + pt_shm_slab_class_size(len[k]) / 16; g++)
                __atomic_store_n(&t->owner[g], 0, __ATOMIC_SEQ_CST);
            pt_shm_slab_free(s, mine[k]);
            t->frees[me]++;
        }
    }
    return bad;
}

static void test_concurrent(void)
{
    enum { CHILDREN = 4, PAGES = 48, ROUNDS = 20000 };
    size_t size = region_for(PAGES);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    size_t tsize = sizeof(shared_test) + PAGES * PAGE / 16 * sizeof(uint32_t);
    shared_test *t = zone_map(tsize);
    pid_t kids[CHILDREN];

    for (int c = 0; c < CHILDREN; c++) {
        kids[c] = fork();
        if (kids[c] == 0)
            _exit(hammer(s, t, c, ROUNDS));
    }
    int failed = 0;
    for (int c = 0; c < CHILDREN; c++) {
        int st = wait_child(kids[c]);
        if (st != 0) {
            tap_diag("  child %d: %d", c, st);
            failed++;
        }
    }
    tap_is_int(failed, 0, "%d processes allocating and freeing at once: no slot handed out "
               "twice, no contents overwritten", CHILDREN);
    tap_ok(consistent(s), "consistent afterwards");
    uint64_t allocs = 0, frees = 0, slab_allocs = 0, slab_frees = 0, failures = 0;
    for (int c = 0; c < CHILDREN; c++) {
        allocs += t->allocs[c];
        frees += t->frees[c];
    }
    for (unsigned c = 0; c < PT_SHM_SLAB_CLASSES; c++) {
        slab_allocs += s->cls[c].allocs;
        slab_frees += s->cls[c].frees;
        failures += s->cls[c].failures;
    }
    tap_ok(allocs > 10000, "%llu allocations, %llu refused for want of room",
           (unsigned long long) allocs, (unsigned long long) failures);
    tap_ok(slab_allocs == allocs && slab_frees == frees,
           "the slab counted what the processes did");
    tap_ok(total_used(s) == 0 && s->free_pages == PAGES, "all freed: every page free");

    /* The same, with one process killed at an arbitrary moment (holding the lock or not);
     * the others go on, and the slab stays consistent. */
    memset(t, 0, tsize);
    s = pt_shm_slab_init(z, size);
    pt_log_level = -1;          /* the repair's warnings, in whichever process repairs */
    for (int c = 0; c < CHILDREN; c++) {
        kids[c] = fork();
        if (kids[c] == 0)
            _exit(hammer(s, t, c, c == 0 ? 1000000 : ROUNDS));
    }
    int st = 0;
    while (__atomic_load_n(&t->ops[0], __ATOMIC_SEQ_CST) < 3000
           && waitpid(kids[0], &st, WNOHANG) == 0)
        usleep(1000);
    kill(kids[0], SIGKILL);
    tap_is_int(wait_child(kids[0]), 128 + SIGKILL, "one process killed mid-run");
    failed = 0;
    for (int c = 1; c < CHILDREN; c++)
        if (wait_child(kids[c]) != 0)
            failed++;
    tap_is_int(failed, 0, "the others finished without corruption");
    int rc = pt_shm_slab_lock(s);
    tap_ok(rc == PT_OK || rc == PT_AGAIN, "the lock is usable (repaired %llu times)",
           (unsigned long long) s->repairs);
    tap_ok(consistent(s), "consistent");
    tap_ok(total_used(s) <= 40, "only what the killed process held is still used (%llu)",
           (unsigned long long) total_used(s));
    pt_shm_slab_unlock(s);
    pt_log_level = PT_LOG_INFO;
    munmap(t, tsize);
    munmap(z, size);
}

/* Mark and sweep: the slots a keep function refuses are freed, the others stay. */
static void *sweep_kept[512];
static unsigned sweep_nkept, sweep_calls;

static bool sweep_keep(void *arg, void *slot)
{
    (void) arg;
    sweep_calls++;
    for (unsigned i = 0; i < sweep_nkept; i++)
        if (sweep_kept[i] == slot)
            return true;
    return false;
}

static void test_sweep(void)
{
    size_t size = region_for(40);
    char *z = zone_map(size);
    pt_shm_slab *s = pt_shm_slab_init(z, size);
    void *all[512];
    unsigned n = 0;
    sweep_nkept = sweep_calls = 0;
    for (unsigned i = 0; i < 300; i++) {
        size_t want = (size_t) 16 << (i % 9);       /* every class */
        all[n] = pt_shm_slab_alloc(s, want);
        if (all[n] == NULL)
            break;
        if (i % 3 == 0)
            sweep_kept[sweep_nkept++] = all[n];
        n++;
    }
    uint64_t used = total_used(s);
    tap_is_int(used, n, "%u slots handed out", n);
    uint64_t freed = pt_shm_slab_sweep_locked(s, sweep_keep, NULL);
    tap_is_int(freed, n - sweep_nkept, "sweep freed every slot not kept");
    tap_is_int(sweep_calls, n, "keep was asked once per slot in use");
    tap_is_int(total_used(s), sweep_nkept, "the kept ones are still in use");
    tap_ok(consistent(s), "consistent after the sweep");
    bool all_kept_free_fails = true;
    for (unsigned i = 0; i < sweep_nkept; i++)
        if (pt_shm_slab_free(s, sweep_kept[i]) != PT_OK)
            all_kept_free_fails = false;
    tap_ok(all_kept_free_fails, "the kept slots are still allocated (each frees once)");
    tap_is_int(total_used(s), 0, "then nothing is in use");
    tap_ok(consistent(s), "consistent at the end");
    munmap(z, size);
}

int main(void)
{
    alarm(120);                 /* a corrupted list could loop: fail rather than hang */
    test_init();
    test_classes();
    test_bad_free();
    test_exhaustion();
    test_random();
    test_lists();
    test_two_mappings();
    test_reload();
    test_death();
    test_concurrent();
    test_sweep();
    return tap_done();
}
