"""An embedded PostgreSQL (the binaries shipped by the `pgserver` wheel) under the data dir.

We drive initdb/pg_ctl ourselves instead of pgserver's wrapper: its pid bookkeeping survives
a SIGKILL and then never stops the server, and it cannot set `wal_level` or test-only
durability switches. The server listens on a unix socket only, so it never fights another
PostgreSQL for a TCP port.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

log = logging.getLogger(__name__)

DATABASE_NAME = "moneta"
# initdb refuses to run as root; as root we run PostgreSQL as this system user.
_SYSTEM_USER = "pgserver"
# unix socket paths are limited to 107 bytes ("/.s.PGSQL.5432" included).
_MAX_SOCKET_DIR_LEN = 90
_START_ATTEMPTS = 20

DURABLE_CONF: dict[str, str] = {
    "wal_level": "logical",  # logical decoding feeds the event stream (later issue)
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_connections": "300",
    "shared_buffers": "256MB",
}
# Only for throwaway test clusters: an acknowledged write may be lost on an OS crash.
FAST_UNSAFE_CONF: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def bin_dir() -> Path:
    """Where the PostgreSQL binaries are: MONETA_PG_BIN_DIR, else the pgserver wheel's."""
    override = os.environ.get("MONETA_PG_BIN_DIR")
    if override:
        return Path(override)
    # find_spec, not import: importing pgserver does I/O and warns at import time.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver is not installed and MONETA_PG_BIN_DIR is not set")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """Start (or reuse) a PostgreSQL cluster in `data_dir/pg`; stop it only if we started it."""

    def __init__(self, data_dir: Path, extra_conf: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.conf = {**DURABLE_CONF, **(extra_conf or {})}
        self.socket_dir = self._socket_dir()
        self.started_here = False
        self._run_as = _SYSTEM_USER if os.geteuid() == 0 else None

    def url(self, database: str = DATABASE_NAME, user: str = "postgres") -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}"

    def start(self) -> str:
        """Initialise if needed, start unless running, create the database; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._write_conf()
        if not self.is_running():
            self._start_server()
            self.started_here = True
        self._create_database()
        return self.url()

    def stop(self) -> None:
        if self.is_running():
            self._pg(["pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"])

    def is_running(self) -> bool:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return False
        try:
            proc = psutil.Process(pid)
            return proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
        except psutil.Error:
            return False

    def _socket_dir(self) -> Path:
        candidate = self.data_dir / "run"
        if len(str(candidate)) <= _MAX_SOCKET_DIR_LEN:
            return candidate
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"moneta-pg-{digest}"

    def _pg(self, argv: list[str], timeout_s: float = 120.0) -> None:
        cmd = [str(bin_dir() / argv[0]), *argv[1:]]
        subprocess.run(
            cmd,
            check=True,
            user=self._run_as,
            timeout=timeout_s,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
        )

    def _prepare_permissions(self) -> None:
        assert self._run_as is not None
        try:
            pwd.getpwnam(self._run_as)
        except KeyError:
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self._run_as,
                ],
                check=True,
                capture_output=True,
            )
        self._chown_tree()

    def _chown_tree(self) -> None:
        assert self._run_as is not None
        entry = pwd.getpwnam(self._run_as)
        # The server user must traverse every parent folder of the data dir and binaries.
        for path in (self.data_dir, bin_dir()):
            for parent in path.parents:
                mode = parent.stat().st_mode
                parent.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
        for binary in bin_dir().iterdir():
            binary.chmod(binary.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
        for folder in (self.data_dir, self.pgdata, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            # A half-made cluster (initdb killed): start again from nothing.
            shutil.rmtree(self.pgdata)
            self.pgdata.mkdir()
            if self._run_as:
                self._chown_tree()
        self._pg(
            [
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ]
        )
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'moneta.conf'\n")

    def _write_conf(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            **self.conf,
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "logging_collector": "off",
        }
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        target = self.pgdata / "moneta.conf"
        target.write_text(text)
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(target, entry.pw_uid, entry.pw_gid)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)

    def _start_server(self) -> None:
        logfile = self.data_dir / "postgres.log"
        logfile.touch()
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chown(logfile, entry.pw_uid, entry.pw_gid)
        argv = ["pg_ctl", "-D", str(self.pgdata), "-l", str(logfile), "-w", "-t", "60", "start"]
        # After a SIGKILL the old backends hold shared memory for a moment: retry until
        # they are gone instead of failing the start.
        for attempt in range(_START_ATTEMPTS):
            try:
                self._pg(argv)
                return
            except subprocess.CalledProcessError:
                if attempt == _START_ATTEMPTS - 1:
                    tail = logfile.read_text()[-2000:]
                    raise RuntimeError(f"embedded PostgreSQL did not start:\n{tail}") from None
                time.sleep(0.5)

    def _create_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if found is None:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
