#!/usr/bin/env bash
# scripts/services-up.sh: start a real Apache Kafka (single-node KRaft,
# broker+controller) and a real Redis on this machine, without Docker; with
# --cluster, a 3-node Kafka cluster and a 6-node Redis Cluster instead.
#
#   scripts/services-up.sh [--env] [kafka] [redis]
#   scripts/services-up.sh --cluster [--env] [kafka] [redis] [kafka-N] [redis-PORT]
#
# With no service named, both are started. Idempotent: a service that already
# answers on its port is left alone; a missing redis-server, Java or Maven is
# installed with apt-get; the Kafka classpath is resolved with Maven from
# integration/infra/kafka/pom.xml (cached in ~/.m2, offline afterwards).
# Data is kept under the state dir across stop/start: an already formatted
# Kafka log dir is never formatted again (scripts/services-down.sh --purge
# wipes it).
#
# Progress and timings go to stderr; stdout gets the addresses only:
#   FALLBACK_BROKERS=127.0.0.1:9092
#   FALLBACK_REDIS_URL=redis://127.0.0.1:6379/0
# and, for the security tests (integration/security_test.go), the secure
# side: the broker's SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512;
# certificates from a throwaway CA made here) and a second Redis with TLS,
# requirepass and an ACL user. These are test settings, not fallback's own:
#   FALLBACK_TEST_KAFKA_SECURE=127.0.0.1:9094
#   FALLBACK_TEST_KAFKA_CA=<state>/certs/ca.pem
#   FALLBACK_TEST_KAFKA_USER=fallback
#   FALLBACK_TEST_KAFKA_PASSWORD=<random, kept in <state>/secure/kafka-password>
#   FALLBACK_TEST_REDIS_SECURE_URL=rediss://fallback@127.0.0.1:6380/0
#   FALLBACK_TEST_REDIS_CA=<state>/certs/ca.pem
#   FALLBACK_TEST_REDIS_PASSWORD=<random, kept in <state>/secure/redis-password>
#   FALLBACK_TEST_TLS_CLIENT_CERT=<state>/certs/client.pem
#   FALLBACK_TEST_TLS_CLIENT_KEY=<state>/certs/client-key.pem
# (redis:// and no FALLBACK_TEST_REDIS_CA when redis-server has no TLS; none
# of them with FALLBACK_SERVICES_SECURE=0 or without Go.)
# With --env the lines are "export ..." so that
#   eval "$(scripts/services-up.sh --env)"
# sets them in the calling shell. They are also written to $STATE/env.
#
# Settings (environment):
#   FALLBACK_SERVICES_DIR      state dir (default /tmp/fallback-services)
#   FALLBACK_SERVICES_KAFKA_PORT       broker port      (default 9092)
#   FALLBACK_SERVICES_CONTROLLER_PORT  controller port  (default 9093)
#   FALLBACK_SERVICES_REDIS_PORT       redis port       (default 6379)
#   FALLBACK_SERVICES_KAFKA_SECURE_PORT   broker SASL_SSL port      (default 9094)
#   FALLBACK_SERVICES_REDIS_SECURE_PORT   secure redis (TLS) port   (default 6380)
#   FALLBACK_SERVICES_SECURE   1 (default): also the secure listener and redis; 0: not
#   KAFKA_HEAP_OPTS            JVM heap options (default -Xms256m -Xmx1g;
#                              with --cluster -Xms128m -Xmx384m per broker)
#   FALLBACK_SERVICES_TIMEOUT  seconds to wait for each service (default 120)
#
# Layout of the state dir:
#   kafka/server.properties  kafka/log4j2.xml  kafka/mvn.log
#   kafka/cluster.id kafka/data/ (log.dirs)   kafka/server.log  kafka/kafka.out
#   kafka.pid        redis/ (AOF, RDB)        redis.log  redis.pid
#   bin/kafkaready   env
#   certs/ (ca.pem, server.pem, server-key.pem, server-keypair.pem, client.pem,
#   client-key.pem)  secure/ (kafka-password, redis-password, redis.conf)
#   redis-secure/    redis-secure.log  redis-secure.pid  bin/securesetup
# The resolved classpath is cached in ~/.cache/fallback-services/ (keyed by
# the pom's content), the jars in ~/.m2.
#
# Cluster mode (--cluster), for failover tests; it runs next to the single
# node (other ports, state in $FALLBACK_SERVICES_DIR/cluster/) and has no
# secure side:
#   Kafka: nodes kafka-1..kafka-3, each broker+controller, one static
#     3-voter KRaft quorum (controller.quorum.voters); brokers on 19092-19094,
#     controllers on 19192-19194; default.replication.factor=3,
#     min.insync.replicas=2, internal topics with 3 replicas (min ISR 2).
#   Redis: nodes redis-17000..redis-17005, a Redis Cluster of 3 masters with
#     one replica each (made once with redis-cli --cluster create; later
#     starts reuse nodes.conf), cluster-node-timeout 2000 ms, AOF as above.
# kafka and redis select all nodes of that kind; kafka-N and redis-PORT one
# node (a restart after a kill: only that node is started, the others are
# left alone). Nothing named: all nine. It waits until every running Redis
# node says cluster_state:ok with all 16384 slots served and each node
# started is settled (its role agreed by the others, a replica synced), and
# until every running Kafka node is a registered, unfenced broker, a group
# coordinator exists, every partition has its live replicas in sync and
# leadership is back on the preferred replicas (internal/tools/clusterready,
# built into cluster/bin/). Stdout:
#   FALLBACK_BROKERS=127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094
#   FALLBACK_REDIS_URL=redis://127.0.0.1:17000?addr=127.0.0.1:17001&addr=...&addr=127.0.0.1:17005
#   FALLBACK_CLUSTER=1
# (the URL lists all six nodes; with --env the values are single-quoted,
# since ? and & mean something to the shell). The same lines, unquoted, are
# in cluster/env (KEY=value lines to read, not to source).
# Settings: FALLBACK_SERVICES_CLUSTER_KAFKA_PORT (first broker port, default
# 19092), FALLBACK_SERVICES_CLUSTER_CONTROLLER_PORT (first controller port,
# default 19192), FALLBACK_SERVICES_CLUSTER_REDIS_PORT (first Redis port,
# default 17000; each node's cluster bus is its port + 10000); the ports of
# the other nodes follow the first.
# Layout of cluster/:
#   kafka-N/ (server.properties, log4j2.xml, data/, server.log, kafka.out,
#   format.log)  kafka-N.pid  kafka-cluster.id
#   redis-PORT/ (nodes.conf, appendonlydir/, redis.log)  redis-PORT.pid
#   redis-create.log  bin/clusterready  clusterready.err  mvn.log  env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${FALLBACK_SERVICES_DIR:-/tmp/fallback-services}"
KAFKA_PORT="${FALLBACK_SERVICES_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${FALLBACK_SERVICES_CONTROLLER_PORT:-9093}"
REDIS_PORT="${FALLBACK_SERVICES_REDIS_PORT:-6379}"
KAFKA_SECURE_PORT="${FALLBACK_SERVICES_KAFKA_SECURE_PORT:-9094}"
REDIS_SECURE_PORT="${FALLBACK_SERVICES_REDIS_SECURE_PORT:-6380}"
SECURE="${FALLBACK_SERVICES_SECURE:-1}"
[[ "$SECURE" != 0 ]] || SECURE=""
SECURE_USER=fallback
TIMEOUT="${FALLBACK_SERVICES_TIMEOUT:-120}"
HOST=127.0.0.1
POM="$ROOT/integration/infra/kafka/pom.xml"
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
MVN_LOG_DIR="$STATE/kafka" # where kafka_classpath leaves mvn.log ($CSTATE in cluster mode)

# Cluster mode (--cluster): 3 Kafka nodes and a 6-node Redis Cluster, on
# ports of their own so that it can run next to the single node.
CLUSTER_KAFKA_PORT="${FALLBACK_SERVICES_CLUSTER_KAFKA_PORT:-19092}"
CLUSTER_CONTROLLER_PORT="${FALLBACK_SERVICES_CLUSTER_CONTROLLER_PORT:-19192}"
CLUSTER_REDIS_PORT="${FALLBACK_SERVICES_CLUSTER_REDIS_PORT:-17000}"
CSTATE="$STATE/cluster"

EXPORT=""
WANT_KAFKA=""
WANT_REDIS=""
CLUSTER=""
CLUSTER_NODES=()
for arg in "$@"; do
  case "$arg" in
    --env) EXPORT="export " ;;
    --cluster) CLUSTER=1 ;;
    kafka) WANT_KAFKA=1 ;;
    redis) WANT_REDIS=1 ;;
    kafka-[0-9]*|redis-[0-9]*) CLUSTER_NODES+=("$arg") ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "services-up: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ -z "$CLUSTER" && ${#CLUSTER_NODES[@]} -gt 0 ]]; then
  echo "services-up: ${CLUSTER_NODES[0]} names a cluster node: use --cluster" >&2
  exit 2
fi
if [[ -z "$WANT_KAFKA$WANT_REDIS" && ${#CLUSTER_NODES[@]} -eq 0 ]]; then WANT_KAFKA=1; WANT_REDIS=1; fi

log() { printf '[services-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# A listening port inside the kernel's ephemeral range can be taken, while
# its service is down for a restart, by the local port of any outgoing
# connection; the service then fails to start with "Address already in
# use" (a restart loop on 49092..49094 did, at its 12th SIGKILL). Say so.
warn_ephemeral_ports() {
  local range lo hi p
  range="$(cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)" || return 0
  read -r lo hi <<<"$range"
  for p in "$@"; do
    if (( p >= lo && p <= hi )); then
      log "WARNING: port $p is in the ephemeral range $lo-$hi: an outgoing connection can hold it while the service restarts; choose ports below $lo"
    fi
  done
}
warn_ephemeral_ports "$KAFKA_PORT" "$CONTROLLER_PORT" "$REDIS_PORT" "$KAFKA_SECURE_PORT" "$REDIS_SECURE_PORT" \
  "$CLUSTER_KAFKA_PORT" "$CLUSTER_CONTROLLER_PORT" "$CLUSTER_REDIS_PORT"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2fs", b - a }'; }

T_ALL="$(now)"
mkdir -p "$STATE"

if [[ -z "$(command -v go || true)" && -x /usr/local/go/bin/go ]]; then
  PATH="$PATH:/usr/local/go/bin"
fi

# ---------------------------------------------------------------- installs
APT_UPDATED=""
apt_install() {
  local sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $*"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  local t; t="$(now)"
  if [[ -z "$APT_UPDATED" ]]; then
    log "apt-get update"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
  log "installed $* in $(since "$t")"
}

# port_open HOST PORT: something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# alive PIDFILE PATTERN: the pid in the file is a running process whose
# command line contains PATTERN (a stale file with a recycled pid is not).
alive() {
  local pid
  [[ -f "$1" ]] && pid="$(cat "$1")" && [[ -n "$pid" ]] || return 1
  [[ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" =~ ^[^ZX]$ ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

# ------------------------------------------------------------------- redis
redis_ping() { [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

start_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server redis-tools
  fi
  if redis_ping; then
    log "redis already answering on $HOST:$REDIS_PORT; left as it is"
    return
  fi
  if port_open "$HOST" "$REDIS_PORT" && ! alive "$STATE/redis.pid" redis-server; then
    die "port $HOST:$REDIS_PORT is taken by something that does not answer redis PING"
  fi
  mkdir -p "$STATE/redis"
  local t; t="$(now)"
  if ! alive "$STATE/redis.pid" redis-server; then
    log "starting redis-server on $HOST:$REDIS_PORT (dir $STATE/redis)"
    redis-server \
      --bind "$HOST" --port "$REDIS_PORT" \
      --dir "$STATE/redis" \
      --appendonly yes --appendfsync everysec \
      --daemonize yes \
      --pidfile "$STATE/redis.pid" \
      --logfile "$STATE/redis.log" \
      --save "" \
      >&2 || die "redis-server failed to start; see $STATE/redis.log"
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until redis_ping; do
    if (( SECONDS > deadline )); then
      tail -n 20 "$STATE/redis.log" >&2 || true
      die "redis did not answer PING within ${TIMEOUT}s"
    fi
    sleep 0.05
  done
  REDIS_STARTED="$(since "$t")"
  log "redis answers PING: started in $REDIS_STARTED"
}

# ------------------------------------------------------------------ secure
CERTS="$STATE/certs"
SECRETS="$STATE/secure"
SECURESETUP=""

# secure_prepare: build internal/tools/securesetup, make (or keep) the certificates
# and the passwords. Without Go there is no secure side: SECURE is cleared.
secure_prepare() {
  if ! command -v go >/dev/null; then
    log "go not found: no secure listener and no secure redis"
    SECURE=""
    return
  fi
  local t; t="$(now)"
  mkdir -p "$STATE/bin" "$SECRETS"
  chmod 700 "$SECRETS"
  if ! (cd "$ROOT" && go build -o "$STATE/bin/securesetup" ./internal/tools/securesetup) >&2; then
    die "could not build internal/tools/securesetup"
  fi
  SECURESETUP="$STATE/bin/securesetup"
  "$SECURESETUP" certs -dir "$CERTS" >&2 || die "could not write the test certificates"
  local f
  for f in kafka-password redis-password; do
    if [[ ! -s "$SECRETS/$f" ]]; then
      # letters and digits only: the PLAIN password also sits in a JAAS line
      (umask 077; head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24 > "$SECRETS/$f")
    fi
  done
  log "secure side prepared in $(since "$t") (certificates in $CERTS)"
}

# redis_tls: redis-server is built with TLS (linked to OpenSSL). No pipe into
# grep -q: with pipefail, ldd killed by SIGPIPE would make it fail at random.
redis_tls() { [[ "$(ldd "$(command -v redis-server)" 2>/dev/null)" == *libssl* ]]; }

REDIS_SECURE_TLS=""
redis_secure_ping() {
  local tls=()
  [[ -z "$REDIS_SECURE_TLS" ]] || tls=(--tls --cacert "$CERTS/ca.pem")
  [[ "$(redis-cli "${tls[@]}" -h "$HOST" -p "$REDIS_SECURE_PORT" --user "$SECURE_USER" \
        --pass "$(cat "$SECRETS/redis-password")" --no-auth-warning ping 2>/dev/null)" == PONG ]]
}

# start_redis_secure: a second redis-server with TLS only (when built with
# TLS), a password on the default user and an ACL user, from a config file
# (mode 0600: it holds the passwords).
start_redis_secure() {
  if redis_tls; then
    REDIS_SECURE_TLS=1
  else
    log "redis-server has no TLS support: the secure redis is plaintext with passwords"
  fi
  if redis_secure_ping; then
    log "secure redis already answering on $HOST:$REDIS_SECURE_PORT; left as it is"
    return
  fi
  if port_open "$HOST" "$REDIS_SECURE_PORT" && ! alive "$STATE/redis-secure.pid" redis-server; then
    die "port $HOST:$REDIS_SECURE_PORT is taken by something that does not answer the secure redis PING"
  fi
  mkdir -p "$STATE/redis-secure"
  local t pw
  t="$(now)"
  pw="$(cat "$SECRETS/redis-password")"
  if ! alive "$STATE/redis-secure.pid" redis-server; then
    rm -f "$SECRETS/redis.conf"
    (umask 077; : > "$SECRETS/redis.conf")
    {
      echo "# Written by scripts/services-up.sh: the secure test redis."
      echo "bind $HOST"
      if [[ -n "$REDIS_SECURE_TLS" ]]; then
        echo "port 0"
        echo "tls-port $REDIS_SECURE_PORT"
        echo "tls-cert-file $CERTS/server.pem"
        echo "tls-key-file $CERTS/server-key.pem"
        echo "tls-ca-cert-file $CERTS/ca.pem"
        echo "tls-auth-clients optional"
      else
        echo "port $REDIS_SECURE_PORT"
      fi
      echo "requirepass $pw"
      echo "user $SECURE_USER on >$pw ~* &* +@all -@dangerous"
      echo "dir $STATE/redis-secure"
      echo "appendonly yes"
      echo "appendfsync everysec"
      echo 'save ""'
      echo "daemonize yes"
      echo "pidfile $STATE/redis-secure.pid"
      echo "logfile $STATE/redis-secure.log"
    } >> "$SECRETS/redis.conf"
    log "starting the secure redis-server on $HOST:$REDIS_SECURE_PORT (${REDIS_SECURE_TLS:+TLS, }requirepass, ACL user $SECURE_USER)"
    redis-server "$SECRETS/redis.conf" >&2 || die "secure redis-server failed to start; see $STATE/redis-secure.log"
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until redis_secure_ping; do
    if (( SECONDS > deadline )); then
      tail -n 20 "$STATE/redis-secure.log" >&2 || true
      die "the secure redis did not answer PING within ${TIMEOUT}s"
    fi
    sleep 0.05
  done
  log "secure redis answers PING: started in $(since "$t")"
}

# ------------------------------------------------------------------- kafka
# java_ok BIN: BIN is a Java 17 or newer.
java_ok() {
  [[ -n "$1" ]] && command -v "$1" >/dev/null || return 1
  local v
  v="$("$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ { print $2 }')"
  [[ -n "$v" && "${v%%.*}" -ge 17 ]]
}

# find_java: set JAVA to a Java 17+ binary: $JAVA_HOME's, the one on PATH, or
# one under /usr/lib/jvm (installing openjdk-17-jre-headless if none is).
find_java() {
  local c
  for c in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} java /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*/bin/java; do
    if java_ok "$c"; then JAVA="$c"; return 0; fi
  done
  apt_install openjdk-17-jre-headless
  for c in java /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    if java_ok "$c"; then JAVA="$c"; return 0; fi
  done
  die "Kafka needs Java 17 or newer"
}

# kafka_classpath: resolve (once) and print the path of the classpath file.
kafka_classpath() {
  # Cached per content of the pom, outside the state dir, so a fresh state
  # dir (as CI uses) does not run Maven again.
  local key cache cpfile
  key="$(sha256sum "$POM" | cut -c1-16)"
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/fallback-services"
  cpfile="$cache/kafka-$key.classpath"
  mkdir -p "$MVN_LOG_DIR" "$cache"
  local ok=""
  if [[ -s "$cpfile" ]]; then
    ok=1
    local jar
    IFS=: read -r -a jars < "$cpfile"
    for jar in "${jars[@]}"; do [[ -f "$jar" ]] || { ok=""; break; }; done
  fi
  if [[ -z "$ok" ]]; then
    command -v mvn >/dev/null || apt_install maven
    local t; t="$(now)"
    log "resolving the Kafka classpath with Maven ($POM)"
    # Offline first (everything cached in ~/.m2), then online.
    if ! mvn -o -B -q -Dstyle.color=never -f "$POM" "$DEP_PLUGIN:build-classpath" \
           -Dmdep.outputFile="$cpfile.tmp" >"$MVN_LOG_DIR/mvn.log" 2>&1; then
      mvn -B -q -Dstyle.color=never -f "$POM" "$DEP_PLUGIN:build-classpath" \
        -Dmdep.outputFile="$cpfile.tmp" >"$MVN_LOG_DIR/mvn.log" 2>&1 \
        || { cat "$MVN_LOG_DIR/mvn.log" >&2; die "maven could not resolve the Kafka classpath"; }
    fi
    mv "$cpfile.tmp" "$cpfile"
    log "Kafka classpath resolved in $(since "$t")"
  fi
  echo "$cpfile"
}

# kafka_probe: build (once, cached by go) the metadata probe; print its path
# or nothing when go is unavailable.
kafka_probe() {
  command -v go >/dev/null || return 0
  local bin="$STATE/bin/kafkaready" t
  t="$(now)"
  mkdir -p "$STATE/bin"
  if (cd "$ROOT" && go build -o "$bin" ./internal/tools/kafkaready) >&2; then
    log "metadata probe built in $(since "$t")"
    echo "$bin"
  else
    log "could not build internal/tools/kafkaready; falling back to the log line and a TCP connect"
  fi
}

write_kafka_config() {
  local dir="$STATE/kafka"
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT"
  local advertised="PLAINTEXT://$HOST:$KAFKA_PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [[ -n "$SECURE" ]]; then
    listeners="$listeners,SASL_SSL://$HOST:$KAFKA_SECURE_PORT"
    advertised="$advertised,SASL_SSL://$HOST:$KAFKA_SECURE_PORT"
    protocols="$protocols,SASL_SSL:SASL_SSL"
  fi
  cat > "$dir/server.properties" <<EOF
# Written by scripts/services-up.sh: single-node KRaft, broker+controller.
process.roles=broker,controller
node.id=1
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
controller.quorum.bootstrap.servers=$HOST:$CONTROLLER_PORT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# After a crash (services-down.sh --kill kafka) the restarted controller waits
# for the dead broker's session to expire before the broker may register
# again: 9s by default, 4s here.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  if [[ -n "$SECURE" ]]; then
    # The SASL_SSL listener: TLS with the test CA's server certificate (PEM
    # key store: key, then certificate chain), client certificates verified
    # when given; PLAIN users from the JAAS line, SCRAM users from the
    # cluster metadata (created by securesetup scram after start). The file
    # now holds a password: readable by its owner only.
    chmod 600 "$dir/server.properties"
    cat >> "$dir/server.properties" <<EOF
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$CERTS/server-keypair.pem
listener.name.sasl_ssl.ssl.truststore.type=PEM
listener.name.sasl_ssl.ssl.truststore.location=$CERTS/ca.pem
listener.name.sasl_ssl.ssl.client.auth=requested
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SECURE_USER="$(cat "$SECRETS/kafka-password")";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
  fi
  cat > "$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services-up.sh. -->
<Configuration status="warn">
  <Appenders>
    <File name="server" fileName="$dir/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.controller" level="info"/>
    <Logger name="state.change.logger" level="info"/>
    <Root level="info"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
EOF
}

# new_cluster_id: a Kafka Uuid as `kafka-storage random-uuid` prints it: 16
# random bytes in unpadded base64url, never starting with "-" (saves a JVM).
new_cluster_id() {
  local id="-"
  while [[ "$id" == -* || "$id" == AAAAAAAAAAAAAAAAAAAAA* ]]; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  echo "$id"
}

kafka_ready() { # kafka_ready PROBE TIMEOUT
  if [[ -n "$1" ]]; then
    "$1" -q -brokers "$HOST:$KAFKA_PORT" -timeout "$2" 2>/dev/null
  else
    port_open "$HOST" "$KAFKA_PORT" && grep -q 'Kafka Server started' "$STATE/kafka/server.log" 2>/dev/null
  fi
}

start_kafka() {
  find_java
  local cpfile probe
  cpfile="$(kafka_classpath)"
  probe="$(kafka_probe)"
  local dir="$STATE/kafka"

  if port_open "$HOST" "$KAFKA_PORT" && kafka_ready "$probe" 5s; then
    log "kafka already answering on $HOST:$KAFKA_PORT; left as it is"
    kafka_secure_setup
    return
  fi
  local t
  if alive "$STATE/kafka.pid" kafka.Kafka; then
    log "kafka (pid $(cat "$STATE/kafka.pid")) is running but not answering yet; waiting"
    t="$(now)"
  else
    if port_open "$HOST" "$KAFKA_PORT" || port_open "$HOST" "$CONTROLLER_PORT" \
       || { [[ -n "$SECURE" ]] && port_open "$HOST" "$KAFKA_SECURE_PORT"; }; then
      die "port $HOST:$KAFKA_PORT, $HOST:$CONTROLLER_PORT${SECURE:+ or $HOST:$KAFKA_SECURE_PORT} is taken by something that is not a ready Kafka"
    fi
    write_kafka_config
    local cp; cp="$(cat "$cpfile")"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
      [[ -s "$dir/cluster.id" ]] || new_cluster_id > "$dir/cluster.id"
      log "formatting $dir/data (cluster id $(cat "$dir/cluster.id"))"
      "$JAVA" -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.xml" kafka.tools.StorageTool format --standalone \
        -t "$(cat "$dir/cluster.id")" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
        || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
    else
      log "kafka log dir already formatted; keeping its data"
    fi
    log "starting kafka $(grep -o '<kafka.version>[^<]*' "$POM" | cut -d'>' -f2) on $HOST:$KAFKA_PORT (controller $HOST:$CONTROLLER_PORT, data $dir/data)"
    t="$(now)"
    rm -f "$STATE/kafka.pid"
    # In its own session (a Ctrl-C or a killed process group of the caller
    # does not reach it); the inner bash writes its own pid, then becomes java.
    # shellcheck disable=SC2016,SC2086 # $$ is the inner shell's; KAFKA_HEAP_OPTS holds several options
    nohup setsid bash -c 'echo $$ > "$0" && exec "$@"' "$STATE/kafka.pid" \
      "$JAVA" ${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g} \
      -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$dir" \
      -Dlog4j2.configurationFile="$dir/log4j2.xml" \
      -cp "$cp" kafka.Kafka "$dir/server.properties" \
      >"$dir/kafka.out" 2>&1 < /dev/null &
    for _ in $(seq 100); do [[ -s "$STATE/kafka.pid" ]] && break; sleep 0.05; done
  fi
  local deadline=$((SECONDS + TIMEOUT))
  until kafka_ready "$probe" 5s; do
    if ! alive "$STATE/kafka.pid" kafka.Kafka; then
      tail -n 30 "$dir/server.log" "$dir/kafka.out" >&2 2>/dev/null || true
      die "kafka exited during start-up; see $dir/server.log and $dir/kafka.out"
    fi
    if (( SECONDS > deadline )); then
      tail -n 30 "$dir/server.log" >&2 || true
      die "kafka did not answer a metadata request within ${TIMEOUT}s"
    fi
    sleep 0.2
  done
  KAFKA_STARTED="$(since "$t")"
  log "kafka answers metadata: started in $KAFKA_STARTED (launch to first answering metadata request)"
  if [[ -n "$probe" ]]; then
    # A fresh broker creates __consumer_offsets on the first FindCoordinator;
    # do it now rather than in the first test's consumer group.
    t="$(now)"
    "$probe" -q -coordinator -brokers "$HOST:$KAFKA_PORT" -timeout "${TIMEOUT}s" >&2 \
      || die "kafka has no group coordinator after ${TIMEOUT}s"
    log "kafka group coordinator ready in $(since "$t")"
  fi
  kafka_secure_setup
}

# kafka_secure_setup: create (or update) the SCRAM users through the
# plaintext listener and check that the SASL_SSL listener accepts each
# mechanism. A broker started before without the listener keeps running
# without it: no secure Kafka variables are printed then.
KAFKA_SECURE_OK=""
kafka_secure_setup() {
  [[ -n "$SECURE" ]] || return 0
  if ! port_open "$HOST" "$KAFKA_SECURE_PORT"; then
    log "WARNING: the running kafka has no SASL_SSL listener on $HOST:$KAFKA_SECURE_PORT (started without it);" \
      "restart it (scripts/services-down.sh kafka && scripts/services-up.sh kafka) for the security tests"
    return 0
  fi
  local t; t="$(now)"
  "$SECURESETUP" scram -brokers "$HOST:$KAFKA_PORT" -user "$SECURE_USER" \
    -password-file "$SECRETS/kafka-password" -timeout "${TIMEOUT}s" >&2 \
    || die "could not create the SCRAM users"
  "$SECURESETUP" check -brokers "$HOST:$KAFKA_SECURE_PORT" -ca "$CERTS/ca.pem" -user "$SECURE_USER" \
    -password-file "$SECRETS/kafka-password" -timeout "${TIMEOUT}s" >&2 \
    || { tail -n 30 "$STATE/kafka/server.log" >&2 || true; die "the SASL_SSL listener on $HOST:$KAFKA_SECURE_PORT does not accept the test user"; }
  KAFKA_SECURE_OK=1
  log "kafka SASL_SSL listener ready in $(since "$t")"
}

# ================================================================= cluster
# services-up.sh --cluster: three Kafka nodes (each broker+controller, one
# static 3-voter KRaft quorum) and a Redis Cluster of 3 masters with one
# replica each, all under $CSTATE with one pid file per process, so that a
# test can SIGKILL a single broker or Redis node and start it again by name.
# None of the single node's state, ports or secure side is used.

CLUSTER_KAFKA_IDS=(1 2 3)
CLUSTER_REDIS_NODES=6 # 3 masters + 3 replicas (--cluster-replicas 1)

ckafka_port() { echo $((CLUSTER_KAFKA_PORT + $1 - 1)); }
ckafka_controller_port() { echo $((CLUSTER_CONTROLLER_PORT + $1 - 1)); }
ckafka_pidfile() { echo "$CSTATE/kafka-$1.pid"; }
# The pattern names the node's own server.properties, so kafka-1's pid file
# never vouches for kafka-2's JVM (or for the single node's).
ckafka_alive() { alive "$(ckafka_pidfile "$1")" "$CSTATE/kafka-$1/server.properties"; }
credis_ports() { seq "$CLUSTER_REDIS_PORT" $((CLUSTER_REDIS_PORT + CLUSTER_REDIS_NODES - 1)); }
credis_pidfile() { echo "$CSTATE/redis-$1.pid"; }
credis_alive() { alive "$(credis_pidfile "$1")" redis-server; }

# ckafka_brokers [ID...]: host:port of the given nodes (default all), comma-separated.
ckafka_brokers() {
  local id out=()
  (( $# )) || set -- "${CLUSTER_KAFKA_IDS[@]}"
  for id in "$@"; do out+=("$HOST:$(ckafka_port "$id")"); done
  (IFS=,; echo "${out[*]}")
}

# credis_url: the first node as the URL's host, the others as addr=
# parameters: go-redis's ParseClusterURL form, which RedisClient
# (internal/clients/redis.go) takes as a cluster.
credis_url() {
  local p url="" sep="?"
  for p in $(credis_ports); do
    if [[ -z "$url" ]]; then url="redis://$HOST:$p"; else url="$url${sep}addr=$HOST:$p"; sep="&"; fi
  done
  echo "$url"
}

# cluster_select: which nodes this run starts, from the arguments: kafka-N
# and redis-PORT name one node, kafka and redis all of that kind, nothing
# all of both. Sets SEL_KAFKA (node ids) and SEL_REDIS (ports).
SEL_KAFKA=()
SEL_REDIS=()
cluster_select() {
  local n p found
  [[ -z "$WANT_KAFKA" ]] || SEL_KAFKA=("${CLUSTER_KAFKA_IDS[@]}")
  [[ -z "$WANT_REDIS" ]] || mapfile -t SEL_REDIS < <(credis_ports)
  for n in "${CLUSTER_NODES[@]}"; do
    found=""
    case "$n" in
      kafka-*)
        for p in "${CLUSTER_KAFKA_IDS[@]}"; do
          if [[ "$n" == "kafka-$p" ]]; then found=1; [[ " ${SEL_KAFKA[*]} " == *" $p "* ]] || SEL_KAFKA+=("$p"); fi
        done ;;
      redis-*)
        for p in $(credis_ports); do
          if [[ "$n" == "redis-$p" ]]; then found=1; [[ " ${SEL_REDIS[*]} " == *" $p "* ]] || SEL_REDIS+=("$p"); fi
        done ;;
    esac
    [[ -n "$found" ]] || die "no cluster node $n (kafka-1..kafka-${#CLUSTER_KAFKA_IDS[@]}, redis-$CLUSTER_REDIS_PORT..redis-$((CLUSTER_REDIS_PORT + CLUSTER_REDIS_NODES - 1)))"
  done
}

# ------------------------------------------------------- cluster: redis
# credis_cli PORT ARGS...: redis-cli's reply without CRs; never fails (a
# node that is down just gives nothing), so it is safe in $(...) under set -e.
credis_cli() {
  local p="$1"; shift
  { redis-cli -h "$HOST" -p "$p" "$@" 2>/dev/null || true; } | tr -d '\r'
}
credis_ping() { [[ "$(credis_cli "$1" ping)" == PONG ]]; }
# credis_field PORT FIELD [COMMAND...]: the value of FIELD:value in the reply
# to COMMAND (default CLUSTER INFO). awk reads to the end: with pipefail an
# early exit could fail the pipe with SIGPIPE.
credis_field() {
  local p="$1" f="$2"; shift 2
  (( $# )) || set -- cluster info
  credis_cli "$p" "$@" | awk -F: -v f="$f" '$1 == f && !done { print $2; done = 1 }'
}

CREDIS_STARTED=() # ports of the nodes this run started (or found starting)

# credis_start PORT: start one cluster node unless it already runs.
credis_start() {
  local p="$1" dir="$CSTATE/redis-$1" pidfile
  pidfile="$(credis_pidfile "$1")"
  if credis_ping "$p"; then
    [[ "$(credis_field "$p" cluster_enabled info cluster)" == 1 ]] \
      || die "$HOST:$p answers PING but is not a cluster-enabled redis"
    credis_alive "$p" || log "redis-$p: a redis not started here answers on $HOST:$p; used as it is"
    return
  fi
  if ! credis_alive "$p"; then
    # the cluster bus listens on the port + 10000
    if port_open "$HOST" "$p" || port_open "$HOST" $((p + 10000)); then
      die "port $HOST:$p or its cluster bus port $((p + 10000)) is taken by something that is not this cluster's redis"
    fi
    mkdir -p "$dir"
    # A killed node leaves its pid file behind; until the daemonized child
    # writes its own, credis_wait_ping would take the dead pid for a start
    # that failed.
    rm -f "$pidfile"
    log "redis-$p: starting redis-server on $HOST:$p (dir $dir)"
    # cluster-config-file as an absolute path: where a relative one lands
    # depends on when --dir is applied. Node timeout 2 s: a dead master is
    # failed over in a few seconds. AOF as the single node's. No diskless
    # sync delay: by default a master waits 5 s for more replicas before a
    # full sync, which a (re)started replica would wait through.
    redis-server \
      --bind "$HOST" --port "$p" \
      --dir "$dir" \
      --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" \
      --cluster-node-timeout 2000 \
      --repl-diskless-sync-delay 0 \
      --appendonly yes --appendfsync everysec \
      --save "" \
      --daemonize yes \
      --pidfile "$pidfile" \
      --logfile "$dir/redis.log" \
      >&2 || die "redis-server on $HOST:$p failed to start; see $dir/redis.log"
  fi
  CREDIS_STARTED+=("$p")
}

# credis_wait_ping: every node started here answers PING.
credis_wait_ping() {
  local p pidfile start=$SECONDS deadline=$((SECONDS + TIMEOUT))
  for p in "${CREDIS_STARTED[@]}"; do
    pidfile="$(credis_pidfile "$p")"
    until credis_ping "$p"; do
      # The daemonized child writes the pid file a moment after the launch.
      if { [[ -f "$pidfile" ]] && ! credis_alive "$p"; } || { [[ ! -f "$pidfile" ]] && (( SECONDS - start > 5 )); }; then
        tail -n 20 "$CSTATE/redis-$p/redis.log" >&2 || true
        die "redis-$p exited during start-up; see $CSTATE/redis-$p/redis.log"
      fi
      if (( SECONDS > deadline )); then
        tail -n 20 "$CSTATE/redis-$p/redis.log" >&2 || true
        die "redis-$p did not answer PING within ${TIMEOUT}s"
      fi
      sleep 0.05
    done
  done
}

# credis_running: the ports of the cluster's nodes that answer PING.
credis_running() {
  local p
  for p in $(credis_ports); do if credis_ping "$p"; then echo "$p"; fi; done
}

# credis_ensure_cluster: create the cluster if no node belongs to one yet
# (all six must run then); never a second time. A node that knows other
# nodes or holds slots has its cluster in nodes.conf and rejoins by itself.
credis_ensure_cluster() {
  local p fresh=() joined=() running known slots
  mapfile -t running < <(credis_running)
  for p in "${running[@]}"; do
    # A replica that has just restarted loads its master's data and answers
    # LOADING meanwhile (no fields): no answer is not a node without a
    # cluster. Ask again for up to 10 s, then leave it out.
    for _ in $(seq 20); do
      known="$(credis_field "$p" cluster_known_nodes)"
      [[ -n "$known" ]] && break
      sleep 0.5
    done
    [[ -n "$known" ]] || { log "redis-$p: no CLUSTER INFO answer (still loading?); not judged"; continue; }
    slots="$(credis_field "$p" cluster_slots_assigned)"
    if (( ${known:-0} > 1 || ${slots:-0} > 0 )); then
      joined+=("$p")
    else
      fresh+=("$p")
    fi
  done
  if (( ${#joined[@]} > 0 )); then
    (( ${#fresh[@]} == 0 )) || die "redis-${fresh[*]} belong to no cluster while redis-${joined[0]} does" \
      "(its nodes.conf lost?); start afresh with scripts/services-down.sh --cluster --purge"
    return
  fi
  (( ${#running[@]} == CLUSTER_REDIS_NODES )) \
    || die "the Redis Cluster was never created and only ${#running[@]} of its $CLUSTER_REDIS_NODES nodes run: start them all (scripts/services-up.sh --cluster redis)"
  local t addrs=()
  t="$(now)"
  for p in "${running[@]}"; do addrs+=("$HOST:$p"); done
  log "creating the Redis Cluster: ${#running[@]} nodes, 1 replica per master (log in $CSTATE/redis-create.log)"
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >"$CSTATE/redis-create.log" 2>&1 \
    || { cat "$CSTATE/redis-create.log" >&2; die "redis-cli --cluster create failed"; }
  log "Redis Cluster created in $(since "$t")"
}

# credis_wait_ok: every running node says cluster_state:ok with all 16384
# slots served by nodes it does not suspect, and every node started here is
# settled: its own role is the one the other nodes see (a master that was
# failed over while it was down comes back as a master, and gossip makes it
# a replica) and, as a replica, it has synced with its master. Each round
# forks redis-cli twice per node: this shares 2 cores with three JVMs.
CREDIS_RUNNING=()
credis_wait_ok() {
  local p q why info id role seen deadline=$((SECONDS + TIMEOUT))
  local -A view
  while :; do
    mapfile -t CREDIS_RUNNING < <(credis_running)
    why=""
    for p in "${CREDIS_RUNNING[@]}"; do
      info="$(credis_cli "$p" cluster info)"
      if [[ "$info" != *$'cluster_state:ok\n'* || "$info" != *$'cluster_slots_ok:16384\n'* ]]; then
        # A node still loading its data answers "LOADING ..." and no field:
        # say that, rather than let grep's miss end the script (pipefail).
        why="redis-$p: $({ grep -E '^cluster_(state|slots_ok|known_nodes):' <<<"$info" || echo "$info"; } | tr '\n' ' ')"
        break
      fi
      view[$p]="$(credis_cli "$p" cluster nodes)"
    done
    for p in "${CREDIS_STARTED[@]}"; do
      [[ -z "$why" ]] || break
      id="" role=""
      read -r id role < <(awk '$3 ~ /myself/ { print $1, ($3 ~ /master/ ? "master" : "slave") }' <<<"${view[$p]:-}") || true
      for q in "${CREDIS_RUNNING[@]}"; do
        seen="$(awk -v id="${id:-?}" '$1 == id { print ($3 ~ /master/ ? "master" : "slave") }' <<<"${view[$q]}")"
        [[ -n "$id" && "$seen" == "$role" ]] || { why="redis-$p: redis-$q sees it as ${seen:-nothing}, it says ${role:-nothing}"; break; }
      done
      if [[ -z "$why" && "$role" == slave && "$(credis_field "$p" master_link_status info replication)" != up ]]; then
        why="redis-$p: replica not yet synced with its master"
      fi
    done
    [[ -n "$why" ]] || break
    if (( SECONDS > deadline )); then
      die "the Redis Cluster is not ok after ${TIMEOUT}s ($why); see $CSTATE/redis-*/redis.log"
    fi
    sleep 0.2
  done
}

# credis_topology: "masters 17000 17001 17002, replicas 17003>17001 ..." for the log.
credis_topology() {
  local p="${CREDIS_RUNNING[0]}"
  credis_cli "$p" cluster nodes | awk '
    { split($2, a, "@"); n = split(a[1], hp, ":"); port[$1] = hp[n] }
    $3 ~ /master/ && $3 !~ /fail/ { m = m " " port[$1] }
    $3 ~ /slave/ && $3 !~ /fail/ { r[$1] = $4 }
    $3 ~ /fail/ { f = f " " port[$1] }
    END {
      for (id in r) s = s " " port[id] ">" port[r[id]]
      printf "masters%s, replicas%s%s", m, s, (f ? ", failed" f : "")
    }'
}

start_cluster_redis() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server redis-tools
  fi
  local p t
  t="$(now)"
  for p in "${SEL_REDIS[@]}"; do credis_start "$p"; done
  if (( ${#CREDIS_STARTED[@]} == 0 )); then
    log "redis: every named node already answers"
  fi
  credis_wait_ping
  credis_ensure_cluster
  credis_wait_ok
  (( ${#CREDIS_STARTED[@]} == 0 )) || CREDIS_TOOK="$(since "$t")"
  log "Redis Cluster ok on all ${#CREDIS_RUNNING[@]} running nodes${CREDIS_TOOK:+: started in $CREDIS_TOOK} ($(credis_topology))"
}

# ------------------------------------------------------- cluster: kafka
write_ckafka_config() {
  local id="$1" dir="$CSTATE/kafka-$1" voters="" n
  for n in "${CLUSTER_KAFKA_IDS[@]}"; do voters="${voters:+$voters,}$n@$HOST:$(ckafka_controller_port "$n")"; done
  mkdir -p "$dir"
  cat > "$dir/server.properties" <<EOF
# Written by scripts/services-up.sh --cluster: node $id of ${#CLUSTER_KAFKA_IDS[@]}, broker+controller.
process.roles=broker,controller
node.id=$id
listeners=PLAINTEXT://$HOST:$(ckafka_port "$id"),CONTROLLER://$HOST:$(ckafka_controller_port "$id")
advertised.listeners=PLAINTEXT://$HOST:$(ckafka_port "$id")
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
# A static quorum of the three controllers: each node is formatted alone,
# with nothing to agree on first, and a restarted node is the same voter.
controller.quorum.voters=$voters
log.dirs=$dir/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
# A killed broker is fenced (and its partitions' leadership moved) once its
# session expires: 9s by default, 4s here; the same wait lets it register
# again after a restart.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  cat > "$dir/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services-up.sh in cluster mode. -->
<Configuration status="warn">
  <Appenders>
    <File name="server" fileName="$dir/server.log" append="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="org.apache.kafka.controller" level="info"/>
    <Logger name="state.change.logger" level="info"/>
    <Root level="info"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
EOF
}

# cluster_probe: build (once, cached by go) internal/tools/clusterready; print
# its path, or nothing when go is unavailable.
cluster_probe() {
  command -v go >/dev/null || return 0
  local bin="$CSTATE/bin/clusterready" t
  t="$(now)"
  mkdir -p "$CSTATE/bin"
  if (cd "$ROOT" && go build -o "$bin" ./internal/tools/clusterready) >&2; then
    log "cluster probe built in $(since "$t")"
    echo "$bin"
  else
    log "could not build internal/tools/clusterready; falling back to the log line and a TCP connect"
  fi
}

CKAFKA_STARTED=()          # node ids launched by this run (or found starting)
declare -A CKAFKA_LOGSIZE  # server.log size before the launch (for the fallback check)

# start_cluster_kafka: format what was never formatted and launch the
# selected nodes that do not run, all three at once: the quorum needs two
# controllers before any broker can register.
start_cluster_kafka() {
  find_java
  local cpfile cp id dir t
  cpfile="$(kafka_classpath)"
  cp="$(cat "$cpfile")"
  CPROBE="$(cluster_probe)"
  local idfile="$CSTATE/kafka-cluster.id"
  local to_start=()
  CKAFKA_T="$(now)"
  for id in "${SEL_KAFKA[@]}"; do
    if ckafka_alive "$id"; then
      if port_open "$HOST" "$(ckafka_port "$id")"; then
        log "kafka-$id (pid $(cat "$(ckafka_pidfile "$id")")) already running; left as it is"
      else
        log "kafka-$id (pid $(cat "$(ckafka_pidfile "$id")")) is running but not listening yet; waiting"
        CKAFKA_STARTED+=("$id")
      fi
      continue
    fi
    if port_open "$HOST" "$(ckafka_port "$id")" || port_open "$HOST" "$(ckafka_controller_port "$id")"; then
      die "port $HOST:$(ckafka_port "$id") or $HOST:$(ckafka_controller_port "$id") is taken by something that is not this cluster's kafka-$id"
    fi
    to_start+=("$id")
  done
  (( ${#to_start[@]} )) || return 0

  # One cluster id for the three nodes, made with the first format. A single
  # node is only (re)started into a cluster that exists.
  if [[ ! -s "$idfile" ]]; then
    (( ${#to_start[@]} == ${#CLUSTER_KAFKA_IDS[@]} )) \
      || die "the Kafka cluster was never formatted: start all its nodes first (scripts/services-up.sh --cluster kafka)"
    new_cluster_id > "$idfile"
  fi
  local formats=() pids=()
  for id in "${to_start[@]}"; do
    write_ckafka_config "$id"
    [[ -f "$CSTATE/kafka-$id/data/meta.properties" ]] || formats+=("$id")
  done
  if (( ${#formats[@]} )); then
    t="$(now)"
    log "formatting kafka-${formats[*]} (cluster id $(cat "$idfile"))"
    # In parallel: each is a JVM start of a few seconds.
    for id in "${formats[@]}"; do
      dir="$CSTATE/kafka-$id"
      "$JAVA" -cp "$cp" -Dlog4j2.configurationFile="$dir/log4j2.xml" kafka.tools.StorageTool format \
        -t "$(cat "$idfile")" -c "$dir/server.properties" >"$dir/format.log" 2>&1 &
      pids+=($!)
    done
    local i
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { cat "$CSTATE/kafka-${formats[$i]}/format.log" >&2; die "kafka storage format of kafka-${formats[$i]} failed"; }
    done
    log "formatted in $(since "$t")"
  fi
  CKAFKA_T="$(now)"
  for id in "${to_start[@]}"; do
    dir="$CSTATE/kafka-$id"
    log "kafka-$id: starting kafka $(grep -o '<kafka.version>[^<]*' "$POM" | cut -d'>' -f2) on $HOST:$(ckafka_port "$id") (controller $HOST:$(ckafka_controller_port "$id"), data $dir/data)"
    CKAFKA_LOGSIZE[$id]="$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)"
    rm -f "$(ckafka_pidfile "$id")"
    # As the single node: in its own session, the inner bash writes its pid
    # and becomes java. Small heaps: three JVMs share 2 cores with Redis,
    # the tests and the processor.
    # shellcheck disable=SC2016,SC2086 # $$ is the inner shell's; KAFKA_HEAP_OPTS holds several options
    nohup setsid bash -c 'echo $$ > "$0" && exec "$@"' "$(ckafka_pidfile "$id")" \
      "$JAVA" ${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m} \
      -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
      -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true \
      -Dkafka.logs.dir="$dir" \
      -Dlog4j2.configurationFile="$dir/log4j2.xml" \
      -cp "$cp" kafka.Kafka "$dir/server.properties" \
      >"$dir/kafka.out" 2>&1 < /dev/null &
    CKAFKA_STARTED+=("$id")
  done
  for id in "${to_start[@]}"; do
    for _ in $(seq 100); do [[ -s "$(ckafka_pidfile "$id")" ]] && break; sleep 0.05; done
  done
}

# ckafka_check_started: die when a node launched here has exited.
ckafka_check_started() {
  local id
  for id in "${CKAFKA_STARTED[@]}"; do
    if ! ckafka_alive "$id"; then
      tail -n 30 "$CSTATE/kafka-$id/server.log" "$CSTATE/kafka-$id/kafka.out" >&2 2>/dev/null || true
      die "kafka-$id exited during start-up; see $CSTATE/kafka-$id/server.log and kafka.out"
    fi
  done
}

# wait_cluster_kafka: the nodes started here answer on their own port and
# every running node is a registered, unfenced broker; then a group
# coordinator exists, every partition has its live replicas in sync (a
# restarted broker has caught up before the next one may be killed), and
# leadership is back on the preferred replicas (else it all stays on the
# brokers that did not restart, for leader.imbalance.check.interval.seconds).
wait_cluster_kafka() {
  (( ${#CKAFKA_STARTED[@]} )) || log "kafka: every named node already runs"
  local id running=() deadline=$((SECONDS + TIMEOUT))
  for id in "${CLUSTER_KAFKA_IDS[@]}"; do ckafka_alive "$id" && running+=("$id"); done
  (( ${#running[@]} )) || die "no Kafka node of the cluster runs"
  local ids; ids="$(IFS=,; echo "${running[*]}")"
  if [[ -z "$CPROBE" ]]; then
    # No go: each started node listens and has logged its start-up.
    for id in "${CKAFKA_STARTED[@]}"; do
      until port_open "$HOST" "$(ckafka_port "$id")" \
            && tail -c +"$((${CKAFKA_LOGSIZE[$id]:-0} + 1))" "$CSTATE/kafka-$id/server.log" 2>/dev/null | grep -q 'Kafka Server started'; do
        ckafka_check_started
        (( SECONDS <= deadline )) || die "kafka-$id did not start within ${TIMEOUT}s; see $CSTATE/kafka-$id/server.log"
        sleep 0.2
      done
    done
    log "WARNING: without go, no check that the brokers registered and the replicas are in sync"
    (( ${#CKAFKA_STARTED[@]} == 0 )) || CKAFKA_TOOK="$(since "$CKAFKA_T")"
    return
  fi
  local answer=""
  (( ${#CKAFKA_STARTED[@]} == 0 )) || answer="$(ckafka_brokers "${CKAFKA_STARTED[@]}")"
  until "$CPROBE" -q -brokers "$(ckafka_brokers)" -answer "$answer" -ids "$ids" -timeout 5s 2>"$CSTATE/clusterready.err"; do
    ckafka_check_started
    if (( SECONDS > deadline )); then
      cat "$CSTATE/clusterready.err" >&2
      die "the Kafka cluster did not register brokers $ids within ${TIMEOUT}s; see $CSTATE/kafka-*/server.log"
    fi
    sleep 0.2
  done
  if (( ${#CKAFKA_STARTED[@]} )); then
    log "kafka brokers $ids registered and unfenced in $(since "$CKAFKA_T") (launch to metadata)"
  else
    log "kafka brokers $ids registered and unfenced"
  fi
  local t; t="$(now)"
  "$CPROBE" -q -brokers "$(ckafka_brokers)" -ids "$ids" -coordinator -isr -balance \
    -timeout "$(( deadline - SECONDS > 10 ? deadline - SECONDS : 10 ))s" >&2 \
    || die "the Kafka cluster has no group coordinator or replicas out of sync; see $CSTATE/kafka-*/server.log"
  (( ${#CKAFKA_STARTED[@]} == 0 )) || CKAFKA_TOOK="$(since "$CKAFKA_T")"
  log "kafka group coordinator ready, every partition's live replicas in sync and led by the preferred one in $(since "$t")"
}

# cluster_lines: the addresses, as written to $CSTATE/env.
cluster_lines() {
  echo "FALLBACK_BROKERS=$(ckafka_brokers)"
  echo "FALLBACK_REDIS_URL=$(credis_url)"
  echo "FALLBACK_CLUSTER=1"
}

cluster_main() {
  cluster_select
  mkdir -p "$CSTATE"
  MVN_LOG_DIR="$CSTATE"
  CKAFKA_TOOK=""
  CREDIS_TOOK=""
  CPROBE=""
  # Kafka first: its JVMs boot in the background while Redis is started
  # and its cluster created.
  (( ${#SEL_KAFKA[@]} == 0 )) || start_cluster_kafka
  (( ${#SEL_REDIS[@]} == 0 )) || start_cluster_redis
  (( ${#SEL_KAFKA[@]} == 0 )) || wait_cluster_kafka

  cluster_lines > "$CSTATE/env"
  chmod 600 "$CSTATE/env"
  log "cluster ready in $(since "$T_ALL") total${CKAFKA_TOOK:+ (kafka start-up $CKAFKA_TOOK)}${CREDIS_TOOK:+ (redis start-up $CREDIS_TOOK)}; state in $CSTATE"
  # Quoted with --env: the URL's ? and & would glob and fork under eval.
  local q=""; [[ -z "$EXPORT" ]] || q="'"
  local line
  while IFS= read -r line; do
    case "$line" in
      FALLBACK_BROKERS=*) (( ${#SEL_KAFKA[@]} )) || continue ;;
      FALLBACK_REDIS_URL=*) (( ${#SEL_REDIS[@]} )) || continue ;;
    esac
    echo "${EXPORT}${line%%=*}=$q${line#*=}$q"
  done < <(cluster_lines)
}

if [[ -n "$CLUSTER" ]]; then
  cluster_main
  exit 0
fi

KAFKA_STARTED=""
REDIS_STARTED=""
JAVA=""
if [[ -n "$SECURE" ]]; then secure_prepare; fi
if [[ -n "$WANT_REDIS" ]]; then
  start_redis
  if [[ -n "$SECURE" ]]; then start_redis_secure; fi
fi
if [[ -n "$WANT_KAFKA" ]]; then start_kafka; fi

# secure_lines [all]: the FALLBACK_TEST_* lines of the services started
# here; with "all" (for the env file) also those of the other service when
# its secure port answers.
secure_lines() {
  [[ -n "$SECURE" ]] || return 0
  local kafka="" redis=""
  [[ -n "$WANT_KAFKA" && -n "$KAFKA_SECURE_OK" ]] && kafka=1
  [[ -n "$WANT_REDIS" ]] && redis=1
  if [[ "${1:-}" == all ]]; then
    [[ -z "$WANT_KAFKA" ]] && port_open "$HOST" "$KAFKA_SECURE_PORT" && kafka=1
    if [[ -z "$WANT_REDIS" ]] && port_open "$HOST" "$REDIS_SECURE_PORT"; then
      redis=1
      redis_tls && REDIS_SECURE_TLS=1
    fi
  fi
  if [[ -n "$kafka" ]]; then
    echo "FALLBACK_TEST_KAFKA_SECURE=$HOST:$KAFKA_SECURE_PORT"
    echo "FALLBACK_TEST_KAFKA_CA=$CERTS/ca.pem"
    echo "FALLBACK_TEST_KAFKA_USER=$SECURE_USER"
    echo "FALLBACK_TEST_KAFKA_PASSWORD=$(cat "$SECRETS/kafka-password")"
  fi
  if [[ -n "$redis" ]]; then
    if [[ -n "$REDIS_SECURE_TLS" ]]; then
      echo "FALLBACK_TEST_REDIS_SECURE_URL=rediss://$SECURE_USER@$HOST:$REDIS_SECURE_PORT/0"
      echo "FALLBACK_TEST_REDIS_CA=$CERTS/ca.pem"
    else
      echo "FALLBACK_TEST_REDIS_SECURE_URL=redis://$SECURE_USER@$HOST:$REDIS_SECURE_PORT/0"
    fi
    echo "FALLBACK_TEST_REDIS_PASSWORD=$(cat "$SECRETS/redis-password")"
  fi
  echo "FALLBACK_TEST_TLS_CLIENT_CERT=$CERTS/client.pem"
  echo "FALLBACK_TEST_TLS_CLIENT_KEY=$CERTS/client-key.pem"
}

{
  echo "FALLBACK_BROKERS=$HOST:$KAFKA_PORT"
  echo "FALLBACK_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
  secure_lines all
} > "$STATE/env"
chmod 600 "$STATE/env"
log "ready in $(since "$T_ALL") total${KAFKA_STARTED:+ (kafka start-up $KAFKA_STARTED)}${REDIS_STARTED:+ (redis start-up $REDIS_STARTED)}; state in $STATE"
[[ -z "$WANT_KAFKA" ]] || echo "${EXPORT}FALLBACK_BROKERS=$HOST:$KAFKA_PORT"
[[ -z "$WANT_REDIS" ]] || echo "${EXPORT}FALLBACK_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
secure_lines | sed "s/^/${EXPORT}/"
