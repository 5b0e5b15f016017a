/* The master, root, acting for a moment with the effective ids of the workers' user:
 * files it creates for the workers are theirs from the start, files of theirs it opens
 * again (a log after a rotation) open without overriding their permissions, a symlink a
 * worker planted leads nowhere root could go, and the workers may be signalled (the
 * kernel lets a process signal those whose real uid is its effective uid). So the
 * master needs CAP_SETUID and CAP_SETGID for all of this, not CAP_CHOWN,
 * CAP_DAC_OVERRIDE or CAP_KILL (the systemd unit's bounding set).
 *
 * The real uid stays 0 throughout, so the kernel keeps the permitted capabilities and
 * restores the effective ones when the effective uid goes back to 0. */
#include <errno.h>
#include <unistd.h>

#include "portico/privs.h"

static gid_t saved_egid;

bool pt_privs_as(uid_t uid, gid_t gid)
{
    if (geteuid() != 0 || uid == 0)
        return false;
    saved_egid = getegid();
    if (setegid(gid) < 0)
        return false;
    if (seteuid(uid) < 0) {
        int e = errno;
        if (setegid(saved_egid) < 0) {
            /* cannot happen: euid is still 0 */
        }
        errno = e;
        return false;
    }
    return true;
}

void pt_privs_back(void)
{
    int e = errno;                      /* the caller reads the errno of what it did */
    if (seteuid(0) < 0 || setegid(saved_egid) < 0) {
        /* cannot happen: the real uid is 0 */
    }
    errno = e;
}
