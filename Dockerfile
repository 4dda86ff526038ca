# syntax=docker/dockerfile:1
# Moneta: one image for every process (`moneta migrate | serve | worker | relay | webhooks`).
#
#   docker build -t moneta:dev .
#   docker run --rm -e MONETA_DATABASE_URL=postgresql://... moneta:dev migrate
#   docker run --rm -p 8000:8000 -e MONETA_DATABASE_URL=postgresql://... moneta:dev
#
# Pin the base image by digest in production (PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...);
# Dependabot/Renovate keep the digest current.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------
# builder: resolves and installs the package and its pinned dependencies into /opt/venv.
# Every dependency ships a manylinux wheel for CPython 3.11, so no compiler is needed here
# either; `--only-binary=:all:` makes a missing wheel fail the build instead of silently
# compiling from source.
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "pip==25.3"

# Dependencies first, from the pins in pyproject.toml, so that a source-only change reuses
# this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r requirements.txt

# Then the package itself (no dependency resolution: they are all installed above).
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
    && /opt/venv/bin/moneta --help > /dev/null

# ---------------------------------------------------------------------------------------
# runtime: the interpreter, the venv, nothing else. No compiler, no pip cache, no sources.
FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="moneta" \
      org.opencontainers.image.description="Double-entry ledger and payments backend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# A fixed numeric uid/gid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 moneta \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin moneta

COPY --from=builder /opt/venv /opt/venv

# Bytecode is compiled at build time, so a read-only root filesystem is fine; /tmp is the
# only place a process writes (Kubernetes mounts an emptyDir there).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1 \
    MONETA_HOST=0.0.0.0 \
    MONETA_PORT=8000 \
    MONETA_INPROCESS_WORKER=false \
    MONETA_DATA_DIR=/tmp/moneta

WORKDIR /tmp
USER 10001:10001

# 8000: the API (`serve`); 9108: `relay --metrics-port 9108`.
EXPOSE 8000 9108

# Liveness of `moneta serve` without curl in the image. Only meaningful for the API
# process: docker-compose.yml disables it for the others, and Kubernetes ignores it (the
# chart sets its own probes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MONETA_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["moneta"]
CMD ["serve", "--host", "0.0.0.0"]
