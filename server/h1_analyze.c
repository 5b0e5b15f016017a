/* STUB: replaced by the h1 parser work. */
#include "portico/h1.h"
int pt_h1_analyze_request(const pt_h1_head *h, pt_h1_req_info *ri, unsigned *status, const char **why) { *status = 400; *why = "not implemented"; return PT_ERROR; }
int pt_h1_analyze_response(const pt_h1_head *h, pt_method m, pt_h1_resp_info *ri, const char **why) { *why = "not implemented"; return PT_ERROR; }
const pt_header *pt_h1_find(const pt_header *hs, uint32_t n, pt_str name) { return NULL; }
bool pt_h1_list_has(pt_str value, pt_str token) { return false; }
bool pt_h1_connection_lists(const pt_header *hs, uint32_t n, pt_str name) { return false; }
int pt_h1_normalize_path(const char *in, size_t len, char *out, size_t *out_len) { return PT_ERROR; }
pt_method pt_h1_method_id(pt_str m) { return PT_M_OTHER; }
const char *pt_h1_status_text(unsigned status) { return ""; }
