#!/usr/bin/env bash
# scripts/soak.sh: run the processor for a while under load and a nemesis,
# then judge every flow (integration/soak_test.go, docs/reliability.md).
#
#   scripts/soak.sh [--duration 5m] [--rate 200] [--procs 2] [--cluster]
#
#   --duration  how long the load and the nemesis run (a Go duration, at
#               least 1m); the judging after it takes a minute or two more
#   --rate      new flows per second
#   --procs     instances of `fallback run` (static members of one group)
#   --cluster   on the 3-broker Kafka and the 6-node Redis Cluster of
#               scripts/services-up.sh --cluster
#
# It starts the services it needs with scripts/services-up.sh (state in
# $FALLBACK_SERVICES_DIR, default /tmp/fallback-services) unless
# FALLBACK_BROKERS and FALLBACK_REDIS_URL are set, in which case they must
# be the services of $FALLBACK_SERVICES_DIR (the nemesis restarts them).
# The instances' logs are kept under $FALLBACK_SOAK_LOG_DIR (default
# /tmp/fallback-soak). The output ends with the timeline of the faults and
# one line
#
#   SOAK {"flows":N,"lost":0,"double_closed":0,"wrong_outcomes":0,"unjustified_second_sends":0,"nemesis_actions":N,...}
#
# and the exit status is 0 only when every count is 0.
set -euo pipefail

DURATION=5m
RATE=200
PROCS=2
CLUSTER=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --procs) PROCS="$2"; shift 2 ;;
    --cluster) CLUSTER=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FALLBACK_SERVICES_DIR="${FALLBACK_SERVICES_DIR:-/tmp/fallback-services}"
if [[ -z "${FALLBACK_BROKERS:-}" || -z "${FALLBACK_REDIS_URL:-}" ]]; then
  if [[ -n "$CLUSTER" ]]; then
    eval "$("$ROOT/scripts/services-up.sh" --cluster --env)"
  else
    eval "$("$ROOT/scripts/services-up.sh" --env)"
  fi
fi

LOGS="${FALLBACK_SOAK_LOG_DIR:-/tmp/fallback-soak}"
mkdir -p "$LOGS"
OUT="$LOGS/soak-$(date +%Y%m%d-%H%M%S).out"
# The test's own time limit: the run, the judging (a few minutes), a margin.
secs() { # a Go duration of hours, minutes and seconds, in whole seconds
  local d="$1" total=0 n unit
  while [[ "$d" =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n="${BASH_REMATCH[1]}" unit="${BASH_REMATCH[2]}" d="${BASH_REMATCH[3]}"
    case "$unit" in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
  done
  [[ -z "$d" && "$total" -gt 0 ]] || { echo "soak: --duration $1: use hours, minutes and seconds, e.g. 5m, 1h, 1m30s" >&2; exit 2; }
  echo "$total"
}
SECS="$(secs "$DURATION")"
TIMEOUT="$((SECS + 1200))s"

echo "soak: $DURATION at $RATE flows/s, $PROCS instances${CLUSTER:+, cluster}; output in $OUT" >&2
set +e
(cd "$ROOT" && FALLBACK_SOAK_DURATION="$DURATION" FALLBACK_SOAK_RATE="$RATE" FALLBACK_SOAK_PROCS="$PROCS" \
  FALLBACK_FAULT_LOG_DIR="$LOGS" \
  go test -count=1 -run '^TestSoak$' -timeout "$TIMEOUT" -v ./integration/) >"$OUT" 2>&1
status=$?
set -e
# What went wrong, if anything, then the timeline and the summary last.
grep -E '^\s+(soak_test|faults_[a-z_]+)\.go:[0-9]+: ' "$OUT" | grep -v 'services-(up|down)' | tail -n 40 >&2 || true
sed -n '/^soak timeline/,/^SOAK /p' "$OUT"
if ! grep -q '^SOAK ' "$OUT"; then
  tail -n 30 "$OUT" >&2
  echo "soak: no SOAK line (status $status); see $OUT" >&2
  exit $((status == 0 ? 1 : status))
fi
exit "$status"
