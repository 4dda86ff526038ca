"""Results: one JSON document (everything, every run) and a Markdown summary (medians over
the runs), both written to --out; the Markdown is also printed to stdout."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.kafka import LARGE_BATCH_BYTES, RELAY_MAX_BATCH_BYTES
from bench.stats import fmt_ms
from moneta.db.database import asyncpg_dsn

# Which raw-SQL ceiling each workload is read against.
CEILING_OF = {
    "uniform": "sql_single",
    "zipf": "sql_single",
    "hot": "sql_single",
    "pending": "sql_single",
    "mixed": "sql_single",
    "batch": "sql_batch",
}
CEILING_LABELS = {
    "sql_single": "SQL ceiling: 1 transfer/statement",
    "sql_batch": "SQL ceiling: 100 transfers/statement",
    "sql_single_pgbench": "SQL ceiling: 1 transfer, pgbench",
}
DURABILITY_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
    "max_connections",
)


def hardware() -> dict[str, Any]:
    model = "unknown"
    ram_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "ram_gib": ram_gib}


async def postgres_facts(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        version = await conn.fetchval("SHOW server_version")
        rows = await conn.fetch(
            "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])",
            list(DURABILITY_SETTINGS),
        )
    finally:
        await conn.close()
    settings = {r["name"]: r["setting"] + (f" ({r['unit']})" if r["unit"] else "") for r in rows}
    return {"version": version, "settings": settings}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "-"
    return f"{numerator / denominator:.0%}"


def _errors(summary: dict[str, Any]) -> str:
    errors: dict[str, int] = summary["errors"]
    if not errors:
        return "0"
    top = sorted(errors.items(), key=lambda kv: -kv[1])[:3]
    return f"{sum(errors.values())} (" + ", ".join(f"{k}: {n}" for k, n in top) + ")"


def markdown(results: dict[str, Any]) -> str:
    workloads: dict[str, dict[str, Any]] = results["workloads"]
    ceilings: dict[str, dict[str, Any]] = results["ceilings"]
    cfg = results["config"]
    uniform = workloads.get("uniform", {}).get("transfers_per_s")
    lines = [
        f"# Moneta benchmark, {results['started_at']}",
        "",
        f"`{results['command']}`",
        "",
        f"{cfg['accounts']:,} wallets, concurrency {cfg['concurrency']}, "
        f"{cfg['duration_s']:g} s per measurement after {cfg['warmup_s']:g} s warm-up, "
        f"median of {cfg['runs']} run(s); Zipf s={cfg['zipf_s']:g}, batch size "
        f"{cfg['batch_size']}.",
        "",
        "| workload | transfers/s | requests/s | p50 ms | p95 ms | p99 ms | errors "
        "| vs SQL ceiling | vs uniform | CPU % server/pg/bench |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    rows = [(name, s, CEILING_OF.get(name)) for name, s in workloads.items()]
    rows += [(CEILING_LABELS.get(name, name), s, None) for name, s in ceilings.items()]
    for name, s, ceiling in rows:
        if s["status"] != "ok":
            lines.append(f"| {name} | {s['status']} | | | | | | | | {s.get('note', '')} |")
            continue
        target = ceilings.get(ceiling, {}).get("transfers_per_s") if ceiling else None
        vs_uniform = _ratio(s["transfers_per_s"], uniform) if name in ("zipf", "hot") else "-"
        cpu = s.get("cpu_pct", {})
        cpu_text = "/".join(
            f"{cpu[k]:.0f}" if k in cpu else "-" for k in ("server", "postgres", "bench")
        )
        lines.append(
            f"| {name} | {_rate(s['transfers_per_s'])} | {_rate(s['requests_per_s'])} "
            f"| {fmt_ms(s['p50_ms'])} | {fmt_ms(s['p95_ms'])} | {fmt_ms(s['p99_ms'])} "
            f"| {_errors(s)} | {_ratio(s['transfers_per_s'], target)} | {vs_uniform} "
            f"| {cpu_text} |"
        )
    hw = results["hardware"]
    pg = results.get("postgres") or {}
    pg_settings = ", ".join(f"{k}={v}" for k, v in (pg.get("settings") or {}).items())
    conservation = results["conservation"]
    verdict = {True: "holds", False: "BROKEN", None: "not checked"}[conservation.get("ok")]
    lines += [
        "",
        f"Hardware: {hw['nproc']} CPUs ({hw['cpu_model']}), {hw['ram_gib']} GiB RAM; "
        f"PostgreSQL {pg.get('version', 'unknown')} ({pg_settings or 'settings unknown'}).",
        f"Target: {results['target']}. Setup: {results['setup'].get('summary', '')}.",
        f"Conservation: {verdict} ({conservation.get('scope', '')}; {_counts(conservation)}).",
        "",
        "transfers = transactions created (batch items one each; a pending transfer counts "
        "once, its post is a second request). Ratios use medians. CPU is % of one core.",
    ]
    if "relay" in results:
        lines += ["", *relay_markdown(results["relay"])]
    return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _triple(m: dict[str, Any], key: str, digits: int = 0) -> str:
    return " / ".join(_num(m.get(f"{key}_{q}"), digits) for q in ("p50", "p99", "max"))


def relay_markdown(relay: dict[str, Any]) -> list[str]:
    """The "Event relay" section: `moneta relay` from outbox to Kafka (bench/relay.py)."""
    lines = ["## Event relay", ""]
    if relay["status"] == "skipped":
        return [*lines, f"skipped: {relay['reason']}"]
    m: dict[str, Any] = relay["median"]
    if relay["status"] == "failed":
        lines += [f"FAILED: {relay['reason']}", ""]
    if not m:
        return lines
    ratio, vs_raw = m.get("batch_ratio"), m.get("relay_vs_raw")
    lines += [
        f"`moneta relay` to Kafka {relay['broker']}, relay batch {relay['relay_batch_size']}, "
        f"backlog {m['backlog_events']:,.0f} events, median of {len(relay['runs'])} run(s). "
        f"Relay = {'-' if vs_raw is None else f'{vs_raw:.0%}'} of the raw Kafka producer "
        "ceiling.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| drain: events/s outbox -> Kafka (from the first acked batch) "
        f"| {_rate(m.get('drain_events_per_s'))} |",
        f"| drain incl. relay start-up: events/s (first ack after s) "
        f"| {_rate(m.get('drain_events_per_s_incl_start'))} "
        f"({_num(m.get('drain_first_ack_s'), 2)} s) |",
        f"| raw producer ceiling: messages/s ({_num(m.get('raw_message_bytes'))} B, acks=all, "
        f"idempotent, pipelined) | {_rate(m.get('raw_pipelined_per_s'))} |",
        f"| raw producer awaiting acks every {relay['relay_batch_size']} (the relay's pattern) "
        f"| {_rate(m.get('raw_stop_and_wait_per_s'))} |",
        f"| raw producer, pipelined, {LARGE_BATCH_BYTES // 1024} KiB batches instead of "
        f"{RELAY_MAX_BATCH_BYTES // 1024} KiB "
        f"| {_rate(m.get('raw_large_batches_per_s'))} |",
        f"| under batch load: events/s published / written "
        f"| {_rate(m.get('published_per_s_load'))} / {_rate(m.get('batch_relay_on_tps'))} |",
        f"| lag under batch load: events p50 / p99 / max | {_triple(m, 'lag_events')} |",
        f"| lag under batch load: oldest unpublished event's age, s p50 / p99 / max "
        f"| {_triple(m, 'lag_s', 2)} |",
        f"| the same, counted from when it was sequenced (the relay's share) "
        f"| {_triple(m, 'lag_waited_s', 2)} |",
        f"| all published after the load stopped, s | {_num(m.get('caught_up_s'), 2)} |",
        f"| batch transfers/s, relay on / off (same run) | {_rate(m.get('batch_relay_on_tps'))} "
        f"/ {_rate(m.get('batch_relay_off_tps'))} "
        f"({'-' if ratio is None else f'{ratio:.0%}'}) |",
        f"| CPU % of the relay: drain / under load | {_num(m.get('relay_cpu_pct_drain'))} "
        f"/ {_num(m.get('relay_cpu_pct_load'))} |",
        "",
        "Lag = events sequenced but not yet acknowledged by Kafka (head - cursor), sampled "
        "every 0.5 s during the recorded batch run; age = since the oldest such event's "
        "transaction began (includes the write and the sequencer). Both ratios are medians "
        "of per-run ratios.",
    ]
    return lines


def _counts(conservation: dict[str, Any]) -> str:
    counts = conservation.get("counts") or {}
    return ", ".join(f"{v:,} {k}" for k, v in counts.items()) or conservation.get("reason", "")


def write(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write moneta-bench-<stamp>.json and .md; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    json_path = out_dir / f"moneta-bench-{stamp}.json"
    md_path = out_dir / f"moneta-bench-{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
