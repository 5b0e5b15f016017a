/* Service manager notifications (sd_notify protocol; see server/notify.c). */
#ifndef PT_NOTIFY_H
#define PT_NOTIFY_H

#include "portico/core.h"

/* Sends one "KEY=value\n..." message to $NOTIFY_SOCKET, if set; never fails. */
void pt_notify(const char *fmt, ...) PT_PRINTF(1, 2);

#endif
