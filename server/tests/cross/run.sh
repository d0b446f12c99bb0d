#!/usr/bin/env bash
# Cross-client test driver for herd (ZooKeeper 3.8 compatible server).
#
#   run.sh --setup              install prerequisites (venv with kazoo, zkCli,
#                               JDK + Curator 5 jars)
#   run.sh HOST:PORT            run the kazoo, zkCli, Curator and C client suites against
#                               a running server
#   run.sh --setup HOST:PORT    both
#
# The venv lives at ${HERD_VENV:-<this dir>/.venv-cross}.  The zkCli used is
# ${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh} (Debian package `zookeeper`).
# The Curator suite (curator/CuratorSuite.java) is compiled into a temporary
# directory at run time against the jars in /usr/share/java (Debian packages
# libcurator-{client,framework,recipes}-java and zookeeper).
# Exit status is non-zero if setup fails or any suite fails.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"
VENV=${HERD_VENV:-$HERE/.venv-cross}
KAZOO_VERSION=2.11.0
# Prometheus's Python client, whose text parser reads herd's /metrics.
PROMETHEUS_CLIENT_VERSION=0.21.1
export ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}

usage() {
    echo "usage: $0 [--setup] [HOST:PORT]" >&2
    exit 2
}

setup() {
    local pkgs=()
    if [ ! -x "$ZKCLI" ]; then
        pkgs+=(zookeeper)
    fi
    if ! command -v java >/dev/null 2>&1; then
        pkgs+=(default-jre-headless)
    fi
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        pkgs+=(python3-venv)
    fi
    if ! command -v timeout >/dev/null 2>&1; then
        pkgs+=(coreutils)
    fi
    if ! command -v javac >/dev/null 2>&1; then
        pkgs+=(default-jdk-headless)
    fi
    local cpkg
    for cpkg in libcurator-client-java libcurator-framework-java libcurator-recipes-java; do
        if ! dpkg -s "$cpkg" >/dev/null 2>&1; then
            pkgs+=("$cpkg")
        fi
    done
    if [ ${#pkgs[@]} -gt 0 ]; then
        echo "setup: apt-get install ${pkgs[*]}"
        apt_install "${pkgs[@]}"
    fi
    if [ ! -x "$ZKCLI" ]; then
        echo "setup: $ZKCLI still missing after installing zookeeper" >&2
        return 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: creating venv $VENV"
        python3 -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "kazoo==$KAZOO_VERSION" \
        "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
    "$VENV/bin/python" -c 'import kazoo.client, prometheus_client.parser'
    for jar in curator-client curator-framework curator-recipes zookeeper guava; do
        if [ ! -f "/usr/share/java/$jar.jar" ]; then
            echo "setup: /usr/share/java/$jar.jar missing" >&2
            return 1
        fi
    done
    bash "$HERE/cclient/run.sh" --setup
    echo "setup: done (venv $VENV, kazoo $KAZOO_VERSION, zkCli $ZKCLI, Curator jars in /usr/share/java, C client)"
}

python_for_kazoo() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import kazoo.client' 2>/dev/null; then
        echo "$VENV/bin/python"
    elif python3 -c 'import kazoo.client' 2>/dev/null; then
        echo python3
    else
        return 1
    fi
}

wait_for_server() { # up to 15s for a TCP connect + ruok
    python3 - "$1" <<'EOF'
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
deadline = time.time() + 15
last = None
while time.time() < deadline:
    try:
        s = socket.create_connection((host, int(port)), timeout=2)
        s.sendall(b"ruok")
        s.settimeout(2)
        if s.recv(16) == b"imok":
            sys.exit(0)
        last = "no imok"
    except OSError as e:
        last = e
    time.sleep(0.3)
print("server %s not answering: %s" % (sys.argv[1], last), file=sys.stderr)
sys.exit(1)
EOF
}

run_suites() {
    local target=$1 py rc_k=0 rc_z=0 rc_c=0 rc_cc=0 t
    if ! py=$(python_for_kazoo); then
        echo "kazoo not available; run: $0 --setup" >&2
        return 1
    fi
    wait_for_server "$target"

    echo "=== kazoo suite ($target)"
    t=$(date +%s)
    "$py" "$HERE/kazoo_suite.py" "$target" || rc_k=$?
    echo "=== kazoo suite: exit $rc_k in $(( $(date +%s) - t ))s"

    echo "=== zkCli suite ($target)"
    t=$(date +%s)
    bash "$HERE/zkcli_suite.sh" "$target" || rc_z=$?
    echo "=== zkCli suite: exit $rc_z in $(( $(date +%s) - t ))s"

    echo "=== Curator suite ($target)"
    t=$(date +%s)
    bash "$HERE/curator/run_curator.sh" "$target" || rc_c=$?
    echo "=== Curator suite: exit $rc_c in $(( $(date +%s) - t ))s"

    # The C suite's container/TTL checks run when CSUITE_CONTAINER_WAIT is set
    # (seconds), i.e. against a server with a short container check interval.
    echo "=== C client suite ($target)"
    t=$(date +%s)
    bash "$HERE/cclient/run.sh" "$target" || rc_cc=$?
    echo "=== C client suite: exit $rc_cc in $(( $(date +%s) - t ))s"

    if [ "$rc_k" -ne 0 ] || [ "$rc_z" -ne 0 ] || [ "$rc_c" -ne 0 ] || [ "$rc_cc" -ne 0 ]; then
        echo "=== FAILED (kazoo=$rc_k, zkcli=$rc_z, curator=$rc_c, cclient=$rc_cc)"
        return 1
    fi
    echo "=== all cross-client suites passed"
}

DO_SETUP=0
TARGET=
for arg in "$@"; do
    case "$arg" in
        --setup) DO_SETUP=1 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *:*) [ -z "$TARGET" ] || usage; TARGET=$arg ;;
        *) usage ;;
    esac
done
[ "$DO_SETUP" = 1 ] || [ -n "$TARGET" ] || usage

if [ "$DO_SETUP" = 1 ]; then
    setup
fi
if [ -n "$TARGET" ]; then
    run_suites "$TARGET"
fi
