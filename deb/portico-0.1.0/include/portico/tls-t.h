/* TLS: listeners that terminate it (pt_tls_server) and upstreams that speak it to their
 * origins (pt_tls_client). Both are configuration: built by the master when the file is
 * loaded (it reads every key and certificate, before workers drop root) and read-only
 * afterwards. The transport itself is server/xprt_tls.c; the handshake of a client
 * connection is a stage of the accept pipeline (server/accept.c).
 *
 * OpenSSL types appear only as incomplete structs here, so that a reader of the data
 * model needs no OpenSSL header. */
#ifndef PT_TLS_T_H
#define PT_TLS_T_H

#include <stdbool.h>
#include <stdint.h>

#include "portico/shm-t.h"
#include "portico/str-t.h"

struct ssl_ctx_st;
struct x509_st;
struct evp_pkey_st;
struct stack_st_X509;

typedef struct pt_tls_server pt_tls_server;
typedef struct pt_tls_client pt_tls_client;

/* ---- names: the SNI lookup ---- */

/* Exact names and wildcard suffixes ("*.example.net" is kept as ".example.net") in two
 * hash tables: a name costs one probe in each, whatever the number of certificates. */
typedef struct pt_tls_name pt_tls_name;
struct pt_tls_name {
    pt_tls_name *next;
    uint32_t     hash;
    uint32_t     len;
    const char  *key;            /* lower-case, no trailing dot */
    void        *value;
};

typedef struct pt_tls_names {
    pt_tls_name **exact;
    pt_tls_name **wild;
    uint32_t      mask;          /* buckets - 1 (a power of two) */
    unsigned      n;
} pt_tls_names;

/* ---- a listener's TLS ---- */

enum { PT_TLS_KEY_RSA = 0, PT_TLS_KEY_EC, PT_TLS_KEY_OTHER, PT_TLS_KEY_TYPES };
enum { PT_TLS_VERIFY_OFF = 0, PT_TLS_VERIFY_OPTIONAL, PT_TLS_VERIFY_REQUIRED };

/* One entry of certificates = ( ... ): read and checked when the key is parsed. */
typedef struct pt_tls_cert {
    const char            *cert_file;
    const char            *key_file;
    int                    line;
    int                    key_type;     /* PT_TLS_KEY_* */
    struct x509_st        *x509;
    struct evp_pkey_st    *pkey;
    struct stack_st_X509  *chain;        /* the certificates after the first in its file */
    char                 **names;        /* SAN DNS names (or the CN), lower-case */
    unsigned               nnames;
    unsigned               index;
} pt_tls_cert;

/* The keys a listener's certificates serve one name with: at most one per key type. An
 * SSL_CTX is built per distinct set; an RSA and an ECDSA certificate for the same name
 * share one, and OpenSSL gives each client the one it supports. */
typedef struct pt_tls_cert_set {
    int                cert[PT_TLS_KEY_TYPES];   /* certificate index, -1: none */
    struct ssl_ctx_st *ctx;
} pt_tls_cert_set;

struct pt_tls_server {
    /* keys */
    pt_tls_cert       *certs;
    unsigned           ncerts;
    int                min_version;          /* TLS1_2_VERSION, ... */
    const char        *ciphers;              /* TLS 1.2 and below */
    const char        *ciphersuites;         /* TLS 1.3 */
    unsigned char     *alpn;                 /* wire format: length-prefixed names */
    unsigned           alpn_len;
    bool               session_tickets;
    uint32_t           ticket_key_rotation_s;
    uint32_t           session_cache_size;   /* sessions; 0: no cache */
    uint32_t           session_timeout_s;
    uint32_t           handshake_timeout_ms;
    const char        *client_ca;
    int                verify_client;        /* PT_TLS_VERIFY_* */
    int                line;

    /* built by pt_tls_conf_check */
    const char        *address;              /* the listener's, for logs */
    pt_tls_cert_set   *sets;
    unsigned           nsets;
    struct ssl_ctx_st *ctx;                  /* the default certificate's: handshakes
                                              * start on it (its session cache, tickets) */
    pt_tls_names       names;                /* SNI name -> SSL_CTX */
    void              *client_store;         /* X509_STORE of client_ca, shared by sets */
    void              *client_names;         /* STACK_OF(X509_NAME): the CAs named to
                                              * clients in the certificate request */
    pt_shm_zone       *tickets;              /* ticket keys (NULL: no tickets) */
    pt_shm_zone       *sessions;             /* session cache (NULL: none) */
};

/* ---- an upstream's TLS ---- */

struct pt_tls_client {
    bool               verify;
    const char        *ca;                   /* NULL: the system's default CA paths */
    const char        *sni;                  /* NULL: each server's host name */
    int                line;
    unsigned           index;                /* among the upstreams with TLS */
    unsigned           nservers;
    struct ssl_ctx_st *ctx;
    const char       **names;                /* by server index: SNI and the name verified
                                              * (NULL: an IP address: no SNI, verified as
                                              * an IP) */
    const char       **ips;                  /* by server index: the IP verified, or NULL */
};

/* ---- ticket keys, in the zone the master rotates them in ---- */

typedef struct pt_tls_ticket_key {
    uint8_t name[16];
    uint8_t aes[32];
    uint8_t hmac[32];
} pt_tls_ticket_key;

#endif
