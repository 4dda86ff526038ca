"""What one timed measurement records, how runs are summarised (medians), the progress
bar on stderr and CPU accounting of the processes under test."""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

# Error outcomes that are part of normal business (only if balances run out).
EXPECTED_ERRORS = frozenset({"insufficient_funds"})


@dataclass
class Measurement:
    """One workload (or ceiling) run for a fixed time at a fixed concurrency."""

    name: str
    run: int
    status: str = "ok"  # "ok", or "unavailable" when the server lacks the endpoint
    duration_s: float = 0.0
    requests: int = 0
    transfers: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def record(self, latency_ms: float, transfers: int, error: str | None = None) -> None:
        self.requests += 1
        self.transfers += transfers
        self.latencies_ms.append(latency_ms)
        if error is not None:
            self.errors[error] += 1

    def summary(self) -> dict[str, Any]:
        elapsed = self.duration_s or math.nan
        return {
            "name": self.name,
            "run": self.run,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "transfers": self.transfers,
            "transfers_per_s": self.transfers / elapsed if self.duration_s else 0.0,
            "requests_per_s": self.requests / elapsed if self.duration_s else 0.0,
            "p50_ms": percentile(self.latencies_ms, 0.50),
            "p95_ms": percentile(self.latencies_ms, 0.95),
            "p99_ms": percentile(self.latencies_ms, 0.99),
            "errors": dict(self.errors),
            "cpu_pct": self.cpu_pct,
            "note": self.note,
        }


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def error_code(error: str) -> str:
    """'422 insufficient_funds' or 'item 422 insufficient_funds' -> 'insufficient_funds'."""
    return error.rsplit(" ", 1)[-1]


def unexpected_errors(errors: dict[str, int]) -> int:
    return sum(n for key, n in errors.items() if error_code(key) not in EXPECTED_ERRORS)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs of one measurement; errors are added up."""
    ok = [r for r in runs if r["status"] == "ok"]
    errors: Counter[str] = Counter()
    for r in runs:
        errors.update(r["errors"])
    combined: dict[str, Any] = {
        "name": runs[0]["name"],
        "status": "ok" if ok else runs[0]["status"],
        "runs": len(ok),
        "errors": dict(errors),
        "unexpected_errors": unexpected_errors(dict(errors)),
        "note": next((r["note"] for r in runs if r["note"]), ""),
    }
    for key in ("transfers_per_s", "requests_per_s", "p50_ms", "p95_ms", "p99_ms"):
        values = [r[key] for r in ok if r[key] is not None]
        combined[key] = statistics.median(values) if values else None
    cpu_keys = sorted({k for r in ok for k in r["cpu_pct"]})
    combined["cpu_pct"] = {
        k: statistics.median([r["cpu_pct"][k] for r in ok if k in r["cpu_pct"]]) for k in cpu_keys
    }
    return combined


class CpuMeter:
    """CPU used by the server, PostgreSQL (postmaster and backends) and this process, as a
    percentage of one core over a measurement. Unknown pids are simply left out."""

    def __init__(self, server_pid: int | None, postgres_pid: int | None) -> None:
        self.server_pid = server_pid
        self.postgres_pid = postgres_pid
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sample = {"bench": usage.ru_utime + usage.ru_stime}
        for label, pid in (("server", self.server_pid), ("postgres", self.postgres_pid)):
            if pid is not None:
                sample[label] = _tree_cpu_s(pid)
        return sample

    def start(self) -> None:
        self._start = self._sample()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        wall = max(time.monotonic() - self._t0, 1e-9)
        return {k: round(100 * (end[k] - self._start.get(k, 0.0)) / wall, 1) for k in end}


def _tree_cpu_s(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class Progress:
    """A one-line bar on stderr: redrawn with \\r on a terminal, one line per phase otherwise."""

    WIDTH = 24

    def __init__(self, label: str, duration_s: float) -> None:
        self.label = label
        self.duration_s = duration_s
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty() and not os.environ.get("CI")

    def update(self, transfers: int, requests: int, errors: int) -> None:
        if not self.tty:
            return
        elapsed = time.monotonic() - self.t0
        done = min(1.0, elapsed / self.duration_s) if self.duration_s else 1.0
        filled = int(done * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        rate = transfers / elapsed if elapsed > 0 else 0.0
        req_rate = requests / elapsed if elapsed > 0 else 0.0
        remaining = max(0.0, self.duration_s - elapsed)
        sys.stderr.write(
            f"\r{self.label:<22} [{bar}] {elapsed:5.1f}s, {remaining:4.1f}s left "
            f"{rate:8.0f} tr/s {req_rate:7.0f} req/s err {errors:<5}"
        )
        sys.stderr.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        line = (
            f"{self.label:<22} {summary['status']:<11} {summary['transfers_per_s']:8.0f} tr/s "
            f"{summary['requests_per_s']:7.0f} req/s p99 {fmt_ms(summary['p99_ms'])} ms "
            f"errors {sum(summary['errors'].values())}"
        )
        sys.stderr.write(("\r" + line + " " * 12 + "\n") if self.tty else line + "\n")
        sys.stderr.flush()


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
