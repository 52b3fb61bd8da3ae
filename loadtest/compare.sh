#!/usr/bin/env bash
# Coord vs Apache ZooKeeper 3.8 on this machine: same load generator, same workloads, one
# system at a time (so they never compete for CPU), one table with the ratio.
#
#   loadtest/compare.sh                  # full run (~10 minutes)
#   QUICK=1 loadtest/compare.sh          # smoke: 3 s runs, 20k znodes for the RSS figure
#   DURATION=10 ONLY=zk loadtest/compare.sh
#
# Environment (defaults in brackets):
#   DURATION [20] WARMUP [5] measured / warm-up seconds of every run; WARMUP_RUN [10]
#   seconds of the throw-away run before the first measured one
#   SESSIONS [32] INFLIGHT [8] the concurrent workloads; WIDE_SESSIONS [256] the x1 ones
#   VALUE_SIZE [100] KEYS [1000] POPULATE [200000] (znodes loaded before reading RSS)
#   ZK_NODES [3] ZK_PORT [2181] (client ports ZK_PORT..), ZK_QUORUM_PORT [12888],
#   ZK_ELECTION_PORT [13888], ZK_JVM_OPTS [-Xmx1000m, zkServer.sh's default heap]
#   COORD_NODES [3, falls back to 1] COORD_PORT [7381]
#   ONLY [both] = zk | coord     WORK [mktemp under /tmp]     KEEP [0] = 1 keeps data dirs
#   CARGO_TARGET_DIR             where the release binaries are built
#
# Everything started here is stopped on exit (by PID). Results: $WORK/results/*.json
# (one line per run, the loadtest's JSON) and *.svg plots.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

if [[ "${QUICK:-0}" == 1 ]]; then
    : "${DURATION:=3}" "${WARMUP:=1}" "${WARMUP_RUN:=2}" "${POPULATE:=20000}"
fi
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
WARMUP_RUN=${WARMUP_RUN:-10}
SESSIONS=${SESSIONS:-32}
INFLIGHT=${INFLIGHT:-8}
WIDE_SESSIONS=${WIDE_SESSIONS:-256}
VALUE_SIZE=${VALUE_SIZE:-100}
KEYS=${KEYS:-1000}
POPULATE=${POPULATE:-200000}
ZK_NODES=${ZK_NODES:-3}
ZK_PORT=${ZK_PORT:-2181}
ZK_QUORUM_PORT=${ZK_QUORUM_PORT:-12888}
ZK_ELECTION_PORT=${ZK_ELECTION_PORT:-13888}
ZK_JVM_OPTS=${ZK_JVM_OPTS:--Xmx1000m}
ZK_JAR=${ZK_JAR:-/usr/share/java/zookeeper.jar}
ZK_CONF_DIR=${ZK_CONF_DIR:-/etc/zookeeper/conf}
COORD_NODES=${COORD_NODES:-3}
COORD_PORT=${COORD_PORT:-7381}
ONLY=${ONLY:-both}
KEEP=${KEEP:-0}
WORK=${WORK:-$(mktemp -d /tmp/coord-compare.XXXXXX)}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
RESULTS="$WORK/results"
LOADTEST="$TARGET_DIR/release/coord-loadtest"
COORDD="$TARGET_DIR/release/coordd"

mkdir -p "$RESULTS"
log() { printf 'compare: %s\n' "$*" >&2; }
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
    local servers pid
    servers=$(coord_server_pids)
    stop_pid "$COORD_PID" # `coordd dev` stops its servers on SIGTERM
    for pid in $servers; do stop_pid "$pid"; done # in case it could not
    COORD_PID=""
}

cleanup() {
    local rc=$?
    zk_stop
    coord_stop
    if [[ "$KEEP" != 1 ]]; then rm -rf "$WORK/zk" "$WORK/coord"; fi
    log "results in $RESULTS"
    exit "$rc"
}

# ---------------------------------------------------------------------------- helpers
# Resident memory of PID and every descendant, in KiB.
rss_tree_kb() {
    local root=$1 total=0 pid kb
    local pids=("$root")
    local queue=("$root")
    while ((${#queue[@]})); do
        local p=${queue[0]}
        queue=("${queue[@]:1}")
        for child in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
            pids+=("$child")
            queue+=("$child")
        done
    done
    for pid in "${pids[@]}"; do
        kb=$(awk '/^VmRSS:/ {print $2}' /proc/"$pid"/status 2>/dev/null || true)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}

# cpu_ticks PID...: user + system clock ticks used so far by these processes (all threads).
cpu_ticks() {
    local pid total=0
    for pid in "$@"; do
        [[ -r /proc/$pid/stat ]] || continue
        # Fields 14 and 15 (utime, stime), counted after the ")" that ends the command name.
        total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# The server processes of the system being measured (set before calling workloads).
SERVER_PIDS=()

# run LABEL TARGET SERVERS [loadtest flags...]: one loadtest run; its JSON line goes to
# $RESULTS/TARGET.LABEL.json (with the servers' CPU per op added as server_cpu_us_per_op),
# the full output to .log.
run() {
    local label=$1 target=$2 servers=$3
    shift 3
    local out="$RESULTS/$target.$label"
    log "$target: $label ($*)"
    local before after
    before=$(cpu_ticks "${SERVER_PIDS[@]}")
    if ! "$LOADTEST" --target "$target" --servers "$servers" "$@" >"$out.log" 2>"$out.err"; then
        log "$target: $label failed; see $out.log / $out.err"
        tail -n 5 "$out.err" >&2 || true
    fi
    after=$(cpu_ticks "${SERVER_PIDS[@]}")
    # CPU of the whole run (warm-up included) over every op the run completed.
    tail -n 1 "$out.log" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
ticks, hz = int(sys.argv[1]), int(sys.argv[2])
done = d.get("ops", 0) * (d.get("duration_s", 0) + d.get("warmup_s", 0)) / max(d.get("duration_s", 0), 1e-9)
if done > 0 and ticks > 0:
    d["server_cpu_us_per_op"] = round(ticks / hz * 1e6 / done, 2)
print(json.dumps(d))' "$((after - before))" "$(getconf CLK_TCK)" >"$out.json" 2>/dev/null ||
        tail -n 1 "$out.log" >"$out.json"
    tail -n 1 "$out.json" >&2
}

workloads() { # TARGET SERVERS
    local t=$1 s=$2
    local common=(--value-size "$VALUE_SIZE" --keys "$KEYS" --warmup "$WARMUP" --duration "$DURATION")
    # Throw-away run: JIT, page cache, connection setup, key creation.
    run warmup "$t" "$s" --workload mixed --read-pct 50 --sessions "$SESSIONS" --inflight "$INFLIGHT" \
        --value-size "$VALUE_SIZE" --keys "$KEYS" --warmup 0 --duration "$WARMUP_RUN"
    run write "$t" "$s" "${common[@]}" --no-setup --workload write \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.write.svg"
    run read90 "$t" "$s" "${common[@]}" --no-setup --workload mixed --read-pct 90 \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.read90.svg"
    run read100 "$t" "$s" "${common[@]}" --no-setup --workload read \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.read100.svg"
    run write_wide "$t" "$s" "${common[@]}" --no-setup --workload write \
        --sessions "$WIDE_SESSIONS" --inflight 1 --plot "$RESULTS/$t.write_wide.svg"
    run read_wide "$t" "$s" "${common[@]}" --no-setup --workload read \
        --sessions "$WIDE_SESSIONS" --inflight 1 --plot "$RESULTS/$t.read_wide.svg"
    # Reads that see every acknowledged write: Coord's linearizable mode (ReadIndex) next
    # to ZooKeeper's only way to get that, sync + get; then sync + get on both.
    local strong=sync
    [[ $t == coord ]] && strong=linearizable
    run read_lin "$t" "$s" "${common[@]}" --no-setup --workload read --read-mode "$strong" \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.read_lin.svg"
    run read_sync "$t" "$s" "${common[@]}" --no-setup --workload read --read-mode sync \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.read_sync.svg"
    # Coord's client cache (Chubby's, never staler than a linearizable read) next to
    # ZooKeeper's way to the same guarantee, sync + get again.
    local cached=sync
    [[ $t == coord ]] && cached=cached
    run read_cached "$t" "$s" "${common[@]}" --no-setup --workload read --read-mode "$cached" \
        --sessions "$SESSIONS" --inflight "$INFLIGHT" --plot "$RESULTS/$t.read_cached.svg"
    run create "$t" "$s" "${common[@]}" --create-latency --plot "$RESULTS/$t.create.svg"
}

# memory TARGET SERVERS PID...: RSS of the servers before and after --populate.
memory() {
    local t=$1 s=$2
    shift 2
    local before=0 after=0 pid
    for pid in "$@"; do before=$((before + $(rss_tree_kb "$pid"))); done
    run populate "$t" "$s" --populate "$POPULATE" --value-size "$VALUE_SIZE" \
        --sessions 16 --inflight 16
    sleep 2
    for pid in "$@"; do after=$((after + $(rss_tree_kb "$pid"))); done
    printf '{"mode":"rss","target":"%s","servers":%d,"znodes":%d,"rss_before_kib":%d,"rss_after_kib":%d}\n' \
        "$t" "$#" "$POPULATE" "$before" "$after" >"$RESULTS/$t.rss.json"
    log "$t: RSS of $# server(s): $((before / 1024)) MiB -> $((after / 1024)) MiB after $POPULATE znodes"
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

# srvr on PORT prints "Mode: leader|follower|standalone" once the server serves.
zk_mode() {
    local port=$1
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'srvr' >&3
        timeout 2 cat <&3
    ) 2>/dev/null | awk '/^Mode:/ {print $2}' || true
}

zk_start() {
    zk_install
    local i d
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
                local j
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
    local deadline=$((SECONDS + 90)) modes
    while :; do
        modes=""
        for i in $(seq 1 "$ZK_NODES"); do modes+="$(zk_mode $((ZK_PORT + i - 1))) "; done
        if [[ $(wc -w <<<"$modes") -eq $ZK_NODES ]]; then break; fi
        for pid in "${ZK_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a ZooKeeper server exited; see $WORK/zk/*/server.log"
        done
        ((SECONDS < deadline)) || die "ZooKeeper ensemble not serving after 90 s (modes: $modes)"
        sleep 0.5
    done
    log "ZooKeeper $ZK_NODES node(s) serving on $(zk_servers): $modes"
}

# ---------------------------------------------------------------------------- Coord
# Starts `coordd dev --nodes N`; returns non-zero if it exits or prints nothing in 15 s.
coord_try() {
    local nodes=$1 out="$WORK/coord/dev.out"
    mkdir -p "$WORK/coord"
    : >"$out"
    "$COORDD" dev --nodes "$nodes" --dir "$WORK/coord/data" --port "$COORD_PORT" \
        >"$out" 2>"$WORK/coord/dev.err" &
    COORD_PID=$!
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        if grep -q '^export COORD_CA=' "$out"; then return 0; fi
        if ! kill -0 "$COORD_PID" 2>/dev/null; then
            wait "$COORD_PID" 2>/dev/null || true
            COORD_PID=""
            return 1
        fi
        sleep 0.2
    done
    coord_stop
    return 1
}

coord_start() {
    COORD_RAN=""
    if ((COORD_NODES > 1)) && coord_try "$COORD_NODES"; then
        COORD_RAN=$COORD_NODES
    else
        if ((COORD_NODES > 1)); then
            log "coordd dev --nodes $COORD_NODES is not supported by this build ($(head -n 1 "$WORK/coord/dev.err" 2>/dev/null)); using 1 node"
        fi
        coord_try 1 || die "coordd dev did not start; see $WORK/coord/dev.err"
        COORD_RAN=1
    fi
    COORD_SERVERS=$(sed -n 's/^export COORD_SERVERS=//p' "$WORK/coord/dev.out")
    COORD_CA=$(sed -n 's/^export COORD_CA=//p' "$WORK/coord/dev.out")
    export COORD_CA
    # The servers print their addresses before an ensemble has elected a leader: wait until
    # a session can read (the probe creates /loadtest/k0, which the workloads use anyway).
    local deadline=$((SECONDS + 90))
    until "$LOADTEST" --target coord --servers "$COORD_SERVERS" --workload read --keys 1 \
        --sessions 1 --inflight 1 --warmup 0 --duration 0.2 >/dev/null 2>"$WORK/coord/probe.err"; do
        kill -0 "$COORD_PID" 2>/dev/null || die "coordd dev exited; see $WORK/coord/dev.err"
        ((SECONDS < deadline)) || die "Coord not serving after 90 s; see $WORK/coord/probe.err"
        sleep 1
    done
    log "Coord: coordd dev --nodes $COORD_RAN serving on $COORD_SERVERS (pid $COORD_PID)"
    if [[ "$COORD_RAN" != "$ZK_NODES" ]]; then
        log "NOTE: Coord runs $COORD_RAN node(s) against ZooKeeper's $ZK_NODES: writes are not replicated on the Coord side yet"
    fi
}

# The server processes of the running `coordd dev` (each node writes n<i>/pid); the dev
# supervisor itself when it wrote none (older builds ran the one server in-process).
coord_server_pids() {
    local f pids=()
    for f in "$WORK"/coord/data/n*/pid; do
        [[ -f "$f" ]] && pids+=("$(tr -d '[:space:]' <"$f")")
    done
    if ((${#pids[@]} == 0)) || [[ "${pids[0]}" == "$COORD_PID" ]]; then pids=("$COORD_PID"); fi
    echo "${pids[@]}"
}

# ---------------------------------------------------------------------------- main
main() {
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    log "building coord-loadtest and coordd (release) into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -q -p coord-loadtest -p coord-server) ||
        die "build failed"
    log "work dir $WORK; DURATION=$DURATION WARMUP=$WARMUP WARMUP_RUN=$WARMUP_RUN SESSIONS=$SESSIONS INFLIGHT=$INFLIGHT WIDE_SESSIONS=$WIDE_SESSIONS VALUE_SIZE=$VALUE_SIZE KEYS=$KEYS POPULATE=$POPULATE"

    if [[ "$ONLY" == both || "$ONLY" == zk ]]; then
        zk_start
        SERVER_PIDS=("${ZK_PIDS[@]}")
        workloads zk "$(zk_servers)"
        memory zk "$(zk_servers)" "${ZK_PIDS[@]}"
        zk_stop
    fi
    if [[ "$ONLY" == both || "$ONLY" == coord ]]; then
        coord_start
        read -r -a SERVER_PIDS <<<"$(coord_server_pids)"
        workloads coord "$COORD_SERVERS"
        memory coord "$COORD_SERVERS" $(coord_server_pids)
        coord_stop
    fi
    printf '{"coord_nodes":"%s","zk_nodes":%d,"duration_s":%s,"cpus":%d,"sessions":%d,"inflight":%d,"wide_sessions":%d}\n' \
        "${COORD_RAN:-}" "$ZK_NODES" "$DURATION" "$(nproc)" "$SESSIONS" "$INFLIGHT" "$WIDE_SESSIONS" \
        >"$RESULTS/meta.json"

    table
}

# ---------------------------------------------------------------------------- table
table() {
    if ! command -v python3 >/dev/null; then
        log "python3 not found: raw results follow"
        cat "$RESULTS"/*.json
        return 0
    fi
    python3 - "$RESULTS" <<'PY'
import json, os, sys
res = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(res, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
meta = load("meta.json") or {}
sk = f"{meta.get('sessions', '?')}x{meta.get('inflight', '?')}"
wide = f"{meta.get('wide_sessions', '?')}x1"
figs = ["ops_per_sec", "p50_ms", "p99_ms", "p999_ms", "server_cpu_us_per_op"]
rows = [
    ("write", f"write {sk}", figs),
    ("read90", f"90% read {sk}", figs),
    ("read100", f"100% read {sk}", figs),
    ("write_wide", f"write {wide}", figs),
    ("read_wide", f"read {wide}", figs),
    ("read_lin", f"lin read {sk}", figs),
    ("read_sync", f"sync+get {sk}", figs),
    ("read_cached", f"cached read {sk}", figs),
    ("create", "sync create", figs),
]
print()
print(f"Coord ({meta.get('coord_nodes') or '-'} node(s)) vs ZooKeeper 3.8 "
      f"({meta.get('zk_nodes')} nodes), {meta.get('cpus')} CPUs, {meta.get('duration_s')} s per run")
print("ratio = Coord / ZooKeeper (throughput: higher is better; latency: lower is better)")
print(f"{'workload':<16} {'figure':<14} {'Coord':>12} {'ZooKeeper':>12} {'ratio':>8}")
def fmt(v):
    return "-" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}")
for key, label, figures in rows:
    c, z = load(f"coord.{key}.json"), load(f"zk.{key}.json")
    for fig in figures:
        cv = c.get(fig) if c else None
        zv = z.get(fig) if z else None
        ratio = f"{cv / zv:.2f}" if cv is not None and zv else "-"
        name = (fig.replace("server_cpu_us_per_op", "srv CPU us/op")
                .replace("_ms", " ms").replace("ops_per_sec", "ops/s"))
        print(f"{label:<16} {name:<14} {fmt(cv):>12} {fmt(zv):>12} {ratio:>8}")
    errs = [(t, d.get("errors")) for t, d in (("coord", c), ("zk", z)) if d and d.get("errors")]
    for t, n in errs:
        print(f"{'':<16} {t + ' errors':<14} {n:>12}")
c, z = load("coord.rss.json"), load("zk.rss.json")
for what, k in (("RSS before", "rss_before_kib"), ("RSS after", "rss_after_kib")):
    cv = c[k] / 1024 / c["servers"] if c else None
    zv = z[k] / 1024 / z["servers"] if z else None
    ratio = f"{cv / zv:.2f}" if cv is not None and zv else "-"
    n = (c or z or {}).get("znodes", "?")
    print(f"{'memory/server':<16} {what + ' MiB':<14} {fmt(cv):>12} {fmt(zv):>12} {ratio:>8}")
print(f"(memory: mean VmRSS per server process tree, before and after loading {n} znodes)")
PY
}

# Sourcing this file (e.g. to call zk_start by hand) only defines the functions (and makes
# the work dir); it starts nothing.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
