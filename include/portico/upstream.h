#ifndef PT_UPSTREAM_H
#define PT_UPSTREAM_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/upstream-t.h"

/* Config: parses `upstreams = ( ... )` into an array (setter for a module's key table;
 * base + offset points at a pt_upstream_list). */
typedef struct pt_upstream_list {
    pt_upstream *ups;
    unsigned     n;
} pt_upstream_list;

int pt_upstream_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base);
pt_upstream *pt_upstream_find(pt_upstream_list *l, const char *name);

/* Worker side. */
int  pt_upstream_worker_init(pt_upstream_list *l);
pt_upstream_rt *pt_upstream_rt_of(const pt_upstream *up);
/* Picks a server not in tried (bitmask by index); -1 if none is left. */
int  pt_upstream_pick(const pt_upstream *up, uint64_t tried);
/* An idle pooled connection to server, or NULL. */
pt_upconn *pt_upstream_pool_get(const pt_upstream *up, unsigned server);
/* Starts a connection; on failure returns NULL with errno set. The handler gets
 * EPOLLOUT when the connect completes (check pt_upconn_connected) or fails. */
pt_upconn *pt_upstream_connect(const pt_upstream *up, unsigned server, pt_upconn_fn fn,
                               void *owner);
/* Is the connect finished? PT_OK, PT_AGAIN, or PT_ERROR with errno. */
int  pt_upconn_connected(pt_upconn *uc);
/* Gives the connection back: pooled when reuse is true and the pool has room. */
void pt_upconn_release(pt_upconn *uc, bool reuse);
void pt_upconn_close(pt_upconn *uc);
void pt_upconn_set_timer(pt_upconn *uc, uint32_t ms);
/* recv into uc->in: >0 bytes, 0 EOF, -1 error (errno), -2 EAGAIN, -3 buffer full. */
ssize_t pt_upconn_read(pt_upconn *uc);
ssize_t pt_upconn_read_max(pt_upconn *uc, size_t max);   /* at most max bytes */
/* writev: bytes written, -1 error (errno), -2 EAGAIN. */
ssize_t pt_upconn_writev(pt_upconn *uc, const struct iovec *iov, int n);
int  pt_upconn_alloc_in(pt_upconn *uc);
void pt_upstream_worker_exit(void);

#endif
