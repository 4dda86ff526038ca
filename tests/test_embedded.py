"""The zero-configuration path a new user takes (`moneta dev` on the embedded PostgreSQL),
and durability: acknowledged writes survive a SIGKILL of the server and of PostgreSQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.conftest import free_port, moneta


def _wait_ready(url: str, process: subprocess.Popen[Any], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited early"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONETA_")}
    return {**env, "MONETA_DATA_DIR": str(data_dir), "MONETA_PORT": str(port)}


def test_dev_then_crash_then_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(data_dir, port)
    dev = subprocess.Popen(
        [sys.executable, "-m", "moneta", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        key = ""
        assert dev.stdout is not None
        for line in dev.stdout:
            found = re.search(r"Admin API key \(shown once\): (\S+)", line)
            if found:
                key = found.group(1)
                break
        assert key.startswith("mk_")
        _wait_ready(url, dev)
        ledger, acknowledged = _write_some(url, key)

        # An operator CLI call while the server runs reuses the same embedded server.
        extra_key = moneta("keys", "create", "--scope", "read", env=env).strip()
        assert extra_key.startswith("mk_")

        # Kill everything hard: the server and PostgreSQL, no shutdown of either.
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None
        os.killpg(dev.pid, signal.SIGKILL)
        os.kill(postmaster, signal.SIGKILL)
        dev.wait(timeout=10)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
        if dev.stdout:
            dev.stdout.close()
    _restart_and_check(env, url, data_dir, key, extra_key, ledger, acknowledged)


def _write_some(url: str, key: str) -> tuple[str, list[str]]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        ledger: str = client.post("/v1/ledgers", json={"name": "crash"}).json()["id"]
        for code, normal, limit in (("cash", "debit", None), ("alice", "credit", 0)):
            made = client.post(
                "/v1/accounts",
                json={
                    "ledger_id": ledger,
                    "code": code,
                    "currency": "EUR",
                    "normal_balance": normal,
                    "overdraft_limit": limit,
                },
            )
            assert made.status_code == 201
        acknowledged = []
        for i in range(30):
            response = client.post(
                "/v1/transactions",
                json={
                    "ledger_id": ledger,
                    "postings": [{"debit": "cash", "credit": "alice", "amount": i + 1}],
                },
            )
            assert response.status_code == 201
            acknowledged.append(response.json()["id"])
    return ledger, acknowledged


def _restart_and_check(
    env: dict[str, str],
    url: str,
    data_dir: Path,
    key: str,
    extra_key: str,
    ledger: str,
    acknowledged: list[str],
) -> None:
    serve = subprocess.Popen(
        [sys.executable, "-m", "moneta", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_ready(url, serve)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            for tx_id in acknowledged:
                assert client.get(f"/v1/transactions/{tx_id}").status_code == 200
            accounts = client.get("/v1/accounts", params={"ledger_id": ledger}).json()["data"]
        alice = next(a for a in accounts if a["code"] == "alice")
        assert alice["balance"]["posted"] == sum(range(1, 31))
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {extra_key}"}) as r:
            assert r.get(f"/v1/ledgers/{ledger}").status_code == 200

        # A graceful stop also stops the embedded PostgreSQL it started.
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None
        assert psutil.pid_exists(postmaster)
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _postmaster_pid(data_dir) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postmaster_pid(data_dir) is None
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
        leftover = _postmaster_pid(data_dir)
        if leftover is not None and psutil.pid_exists(leftover):
            os.kill(leftover, signal.SIGKILL)


def test_embedded_postgres_killed_under_a_running_server_comes_back(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _env(data_dir, port)
    key = moneta("keys", "create", "--scope", "admin", env=env).strip()
    serve = subprocess.Popen(
        [sys.executable, "-m", "moneta", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_ready(url, serve)
        ledger, acknowledged = _write_some(url, key)
        postmaster = _postmaster_pid(data_dir)
        assert postmaster is not None
        os.kill(postmaster, signal.SIGKILL)
        # The server notices, restarts its embedded PostgreSQL, and crash recovery keeps
        # every acknowledged write; requests in between get 503, never a false 2xx.
        deadline = time.monotonic() + 60
        statuses: set[int] = set()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            while time.monotonic() < deadline:
                response = client.get(f"/v1/transactions/{acknowledged[-1]}")
                statuses.add(response.status_code)
                if response.status_code == 200:
                    break
                time.sleep(0.2)
            assert response.status_code == 200, statuses
            assert statuses <= {200, 503}, statuses
            for tx_id in acknowledged:
                assert client.get(f"/v1/transactions/{tx_id}").status_code == 200
            again = client.post(
                "/v1/transactions",
                json={
                    "ledger_id": ledger,
                    "postings": [{"debit": "cash", "credit": "alice", "amount": 1}],
                },
            )
            assert again.status_code == 201, again.text
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        leftover = _postmaster_pid(data_dir)
        if leftover is not None and psutil.pid_exists(leftover):
            os.kill(leftover, signal.SIGKILL)
