"""A throwaway Moneta for one benchmark run: a fresh, durable embedded PostgreSQL in a
temporary folder, `moneta migrate`, an admin key and a `moneta serve` process.

PostgreSQL gets no extra configuration: the durable defaults of `EmbeddedPostgres`
(fsync, synchronous_commit and full_page_writes on), exactly as production runs it.
Everything started here is stopped in `close()`: processes added with `spawn()` (the
relay) and the server by process group, then the database with `EmbeddedPostgres.stop()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from moneta.db.embedded import EmbeddedPostgres

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SelfHosted:
    """Start with `start()`, always `close()` (also after a failed start)."""

    def __init__(self, workers: int = 1, pool_max_size: int = 40) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="moneta-bench-"))
        self.workers = workers
        self.pool_max_size = pool_max_size
        self.pg: EmbeddedPostgres | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.database_url = ""
        self.url = ""
        self.admin_key = ""
        self.env: dict[str, str] = {}
        self.log_path = self.workdir / "server.log"
        self.children: list[subprocess.Popen[bytes]] = []  # spawn()ed, stopped by close()

    def start(self) -> None:
        self.pg = EmbeddedPostgres(self.workdir / "pg")
        self.database_url = self.pg.start()
        port = free_port()
        self.env = {
            **os.environ,
            "MONETA_DATABASE_URL": self.database_url,
            "MONETA_DATA_DIR": str(self.workdir / "data"),
            "MONETA_PORT": str(port),
            "MONETA_LOG_LEVEL": "warning",
            "MONETA_INPROCESS_WORKER": "true",
            "MONETA_DB_POOL_MAX_SIZE": str(self.pool_max_size),
        }
        if self.workers != 1:  # only servers that know MONETA_WORKERS are asked for more
            self.env["MONETA_WORKERS"] = str(self.workers)
        self._moneta("migrate")
        self.admin_key = self._moneta("keys", "create", "--scope", "admin", "--name", "bench")
        self.url = f"http://127.0.0.1:{port}"
        with self.log_path.open("ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "moneta", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    @property
    def server_pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    @property
    def postgres_pid(self) -> int | None:
        """The postmaster's pid (its children are the backends)."""
        if self.pg is None:
            return None
        try:
            return int((self.pg.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Another `moneta` process on this stack (e.g. `moneta relay`) with the server's
        environment plus `env`, logged to <workdir>/<name>.log. Stop it with `stop()`;
        `close()` stops any left, before the database goes."""
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moneta", *args],
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.children.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        _stop_group(process)
        if process in self.children:
            self.children.remove(process)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.workdir / f"{name}.log").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        try:
            for process in list(self.children):
                self.stop(process)
            self._stop_server()
        finally:
            try:
                if self.pg is not None:
                    self.pg.stop()
            finally:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def server_log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _moneta(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "moneta", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"moneta {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout.strip()

    def _wait_ready(self) -> None:
        assert self.server is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"moneta serve exited:\n{self.server_log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"moneta serve did not become ready:\n{self.server_log_tail()}")

    def _stop_server(self) -> None:
        if self.server is not None:
            _stop_group(self.server)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (a server's workers too), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
