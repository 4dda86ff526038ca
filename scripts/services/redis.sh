#!/usr/bin/env bash
# A Redis server of our own (Debian's redis-server, run from a private state dir, never
# the system service) for the test suite.
#
#   scripts/services/redis.sh start   # installs the package if missing, starts, waits;
#                                     # prints `url=redis://127.0.0.1:26379/0`
#   scripts/services/redis.sh status  # exit 0 when running
#   scripts/services/redis.sh stop
#
# Environment: MONETA_SERVICES_DIR (default <repo>/.services; state in its redis/),
# MONETA_REDIS_PORT (26379), MONETA_REDIS_START_TIMEOUT (30 s). Nothing is persisted
# (no RDB snapshots, no AOF): a restart empties it.
set -euo pipefail

SERVICE=redis
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${MONETA_REDIS_PORT:-26379}"
START_TIMEOUT="${MONETA_REDIS_START_TIMEOUT:-30}"
DIR="$SERVICES_DIR/redis"
PIDFILE="$DIR/redis.pid"
LOG="$DIR/redis.log"
START_LOG="$DIR/start.log" # what redis-server prints before it has daemonized
URL="redis://127.0.0.1:$PORT/0"

have_redis() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

install_package() {
    have_redis && return 0
    command -v apt-get >/dev/null 2>&1 \
        || die "Redis not installed (redis-server or redis-cli missing) and apt-get not found"
    ((EUID == 0)) \
        || die "Redis not installed: run 'apt-get install -y redis-server' as root (it is not started as a system service)"
    log "installing redis-server with apt-get (once)"
    local started
    started="$(now)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends redis-server </dev/null >&2 9>&-; then
        log "apt-get install failed; running apt-get update and trying again"
        apt-get update </dev/null >&2 9>&- || die "apt-get update failed"
        apt-get install -y --no-install-recommends redis-server </dev/null >&2 9>&- \
            || die "apt-get install redis-server failed"
    fi
    have_redis || die "redis-server installed, but redis-server or redis-cli is not on PATH"
    log "installed in $(($(now) - started))s"
}

# True when PID $1 is a redis-server on our port: its process title is
# `redis-server 127.0.0.1:PORT`, or its command line when the title is not rewritten.
is_our_redis() {
    pid_alive "$1" && pid_cmdline_has "$1" "redis-server" \
        && { pid_cmdline_has "$1" "127.0.0.1:$PORT " || pid_cmdline_has "$1" "--port $PORT "; }
}

# The PID of our server if it is alive, else nothing.
our_pid() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if [[ -n "$pid" ]] && is_our_redis "$pid"; then
        printf '%s' "$pid"
    fi
}

# The PID of the server that this start's log speaks for. The daemon writes its pid file
# only once it listens; a failed bind ends it before that, and only the log names it.
log_pid() {
    [[ -f "$LOG" ]] || return 0
    sed -n 's/^\([0-9][0-9]*\):M .*/\1/p' "$LOG" | tail -n 1
}

# True when the server answers PING with PONG.
redis_ready() {
    local reply
    reply="$(timeout 3 redis-cli -h 127.0.0.1 -p "$PORT" ping </dev/null 2>/dev/null 9>&-)" \
        || return 1
    [[ "$reply" == "PONG" ]]
}

# Stops the server PID $1: SHUTDOWN NOSAVE, then the common SIGTERM/SIGKILL fallback.
stop_server() {
    local pid="$1"
    log "stopping server $pid"
    timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave </dev/null >>"$LOG" 2>&1 9>&- \
        || log "redis-cli shutdown failed; sending SIGTERM"
    stop_pid "$pid" 10 "$PORT"
    rm -f "$PIDFILE"
}

wait_ready() {
    local deadline=$(($(now) + START_TIMEOUT)) pid
    until redis_ready; do
        pid="$(read_pid "$PIDFILE")"
        [[ -n "$pid" ]] || pid="$(log_pid)"
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            tail_log "$LOG"
            rm -f "$PIDFILE"
            die "redis-server exited during start-up (log: $LOG)"
        fi
        if (($(now) >= deadline)); then
            tail_log "$LOG"
            if [[ -n "$pid" ]] && is_our_redis "$pid"; then
                stop_server "$pid"
            fi
            die "redis-server was not ready after ${START_TIMEOUT}s (log: $LOG)"
        fi
        sleep 0.1
    done
}

start() {
    local pid started
    mkdir -p "$DIR"
    take_lock "$DIR/lock"
    pid="$(our_pid)"
    if [[ -n "$pid" ]]; then
        redis_ready || log "server $pid is running but not ready yet; waiting"
        wait_ready
        log "already running (pid $pid)"
        printf 'url=%s\n' "$URL"
        return 0
    fi
    install_package
    require_ports_free "$PORT"
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    rm -f "$PIDFILE"
    started="$(now)"
    log "starting redis-server on 127.0.0.1:$PORT (state $DIR)"
    # redis-server forks into the background itself (--daemonize) and keeps every
    # descriptor above 2 it inherits, the lock among them: CLOSE_FDS first.
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid -w bash -c "$CLOSE_FDS"'; exec "$@"' _ redis-server \
        --bind 127.0.0.1 --port "$PORT" \
        --save "" --appendonly no \
        --daemonize yes --pidfile "$PIDFILE" --logfile "$LOG" --dir "$DIR" \
        </dev/null >"$START_LOG" 2>&1 \
        || {
            tail_log "$START_LOG"
            tail_log "$LOG"
            die "redis-server failed to start (logs in $DIR)"
        }
    wait_ready
    log "ready in $(($(now) - started))s (pid $(read_pid "$PIDFILE"))"
    printf 'url=%s\n' "$URL"
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
    stop_server "$pid"
    log "stopped"
}

status() {
    service_status redis_ready "url=$URL"
}

dispatch "$@"
