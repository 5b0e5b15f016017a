/* TLS configuration: a listener's `tls = { ... }` and an upstream's. Certificates and keys
 * are read here, by whoever loads the file: the master (before its workers drop root, so
 * a key readable by root alone works; workers never open one), -t, and a reload, which
 * keeps the running configuration when a file is bad. Every error names the file:
 *   portico.conf:12: key 'listeners[0].tls.certificates[1].key': /etc/portico/b.key:
 *   the key does not match the certificate /etc/portico/b.pem */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/str.h"
#include "portico/tls.h"
#include "portico/upstream.h"
#include "http_core.h"

#define PT_TLS_MAX_CERTS 100000

/* ------------------------------------------------------------------ files */

static void x509_free(void *p)
{
    X509_free(p);
}

static void pkey_free(void *p)
{
    EVP_PKEY_free(p);
}

static void chain_free(void *p)
{
    sk_X509_pop_free(p, X509_free);
}

static BIO *open_file(pt_conf_ctx *cx, config_setting_t *s, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        pt_conf_error(cx, s, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    BIO *b = BIO_new_fp(f, BIO_CLOSE);
    if (b == NULL) {
        fclose(f);
        pt_conf_error(cx, s, "%s: out of memory", path);
    }
    return b;
}

/* No passphrase can be typed to a server that starts unattended. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static void time_text(const ASN1_TIME *t, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    buf[0] = '\0';
    if (b && ASN1_TIME_print(b, t)) {
        int n = BIO_read(b, buf, (int) len - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

static int add_name(pt_conf_ctx *cx, pt_tls_cert *c, const char *v, size_t len,
                    unsigned cap)
{
    if (c->nnames >= cap)
        return PT_OK;
    if (len && v[len - 1] == '.')
        len--;
    if (!pt_tls_name_valid(v, len))
        return PT_OK;                   /* not a DNS name a client can send: no SNI entry */
    char *n = pt_palloc(cx->pool, len + 1);
    if (n == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (size_t i = 0; i < len; i++)
        n[i] = (char) pt_tolower(v[i]);
    n[len] = '\0';
    c->names[c->nnames++] = n;
    return PT_OK;
}

/* The names a client may ask for: the DNS names of subjectAltName, or with none, the
 * subject's CN (RFC 6125: a client ignores the CN when a SAN is there). */
static int cert_names(pt_conf_ctx *cx, config_setting_t *s, pt_tls_cert *c)
{
    GENERAL_NAMES *san = X509_get_ext_d2i(c->x509, NID_subject_alt_name, NULL, NULL);
    int n = san ? sk_GENERAL_NAME_num(san) : 0;
    unsigned cap = (unsigned) (n > 0 ? n : 1);

    c->names = pt_palloc(cx->pool, cap * sizeof(char *));
    if (c->names == NULL) {
        GENERAL_NAMES_free(san);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);
        if (g->type != GEN_DNS)
            continue;
        const ASN1_IA5STRING *d = g->d.dNSName;
        if (add_name(cx, c, (const char *) ASN1_STRING_get0_data(d),
                     (size_t) ASN1_STRING_length(d), cap) != PT_OK) {
            GENERAL_NAMES_free(san);
            return PT_ERROR;
        }
    }
    bool had_san = san != NULL && n > 0;
    GENERAL_NAMES_free(san);
    if (!had_san) {
        const X509_NAME *subj = X509_get_subject_name(c->x509);
        int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (i >= 0) {
            const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
            if (add_name(cx, c, (const char *) ASN1_STRING_get0_data(cn),
                         (size_t) ASN1_STRING_length(cn), cap) != PT_OK)
                return PT_ERROR;
        }
    }
    if (c->nnames == 0)
        return pt_conf_error(cx, s, "%s: the certificate names no host (no DNS name in "
                             "subjectAltName, no CN)", c->cert_file);
    return PT_OK;
}

static int load_cert(pt_conf_ctx *cx, config_setting_t *cs, config_setting_t *ks,
                     pt_tls_cert *c)
{
    char err[256];

    BIO *b = open_file(cx, cs, c->cert_file);
    if (b == NULL)
        return PT_ERROR;
    ERR_clear_error();
    c->x509 = PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL);
    if (c->x509 == NULL || pt_pool_cleanup_add(cx->pool, x509_free, c->x509) != PT_OK) {
        BIO_free(b);
        X509_free(c->x509);
        c->x509 = NULL;
        return pt_conf_error(cx, cs, "%s: no PEM certificate in it (%s)", c->cert_file,
                             pt_tls_error(err, sizeof(err)));
    }
    /* the rest of the file: the chain to send after it (intermediates) */
    c->chain = sk_X509_new_null();
    if (c->chain == NULL || pt_pool_cleanup_add(cx->pool, chain_free, c->chain) != PT_OK) {
        BIO_free(b);
        sk_X509_free(c->chain);
        return pt_conf_error(cx, NULL, "out of memory");
    }
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
        if (!sk_X509_push(c->chain, x)) {
            X509_free(x);
            BIO_free(b);
            return pt_conf_error(cx, NULL, "out of memory");
        }
    }
    unsigned long e = ERR_peek_last_error();
    BIO_free(b);
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
        return pt_conf_error(cx, cs, "%s: a certificate after the first cannot be read (%s)",
                             c->cert_file, pt_tls_error(err, sizeof(err)));
    ERR_clear_error();

    const ASN1_TIME *na = X509_get0_notAfter(c->x509);
    if (X509_cmp_current_time(na) <= 0) {
        char t[64];
        time_text(na, t, sizeof(t));
        return pt_conf_error(cx, cs, "%s: the certificate has expired (not after %s)",
                             c->cert_file, t);
    }

    b = open_file(cx, ks, c->key_file);
    if (b == NULL)
        return PT_ERROR;
    c->pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (c->pkey == NULL || pt_pool_cleanup_add(cx->pool, pkey_free, c->pkey) != PT_OK) {
        EVP_PKEY_free(c->pkey);
        c->pkey = NULL;
        return pt_conf_error(cx, ks, "%s: no PEM private key in it, or an encrypted one "
                             "(portico reads no passphrase) (%s)", c->key_file,
                             pt_tls_error(err, sizeof(err)));
    }
    if (!X509_check_private_key(c->x509, c->pkey)) {
        ERR_clear_error();
        return pt_conf_error(cx, ks, "%s: the key does not match the certificate %s",
                             c->key_file, c->cert_file);
    }
    switch (EVP_PKEY_get_base_id(c->pkey)) {
    case EVP_PKEY_RSA:
        c->key_type = PT_TLS_KEY_RSA;
        break;
    case EVP_PKEY_EC:
        c->key_type = PT_TLS_KEY_EC;
        break;
    default:
        c->key_type = PT_TLS_KEY_OTHER;
        break;
    }
    return cert_names(cx, cs, c);
}

/* ------------------------------------------------------------------ listeners */

static const pt_conf_key cert_keys[] = {
    { "cert", 0, pt_conf_set_str, offsetof(pt_tls_cert, cert_file), 1, 4095, NULL },
    { "key", 0, pt_conf_set_str, offsetof(pt_tls_cert, key_file), 1, 4095, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

static int set_certificates(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                            void *base)
{
    pt_tls_server *ts = base;
    if (!config_setting_is_list(s))
        return pt_conf_type_error(cx, s, "a list ( { cert = \"...\"; key = \"...\"; }, ... )");
    unsigned n = (unsigned) config_setting_length(s);
    if (n == 0)
        return pt_conf_error(cx, s, "empty: a TLS listener needs a certificate");
    if (n > PT_TLS_MAX_CERTS)
        return pt_conf_error(cx, s, "%u certificates: at most %u", n, PT_TLS_MAX_CERTS);
    ts->certs = pt_pcalloc(cx->pool, n * sizeof(pt_tls_cert));
    if (ts->certs == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        pt_tls_cert *c = &ts->certs[i];
        c->index = i;
        c->line = (int) pt_conf_setting_line(cx, e);
        if (pt_conf_parse_group(cx, e, cert_keys, c) != PT_OK)
            return PT_ERROR;
        if (c->cert_file == NULL)
            return pt_conf_error(cx, e, "missing key 'cert'");
        if (c->key_file == NULL)
            return pt_conf_error(cx, e, "missing key 'key'");
        if (load_cert(cx, config_setting_get_member(e, "cert"),
                      config_setting_get_member(e, "key"), c) != PT_OK)
            return PT_ERROR;
        ts->ncerts = i + 1;
    }
    return PT_OK;
}

/* In PT_TLS_VERIFY_* order. */
static const char *const verify_modes[] = { "off", "optional", "required", NULL };
static const char *const versions[] = { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL };
static const int version_ids[] = { TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
                                   TLS1_3_VERSION };

static int set_min_version(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    int i;
    if (pt_conf_set_enum(cx, s, k, &i) != PT_OK)
        return PT_ERROR;
    ((pt_tls_server *) base)->min_version = version_ids[i];
    return PT_OK;
}

/* The protocols a session exists for: the choice of session is made from this name
 * (pt_conn_session_for_alpn), so a name here must be one it knows. */
static int set_alpn(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    pt_tls_server *ts = base;
    pt_str_list l = { NULL, 0 };
    pt_conf_key lk = { k->name, 0, pt_conf_set_str_list, 0, 0, 0, NULL };
    if (pt_conf_set_str_list(cx, s, &lk, &l) != PT_OK)
        return PT_ERROR;
    size_t len = 0;
    for (unsigned i = 0; i < l.n; i++) {
        config_setting_t *e = config_setting_get_elem(s, i);
        if (l.s[i].len == 0
            || pt_conn_session_for_alpn((const unsigned char *) l.s[i].data,
                                     (unsigned) l.s[i].len) == NULL) {
#ifndef PT_HAVE_NGHTTP2
            if (pt_str_eq(l.s[i], PT_STR("h2")))
                return pt_conf_error(cx, e, "\"h2\": portico was built without HTTP/2 "
                                     "(configure --without-nghttp2)");
#endif
            return pt_conf_error(cx, e, "\"%s\": not a protocol portico speaks (h2, http/1.1)",
                                 l.s[i].data);
        }
        for (unsigned j = 0; j < i; j++)
            if (pt_str_eq(l.s[i], l.s[j]))
                return pt_conf_error(cx, e, "\"%s\" is listed twice", l.s[i].data);
        len += 1 + l.s[i].len;
    }
    ts->alpn = pt_palloc(cx->pool, len ? len : 1);
    if (ts->alpn == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    unsigned char *p = ts->alpn;
    for (unsigned i = 0; i < l.n; i++) {
        *p++ = (unsigned char) l.s[i].len;
        memcpy(p, l.s[i].data, l.s[i].len);
        p += l.s[i].len;
    }
    ts->alpn_len = (unsigned) len;
    return PT_OK;
}

#define TS_KEY(name, set, field, min, max, arg) \
    { name, 0, set, offsetof(pt_tls_server, field), min, max, arg }

static const pt_conf_key server_keys[] = {
    { "certificates", 0, set_certificates, 0, 0, 0, NULL },
    { "min_version", 0, set_min_version, 0, 0, 0, versions },
    TS_KEY("ciphers", pt_conf_set_str, ciphers, 1, 4096, NULL),
    TS_KEY("ciphersuites", pt_conf_set_str, ciphersuites, 1, 4096, NULL),
    { "alpn", 0, set_alpn, 0, 0, 0, NULL },
    TS_KEY("session_tickets", pt_conf_set_bool, session_tickets, 0, 0, NULL),
    TS_KEY("ticket_key_rotation_s", pt_conf_set_uint32, ticket_key_rotation_s, 1, 604800, NULL),
    TS_KEY("session_cache_size", pt_conf_set_uint32, session_cache_size, 0, 1000000, NULL),
    TS_KEY("session_timeout_s", pt_conf_set_uint32, session_timeout_s, 1, 86400, NULL),
    TS_KEY("handshake_timeout_ms", pt_conf_set_uint32, handshake_timeout_ms, 1, 86400000, NULL),
    TS_KEY("client_ca", pt_conf_set_str, client_ca, 1, 4095, NULL),
    TS_KEY("verify_client", pt_conf_set_enum, verify_client, 0, 0, verify_modes),
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

/* Which certificates serve each name: at most one per key type; the same name twice
 * with the same key type is a mistake (which one would a client get?). */
typedef struct name_slots {
    int cert[PT_TLS_KEY_TYPES];
    unsigned set;
} name_slots;

static const char *key_type_name(int t)
{
    return t == PT_TLS_KEY_RSA ? "RSA" : t == PT_TLS_KEY_EC ? "ECDSA" : "other";
}

/* An open-addressing map from a slot triple to its set, to give each distinct
 * combination one SSL_CTX. */
static int set_of(pt_conf_ctx *cx, pt_tls_server *ts, unsigned *map, unsigned mapsize,
                  const name_slots *ns)
{
    uint32_t h = 2166136261u;
    for (int t = 0; t < PT_TLS_KEY_TYPES; t++)
        h = (h ^ (uint32_t) (ns->cert[t] + 1)) * 16777619u;
    for (uint32_t i = h & (mapsize - 1);; i = (i + 1) & (mapsize - 1)) {
        if (map[i] == 0) {
            pt_tls_cert_set *set = &ts->sets[ts->nsets];
            memcpy(set->cert, ns->cert, sizeof(set->cert));
            map[i] = ++ts->nsets;
            return (int) (map[i] - 1);
        }
        if (memcmp(ts->sets[map[i] - 1].cert, ns->cert, sizeof(ns->cert)) == 0)
            return (int) (map[i] - 1);
    }
}

static int build_sets(pt_conf_ctx *cx, config_setting_t *s, pt_tls_server *ts)
{
    config_setting_t *list = config_setting_get_member(s, "certificates");
    unsigned total = 0;
    for (unsigned i = 0; i < ts->ncerts; i++)
        total += ts->certs[i].nnames;

    pt_tls_names slots;
    if (pt_tls_names_init(&slots, cx->pool, total) != PT_OK)
        return pt_conf_error(cx, NULL, "out of memory");
    name_slots *all = pt_palloc(cx->pool, total * sizeof(name_slots));
    const char **first = pt_palloc(cx->pool, total * sizeof(char *));
    if (all == NULL || first == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    unsigned nslots = 0;

    for (unsigned i = 0; i < ts->ncerts; i++) {
        pt_tls_cert *c = &ts->certs[i];
        for (unsigned j = 0; j < c->nnames; j++) {
            void *old = NULL;
            name_slots *ns = &all[nslots];
            for (int t = 0; t < PT_TLS_KEY_TYPES; t++)
                ns->cert[t] = -1;
            int rc = pt_tls_names_add(&slots, cx->pool, c->names[j], strlen(c->names[j]),
                                      ns, &old);
            if (rc == PT_ERROR)
                return pt_conf_error(cx, NULL, "out of memory");
            if (rc == PT_OK) {
                first[nslots++] = c->names[j];
            } else if (old == NULL) {
                continue;               /* not a name (cannot happen: checked at load) */
            } else {
                ns = old;
            }
            if (ns->cert[c->key_type] >= 0 && (unsigned) ns->cert[c->key_type] != i)
                return pt_conf_error(cx, config_setting_get_elem(list, i), "%s: %s is "
                                     "already served by certificates[%d] (%s), of the same "
                                     "key type (%s)", c->cert_file, c->names[j],
                                     ns->cert[c->key_type],
                                     ts->certs[ns->cert[c->key_type]].cert_file,
                                     key_type_name(c->key_type));
            ns->cert[c->key_type] = (int) i;
        }
    }

    unsigned mapsize = 16;
    while (mapsize < nslots * 2)
        mapsize <<= 1;
    unsigned *map = pt_pcalloc(cx->pool, mapsize * sizeof(unsigned));
    ts->sets = pt_pcalloc(cx->pool, (nslots ? nslots : 1) * sizeof(pt_tls_cert_set));
    if (map == NULL || ts->sets == NULL
        || pt_tls_names_init(&ts->names, cx->pool, nslots) != PT_OK)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < nslots; i++)
        all[i].set = (unsigned) set_of(cx, ts, map, mapsize, &all[i]);
    for (unsigned i = 0; i < ts->nsets; i++) {
        ts->sets[i].ctx = pt_tls_server_ctx(cx, s, ts, &ts->sets[i]);
        if (ts->sets[i].ctx == NULL)
            return PT_ERROR;
    }
    for (unsigned i = 0; i < nslots; i++)
        if (pt_tls_names_add(&ts->names, cx->pool, first[i], strlen(first[i]),
                             ts->sets[all[i].set].ctx, NULL) == PT_ERROR)
            return pt_conf_error(cx, NULL, "out of memory");
    /* the first certificate is the default: the set its first name is served with */
    ts->ctx = pt_tls_names_find(&ts->names, ts->certs[0].names[0],
                                strlen(ts->certs[0].names[0]));
    return PT_OK;
}

int pt_tls_server_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    pt_tls_server **slot = (pt_tls_server **) ((char *) base + k->offset);
    pt_tls_server *ts = pt_pcalloc(cx->pool, sizeof(*ts));
    if (ts == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    ts->min_version = TLS1_2_VERSION;
    ts->session_tickets = true;
    ts->ticket_key_rotation_s = 3600;
    ts->session_cache_size = 20000;
    ts->session_timeout_s = 300;
    ts->handshake_timeout_ms = 10000;
    ts->verify_client = PT_TLS_VERIFY_OFF;
    ts->line = (int) pt_conf_setting_line(cx, s);
    static unsigned char h11[] = "\x08http/1.1";
    ts->alpn = h11;
    ts->alpn_len = sizeof(h11) - 1;

    if (pt_conf_parse_group(cx, s, server_keys, ts) != PT_OK)
        return PT_ERROR;
    if (ts->ncerts == 0)
        return pt_conf_error(cx, s, "missing key 'certificates'");
    if (ts->verify_client != PT_TLS_VERIFY_OFF && ts->client_ca == NULL)
        return pt_conf_error(cx, config_setting_get_member(s, "verify_client"),
                             "\"%s\" needs client_ca (the CAs client certificates are "
                             "verified against)", verify_modes[ts->verify_client]);
    if (ts->client_ca && ts->verify_client == PT_TLS_VERIFY_OFF)
        return pt_conf_error(cx, config_setting_get_member(s, "client_ca"),
                             "client certificates are not asked for: set verify_client "
                             "to \"optional\" or \"required\"");
    if (build_sets(cx, s, ts) != PT_OK)
        return PT_ERROR;
    *slot = ts;
    return PT_OK;
}

/* ------------------------------------------------------------------ upstreams */

static int set_sni(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (pt_conf_set_str(cx, s, k, base) != PT_OK)
        return PT_ERROR;
    const char *v = *(const char **) ((char *) base + k->offset);
    if (!pt_tls_name_valid(v, strlen(v)) || v[0] == '*')
        return pt_conf_error(cx, s, "\"%s\" is not a host name", v);
    return PT_OK;
}

static const pt_conf_key client_keys[] = {
    { "verify", 0, pt_conf_set_bool, offsetof(pt_tls_client, verify), 0, 0, NULL },
    { "ca", 0, pt_conf_set_str, offsetof(pt_tls_client, ca), 1, 4095, NULL },
    { "sni", 0, set_sni, offsetof(pt_tls_client, sni), 1, 253, NULL },
    { NULL, 0, NULL, 0, 0, 0, NULL }
};

int pt_tls_client_conf_set(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                           void *base)
{
    pt_tls_client **slot = (pt_tls_client **) ((char *) base + k->offset);
    pt_tls_client *tc = pt_pcalloc(cx->pool, sizeof(*tc));
    if (tc == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    tc->verify = true;
    tc->line = (int) pt_conf_setting_line(cx, s);
    if (pt_conf_parse_group(cx, s, client_keys, tc) != PT_OK)
        return PT_ERROR;
    if (tc->ca && !tc->verify)
        return pt_conf_error(cx, config_setting_get_member(s, "ca"),
                             "origin certificates are not verified (verify = false): "
                             "remove ca, or verify");
    tc->ctx = pt_tls_client_ctx(cx, s, tc);
    if (tc->ctx == NULL)
        return PT_ERROR;
    *slot = tc;
    return PT_OK;
}

/* What each server of an upstream is called: the name sent in SNI and verified, or the
 * IP address verified (a client sends no SNI for an address, RFC 6066 §3). */
static int client_names(pt_conf_ctx *cx, pt_upstream *up, pt_tls_client *tc)
{
    tc->nservers = up->nservers;
    tc->names = pt_pcalloc(cx->pool, up->nservers * sizeof(char *));
    tc->ips = pt_pcalloc(cx->pool, up->nservers * sizeof(char *));
    if (tc->names == NULL || tc->ips == NULL)
        return pt_conf_error(cx, NULL, "out of memory");
    for (unsigned i = 0; i < up->nservers; i++) {
        const char *a = up->servers[i].address;
        const char *colon = strrchr(a, ':');
        size_t len = colon ? (size_t) (colon - a) : strlen(a);
        if (len >= 2 && a[0] == '[') {
            a++;
            len -= 2;
        }
        char *host = pt_pstrndup(cx->pool, a, len);
        if (host == NULL)
            return pt_conf_error(cx, NULL, "out of memory");
        unsigned char buf[16];
        bool ip = inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
        if (tc->sni)
            tc->names[i] = tc->sni;
        else if (!ip)
            tc->names[i] = host;
        if (ip && tc->sni == NULL)
            tc->ips[i] = host;
    }
    return PT_OK;
}

/* ------------------------------------------------------------------ after the file */

int pt_tls_conf_check(pt_conf_ctx *cx)
{
    pt_conf *conf = cx->conf;
    unsigned nclients = 0;

    for (unsigned i = 0; i < conf->nlisteners; i++) {
        pt_tls_server *ts = conf->listeners[i].tls;
        if (ts == NULL)
            continue;
        ts->address = conf->listeners[i].address;
        if (pt_tls_sessions_declare(cx, ts) != PT_OK)
            return PT_ERROR;
        for (unsigned j = 0; j < ts->nsets; j++)
            pt_tls_sessions_install(ts, ts->sets[j].ctx);
    }
    for (unsigned i = 0; i < conf->nupstreams; i++) {
        pt_tls_client *tc = conf->upstreams[i].tls;
        if (tc == NULL)
            continue;
        tc->index = nclients++;
        if (client_names(cx, &conf->upstreams[i], tc) != PT_OK)
            return PT_ERROR;
    }
    return PT_OK;
}
