#!/usr/bin/env bash
# Installs Debian's chromium for the console's browser test (Playwright drives it; never
# `playwright install`, which downloads from a CDN). Idempotent; prints `path=<binary>`.
set -euo pipefail

find_chromium() {
    command -v chromium || command -v chromium-browser || true
}

path="$(find_chromium)"
if [[ -z "$path" ]]; then
    echo "chromium: installing with apt-get (about 2 min the first time)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
        apt-get update >/dev/null 2>&1
        apt-get install -y --no-install-recommends chromium >/dev/null
    fi
    path="$(find_chromium)"
fi
if [[ -z "$path" ]]; then
    echo "error: chromium could not be installed" >&2
    exit 1
fi
printf 'path=%s\n' "$path"
