/* The accept pipeline: what runs on a new connection before a protocol session owns it.
 * Stages run in order, each finishing (or closing the connection) before the next:
 *   PROXY protocol  -- when the listener says proxy_protocol = true: the header's client
 *                      address replaces the peer's (logs, X-Forwarded-For, ACLs, limits)
 *   modules         -- each module's accept hook, in module-list order (connection limits:
 *                      modules/connlimit.c); one refusing closes the connection, and every
 *                      module that took it (PT_OK) is told when it closes (conn_closed).
 *                      Before TLS, so a refused client costs no handshake
 *   TLS handshake   -- when the listener has tls: inside the event loop, never blocking,
 *                      within handshake_timeout_ms; the transport becomes TLS
 *   h2 preface      -- cleartext listeners with http2 = true: a client that opens with
 *                      the HTTP/2 connection preface gets h2 (prior knowledge), any other
 *                      HTTP/1
 *   session         -- the protocol ALPN chose (h1 without ALPN) takes the connection.
 * A connection that fails a stage is closed, and the reason logged. */
#include <errno.h>
#include <stdio.h>

#include "portico/conf.h"
#include "portico/cidr.h"
#include "portico/log.h"
#include "portico/metrics.h"
#include "portico/proxy_protocol.h"
#include "portico/tls.h"
#include "http_core.h"

#include "portico/module.h"

enum { STAGE_PROXY = 1, STAGE_MODULES, STAGE_TLS, STAGE_PREFACE, STAGE_SESSION };

#define TLS_HANDSHAKE 0x16              /* the first byte of a TLS handshake record */

static void refuse(pt_conn *c, const char *why)
{
    pt_log(PT_LOG_INFO, "refused connection from %s on %s: %s", c->peer_ip,
           c->listener->conf->address, why);
    pt_conn_close(c);
}

static void next_stage(pt_conn *c);

/* The header is read with a peek, then exactly its bytes are taken off the socket:
 * whatever follows (a request, a TLS hello) stays for the next stage, whatever it is. */
static void proxy_read(pt_conn *c, uint32_t events)
{
    uint8_t buf[PT_PROXY_V2_MAX];
    pt_proxy_header h;
    const char *err = NULL;

    if (!c->x.readable)
        return;
    ssize_t n = pt_xprt_tcp_peek(&c->x, buf, sizeof(buf));
    if (n == PT_AGAIN)
        return;
    if (n <= 0) {
        refuse(c, n == 0 ? "closed before a PROXY protocol header"
                         : "connection failed before a PROXY protocol header");
        return;
    }
    int rc = pt_proxy_header_parse(buf, (size_t) n, &h, &err);
    if (rc == PT_AGAIN) {
        /* a peek sees the bytes again and again: only the event tells of the peer's FIN */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            refuse(c, "closed before a complete PROXY protocol header");
            return;
        }
        c->x.readable = false;          /* all there is was peeked: wait for more */
        return;
    }
    if (rc == PT_ERROR) {
        refuse(c, err);
        return;
    }
    ssize_t got = c->x.ops->recv(&c->x, buf, h.len);
    if (got != (ssize_t) h.len) {
        refuse(c, "PROXY protocol header could not be consumed");
        return;
    }
    if (!h.local) {
        char was[48];
        memcpy(was, c->peer_ip, sizeof(was));
        pt_conn_set_peer(c, (const struct sockaddr *) &h.src,
                         h.src.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                     : sizeof(struct sockaddr_in));
        pt_log(PT_LOG_DEBUG, "PROXY v%u header from %s: client %s", h.version, was, c->peer_ip);
    }
    next_stage(c);
}

/* The modules' hooks run at once (they decide from the address and shared counters). */
static int accept_modules(pt_conn *c)
{
    for (unsigned i = 0; i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        if (m->accept == NULL)
            continue;
        int rc = m->accept(c);
        if (rc == PT_OK) {
            PT_ASSERT(m->index < 32);
            c->accepted_by |= 1u << m->index;
        } else if (rc != PT_DECLINED) {
            pt_conn_close(c);           /* the module said why */
            return PT_ERROR;
        }
    }
    return PT_OK;
}

void pt_accept_closed(pt_conn *c)
{
    for (unsigned i = 0; c->accepted_by && i < pt_nmodules; i++) {
        pt_module *m = pt_modules[i];
        if (!(c->accepted_by & (1u << m->index)))
            continue;
        c->accepted_by &= ~(1u << m->index);
        if (m->conn_closed)
            m->conn_closed(c);
    }
}

/* The session for the protocol the handshake agreed on. */
static void tls_done(pt_conn *c)
{
    const unsigned char *proto;
    unsigned len;
    pt_xprt_tls_alpn(&c->x, &proto, &len);
    const pt_session_ops *s = pt_conn_session_for_alpn(proto, len);
    if (s == NULL) {
        refuse(c, "TLS: ALPN chose a protocol with no session");    /* cannot happen */
        return;
    }
    pt_debug("TLS handshake with %s on %s: %s, %s%s%s%.*s", c->peer_ip,
             c->listener->conf->address, pt_xprt_tls_version(&c->x),
             pt_xprt_tls_cipher(&c->x), pt_xprt_tls_resumed(&c->x) ? ", resumed" : "",
             len ? ", ALPN " : "", (int) len, proto ? (const char *) proto : "");
    pt_metrics_tls_handshake(c->listener->conf, pt_xprt_tls_version(&c->x),
                             pt_xprt_tls_resumed(&c->x));
    c->stage = STAGE_SESSION;
    pt_conn_set_timer(c, 0);
    pt_conn_start_session(c, s);
}

/* The first byte tells a TLS hello from plain HTTP sent to the wrong port: that gets an
 * HTTP answer (a 400 saying so, from the h1 session), not a TLS alert the client cannot
 * read. Anything else is not spoken here. */
static void tls_step(pt_conn *c, uint32_t events)
{
    const pt_listener_conf *l = c->listener->conf;
    const char *why = NULL;

    if (c->x.ops != &pt_xprt_tls) {
        unsigned char b;
        if (!c->x.readable)
            return;
        ssize_t n = pt_xprt_tcp_peek(&c->x, &b, 1);
        if (n == PT_AGAIN)
            return;
        if (n <= 0) {
            refuse(c, n == 0 ? "closed before a TLS handshake"
                             : "connection failed before a TLS handshake");
            return;
        }
        if (b != TLS_HANDSHAKE) {
            if (b >= 'A' && b <= 'Z') {
                c->plain_on_tls = true;
                c->stage = STAGE_SESSION;
                pt_conn_set_timer(c, 0);
                pt_conn_start_session(c, &pt_h1_session);
                return;
            }
            char text[64];
            snprintf(text, sizeof(text), "not a TLS handshake (first byte 0x%02x)", b);
            refuse(c, text);
            return;
        }
        if (pt_xprt_tls_accept(&c->x, l->tls) != PT_OK) {
            pt_log(PT_LOG_ALERT, "out of memory for a TLS session");
            pt_conn_close(c);
            return;
        }
    }
    int rc = pt_xprt_tls_handshake(&c->x, &why);
    if (rc == PT_AGAIN)
        return;
    if (rc == PT_OK) {
        tls_done(c);
        return;
    }
    pt_metrics_tls_failure(l, "error");
    char text[320];
    snprintf(text, sizeof(text), "TLS handshake failed: %s", why);
    refuse(c, text);
}

/* Prior knowledge (RFC 9113 3.3): the preface is peeked, not taken (the h2 session reads
 * it as the start of its input); bytes that stop matching it are an HTTP/1 request. */
static void preface_step(pt_conn *c, uint32_t events)
{
    char b[PT_H2_PREFACE_LEN];
    const pt_session_ops *s = &pt_h1_session;

    if (!c->x.readable)
        return;
    ssize_t n = pt_xprt_tcp_peek(&c->x, b, sizeof(b));
    if (n == PT_AGAIN)
        return;
    if (n < 0) {
        refuse(c, "connection failed before a request");
        return;
    }
    if (n == 0) {
        pt_conn_close(c);               /* nothing sent: as an idle h1 connection */
        return;
    }
    if (memcmp(b, PT_H2_PREFACE, (size_t) n) == 0) {
        if (n < PT_H2_PREFACE_LEN) {
            if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                refuse(c, "closed within the HTTP/2 connection preface");
                return;
            }
            c->x.readable = false;      /* the rest of the preface comes with an event */
            return;
        }
#ifdef PT_HAVE_NGHTTP2
        s = &pt_h2_session;
#endif
    }
    c->stage = STAGE_SESSION;
    pt_conn_set_timer(c, 0);
    pt_conn_start_session(c, s);
}

static void next_stage(pt_conn *c)
{
    const pt_listener_conf *l = c->listener->conf;
    if (c->stage < STAGE_PROXY) {
        c->stage = STAGE_PROXY;
        if (l->proxy_protocol) {
            if (l->proxy_protocol_trusted.n
                && !pt_cidr_list_match(&l->proxy_protocol_trusted, &c->peer.sa)) {
                refuse(c, "PROXY protocol header from an address not in proxy_protocol_trusted");
                return;
            }
            pt_conn_set_timer(c, pt_wconf->limits.client_header_timeout_ms);
            proxy_read(c, 0);
            return;
        }
    }
    if (c->stage < STAGE_MODULES) {
        c->stage = STAGE_MODULES;
        if (accept_modules(c) != PT_OK)
            return;
    }
    if (c->stage < STAGE_TLS && l->tls) {
        c->stage = STAGE_TLS;
        pt_conn_set_timer(c, l->tls->handshake_timeout_ms);
        /* A hello costs a signature (a millisecond or more for RSA): it waits for its
         * event like any other work instead of running in the accept loop, where a burst
         * of new connections would hold back every request already waiting (the socket
         * was just added to epoll: whatever it has is reported at once). Bytes that came
         * after a PROXY header get no new event: they are taken now. */
        if (l->proxy_protocol)
            tls_step(c, 0);
        return;
    }
    if (c->stage < STAGE_PREFACE && l->http2 && !l->tls) {
        c->stage = STAGE_PREFACE;
        pt_conn_set_timer(c, pt_wconf->limits.client_header_timeout_ms);
        preface_step(c, 0);
        return;
    }
    c->stage = STAGE_SESSION;
    pt_conn_set_timer(c, 0);
    pt_conn_start_session(c, &pt_h1_session);
}

void pt_accept_start(pt_conn *c)
{
    c->stage = 0;
    next_stage(c);
}

void pt_accept_event(pt_conn *c, uint32_t events)
{
    PT_ASSERT(c->proto == NULL && !c->closed);
    if (events == 0) {
        if (c->stage == STAGE_TLS)
            pt_metrics_tls_failure(c->listener->conf, "timeout");
        refuse(c, c->stage == STAGE_TLS ? "no TLS handshake within handshake_timeout_ms"
                  : c->stage == STAGE_PREFACE ? "no request within client_header_timeout_ms"
                                              : "no PROXY protocol header within "
                                                "client_header_timeout_ms");
        return;
    }
    if (c->stage == STAGE_PROXY)
        proxy_read(c, events);
    else if (c->stage == STAGE_TLS)
        tls_step(c, events);
    else if (c->stage == STAGE_PREFACE)
        preface_step(c, events);
}
