#!/usr/bin/env bash
# scripts/services-up.sh: start a real Apache Kafka (single-node KRaft,
# broker+controller) and a real Redis on this machine, without Docker.
#
#   scripts/services-up.sh [--env] [kafka] [redis]
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
#   KAFKA_HEAP_OPTS            JVM heap options (default -Xms256m -Xmx1g)
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

EXPORT=""
WANT_KAFKA=""
WANT_REDIS=""
for arg in "$@"; do
  case "$arg" in
    --env) EXPORT="export " ;;
    kafka) WANT_KAFKA=1 ;;
    redis) WANT_REDIS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "services-up: unknown argument $arg" >&2; exit 2 ;;
  esac
done
if [[ -z "$WANT_KAFKA$WANT_REDIS" ]]; then WANT_KAFKA=1; WANT_REDIS=1; fi

log() { printf '[services-up %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
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
  mkdir -p "$STATE/kafka" "$cache"
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
           -Dmdep.outputFile="$cpfile.tmp" >"$STATE/kafka/mvn.log" 2>&1; then
      mvn -B -q -Dstyle.color=never -f "$POM" "$DEP_PLUGIN:build-classpath" \
        -Dmdep.outputFile="$cpfile.tmp" >"$STATE/kafka/mvn.log" 2>&1 \
        || { cat "$STATE/kafka/mvn.log" >&2; die "maven could not resolve the Kafka classpath"; }
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
