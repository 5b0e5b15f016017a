/* Transport helpers common to every transport: buffered reads, readiness from events,
 * and the per-worker cache of splice pipes. */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "portico/xprt.h"

ssize_t pt_xprt_read(pt_xprt *x, pt_buf *b, size_t max)
{
    size_t room = pt_min(pt_buf_free(b), max);
    if (room == 0)
        return -3;
    ssize_t n = x->ops->recv(x, b->last, room);
    if (n > 0)
        b->last += n;
    return n;
}

void pt_xprt_events(pt_xprt *x, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP)) {
        x->readable = x->writable = true;   /* let the next I/O call see the error */
        x->eof = true;
    }
    if (events & (EPOLLIN | EPOLLRDHUP)) {
        x->readable = true;
        if (x->write_wants_read) {
            x->write_wants_read = false;
            x->writable = true;
        }
    }
    if (events & EPOLLOUT) {
        x->writable = true;
        if (x->read_wants_write) {
            x->read_wants_write = false;
            x->readable = true;
        }
    }
}

/* ---- pipes ---- */

#define PT_PIPE_CACHE 16     /* empty pipes kept per worker */

static int      pipe_cache[PT_PIPE_CACHE][2];
static unsigned npipe_cache;

int pt_pipe_get(int fds[2])
{
    if (npipe_cache) {
        npipe_cache--;
        fds[0] = pipe_cache[npipe_cache][0];
        fds[1] = pipe_cache[npipe_cache][1];
        return PT_OK;
    }
    return pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0 ? PT_ERROR : PT_OK;
}

void pt_pipe_put(int fds[2], bool empty)
{
    if (empty && npipe_cache < PT_PIPE_CACHE) {
        pipe_cache[npipe_cache][0] = fds[0];
        pipe_cache[npipe_cache][1] = fds[1];
        npipe_cache++;
        return;
    }
    close(fds[0]);          /* bytes left in it belong to an abandoned response */
    close(fds[1]);
}

void pt_pipe_cache_clear(void)
{
    while (npipe_cache) {
        npipe_cache--;
        close(pipe_cache[npipe_cache][0]);
        close(pipe_cache[npipe_cache][1]);
    }
}
