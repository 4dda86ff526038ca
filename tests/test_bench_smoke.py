"""A short run of the benchmark harness (bench/) against its own self-hosted Moneta: every
measured workload moves money, nothing answers 5xx, conservation holds, reports are written.
And the harness's conservation check does catch a broken ledger. The full benchmark is
`make bench` (bench/test_bench.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bench import conservation

from tests.conftest import Tenant

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("uniform", "hot", "batch", "pending", "reads")


def run_bench(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """`python -m bench ARGS`; on timeout it gets SIGTERM first, so it tears its stack down."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        pytest.fail(f"bench timed out after {timeout_s} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def server_errors(summary: dict[str, Any]) -> dict[str, int]:
    return {k: n for k, n in summary["errors"].items() if k.removeprefix("item ").startswith("5")}


@pytest.mark.timeout(180)
def test_short_benchmark_run(tmp_path: Path) -> None:
    done = run_bench(
        [
            "--accounts=200",
            "--duration-s=3",
            "--warmup-s=0.25",
            "--runs=1",
            "--concurrency=8",
            f"--workloads={','.join(WORKLOADS)}",
            "--no-pgbench",
            f"--out={tmp_path}",
        ],
        timeout_s=120,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    json_files = list(tmp_path.glob("moneta-bench-*.json"))
    md_files = list(tmp_path.glob("moneta-bench-*.md"))
    assert len(json_files) == 1
    assert len(md_files) == 1
    results = json.loads(json_files[0].read_text())
    assert "| workload |" in md_files[0].read_text()
    assert "| workload |" in done.stdout

    assert results["conservation"]["ok"] is True, results["conservation"]
    assert results["conservation"]["balances_match_entries"]["failures"] == 0
    assert set(results["workloads"]) == set(WORKLOADS)
    for name, summary in results["workloads"].items():
        assert summary["status"] == "ok", (name, summary)
        assert server_errors(summary) == {}, (name, summary["errors"])
        assert summary["unexpected_errors"] == 0, (name, summary["errors"])
        if name == "reads":
            assert summary["requests_per_s"] > 0
            assert summary["transfers_per_s"] == 0
        else:
            assert summary["transfers_per_s"] > 0, (name, summary)
        assert summary["p50_ms"] is not None
        assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    for name in ("sql_single", "sql_batch"):
        ceiling = results["ceilings"][name]
        assert ceiling["status"] == "ok", ceiling
        assert ceiling["transfers_per_s"] > 0
        assert ceiling["errors"] == {}
    # batch items count one transfer each: 100 per request.
    batch = results["workloads"]["batch"]
    assert batch["transfers_per_s"] > batch["requests_per_s"] * 50
    assert results["postgres"]["settings"]["fsync"] == "on"
    assert results["postgres"]["settings"]["synchronous_commit"] == "on"


def test_conservation_check_catches_a_broken_balance(
    tenant: Tenant, database_url: str, db: psycopg.Connection[Any]
) -> None:
    tenant.account("cash", normal_balance="debit", overdraft_limit=None)
    tenant.account("alice")
    bob = tenant.account("bob")
    tenant.transfer("cash", "alice", 100)
    tenant.transfer("alice", "bob", 30)
    tenant.transfer("alice", "bob", 20, pending=True)
    healthy = asyncio.run(conservation.check(database_url, tenant.ledger_id))
    assert healthy["ok"] is True, healthy
    assert healthy["counts"] == {"accounts": 3, "transactions": 3, "entries": 6}

    # Money out of thin air: a credit on bob's balance row with no entry behind it.
    tamper = """UPDATE balances SET posted_credits = posted_credits + %s
                WHERE ledger_id = %s AND account_id = %s"""
    db.execute(tamper, (1, tenant.ledger_id, bob["id"]))
    try:
        broken = asyncio.run(conservation.check(database_url, tenant.ledger_id))
    finally:
        db.execute(tamper, (-1, tenant.ledger_id, bob["id"]))
    assert broken["ok"] is False
    assert broken["balances_match_entries"]["failures"] == 1
    assert broken["balances_match_entries"]["sample"] == [bob["id"]]
    assert [c["ok"] for c in broken["conservation_per_currency"]] == [False]
    assert broken["transactions_balance"]["ok"] is True
