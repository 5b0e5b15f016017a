/* Transports: how bytes cross a connection (plain TCP today, TLS next). Client and origin
 * connections both carry one; everything above calls its ops and never the socket, so a
 * new transport is one more ops table, not a change to the HTTP code.
 *
 * The transport owns the readiness state. Edge-triggered epoll reports a socket readable
 * once; `readable` stays true until a call finds nothing more, which only the transport
 * can judge: for TCP a short read means the socket is drained, for TLS it does not
 * (SSL_read returns one record at a time), so TLS keeps `readable` and reports the bytes
 * it holds through pending(). */
#ifndef PT_XPRT_T_H
#define PT_XPRT_T_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "portico/event-t.h"

typedef struct pt_xprt pt_xprt;

/* Return values of the I/O ops: > 0 bytes, 0 end of stream (recv), PT_AGAIN (would block:
 * readable/writable was cleared and an event will come), PT_ERROR (errno says why; the
 * connection is dead: eof is set).
 *
 * writev: after PT_AGAIN or a short write, the next call must begin with the bytes not
 * taken (a stream's natural order; TLS has already encrypted some of them and sends them
 * from its own buffer, so the caller may move them but not change or drop them). */
typedef struct pt_xprt_ops {
    const char *name;                   /* "tcp", "tls" */
    const char *scheme;                 /* what a request over it is: "http" or "https" */
    ssize_t   (*recv)(pt_xprt *x, void *buf, size_t len);
    ssize_t   (*writev)(pt_xprt *x, const struct iovec *iov, int n);
    /* Zero-copy relay through a pipe; NULL where the transport cannot (TLS). `more`: more
     * follows soon (the kernel may wait to fill a segment). */
    ssize_t   (*splice_in)(pt_xprt *x, int pipe_wr, size_t len);
    ssize_t   (*splice_out)(pt_xprt *x, int pipe_rd, size_t len, bool more);
    /* Looks without consuming: 1 bytes are waiting, 0 the peer closed (or the connection
     * failed), PT_AGAIN nothing yet. */
    int       (*probe)(pt_xprt *x);
    int       (*shutdown)(pt_xprt *x);  /* no more writes (FIN after what is queued) */
    void      (*close)(pt_xprt *x);
    size_t    (*pending)(pt_xprt *x);   /* bytes readable now without a new event */
} pt_xprt_ops;

struct pt_xprt {
    pt_io              io;              /* the descriptor and its event handler */
    const pt_xprt_ops *ops;
    void              *ctx;             /* the transport's own state (TLS session) */
    bool               readable;        /* a read may return bytes */
    bool               writable;        /* a write may take bytes */
    bool               eof;             /* the peer closed, or the connection failed */
    bool               connected;       /* outgoing: the connect completed */
    /* A read that needs the socket writable first, or a write that needs it readable
     * (TLS: a key update or alert to send while reading): the event that unblocks one
     * direction makes the other ready again (pt_xprt_events). */
    bool               read_wants_write;
    bool               write_wants_read;
};

#endif
