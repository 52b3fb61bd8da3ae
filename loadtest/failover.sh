#!/usr/bin/env bash
# Failover gap, side by side: leader SIGKILL to the next successful write, for a 3-node
# ZooKeeper 3.8 ensemble and a 3-node Coord ensemble on this machine, RUNS times each (a
# fresh ensemble per run), fsync on in both. Prints each run and the medians.
#
#   loadtest/failover.sh            # RUNS=5 by default
#
# Reuses compare.sh's functions to install, start and stop both systems.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUNS=${RUNS:-5}
# shellcheck source=compare.sh
source "$HERE/compare.sh"

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

cargo build --release -q -p coord-loadtest -p coord-server -p coord-cli --manifest-path "$ROOT/Cargo.toml"
trap cleanup EXIT
: >"$RESULTS/failover-zk" ; : >"$RESULTS/failover-coord"

for run in $(seq 1 "$RUNS"); do
    # ZooKeeper: the leader is the server whose srvr says "Mode: leader".
    ZK_PIDS=()
    WORK_RUN="$WORK/run$run"; mkdir -p "$WORK_RUN"; WORK_SAVE=$WORK; WORK=$WORK_RUN
    zk_start
    leader_pid=""
    for i in $(seq 1 "$ZK_NODES"); do
        if [[ "$(zk_mode $((ZK_PORT + i - 1)))" == leader ]]; then leader_pid=${ZK_PIDS[$((i - 1))]}; fi
    done
    [[ -n "$leader_pid" ]] || die "no ZooKeeper leader"
    "$LOADTEST" --target zk --servers "$(zk_servers)" --warmup 2 --duration 30 --failover-kill "$leader_pid" \
        | tail -n 1 | tee -a "$RESULTS/failover-zk.json" | sed -n 's/.*"failover_gap_ms":\([0-9.]*\).*/\1/p' >>"$RESULTS/failover-zk"
    zk_stop
    # Coord: the leader is the server `coord status --json` calls leader; its pid is n<i>/pid.
    coord_start
    leader_id=$("$TARGET_DIR/release/coord" --servers "$COORD_SERVERS" --ca "$COORD_CA" status --json \
        | tr '{' '\n' | grep '"role":"leader"' | sed -n 's/.*"id":\([0-9]*\).*/\1/p' | head -n 1)
    [[ -n "$leader_id" ]] || die "no Coord leader"
    leader_pid=$(tr -d '[:space:]' <"$WORK/coord/data/n$leader_id/pid")
    "$LOADTEST" --target coord --servers "$COORD_SERVERS" --ca "$COORD_CA" --warmup 2 --duration 30 --failover-kill "$leader_pid" \
        | tail -n 1 | tee -a "$RESULTS/failover-coord.json" | sed -n 's/.*"failover_gap_ms":\([0-9.]*\).*/\1/p' >>"$RESULTS/failover-coord"
    coord_stop
    WORK=$WORK_SAVE
    log "run $run: zk $(tail -n 1 "$RESULTS/failover-zk") ms, coord $(tail -n 1 "$RESULTS/failover-coord") ms"
done
zk=$(median <"$RESULTS/failover-zk"); coord=$(median <"$RESULTS/failover-coord")
printf '\nfailover gap (leader SIGKILL -> next successful write), median of %s runs\n' "$RUNS"
printf '%-12s %10s ms   runs: %s\n' "ZooKeeper" "$zk" "$(tr '\n' ' ' <"$RESULTS/failover-zk")"
printf '%-12s %10s ms   runs: %s\n' "Coord" "$coord" "$(tr '\n' ' ' <"$RESULTS/failover-coord")"
awk -v c="$coord" -v z="$zk" 'BEGIN { if (z > 0) printf "%-12s %10.2f\n", "Coord/ZK", c / z }'
