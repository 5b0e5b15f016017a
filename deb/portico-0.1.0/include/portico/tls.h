#ifndef PT_TLS_H
#define PT_TLS_H

#include "portico/core.h"
#include "portico/conf-t.h"
#include "portico/pool-t.h"
#include "portico/tls-t.h"
#include "portico/xprt-t.h"

/* ---- the SNI name table (tls_names.c) ---- */

int   pt_tls_names_init(pt_tls_names *t, pt_pool *pool, unsigned expected);
/* Adds name ("a.example.net" or "*.example.net", any case, a trailing dot ignored).
 * PT_OK; PT_DECLINED when it is not a DNS name, or already there (then *existing, if
 * given, is its value); PT_ERROR out of memory. */
int   pt_tls_names_add(pt_tls_names *t, pt_pool *pool, const char *name, size_t len,
                       void *value, void **existing);
/* The value for a name sent by a client: its exact entry, else the wildcard covering its
 * first label, else NULL. */
void *pt_tls_names_find(const pt_tls_names *t, const char *name, size_t len);
bool  pt_tls_name_valid(const char *name, size_t len);

/* ---- configuration (tls_conf.c, tls_ctx.c) ---- */

/* listeners[].tls and upstreams[].tls: read every file and build the SSL_CTXs now, so
 * that -t and a reload report a bad certificate or key with its file. */
int pt_tls_server_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base);
int pt_tls_client_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base);
/* After the whole file: what depends on other keys (a listener's address, an upstream's
 * servers) and the shared zones of session caches and ticket keys. */
int pt_tls_conf_check(pt_conf_ctx *cx);

/* tls_ctx.c: the SSL_CTX of a certificate set, of an upstream; the error of the last
 * OpenSSL call as text (into buf). */
struct ssl_ctx_st *pt_tls_server_ctx(pt_conf_ctx *cx, config_setting_t *s, pt_tls_server *ts,
                                     const pt_tls_cert_set *set);
struct ssl_ctx_st *pt_tls_client_ctx(pt_conf_ctx *cx, config_setting_t *s, pt_tls_client *tc);
const char *pt_tls_error(char *buf, size_t len);

/* ---- the shared session cache (tls_cache.c) ---- */

#define PT_TLS_CACHE_ID_MAX   32          /* a session id's bytes */
#define PT_TLS_CACHE_DATA_MAX 4000        /* a serialised session's (one slab slot) */

/* The size of a zone for max sessions, and its set-up there: attaches to the cache a
 * reused zone holds (same geometry), else makes an empty one. PT_OK or PT_ERROR. */
size_t   pt_tls_cache_zone_size(uint32_t max);
int      pt_tls_cache_init(void *zone, size_t size, uint32_t max, bool reused);
/* Stores a session (replacing one with the same id), evicting the least recently used
 * when full. expires: realtime seconds. PT_OK; PT_DECLINED (id or data too long);
 * PT_ERROR (no lock, no room). who: for the log (the listener). */
int      pt_tls_cache_put(void *zone, const uint8_t *id, unsigned idlen, const uint8_t *data,
                          size_t len, uint64_t expires, const char *who);
/* Copies a session into buf (PT_TLS_CACHE_DATA_MAX bytes) and marks it recently used:
 * its length; 0 when there is none, or it had expired at now (it is then removed). */
size_t   pt_tls_cache_get(void *zone, const uint8_t *id, unsigned idlen, uint8_t *buf,
                          uint64_t now, const char *who);
void     pt_tls_cache_remove(void *zone, const uint8_t *id, unsigned idlen, const char *who);
uint64_t pt_tls_cache_count(void *zone);
/* Lists, index, counts and the slab consistent (tests; under no other user). */
int      pt_tls_cache_check(void *zone, char *err, size_t len);

/* ---- resumption (tls_session.c) ---- */

/* Declares the zones of ts (ticket keys, session cache) named after its listener. */
int  pt_tls_sessions_declare(pt_conf_ctx *cx, pt_tls_server *ts);
/* Installs the ticket and session cache callbacks on ctx. */
void pt_tls_sessions_install(pt_tls_server *ts, struct ssl_ctx_st *ctx);
/* Master: rotates the ticket keys of conf's listeners that are due; returns the ms until
 * the next rotation, -1 when there is none. */
int  pt_tls_master_tick(pt_conf *conf);

/* ---- the transport (xprt_tls.c) ---- */

extern const pt_xprt_ops pt_xprt_tls;

/* A TLS server session on an accepted TCP connection (x becomes a TLS transport; the
 * handshake has not started). PT_OK or PT_ERROR (no memory). */
int  pt_xprt_tls_accept(pt_xprt *x, pt_tls_server *ts);
/* A TLS client session on a connected origin connection to server of the upstream. */
int  pt_xprt_tls_connect(pt_xprt *x, const pt_tls_client *tc, unsigned server);
/* Drives the handshake: PT_OK (done), PT_AGAIN (wait for the readiness flags to change),
 * PT_ERROR (failed; *why says why, valid until the next call). */
int  pt_xprt_tls_handshake(pt_xprt *x, const char **why);
bool pt_xprt_tls_handshaking(const pt_xprt *x);
/* The protocol ALPN chose (len 0: none). */
void pt_xprt_tls_alpn(const pt_xprt *x, const unsigned char **proto, unsigned *len);
/* The client certificate the handshake verified: its subject (RFC 2253) and the SHA-256
 * of its DER form in hex, copied into pool. PT_DECLINED when there is none. */
int  pt_xprt_tls_peer(const pt_xprt *x, pt_pool *pool, pt_str *subject, pt_str *sha256);
/* For logs: "TLSv1.3", "TLS_AES_256_GCM_SHA384", resumed or not. */
const char *pt_xprt_tls_version(const pt_xprt *x);
const char *pt_xprt_tls_cipher(const pt_xprt *x);
bool pt_xprt_tls_resumed(const pt_xprt *x);
/* The client SSL_CTX's new-session callback: keeps the session to resume the next
 * connection to the same server with. */
struct ssl_st;
struct ssl_session_st;
int  pt_xprt_tls_client_session(struct ssl_st *s, struct ssl_session_st *sess);

#endif
