/* SSL_CTXs: one per certificate set of a TLS listener (every set of a listener has the
 * same protocol settings, so that the SNI callback may move a handshake from the default
 * set's to another's), one per upstream with TLS; and the callbacks the handshakes call:
 * SNI (pick the set) and ALPN (pick the protocol, hence the session). */
#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/tls.h"

/* nginx's default: what the shared benchmark's nginx and portico both run with */
#define PT_TLS_DEFAULT_CIPHERS "HIGH:!aNULL:!MD5"

const char *pt_tls_error(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, len, "%s", r);
    else if (e)
        snprintf(buf, len, "OpenSSL error %lu", e);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
    return buf;
}

static void ctx_free(void *p)
{
    SSL_CTX_free(p);
}

static void store_free(void *p)
{
    X509_STORE_free(p);
}

static void names_free(void *p)
{
    sk_X509_NAME_pop_free(p, X509_NAME_free);
}

/* ------------------------------------------------------------------ handshake callbacks */

/* SNI: the set that serves the name, else stay on the default certificate's. */
static int sni_cb(SSL *s, int *alert, void *arg)
{
    const pt_tls_server *ts = arg;
    const char *name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    SSL_CTX *ctx = pt_tls_names_find(&ts->names, name, strlen(name));
    if (ctx && ctx != SSL_get_SSL_CTX(s))
        SSL_set_SSL_CTX(s, ctx);
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: the first of the listener's protocols the client offers. A client that offers
 * only others is refused (RFC 7301 §3.2: no_application_protocol); one that offers none
 * speaks HTTP/1.1. */
static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    const pt_tls_server *ts = arg;
    unsigned char *sel;
    if (ts->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    if (SSL_select_next_proto(&sel, outlen, ts->alpn, ts->alpn_len, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* ------------------------------------------------------------------ listeners */

static int client_ca(pt_conf_ctx *cx, config_setting_t *s, pt_tls_server *ts)
{
    char err[256];
    config_setting_t *at = config_setting_get_member(s, "client_ca");
    FILE *f = fopen(ts->client_ca, "r");
    if (f == NULL)
        return pt_conf_error(cx, at, "%s: cannot open: %s", ts->client_ca, strerror(errno));
    fclose(f);
    X509_STORE *store = X509_STORE_new();
    if (store == NULL || pt_pool_cleanup_add(cx->pool, store_free, store) != PT_OK) {
        X509_STORE_free(store);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    ERR_clear_error();
    if (!X509_STORE_load_file(store, ts->client_ca))
        return pt_conf_error(cx, at, "%s: cannot load CA certificates (%s)", ts->client_ca,
                             pt_tls_error(err, sizeof(err)));
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ts->client_ca);
    if (names == NULL || pt_pool_cleanup_add(cx->pool, names_free, names) != PT_OK) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return pt_conf_error(cx, at, "%s: no CA certificate in it", ts->client_ca);
    }
    ERR_clear_error();
    ts->client_store = store;
    ts->client_names = names;
    return PT_OK;
}

SSL_CTX *pt_tls_server_ctx(pt_conf_ctx *cx, config_setting_t *s, pt_tls_server *ts,
                           const pt_tls_cert_set *set)
{
    char err[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || pt_pool_cleanup_add(cx->pool, ctx_free, ctx) != PT_OK) {
        SSL_CTX_free(ctx);
        pt_conf_error(cx, NULL, "cannot create a TLS context (%s)", pt_tls_error(err, sizeof(err)));
        return NULL;
    }
    SSL_CTX_set_app_data(ctx, ts);
    SSL_CTX_set_min_proto_version(ctx, ts->min_version);
    /* no renegotiation (a client-driven CPU cost, and SSL_write would need to read); a
     * peer that closes without close_notify has just closed (HTTP frames its messages) */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    /* the transport writes what it can and keeps the rest queued (its caller's iovecs may
     * move); an idle connection holds no record buffers */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_timeout(ctx, ts->session_timeout_s);

    ERR_clear_error();
    if (!SSL_CTX_set_cipher_list(ctx, ts->ciphers ? ts->ciphers : PT_TLS_DEFAULT_CIPHERS)) {
        pt_conf_error(cx, config_setting_get_member(s, "ciphers"), "\"%s\": %s", ts->ciphers,
                      pt_tls_error(err, sizeof(err)));
        return NULL;
    }
    if (ts->ciphersuites && !SSL_CTX_set_ciphersuites(ctx, ts->ciphersuites)) {
        pt_conf_error(cx, config_setting_get_member(s, "ciphersuites"), "\"%s\": %s",
                      ts->ciphersuites, pt_tls_error(err, sizeof(err)));
        return NULL;
    }
    for (int t = 0; t < PT_TLS_KEY_TYPES; t++) {
        if (set->cert[t] < 0)
            continue;
        const pt_tls_cert *c = &ts->certs[set->cert[t]];
        if (!SSL_CTX_use_cert_and_key(ctx, c->x509, c->pkey, c->chain, 1)) {
            config_setting_t *l = config_setting_get_member(s, "certificates");
            pt_conf_error(cx, l ? config_setting_get_elem(l, c->index) : s, "%s: %s",
                          c->cert_file, pt_tls_error(err, sizeof(err)));
            return NULL;
        }
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(ctx, ts);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, ts);

    if (ts->verify_client != PT_TLS_VERIFY_OFF) {
        if (ts->client_store == NULL && client_ca(cx, s, ts) != PT_OK)
            return NULL;
        STACK_OF(X509_NAME) *names = SSL_dup_CA_list(ts->client_names);
        if (names == NULL || !SSL_CTX_set1_verify_cert_store(ctx, ts->client_store)) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            pt_conf_error(cx, NULL, "out of memory");
            return NULL;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (ts->verify_client == PT_TLS_VERIFY_REQUIRED
                                                   ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    }
    return ctx;
}

/* ------------------------------------------------------------------ upstreams */

SSL_CTX *pt_tls_client_ctx(pt_conf_ctx *cx, config_setting_t *s, pt_tls_client *tc)
{
    char err[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || pt_pool_cleanup_add(cx->pool, ctx_free, ctx) != PT_OK) {
        SSL_CTX_free(ctx);
        pt_conf_error(cx, NULL, "cannot create a TLS context (%s)", pt_tls_error(err, sizeof(err)));
        return NULL;
    }
    SSL_CTX_set_app_data(ctx, tc);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF
                             | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                          | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    ERR_clear_error();
    if (tc->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (tc->ca) {
            config_setting_t *at = config_setting_get_member(s, "ca");
            FILE *f = fopen(tc->ca, "r");
            if (f == NULL) {
                pt_conf_error(cx, at, "%s: cannot open: %s", tc->ca, strerror(errno));
                return NULL;
            }
            fclose(f);
            if (!SSL_CTX_load_verify_file(ctx, tc->ca)) {
                pt_conf_error(cx, at, "%s: cannot load CA certificates (%s)", tc->ca,
                              pt_tls_error(err, sizeof(err)));
                return NULL;
            }
        } else if (!SSL_CTX_set_default_verify_paths(ctx)) {
            pt_conf_error(cx, s, "the system's CA certificates cannot be loaded (%s)",
                          pt_tls_error(err, sizeof(err)));
            return NULL;
        }
    }
    /* an origin that also speaks h2 must answer in HTTP/1.1, which the exchange speaks */
    static const unsigned char h11[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, h11, sizeof(h11) - 1) != 0) {
        pt_conf_error(cx, NULL, "out of memory");
        return NULL;
    }
    /* sessions are kept per server by the worker (xprt_tls.c), to resume the next
     * connection's handshake */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, pt_xprt_tls_client_session);
    ERR_clear_error();
    return ctx;
}
