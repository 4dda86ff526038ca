# shellcheck shell=bash
# Helpers shared by the service scripts in this directory; sourced, never run.
#
# Conventions: the one machine-readable line (e.g. `bootstrap=127.0.0.1:29092`) goes to
# stdout, everything else to stderr. A failure ends with a line `error: <reason>` on
# stderr, which tests/services.py shows as the reason a test was skipped or failed.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
SERVICES_DIR="${MONETA_SERVICES_DIR:-$REPO_ROOT/.services}"
SERVICE="${SERVICE:-service}"

log() {
    printf '%s: %s\n' "$SERVICE" "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

now() {
    date +%s
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A short description of who listens on port $1, for error messages.
port_owner() {
    local out=""
    if command -v ss >/dev/null 2>&1; then
        out="$(ss -Hltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)"
    fi
    printf '%s' "${out:-unknown process}"
}

# Fails with a clear message unless every port given is free.
require_ports_free() {
    local port
    for port in "$@"; do
        if port_open "$port"; then
            die "port $port is already in use by something that is not this $SERVICE ($(port_owner "$port")); stop it or choose other ports (see the top of $0)"
        fi
    done
}

# The PID recorded in file $1, or nothing.
read_pid() {
    local pid=""
    if [[ -s "$1" ]]; then
        read -r pid <"$1" || true
    fi
    if [[ "$pid" =~ ^[0-9]+$ ]]; then
        printf '%s' "$pid"
    fi
}

# True when PID $1 exists and is not a zombie.
pid_alive() {
    local state
    [[ -n "$1" ]] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    state="$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != "Z" ]]
}

# True when the command line of PID $1 contains the fixed string $2 (guards against a
# recycled PID in a stale pid file).
pid_cmdline_has() {
    [[ -r "/proc/$1/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# Serialises start/stop of one service across processes (e.g. two pytest sessions).
# Fd 9 is closed in every child started in the background, so no daemon holds it.
take_lock() {
    exec 9>"$1"
    flock -w 600 9 || die "timed out waiting for the lock $1"
}

# For `bash -c`: close every inherited descriptor above 2. A server must not keep a pipe
# of whoever called the script (a CI runner, `$(...)`, pytest) open, or that caller never
# sees end-of-file.
# shellcheck disable=SC2016 # expanded by the inner shell
CLOSE_FDS='for f in /proc/$$/fd/*; do fd="${f##*/}"; if ((fd > 2)); then exec {fd}>&-; fi; done'

# spawn_detached PIDFILE LOGFILE CMD...: runs CMD in a new session, in the background,
# with its output appended to LOGFILE, and records its PID in PIDFILE. `exec` makes the
# recorded PID the server itself, not a wrapper shell.
spawn_detached() {
    local pidfile="$1" logfile="$2" waited=0
    shift 2
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$ and $@ are expanded by the inner shell
    setsid bash -c "$CLOSE_FDS"'; echo "$$" >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
        "$pidfile" "$@" </dev/null >>"$logfile" 2>&1 &
    while [[ ! -s "$pidfile" ]]; do
        ((waited++ < 100)) || die "the $SERVICE process did not start (see $logfile)"
        sleep 0.05
    done
}

# What still holds on after a stop request: "pid N" or "port N"; fails when nothing does.
still_busy() {
    local pid="$1" port
    shift
    if pid_alive "$pid"; then
        printf 'pid %s' "$pid"
        return 0
    fi
    for port in "$@"; do
        if port_open "$port"; then
            printf 'port %s' "$port"
            return 0
        fi
    done
    return 1
}

# stop_pid PID SECONDS PORT...: SIGTERM, wait until the PID is gone (or a zombie: a
# reaped-late server shows as one) and the ports are closed, SIGKILL after SECONDS.
stop_pid() {
    local pid="$1" grace="$2" deadline busy killed=""
    shift 2
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now) + grace))
    while busy="$(still_busy "$pid" "$@")"; do
        if (($(now) >= deadline)); then
            [[ -z "$killed" ]] || die "the $SERVICE process $pid survived SIGKILL ($busy still busy)"
            log "still running after ${grace}s ($busy); sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            killed=1
            deadline=$(($(now) + 10))
        fi
        sleep 0.2
    done
}

tail_log() {
    if [[ -f "$1" ]]; then
        printf -- '--- last lines of %s ---\n' "$1" >&2
        tail -n "${2:-30}" "$1" >&2
        printf -- '---\n' >&2
    fi
}

# The status command of every script: prints the service's address line (exit 0) when our
# process runs and answers READY_FN, else exit 3. Expects the script's `our_pid`.
service_status() {
    local ready_fn="$1" line="$2" pid
    pid="$(our_pid)"
    if [[ -n "$pid" ]] && "$ready_fn"; then
        log "running (pid $pid)"
        printf '%s\n' "$line"
        return 0
    fi
    log "not running"
    return 3
}

# The command line of every script: start, stop or status (the script defines all three).
dispatch() {
    case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 {start|stop|status}" >&2
        exit 2
        ;;
    esac
}
