#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) for the test suite.
#
#   scripts/services/kafka.sh start   # fetches jars once, formats once, starts, waits;
#                                     # prints `bootstrap=127.0.0.1:29092`
#   scripts/services/kafka.sh status  # exit 0 when running
#   scripts/services/kafka.sh stop
#
# Environment: MONETA_SERVICES_DIR (default <repo>/.services; state in its kafka/,
# the Maven repository in its m2/), MONETA_KAFKA_PORT (29092, PLAINTEXT),
# MONETA_KAFKA_CONTROLLER_PORT (29093), MONETA_KAFKA_START_TIMEOUT (90 s).
# Needs Java 17+ always, and Maven once, to fetch the jars from Maven Central.
set -euo pipefail

SERVICE=kafka
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION=4.4.0
LOG4J_VERSION=2.25.5
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

PORT="${MONETA_KAFKA_PORT:-29092}"
CONTROLLER_PORT="${MONETA_KAFKA_CONTROLLER_PORT:-29093}"
START_TIMEOUT="${MONETA_KAFKA_START_TIMEOUT:-90}"
DIR="$SERVICES_DIR/kafka"
LIBS="$DIR/libs"
DATA="$DIR/data"
PROPS="$DIR/server.properties"
LOG4J="$DIR/log4j2.yaml"
PIDFILE="$DIR/kafka.pid"
LOG="$DIR/kafka.log"
BOOTSTRAP="127.0.0.1:$PORT"

# The PID of our broker if it is alive, else nothing.
our_pid() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if [[ -n "$pid" ]] && pid_alive "$pid" && pid_cmdline_has "$pid" "kafka.Kafka $PROPS"; then
        printf '%s' "$pid"
    fi
}

ready() {
    port_open "$PORT" && port_open "$CONTROLLER_PORT" \
        && grep -q 'Kafka Server started' "$LOG" 2>/dev/null
}

require_java() {
    local spec
    command -v java >/dev/null 2>&1 || die "Java not found: the Kafka broker needs a JDK/JRE 17 or newer on PATH"
    spec="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    if ! [[ "${spec%%.*}" =~ ^[0-9]+$ ]] || ((${spec%%.*} < 17)); then
        die "Java ${spec:-of unknown version} found, but Kafka $KAFKA_VERSION needs Java 17 or newer"
    fi
}

fetch_jars() {
    local tmp="$DIR/libs.tmp" started
    [[ -f "$LIBS/.complete" ]] && return 0
    command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found: it is needed once to fetch the Kafka jars from Maven Central into $LIBS"
    log "fetching Kafka $KAFKA_VERSION jars with Maven (once; cached in $LIBS)"
    started="$(now)"
    rm -rf "$tmp" "$LIBS"
    mkdir -p "$tmp"
    cat >"$DIR/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>moneta.services</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <!-- Without an SLF4J binding the broker logs nothing at all. -->
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
    # Maven 3.8 prints bare colour resets even with -q -B: strip them.
    if ! mvn -q -B -f "$DIR/pom.xml" -Dmaven.repo.local="$SERVICES_DIR/m2" \
        "$DEPENDENCY_PLUGIN:copy-dependencies" -DoutputDirectory="$tmp" -DincludeScope=runtime \
        </dev/null 2>&1 9>&- | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^$/d' >&2; then
        die "Maven could not fetch the Kafka jars (is Maven Central reachable?)"
    fi
    touch "$tmp/.complete"
    mv "$tmp" "$LIBS"
    log "jars fetched in $(($(now) - started))s ($(du -sh "$LIBS" | cut -f1))"
}

write_config() {
    cat >"$PROPS" <<PROPS
# Written by scripts/services/kafka.sh: a throwaway single-node test broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
PROPS
    cat >"$LOG4J" <<'YAML'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaRaftServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
YAML
}

format_once() {
    local cid
    [[ -f "$DATA/meta.properties" ]] && return 0
    log "formatting $DATA"
    rm -rf "$DATA"
    cid="$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>>"$LOG" 9>&-)"
    java -cp "$LIBS/*" -Dlog4j2.configurationFile="$LOG4J" kafka.tools.StorageTool \
        format -t "$cid" -c "$PROPS" </dev/null >>"$LOG" 2>&1 9>&- \
        || {
            tail_log "$LOG"
            die "formatting the Kafka data dir failed"
        }
}

wait_ready() {
    local pid="$1" deadline=$(($(now) + START_TIMEOUT))
    until ready; do
        if ! pid_alive "$pid"; then
            tail_log "$LOG"
            die "the Kafka broker exited during start-up (log: $LOG)"
        fi
        if (($(now) >= deadline)); then
            tail_log "$LOG"
            stop_pid "$pid" 20 "$PORT" "$CONTROLLER_PORT"
            rm -f "$PIDFILE"
            die "the Kafka broker was not ready after ${START_TIMEOUT}s (log: $LOG)"
        fi
        sleep 0.25
    done
}

start() {
    local pid started
    mkdir -p "$DIR"
    take_lock "$DIR/lock"
    pid="$(our_pid)"
    if [[ -n "$pid" ]]; then
        # Already ours (or half-started by someone else): never start a second broker.
        ready || log "broker $pid is running but not ready yet; waiting"
        wait_ready "$pid"
        log "already running (pid $pid)"
        printf 'bootstrap=%s\n' "$BOOTSTRAP"
        return 0
    fi
    require_java
    require_ports_free "$PORT" "$CONTROLLER_PORT"
    fetch_jars
    write_config
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    format_once
    started="$(now)"
    log "starting broker on $BOOTSTRAP (controller 127.0.0.1:$CONTROLLER_PORT, log $LOG)"
    spawn_detached "$PIDFILE" "$LOG" java -Xms64m -Xmx256m -XX:+UseSerialGC \
        -XX:TieredStopAtLevel=1 -Xss512k -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J" -cp "$LIBS/*" kafka.Kafka "$PROPS"
    pid="$(read_pid "$PIDFILE")"
    wait_ready "$pid"
    log "ready in $(($(now) - started))s (pid $pid)"
    printf 'bootstrap=%s\n' "$BOOTSTRAP"
}

stop() {
    local pid
    mkdir -p "$DIR"
    take_lock "$DIR/lock"
    pid="$(our_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    log "stopping broker $pid"
    stop_pid "$pid" 20 "$PORT" "$CONTROLLER_PORT"
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    service_status ready "bootstrap=$BOOTSTRAP"
}

dispatch "$@"
