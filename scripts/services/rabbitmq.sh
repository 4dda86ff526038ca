#!/usr/bin/env bash
# A RabbitMQ node of our own (Debian's rabbitmq-server, run from a private state dir,
# never the system service) for the test suite.
#
#   scripts/services/rabbitmq.sh start   # installs the package if missing, starts, waits;
#                                        # prints `url=amqp://guest:guest@127.0.0.1:25673/`
#   scripts/services/rabbitmq.sh status  # exit 0 when running
#   scripts/services/rabbitmq.sh stop    # stops the node and the epmd on our port
#
# Environment: MONETA_SERVICES_DIR (default <repo>/.services; state in its rabbitmq/),
# MONETA_RABBITMQ_PORT (25673, AMQP), MONETA_RABBITMQ_DIST_PORT (35673, Erlang
# distribution; the CLI tools take the ten ports after it), MONETA_RABBITMQ_EPMD_PORT
# (24369), MONETA_RABBITMQ_START_TIMEOUT (90 s).
set -euo pipefail

SERVICE=rabbitmq
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${MONETA_RABBITMQ_PORT:-25673}"
DIST_PORT="${MONETA_RABBITMQ_DIST_PORT:-35673}"
EPMD_PORT="${MONETA_RABBITMQ_EPMD_PORT:-24369}"
START_TIMEOUT="${MONETA_RABBITMQ_START_TIMEOUT:-90}"
NODENAME=moneta@localhost
RABBIT_BIN=/usr/lib/rabbitmq/bin
DIR="$SERVICES_DIR/rabbitmq"
PIDFILE="$DIR/rabbit.pid"
LOG="$DIR/startup.log"
URL="amqp://guest:guest@127.0.0.1:$PORT/"

# Everything the node and rabbitmqctl read. The /usr/sbin wrappers `su` to the rabbitmq
# user and drop this environment, so the scripts under $RABBIT_BIN are called directly.
export HOME="$DIR/home"
export RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf"
export RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf"
export RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/advanced.config"
export RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$DIR/mnesia"
export RABBITMQ_LOG_BASE="$DIR/log"
export RABBITMQ_PID_FILE="$PIDFILE"
export RABBITMQ_NODENAME="$NODENAME"
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="$PORT"
export RABBITMQ_DIST_PORT="$DIST_PORT"
export RABBITMQ_CTL_DIST_PORT_MIN=$((DIST_PORT + 1))
export RABBITMQ_CTL_DIST_PORT_MAX=$((DIST_PORT + 10))
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT="$EPMD_PORT"
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

install_package() {
    [[ -x "$RABBIT_BIN/rabbitmq-server" ]] && return 0
    command -v apt-get >/dev/null 2>&1 \
        || die "RabbitMQ not installed ($RABBIT_BIN/rabbitmq-server missing) and apt-get not found"
    ((EUID == 0)) \
        || die "RabbitMQ not installed: run 'apt-get install -y rabbitmq-server' as root (it is not started as a system service)"
    log "installing rabbitmq-server with apt-get (once)"
    local started
    started="$(now)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends rabbitmq-server </dev/null >&2 9>&-; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update </dev/null >&2 9>&- || die "apt-get update failed"
        apt-get install -y --no-install-recommends rabbitmq-server </dev/null >&2 9>&- \
            || die "apt-get install rabbitmq-server failed"
    fi
    [[ -x "$RABBIT_BIN/rabbitmq-server" ]] \
        || die "rabbitmq-server installed, but $RABBIT_BIN/rabbitmq-server is missing"
    log "installed in $(($(now) - started))s"
}

# The PID of our node (beam.smp) if it is alive, else nothing.
our_pid() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if [[ -n "$pid" ]] && pid_alive "$pid" && pid_cmdline_has "$pid" "-home $HOME "; then
        printf '%s' "$pid"
    fi
}

# True when the AMQP port answers a protocol header with a frame (Connection.Start).
amqp_ready() {
    local reply
    # shellcheck disable=SC2016 # expanded by the inner shell
    reply="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "AMQP\x00\x00\x09\x01" >&3 && head -c 1 <&3 | od -An -tx1' _ "$PORT" 2>/dev/null)" \
        || return 1
    [[ "${reply// /}" == "01" ]]
}

epmd_answers() {
    epmd -port "$EPMD_PORT" -names >/dev/null 2>&1
}

write_config() {
    mkdir -p "$HOME" "$RABBITMQ_LOG_BASE" "$RABBITMQ_MNESIA_BASE"
    : >"$RABBITMQ_CONF_ENV_FILE"
    printf '[].\n' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
    cat >"$RABBITMQ_CONFIG_FILE" <<CONF
# Written by scripts/services/rabbitmq.sh: a throwaway test node.
listeners.tcp.default = 127.0.0.1:$PORT
log.console = false
log.file.level = warning
CONF
}

wait_ready() {
    local deadline=$(($(now) + START_TIMEOUT)) pid
    until amqp_ready; do
        pid="$(read_pid "$PIDFILE")"
        # The pid file appears a moment after the start; once it is there, the node must live.
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            tail_log "$LOG"
            tail_log "$RABBITMQ_LOG_BASE/$NODENAME.log"
            die "the RabbitMQ node exited during start-up (logs in $DIR)"
        fi
        if (($(now) >= deadline)); then
            tail_log "$LOG"
            tail_log "$RABBITMQ_LOG_BASE/$NODENAME.log"
            stop_node
            die "RabbitMQ was not ready after ${START_TIMEOUT}s (logs in $DIR)"
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
        amqp_ready || log "node $pid is running but not ready yet; waiting"
        wait_ready
        log "already running (pid $pid)"
        printf 'url=%s\n' "$URL"
        return 0
    fi
    install_package
    require_ports_free "$PORT" "$DIST_PORT"
    # An epmd on our port may be left from an earlier run: it is reused. Anything else there
    # is not ours.
    if port_open "$EPMD_PORT" && ! epmd_answers; then
        require_ports_free "$EPMD_PORT"
    fi
    write_config
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    rm -f "$PIDFILE"
    started="$(now)"
    log "starting node $NODENAME on 127.0.0.1:$PORT (dist $DIST_PORT, epmd $EPMD_PORT, state $DIR)"
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid -w bash -c "$CLOSE_FDS"'; exec "$@"' _ "$RABBIT_BIN/rabbitmq-server" -detached \
        </dev/null >>"$LOG" 2>&1 \
        || {
            tail_log "$LOG"
            die "rabbitmq-server -detached failed"
        }
    wait_ready
    log "ready in $(($(now) - started))s (pid $(read_pid "$PIDFILE"))"
    printf 'url=%s\n' "$URL"
}

stop_epmd() {
    port_open "$EPMD_PORT" || return 0
    epmd_answers || return 0
    # Only an epmd that no node uses any more is stopped.
    if epmd -port "$EPMD_PORT" -names 2>/dev/null | grep -q '^name '; then
        log "epmd on $EPMD_PORT still has nodes registered; left running"
        return 0
    fi
    epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 9>&- || true
    local waited=0
    while port_open "$EPMD_PORT"; do
        ((waited++ < 50)) || die "epmd on port $EPMD_PORT did not stop"
        sleep 0.1
    done
}

stop_node() {
    local pid
    pid="$(our_pid)"
    if [[ -n "$pid" ]]; then
        log "stopping node $pid"
        "$RABBIT_BIN/rabbitmqctl" -q stop "$PIDFILE" </dev/null >>"$LOG" 2>&1 9>&- \
            || log "rabbitmqctl stop failed; sending SIGTERM"
        stop_pid "$pid" 20 "$PORT" "$DIST_PORT"
    fi
    rm -f "$PIDFILE"
}

stop() {
    mkdir -p "$DIR"
    take_lock "$DIR/lock"
    if [[ -z "$(our_pid)" ]]; then
        log "not running"
    fi
    stop_node
    stop_epmd
    log "stopped"
}

status() {
    service_status amqp_ready "url=$URL"
}

dispatch "$@"
