/* Client connections: buffers, socket I/O, the output queue, timers, closing.
 * Idle keep-alive connections hold no buffer and no pool: both go back to small per-worker
 * free lists, so 10,000 idle clients cost 10,000 pt_conn structs and nothing more. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

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

static void out_block_put(pt_out *o);

static void conn_io(pt_io *io, uint32_t events)
{
    pt_http_conn_event(io->data, events);
}

static void conn_timeout(pt_timer *t)
{
    pt_conn *c = t->data;
    pt_http_conn_event(c, 0);       /* events == 0: the timer fired */
}

static void conn_free(pt_defer *d)
{
    pt_conn *c = pt_container_of(d, pt_conn, free_later);
    free(c);
}

static void peer_text(pt_conn *c)
{
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
    pt_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        pt_log(PT_LOG_ALERT, "out of memory accepting a connection");
        close(fd);
        return;
    }
    /* TCP_NODELAY comes from the listening socket (listen.c) */
    c->io.fd = fd;
    c->io.fn = conn_io;
    c->io.data = c;
    c->listener = l;
    c->state = PT_CONN_HEAD;
    c->free_later.fn = conn_free;
    if (len > sizeof(c->peer))
        len = sizeof(c->peer);
    memcpy(&c->peer, sa, len);
    c->peerlen = len;
    peer_text(c);
    pt_timer_init(&c->timer, conn_timeout, c);
    if (pt_io_add(pt_loop_cur, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != PT_OK) {
        close(fd);
        free(c);
        return;
    }
    pt_worker_conn_opened(c);
    /* the first request's head must arrive within the header timeout, counted from now */
    pt_conn_set_timer(c, pt_wconf->limits.client_header_timeout_ms);
    /* data usually arrives with the connection: try it now, saving an epoll round trip */
    c->readable = true;
    pt_http_read_head(c);
}

void pt_conn_set_timer(pt_conn *c, uint32_t ms)
{
    if (ms == 0)
        pt_timer_del(&pt_loop_cur->timers, &c->timer);
    else
        pt_loop_timer(pt_loop_cur, &c->timer, ms);
}

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

static void release_in(pt_conn *c)
{
    if (c->in.start == NULL)
        return;
    if (!c->in_owned && nfree_bufs < PT_FREE_BUFS)
        free_bufs[nfree_bufs++] = c->in.start;
    else
        free(c->in.start);
    c->in.start = c->in.pos = c->in.last = c->in.end = NULL;
    c->in_owned = false;
}

pt_pool *pt_conn_pool(pt_conn *c)
{
    if (c->pool == NULL)
        c->pool = nfree_pools ? free_pools[--nfree_pools] : pt_pool_create(PT_POOL_CHUNK);
    return c->pool;
}

static void release_pool(pt_conn *c)
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

void pt_conn_release_idle(pt_conn *c)
{
    if (c->in.start && c->in.pos == c->in.last)
        release_in(c);
    release_pool(c);
    if (c->out.pending == 0)
        out_block_put(&c->out);
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

/* Moves the buffer to a bigger allocation. Strings of the request head point into it, so
 * they are moved along. */
int pt_conn_grow_in(pt_conn *c, size_t size)
{
    if (size <= pt_buf_size(&c->in))
        return PT_OK;
    char *nb = malloc(size);
    if (nb == NULL)
        return PT_ERROR;
    char *ob = c->in.start;
    size_t used = (size_t) (c->in.last - ob);
    memcpy(nb, ob, used);
    uintptr_t lo = (uintptr_t) ob, hi = (uintptr_t) c->in.end;
#define MOVE(p) do { \
        if ((p) && (uintptr_t) (p) >= lo && (uintptr_t) (p) <= hi) \
            (p) = nb + ((uintptr_t) (p) - lo); \
    } while (0)
    pt_request *r = c->req;
    if (r) {
        MOVE(r->head.method.data);
        MOVE(r->head.target.data);
        MOVE(r->head.reason.data);
        for (uint32_t i = 0; i < r->head.nheaders; i++) {
            MOVE(r->head.headers[i].name.data);
            MOVE(r->head.headers[i].value.data);
        }
        MOVE(r->info.path.data);
        MOVE(r->info.query.data);
        MOVE(r->info.authority.data);
        MOVE(r->info.host.data);
        MOVE(r->body_unread);
    }
    MOVE(c->body_base);
#undef MOVE
    c->in.pos = nb + (c->in.pos - ob);
    c->in.last = nb + used;
    c->in.start = nb;
    c->in.end = nb + size;
    if (c->in_owned)
        free(ob);
    else if (nfree_bufs < PT_FREE_BUFS)
        free_bufs[nfree_bufs++] = ob;
    else
        free(ob);
    c->in_owned = true;
    return PT_OK;
}

ssize_t pt_conn_read(pt_conn *c)
{
    size_t room = pt_buf_free(&c->in);
    if (room == 0)
        return -3;
    for (;;) {
        ssize_t n = recv(c->io.fd, c->in.last, room, 0);
        if (n > 0) {
            c->in.last += n;
            if (pt_stats_mine)
                pt_stats_mine->bytes_in += (uint64_t) n;
            if ((size_t) n < room && !c->peer_closed)
                c->readable = false;    /* short read: the socket is drained (edge-triggered) */
            return n;
        }
        if (n == 0) {
            c->peer_closed = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            c->readable = false;
            return -2;
        }
        c->peer_closed = true;
        return -1;
    }
}

static int out_block_get(pt_out *o)
{
    if (o->iov)
        return PT_OK;
    pt_out_block *b = nfree_out ? free_out[--nfree_out] : malloc(sizeof(*b));
    if (b == NULL)
        return PT_ERROR;
    o->iov = b->iov;
    o->scratch = b->scratch;
    o->first = o->n = 0;
    o->scratch_len = 0;
    return PT_OK;
}

static void out_block_put(pt_out *o)
{
    if (o->iov == NULL)
        return;
    pt_out_block *b = pt_container_of(o->iov, pt_out_block, iov);
    if (nfree_out < PT_FREE_OUT)
        free_out[nfree_out++] = b;
    else
        free(b);
    o->iov = NULL;
    o->scratch = NULL;
    o->first = o->n = 0;
    o->pending = o->scratch_len = 0;
}

int pt_out_add(pt_conn *c, const void *p, size_t n)
{
    pt_out *o = &c->out;
    if (n == 0)
        return PT_OK;
    if (o->iov == NULL && out_block_get(o) != PT_OK)
        return PT_ERROR;
    if (o->n > 0) {
        struct iovec *lastv = &o->iov[o->n - 1];
        if ((const char *) lastv->iov_base + lastv->iov_len == p) {
            lastv->iov_len += n;        /* contiguous with the previous piece */
            o->pending += n;
            return PT_OK;
        }
    }
    if (o->n == PT_OUT_IOV) {
        if (pt_conn_flush(c) == PT_ERROR)
            return PT_ERROR;
        if (o->n == PT_OUT_IOV)
            return PT_AGAIN;
    }
    o->iov[o->n].iov_base = (void *) p;
    o->iov[o->n].iov_len = n;
    o->n++;
    o->pending += n;
    return PT_OK;
}

/* Chunk-size lines and the like: a small scratch in the connection, valid until the queue
 * empties (a request's pool would grow without bound over a long chunked stream). */
char *pt_out_small(pt_conn *c, size_t n)
{
    pt_out *o = &c->out;
    if (o->iov == NULL && out_block_get(o) != PT_OK)
        return NULL;
    if (o->scratch_len + n > PT_OUT_SCRATCH)
        return c->req ? pt_palloc(c->req->pool, n) : NULL;
    char *p = o->scratch + o->scratch_len;
    o->scratch_len += n;
    return p;
}

int pt_conn_flush(pt_conn *c)
{
    pt_out *o = &c->out;
    while (o->pending) {
        if (!c->writable)
            return PT_AGAIN;
        ssize_t n = writev(c->io.fd, &o->iov[o->first], (int) (o->n - o->first));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                c->writable = false;
                return PT_AGAIN;
            }
            c->peer_closed = true;
            return PT_ERROR;
        }
        if (pt_stats_mine)
            pt_stats_mine->bytes_out += (uint64_t) n;
        if (c->req)
            c->req->bytes_sent += (uint64_t) n;
        o->pending -= (size_t) n;
        size_t left = (size_t) n;
        while (left) {
            struct iovec *v = &o->iov[o->first];
            if (left >= v->iov_len) {
                left -= v->iov_len;
                o->first++;
            } else {
                v->iov_base = (char *) v->iov_base + left;
                v->iov_len -= left;
                left = 0;
            }
        }
        if (o->pending)
            c->writable = false;        /* partial write: the socket buffer is full */
    }
    o->first = o->n = 0;
    o->scratch_len = 0;
    return PT_OK;
}

/* Closing with unread input makes the kernel send RST, which can destroy the response
 * still in flight to the client. So: half-close, read and drop for a while, then close. */
void pt_conn_linger(pt_conn *c)
{
    if (c->peer_closed || c->io.fd < 0) {
        pt_conn_close(c);
        return;
    }
    shutdown(c->io.fd, SHUT_WR);
    c->state = PT_CONN_LINGER;
    c->linger_until = PT_LINGER_BYTES;
    pt_conn_set_timer(c, PT_LINGER_MS);
    pt_http_conn_event(c, EPOLLIN);
}

void pt_conn_close(pt_conn *c)
{
    if (c->state == PT_CONN_CLOSED)
        return;
    c->state = PT_CONN_CLOSED;
    pt_timer_del(&pt_loop_cur->timers, &c->timer);
    if (c->io.fd >= 0) {
        close(c->io.fd);        /* also removes it from the epoll set */
        c->io.fd = -1;
    }
    c->req = NULL;
    release_pool(c);
    release_in(c);
    out_block_put(&c->out);
    pt_worker_conn_closed(c);
    pt_defer_add(pt_loop_cur, &c->free_later);
}
