/* Configuration: a typed tree built from the libconfig file, one per generation.
 * Everything in it lives in conf->pool and is read-only once loaded; a reload builds a new
 * one and workers of the old generation keep theirs until they exit. */
#ifndef PT_CONF_T_H
#define PT_CONF_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <libconfig.h>

#include "portico/cidr-t.h"
#include "portico/h2-t.h"
#include "portico/str-t.h"
#include "portico/pool-t.h"

typedef struct pt_conf pt_conf;
typedef struct pt_conf_ctx pt_conf_ctx;
typedef struct pt_conf_text pt_conf_text;
typedef struct pt_conf_key pt_conf_key;
typedef struct pt_module pt_module;

/* Where a key may appear. */
#define PT_SCOPE_MAIN     0x1   /* top level */
#define PT_SCOPE_LISTENER 0x2   /* inside an element of listeners = ( ... ) */
#define PT_SCOPE_ROUTE    0x4   /* inside an element of routes = ( ... ) */
#define PT_SCOPE_FILTERS  0x8   /* inside the top-level filters = { ... } (definitions:
                                 * access lists, rules, limits), into the main conf */
#define PT_SCOPE_GLOBAL   0x10  /* inside filters.global = { ... }: what applies to every
                                 * request before routing, into the route conf of
                                 * conf->filters_global (a route-shaped scope) */

/* A setter parses one setting into base + key->offset; it reports its own errors with
 * pt_conf_error() and returns PT_OK or PT_ERROR. */
typedef int (*pt_conf_set_fn)(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k,
                              void *base);

struct pt_conf_key {
    const char     *name;
    unsigned        scope;     /* PT_SCOPE_* (module keys); ignored in nested tables */
    pt_conf_set_fn  set;
    size_t          offset;    /* into the module's conf struct of that scope */
    int64_t         min, max;  /* integer setters: inclusive range */
    const void     *arg;       /* setter-specific: nested key table, enum names, ... */
};

/* Loading context: where errors go and what is being built. */
struct pt_conf_ctx {
    pt_conf    *conf;
    pt_pool    *pool;
    const char *file;
    const pt_conf_text *text;  /* what libconfig parsed: gives settings their file and
                                * line (NULL: libconfig's own positions) */
    char        error[1024];   /* first error, "FILE:LINE: ..." */
    unsigned    errors;
};

typedef struct pt_limits {
    uint32_t max_connections;           /* per worker */
    uint32_t client_header_timeout_ms;
    uint32_t client_body_timeout_ms;
    uint32_t keepalive_timeout_ms;
    uint32_t send_timeout_ms;           /* a client that takes no bytes for this long */
    uint32_t drain_timeout_ms;          /* graceful stop / reload: in-flight requests */
    uint32_t drain_idle_grace_ms;       /* drain: idle keep-alive kept this long after use */
    uint32_t drain_close_spread_ms;     /* drain: closes of idle connections spread over */
    uint32_t client_body_min_rate;      /* bytes/s a body must average; 0 = no minimum */
    uint32_t client_header_min_rate;    /* bytes/s a head must average after the grace;
                                         * 0 = no minimum */
    uint32_t client_header_grace_ms;    /* a head's time before its rate counts */
    uint32_t max_header_size;           /* request line + header section */
    uint32_t max_target_size;           /* request-target */
    uint32_t max_headers;               /* header field count */
    uint64_t max_body_size;             /* 0 = unlimited */
} pt_limits;

typedef struct pt_listener_conf {
    unsigned                index;
    const char             *name;       /* "" when not named */
    const char             *address;    /* as written */
    struct sockaddr_storage addr;
    socklen_t               addrlen;
    int                     backlog;
    int                     line;
    bool                    proxy_protocol;           /* a PROXY header opens each connection */
    pt_cidr_list            proxy_protocol_trusted;   /* who may send one; empty: anyone */
    const pt_module        *handler;    /* answers every request on it, no routing (a
                                         * module's own listener: the admin listener) */
    struct pt_tls_server   *tls;        /* NULL: plain TCP (tls-t.h) */
    bool                    http2;      /* cleartext: h2 with prior knowledge, by preface */
    pt_h2_limits            h2;         /* every h2 connection of the listener */
    void                  **mod_conf;   /* by module index; NULL where a module has none */
} pt_listener_conf;

/* A route: conditions (all must hold) and the module that produces the content. The
 * same struct holds filters.global (global = true): no conditions, no content, only the
 * route confs of the modules whose keys may appear there. */
typedef struct pt_route {
    unsigned           index;          /* in conf->routes; UINT32_MAX for filters.global */
    int                line;
    const char        *name;           /* `name`, for metrics; NULL: none */
    bool               global;         /* conf->filters_global, not a route */
    pt_str             host;           /* lower-case; for "*.example.com": ".example.com" */
    bool               host_wildcard;
    bool               has_host;
    pt_str             path_prefix;    /* empty: any; lower-case with path_ignore_case */
    void              *path_regex;     /* pcre2_code *, NULL: none */
    bool               path_ignore_case; /* prefix and regex ignore ASCII case */
    void              *match_data;     /* pcre2_match_data * for path_regex */
    int                listener;       /* listener index, -1: any */
    uint32_t           methods;        /* bit (1 << pt_method) per known method; 0: any */
    pt_str            *method_names;   /* methods not in pt_method (PT_M_OTHER) */
    unsigned           nmethod_names;
    const pt_module   *content;        /* produces the response */
    void             **mod_conf;       /* by module index */
} pt_route;

/* Routes grouped for lookup: exact hosts and wildcard suffixes in hash tables, so that
 * thousands of hosts cost one probe per label, not a scan. */
typedef struct pt_route_bucket pt_route_bucket;
struct pt_route_bucket {
    pt_route_bucket *next;
    pt_str           key;        /* lower-case host or wildcard suffix (".example.com") */
    uint32_t         hash;
    unsigned        *routes;     /* route indices, ascending */
    unsigned         nroutes;
};

typedef struct pt_route_table {
    pt_route_bucket **exact;     /* nbuckets entries */
    pt_route_bucket **wild;
    uint32_t          nbuckets;  /* power of two */
    unsigned         *any;       /* routes without host, ascending */
    unsigned          nany;
    unsigned          max_labels;/* most labels in a wildcard suffix */
    struct pt_counter *refused_methods;   /* "route:methods": 405s for a route's methods */
} pt_route_table;

/* server_tokens: what the Server field of responses says. */
#define PT_SERVER_TOKENS_OFF      0     /* "off": no Server field at all */
#define PT_SERVER_TOKENS_NAME     1     /* false: "portico" */
#define PT_SERVER_TOKENS_VERSION  2     /* true: "portico/VERSION" */

struct pt_conf {
    pt_pool          *pool;
    const char       *file;
    unsigned          workers;
    bool              daemon;
    bool              request_id;   /* X-Request-Id kept or made for every request */
    const char       *user;       /* NULL: not set */
    bool              user_implied;   /* user is PT_DEFAULT_USER: the master is root and
                                         none was set (pt_process_user) */
    const char       *group;
    const char       *pid_file;
    unsigned          server_tokens;    /* PT_SERVER_TOKENS_* */
    uint32_t          worker_rlimit_nofile;   /* 0: not set (the inherited limits) */
    int               underscores_in_headers;   /* PT_H1_US_* */
    const char       *error_log_path;   /* "-" = stderr */
    int               error_log_level;  /* PT_LOG_* */
    int               error_log_facility;   /* syslog outputs */
    const char       *error_log_tag;
    pt_limits         limits;
    pt_listener_conf *listeners;
    unsigned          nlisteners;
    pt_route         *routes;
    unsigned          nroutes;
    pt_route_table    route_table;
    pt_route         *filters_global;   /* filters.global: never NULL once loaded */
    void            **main_conf;  /* by module index */
    void             *shm_zones;  /* pt_shm_zone list declared while loading (shm-t.h) */
    struct pt_upstream *upstreams; /* origin server groups (upstream-t.h) */
    unsigned          nupstreams;
};

#endif
