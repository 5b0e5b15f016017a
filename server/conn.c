/* Client connections: accepting, the input buffer, the output queue, the timer, closing.
 * A connection knows its transport and its session, not HTTP: the accept pipeline runs
 * first, then the listener's session (h1) gets the connection through its ops.
 * Idle keep-alive connections hold no buffer, no pool and no output block: all go back to
 * small per-worker free lists, so 10,000 idle clients cost 10,000 pt_conn structs (with
 * their session's state inline) and nothing more. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "http_core.h"

#define PT_FREE_BUFS   64
#define PT_FREE_POOLS  64
#define PT_POOL_CHUNK  8192
#define PT_FREE_OUT    64
static char    *free_bufs[PT_FREE_BUFS];
static unsigned nfree_bufs;
static pt_pool *free_pools[PT_FREE_POOLS];
static unsigned nfree_pools;
static pt_out_block *free_out[PT_FREE_OUT];
static unsigned nfree_out;

static void conn_io(pt_io *io, uint32_t events)
{
    pt_conn *c = io->data;
    pt_xprt_events(&c->x, events);
    if (c->proto)
        c->proto->event(c, events);
    else
        pt_accept_event(c, events);
}

static void conn_timeout(pt_timer *t)
{
    pt_conn *c = t->data;
    if (c->proto)
        c->proto->event(c, 0);      /* events == 0: the timer fired */
    else
        pt_accept_event(c, 0);
}

static void conn_free(pt_defer *d)
{
    pt_conn *c = pt_container_of(d, pt_conn, free_later);
    free(c);
}

void pt_conn_set_peer(pt_conn *c, const struct sockaddr *sa, socklen_t len)
{
    if (len > sizeof(c->peer))
        len = sizeof(c->peer);
    memcpy(&c->peer, sa, len);
    c->peerlen = len;

    const void *a;
    if (c->peer.sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = &c->peer.in6;
        a = &s6->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], c->peer_ip, sizeof(c->peer_ip));
            c->peer_ip_len = (unsigned) strlen(c->peer_ip);
            return;
        }
    } else if (c->peer.sa.sa_family == AF_INET) {
        a = &c->peer.in4.sin_addr;
    } else {
        strcpy(c->peer_ip, "unix");
        c->peer_ip_len = 4;
        return;
    }
    if (inet_ntop(c->peer.sa.sa_family, a, c->peer_ip, sizeof(c->peer_ip)) == NULL)
        strcpy(c->peer_ip, "?");
    c->peer_ip_len = (unsigned) strlen(c->peer_ip);
}

void pt_conn_accepted(pt_listener *l, int fd, struct sockaddr *sa, socklen_t len)
{
    /* the session's state lives right after the connection: one allocation */
    const pt_session_ops *s = &pt_h1_session;
    pt_conn *c = calloc(1, sizeof(*c) + s->size);
    if (c == NULL) {
        pt_log(PT_LOG_ALERT, "out of memory accepting a connection");
        pt_xprt tmp;
        pt_xprt_tcp_init(&tmp, fd);
        tmp.ops->close(&tmp);
        return;
    }
    pt_xprt_tcp_init(&c->x, fd);
    c->x.io.fn = conn_io;
    c->x.io.data = c;
    c->listener = l;
    c->free_later.fn = conn_free;
    pt_conn_set_peer(c, sa, len);
    pt_timer_init(&c->timer, conn_timeout, c);
    if (pt_io_add(pt_loop_cur, &c->x.io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != PT_OK) {
        c->x.ops->close(&c->x);
        free(c);
        return;
    }
    pt_worker_conn_opened(c);
    /* data usually arrives with the connection: try it now, saving an epoll round trip */
    c->x.readable = true;
    pt_accept_start(c);
}

/* The protocol sessions, by the name ALPN uses for them; the first is the one a client
 * that names none gets (HTTP/1.1). */
static const struct {
    const char           *alpn;
    const pt_session_ops *ops;
} sessions[] = {
    { "http/1.1", &pt_h1_session },
#ifdef PT_HAVE_NGHTTP2
    { "h2", &pt_h2_session },
#endif
};

const pt_session_ops *pt_conn_session_for_alpn(const unsigned char *proto, unsigned len)
{
    if (len == 0)
        return sessions[0].ops;
    for (unsigned i = 0; i < pt_nelems(sessions); i++)
        if (strlen(sessions[i].alpn) == len && memcmp(sessions[i].alpn, proto, len) == 0)
            return sessions[i].ops;
    return NULL;
}

void pt_conn_start_session(pt_conn *c, const pt_session_ops *s)
{
    /* the inline room is h1's (the idle footprint that matters); a session with more
     * state (h2) has size 0 and allocates its own in start */
    PT_ASSERT(c->proto == NULL && c->session == NULL && s->size <= pt_h1_session.size);
    c->proto = s;
    c->session = s->size ? (void *) (c + 1) : NULL;
    c->proto->start(c);
}

void pt_conn_set_timer(pt_conn *c, uint32_t ms)
{
    if (ms == 0)
        pt_timer_del(&pt_loop_cur->timers, &c->timer);
    else
        pt_loop_timer(pt_loop_cur, &c->timer, ms);
}

/* ---- input ---- */

int pt_conn_alloc_in(pt_conn *c)
{
    if (c->in.start)
        return PT_OK;
    char *b = nfree_bufs ? free_bufs[--nfree_bufs] : malloc(PT_CONN_BUF_SIZE);
    if (b == NULL)
        return PT_ERROR;
    c->in.start = c->in.pos = c->in.last = b;
    c->in.end = b + PT_CONN_BUF_SIZE;
    c->in_owned = false;
    return PT_OK;
}

static void buf_put(char *b, bool owned)
{
    if (!owned && nfree_bufs < PT_FREE_BUFS)
        free_bufs[nfree_bufs++] = b;
    else
        free(b);
}

static void release_in(pt_conn *c)
{
    if (c->in.start == NULL)
        return;
    buf_put(c->in.start, c->in_owned);
    c->in.start = c->in.pos = c->in.last = c->in.end = NULL;
    c->in_owned = false;
}

/* Moves the buffer to a bigger allocation. What points into it (a session's parsed
 * strings) is the caller's to move: it gets the old bounds. */
int pt_conn_grow_in(pt_conn *c, size_t size, char **old_start, char **old_end)
{
    if (size <= pt_buf_size(&c->in))
        return PT_DECLINED;
    char *nb = malloc(size);
    if (nb == NULL)
        return PT_ERROR;
    char *ob = c->in.start;
    size_t used = (size_t) (c->in.last - ob);
    memcpy(nb, ob, used);
    *old_start = ob;
    *old_end = c->in.end;
    c->in.pos = nb + (c->in.pos - ob);
    c->in.last = nb + used;
    c->in.start = nb;
    c->in.end = nb + size;
    buf_put(ob, c->in_owned);     /* not read again: the caller only compares addresses */
    c->in_owned = true;
    return PT_OK;
}

ssize_t pt_conn_read(pt_conn *c)
{
    ssize_t n = pt_xprt_read(&c->x, &c->in, SIZE_MAX);
    if (n > 0 && pt_stats_mine)
        pt_stats_mine->bytes_in += (uint64_t) n;
    return n;
}

/* ---- pools ---- */

pt_pool *pt_conn_pool(pt_conn *c)
{
    if (c->pool == NULL)
        c->pool = nfree_pools ? free_pools[--nfree_pools] : pt_pool_create(PT_POOL_CHUNK);
    return c->pool;
}

void pt_conn_release_pool(pt_conn *c)
{
    if (c->pool == NULL)
        return;
    pt_pool_reset(c->pool);
    if (nfree_pools < PT_FREE_POOLS)
        free_pools[nfree_pools++] = c->pool;
    else
        pt_pool_destroy(c->pool);
    c->pool = NULL;
}

/* ---- output ---- */

static pt_out_block *out_block_get(void)
{
    pt_out_block *b = nfree_out ? free_out[--nfree_out] : malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    b->next = NULL;
    b->first = b->n = 0;
    b->scratch_len = 0;
    return b;
}

static void out_block_free(pt_out_block *b)
{
    if (nfree_out < PT_FREE_OUT)
        free_out[nfree_out++] = b;
    else
        free(b);
}

static void out_release(pt_out *o)
{
    while (o->head) {
        pt_out_block *b = o->head;
        o->head = b->next;
        out_block_free(b);
    }
    o->tail = NULL;
    o->pending = 0;
}

/* A block with room for another iovec at the end of the chain. */
static pt_out_block *out_tail(pt_out *o)
{
    if (o->tail && o->tail->n < PT_OUT_IOV)
        return o->tail;
    pt_out_block *b = out_block_get();
    if (b == NULL)
        return NULL;
    if (o->tail)
        o->tail->next = b;
    else
        o->head = b;
    o->tail = b;
    return b;
}

int pt_out_add(pt_conn *c, const void *p, size_t n)
{
    pt_out *o = &c->out;
    if (n == 0)
        return PT_OK;
    pt_out_block *t = o->tail;
    if (t && t->n > t->first) {
        struct iovec *lastv = &t->iov[t->n - 1];
        if ((const char *) lastv->iov_base + lastv->iov_len == p) {
            lastv->iov_len += n;        /* contiguous with the previous piece */
            o->pending += n;
            return PT_OK;
        }
    }
    if ((t = out_tail(o)) == NULL)
        return PT_ERROR;
    t->iov[t->n].iov_base = (void *) p;
    t->iov[t->n].iov_len = n;
    t->n++;
    o->pending += n;
    return PT_OK;
}

/* Chunk-size lines and the like: scratch in the queue's last block, valid until the
 * queue drains (a request's pool would grow without bound over a long stream). */
char *pt_out_small(pt_conn *c, size_t n)
{
    pt_out *o = &c->out;
    if (n > PT_OUT_SCRATCH)
        return NULL;
    pt_out_block *t = o->tail;
    if (t == NULL || t->scratch_len + n > PT_OUT_SCRATCH) {
        if ((t = out_block_get()) == NULL)
            return NULL;
        if (o->tail)
            o->tail->next = t;
        else
            o->head = t;
        o->tail = t;
    }
    char *p = t->scratch + t->scratch_len;
    t->scratch_len += n;
    return p;
}

int pt_conn_flush(pt_conn *c)
{
    pt_out *o = &c->out;
    while (o->pending) {
        pt_out_block *b = o->head;
        if (!c->x.writable)
            return PT_AGAIN;
        ssize_t n = pt_xprt_writev(&c->x, &b->iov[b->first], (int) (b->n - b->first));
        if (n == PT_AGAIN)
            return PT_AGAIN;
        if (n < 0)
            return PT_ERROR;
        if (pt_stats_mine)
            pt_stats_mine->bytes_out += (uint64_t) n;
        o->sent += (uint64_t) n;
        o->pending -= (size_t) n;
        size_t left = (size_t) n;
        while (left) {
            struct iovec *v = &b->iov[b->first];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                b->first++;
            } else {
                v->iov_base = (char *) v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
        if (b->first == b->n && b->next) {
            o->head = b->next;          /* a block written out: on to the next one */
            out_block_free(b);
            continue;
        }
        if (o->pending)
            c->x.writable = false;      /* partial write: the transport is full */
    }
    /* drained: keep one block for what comes next, emptied */
    if (o->head) {
        while (o->head->next) {
            pt_out_block *b = o->head;
            o->head = b->next;
            out_block_free(b);
        }
        o->tail = o->head;
        o->head->first = o->head->n = 0;
        o->head->scratch_len = 0;
    }
    return PT_OK;
}

/* ---- idle and close ---- */

void pt_conn_release_idle(pt_conn *c)
{
    if (c->in.start && c->in.pos == c->in.last)
        release_in(c);
    pt_conn_release_pool(c);
    if (c->out.pending == 0)
        out_release(&c->out);
}

void pt_conn_free_lists_trim(void)
{
    while (nfree_bufs)
        free(free_bufs[--nfree_bufs]);
    while (nfree_pools)
        pt_pool_destroy(free_pools[--nfree_pools]);
    while (nfree_out)
        free(free_out[--nfree_out]);
}

void pt_conn_close(pt_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    if (c->proto && c->proto->release)
        c->proto->release(c);
    if (c->accepted_by)
        pt_accept_closed(c);
    pt_timer_del(&pt_loop_cur->timers, &c->timer);
    pt_xprt_close(&c->x);
    pt_conn_release_pool(c);
    release_in(c);
    out_release(&c->out);
    pt_worker_conn_closed(c);
    pt_defer_add(pt_loop_cur, &c->free_later);
}
