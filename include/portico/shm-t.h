/* Shared memory: zones mapped by the master before fork, inherited by every worker.
 * A zone declared again by a reload with the same name and size keeps its mapping and
 * contents; workers of both generations see the same bytes. */
#ifndef PT_SHM_T_H
#define PT_SHM_T_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pt_shm_zone pt_shm_zone;

/* Called in the master once the zone is mapped; reused = contents survive from the
 * previous generation (validate rather than wipe). A zone backed by a file (path) that
 * is not reused has z->persisted set when the file already had the zone's size: its
 * contents are what an earlier process left, to be validated, never trusted. */
typedef int (*pt_shm_init_fn)(pt_shm_zone *z, bool reused);

struct pt_shm_zone {
    pt_shm_zone    *next;
    char            name[64];
    size_t          size;
    void           *addr;
    bool            reused;
    const char     *path;       /* backing file (pt_shm_declare_file), NULL: memory only */
    bool            persisted;  /* mapped from a file of the right size (not a reload) */
    bool            file_busy;  /* path was locked by another process: memory only */
    pt_shm_init_fn  init;
    void           *data;       /* the declaring module's */
    unsigned        refs;       /* generations using the mapping (master side) */
};

/* A process-shared robust mutex: a worker that dies holding it does not block the rest. */
typedef struct pt_shm_mutex {
    pthread_mutex_t m;
} pt_shm_mutex;

/* Allocator inside a zone (first fit over a free list with coalescing, header-tagged).
 * It lives at the start of the zone; all offsets are relative, so the mapping may sit at
 * different addresses in different processes. */
typedef struct pt_shm_pool {
    uint64_t     magic;
    pt_shm_mutex lock;
    size_t       size;        /* bytes managed after the header */
    size_t       used;
    size_t       free_head;   /* offset of the first free block, 0 = none */
    uint64_t     allocs, frees, failures;
} pt_shm_pool;

/* Per-worker counters: one slot per worker, written only by that worker, summed by readers. */
#define PT_MAX_WORKERS 128

typedef struct pt_worker_stats {
    uint64_t generation;
    int64_t  pid;
    uint64_t accepted;
    uint64_t active;         /* open connections */
    uint64_t requests;
    uint64_t status[6];      /* responses by class: [1]=1xx .. [5]=5xx, [0]=no response */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t refused;        /* requests refused by the parser or limits */
    uint64_t busy;           /* connections with a request in progress (the rest of
                              * "active" are idle: between requests) */
} __attribute__((aligned(64))) pt_worker_stats;    /* slots never share a cache line */

typedef struct pt_stats {
    uint64_t        magic;
    uint64_t        started;  /* realtime ms when the master started */
    uint64_t        reloads;          /* successful: a new generation started */
    uint64_t        reloads_failed;   /* the old configuration kept */
    uint64_t        generation;       /* the configuration generation serving now */
    uint64_t        worker_restarts;  /* workers that died unexpectedly and were replaced */
    uint64_t        reload_last;      /* realtime ms of the last reload attempt */
    uint32_t        reload_last_ok;   /* its outcome: 1 ok, 0 failed */
    /* Odd while the master folds an exited worker's counters into `retired` (and its
     * metrics row, metrics-t.h): a reader summing slots retries until it reads the same
     * even value before and after, so a total never counts a worker twice or not at all. */
    uint32_t        fold_seq;
    pt_worker_stats worker[PT_MAX_WORKERS * 2];  /* two generations may overlap */
    /* Counters of workers that have exited, folded in by the master when it reaps them,
     * so that sums over worker[] + retired never go backwards ("active" stays 0). */
    pt_worker_stats retired;
} pt_stats;

#endif
