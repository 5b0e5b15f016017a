#!/bin/sh
# ./autogen.sh          regenerate configure and Makefile.in
# ./autogen.sh --deps   first install, with apt-get, the Debian 12 packages needed to build
#                       and test (only those missing), then regenerate.
set -e
cd "$(dirname "$0")"

DEPS="build-essential autoconf automake libtool pkg-config \
libssl-dev libpcre2-dev libconfig-dev libjemalloc-dev libnghttp2-dev \
perl python3 openssl curl nghttp2-client procps iproute2 util-linux \
chromium debhelper dpkg-dev fakeroot lintian"

if [ "${1:-}" = "--deps" ]; then
    missing=""
    for p in $DEPS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "autogen.sh: installing:$missing"
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
    fi
fi

mkdir -p m4 build-aux
autoreconf -fi
