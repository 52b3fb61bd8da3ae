#!/usr/bin/env bash
# The Python client next to kazoo 2.11 on Apache ZooKeeper 3.8, on this machine, in one run:
# get/set ops/s (1 thread, 8 threads, 64 in flight) and lock acquire/release cycles/s under
# contending sessions (bench.py), plus the wheel's size and `pip install` time.
#
#   bindings/python/compare.sh                     # full run
#   QUICK=1 bindings/python/compare.sh             # smoke: 2 s rows, 8 lock sessions
#   SOURCE_INSTALL=1 bindings/python/compare.sh    # also time `pip install ./bindings/python`
#
# Environment (defaults in brackets):
#   SECONDS_PER_ROW [10] get/set row length; LOCK_SESSIONS [32] LOCK_SECONDS [10]
#   ZK_NODES [3] ZK_PORT [22181] ZK_QUORUM_PORT [22888] ZK_ELECTION_PORT [23888]
#   ZK_JVM_OPTS [-Xmx1000m] ZK_JAR [/usr/share/java/zookeeper.jar] ZK_CONF_DIR [/etc/zookeeper/conf]
#   COORD_PORT [27381] (peers on +100)    WORK [mktemp under /tmp]   KEEP [0] = 1 keeps WORK
#   SOURCE_INSTALL [0] = 1 also times a from-source install (a full release build: minutes)
#   WHEEL [built here] a prebuilt coord wheel to measure instead of building one
#
# One system runs at a time (they never compete for CPU); both with 3 voting servers on
# loopback, durable writes: ZooKeeper forceSync=yes, Coord fsyncs every batch (always on).
# Everything started here is stopped on exit, by PID.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

if [[ "${QUICK:-0}" == 1 ]]; then
    : "${SECONDS_PER_ROW:=2}" "${LOCK_SESSIONS:=8}" "${LOCK_SECONDS:=3}"
fi
SECONDS_PER_ROW=${SECONDS_PER_ROW:-10}
LOCK_SESSIONS=${LOCK_SESSIONS:-32}
LOCK_SECONDS=${LOCK_SECONDS:-10}
ZK_NODES=${ZK_NODES:-3}
ZK_PORT=${ZK_PORT:-22181}
ZK_QUORUM_PORT=${ZK_QUORUM_PORT:-22888}
ZK_ELECTION_PORT=${ZK_ELECTION_PORT:-23888}
ZK_JVM_OPTS=${ZK_JVM_OPTS:--Xmx1000m}
ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}
ZK_CONF_DIR=${ZK_CONF_DIR:-/etc/zookeeper/conf}
COORD_PORT=${COORD_PORT:-27381}
KEEP=${KEEP:-0}
SOURCE_INSTALL=${SOURCE_INSTALL:-0}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-$(mktemp -d /tmp/coord-py-compare.XXXXXX)}
RESULTS="$WORK/results.jsonl"
COORDD="$ROOT/target/release/coordd"

mkdir -p "$WORK"
: >"$RESULTS"
log() { printf 'compare: %s\n' "$*" >&2; }
elapsed() { "$PYTHON" -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$1" "$2"; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- cleanup
ZK_PIDS=()
COORD_PID=""

stop_pid() { # PID: TERM, wait up to 10 s, then KILL
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

zk_stop() {
    local pid
    for pid in "${ZK_PIDS[@]}"; do stop_pid "$pid"; done
    ZK_PIDS=()
}

coord_stop() {
    [[ -n "$COORD_PID" ]] || return 0
    local f pids=()
    for f in "$WORK"/coord/n*/pid; do [[ -f "$f" ]] && pids+=("$(tr -d '[:space:]' <"$f")"); done
    stop_pid "$COORD_PID" # `coordd dev` stops its servers on SIGTERM
    for f in "${pids[@]}"; do stop_pid "$f"; done # in case it could not
    COORD_PID=""
}

cleanup() {
    local rc=$?
    zk_stop
    coord_stop
    if [[ "$KEEP" != 1 ]]; then rm -rf "$WORK/zk" "$WORK/coord" "$WORK/clean-venv" "$WORK/src-venv" "$WORK/src-target"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- build
log "building coordd (release) into $ROOT/target"
(cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target" cargo build --release -q -p coord-server --bin coordd) ||
    die "coordd build failed"

BENCH_VENV="$ROOT/target/py/bench-venv"
if [[ ! -x "$BENCH_VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$BENCH_VENV"
fi
"$BENCH_VENV/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" "kazoo==2.11.0"

if [[ -n "${WHEEL:-}" ]]; then
    [[ -f "$WHEEL" ]] || die "WHEEL=$WHEEL: no such file"
    log "using the prebuilt wheel $WHEEL"
else
    log "building the release wheel (target/py, incremental)"
    rm -rf "$WORK/wheels"
    (cd "$HERE" && CARGO_TARGET_DIR="$ROOT/target/py" "$BENCH_VENV/bin/maturin" build --release --quiet \
        --out "$WORK/wheels" >"$WORK/wheel-build.log" 2>&1) || { tail -n 20 "$WORK/wheel-build.log" >&2; die "wheel build failed"; }
    WHEEL=$(ls "$WORK"/wheels/coord-*.whl)
fi
WHEEL_BYTES=$(stat -c %s "$WHEEL")
"$BENCH_VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"

# pip install of the wheel into a clean venv (venv creation not counted).
"$PYTHON" -m venv "$WORK/clean-venv"
t0=$EPOCHREALTIME
"$WORK/clean-venv/bin/python" -m pip install -q --disable-pip-version-check --no-index "$WHEEL"
t1=$EPOCHREALTIME
WHEEL_INSTALL_S=$(elapsed "$t0" "$t1")
"$WORK/clean-venv/bin/python" -c 'import coord, coord.aio' || die "the installed wheel does not import"

SRC_INSTALL_S=""
if [[ "$SOURCE_INSTALL" == 1 ]]; then
    log "timing pip install ./bindings/python (a release build from scratch in $WORK/src-target)"
    "$PYTHON" -m venv "$WORK/src-venv"
    t0=$EPOCHREALTIME
    CARGO_TARGET_DIR="$WORK/src-target" "$WORK/src-venv/bin/python" -m pip install -q \
        --disable-pip-version-check "$HERE" >"$WORK/src-install.log" 2>&1 ||
        { tail -n 20 "$WORK/src-install.log" >&2; die "pip install from source failed"; }
    t1=$EPOCHREALTIME
    SRC_INSTALL_S=$(elapsed "$t0" "$t1")
fi

bench() { # SYSTEM [bench.py args...]
    local system=$1
    shift
    log "$system: bench.py --seconds $SECONDS_PER_ROW --lock-sessions $LOCK_SESSIONS --lock-seconds $LOCK_SECONDS"
    (cd "$WORK" && "$BENCH_VENV/bin/python" "$HERE/bench.py" --only "$system" --seconds "$SECONDS_PER_ROW" \
        --lock-sessions "$LOCK_SESSIONS" --lock-seconds "$LOCK_SECONDS" --json "$RESULTS" "$@") >&2
}

# ---------------------------------------------------------------------------- ZooKeeper
zk_install() {
    if [[ -f "$ZK_JAR" ]]; then return 0; fi
    log "ZooKeeper not found at $ZK_JAR; installing the Debian package"
    command -v apt-get >/dev/null || die "no apt-get: install ZooKeeper 3.8 and set ZK_JAR"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
    [[ -f "$ZK_JAR" ]] || die "the zookeeper package did not provide $ZK_JAR"
}

zk_servers() {
    local i list=""
    for i in $(seq 1 "$ZK_NODES"); do list+="${list:+,}127.0.0.1:$((ZK_PORT + i - 1))"; done
    echo "$list"
}

zk_mode() { # PORT: "leader" / "follower" / "standalone" once the server serves
    local port=$1
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'srvr' >&3
        timeout 2 cat <&3
    ) 2>/dev/null | awk '/^Mode:/ {print $2}' || true
}

zk_start() {
    zk_install
    local i j d
    for i in $(seq 1 "$ZK_NODES"); do
        d="$WORK/zk/$i"
        mkdir -p "$d/data"
        echo "$i" >"$d/data/myid"
        {
            echo "tickTime=2000"
            echo "initLimit=10"
            echo "syncLimit=5"
            echo "dataDir=$d/data"
            echo "clientPort=$((ZK_PORT + i - 1))"
            echo "clientPortAddress=127.0.0.1"
            echo "maxClientCnxns=0"
            echo "forceSync=yes"
            echo "admin.enableServer=false"
            echo "4lw.commands.whitelist=srvr,ruok,mntr"
            echo "autopurge.purgeInterval=0"
            if ((ZK_NODES > 1)); then
                for j in $(seq 1 "$ZK_NODES"); do
                    echo "server.$j=127.0.0.1:$((ZK_QUORUM_PORT + j - 1)):$((ZK_ELECTION_PORT + j - 1))"
                done
            fi
        } >"$d/zoo.cfg"
        # shellcheck disable=SC2086 # ZK_JVM_OPTS is a list of JVM flags
        java $ZK_JVM_OPTS -Dzookeeper.log.dir="$d" -Dzookeeper.root.logger=WARN,CONSOLE \
            -cp "$ZK_CONF_DIR:$ZK_JAR" org.apache.zookeeper.server.quorum.QuorumPeerMain \
            "$d/zoo.cfg" >"$d/server.log" 2>&1 &
        ZK_PIDS+=("$!")
    done
    local deadline=$((SECONDS + 90)) modes pid
    while :; do
        modes=""
        for i in $(seq 1 "$ZK_NODES"); do modes+="$(zk_mode $((ZK_PORT + i - 1))) "; done
        if [[ $(wc -w <<<"$modes") -eq $ZK_NODES ]]; then break; fi
        for pid in "${ZK_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a ZooKeeper server exited; see $WORK/zk/*/server.log"
        done
        ((SECONDS < deadline)) || die "ZooKeeper not serving after 90 s (modes: $modes)"
        sleep 0.5
    done
    ZK_VERSION=$(dpkg-query -W -f='${Version}' zookeeper 2>/dev/null || echo "at $ZK_JAR")
    log "ZooKeeper ${ZK_VERSION:-?} on $(zk_servers): $modes"
}

# ---------------------------------------------------------------------------- Coord
coord_start() {
    mkdir -p "$WORK/coord"
    "$COORDD" dev --nodes 3 --dir "$WORK/coord" --port "$COORD_PORT" >"$WORK/coord/dev.out" 2>"$WORK/coord/dev.err" &
    COORD_PID=$!
    local deadline=$((SECONDS + 30))
    until grep -q '^export COORD_CA=' "$WORK/coord/dev.out"; do
        kill -0 "$COORD_PID" 2>/dev/null || die "coordd dev exited; see $WORK/coord/dev.err"
        ((SECONDS < deadline)) || die "coordd dev printed no addresses in 30 s"
        sleep 0.2
    done
    COORD_SERVERS=$(sed -n 's/^export COORD_SERVERS=//p' "$WORK/coord/dev.out" | tr -d "'\"")
    COORD_CA=$(sed -n 's/^export COORD_CA=//p' "$WORK/coord/dev.out" | tr -d "'\"")
    export COORD_SERVERS COORD_CA
    # The addresses come before the ensemble has a leader: wait until a session can write.
    deadline=$((SECONDS + 90))
    until "$BENCH_VENV/bin/python" -c '
import coord
with coord.Client(timeout=3) as c:
    c.ensure_path("/bench-ready")' 2>/dev/null; do
        kill -0 "$COORD_PID" 2>/dev/null || die "coordd dev exited; see $WORK/coord/dev.err"
        ((SECONDS < deadline)) || die "Coord not serving after 90 s"
        sleep 0.5
    done
    log "Coord: coordd dev --nodes 3 on $COORD_SERVERS"
}

# ---------------------------------------------------------------------------- run
zk_start
bench kazoo --zk "$(zk_servers)"
zk_stop

coord_start
bench coord
coord_stop

# ---------------------------------------------------------------------------- table
"$PYTHON" - "$RESULTS" "$WHEEL" "$WHEEL_BYTES" "$WHEEL_INSTALL_S" "$SRC_INSTALL_S" \
    "$SECONDS_PER_ROW" "$LOCK_SECONDS" "$(nproc)" "${ZK_VERSION:-3.8}" <<'PY'
import json, os, sys
res, wheel, wheel_bytes, wheel_s, src_s, row_s, lock_s, cpus, zkv = sys.argv[1:]
rows = {}
for line in open(res):
    d = json.loads(line)
    rows[(d["system"], d["op"], d["mode"])] = d["ops_per_sec"]
keys = []
for (system, op, mode) in rows:
    if (op, mode) not in keys:
        keys.append((op, mode))
print()
print(f"Python clients, 3 servers each on one machine ({cpus} CPUs), one system at a time;"
      f" get/set rows {row_s} s, lock rows {lock_s} s")
print(f"coord (this wheel) vs kazoo 2.11 on ZooKeeper {zkv}")
print()
print(f"| {'op':<4} | {'mode':<12} | {'coord ops/s':>11} | {'kazoo ops/s':>11} | {'ratio':>6} |")
print(f"|{'-'*6}|{'-'*14}|{'-'*13}|{'-'*13}|{'-'*8}|")
for op, mode in keys:
    c, k = rows.get(("coord", op, mode)), rows.get(("kazoo", op, mode))
    ratio = f"{c / k:.2f}x" if c and k else "-"
    fc = f"{c:.0f}" if c is not None else "-"
    fk = f"{k:.0f}" if k is not None else "-"
    print(f"| {op:<4} | {mode:<12} | {fc:>11} | {fk:>11} | {ratio:>6} |")
print()
print("async x64: coord.aio, 64 asyncio tasks on one session; kazoo (no asyncio API):")
print("  get_async/set_async on one session with 64 calls outstanding.")
print("lock: that many processes, one session each, looping acquire+release on one lock;")
print("  coord.Lock vs kazoo.recipe.lock.Lock; total cycles/s.")
print()
print(f"wheel: {os.path.basename(wheel)}  {int(wheel_bytes) / 1e6:.1f} MB ({int(wheel_bytes)} bytes)")
print(f"pip install of the wheel into a clean venv: {float(wheel_s):.2f} s")
if src_s:
    print(f"pip install ./bindings/python into a clean venv (release build from scratch): {float(src_s):.0f} s")
PY
