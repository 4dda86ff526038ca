"""`python -m bench`: set up a funded ledger, run the workloads and the raw-SQL ceiling,
check conservation, write the report.

By default it hosts its own Moneta (fresh durable embedded PostgreSQL, `moneta migrate`,
`moneta serve`) and tears it down afterwards; with --url/--key it loads a running Moneta
(add --database-url for the SQL shortcuts, the ceiling and the conservation check).
With --relay (self-hosted only) it also measures `moneta relay` publishing to Kafka
(bench/relay.py), on a broker it starts with scripts/services/kafka.sh if none runs.
Exit status: 0 done, 1 conservation broken, 2 the harness itself failed (or the relay
measurement did; the report is written all the same).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop

from bench import conservation, kafka, report
from bench.ceiling import Ceiling
from bench.client import Client
from bench.host import SelfHosted
from bench.load import WORKLOADS, Load, LoadConfig
from bench.relay import RelayBench, RelayConfig, new_topic_prefix, relay_batch_size
from bench.setup import create_ledger
from bench.stats import CpuMeter, combine, unexpected_errors

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _workloads(text: str) -> list[str]:
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(WORKLOADS)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    target = p.add_argument_group("target (default: self-hosted)")
    target.add_argument("--url", help="a running Moneta, e.g. http://127.0.0.1:8000")
    target.add_argument("--key", help="an admin API key bound to no ledger (with --url)")
    target.add_argument(
        "--database-url",
        default=os.environ.get("MONETA_DATABASE_URL"),
        help="its PostgreSQL, for bulk setup, the ceiling and the conservation check "
        "(with --url; default $MONETA_DATABASE_URL)",
    )
    target.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="self-hosted: API processes (MONETA_WORKERS; default 1)",
    )
    p.add_argument("--accounts", type=int, default=100_000, help="wallets (default 100000)")
    p.add_argument(
        "--funded",
        type=int,
        default=None,
        help="fund only the first N wallets; transfers debit those and credit any wallet "
        "(for 10M-account runs, where funding every wallet would dominate; default: all)",
    )
    p.add_argument("--duration-s", type=float, default=30.0, help="per measurement (30)")
    p.add_argument("--warmup-s", type=float, default=2.0, help="unrecorded lead-in (2)")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop workers (32)")
    p.add_argument("--zipf-s", type=float, default=1.1, help="Zipf exponent (1.1)")
    p.add_argument(
        "--workloads",
        type=_workloads,
        default=list(WORKLOADS),
        help=f"comma list from {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument("--batch-size", type=int, default=100, help="transfers per batch (100)")
    p.add_argument("--seed", type=int, default=42, help="random seed (42)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    p.add_argument("--runs", type=int, default=3, help="repeat each measurement; medians (3)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the raw-SQL ceiling")
    p.add_argument("--no-pgbench", action="store_true", help="skip the pgbench ceiling")
    relay = p.add_argument_group("event relay (self-hosted only)")
    relay.add_argument(
        "--relay",
        action="store_true",
        help="also measure `moneta relay` to Kafka: drain rate, lag under the batch workload, "
        "raw producer ceiling (starts scripts/services/kafka.sh unless "
        "$MONETA_KAFKA_BOOTSTRAP_SERVERS is set)",
    )
    relay.add_argument(
        "--relay-backlog", type=int, default=50_000, help="events per drain measurement (50000)"
    )
    args = p.parse_args(argv)
    if args.funded is not None and args.funded < args.accounts:
        # The raw-SQL ceilings pick any wallet as the payer: with unfunded wallets they would
        # measure refusals. Compare such runs with a --funded run of the smaller size.
        args.no_ceiling = True
    if bool(args.url) != bool(args.key):
        p.error("--url and --key go together")
    if args.accounts < 2 or args.runs < 1 or args.concurrency < 1 or args.batch_size < 1:
        p.error("--accounts >= 2, --runs >= 1, --concurrency >= 1, --batch-size >= 1")
    if args.relay and args.url:
        # The relay measurement moves the relay's cursor past existing events: harmless on
        # the throwaway stack, it would make a real deployment's relay skip them.
        p.error("--relay measures a self-hosted stack only (not with --url)")
    if args.relay_backlog < 1:
        p.error("--relay-backlog >= 1")
    if not args.url:
        args.database_url = None  # set by the self-hosted stack
    return args


def _config(args: argparse.Namespace) -> dict[str, Any]:
    keys = ["accounts", "duration_s", "warmup_s", "concurrency", "zipf_s", "batch_size"]
    keys.append("server_workers")
    return {
        **{k: getattr(args, k) for k in keys},
        "workloads": args.workloads,
        "seed": args.seed,
        "runs": args.runs,
        "relay": args.relay,
        "relay_backlog": args.relay_backlog if args.relay else None,
    }


def _batch_of(runs: list[dict[str, Any]], run: int) -> dict[str, Any] | None:
    """This run's batch workload (relay off), the baseline of batch with the relay on."""
    found = [s for s in runs if s["name"] == "batch" and s["run"] == run and s["status"] == "ok"]
    return found[0] if found else None


async def measure(
    args: argparse.Namespace,
    url: str,
    admin_key: str,
    database_url: str | None,
    host: SelfHosted | None,
    broker: kafka.Broker | None = None,
) -> dict[str, Any]:
    ledger = await create_ledger(url, admin_key, args.accounts, database_url, args.funded)
    sys.stderr.write(
        f"setup: {len(ledger.wallets):,} wallets ({ledger.accounts_via}), funded via "
        f"{ledger.funding_via} in {ledger.setup_s:.1f} s\n"
    )
    cpu = CpuMeter(host.server_pid if host else None, host.postgres_pid if host else None)
    cfg = LoadConfig(
        args.duration_s, args.warmup_s, args.concurrency, args.zipf_s, args.batch_size, args.seed
    )
    ceiling = None
    if database_url and not args.no_ceiling:
        ceiling = Ceiling(
            database_url, ledger, args.concurrency, args.duration_s, args.warmup_s, args.seed, cpu
        )
    runs: list[dict[str, Any]] = []
    args.out.mkdir(parents=True, exist_ok=True)
    relay_results: dict[str, Any] | None = None
    async with (
        Client(url, ledger.key, args.concurrency) as api,
        contextlib.AsyncExitStack() as stack,
    ):
        load = Load(api, ledger, cfg, cpu)
        relay = None
        if broker is not None and host is not None and database_url:
            relay_cfg = RelayConfig(
                broker.bootstrap,
                broker.origin,
                args.relay_backlog,
                new_topic_prefix(),
                relay_batch_size(),
            )
            relay = await stack.enter_async_context(
                RelayBench(relay_cfg, host, database_url, ledger, api, load)
            )
        for run in range(1, args.runs + 1):
            of = f"{run}/{args.runs}"
            for workload in args.workloads:
                runs.append((await load.measure(workload, run, f"{workload} {of}")).summary())
            if ceiling is not None:
                for kind in ("single", "batch"):
                    m = await ceiling.measure(kind, run, f"sql_{kind} {of}")
                    runs.append(m.summary())
                if not args.no_pgbench:
                    m = await ceiling.pgbench(run, f"pgbench {of}")
                    runs.append(m.summary())
            if relay is not None:
                await relay.run(run, of, _batch_of(runs, run))
        # Closing the stack deletes the run's topics; read the results after that.
        await stack.aclose()
        relay_results = relay.results() if relay is not None else None
    by_name: dict[str, list[dict[str, Any]]] = {}
    for summary in runs:
        by_name.setdefault(summary["name"], []).append(summary)
    combined = {name: combine(group) for name, group in by_name.items()}
    if database_url:
        sys.stderr.write("checking conservation...\n")
        checked = await conservation.check(database_url, None if host else ledger.ledger_id)
        pg = await report.postgres_facts(database_url)
    else:
        checked = {"ok": None, "reason": "no --database-url"}
        pg = None
    return {
        "setup": {
            "ledger_id": ledger.ledger_id,
            "wallets": len(ledger.wallets),
            "accounts_via": ledger.accounts_via,
            "funding_via": ledger.funding_via,
            "batch_endpoint": ledger.batch_available,
            "setup_s": round(ledger.setup_s, 2),
            "summary": f"{len(ledger.wallets):,} wallets via {ledger.accounts_via}, funded "
            f"via {ledger.funding_via} in {ledger.setup_s:.1f} s",
        },
        "workloads": {w: combined[w] for w in args.workloads if w in combined},
        "ceilings": {k: v for k, v in combined.items() if k.startswith("sql_")},
        "runs": runs,
        "conservation": checked,
        "postgres": pg,
        **({"relay": relay_results} if relay_results is not None else {}),
    }


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    host: SelfHosted | None = None
    broker: kafka.Broker | None = None
    relay_skipped = None
    try:
        if args.relay:
            sys.stderr.write("starting Kafka for the relay measurement...\n")
            try:
                broker = kafka.start_broker()
            except kafka.KafkaUnavailableError as exc:
                relay_skipped = {"status": "skipped", "reason": str(exc)}
                sys.stderr.write(f"relay measurement skipped: {exc}\n")
        if args.url:
            url, key, database_url = args.url, args.key, args.database_url
            target = f"{url} (given)"
        else:
            sys.stderr.write("starting a durable embedded PostgreSQL and moneta serve...\n")
            host = SelfHosted(workers=args.server_workers)
            host.start()
            url, key, database_url = host.url, host.admin_key, host.database_url
            target = (
                "self-hosted: fresh embedded PostgreSQL (durable defaults) + moneta serve "
                f"({args.server_workers} process(es))"
            )
        results = uvloop.run(measure(args, url, key, database_url, host, broker))
    except Exception:
        traceback.print_exc()
        if host is not None:
            sys.stderr.write(f"server log tail:\n{host.server_log_tail()}\n")
        return 2
    finally:
        if host is not None:
            host.close()
        if broker is not None and (warning := kafka.stop_broker(broker)):
            sys.stderr.write(f"warning: {warning}\n")
    if relay_skipped is not None:
        results["relay"] = relay_skipped
    results = {
        "started_at": started,
        "command": "python -m bench " + shlex.join(argv),
        "target": target,
        "hardware": report.hardware(),
        "config": _config(args),
        **results,
    }
    results["unexpected_errors"] = sum(
        unexpected_errors(s["errors"]) for s in results["workloads"].values()
    ) + results.get("relay", {}).get("unexpected_errors", 0)
    json_path, md_path = report.write(results, args.out)
    sys.stdout.write(report.markdown(results))
    sys.stdout.write(f"\nwrote {json_path} and {md_path}\n")
    sys.stdout.flush()
    if results["conservation"].get("ok") is False:
        return 1
    # A relay measurement that was asked for and broke is a harness failure (the report,
    # with the reason, is written all the same).
    return 2 if results.get("relay", {}).get("status") == "failed" else 0
