/* The HTTP/2 session, connection side: libnghttp2 does the framing, HPACK and the
 * protocol's state machine; this file drives it from our transport and event loop.
 *
 * Input: bytes read into the connection buffer go whole to nghttp2_session_mem_recv,
 * whose callbacks build streams (h2_stream.c) and count what the flood limits watch.
 * Streams whose header block completed start after the read, outside nghttp2's stack.
 *
 * Output: frames nghttp2 serialises go to a per-connection buffer (outbuf, taken from a
 * per-worker list while output is under way, so an idle connection holds none), and
 * DATA payloads go to the connection's queue as pointers to the producer's own bytes
 * (NGHTTP2_DATA_FLAG_NO_COPY): a response body is never copied, and the buffer is reused
 * only once the queue has drained, so memory per connection is bounded whatever the
 * streams do. A producer whose bytes are not on the wire yet got PT_AGAIN and is called
 * back (on_write) once they are, which is what holds the origin back (back-pressure).
 *
 * Floods (each refused with GOAWAY ENHANCE_YOUR_CALM and an info line): streams reset by
 * the client or refused by us, SETTINGS/PING/PRIORITY frames, empty DATA or CONTINUATION
 * frames, all over h2_flood_window_ms; CONTINUATION frames per header block. nghttp2
 * bounds the ACKs it queues for a peer that does not read them.
 *
 * Concurrent streams: a stream past h2_max_concurrent_streams gets RST_STREAM
 * REFUSED_STREAM (RFC 9113 5.1.2), so the client may retry it, and the connection goes on.
 * nghttp2 would make that a connection error (GOAWAY PROTOCOL_ERROR) once the client has
 * acknowledged the setting, so nghttp2 is given a higher limit (limit_for_nghttp2), the
 * SETTINGS frame on the wire is written with ours (patch_settings), and we refuse the
 * excess ourselves; a client past nghttp2's limit too is beyond any retry and gets its
 * GOAWAY.
 *
 * A finished or reset stream is released (logged, its pool freed) only from h2_run,
 * which runs from the event handler, the timer or the deferred step, never from a
 * module's call into the session. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef PT_HAVE_NGHTTP2

#include "portico/conf.h"
#include "portico/log.h"
#include "portico/pool.h"
#include "portico/shm.h"
#include "h2_session.h"

#define H2_READS_PER_RUN 16      /* then the other connections get a turn */

static nghttp2_session_callbacks *callbacks;
static nghttp2_option            *options;

static void h2_run(h2_session *s);

/* ------------------------------------------------------------------ floods */

static void flood_window(h2_session *s)
{
    uint64_t now = pt_loop_cur->now;
    if (now - s->window_start >= s->lim->flood_window_ms) {
        s->window_start = now;
        s->resets = s->control = s->empty = 0;
    }
}

void h2_calm(h2_session *s, const char *why)
{
    if (s->closing)
        return;
    s->closing = true;
    s->close_why = why;
    pt_log(PT_LOG_INFO, "closed HTTP/2 connection from %s with GOAWAY ENHANCE_YOUR_CALM: %s",
           s->c->peer_ip, why);
    nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

void h2_refused_stream(h2_session *s, int32_t id, const char *why)
{
    pt_log(PT_LOG_INFO, "refused HTTP/2 stream %d from %s: %s", id, s->c->peer_ip, why);
    if (pt_stats_mine)
        pt_stats_mine->refused++;
}

/* ------------------------------------------------------------------ nghttp2 callbacks */

/* What nghttp2 is told of the concurrency limit: ours with room above it (see the top). */
static uint32_t limit_for_nghttp2(uint32_t limit)
{
    uint64_t v = (uint64_t) limit + (limit > 100 ? limit : 100);
    return v > INT32_MAX ? INT32_MAX : (uint32_t) v;
}

/* Our first SETTINGS frame, as it goes out: SETTINGS_MAX_CONCURRENT_STREAMS is given our
 * limit. It is the session's first frame (the server's connection preface), whole in the
 * first bytes nghttp2 hands over. */
static void patch_settings(h2_session *s, unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off + 9 <= n) {
        size_t flen = (size_t) p[off] << 16 | (size_t) p[off + 1] << 8 | p[off + 2];
        if (off + 9 + flen > n)
            return;
        uint32_t sid = ((uint32_t) p[off + 5] << 24 | (uint32_t) p[off + 6] << 16
                        | (uint32_t) p[off + 7] << 8 | p[off + 8]) & 0x7fffffffu;
        if (p[off + 3] == NGHTTP2_SETTINGS && !(p[off + 4] & NGHTTP2_FLAG_ACK) && sid == 0) {
            for (size_t e = off + 9; e + 6 <= off + 9 + flen; e += 6) {
                if ((p[e] << 8 | p[e + 1]) != NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
                    continue;
                uint32_t v = s->lim->max_concurrent_streams;
                p[e + 2] = (unsigned char) (v >> 24);
                p[e + 3] = (unsigned char) (v >> 16);
                p[e + 4] = (unsigned char) (v >> 8);
                p[e + 5] = (unsigned char) v;
            }
            s->settings_sent = true;
            return;
        }
        off += 9 + flen;
    }
}

static ssize_t on_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    h2_session *s = user;
    size_t room = H2_OUTBUF - s->outlen;
    if (room == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t n = len < room ? len : room;
    char *p = s->outbuf + s->outlen;
    memcpy(p, data, n);
    if (!s->settings_sent)
        patch_settings(s, (unsigned char *) p, n);
    if (pt_out_add(s->c, p, n) != PT_OK)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->outlen += n;
    return (ssize_t) n;
}

static int on_send_data(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *user)
{
    h2_session *s = user;
    if (H2_OUTBUF - s->outlen < 9)
        return NGHTTP2_ERR_WOULDBLOCK;
    return h2_stream_send_data(source->ptr, frame, framehd, length);
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
    h2_session *s = user;
    const pt_h2_limits *lim = s->lim;

    flood_window(s);
    switch (hd->type) {
    case NGHTTP2_HEADERS:
        s->continuations = 0;
        break;
    case NGHTTP2_CONTINUATION:
        if (++s->continuations > lim->max_continuations) {
            h2_calm(s, "more CONTINUATION frames in a header block than "
                       "h2_max_continuation_frames");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_HEADERS)
            && ++s->empty > lim->max_empty_frames) {
            h2_calm(s, "more empty frames than h2_max_empty_frames within h2_flood_window_ms");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    case NGHTTP2_DATA:
        if (hd->length == 0 && !(hd->flags & NGHTTP2_FLAG_END_STREAM)
            && ++s->empty > lim->max_empty_frames) {
            h2_calm(s, "more empty frames than h2_max_empty_frames within h2_flood_window_ms");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    case NGHTTP2_RST_STREAM:
        if (++s->resets > lim->max_resets) {
            h2_calm(s, "more stream resets than h2_max_resets within h2_flood_window_ms");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        if (hd->flags & NGHTTP2_FLAG_ACK)
            break;
        /* fall through */
    case NGHTTP2_PRIORITY:
        if (++s->control > lim->max_control_frames) {
            h2_calm(s, "more SETTINGS, PING and PRIORITY frames than h2_max_control_frames "
                       "within h2_flood_window_ms");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        break;
    default:
        break;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (s->nopen >= s->lim->max_concurrent_streams) {
        /* no stream of ours: its header block is decoded (HPACK state) and dropped */
        char why[96];
        snprintf(why, sizeof(why), "more than h2_max_concurrent_streams (%u) streams open",
                 s->lim->max_concurrent_streams);
        h2_refused_stream(s, frame->hd.stream_id, why);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        if (++s->resets > s->lim->max_resets) {
            h2_calm(s, "more streams refused or reset than h2_max_resets within "
                       "h2_flood_window_ms");
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        }
        return 0;
    }
    h2_stream *st = h2_stream_new(s, frame->hd.stream_id);
    if (st == NULL) {
        pt_log(PT_LOG_ALERT, "out of memory for an HTTP/2 stream");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
        return h2_stream_trailer(st, name, nlen, value, vlen);  /* after the body */
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    return h2_stream_header(st, name, nlen, value, vlen);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session *s = user;
    h2_stream *st;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && !st->started && !st->next_ready
            && s->ready_tail != st) {
            if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
                st->body_eof = true;
            if (s->ready_tail)
                s->ready_tail->next_ready = st;
            else
                s->ready = st;
            s->ready_tail = st;
        } else if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            h2_stream_body_end(st);
        }
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
            st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
            if (st)
                h2_stream_body_end(st);
        }
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL || st->discard) {
        nghttp2_session_consume(ng, id, len);   /* nobody reads it: the window comes back */
        return 0;
    }
    return h2_stream_data(st, data, len);
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    h2_session *s = user;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL)
        return 0;
    h2_stream_closed(st);
    st->close_code = code;
    /* the connection's window counts what the stream still held */
    if (st->body_len)
        nghttp2_session_consume_connection(ng, st->body_len);
    st->body_len = st->body_given = 0;
    st->discard = true;
    h2_schedule(s);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    h2_session *s = user;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR
        && s->close_why == NULL) {
        /* a connection error nghttp2 found (it says which in the GOAWAY's debug data) */
        const nghttp2_goaway *g = &frame->goaway;
        int n = (int) (g->opaque_data_len < 120 ? g->opaque_data_len : 120);
        s->close_why = "connection error";
        pt_log(PT_LOG_INFO, "closed HTTP/2 connection from %s with GOAWAY %s%s%.*s",
               s->c->peer_ip, nghttp2_http2_strerror(g->error_code), n ? ": " : "", n,
               n ? (const char *) g->opaque_data : "");
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        st->bytes += frame->hd.length + 9;
        if (st->r->resp_head_len == 0)
            st->r->resp_head_len = frame->hd.length + 9;
    }
    /* The response is complete while the client is still sending its body: tell it to
     * stop (RFC 9113 8.1), which also frees the stream. */
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        && !nghttp2_session_get_stream_remote_close(ng, frame->hd.stream_id))
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int err,
                            void *user)
{
    h2_session *s = user;
    char why[160];
    if (frame->hd.type == NGHTTP2_HEADERS) {
        if (err == NGHTTP2_ERR_REFUSED_STREAM
            || (err == NGHTTP2_ERR_PROTO && s->nstreams >= s->lim->max_concurrent_streams)) {
            snprintf(why, sizeof(why), "more than h2_max_concurrent_streams (%u) streams open",
                     s->lim->max_concurrent_streams);
            h2_refused_stream(s, frame->hd.stream_id, why);
            return 0;
        }
    }
    if (frame->hd.stream_id == 0)
        return 0;                   /* a connection error: its GOAWAY is logged */
    snprintf(why, sizeof(why), "%s (%s frame)", nghttp2_strerror(err),
             frame->hd.type == NGHTTP2_HEADERS ? "HEADERS"
             : frame->hd.type == NGHTTP2_DATA ? "DATA" : "control");
    h2_refused_stream(s, frame->hd.stream_id, why);
    return 0;
}

static int worker_init(void)
{
    if (callbacks)
        return PT_OK;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&options) != 0)
        return PT_ERROR;
    nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, on_send_data);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, on_invalid_frame);
    /* the window grows back only by what the request's reader consumed */
    nghttp2_option_set_no_auto_window_update(options, 1);
    return PT_OK;
}

/* ------------------------------------------------------------------ output */

/* Output buffers of idle connections wait here for the next one that writes. */
#define H2_FREE_OUTBUFS 64
static char    *free_outbufs[H2_FREE_OUTBUFS];
static unsigned nfree_outbufs;

static void outbuf_release(h2_session *s)
{
    if (s->outbuf == NULL || s->c->out.pending)
        return;
    if (nfree_outbufs < H2_FREE_OUTBUFS)
        free_outbufs[nfree_outbufs++] = s->outbuf;
    else
        free(s->outbuf);
    s->outbuf = NULL;
    s->outlen = 0;
}

/* Writes what is queued, then lets nghttp2 serialise more, until the transport is full
 * or nothing is left. outbuf is reused only once the queue has drained. */
static int pump(h2_session *s)
{
    pt_conn *c = s->c;
    if (s->pumping)
        return PT_OK;
    s->pumping = true;
    int rc = PT_OK;
    if (s->outbuf == NULL) {
        s->outbuf = nfree_outbufs ? free_outbufs[--nfree_outbufs] : malloc(H2_OUTBUF);
        if (s->outbuf == NULL) {
            s->pumping = false;
            pt_log(PT_LOG_ALERT, "out of memory for an HTTP/2 output buffer");
            s->failed = true;
            s->close_why = "out of memory";
            h2_schedule(s);
            return PT_ERROR;
        }
    }
    for (;;) {
        if (c->out.pending) {
            rc = pt_conn_flush(c);
            if (rc != PT_OK)
                break;
        }
        s->outlen = 0;
        s->drains++;                    /* nothing queued points into a stream now */
        if (!nghttp2_session_want_write(s->ng))
            break;
        if (nghttp2_session_send(s->ng) != 0) {
            rc = PT_ERROR;
            break;
        }
        if (c->out.pending == 0)
            break;
    }
    s->pumping = false;
    if (rc == PT_ERROR && !s->failed) {
        s->failed = true;
        s->close_why = "client connection failed while sending";
        h2_schedule(s);
    }
    return rc;
}

/* Frames are written from the step, at the end of the loop iteration: the responses of
 * every stream that produced output in this iteration go out in as few writes as the
 * queue allows (with 100 streams in flight, tens of responses per write). */
void h2_kick(h2_session *s)
{
    if (s->running)
        s->again = true;
    else
        h2_schedule(s);
}

static void h2_step(pt_defer *d)
{
    h2_session *s = pt_container_of(d, h2_session, step);
    h2_run(s);
}

static void h2_resume(pt_timer *t)
{
    h2_run(t->data);
}

void h2_schedule(h2_session *s)
{
    pt_defer_add(pt_loop_cur, &s->step);
}

/* ------------------------------------------------------------------ input */

/* Drops input after the last frame went out, before the close (a close with unread
 * input would reset the connection and could destroy the GOAWAY in flight). */
static bool linger_read(h2_session *s)
{
    pt_conn *c = s->c;
    char buf[4096];
    while (c->x.readable) {
        ssize_t n = c->x.ops->recv(&c->x, buf, sizeof(buf));
        if (n > 0)
            continue;
        if (n == PT_AGAIN)
            return true;
        pt_conn_close(c);
        return false;
    }
    return true;
}

/* false: the connection is closed */
static bool read_input(h2_session *s)
{
    pt_conn *c = s->c;
    for (unsigned i = 0; c->x.readable && !s->closing; i++) {
        if (i == H2_READS_PER_RUN) {
            s->again = true;
            break;
        }
        if (pt_conn_alloc_in(c) != PT_OK) {
            pt_log(PT_LOG_ALERT, "out of memory for a connection buffer");
            pt_conn_close(c);
            return false;
        }
        c->in.pos = c->in.last = c->in.start;
        ssize_t n = pt_conn_read(c);
        if (n == PT_AGAIN)
            break;
        if (n <= 0) {
            if (s->nstreams)
                pt_log(PT_LOG_INFO, "client %s closed the HTTP/2 connection with %u "
                       "stream(s) open", c->peer_ip, s->nstreams);
            pt_conn_close(c);
            return false;
        }
        ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *) c->in.pos, (size_t) n);
        c->in.pos = c->in.last = c->in.start;
        if (rv < 0) {
            if (!s->closing) {
                pt_log(PT_LOG_INFO, "closed HTTP/2 connection from %s: %s", c->peer_ip,
                       nghttp2_strerror((int) rv));
                s->closing = true;
                s->close_why = nghttp2_strerror((int) rv);
                if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
                    nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
            }
            break;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ the session loop */

static void start_ready(h2_session *s)
{
    while (s->ready) {
        h2_stream *st = s->ready;
        s->ready = st->next_ready;
        if (s->ready == NULL)
            s->ready_tail = NULL;
        st->next_ready = NULL;
        if (!st->closed && !s->closing)
            h2_stream_start(st);
    }
}

static void settle(h2_session *s);

static void h2_run(h2_session *s)
{
    pt_conn *c = s->c;
    if (s->running) {
        s->again = true;
        return;
    }
    if (s->lingering) {
        linger_read(s);
        return;
    }
    s->running = true;
    for (unsigned turn = 0;; turn++) {
        s->again = false;
        if (s->failed) {
            /* before any write: the queue may point into memory that is gone */
            pt_log(PT_LOG_INFO, "HTTP/2 connection from %s: %s", c->peer_ip, s->close_why);
            pt_conn_close(c);
            return;
        }
        if (!read_input(s))
            return;                     /* closed: s is gone */
        start_ready(s);
        for (h2_stream *st = s->streams; st; st = st->next)
            h2_stream_on_body(st);
        if (pump(s) == PT_OK) {
            /* everything is on the wire: producers waiting for that go on */
            for (h2_stream *st = s->streams; st; st = st->next) {
                /* a closed stream too: its last bytes are out, its handler finishes */
                if (st->want_write && st->out_len == 0) {
                    st->want_write = false;
                    pt_timer_del(&pt_loop_cur->timers, &st->timer);
                    pt_http_writable(st->r);
                }
            }
        }
        /* A closed stream's last DATA frames may still be in the queue, pointing into
         * memory its release frees (its pool, its origin's buffer): wait for the queue
         * to drain. */
        for (h2_stream *st = s->streams, *next; st && c->out.pending == 0; st = next) {
            next = st->next;
            if (st->closed)
                h2_stream_release(st);
        }
        if (s->failed) {
            pt_log(PT_LOG_INFO, "HTTP/2 connection from %s: %s", c->peer_ip, s->close_why);
            pt_conn_close(c);
            return;
        }
        if (!s->again)
            break;
        if (turn == 8) {
            /* the other connections get a turn: from the next loop iteration's timers
             * (a deferred step would run again before the loop waits for events) */
            pt_loop_timer(pt_loop_cur, &s->resume, 0);
            break;
        }
    }
    s->running = false;
    settle(s);
}

/* After a run: the connection's deadline, or its end. */
static void settle(h2_session *s)
{
    pt_conn *c = s->c;
    if (c->out.pending) {
        pt_conn_set_timer(c, pt_wconf->limits.send_timeout_ms);
        return;
    }
    bool done = !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng);
    if (s->closing || done || ((s->goaway || c->draining) && s->nstreams == 0)) {
        if (s->nstreams && !s->closing && !done)
            return;
        /* everything said: half-close and drop what still comes, briefly */
        s->running = true;
        s->ready = s->ready_tail = NULL;
        while (s->streams) {
            h2_stream_closed(s->streams);
            h2_stream_release(s->streams);
        }
        s->running = false;
        if (c->x.eof || c->x.ops->shutdown(&c->x) != PT_OK) {
            pt_conn_close(c);
            return;
        }
        s->lingering = true;
        pt_conn_set_timer(c, PT_LINGER_MS);
        c->x.readable = true;
        linger_read(s);
        return;
    }
    if (s->nstreams == 0) {
        pt_conn_release_idle(c);
        outbuf_release(s);
        pt_conn_set_timer(c, s->lim->idle_timeout_ms);
    } else {
        pt_conn_set_timer(c, 0);
    }
}

/* ------------------------------------------------------------------ session ops */

static void goaway(h2_session *s)
{
    if (s->goaway || s->closing)
        return;
    s->goaway = true;
    nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR,
                          NULL, 0);
}

static void h2_start(pt_conn *c)
{
    const pt_h2_limits *lim = &c->listener->conf->h2;
    h2_session *s = calloc(1, sizeof(*s));
    if (s == NULL || worker_init() != PT_OK) {
        free(s);
        pt_log(PT_LOG_ALERT, "out of memory for an HTTP/2 session");
        pt_conn_close(c);
        return;
    }
    c->session = s;
    s->c = c;
    s->lim = lim;
    s->step.fn = h2_step;
    pt_timer_init(&s->resume, h2_resume, s);
    s->window_start = pt_loop_cur->now;
    if (nghttp2_session_server_new2(&s->ng, callbacks, s, options) != 0) {
        pt_log(PT_LOG_ALERT, "out of memory for an HTTP/2 session");
        pt_conn_close(c);
        return;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limit_for_nghttp2(lim->max_concurrent_streams) },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, lim->initial_window_size },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, lim->max_header_list_size },
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
    };
    /* the connection's window: every stream's at once, so one slow reader does not
     * stall the others */
    uint64_t win = (uint64_t) lim->max_concurrent_streams * lim->initial_window_size;
    if (win > NGHTTP2_MAX_WINDOW_SIZE)
        win = NGHTTP2_MAX_WINDOW_SIZE;
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, pt_nelems(iv)) != 0
        || (win > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE
            && nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                                     (int32_t) win) != 0)) {
        pt_conn_close(c);
        return;
    }
    if (c->draining || pt_worker_draining())
        goaway(s);
    pt_conn_set_timer(c, lim->idle_timeout_ms);
    h2_run(s);
}

static void h2_event(pt_conn *c, uint32_t events)
{
    h2_session *s = c->session;
    if (events == 0) {
        if (s->lingering) {
            pt_conn_close(c);
            return;
        }
        if (c->out.pending) {
            pt_log(PT_LOG_INFO, "HTTP/2 client %s took no bytes within send_timeout_ms",
                   c->peer_ip);
            pt_conn_close(c);
            return;
        }
        if (s->nstreams == 0) {
            pt_debug("HTTP/2 connection from %s idle for h2_idle_timeout_ms", c->peer_ip);
            goaway(s);
            s->closing = true;
        }
    }
    h2_run(s);
}

static void h2_drain(pt_conn *c)
{
    h2_session *s = c->session;
    goaway(s);
    h2_run(s);
}

static void h2_release(pt_conn *c)
{
    h2_session *s = c->session;
    if (s == NULL)
        return;
    s->running = true;              /* nothing below may run the session again */
    s->ready = s->ready_tail = NULL;
    while (s->streams) {
        h2_stream_closed(s->streams);
        h2_stream_release(s->streams);
    }
    pt_defer_cancel(pt_loop_cur, &s->step);
    pt_timer_del(&pt_loop_cur->timers, &s->resume);
    free(s->outbuf);                /* the queue pointing into it is dropped with c */
    if (s->ng)
        nghttp2_session_del(s->ng);
    free(s);
    c->session = NULL;
}

static bool h2_splice_ok(pt_request *r)
{
    return false;                   /* every byte goes into a DATA frame */
}

const pt_session_ops pt_h2_session = {
    .name = "h2",
    .size = 0,
    .start = h2_start,
    .event = h2_event,
    .drain = h2_drain,
    .release = h2_release,
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .splice_ok = h2_splice_ok,
    .splice_body = NULL,
    .read_body = h2_read_body,
    .output_pending = h2_output_pending,
    .input_pending = h2_input_pending,
    .body_timer = h2_body_timer,
    .tunnel = h2_tunnel,
    .tunnel_shutdown = h2_tunnel,
    .finish = h2_finish,
    .abort = h2_abort,
};

#endif /* PT_HAVE_NGHTTP2 */
