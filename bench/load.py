"""Closed-loop load: `concurrency` workers, each sending its next request as soon as the
previous one is answered, for a fixed time. Requests that start during the warm-up are
not recorded.

Workloads (every transfer moves 1-100 minor units between two different wallets):
- uniform: POST /v1/transactions, both wallets chosen uniformly;
- zipf:    the same with Zipf-skewed choice (exponent --zipf-s): a few hot wallets;
- hot:     two postings per transaction, wallet -> wallet and a fee of 1 wallet -> `fees`,
           so one account is touched by every transfer;
- pending: create a pending transaction, then post it (two requests, one transfer);
- batch:   POST /v1/transactions/batch with --batch-size transfers, atomic=false;
- reads:   GET /v1/accounts/{id} (no transfers: compare requests/s);
- mixed:   70% transfer, 10% pending+post, 10% batch of 10, 10% reads.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import random
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.client import Client, problem_code
from bench.setup import BATCH_PATH, BenchLedger
from bench.stats import CpuMeter, Measurement, Progress

WORKLOADS = ("uniform", "zipf", "hot", "pending", "batch", "reads", "mixed")
MIXED_BATCH_SIZE = 10
MAX_AMOUNT = 100


@dataclass
class LoadConfig:
    duration_s: float
    warmup_s: float
    concurrency: int
    zipf_s: float
    batch_size: int
    seed: int


class Picker:
    """Chooses wallets: uniformly, or Zipf-skewed (rank r has weight 1/r**s; ranks are
    shuffled onto wallets with the seed, so the hottest wallet is not the oldest)."""

    def __init__(
        self, wallets: list[str], zipf_s: float | None, seed: int, funded: int | None = None
    ) -> None:
        self.wallets = wallets
        # With only some wallets funded, debits come from those (uniformly), credits from any.
        self.payers = wallets[:funded] if funded is not None and funded < len(wallets) else None
        self.cumulative: list[float] = []
        if zipf_s is not None:
            order = list(range(len(wallets)))
            random.Random(seed).shuffle(order)
            self.wallets = [wallets[i] for i in order]
            self.cumulative = list(
                itertools.accumulate(1.0 / (rank**zipf_s) for rank in range(1, len(wallets) + 1))
            )

    def one(self, rng: random.Random) -> str:
        if not self.cumulative:
            return self.wallets[rng.randrange(len(self.wallets))]
        point = rng.random() * self.cumulative[-1]
        index = min(bisect.bisect_left(self.cumulative, point), len(self.wallets) - 1)
        return self.wallets[index]

    def pair(self, rng: random.Random) -> tuple[str, str]:
        debit = self.payers[rng.randrange(len(self.payers))] if self.payers else self.one(rng)
        credit = self.one(rng)
        while credit == debit:
            credit = self.one(rng)
        return debit, credit


class Load:
    """Runs one workload for one measurement against a funded ledger."""

    def __init__(self, api: Client, ledger: BenchLedger, cfg: LoadConfig, cpu: CpuMeter) -> None:
        self.api = api
        self.ledger = ledger
        self.cfg = cfg
        self.cpu = cpu
        self.uniform = Picker(ledger.wallets, None, cfg.seed, ledger.funded)
        self.zipf = Picker(ledger.wallets, cfg.zipf_s, cfg.seed, ledger.funded)
        self.recording = False
        self.stopping = False
        self.m = Measurement("", 0)

    # -- one request -------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, body: Any, ok: int, transfers: int = 1
    ) -> bytes | None:
        """Send, time and record one request; the body on `ok`, else None."""
        recording = self.recording
        t0 = time.perf_counter()
        try:
            status, raw = await self.api.send(method, path, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if recording:
                self.m.record((time.perf_counter() - t0) * 1000, 0, type(exc).__name__)
            await asyncio.sleep(0.05)
            return None
        latency_ms = (time.perf_counter() - t0) * 1000
        if path == BATCH_PATH and status in (404, 405):
            self.m.status = "unavailable"
            self.m.note = f"POST {BATCH_PATH} answered {status}"
            self.stopping = True
            return None
        if recording:
            error = None if status == ok else f"{status} {problem_code(raw)}"
            self.m.record(latency_ms, transfers if status == ok else 0, error)
        return raw if status == ok else None

    # -- operations --------------------------------------------------------------------

    def _posting(self, rng: random.Random, picker: Picker) -> dict[str, Any]:
        debit, credit = picker.pair(rng)
        return {"debit": debit, "credit": credit, "amount": rng.randint(1, MAX_AMOUNT)}

    async def transfer(self, rng: random.Random, picker: Picker) -> None:
        body = {"ledger_id": self.ledger.ledger_id, "postings": [self._posting(rng, picker)]}
        await self._send("POST", "/v1/transactions", body, 201)

    async def hot(self, rng: random.Random) -> None:
        posting = self._posting(rng, self.uniform)
        fee = {"debit": posting["debit"], "credit": self.ledger.fees, "amount": 1}
        body = {"ledger_id": self.ledger.ledger_id, "postings": [posting, fee]}
        await self._send("POST", "/v1/transactions", body, 201)

    async def pending(self, rng: random.Random) -> None:
        body = {
            "ledger_id": self.ledger.ledger_id,
            "pending": True,
            "postings": [self._posting(rng, self.uniform)],
        }
        raw = await self._send("POST", "/v1/transactions", body, 201)
        if raw is not None:
            tx_id = json.loads(raw)["id"]
            await self._send("POST", f"/v1/transactions/{tx_id}/post", None, 200, transfers=0)

    async def batch(self, rng: random.Random, size: int) -> None:
        items = [{"postings": [self._posting(rng, self.uniform)]} for _ in range(size)]
        body = {"ledger_id": self.ledger.ledger_id, "atomic": False, "transactions": items}
        recording = self.recording
        raw = await self._send("POST", BATCH_PATH, body, 200, transfers=0)
        if raw is None or not recording:
            return
        for result in json.loads(raw).get("results", []):
            status = int(result.get("status", 0))
            if status == 201:
                self.m.transfers += 1
            else:
                code = (result.get("error") or {}).get("code", "?")
                self.m.errors[f"item {status} {code}"] += 1

    async def read(self, rng: random.Random) -> None:
        await self._send("GET", f"/v1/accounts/{self.uniform.one(rng)}", None, 200, transfers=0)

    async def mixed(self, rng: random.Random) -> None:
        r = rng.random()
        if r < 0.7:
            await self.transfer(rng, self.uniform)
        elif r < 0.8:
            await self.pending(rng)
        elif r < 0.9:
            if self.ledger.batch_available:
                await self.batch(rng, MIXED_BATCH_SIZE)
            else:
                await self.transfer(rng, self.uniform)
        else:
            await self.read(rng)

    def operation(self, workload: str) -> Callable[[random.Random], Awaitable[None]]:
        ops: dict[str, Callable[[random.Random], Awaitable[None]]] = {
            "uniform": lambda rng: self.transfer(rng, self.uniform),
            "zipf": lambda rng: self.transfer(rng, self.zipf),
            "hot": self.hot,
            "pending": self.pending,
            "batch": lambda rng: self.batch(rng, self.cfg.batch_size),
            "reads": self.read,
            "mixed": self.mixed,
        }
        return ops[workload]

    # -- one measurement ---------------------------------------------------------------

    async def measure(self, workload: str, run: int, label: str) -> Measurement:
        self.m = Measurement(workload, run)
        if workload == "mixed" and not self.ledger.batch_available:
            self.m.note = "no batch endpoint: its 10% ran as single transfers"
        if workload == "batch" and not self.ledger.batch_available:
            self.m.status = "unavailable"
            self.m.note = f"the server has no POST {BATCH_PATH}"
            return self.m
        self.recording = False
        self.stopping = False
        op = self.operation(workload)
        salt = zlib.crc32(workload.encode())

        async def worker(index: int) -> None:
            rng = random.Random(f"{self.cfg.seed}:{salt}:{run}:{index}")
            while not self.stopping:
                await op(rng)

        workers = [asyncio.create_task(worker(i)) for i in range(self.cfg.concurrency)]
        try:
            await self._wait_or_stop(self.cfg.warmup_s, workers)
            self.recording = True
            self.cpu.start()
            started = time.monotonic()
            progress = Progress(label, self.cfg.duration_s)
            deadline = started + self.cfg.duration_s
            while time.monotonic() < deadline and not self.stopping:
                progress.update(self.m.transfers, self.m.requests, sum(self.m.errors.values()))
                await self._wait_or_stop(min(0.25, deadline - time.monotonic()), workers)
            self.stopping = True
            await asyncio.gather(*workers)
            self.m.duration_s = time.monotonic() - started
            self.m.cpu_pct = self.cpu.stop()
        finally:
            self.stopping = True
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        progress.finish(self.m.summary())
        return self.m

    async def _wait_or_stop(self, seconds: float, workers: list[asyncio.Task[None]]) -> None:
        """Sleep, but surface a crashed worker at once."""
        if seconds > 0:
            await asyncio.wait(workers, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
        for task in workers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"load worker failed: {task.exception()!r}")
