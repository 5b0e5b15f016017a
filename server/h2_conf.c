/* Listener keys for HTTP/2: `http2 = true` (cleartext with prior knowledge) and the h2_*
 * limits, which apply to every h2 connection of the listener, cleartext or negotiated
 * by ALPN on TLS. Compiled with or without libnghttp2, so a configuration asking for h2
 * from a build without it is refused by name. */
#include "portico/conf.h"
#include "portico/h2-t.h"
#include "portico/tls-t.h"
#include "conf_int.h"

void pt_h2_limits_default(pt_h2_limits *h)
{
    h->max_concurrent_streams = 128;
    h->max_header_list_size = 65536;
    h->max_continuations = 8;
    h->initial_window_size = 65535;
    h->flood_window_ms = 10000;
    h->max_resets = 200;
    h->max_control_frames = 1000;
    h->max_empty_frames = 100;
    h->idle_timeout_ms = 60000;
}

int pt_h2_set_http2(pt_conf_ctx *cx, config_setting_t *s, const pt_conf_key *k, void *base)
{
    if (pt_conf_set_bool(cx, s, k, base) != PT_OK)
        return PT_ERROR;
#ifndef PT_HAVE_NGHTTP2
    if (*(bool *) ((char *) base + k->offset))
        return pt_conf_error(cx, s, "portico was built without HTTP/2 "
                                    "(configure --without-nghttp2)");
#endif
    return PT_OK;
}

int pt_h2_listener_check(pt_conf_ctx *cx, config_setting_t *e, const pt_listener_conf *l)
{
    if (l->http2 && l->tls)
        return pt_conf_error(cx, config_setting_get_member(e, "http2"),
                             "http2 = true is for cleartext listeners (prior knowledge); "
                             "on a TLS listener list \"h2\" in tls.alpn");
    return PT_OK;
}
