#!/usr/bin/env bash
# examples/run.sh: run the Python and Java examples against real Kafka and
# Redis, next to a processor and the simulated providers started here, and
# check what they print.
#
#   FALLBACK_BROKERS=127.0.0.1:9092 FALLBACK_REDIS_URL=redis://127.0.0.1:6379/0 examples/run.sh
#
# Steps (examples/README.md):
#   1. build the fallback binary (go build ./cmd/fallback), the Java example
#      (mvn -q -B package) and the Python virtualenv (pip install -r
#      requirements.txt), the last two in the background;
#   2. start `fallback run` and `fallback providers` on topics, a consumer
#      group and a Redis key prefix unique to this run, wait until the
#      processor's /readyz says ready, and store a published flow
#      (`fallback flows put --publish`) on the run's flows topic;
#   3. the Python example publishes N send requests, every third naming the
#      stored flow (--flow-id) and the others carrying their steps, and waits
#      until every one has closed, printing a CLOSED line per flow;
#   4. the Java example reads the same events topic from its start and
#      prints a CLOSED line per flow of the published request ids;
#   5. examples/check_outputs.py checks: N distinct ids published; each
#      example printed exactly one CLOSED line per published id and nothing
#      else; the two sets of lines are equal, line for line once sorted;
#      every outcome is one of the outcomes schemas/FlowSummary.avsc lists;
#      a line names a channel and a delivered step exactly when its outcome
#      is a success; and each line agrees with the processor's own state of
#      the flow in Redis (`fallback flow --json`: outcome, delivering step
#      and its channel, steps sent, fallbacks, time to outcome, late, and
#      the stored flow the request named, if any); some requests named the
#      stored flow.
# The processes it started are stopped on exit, also on failure; a failure
# prints the end of the logs, then what failed (the last line).
# Needs: go (unless FALLBACK_EXAMPLES_BIN), python3 with venv, java 17, mvn.
#
# Settings (environment):
#   FALLBACK_BROKERS, FALLBACK_REDIS_URL  the services (required)
#   FALLBACK_EXAMPLES_FLOWS    send requests to publish (default 20)
#   FALLBACK_EXAMPLES_DELAY    each step's delay in seconds, 5..900 (default 5)
#   FALLBACK_EXAMPLES_TIMEOUT  seconds the examples wait for the flows (default 90)
#   FALLBACK_EXAMPLES_PREFIX   request id prefix (default "<run id> ü=%": a space,
#                              a non-ASCII letter, = and %, so that both examples'
#                              escaping of the line values is compared too)
#   FALLBACK_EXAMPLES_VENV     the Python virtualenv, made if missing (default
#                              ~/.cache/fallback-examples/venv-<hash of requirements.txt>;
#                              without the venv module: pip install --user instead)
#   FALLBACK_EXAMPLES_KEEP=1   keep the work dir (logs, outputs) after a success
#   FALLBACK_EXAMPLES_BIN      a fallback binary to run instead of building ./cmd/fallback
#   FALLBACK_EXAMPLES_REGISTRY=1  the Confluent wire format: a fake schema registry
#                              (internal/tools/fakeregistry, pkg/sr's srfake over HTTP),
#                              `fallback run --schema-registry` on it, and the Python
#                              example reading the events with confluent-kafka's
#                              AvroDeserializer (which takes nothing else); the Java
#                              one reads past the 5-byte header as always
#   PYTHON                     the Python that makes the virtualenv (default python3)
set -euo pipefail

EXAMPLES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$EXAMPLES/.." && pwd)"

: "${FALLBACK_BROKERS:?examples/run.sh: set FALLBACK_BROKERS (e.g. from scripts/services-up.sh)}"
: "${FALLBACK_REDIS_URL:?examples/run.sh: set FALLBACK_REDIS_URL (e.g. from scripts/services-up.sh)}"
FLOWS="${FALLBACK_EXAMPLES_FLOWS:-20}"
DELAY="${FALLBACK_EXAMPLES_DELAY:-5}"
TIMEOUT="${FALLBACK_EXAMPLES_TIMEOUT:-90}"
PYTHON="${PYTHON:-python3}"
[[ "$FLOWS" =~ ^[1-9][0-9]*$ ]] || { echo "examples/run.sh: FALLBACK_EXAMPLES_FLOWS=$FLOWS is not a positive count" >&2; exit 2; }

# Only the variables named here reach the processes: the topic names are
# this run's, whatever the caller's environment says.
unset $(compgen -v FALLBACK_TOPIC_ || true) FALLBACK_GROUP FALLBACK_REDIS_PREFIX FALLBACK_HTTP_ADDR FALLBACK_CONFIG \
  FALLBACK_CLOCK_SPEED FALLBACK_CLOCK_EPOCH

RUN_ID="ex-$(date +%s)-$$-$RANDOM"
T_REQUESTS="$RUN_ID.requests"
T_DLR="$RUN_ID.dlr"
T_EVENTS="$RUN_ID.events"
T_FLOWS="$RUN_ID.flows"
T_DLQ="$RUN_ID.dlq"
T_SENDERS="$RUN_ID.senders"
T_TEMPLATES="$RUN_ID.templates"
T_SENDS="$RUN_ID.sends."
GROUP="$RUN_ID"
PREFIX="${FALLBACK_EXAMPLES_PREFIX:-$RUN_ID ü=%}"
REDIS_PREFIX="fbex-$RUN_ID"
# The catalog topics are the run's too, and stay empty: the processor's
# catalog mode (auto) then checks no sender or template, as before there was
# a catalog, whatever catalog the default topics of this Kafka may hold.
TOPIC_FLAGS=(--topic-requests "$T_REQUESTS" --topic-dlr "$T_DLR" --topic-events "$T_EVENTS"
  --topic-flows "$T_FLOWS" --topic-dlq "$T_DLQ" --topic-senders "$T_SENDERS" --topic-templates "$T_TEMPLATES"
  --topic-sends-prefix "$T_SENDS")
FLOW_ID="examples-otp"

WORK="$(mktemp -d /tmp/fallback-examples.XXXXXX)"
PIDS=()     # processor, providers
BG_PIDS=()  # background builds
T0=$SECONDS
OK=""
FAILED=""

log() { printf '[examples %s +%3ds] %s\n' "$(date +%H:%M:%S)" $((SECONDS - T0)) "$*" >&2; }
fail() {
  FAILED="$*"
  echo "examples/run.sh: FAILED: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  local p
  for p in "${BG_PIDS[@]}"; do # a build still running: its children (mvn's java, pip), then itself
    pkill -TERM -P "$p" 2>/dev/null
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  if [[ $rc -ne 0 ]]; then
    local f
    for f in processor.log providers.log flows.log registry.log mvn.log pip.log python.err java.err; do
      if [[ -s "$WORK/$f" ]]; then
        echo "--- last lines of $WORK/$f" >&2
        tail -n 25 "$WORK/$f" >&2
      fi
    done
    echo "examples/run.sh: work dir kept: $WORK" >&2
    echo "examples/run.sh: FAILED (exit $rc): ${FAILED:-interrupted or an unexpected error}" >&2
  elif [[ "${FALLBACK_EXAMPLES_KEEP:-}" == 1 ]]; then
    log "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  [[ -z "$OK" ]] || log "ok in $((SECONDS - T0))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "run $RUN_ID: brokers $FALLBACK_BROKERS, $FLOWS flows, step delay ${DELAY}s, work dir $WORK"

# ---------------------------------------------------------------- 1 builds
# The Java build and the virtualenv in the background, while the processor starts.
mvn -q -B -f "$EXAMPLES/java/pom.xml" package >"$WORK/mvn.log" 2>&1 &
MVN_PID=$!
BG_PIDS+=("$MVN_PID")

VENV="${FALLBACK_EXAMPLES_VENV:-$HOME/.cache/fallback-examples/venv-$(sha256sum "$EXAMPLES/python/requirements.txt" | cut -c1-12)}"
(
  # The example's interpreter goes to $WORK/python-bin: the virtualenv's, or,
  # where venv is missing (Debian without python3-venv), $PYTHON with the
  # packages installed with --user.
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import confluent_kafka, fastavro'; then
    echo "$VENV/bin/python" >"$WORK/python-bin"
  elif rm -rf "$VENV" && mkdir -p "$(dirname "$VENV")" && "$PYTHON" -m venv "$VENV"; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$EXAMPLES/python/requirements.txt"
    echo "$VENV/bin/python" >"$WORK/python-bin"
  else
    echo "no virtualenv ($PYTHON -m venv failed): pip install --user"
    rm -rf "$VENV"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --user -r "$EXAMPLES/python/requirements.txt"
    command -v "$PYTHON" >"$WORK/python-bin"
  fi
) >"$WORK/pip.log" 2>&1 &
PIP_PID=$!
BG_PIDS+=("$PIP_PID")

if [[ -n "${FALLBACK_EXAMPLES_BIN:-}" ]]; then
  FB="$FALLBACK_EXAMPLES_BIN"
  log "fallback binary: $FB ($("$FB" --version 2>&1 | head -n 1))"
else
  (cd "$ROOT" && go build -o "$WORK/fallback" ./cmd/fallback) || fail "go build ./cmd/fallback"
  FB="$WORK/fallback"
  log "built fallback"
fi

# ---------------------------------------------------------------- 2 processor, providers
REGISTRY_FLAGS=()
if [[ "${FALLBACK_EXAMPLES_REGISTRY:-}" == 1 ]]; then
  (cd "$ROOT" && go build -o "$WORK/fakeregistry" ./internal/tools/fakeregistry) || fail "go build ./internal/tools/fakeregistry"
  "$WORK/fakeregistry" --addr 127.0.0.1:0 >"$WORK/registry.url" 2>"$WORK/registry.log" &
  PIDS+=("$!")
  for _ in $(seq 1 50); do [[ -s "$WORK/registry.url" ]] && break; sleep 0.1; done
  REGISTRY_URL="$(head -n 1 "$WORK/registry.url")"
  [[ "$REGISTRY_URL" == http://* ]] || fail "the fake schema registry did not start (log below)"
  REGISTRY_FLAGS=(--schema-registry "$REGISTRY_URL")
  log "fake schema registry on $REGISTRY_URL: the Confluent wire format"
fi
HTTP_PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$FB" run --brokers "$FALLBACK_BROKERS" --redis "$FALLBACK_REDIS_URL" --redis-prefix "$REDIS_PREFIX" \
  --group "$GROUP" "${TOPIC_FLAGS[@]}" --partitions 3 --http-addr "127.0.0.1:$HTTP_PORT" \
  --shutdown-timeout 5s "${REGISTRY_FLAGS[@]}" >"$WORK/processor.log" 2>&1 &
PROC_PID=$!
PIDS+=("$PROC_PID")

readyz() { # prints the answer of /readyz; fails unless it is 200
  "$PYTHON" -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())
except Exception as e:
    print(getattr(e, "read", lambda: str(e).encode())().decode().strip()); sys.exit(1)' "http://127.0.0.1:$HTTP_PORT/readyz"
}
ready=""
for _ in $(seq 1 300); do
  kill -0 "$PROC_PID" 2>/dev/null || fail "fallback run exited before it was ready (log below)"
  if readyz >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[[ -n "$ready" ]] || fail "fallback run not ready after 60s: /readyz says $(readyz 2>&1)"
log "processor ready (group $GROUP, topics $RUN_ID.*, http 127.0.0.1:$HTTP_PORT)"

# The topics exist now (the processor creates them); the providers read the
# send topics from their start, so nothing published before they join is lost.
"$FB" providers --brokers "$FALLBACK_BROKERS" "${TOPIC_FLAGS[@]}" >"$WORK/providers.log" 2>&1 &
PIDS+=("$!")
log "providers started"

# The stored flow the Python example names in every third request: the same
# two steps as its inline ones, published so that requests may name it.
cat >"$WORK/flow.json" <<EOF
{"flow_id": "$FLOW_ID", "steps": [
  {"channel": "whatsapp", "from": "+4915100000000", "template": "otp", "template_category": "authentication", "delay_seconds": $DELAY},
  {"channel": "sms", "from": "ACME", "template": "otp_sms", "delay_seconds": $DELAY}]}
EOF
"$FB" flows put --publish --changed-by examples/run.sh --brokers "$FALLBACK_BROKERS" \
  --topic-flows "$T_FLOWS" --topic-senders "$T_SENDERS" --topic-templates "$T_TEMPLATES" "$WORK/flow.json" \
  >"$WORK/flows.log" 2>&1 || fail "fallback flows put --publish $WORK/flow.json (log below)"
log "$(tail -n 1 "$WORK/flows.log")"

# ---------------------------------------------------------------- 3 Python
wait "$PIP_PID" || fail "python: pip install -r examples/python/requirements.txt (log below)"
EX_PYTHON="$(cat "$WORK/python-bin")"
log "python ready: $EX_PYTHON"
t=$SECONDS
"$EX_PYTHON" "$EXAMPLES/python/fallback_example.py" --brokers "$FALLBACK_BROKERS" \
  --topic-requests "$T_REQUESTS" --topic-events "$T_EVENTS" --prefix "$PREFIX" --count "$FLOWS" \
  --delay-seconds "$DELAY" --whatsapp-success-on alternate --flow-id "$FLOW_ID" --timeout "$TIMEOUT" "${REGISTRY_FLAGS[@]}" \
  >"$WORK/python.out" 2>"$WORK/python.err" \
  || fail "the Python example exited $? (its stderr below)"
log "python: published $FLOWS, all closed in $((SECONDS - t))s"

# ---------------------------------------------------------------- 4 Java
wait "$MVN_PID" || fail "mvn -q -B package in examples/java (log below)"
log "java example built"
# The lines escape their values (examples/README.md); the ids as published:
unescape() { "$PYTHON" -c 'import sys, urllib.parse
for line in sys.stdin: print(urllib.parse.unquote(line.rstrip("\n")))'; }
mapfile -t IDS < <(sed -n 's/^PUBLISHED request_id=\([^ ]*\).*/\1/p' "$WORK/python.out" | unescape)
t=$SECONDS
java -jar "$EXAMPLES/java/target/fallback-example.jar" --brokers "$FALLBACK_BROKERS" --topic "$T_EVENTS" \
  --schemas "$ROOT/schemas" --from-beginning --request-ids "$(IFS=,; echo "${IDS[*]}")" --timeout "$TIMEOUT" \
  >"$WORK/java.out" 2>"$WORK/java.err" || fail "the Java example exited $? (its stderr below)"
log "java: read ${#IDS[@]} closed flows in $((SECONDS - t))s"

# ---------------------------------------------------------------- 5 checks
log "checking the outputs (examples/check_outputs.py)"
"$PYTHON" "$EXAMPLES/check_outputs.py" --python "$WORK/python.out" --java "$WORK/java.out" --count "$FLOWS" \
  --schemas "$ROOT/schemas" --fallback "$FB" --redis "$FALLBACK_REDIS_URL" --redis-prefix "$REDIS_PREFIX" --flow-id "$FLOW_ID" \
  || fail "the examples' outputs do not check out (FAILED lines above)"
echo "--- the CLOSED lines (Python's, sorted; Java's are the same)"
grep '^CLOSED ' "$WORK/python.out" | sort
OK=1
