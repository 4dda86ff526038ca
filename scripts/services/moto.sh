#!/usr/bin/env bash
# A moto server (fake AWS: SQS, S3, ...) for the test suite, from the project's venv.
#
#   scripts/services/moto.sh start   # prints `url=http://127.0.0.1:25000`
#   scripts/services/moto.sh status  # exit 0 when running
#   scripts/services/moto.sh stop
#
# Environment: MONETA_SERVICES_DIR (default <repo>/.services; state in its moto/),
# MONETA_MOTO_PORT (25000), MONETA_VENV (default <repo>/.venv; `make install` makes it),
# MONETA_MOTO_START_TIMEOUT (60 s). Its state lives in memory: a restart empties it.
set -euo pipefail

SERVICE=moto
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${MONETA_MOTO_PORT:-25000}"
VENV="${MONETA_VENV:-$REPO_ROOT/.venv}"
START_TIMEOUT="${MONETA_MOTO_START_TIMEOUT:-60}"
MOTO_SERVER="$VENV/bin/moto_server"
DIR="$SERVICES_DIR/moto"
PIDFILE="$DIR/moto.pid"
LOG="$DIR/moto.log"
URL="http://127.0.0.1:$PORT"

# The PID of our server if it is alive, else nothing.
our_pid() {
    local pid
    pid="$(read_pid "$PIDFILE")"
    if [[ -n "$pid" ]] && pid_alive "$pid" && pid_cmdline_has "$pid" "moto_server -H 127.0.0.1 -p $PORT"; then
        printf '%s' "$pid"
    fi
}

# True when moto's own API answers (a plain HTTP GET, without curl).
api_ready() {
    local status
    # shellcheck disable=SC2016 # expanded by the inner shell
    status="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" \
        && printf "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 && head -n 1 <&3' _ "$PORT" 2>/dev/null)" \
        || return 1
    [[ "$status" == "HTTP/1."[01]" 200"* ]]
}

wait_ready() {
    local pid="$1" deadline=$(($(now) + START_TIMEOUT))
    until api_ready; do
        if ! pid_alive "$pid"; then
            tail_log "$LOG"
            die "moto_server exited during start-up (log: $LOG)"
        fi
        if (($(now) >= deadline)); then
            tail_log "$LOG"
            stop_pid "$pid" 10 "$PORT"
            rm -f "$PIDFILE"
            die "moto_server was not ready after ${START_TIMEOUT}s (log: $LOG)"
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
        api_ready || log "server $pid is running but not ready yet; waiting"
        wait_ready "$pid"
        log "already running (pid $pid)"
        printf 'url=%s\n' "$URL"
        return 0
    fi
    [[ -x "$MOTO_SERVER" ]] \
        || die "moto_server not found at $MOTO_SERVER: run 'make install' (moto[server] is a dev dependency)"
    require_ports_free "$PORT"
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    started="$(now)"
    log "starting moto_server on $URL (log $LOG)"
    spawn_detached "$PIDFILE" "$LOG" "$MOTO_SERVER" -H 127.0.0.1 -p "$PORT"
    pid="$(read_pid "$PIDFILE")"
    wait_ready "$pid"
    log "ready in $(($(now) - started))s (pid $pid)"
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
    log "stopping server $pid"
    stop_pid "$pid" 10 "$PORT"
    rm -f "$PIDFILE"
    log "stopped"
}

status() {
    service_status api_ready "url=$URL"
}

dispatch "$@"
