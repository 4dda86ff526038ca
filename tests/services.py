"""Real brokers for the tests: Kafka, RabbitMQ, moto (a fake SQS) and Redis, run by the
project's own scripts in scripts/services/ and shared by the whole session.

A fixture starts its service only when a test asks for it, and stops it at the end of the
session only if this session started it: a broker that was already running (say, started
by hand with `scripts/services/kafka.sh start` to make repeated runs quick) is left alone.
When a service cannot start, the test is skipped with the reason, except under CI (env
`CI` set), where it fails with the script's whole output: CI must not go green by
skipping.

conftest.py re-exports the fixtures:
    from tests.services import kafka_bootstrap, rabbitmq_url, redis_url, sqs_endpoint  # noqa: F401
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts" / "services"

# The key of the one line each script prints on stdout when its service is up.
KEYS = {"kafka": "bootstrap", "rabbitmq": "url", "moto": "url", "redis": "url"}

# A cold start may install RabbitMQ or Redis with apt-get or fetch Kafka's jars with Maven.
START_TIMEOUT = 600.0
STOP_TIMEOUT = 120.0
STATUS_TIMEOUT = 30.0


class ServiceError(RuntimeError):
    """A service script failed; `reason` is one line, `output` all it printed."""

    def __init__(self, name: str, action: str, reason: str, output: str) -> None:
        self.name = name
        self.reason = reason
        self.output = output
        super().__init__(f"scripts/services/{name}.sh {action} failed: {reason}\n{output}")


def _text(stream: str | bytes | None) -> str:
    if isinstance(stream, bytes):
        return stream.decode(errors="replace")
    return stream or ""


def _run(name: str, action: str, timeout: float) -> tuple[int, str, str]:
    if name not in KEYS:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(sorted(KEYS))}")
    try:
        done = subprocess.run(
            ["bash", str(SCRIPTS / f"{name}.sh"), action],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = _text(exc.stdout) + _text(exc.stderr)
        raise ServiceError(name, action, f"no answer within {timeout:.0f}s", output) from exc
    return done.returncode, done.stdout, done.stderr


def _failure(name: str, action: str, code: int, stdout: str, stderr: str) -> ServiceError:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    reason = errors[-1].removeprefix("error: ") if errors else f"exit status {code}"
    return ServiceError(name, action, reason, stdout + stderr)


def is_running(name: str) -> bool:
    code, _, _ = _run(name, "status", STATUS_TIMEOUT)
    return code == 0


def start_service(name: str) -> str:
    """Start a service (a quick no-op when it runs already) and return its address."""
    code, stdout, stderr = _run(name, "start", START_TIMEOUT)
    if code != 0:
        raise _failure(name, "start", code, stdout, stderr)
    prefix = f"{KEYS[name]}="
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return line.removeprefix(prefix).strip()
    raise ServiceError(name, "start", f"printed no {prefix}... line", stdout + stderr)


def stop_service(name: str) -> None:
    code, stdout, stderr = _run(name, "stop", STOP_TIMEOUT)
    if code != 0:
        raise _failure(name, "stop", code, stdout, stderr)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _start_or_skip(name: str) -> str:
    try:
        return start_service(name)
    except ServiceError as exc:
        error = exc
    if in_ci():
        pytest.fail(str(error), pytrace=False)
    pytest.skip(f"{name} unavailable: {error.reason}")


def _service(name: str) -> Iterator[str]:
    was_running = is_running(name)
    address = _start_or_skip(name)
    try:
        yield address
    finally:
        if not was_running:
            stop_service(name)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """`127.0.0.1:PORT` of a single-node Kafka broker. Topics are not auto-created."""
    yield from _service("kafka")


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """`amqp://guest:guest@127.0.0.1:PORT/` of a RabbitMQ node (default vhost)."""
    yield from _service("rabbitmq")


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """`http://127.0.0.1:PORT` of a moto server: pass it as `endpoint_url`, with region
    us-east-1 and any access key. Its state is in memory, shared by the session."""
    yield from _service("moto")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a Redis server that persists nothing: a restart
    empties it. Its databases are shared by the session: use unique keys."""
    yield from _service("redis")
