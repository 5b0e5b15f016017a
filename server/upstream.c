/* Upstream groups: their configuration, and per worker the balancing state, the pool of
 * idle keep-alive connections, connecting, and socket I/O on origin connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/upstream.h"

/* ------------------------------------------------------------------ configuration */

static int set_server_address(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base)
{
    pt_upstream_server *sv = base;
    const char *text = config_setting_get_string(s);
    if (text == NULL)
        return pt_conf_error(cx, s, "must be a string like \"127.0.0.1:9001\"");
    if (pt_conf_parse_addr(cx, s, text, true, &sv->addr, &sv->addrlen) != PT_OK)
        return PT_ERROR;
    sv->address = pt_pstrndup(cx->pool, text, strlen(text));
    sv->authority = (pt_str) { strlen(sv->address), sv->address };
    char host[INET6_ADDRSTRLEN];
    unsigned port;
    if (sv->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) &sv->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(sv->addr_text, sizeof(sv->addr_text), "[%s]:%u", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *) &sv->addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(sv->addr_text, sizeof(sv->addr_text), "%s:%u", host, port);
    }
    return PT_OK;
}

static const pt_conf_key server_keys[] = {
    { "address", 0, set_server_address, 0, 0, 0, NULL },
    { "weight", 0, pt_conf_set_uint32, offsetof(pt_upstream_server, weight), 1, 1000, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_servers(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream *up = base;
    if (!config_setting_is_list(s) && !config_setting_is_array(s))
        return pt_conf_error(cx, s, "must be a list of servers: ( { address = \"...\"; } )");
    int n = config_setting_length(s);
    if (n < 1)
        return pt_conf_error(cx, s, "needs at least one server");
    if (n > PT_UPSTREAM_MAX_SERVERS)
        return pt_conf_error(cx, s, "at most %d servers per upstream", PT_UPSTREAM_MAX_SERVERS);
    up->servers = pt_pcalloc(cx->pool, (size_t) n * sizeof(*up->servers));
    if (up->servers == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        pt_upstream_server *sv = &up->servers[i];
        sv->index = (unsigned) i;
        sv->weight = 1;
        sv->line = (int) pt_conf_setting_line(cx, e);
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "a server must be a group: { address = \"host:port\"; }");
        if (pt_conf_parse_group(cx, e, server_keys, sv) != PT_OK)
            return PT_ERROR;
        if (sv->address == NULL)
            return pt_conf_error(cx, e, "server needs an address");
    }
    up->nservers = (unsigned) n;
    return PT_OK;
}

static const pt_conf_key upstream_keys[] = {
    { "name", 0, pt_conf_set_str, offsetof(pt_upstream, name), 0, 0, NULL },
    { "servers", 0, set_servers, 0, 0, 0, NULL },
    { "keepalive", 0, pt_conf_set_uint32, offsetof(pt_upstream, keepalive), 0, 100000, NULL },
    { "retries", 0, pt_conf_set_uint32, offsetof(pt_upstream, retries), 0,
      PT_UPSTREAM_MAX_SERVERS, NULL },
    { "connect_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, connect_timeout_ms),
      1, 86400000, NULL },
    { "read_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, read_timeout_ms),
      1, 86400000, NULL },
    { "write_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, write_timeout_ms),
      1, 86400000, NULL },
    { "idle_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, idle_timeout_ms),
      1, 86400000, NULL },
    { "tunnel_timeout_ms", 0, pt_conf_set_uint32, offsetof(pt_upstream, tunnel_timeout_ms),
      1, 86400000, NULL },
    { "buffer_size", 0, pt_conf_set_uint32, offsetof(pt_upstream, buffer_size),
      4096, 1048576, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_upstream_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_upstream_list *l = (pt_upstream_list *) ((char *) base + k->offset);
    if (!config_setting_is_list(s))
        return pt_conf_error(cx, s, "must be a list of groups: ( { name = \"app\"; servers = (...); } )");
    int n = config_setting_length(s);
    l->ups = pt_pcalloc(cx->pool, (size_t) (n ? n : 1) * sizeof(*l->ups));
    if (l->ups == NULL)
        return pt_conf_error(cx, s, "out of memory");
    for (int i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned) i);
        pt_upstream *up = &l->ups[i];
        up->index = (unsigned) i;
        up->line = (int) pt_conf_setting_line(cx, e);
        up->keepalive = 32;
        up->retries = 1;
        up->connect_timeout_ms = 2000;
        up->read_timeout_ms = 30000;
        up->write_timeout_ms = 30000;
        up->idle_timeout_ms = 60000;
        up->tunnel_timeout_ms = 3600000;
        up->buffer_size = 65536;
        if (!config_setting_is_group(e))
            return pt_conf_error(cx, e, "an upstream must be a group: { name = ...; servers = (...); }");
        if (pt_conf_parse_group(cx, e, upstream_keys, up) != PT_OK)
            return PT_ERROR;
        if (up->name == NULL || up->name[0] == '\0')
            return pt_conf_error(cx, e, "upstream needs a name");
        if (up->servers == NULL)
            return pt_conf_error(cx, e, "upstream \"%s\" needs servers", up->name);
        for (int j = 0; j < i; j++)
            if (strcmp(l->ups[j].name, up->name) == 0)
                return pt_conf_error(cx, e, "upstream \"%s\" is already defined at line %d",
                                     up->name, l->ups[j].line);
    }
    l->n = (unsigned) n;
    return PT_OK;
}

pt_upstream *pt_upstream_find(pt_upstream_list *l, const char *name)
{
    for (unsigned i = 0; i < l->n; i++)
        if (strcmp(l->ups[i].name, name) == 0)
            return &l->ups[i];
    return NULL;
}

/* ------------------------------------------------------------------ worker state */

static pt_upconn       *all_conns;      /* every open connection: pooled or in use */
static pt_upstream_rt *rts;
static unsigned        nrts;

int pt_upstream_worker_init(pt_upstream_list *l)
{
    nrts = l->n;
    rts = calloc(nrts ? nrts : 1, sizeof(*rts));
    if (rts == NULL)
        return PT_ERROR;
    for (unsigned i = 0; i < l->n; i++) {
        pt_upstream *up = &l->ups[i];
        rts[i].up = up;
        rts[i].current = calloc(up->nservers, sizeof(int64_t));
        rts[i].idle = calloc(up->nservers, sizeof(pt_upconn *));
        if (rts[i].current == NULL || rts[i].idle == NULL)
            return PT_ERROR;
    }
    return PT_OK;
}

pt_upstream_rt *pt_upstream_rt_of(const pt_upstream *up)
{
    return up->index < nrts && rts[up->index].up == up ? &rts[up->index] : NULL;
}

/* Smooth weighted round-robin: each pick adds every server's weight to its running score
 * and takes the highest, which then pays back the total; picks interleave by weight. */
int pt_upstream_pick(const pt_upstream *up, uint64_t tried)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL)
        return -1;
    int best = -1;
    int64_t total = 0;
    for (unsigned i = 0; i < up->nservers; i++) {
        if (tried & (1ull << i))
            continue;
        rt->current[i] += up->servers[i].weight;
        total += up->servers[i].weight;
        if (best < 0 || rt->current[i] > rt->current[best])
            best = (int) i;
    }
    if (best >= 0)
        rt->current[best] -= total;
    return best;
}

/* ------------------------------------------------------------------ connections */

static void pool_unlink(pt_upstream_rt *rt, pt_upconn *uc);

static void upconn_event(pt_io *io, uint32_t events)
{
    pt_upconn *uc = io->data;
    if (events & (EPOLLERR | EPOLLHUP)) {
        uc->readable = uc->writable = true;
        uc->peer_closed = true;
    }
    if (events & (EPOLLIN | EPOLLRDHUP))
        uc->readable = true;
    if (events & EPOLLOUT)
        uc->writable = true;
    uc->handler(uc, events);
}

static void upconn_timer(pt_timer *t)
{
    pt_upconn *uc = t->data;
    uc->handler(uc, 0);
}

static void upconn_free(pt_defer *d)
{
    free(pt_container_of(d, pt_upconn, free_later));
}

int pt_upconn_alloc_in(pt_upconn *uc)
{
    if (uc->in.start)
        return PT_OK;
    size_t size = uc->up->buffer_size;
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    char *b = rt && rt->nfree ? rt->free_bufs[--rt->nfree] : malloc(size);
    if (b == NULL)
        return PT_ERROR;
    uc->in.start = uc->in.pos = uc->in.last = b;
    uc->in.end = b + size;
    return PT_OK;
}

static void release_in(pt_upconn *uc)
{
    if (uc->in.start == NULL)
        return;
    /* buffers are recycled per group (one size per group) */
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    if (rt && rt->nfree < PT_UPSTREAM_FREE_BUFS)
        rt->free_bufs[rt->nfree++] = uc->in.start;
    else
        free(uc->in.start);
    uc->in.start = uc->in.pos = uc->in.last = uc->in.end = NULL;
}

pt_upconn *pt_upstream_connect(const pt_upstream *up, unsigned server, pt_upconn_fn fn,
                               void *owner)
{
    const pt_upstream_server *sv = &up->servers[server];
    int fd = socket(sv->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (const struct sockaddr *) &sv->addr, sv->addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    pt_upconn *uc = calloc(1, sizeof(*uc));
    if (uc == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    uc->io.fd = fd;
    uc->io.fn = upconn_event;
    uc->io.data = uc;
    uc->up = up;
    uc->server = sv;
    uc->handler = fn;
    uc->owner = owner;
    uc->connected = rc == 0;
    uc->free_later.fn = upconn_free;
    pt_timer_init(&uc->timer, upconn_timer, uc);
    if (pt_io_add(pt_loop_cur, &uc->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) != PT_OK) {
        int e = errno;
        close(fd);
        free(uc);
        errno = e;
        return NULL;
    }
    uc->all_next = all_conns;
    if (all_conns)
        all_conns->all_prev = uc;
    all_conns = uc;
    return uc;
}

int pt_upconn_connected(pt_upconn *uc)
{
    if (uc->connected)
        return PT_OK;
    /* A failed connect is reported with EPOLLERR (peer_closed): only then ask why. Not
     * asking on success saves a getsockopt() per new origin connection. */
    if (uc->peer_closed) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(uc->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            errno = err;
            return PT_ERROR;
        }
    }
    if (!uc->writable)
        return PT_AGAIN;
    uc->connected = true;
    return PT_OK;
}

void pt_upconn_set_timer(pt_upconn *uc, uint32_t ms)
{
    if (ms == 0)
        pt_timer_del(&pt_loop_cur->timers, &uc->timer);
    else
        pt_loop_timer(pt_loop_cur, &uc->timer, ms);
}

void pt_upconn_close(pt_upconn *uc)
{
    if (uc->io.fd < 0)
        return;
    if (uc->pooled) {
        pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
        if (rt)
            pool_unlink(rt, uc);
        uc->pooled = false;
    }
    if (uc->all_prev)
        uc->all_prev->all_next = uc->all_next;
    else
        all_conns = uc->all_next;
    if (uc->all_next)
        uc->all_next->all_prev = uc->all_prev;
    uc->all_prev = uc->all_next = NULL;
    pt_timer_del(&pt_loop_cur->timers, &uc->timer);
    close(uc->io.fd);
    uc->io.fd = -1;
    release_in(uc);
    pt_defer_add(pt_loop_cur, &uc->free_later);
}

/* Bytes (or a close) waiting on an idle connection: the origin sent more than its last
 * response, or gave up on the connection. */
static bool idle_conn_dirty(pt_upconn *uc)
{
    char b;
    ssize_t n = recv(uc->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        pt_log(PT_LOG_INFO, "upstream \"%s\" server %s: bytes after a complete response; "
               "connection not reused", uc->up->name, uc->server->addr_text);
    return n >= 0 || errno != EAGAIN;
}

/* An idle pooled connection: input means the origin closed it or misbehaves. A bare
 * EPOLLOUT only says the send buffer drained (late ACKs of a large request): keep it. */
static void idle_event(pt_upconn *uc, uint32_t events)
{
    if (events != 0 && !(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        return;
    if (events == 0)
        pt_log(PT_LOG_DEBUG, "closing idle connection to %s", uc->server->addr_text);
    else if (events & EPOLLIN)
        idle_conn_dirty(uc);            /* says so when they are bytes, not a close */
    pt_upconn_close(uc);
}

void pt_upconn_release(pt_upconn *uc, bool reuse)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(uc->up);
    if (!reuse || rt == NULL || uc->up->keepalive == 0 || rt->nidle >= uc->up->keepalive
        || uc->peer_closed || uc->in.pos != uc->in.last) {
        pt_upconn_close(uc);
        return;
    }
    release_in(uc);
    uc->handler = idle_event;
    uc->owner = NULL;
    uc->pooled = true;
    uc->prev = NULL;
    uc->next = rt->idle[uc->server->index];
    if (uc->next)
        uc->next->prev = uc;
    rt->idle[uc->server->index] = uc;
    rt->nidle++;
    pt_upconn_set_timer(uc, uc->up->idle_timeout_ms);
    /* EPOLLIN may already be pending from a close we have not seen yet: the ET event for
     * it arrives later and idle_event closes the connection then. */
    if (uc->readable) {
        char b;
        ssize_t n = recv(uc->io.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN) || n > 0)
            pt_upconn_close(uc);
        else
            uc->readable = false;
    }
}

static void pool_unlink(pt_upstream_rt *rt, pt_upconn *uc)
{
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        rt->idle[uc->server->index] = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    rt->nidle--;
    uc->pooled = false;
    uc->next = uc->prev = NULL;
}

/* The most recently used idle connection that can take a request. The readiness flags
 * tell of bytes that arrived while it was pooled (epoll reported them); a connection
 * whose last response had no body (HEAD, 204, 304: where origins most often send bytes
 * they should not) is also asked directly right before its reuse, and after a HEAD it
 * rests PT_UPCONN_SETTLE_MS first, so that a body sent late to a HEAD is seen before
 * another request goes out on the connection. */
pt_upconn *pt_upstream_pool_get(const pt_upstream *up, unsigned server)
{
    pt_upstream_rt *rt = pt_upstream_rt_of(up);
    if (rt == NULL)
        return NULL;
    for (pt_upconn *uc = rt->idle[server], *next; uc; uc = next) {
        next = uc->next;
        if (uc->settle_until > pt_loop_cur->now && !uc->peer_closed && !uc->readable)
            continue;
        pool_unlink(rt, uc);
        if (uc->peer_closed || uc->readable || (uc->check_reuse && idle_conn_dirty(uc))) {
            pt_upconn_close(uc);
            continue;
        }
        uc->check_reuse = false;
        uc->settle_until = 0;
        pt_timer_del(&pt_loop_cur->timers, &uc->timer);
        return uc;
    }
    return NULL;
}

ssize_t pt_upconn_read(pt_upconn *uc)
{
    return pt_upconn_read_max(uc, SIZE_MAX);
}

ssize_t pt_upconn_read_max(pt_upconn *uc, size_t max)
{
    size_t room = pt_min(pt_buf_free(&uc->in), max);
    if (room == 0)
        return -3;
    for (;;) {
        ssize_t n = recv(uc->io.fd, uc->in.last, room, 0);
        if (n > 0) {
            uc->in.last += n;
            if ((size_t) n < room && !uc->peer_closed)
                uc->readable = false;
            return n;
        }
        if (n == 0) {
            uc->peer_closed = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            uc->readable = false;
            return -2;
        }
        uc->peer_closed = true;
        return -1;
    }
}

ssize_t pt_upconn_writev(pt_upconn *uc, const struct iovec *iov, int n)
{
    for (;;) {
        ssize_t w = writev(uc->io.fd, iov, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            uc->writable = false;
            return -2;
        }
        return -1;
    }
}

void pt_upstream_worker_exit(void)
{
    for (unsigned i = 0; i < nrts; i++)
        for (unsigned s = 0; s < rts[i].up->nservers; s++)
            while (rts[i].idle[s])
                pt_upconn_close(rts[i].idle[s]);
    /* Connections of requests still running (drain timeout, fast stop): the worker exits
     * without aborting them, so close them here; nothing runs their handlers any more. */
    while (all_conns)
        pt_upconn_close(all_conns);
    for (unsigned i = 0; i < nrts; i++) {
        free(rts[i].current);
        free(rts[i].idle);
        while (rts[i].nfree)
            free(rts[i].free_bufs[--rts[i].nfree]);
    }
    free(rts);
    rts = NULL;
    nrts = 0;
}
