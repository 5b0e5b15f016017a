/* The admin listener (modules/admin*.c): shared between its files only. */
#ifndef PT_ADMIN_H
#define PT_ADMIN_H

#include "portico/cidr-t.h"
#include "portico/http-t.h"
#include "portico/module-t.h"
#include "portico/str-t.h"

typedef struct {
    const char   *address;      /* NULL: no admin listener (the default) */
    pt_cidr_list  allow;        /* who may ask; empty: loopback only */
    const char   *token_file;
    pt_str        token;        /* empty: the write endpoints need none */
    const void   *setting;      /* while loading: the `admin` group, for errors */
} pt_admin_conf;

extern pt_module pt_admin_module;

/* A growing text buffer (heap); a failed allocation sets failed and drops the rest. */
typedef struct {
    char   *d;
    size_t  len, cap;
    bool    failed;
} pt_admin_buf;

void pt_admin_printf(pt_admin_buf *b, const char *fmt, ...) PT_PRINTF(2, 3);
void pt_admin_put(pt_admin_buf *b, const char *s, size_t n);
void pt_admin_json_str(pt_admin_buf *b, const char *s, size_t n);   /* "..." escaped */
void pt_admin_json_num(pt_admin_buf *b, double v);
/* Answers with the buffer (then freed) as the body. */
int  pt_admin_reply(pt_request *r, unsigned status, const char *type, pt_admin_buf *b);
int  pt_admin_error(pt_request *r, unsigned status, const char *msg);  /* {"error": msg} */

/* admin_status.c */
void pt_admin_metrics_text(pt_admin_buf *b);
void pt_admin_status_json(pt_admin_buf *b);
void pt_admin_server_json(pt_admin_buf *b, const void *up, unsigned server);  /* a pt_upstream */
void pt_admin_upstream_json(pt_admin_buf *b, const void *up);
/* The request carries the configured bearer token (true when none is configured). */
bool pt_admin_token_ok(pt_request *r);
/* admin_api.c: /api/... ; path after "/api" */
int  pt_admin_api(pt_request *r, pt_str path);
/* admin_page.c (generated from admin_page.html) */
extern const char   pt_admin_page[];
extern const size_t pt_admin_page_len;

#endif
