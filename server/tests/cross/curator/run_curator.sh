#!/usr/bin/env bash
# Compile and run the Curator 5 cross-client suite against HOST:PORT.
#
#   run_curator.sh HOST:PORT [CLASS]
#
# CLASS is CuratorSuite unless given: CuratorEnsemble takes a 3-host connect string
# and runs under herd_ensemble.py (see CuratorEnsemble.java).
#
# Needs a JDK (javac, java) and the Debian packages libcurator-framework-java,
# libcurator-recipes-java, libcurator-client-java and zookeeper (jars in
# ${JAVA_SHARE:-/usr/share/java}).  Build output goes to a temporary directory
# that is removed on exit; nothing is written into the repository.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
J=${JAVA_SHARE:-/usr/share/java}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 HOST:PORT [CLASS]" >&2
    exit 2
fi

CP=
for jar in curator-client curator-framework curator-recipes zookeeper zookeeper-jute \
           guava slf4j-api slf4j-nop jackson-core jackson-databind jackson-annotations; do
    if [ ! -f "$J/$jar.jar" ]; then
        echo "curator suite: missing $J/$jar.jar (run cross/run.sh --setup)" >&2
        exit 2
    fi
    CP=${CP:+$CP:}$J/$jar.jar
done
# guava's failureaccess is bundled in Debian's guava.jar; add it if shipped separately
if [ -f "$J/failureaccess.jar" ]; then CP=$CP:$J/failureaccess.jar; fi

for tool in javac java; do
    command -v "$tool" >/dev/null 2>&1 || { echo "curator suite: $tool not found (need a JDK)" >&2; exit 2; }
done

BUILD=$(mktemp -d "${TMPDIR:-/tmp}/curator-suite.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT

javac -nowarn -encoding UTF-8 -d "$BUILD" -cp "$CP" "$HERE/CuratorSuite.java" "$HERE/CuratorEnsemble.java"
# the suite has its own 120 s watchdog; timeout is a last resort (e.g. a JVM hang)
timeout 150 java -Xmx256m -cp "$CP:$BUILD" "${2:-CuratorSuite}" "$1"
