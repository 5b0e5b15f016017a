/* The TLS transport: pt_xprt_ops over a non-blocking OpenSSL session, for client
 * connections (after the accept pipeline's handshake stage) and origin connections
 * (after the upstream's connect). Everything above calls these ops and never knows.
 *
 * Readiness. SSL_read returns one record at a time, so a short read does not mean the
 * socket is drained. The session reads through our own BIO, which notes when a read of
 * the socket came back short (or empty): only then, with nothing left in OpenSSL's
 * buffers (SSL_has_pending), is `readable` cleared -- without the extra read() that
 * would otherwise be needed to see EAGAIN. A read that fills the caller's buffer keeps
 * `readable`, so the session reads on without waiting for an edge that will not come.
 * WANT_WRITE during a read (a key update or alert to send) and WANT_READ during a write
 * wait for the other direction's event (read_wants_write / write_wants_read).
 *
 * Writes: small iovecs (a response head and a short body) are copied into one record; a
 * large one is written from where it is. A write that would block keeps its record in
 * OpenSSL's buffer: the caller offers the same bytes again (pt_xprt_ops contract), and
 * partial writes hand back each record as it goes out. splice_in/splice_out are NULL:
 * the proxy relays through its buffer.
 *
 * The socket is read and written here (the BIO) and nowhere else in the TLS code. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "portico/log.h"
#include "portico/pool.h"
#include "portico/tls.h"
#include "portico/xprt.h"

#define TLS_RECORD 16384            /* the largest plaintext record */

typedef struct tls_conn {
    SSL                 *ssl;
    pt_xprt             *x;
    bool                 drained;   /* the last socket read came back short or empty */
    bool                 fatal;     /* failed: no close_notify, no more I/O */
    bool                 shut;      /* close_notify sent */
    bool                 done;      /* handshake complete */
    bool                 at_eof;    /* a socket read returned 0: the peer closed */
    int                  err;       /* errno of the last failed socket call */
    const pt_tls_client *tc;        /* origin side: for the session kept per server */
    unsigned             server;
} tls_conn;

static char wbuf[TLS_RECORD];       /* coalesces small iovecs (one worker, one thread) */
static char why_buf[256];

/* ------------------------------------------------------------------ the socket BIO */

static BIO_METHOD *bio_method;

static int bio_read(BIO *b, char *buf, int len)
{
    tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = recv(t->x->io.fd, buf, (size_t) len, 0);
        if (n > 0) {
            t->drained = n < len;
            return (int) n;
        }
        if (n == 0) {
            t->drained = t->at_eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            t->drained = true;
            BIO_set_retry_read(b);
            return -1;
        }
        t->err = errno;
        return -1;
    }
}

static int bio_write(BIO *b, const char *buf, int len)
{
    tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t n = send(t->x->io.fd, buf, (size_t) len, MSG_NOSIGNAL);
        if (n >= 0)
            return (int) n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            BIO_set_retry_write(b);
            return -1;
        }
        t->err = errno;
        return -1;
    }
}

/* FLUSH: nothing is buffered here. EOF: how OpenSSL tells a peer's close from an error
 * (with SSL_OP_IGNORE_UNEXPECTED_EOF, a close without close_notify ends the stream). */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tls_conn *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return t && t->at_eof;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *bio_new(tls_conn *t)
{
    if (bio_method == NULL) {
        bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "portico socket");
        if (bio_method == NULL
            || !BIO_meth_set_read(bio_method, bio_read)
            || !BIO_meth_set_write(bio_method, bio_write)
            || !BIO_meth_set_ctrl(bio_method, bio_ctrl)
            || !BIO_meth_set_create(bio_method, bio_create)) {
            BIO_meth_free(bio_method);
            bio_method = NULL;
            return NULL;
        }
    }
    BIO *b = BIO_new(bio_method);
    if (b)
        BIO_set_data(b, t);
    return b;
}

/* ------------------------------------------------------------------ errors */

/* Why a handshake or an I/O call failed, for the log: the verification result when the
 * peer's certificate was refused, else OpenSSL's reason, else the socket's error. */
static const char *failure(tls_conn *t, int e)
{
    unsigned long err = ERR_peek_error();
    const char *r = err ? ERR_reason_error_string(err) : NULL;
    long v = SSL_get_verify_result(t->ssl);

    if (v != X509_V_OK && (t->tc || (r && strstr(r, "certificate verify failed"))))
        snprintf(why_buf, sizeof(why_buf), "certificate verify failed (%s)",
                 X509_verify_cert_error_string(v));
    else if (r)
        snprintf(why_buf, sizeof(why_buf), "%s", r);
    else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && t->err == 0))
        snprintf(why_buf, sizeof(why_buf), "the peer closed the connection");
    else if (t->err)
        snprintf(why_buf, sizeof(why_buf), "%s", strerror(t->err));
    else
        snprintf(why_buf, sizeof(why_buf), "error %d", e);
    ERR_clear_error();
    return why_buf;
}

/* ------------------------------------------------------------------ the ops */

static ssize_t tls_recv(pt_xprt *x, void *buf, size_t len)
{
    tls_conn *t = x->ctx;
    size_t got = 0;

    len = pt_min(len, (size_t) INT_MAX);
    /* set by a socket read in this call that came back short: records OpenSSL read
     * along with it are returned first, then we stop without asking the socket again */
    t->drained = false;
    while (got < len) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, (char *) buf + got, (int) (len - got));
        if (n > 0) {
            got += (size_t) n;
            if (t->drained && !SSL_has_pending(t->ssl)) {
                x->readable = false;    /* the socket had nothing more, OpenSSL neither */
                break;
            }
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            x->readable = false;
            break;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            x->readable = x->writable = false;
            x->read_wants_write = true;
            break;
        }
        x->eof = true;
        if (e == SSL_ERROR_ZERO_RETURN)
            return (ssize_t) got;       /* close_notify (or a plain close): end of stream */
        t->fatal = true;
        pt_debug("TLS read failed: %s", failure(t, e));
        if (got)
            return (ssize_t) got;
        errno = t->err ? t->err : EPROTO;
        return PT_ERROR;
    }
    return got ? (ssize_t) got : PT_AGAIN;
}

static ssize_t tls_writev(pt_xprt *x, const struct iovec *iov, int n)
{
    tls_conn *t = x->ctx;
    size_t total = 0, off = 0;
    int i = 0;

    while (i < n) {
        size_t rest = iov[i].iov_len - off;
        if (rest == 0) {
            i++;
            off = 0;
            continue;
        }
        const char *p;
        size_t len;
        if (rest >= sizeof(wbuf) || i == n - 1) {
            p = (const char *) iov[i].iov_base + off;
            len = pt_min(rest, (size_t) INT_MAX);
        } else {
            /* one record for what would otherwise go out as several small ones; a retry
             * copies the same bytes again, at least as many (see the header) */
            size_t o = off;
            len = 0;
            for (int j = i; j < n && len < sizeof(wbuf);) {
                size_t take = pt_min(iov[j].iov_len - o, sizeof(wbuf) - len);
                memcpy(wbuf + len, (const char *) iov[j].iov_base + o, take);
                len += take;
                o += take;
                if (o == iov[j].iov_len) {
                    j++;
                    o = 0;
                }
            }
            p = wbuf;
        }
        ERR_clear_error();
        int w = SSL_write(t->ssl, p, (int) len);
        if (w > 0) {
            size_t adv = (size_t) w;
            total += adv;
            while (adv) {
                size_t r = iov[i].iov_len - off;
                if (adv >= r) {
                    adv -= r;
                    i++;
                    off = 0;
                } else {
                    off += adv;
                    adv = 0;
                }
            }
            continue;
        }
        int e = SSL_get_error(t->ssl, w);
        if (e == SSL_ERROR_WANT_WRITE) {
            x->writable = false;
            break;
        }
        if (e == SSL_ERROR_WANT_READ) {
            x->writable = false;
            x->write_wants_read = true;
            break;
        }
        t->fatal = true;
        x->eof = true;
        pt_debug("TLS write failed: %s", failure(t, e));
        if (total)
            return (ssize_t) total;
        errno = t->err ? t->err : EPIPE;
        return PT_ERROR;
    }
    if (total == 0 && i < n)
        return PT_AGAIN;
    return (ssize_t) total;
}

/* Nothing consumed; but OpenSSL processes what it reads (a ticket, a close_notify), and
 * application bytes it reads stay in its buffer: `readable` then says so. */
static int tls_probe(pt_xprt *x)
{
    tls_conn *t = x->ctx;
    char b;
    if (t->fatal)
        return 0;
    if (SSL_pending(t->ssl) > 0)
        return 1;
    ERR_clear_error();
    int n = SSL_peek(t->ssl, &b, 1);
    if (n > 0) {
        x->readable = true;
        return 1;
    }
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return PT_AGAIN;
    if (e != SSL_ERROR_ZERO_RETURN)
        t->fatal = true;
    ERR_clear_error();
    return 0;
}

/* close_notify, then the TCP half-close. */
static int tls_shutdown(pt_xprt *x)
{
    tls_conn *t = x->ctx;
    if (t->done && !t->fatal && !t->shut) {
        t->shut = true;
        ERR_clear_error();
        SSL_shutdown(t->ssl);           /* best effort: a full socket drops it */
        ERR_clear_error();
    }
    return shutdown(x->io.fd, SHUT_WR) == 0 ? PT_OK : PT_ERROR;
}

static void tls_close(pt_xprt *x)
{
    tls_conn *t = x->ctx;
    if (t) {
        if (t->done && !t->fatal && !t->shut) {
            ERR_clear_error();
            SSL_shutdown(t->ssl);       /* tells the peer the stream ended here */
        }
        ERR_clear_error();
        SSL_free(t->ssl);
        free(t);
        x->ctx = NULL;
    }
    close(x->io.fd);                    /* also takes it out of the epoll set */
    x->io.fd = -1;
}

static size_t tls_pending(pt_xprt *x)
{
    tls_conn *t = x->ctx;
    if (!SSL_has_pending(t->ssl))
        return 0;
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t) n : 1;
}

const pt_xprt_ops pt_xprt_tls = {
    .name = "tls",
    .scheme = "https",
    .recv = tls_recv,
    .writev = tls_writev,
    .splice_in = NULL,
    .splice_out = NULL,
    .probe = tls_probe,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .pending = tls_pending,
};

/* ------------------------------------------------------------------ sessions */

static tls_conn *tls_new(pt_xprt *x, SSL_CTX *ctx)
{
    tls_conn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->x = x;
    t->ssl = SSL_new(ctx);
    BIO *b = t->ssl ? bio_new(t) : NULL;
    if (b == NULL) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(t->ssl, b, b);
    SSL_set_app_data(t->ssl, t);
    /* from here on the transport is TLS: closing it frees the session */
    x->ctx = t;
    x->ops = &pt_xprt_tls;
    return t;
}

int pt_xprt_tls_accept(pt_xprt *x, pt_tls_server *ts)
{
    tls_conn *t = tls_new(x, ts->ctx);
    if (t == NULL)
        return PT_ERROR;
    SSL_set_accept_state(t->ssl);
    return PT_OK;
}

/* Per worker: the last session each origin server gave, to resume the next connection
 * to it with (by upstream, then server). */
static SSL_SESSION ***client_sessions;
static unsigned       nclient_sessions;

static SSL_SESSION **client_slot(const pt_tls_client *tc, unsigned server)
{
    if (tc->index >= nclient_sessions) {
        unsigned n = tc->index + 8;
        SSL_SESSION ***v = realloc(client_sessions, n * sizeof(*v));
        if (v == NULL)
            return NULL;
        memset(v + nclient_sessions, 0, (n - nclient_sessions) * sizeof(*v));
        client_sessions = v;
        nclient_sessions = n;
    }
    if (client_sessions[tc->index] == NULL
        && (client_sessions[tc->index] = calloc(tc->nservers, sizeof(SSL_SESSION *))) == NULL)
        return NULL;
    return server < tc->nservers ? &client_sessions[tc->index][server] : NULL;
}

int pt_xprt_tls_client_session(SSL *s, SSL_SESSION *sess)
{
    tls_conn *t = SSL_get_app_data(s);
    SSL_SESSION **slot = t && t->tc ? client_slot(t->tc, t->server) : NULL;
    if (slot == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;                           /* we keep the reference */
}

int pt_xprt_tls_connect(pt_xprt *x, const pt_tls_client *tc, unsigned server)
{
    tls_conn *t = tls_new(x, tc->ctx);
    if (t == NULL)
        return PT_ERROR;
    t->tc = tc;
    t->server = server;
    SSL_set_connect_state(t->ssl);
    const char *name = server < tc->nservers ? tc->names[server] : NULL;
    const char *ip = server < tc->nservers ? tc->ips[server] : NULL;
    if (name && !SSL_set_tlsext_host_name(t->ssl, name))
        return PT_ERROR;
    if (tc->verify) {
        if (name && !SSL_set1_host(t->ssl, name))
            return PT_ERROR;
        if (ip && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ip))
            return PT_ERROR;
    }
    SSL_SESSION **slot = client_slot(tc, server);
    if (slot && *slot)
        SSL_set_session(t->ssl, *slot);
    ERR_clear_error();
    return PT_OK;
}

int pt_xprt_tls_handshake(pt_xprt *x, const char **why)
{
    tls_conn *t = x->ctx;
    ERR_clear_error();
    t->drained = false;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = true;
        x->readable = true;     /* bytes after the handshake may be in OpenSSL's buffer */
        return PT_OK;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        x->readable = false;
        return PT_AGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        x->writable = false;
        return PT_AGAIN;
    }
    t->fatal = true;
    *why = failure(t, e);
    return PT_ERROR;
}

bool pt_xprt_tls_handshaking(const pt_xprt *x)
{
    const tls_conn *t = x->ops == &pt_xprt_tls ? x->ctx : NULL;
    return t && !t->done;
}

void pt_xprt_tls_alpn(const pt_xprt *x, const unsigned char **proto, unsigned *len)
{
    *proto = NULL;
    *len = 0;
    if (x->ops == &pt_xprt_tls && x->ctx)
        SSL_get0_alpn_selected(((const tls_conn *) x->ctx)->ssl, proto, len);
}

int pt_xprt_tls_peer(const pt_xprt *x, pt_pool *pool, pt_str *subject, pt_str *sha256)
{
    static const char hex[] = "0123456789abcdef";
    if (x->ops != &pt_xprt_tls || x->ctx == NULL)
        return PT_DECLINED;
    SSL *ssl = ((const tls_conn *) x->ctx)->ssl;
    X509 *c = SSL_get0_peer_certificate(ssl);
    if (c == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
        return PT_DECLINED;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!X509_digest(c, EVP_sha256(), md, &mdlen)) {
        ERR_clear_error();
        return PT_ERROR;
    }
    char *h = pt_palloc(pool, mdlen * 2 + 1);
    if (h == NULL)
        return PT_ERROR;
    for (unsigned i = 0; i < mdlen; i++) {
        h[2 * i] = hex[md[i] >> 4];
        h[2 * i + 1] = hex[md[i] & 15];
    }
    h[2 * mdlen] = '\0';
    *sha256 = (pt_str) { 2 * mdlen, h };

    /* RFC 2253 escapes control characters and bytes past 0x7f: the text is printable
     * ASCII, fit for a header field */
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    if (b == NULL || X509_NAME_print_ex(b, X509_get_subject_name(c), 0, XN_FLAG_RFC2253) < 0
        || (n = BIO_get_mem_data(b, &data)) < 0) {
        BIO_free(b);
        ERR_clear_error();
        return PT_ERROR;
    }
    char *s = pt_pstrndup(pool, data, (size_t) n);
    BIO_free(b);
    if (s == NULL)
        return PT_ERROR;
    *subject = (pt_str) { (size_t) n, s };
    return PT_OK;
}

const char *pt_xprt_tls_version(const pt_xprt *x)
{
    return x->ops == &pt_xprt_tls && x->ctx ? SSL_get_version(((const tls_conn *) x->ctx)->ssl)
                                            : "";
}

const char *pt_xprt_tls_cipher(const pt_xprt *x)
{
    const char *c = x->ops == &pt_xprt_tls && x->ctx
                    ? SSL_get_cipher_name(((const tls_conn *) x->ctx)->ssl) : NULL;
    return c ? c : "";
}

bool pt_xprt_tls_resumed(const pt_xprt *x)
{
    return x->ops == &pt_xprt_tls && x->ctx && SSL_session_reused(((const tls_conn *) x->ctx)->ssl);
}
