/* libFuzzer target for the HTTP/2 session (server/h2_session.c, h2_stream.c) as a worker
 * runs it: the real event loop, a cleartext listener with http2 = true and small h2
 * limits, a return route, the request engine and its modules. Each input is what a client
 * sends after the connection preface; it goes into one end of a socketpair, the session
 * takes the other end through the accept pipeline, and the loop runs until the session
 * has closed the connection (the input ends with the client's FIN, so it always does).
 * What the session writes is read and dropped. Crashes, sanitizer reports and leaks (every
 * stream and the session freed with the connection) are the findings.
 * See t/fuzz/README for how to run it. */
#include "portico/core.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "portico/conf.h"
#include "portico/cycle-t.h"
#include "portico/event.h"
#include "portico/log.h"
#include "portico/module.h"
#include "../../server/http_core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pt_loop     loop;
static pt_cycle    cycle;
static pt_listener listener;

static const char conf_text[] =
    "workers = 1;\n"
    "access_log = { enabled = false; };\n"
    "limits = { client_body_timeout_ms = 1000; send_timeout_ms = 1000; };\n"
    "listeners = ( { address = \"127.0.0.1:1\"; http2 = true;\n"
    "  h2_max_concurrent_streams = 8; h2_max_header_list_size = 2048;\n"
    "  h2_max_continuation_frames = 4; h2_initial_window_size = 4096;\n"
    "  h2_max_resets = 16; h2_max_control_frames = 32; h2_max_empty_frames = 16; } );\n"
    "routes = ( { path_prefix = \"/\"; return = { status = 200; body = \"fuzz\\n\"; }; } );\n";

static void setup(void)
{
    char path[] = "/tmp/portico-fuzz-h2-XXXXXX";
    char err[512];
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, conf_text, sizeof(conf_text) - 1) != (ssize_t) sizeof(conf_text) - 1) {
        fprintf(stderr, "fuzz_h2: cannot write %s\n", path);
        abort();
    }
    close(fd);
    pt_modules_init();
    pt_wconf = pt_conf_load(path, err, sizeof(err));
    unlink(path);
    if (pt_wconf == NULL) {
        fprintf(stderr, "fuzz_h2: %s\n", err);
        abort();
    }
    signal(SIGPIPE, SIG_IGN);           /* writing input to a session that closed */
    cycle.conf = pt_wconf;
    cycle.worker = 0;
    cycle.stats_slot = -1;
    pt_cycle_cur = &cycle;
    pt_log_level = getenv("FUZZ_H2_LOG") ? PT_LOG_DEBUG : PT_LOG_EMERG;
    if (pt_loop_init(&loop) != PT_OK)
        abort();
    pt_loop_cur = &loop;
    pt_http_init_worker();
    listener.io.fd = -1;
    listener.conf = &pt_wconf->listeners[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    char buf[65536];
    int sv[2];

    if (!ready) {
        setup();
        ready = true;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    /* the preface first, so inputs reach the frames */
    if (write(sv[1], PT_H2_PREFACE, PT_H2_PREFACE_LEN) != PT_H2_PREFACE_LEN)
        abort();
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    pt_loop_update_time(&loop);
    pt_conn_accepted(&listener, sv[0], (struct sockaddr *) &sa, sizeof(sa.sun_family));

    size_t off = 0;
    bool shut = false, closed = false;
    for (int turn = 0; turn < 100000 && !closed; turn++) {
        if (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);
            if (n > 0)
                off += (size_t) n;
        }
        if (off == size && !shut) {
            shutdown(sv[1], SHUT_WR);       /* the client's FIN: the session must close */
            shut = true;
        }
        pt_loop_once(&loop, shut ? 10 : 0);
        for (;;) {
            ssize_t n = read(sv[1], buf, sizeof(buf));
            if (n > 0)
                continue;
            if (n == 0 || (n < 0 && errno != EAGAIN))
                closed = true;
            break;
        }
    }
    if (!closed) {
        fprintf(stderr, "fuzz_h2: the session did not close the connection\n");
        abort();
    }
    pt_loop_once(&loop, 0);                 /* the deferred frees */
    close(sv[1]);
    return 0;
}
