#!/usr/bin/env bash
# Runs the C test commands given as arguments, one after the other, against a real ensemble:
# a fresh `coordd dev --nodes 3` on a free port (COORDD, default target/debug/coordd),
# exporting COORD_SERVERS, COORD_CA, COORD_DEV_DIR and COORDD for the tests (test_failover
# kills and restarts a server through them). Exits non-zero if any command failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
COORDD=${COORDD:-$ROOT/target/debug/coordd}
export COORDD
DIR=$(mktemp -d)
# A free base port: the client ports (base..base+2) and peer ports (base+100..) unused.
while :; do
  PORT=$((20000 + RANDOM % 20000))
  busy=$(ss -Hulnt | awk '{print $5}' | grep -E ":($PORT|$((PORT+1))|$((PORT+2))|$((PORT+100))|$((PORT+101))|$((PORT+102)))\$" || true)
  [ -z "$busy" ] && break
done
setsid "$COORDD" dev --nodes 3 --dir "$DIR" --port "$PORT" >"$DIR/dev.log" 2>&1 &
DEV=$!
stop() {
  kill -TERM -- -"$DEV" 2>/dev/null || true
  # Servers restarted by a test are not in dev's process group: stop them by their pid file.
  for f in "$DIR"/n*/pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  wait "$DEV" 2>/dev/null || true
  for f in "$DIR"/n*/pid; do
    p=$(cat "$f" 2>/dev/null || echo)
    for _ in $(seq 1 50); do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && sleep 0.1 || break; done
  done
  rm -rf "$DIR"
}
trap stop EXIT
for _ in $(seq 1 300); do
  grep -q '^export COORD_CA=' "$DIR/dev.log" 2>/dev/null && break
  sleep 0.1
done
eval "$(grep '^export COORD_' "$DIR/dev.log")"
export COORD_DEV_DIR=$DIR
# Wait until the ensemble has a leader (a first session can be made).
for _ in $(seq 1 100); do
  grep -q 'Leading.*established=true' "$DIR"/n*/coordd.log 2>/dev/null && break
  sleep 0.1
done
status=0
for t in "$@"; do
  echo "== $t"
  # shellcheck disable=SC2086 # a command with its arguments (valgrind ...)
  if ! $t; then
    echo "== FAILED: $t"
    status=1
  fi
done
exit $status
