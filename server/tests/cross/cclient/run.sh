#!/usr/bin/env bash
# ZooKeeper C-client (libzookeeper_mt, synchronous API) cross-client suite.
#
#   run.sh --setup                       install libzookeeper-mt-dev if missing
#   run.sh HOST:PORT [--container-wait S] compile c_suite.c to a temp dir and run it
#   run.sh --setup HOST:PORT ...         both
#
# Build output goes to a mktemp directory, never into the repository.
# CC (default gcc) and CSUITE_CONTAINER_WAIT are honoured.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$HERE/../lib.sh"
HEADER=/usr/include/zookeeper/zookeeper.h

setup() {
    if [ ! -f "$HEADER" ]; then
        echo "setup: apt-get install libzookeeper-mt-dev"
        apt_install libzookeeper-mt-dev
    fi
    if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
        echo "setup: apt-get install gcc"
        apt_install gcc libc6-dev
    fi
    [ -f "$HEADER" ] || { echo "setup: $HEADER still missing" >&2; return 1; }
    echo "setup: done ($HEADER)"
}

if [ $# -eq 0 ]; then
    echo "usage: $0 [--setup] [HOST:PORT [--container-wait SECONDS]]" >&2
    exit 2
fi
if [ "$1" = "--setup" ]; then
    setup
    shift
    [ $# -eq 0 ] && exit 0
fi

if [ ! -f "$HEADER" ]; then
    echo "missing $HEADER; run $0 --setup" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herd-cclient.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"${CC:-gcc}" -O1 -Wall -DTHREADED -o "$tmp/c_suite" "$HERE/c_suite.c" -lzookeeper_mt -lpthread
"$tmp/c_suite" "$@"
