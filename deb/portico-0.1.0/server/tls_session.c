/* TLS session resumption shared by every worker, so that a session made on one worker
 * resumes on another (the kernel spreads a client's connections over them):
 *
 *   tickets  -- the keys that encrypt session tickets live in a zone per listener. The
 *               master makes them (RAND_bytes) and rotates them every
 *               ticket_key_rotation_s: the new key encrypts, the previous one still
 *               decrypts (and a ticket it opens is renewed), older ones are gone. So a
 *               ticket is accepted for one to two periods. Workers only read the keys,
 *               under a sequence counter (the master is the only writer).
 *   cache    -- sessions by id (TLS 1.2, and TLS 1.3 without tickets) in a zone per
 *               listener (tls_cache.c): a hash index and an LRU list over entries from
 *               the zone's slab allocator, all under the slab's lock; at most
 *               session_cache_size entries, the least recently used evicted first.
 * Both zones are named after the listener's address and kept across reloads (same name
 * and size), so sessions survive a HUP too. */
#include <stdio.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "portico/conf.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/shm.h"
#include "portico/tls.h"

/* ------------------------------------------------------------------ ticket keys */

#define TICKETS_MAGIC 0x7074746b65797331ull     /* "pttkeys1" */

typedef struct tickets_zone {
    uint64_t          magic;
    uint32_t          seq;          /* odd while the master writes the keys */
    uint32_t          nkeys;        /* 1, then 2 once rotated */
    uint64_t          period_ms;
    uint64_t          rotated_at;   /* CLOCK_MONOTONIC ms of the last new key */
    uint64_t          rotations;
    pt_tls_ticket_key key[2];       /* [0] encrypts, [1] the previous one */
} tickets_zone;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static int new_key(pt_tls_ticket_key *k)
{
    return RAND_bytes((unsigned char *) k, sizeof(*k)) == 1 ? PT_OK : PT_ERROR;
}

/* The master's side of the sequence counter. */
static void keys_write_begin(tickets_zone *z)
{
    __atomic_add_fetch(&z->seq, 1, __ATOMIC_ACQ_REL);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static void keys_write_end(tickets_zone *z)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_add_fetch(&z->seq, 1, __ATOMIC_ACQ_REL);
}

/* A worker's copy of the keys, consistent with one another. */
static bool keys_read(tickets_zone *z, pt_tls_ticket_key out[2], unsigned *n)
{
    for (int i = 0; i < 1000; i++) {
        uint32_t s1 = __atomic_load_n(&z->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        *n = __atomic_load_n(&z->nkeys, __ATOMIC_RELAXED);
        for (size_t b = 0; b < sizeof(z->key); b++)
            ((uint8_t *) out)[b] = __atomic_load_n((uint8_t *) z->key + b, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&z->seq, __ATOMIC_RELAXED) == s1)
            return *n >= 1 && *n <= 2;
    }
    return false;
}

static int tickets_init(pt_shm_zone *zone, bool reused)
{
    pt_tls_server *ts = zone->data;
    tickets_zone *z = zone->addr;
    if (!reused || z->magic != TICKETS_MAGIC) {
        memset(z, 0, sizeof(*z));
        if (new_key(&z->key[0]) != PT_OK) {
            pt_log(PT_LOG_EMERG, "RAND_bytes() failed for a TLS ticket key");
            return PT_ERROR;
        }
        z->nkeys = 1;
        z->rotated_at = mono_ms();
        z->magic = TICKETS_MAGIC;
    }
    /* a reload may change the period; the current key keeps its age */
    z->period_ms = (uint64_t) ts->ticket_key_rotation_s * 1000;
    return PT_OK;
}

int pt_tls_master_tick(pt_conf *conf)
{
    uint64_t now = mono_ms(), next = UINT64_MAX;
    for (unsigned i = 0; conf && i < conf->nlisteners; i++) {
        pt_tls_server *ts = conf->listeners[i].tls;
        if (ts == NULL || ts->tickets == NULL || ts->tickets->addr == NULL)
            continue;
        tickets_zone *z = ts->tickets->addr;
        if (now >= z->rotated_at + z->period_ms) {
            pt_tls_ticket_key k;
            if (new_key(&k) != PT_OK) {
                pt_log(PT_LOG_ALERT, "RAND_bytes() failed: TLS ticket keys of %s not rotated",
                       ts->address);
            } else {
                keys_write_begin(z);
                z->key[1] = z->key[0];
                z->key[0] = k;
                z->nkeys = 2;
                keys_write_end(z);
                OPENSSL_cleanse(&k, sizeof(k));
                z->rotations++;
                pt_log(PT_LOG_INFO, "TLS session ticket keys of %s rotated (%llu)",
                       ts->address, (unsigned long long) z->rotations);
            }
            z->rotated_at = now;
        }
        next = pt_min(next, z->rotated_at + z->period_ms - now);
    }
    return next == UINT64_MAX ? -1 : (int) pt_min(next, (uint64_t) 3600000);
}

static int ticket_mac(EVP_MAC_CTX *hctx, const uint8_t *key)
{
    OSSL_PARAM p[3];
    p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *) key, 32);
    p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
    p[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, p);
}

/* OpenSSL asks for the key to encrypt a new ticket (enc) or the one named in a ticket a
 * client brought back: 1 found, 2 found but old (issue a fresh ticket), 0 unknown (full
 * handshake), -1 error. */
static int ticket_cb(SSL *s, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    const pt_tls_server *ts = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    pt_tls_ticket_key keys[2];
    unsigned n;
    int rc = 0;

    if (ts == NULL || ts->tickets == NULL || ts->tickets->addr == NULL
        || !keys_read(ts->tickets->addr, keys, &n))
        return enc ? -1 : 0;
    if (enc) {
        memcpy(name, keys[0].name, 16);
        rc = RAND_bytes(iv, 16) == 1
             && EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, keys[0].aes, iv)
             && ticket_mac(hctx, keys[0].hmac) ? 1 : -1;
    } else {
        for (unsigned i = 0; i < n; i++) {
            if (memcmp(name, keys[i].name, 16) != 0)
                continue;
            rc = ticket_mac(hctx, keys[i].hmac)
                 && EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, keys[i].aes, iv)
                 ? (i == 0 ? 1 : 2) : -1;
            break;
        }
    }
    OPENSSL_cleanse(keys, sizeof(keys));
    return rc;
}

/* ------------------------------------------------------------------ session cache */

/* The cache itself is tls_cache.c; here OpenSSL's callbacks (de)serialise sessions. */

static int sessions_init(pt_shm_zone *zone, bool reused)
{
    pt_tls_server *ts = zone->data;
    return pt_tls_cache_init(zone->addr, zone->size, ts->session_cache_size, reused);
}

static void *cache_of(const pt_tls_server *ts)
{
    return ts && ts->sessions ? ts->sessions->addr : NULL;
}

static int new_session_cb(SSL *s, SSL_SESSION *sess)
{
    const pt_tls_server *ts = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    uint8_t buf[PT_TLS_CACHE_DATA_MAX];
    unsigned idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);

    /* TLS 1.3 with tickets: the ticket is the session, nothing to keep here */
    if (SSL_version(s) >= TLS1_3_VERSION && !(SSL_get_options(s) & SSL_OP_NO_TICKET))
        return 0;
    int len = i2d_SSL_SESSION(sess, NULL);
    if (len <= 0 || (size_t) len > sizeof(buf)) {
        pt_debug("TLS session of %d bytes not cached (at most %zu)", len, sizeof(buf));
        return 0;
    }
    unsigned char *p = buf;
    i2d_SSL_SESSION(sess, &p);
    uint64_t expires = (uint64_t) SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess);
    pt_tls_cache_put(cache_of(ts), id, idlen, buf, (size_t) len, expires, ts->address);
    return 0;                           /* OpenSSL keeps its reference */
}

static SSL_SESSION *get_session_cb(SSL *s, const unsigned char *id, int idlen, int *copy)
{
    const pt_tls_server *ts = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    uint8_t buf[PT_TLS_CACHE_DATA_MAX];

    *copy = 0;
    if (idlen <= 0)
        return NULL;
    size_t len = pt_tls_cache_get(cache_of(ts), id, (unsigned) idlen, buf,
                                  (uint64_t) time(NULL), ts->address);
    if (len == 0)
        return NULL;
    const unsigned char *p = buf;
    return d2i_SSL_SESSION(NULL, &p, (long) len);
}

static void remove_session_cb(SSL_CTX *ctx, SSL_SESSION *sess)
{
    const pt_tls_server *ts = SSL_CTX_get_app_data(ctx);
    unsigned idlen;
    const unsigned char *id = SSL_SESSION_get_id(sess, &idlen);
    pt_tls_cache_remove(cache_of(ts), id, idlen, ts->address);
}

/* ------------------------------------------------------------------ per listener */

int pt_tls_sessions_declare(pt_conf_ctx *cx, pt_tls_server *ts)
{
    char name[64];
    if (ts->session_tickets) {
        snprintf(name, sizeof(name), "tls_tickets %s", ts->address);
        ts->tickets = pt_shm_declare(cx, name, sizeof(tickets_zone), tickets_init, ts);
        if (ts->tickets == NULL)
            return PT_ERROR;
    }
    if (ts->session_cache_size) {
        snprintf(name, sizeof(name), "tls_sessions %s", ts->address);
        ts->sessions = pt_shm_declare(cx, name, pt_tls_cache_zone_size(ts->session_cache_size),
                                      sessions_init, ts);
        if (ts->sessions == NULL)
            return PT_ERROR;
    }
    return PT_OK;
}

/* A session resumes only on the listener it was made on, and only while the rules that
 * verified its client still hold: the session id context is a digest of the listener's
 * address and its client verification (mode, CA file and its contents). */
static void session_context(const pt_tls_server *ts, unsigned char out[32])
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned len = 32;
    memset(out, 0, 32);
    if (h == NULL || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(h);
        snprintf((char *) out, 32, "%s", ts->address);
        return;
    }
    EVP_DigestUpdate(h, "portico tls ", 12);
    EVP_DigestUpdate(h, ts->address, strlen(ts->address) + 1);
    EVP_DigestUpdate(h, &ts->verify_client, sizeof(ts->verify_client));
    if (ts->client_ca) {
        EVP_DigestUpdate(h, ts->client_ca, strlen(ts->client_ca) + 1);
        FILE *f = fopen(ts->client_ca, "r");
        char b[4096];
        size_t n;
        while (f && (n = fread(b, 1, sizeof(b), f)) > 0)
            EVP_DigestUpdate(h, b, n);
        if (f)
            fclose(f);
    }
    EVP_DigestFinal_ex(h, out, &len);
    EVP_MD_CTX_free(h);
}

void pt_tls_sessions_install(pt_tls_server *ts, SSL_CTX *ctx)
{
    unsigned char sid[32];
    session_context(ts, sid);
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid));
    if (ts->session_tickets)
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    else
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    if (ts->session_cache_size) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
        SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
        SSL_CTX_sess_set_get_cb(ctx, get_session_cb);
        SSL_CTX_sess_set_remove_cb(ctx, remove_session_cb);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    /* TLS 1.3 sends tickets after every handshake unless told not to: with neither
     * tickets nor a cache they could never be used */
    if (!ts->session_tickets && !ts->session_cache_size)
        SSL_CTX_set_num_tickets(ctx, 0);
}
