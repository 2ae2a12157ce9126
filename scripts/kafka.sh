#!/usr/bin/env bash
# Install and run a real single-node Apache Kafka broker (KRaft, broker+controller
# in one JVM) for local development and CI. The jars come from Maven Central via
# mvn (the only route to Kafka we have: no tarball downloads), so this needs just
# Java 17+ and Maven. Everything downloaded or written lives outside the repo.
#
#   scripts/kafka.sh install          resolve the jars into the cache (idempotent)
#   scripts/kafka.sh start            install if needed, start, wait until it serves
#   scripts/kafka.sh stop [--wipe]    stop it; --wipe also deletes its data
#   scripts/kafka.sh status           "running ..." (exit 0) or "not running" (exit 3)
#   scripts/kafka.sh logs [-f]        tail of the broker log
#   scripts/kafka.sh tool NAME ARGS   run a Kafka CLI class, e.g.
#       scripts/kafka.sh tool topics --bootstrap-server 127.0.0.1:9092 --list
#
# Environment (all optional):
#   KAFKA_VERSION          Kafka release to install (default below)
#   INLAND_CACHE           cache root (default ~/.cache/inland)
#   KAFKA_RUN_DIR          config, data, pid and log (default $INLAND_CACHE/kafka-run)
#   KAFKA_PORT             PLAINTEXT broker port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1 (default 9093)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to serve (default 90)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 30)
#   KAFKA_HEAP_OPTS        broker heap (default -Xms256m -Xmx768m)
#   KAFKA_OPTS             extra JVM flags for the broker
#   KAFKA_WIPE=1           same as `stop --wipe`
set -euo pipefail

# 4.4.0 is the newest kafka_2.13 on Maven Central, but kafka-tools 4.4.0 was never
# published there (mvn cannot resolve it), so 4.3.1 is the newest release whose broker and
# CLI tools resolve together. Bump once `mvn dependency:get
# -Dartifact=org.apache.kafka:kafka-tools:X` succeeds.
KAFKA_VERSION="${KAFKA_VERSION:-4.3.1}"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"

CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"  # absolute: paths end up in -cp and pid checks
INSTALL_DIR="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$INSTALL_DIR/libs"
MARKER="$INSTALL_DIR/.installed"   # written last: its presence means a complete install
M2_REPO="$CACHE/m2"                # Maven's local repo, kept so reinstalls are offline-fast
RUN_DIR="${KAFKA_RUN_DIR:-$CACHE/kafka-run}"
[[ "$RUN_DIR" == /* ]] || RUN_DIR="$PWD/$RUN_DIR"
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/kafka.log"
DATA_DIR="$RUN_DIR/data"
RUN_MARK="$RUN_DIR/.inland-kafka-run"  # proves the dir is ours before `--wipe` deletes it

CONF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kafka"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

SCRIPT=kafka.sh SERVER=broker SERVER_CMDLINE="kafka.Kafka $RUN_DIR/server.properties"
WIPE="${KAFKA_WIPE:-0}" LOG_LINES="${KAFKA_LOG_LINES:-100}"
# shellcheck source-path=SCRIPTDIR source=lib/server.sh
source "$(dirname "$CONF_DIR")/lib/server.sh"

# Short names for the CLI classes people actually use (4.x moved them to kafka-tools).
tool_class() {
  case "$1" in
    topics) echo org.apache.kafka.tools.TopicCommand ;;
    console-producer) echo org.apache.kafka.tools.ConsoleProducer ;;
    console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    broker-api-versions) echo org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    metadata-quorum) echo org.apache.kafka.tools.MetadataQuorumCommand ;;
    storage) echo kafka.tools.StorageTool ;;
    *) echo "$1" ;;
  esac
}

need() { command -v "$1" >/dev/null || die "$1 not found on PATH ($2)"; }

check_java() {
  need "$JAVA" "Kafka $KAFKA_VERSION needs Java 17+"
  local major
  major="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [[ "${major:-0}" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found: $("$JAVA" -version 2>&1 | head -n1)"
}

# What the marker must say for the cache to count: same version, same pom.
install_stamp() {
  printf 'kafka=%s pom=%s\n' "$KAFKA_VERSION" "$(cksum <"$CONF_DIR/pom.xml")"
}

installed() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(install_stamp)" ]]; }

cmd_install() {
  installed && return 0
  need mvn "install Maven 3.8+, e.g. apt-get install maven"
  check_java
  mkdir -p "$INSTALL_DIR"
  exec 9>"$INSTALL_DIR/.lock"
  take_lock 9 "$INSTALL_DIR/.lock" 600
  if installed; then  # another process finished it while we waited
    exec 9>&-
    return 0
  fi

  local tmp="$INSTALL_DIR/libs.tmp" mvn_log="$INSTALL_DIR/install.log" t0=$SECONDS
  rm -rf "$tmp" "$MARKER"
  log "installing Kafka $KAFKA_VERSION from Maven Central into $LIBS"
  if ! mvn -q -B -f "$CONF_DIR/pom.xml" \
      -Dmaven.repo.local="$M2_REPO" \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 30 "$mvn_log" >&2
    rm -rf "$tmp"
    die "mvn could not resolve Kafka $KAFKA_VERSION (both kafka_2.13 and kafka-tools must exist on Maven Central); full log: $mvn_log"
  fi
  local jar
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar"; do
    [[ -f "$tmp/$jar" ]] || die "install incomplete: $jar missing from $tmp"
  done
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  install_stamp >"$MARKER"
  exec 9>&-
  log "installed Kafka $KAFKA_VERSION ($(find "$LIBS" -name '*.jar' | wc -l) jars) in $((SECONDS - t0))s"
}

# Run a Kafka class in a short-lived JVM sized and tuned for CLI use; a
# TOOL_TIMEOUT (seconds) bounds it, since admin calls retry for a minute.
run_java_tool() {
  local class prefix=()
  class="$(tool_class "$1")"
  shift
  [[ -n "${TOOL_TIMEOUT:-}" ]] && prefix=(timeout "$TOOL_TIMEOUT")
  ${prefix[@]+"${prefix[@]}"} "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$CONF_DIR/log4j2.xml" -Dinland.kafka.log.level=WARN \
    -cp "$LIBS/*" "$class" "$@"
}

# A real request, not just an open port: list topics through the admin API.
broker_serves() {
  port_open "$KAFKA_PORT" &&
    TOOL_TIMEOUT=30 run_java_tool topics --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1
}

wait_until_serving() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    alive "$pid" || fail_start "broker (pid $pid) exited during startup"
    broker_serves && return 0
    sleep 1
  done
  return 1
}

render_config() {
  sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@KAFKA_CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    -e "s|@DATA_DIR@|$DATA_DIR|g" \
    "$CONF_DIR/server.properties" >"$RUN_DIR/server.properties"
  # The broker reads its own copy, so it keeps running if the checkout moves.
  cp "$CONF_DIR/log4j2.xml" "$RUN_DIR/log4j2.xml"
}

cmd_start() {
  cmd_install
  mkdir -p "$RUN_DIR"
  touch "$RUN_MARK"
  exec 8>"$RUN_DIR/.lock"
  take_lock 8 "$RUN_DIR/.lock" 600

  local pid
  if pid="$(running_pid)"; then
    # Ours already: a no-op, but still make sure it answers (it may be mid-startup).
    wait_until_serving "$pid" || fail_start "broker (pid $pid) runs but does not serve on $BOOTSTRAP"
    log "already running (pid $pid)"
    echo "KAFKA_BOOTSTRAP=$BOOTSTRAP"
    return 0
  fi
  ports_free "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  check_java
  render_config

  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    local cluster_id
    cluster_id="$(run_java_tool storage random-uuid)"
    log "formatting new KRaft cluster $cluster_id in $DATA_DIR"
    run_java_tool storage format --standalone -t "$cluster_id" \
      -c "$RUN_DIR/server.properties" >/dev/null
  fi

  local t0=$SECONDS
  # shellcheck disable=SC2086 # *_OPTS are meant to word-split
  spawn "$JAVA" $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$RUN_DIR/log4j2.xml" \
    ${KAFKA_OPTS:-} -cp "$LIBS/*" kafka.Kafka "$RUN_DIR/server.properties"
  pid="$(cat "$PID_FILE")"
  log "started broker pid $pid, waiting up to ${START_TIMEOUT}s for $BOOTSTRAP"
  if ! wait_until_serving "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    fail_start "broker did not serve on $BOOTSTRAP within ${START_TIMEOUT}s (killed it)"
  fi
  log "Kafka $KAFKA_VERSION serving on $BOOTSTRAP after $((SECONDS - t0))s (log: $LOG_FILE)"
  echo "KAFKA_BOOTSTRAP=$BOOTSTRAP"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    echo "running: Kafka $KAFKA_VERSION pid $pid, bootstrap $BOOTSTRAP, log $LOG_FILE"
    return 0
  fi
  not_running "$KAFKA_PORT"
}

cmd_tool() {
  [[ $# -ge 1 ]] || die "usage: kafka.sh tool NAME|CLASS [ARGS...]"
  cmd_install
  run_java_tool "$@"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    tool) cmd_tool "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
