#!/usr/bin/env bash
# scripts/services-down.sh: stop the Kafka and Redis that scripts/services-up.sh
# started (found by the pid files in the state dir; anything else is left).
#
#   scripts/services-down.sh [--kill] [--purge] [kafka] [redis]
#
# With no service named, both are stopped ("redis" includes the secure test
# redis that services-up.sh starts next to the plain one). Idempotent: a service that is not
# running is skipped.
#   (default)  graceful: SIGTERM, wait for a clean shutdown (Kafka flushes and
#              closes its logs, Redis fsyncs its AOF), SIGKILL after a timeout.
#   --kill     SIGKILL at once: a crash, for fault tests. Data written before
#              is kept (Kafka recovers its logs; Redis keeps what its AOF had,
#              at most about one second is lost with appendfsync everysec).
#   --purge    also delete the service's data (Kafka's log dir and cluster id,
#              the Redis dirs), so the next services-up starts empty. The
#              resolved classpath, the built probe, the test certificates and
#              passwords (certs/, secure/) are kept.
#
# A restart that keeps data, e.g. for a fault test:
#   scripts/services-down.sh kafka && scripts/services-up.sh kafka
#   scripts/services-down.sh --kill redis && scripts/services-up.sh redis
#
# Settings: FALLBACK_SERVICES_DIR (default /tmp/fallback-services),
# FALLBACK_SERVICES_STOP_TIMEOUT seconds before SIGKILL (default 60).
set -euo pipefail

STATE="${FALLBACK_SERVICES_DIR:-/tmp/fallback-services}"
STOP_TIMEOUT="${FALLBACK_SERVICES_STOP_TIMEOUT:-60}"

KILL=""
PURGE=""
WANT_KAFKA=""
WANT_REDIS=""
for arg in "$@"; do
  case "$arg" in
    --kill) KILL=1 ;;
    --purge) PURGE=1 ;;
    kafka) WANT_KAFKA=1 ;;
    redis) WANT_REDIS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "services-down: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ -z "$WANT_KAFKA$WANT_REDIS" ]]; then WANT_KAFKA=1; WANT_REDIS=1; fi

log() { printf '[services-down %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
  local state
  # the state follows the ")" that closes the command name
  state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# stop NAME PIDFILE PATTERN: stop the process in PIDFILE if it is alive and its
# command line contains PATTERN (so a recycled pid is never signalled).
stop() {
  local name="$1" pidfile="$2" pattern="$3" pid
  if [[ ! -f "$pidfile" ]]; then
    log "$name: no pid file; not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  if ! running "$pid" || ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern"; then
    log "$name: pid $pid is not running"
    rm -f "$pidfile"
    return 0
  fi
  local t; t="$(date +%s.%N)"
  if [[ -n "$KILL" ]]; then
    log "$name: SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  else
    log "$name: SIGTERM pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while running "$pid"; do
    if (( SECONDS > deadline )); then
      log "$name: still running after ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  log "$name: stopped in $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }')"
}

if [[ -n "$WANT_KAFKA" ]]; then
  stop kafka "$STATE/kafka.pid" kafka.Kafka
  if [[ -n "$PURGE" ]]; then
    log "kafka: deleting $STATE/kafka/data and the cluster id"
    rm -rf "$STATE/kafka/data" "$STATE/kafka/cluster.id"
  fi
fi
if [[ -n "$WANT_REDIS" ]]; then
  stop redis "$STATE/redis.pid" redis-server
  # the secure test redis (TLS, passwords), when services-up.sh started one
  if [[ -f "$STATE/redis-secure.pid" ]]; then
    stop "secure redis" "$STATE/redis-secure.pid" redis-server
  fi
  if [[ -n "$PURGE" ]]; then
    log "redis: deleting $STATE/redis and $STATE/redis-secure"
    rm -rf "$STATE/redis" "$STATE/redis-secure"
  fi
fi
