#!/usr/bin/env bash
# get/set ops/s from C: libcoord (release) against a 3-node Coord, and ZooKeeper's own C
# client (libzookeeper_mt, zoo_get/zoo_set) against a 3-node ZooKeeper 3.8, same machine,
# same run, 64-byte values, 1 and 8 threads. ZooKeeper is started as loadtest/compare.sh
# starts it (QuorumPeerMain, maxClientCnxns=0, forceSync=yes); Coord with `coordd dev`.
#   bindings/c/bench/compare.sh            (SECONDS_PER_ROW=10 by default)
# Needs: make -C bindings/c all, cargo build --release -p coord-server --bin coordd,
# apt packages zookeeper libzookeeper-mt-dev.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SECS=${SECONDS_PER_ROW:-10}
ZK_PORT=${ZK_PORT:-2191}
ZK_QUORUM_PORT=${ZK_QUORUM_PORT:-12898}
ZK_ELECTION_PORT=${ZK_ELECTION_PORT:-13898}
ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}
ZK_CONF_DIR=${ZK_CONF_DIR:-/etc/zookeeper/conf}
COORD_PORT=${COORD_PORT:-7481}
COORDD=${COORDD:-$ROOT/target/release/coordd}
LIB=$ROOT/target/release
WORK=$(mktemp -d /tmp/cbench.XXXXXX)
BUILD=$HERE/build
log() { printf 'cbench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for f in "$WORK"/coord/n*/pid; do [[ -f $f ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

[[ -f $ZK_JAR ]] || die "no $ZK_JAR: apt-get install zookeeper libzookeeper-mt-dev"
[[ -x $COORDD && -f $LIB/libcoord.so ]] || die "build first: make -C bindings/c all; cargo build --release -p coord-server --bin coordd"
mkdir -p "$BUILD"
gcc -std=c11 -Wall -Wextra -Werror -O2 -pthread "$HERE/coord_bench.c" -I"$HERE/../include" \
    -L"$LIB" -lcoord -Wl,-rpath,"$LIB" -o "$BUILD/coord_bench"
gcc -std=c11 -Wall -Wextra -Werror -O2 -pthread "$HERE/zk_bench.c" -lzookeeper_mt -o "$BUILD/zk_bench"

# ZooKeeper 3.8, 3 nodes on loopback.
ZK_SERVERS=""
for i in 1 2 3; do
    d="$WORK/zk/$i"
    mkdir -p "$d/data"
    echo "$i" >"$d/data/myid"
    {
        echo "tickTime=2000"; echo "initLimit=10"; echo "syncLimit=5"; echo "dataDir=$d/data"
        echo "clientPort=$((ZK_PORT + i - 1))"; echo "clientPortAddress=127.0.0.1"
        echo "maxClientCnxns=0"; echo "forceSync=yes"; echo "admin.enableServer=false"
        echo "4lw.commands.whitelist=srvr,ruok,mntr"; echo "autopurge.purgeInterval=0"
        for j in 1 2 3; do echo "server.$j=127.0.0.1:$((ZK_QUORUM_PORT + j - 1)):$((ZK_ELECTION_PORT + j - 1))"; done
    } >"$d/zoo.cfg"
    java -Xmx1000m -Dzookeeper.log.dir="$d" -Dzookeeper.root.logger=WARN,CONSOLE \
        -cp "$ZK_CONF_DIR:$ZK_JAR" org.apache.zookeeper.server.quorum.QuorumPeerMain \
        "$d/zoo.cfg" >"$d/server.log" 2>&1 &
    PIDS+=("$!")
    ZK_SERVERS+="${ZK_SERVERS:+,}127.0.0.1:$((ZK_PORT + i - 1))"
done
# Coord, 3 nodes on loopback.
"$COORDD" dev --nodes 3 --dir "$WORK/coord" --port "$COORD_PORT" >"$WORK/coord.out" 2>"$WORK/coord.err" &
PIDS+=("$!")
for _ in $(seq 1 150); do grep -q '^export COORD_CA=' "$WORK/coord.out" 2>/dev/null && break; sleep 0.2; done
eval "$(grep '^export COORD_' "$WORK/coord.out")" || die "coordd dev did not start: $WORK/coord.err"
# Both serving: a first call succeeds.
for _ in $(seq 1 90); do "$BUILD/zk_bench" "$ZK_SERVERS" get 1 0.1 >/dev/null 2>&1 && break; sleep 1; done
for _ in $(seq 1 90); do "$BUILD/coord_bench" get 1 0.1 >/dev/null 2>&1 && break; sleep 1; done
log "ZooKeeper on $ZK_SERVERS, Coord on $COORD_SERVERS; $SECS s per row"

row() { # OP THREADS HANDLES(own|shared)
    local z c
    z=$("$BUILD/zk_bench" "$ZK_SERVERS" "$1" "$2" "$SECS" "$3" | awk '{print $5}')
    c=$("$BUILD/coord_bench" "$1" "$2" "$SECS" "$3" | awk '{print $5}')
    printf '%-4s %7s %-14s %12s %12s %7s\n' "$1" "$2" "$3" "$z" "$c" \
        "$(awk -v z="$z" -v c="$c" 'BEGIN { printf (z > 0 ? "%.2fx" : "-"), c / z }')"
}
printf '%-4s %7s %-14s %12s %12s %7s\n' op threads handles "zookeeper/s" "coord/s" ratio
for op in get set; do
    row "$op" 1 own
    row "$op" 8 own
    row "$op" 8 shared
done
