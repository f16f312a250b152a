#!/usr/bin/env bash
# scripts/services-down.sh: stop the Kafka and Redis that scripts/services-up.sh
# started (found by the pid files in the state dir; anything else is left).
#
#   scripts/services-down.sh [--kill] [--purge] [kafka] [redis]
#   scripts/services-down.sh --cluster [--kill] [--purge] [kafka] [redis] [kafka-N] [redis-PORT]
#
# With no service named, both are stopped ("redis" includes the secure test
# redis that services-up.sh starts next to the plain one), and so is every
# node of services-up.sh --cluster that the state dir holds (below): nothing
# the state dir records is left running. Idempotent: a service that is not
# running is skipped.
#   (default)  graceful: SIGTERM, wait for a clean shutdown (Kafka flushes and
#              closes its logs, Redis fsyncs its AOF), SIGKILL after a timeout.
#   --kill     SIGKILL at once: a crash, for fault tests. Data written before
#              is kept (Kafka recovers its logs; Redis keeps what its AOF had,
#              at most about one second is lost with appendfsync everysec).
#   --purge    also delete the service's data (Kafka's log dir and cluster id,
#              the Redis dirs; with no service named, the cluster's too), so
#              the next services-up starts empty. The resolved classpath, the
#              built probe, the test certificates and passwords (certs/,
#              secure/) are kept.
#
# A restart that keeps data, e.g. for a fault test:
#   scripts/services-down.sh kafka && scripts/services-up.sh kafka
#   scripts/services-down.sh --kill redis && scripts/services-up.sh redis
#
# --cluster stops only the nodes of services-up.sh --cluster (found by
# their pid files in $FALLBACK_SERVICES_DIR/cluster/): kafka-N or redis-PORT
# one node, kafka or redis all of that kind, nothing named all of them, side
# by side. Without --cluster, "kafka" or "redis" named stops only the single
# node's, so a fault test restarting it leaves a cluster running next to it
# alone; nothing named stops both kinds. --kill and the stop timeout as above. --purge deletes the data
# of the nodes of the kinds selected (a whole kind only: a lone node's wiped
# data would not rejoin); cluster/bin/ and mvn.log are kept. E.g.
#   kill -KILL "$(cat "$FALLBACK_SERVICES_DIR/cluster/kafka-2.pid")"
#   scripts/services-up.sh --cluster kafka-2        # back, in sync
#   scripts/services-down.sh --cluster redis-17000  # SIGTERM, wait
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
CLUSTER=""
CLUSTER_NODES=()
for arg in "$@"; do
  case "$arg" in
    --kill) KILL=1 ;;
    --purge) PURGE=1 ;;
    --cluster) CLUSTER=1 ;;
    kafka) WANT_KAFKA=1 ;;
    redis) WANT_REDIS=1 ;;
    kafka-[0-9]*|redis-[0-9]*) CLUSTER_NODES+=("$arg") ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "services-down: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ -z "$CLUSTER" && ${#CLUSTER_NODES[@]} -gt 0 ]]; then
  echo "services-down: ${CLUSTER_NODES[0]} names a cluster node: use --cluster" >&2
  exit 2
fi
if [[ -n "$PURGE" && ${#CLUSTER_NODES[@]} -gt 0 ]]; then
  # A lone node's wiped data does not rejoin: a Redis node without its
  # nodes.conf knows no cluster, a Kafka voter without its log is unsafe.
  echo "services-down: --purge wipes the whole cluster (or all its kafka or redis nodes): name no single node" >&2
  exit 2
fi
# ALL: nothing named, so everything the state dir holds (without --cluster,
# the cluster's nodes after the single node's).
ALL=""
if [[ -z "$WANT_KAFKA$WANT_REDIS" && ${#CLUSTER_NODES[@]} -eq 0 ]]; then WANT_KAFKA=1; WANT_REDIS=1; ALL=1; fi

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

# ----------------------------------------------------------------- cluster
# --cluster: the nodes of services-up.sh --cluster, found by their pid files
# in $STATE/cluster (kafka-N.pid, redis-PORT.pid), so no port settings are
# needed here. All are signalled first and then waited for: they shut down
# side by side (the three Kafka nodes also finish their controlled
# shutdowns while a controller quorum is still up).
CSTATE="$STATE/cluster"

# pattern NAME: what the command line of node NAME must contain.
pattern() {
  case "$1" in
    kafka-*) echo "$CSTATE/$1/server.properties" ;;
    *) echo redis-server ;;
  esac
}

SIGNALLED=()   # "name pid" of the processes signalled
T_SIGNAL=""
# signal NAME: SIGTERM (SIGKILL with --kill) the node if its pid file names
# a live process whose command line matches.
signal() {
  local name="$1" pidfile="$CSTATE/$1.pid" pid
  if [[ ! -f "$pidfile" ]]; then
    log "$name: no pid file; not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  if [[ -z "$pid" ]] || ! running "$pid" || ! tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(pattern "$name")"; then
    log "$name: pid ${pid:-?} is not running"
    rm -f "$pidfile"
    return 0
  fi
  [[ -n "$T_SIGNAL" ]] || T_SIGNAL="$(date +%s.%N)"
  if [[ -n "$KILL" ]]; then
    log "$name: SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  else
    log "$name: SIGTERM pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
  fi
  SIGNALLED+=("$name $pid")
}

# kafka_others_alive ENTRY...: whether a Kafka node other than those in
# ENTRY ("name pid") still runs, by its pid file (one not signalled here).
kafka_others_alive() {
  local f name pid entry mine
  for f in "$CSTATE"/kafka-[0-9]*.pid; do
    [[ -f "$f" ]] || continue
    name="$(basename "$f" .pid)"
    mine=""
    for entry in "$@"; do [[ "${entry% *}" != "$name" ]] || mine=1; done
    [[ -z "$mine" ]] || continue
    pid="$(cat "$f" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && running "$pid"; then return 0; fi
  done
  return 1
}

# wait_signalled: wait for every signalled process to exit (SIGKILL after
# the stop timeout), removing each one's pid file and saying how long it
# took as soon as it is gone.
#
# A Kafka node that outlives the others cannot finish its controlled
# shutdown: that needs a controller quorum, and two of the three voters are
# gone. It would wait out the whole stop timeout; it gets QUORUM_GRACE
# seconds instead, then SIGKILL (its log is flushed by then).
QUORUM_GRACE=10
wait_signalled() {
  local entry name pid left deadline=$((SECONDS + STOP_TIMEOUT)) kafka_left alone_since=""
  local pending=("${SIGNALLED[@]}")
  while (( ${#pending[@]} )); do
    left=()
    kafka_left=0
    for entry in "${pending[@]}"; do
      name="${entry% *}" pid="${entry#* }"
      if running "$pid"; then
        left+=("$entry")
        [[ "$name" != kafka-* ]] || kafka_left=$((kafka_left + 1))
        continue
      fi
      rm -f "$CSTATE/$name.pid"
      log "$name: stopped after $(awk -v a="$T_SIGNAL" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }')"
    done
    pending=("${left[@]}")
    (( ${#pending[@]} )) || break
    if (( kafka_left == 1 )) && ! kafka_others_alive "${pending[@]}"; then
      [[ -n "$alone_since" ]] || alone_since=$SECONDS
      if (( SECONDS - alone_since > QUORUM_GRACE )); then
        for entry in "${pending[@]}"; do
          [[ "${entry% *}" == kafka-* ]] || continue
          log "${entry% *}: the last Kafka node, no controller quorum left for its controlled shutdown after ${QUORUM_GRACE}s; SIGKILL"
          kill -KILL "${entry#* }" 2>/dev/null || true
        done
        alone_since=$((SECONDS + STOP_TIMEOUT))
      fi
    fi
    if (( SECONDS > deadline )); then
      for entry in "${pending[@]}"; do
        log "${entry% *}: still running after ${STOP_TIMEOUT}s; SIGKILL"
        kill -KILL "${entry#* }" 2>/dev/null || true
      done
      deadline=$((SECONDS + 10))
    fi
    sleep 0.1
  done
}

# cluster_down: stop (and with --purge wipe) the cluster nodes selected by
# CLUSTER_NODES, WANT_KAFKA and WANT_REDIS.
cluster_down() {
  local nodes f n
  nodes=("${CLUSTER_NODES[@]}")
  if [[ -n "$WANT_KAFKA" ]]; then
    for f in "$CSTATE"/kafka-[0-9]*.pid; do [[ -f "$f" ]] && nodes+=("$(basename "$f" .pid)"); done
  fi
  if [[ -n "$WANT_REDIS" ]]; then
    for f in "$CSTATE"/redis-[0-9]*.pid; do [[ -f "$f" ]] && nodes+=("$(basename "$f" .pid)"); done
  fi
  (( ${#nodes[@]} )) || log "no cluster node has a pid file in $CSTATE; nothing runs"
  for n in "${nodes[@]}"; do signal "$n"; done
  wait_signalled
  if [[ -n "$PURGE" ]]; then
    if [[ -n "$WANT_KAFKA" ]]; then
      log "kafka: deleting $CSTATE/kafka-N/ (data, config, logs) and the cluster id"
      rm -rf "$CSTATE"/kafka-[0-9]* "$CSTATE/kafka-cluster.id" "$CSTATE/clusterready.err"
    fi
    if [[ -n "$WANT_REDIS" ]]; then
      log "redis: deleting $CSTATE/redis-PORT/ (AOF, nodes.conf, logs)"
      rm -rf "$CSTATE"/redis-[0-9]* "$CSTATE/redis-create.log"
    fi
    rm -f "$CSTATE/env"
  fi
}

if [[ -n "$CLUSTER" ]]; then
  cluster_down
  exit 0
fi

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
# Nothing named: the cluster's nodes too, when services-up.sh --cluster ran
# in this state dir (a newcomer stops with no arguments whatever it started).
if [[ -n "$ALL" && -d "$CSTATE" ]]; then
  log "cluster: $CSTATE exists (services-up.sh --cluster): stopping its nodes too"
  cluster_down
fi
