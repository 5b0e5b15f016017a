/* HTTP/2 for clients: the limits a listener sets on its h2 connections (listener keys
 * http2 and h2_*, server/h2_conf.c). The session itself is server/h2_session.c (the
 * connection: frames in and out through libnghttp2, floods, GOAWAY) and
 * server/h2_stream.c (each stream a pt_request: head translation, bodies, flow control). */
#ifndef PT_H2_T_H
#define PT_H2_T_H

#include <stdint.h>

typedef struct pt_h2_limits {
    uint32_t max_concurrent_streams;  /* SETTINGS_MAX_CONCURRENT_STREAMS; more: refused */
    uint32_t max_header_list_size;    /* decoded fields of a request (RFC 9113 6.5.2) -> 431 */
    uint32_t max_continuations;       /* CONTINUATION frames per header block -> GOAWAY */
    uint32_t initial_window_size;     /* a stream's receive window: request body bytes held */
    uint32_t flood_window_ms;         /* the window the three counts below are taken over */
    uint32_t max_resets;              /* streams the client cancels (RST_STREAM) per window */
    uint32_t max_control_frames;      /* SETTINGS, PING, PRIORITY per window */
    uint32_t max_empty_frames;        /* DATA without payload nor END_STREAM per window */
    uint32_t idle_timeout_ms;         /* no stream open: GOAWAY and close */
} pt_h2_limits;

#endif
