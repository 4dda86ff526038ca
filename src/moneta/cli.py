"""The `moneta` command: serve, dev, worker, relay, webhooks, migrate, keys."""

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
import typer
import uvicorn

from moneta.auth.schemas import RateLimit, Scope
from moneta.auth.service import create_key
from moneta.config import Settings
from moneta.db import migrate as migrations
from moneta.db.database import Database, asyncpg_dsn
from moneta.db.runtime import DatabaseHandle, open_database

cli = typer.Typer(help="Moneta: a double-entry ledger and payments backend.", no_args_is_help=True)
keys = typer.Typer(help="API keys.", no_args_is_help=True)
cli.add_typer(keys, name="keys")

Host = Annotated[str | None, typer.Option(help="bind address (MONETA_HOST)")]
Port = Annotated[int | None, typer.Option(help="port (MONETA_PORT)")]
Workers = Annotated[int | None, typer.Option(help="API processes (MONETA_WORKERS)")]


def _settings(
    host: str | None = None, port: int | None = None, workers: int | None = None
) -> Settings:
    settings = Settings()
    given = {"host": host, "port": port, "workers": workers}
    return settings.model_copy(update={k: v for k, v in given.items() if v is not None})


def _logging(settings: Settings) -> None:
    from moneta.app import configure_process

    configure_process(settings)


def _serve(settings: Settings, handle: DatabaseHandle | None) -> None:
    from moneta.app import create_app

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,
        # Our handler formats every record (JSON or text); uvicorn must not install its own.
        "log_config": None,
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers == 1:
        uvicorn.run(create_app(settings, handle), **options)
        return
    # Several processes: this parent owns the database (embedded or not) and hands its URL
    # to the workers, which only connect.
    handle = handle or open_database(settings)
    os.environ["MONETA_DATABASE_URL"] = handle.url
    try:
        uvicorn.run("moneta.app:app_from_env", factory=True, workers=settings.workers, **options)
    finally:
        handle.close()


async def _issue_key(
    url: str,
    settings: Settings,
    scope: Scope,
    ledger: uuid.UUID | None,
    name: str,
    limit: RateLimit | None = None,
) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(f'SET ROLE "{settings.database_app_role}"')
        created = await create_key(conn, scope, ledger, name, limit)
    finally:
        await conn.close()
    return created.key


@cli.command()
def serve(host: Host = None, port: Port = None, workers: Workers = None) -> None:
    """Run the API (REST /v1, /healthz, /readyz, /docs)."""
    settings = _settings(host, port, workers)
    _logging(settings)
    _serve(settings, None)


def _dev_webhook_defaults(settings: Settings) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if "MONETA_WEBHOOK_ALLOWED_NETWORKS" not in os.environ:
        defaults["webhook_allowed_networks"] = "127.0.0.0/8,::1/128"
    if "MONETA_WEBHOOK_ALLOW_HTTP" not in os.environ:
        defaults["webhook_allow_http"] = True
    return defaults


@cli.command()
def dev(host: Host = None, port: Port = None) -> None:
    """Everything in one process on embedded defaults; prints the URL and a new admin key."""
    # Everything in one process: webhooks, and the relay too if MONETA_EVENTS_SINK is set.
    settings = _settings(host, port)
    settings = settings.model_copy(
        update={
            "inprocess_webhooks": True,
            "inprocess_relay": True,
            # A terminal reads text; MONETA_LOG_FORMAT still wins.
            "log_format": settings.log_format if "MONETA_LOG_FORMAT" in os.environ else "text",
            # Local development: webhooks may go to a receiver on this machine over http.
            **_dev_webhook_defaults(settings),
        }
    )
    _logging(settings)
    handle = open_database(settings)
    try:
        key = asyncio.run(_issue_key(handle.url, settings, Scope.admin, None, "dev"))
    except BaseException:
        handle.close()
        raise
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(
        f"\n  Moneta is starting at {url}  (docs: {url}/docs)\n"
        f"  Admin API key (shown once): {key}\n\n"
        f'  curl -H "Authorization: Bearer {key}" {url}/v1/ledgers\n'
    )
    _serve(settings, handle)


def _daemon(
    name: str, settings: Settings, jobs: Callable[[Database, str], list[Awaitable[None]]]
) -> None:
    """Run long-lived jobs until SIGTERM or Ctrl-C, then close the pool and (if this
    process started it) the embedded database."""
    from moneta.observability.tracing import configure_tracing

    _logging(settings)
    tracer = configure_tracing(name)
    handle = open_database(settings)

    async def main() -> None:
        db = await Database.connect(handle.url, settings)
        try:
            running = asyncio.gather(*jobs(db, handle.url))
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, running.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await running
        finally:
            await db.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if tracer is not None:
            tracer.shutdown()
        handle.close()


@cli.command()
def worker() -> None:
    """Run the scheduled jobs (expiry, folding, key pruning) and the event sequencer."""
    from moneta import worker as jobs

    _daemon("worker", _settings(), lambda db, url: [jobs.run_with_sequencer(db, url, _settings())])


@cli.command()
def relay(
    sink: Annotated[
        str | None, typer.Option(help="kafka, rabbitmq or sqs (MONETA_EVENTS_SINK)")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on this port")
    ] = None,
) -> None:
    """Publish every event to Kafka, RabbitMQ or SQS: in order per ledger, at least once."""
    from moneta.events.metrics import serve_relay_metrics
    from moneta.events.relay import Relay
    from moneta.events.sequencer import Sequencer
    from moneta.events.sinks import make_sink

    settings = _settings()
    if sink is not None:
        settings = settings.model_copy(update={"events_sink": sink})
    try:
        chosen = make_sink(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    def jobs(db: Database, url: str) -> list[Awaitable[None]]:
        publisher = Relay(db, url, settings, chosen)
        if metrics_port is not None:
            serve_relay_metrics(publisher, metrics_port)
        return [
            publisher.run_forever(),
            publisher.watch_lag(),
            Sequencer(url, settings).run_forever(),
        ]

    _daemon("relay", settings, jobs)


@cli.command()
def webhooks(
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus metrics on this port")
    ] = None,
) -> None:
    """Deliver events to tenants' webhook endpoints: signed, retried, dead-lettered."""
    from moneta.events.sequencer import Sequencer
    from moneta.observability.metrics import serve_metrics
    from moneta.webhooks.dispatcher import Dispatcher
    from moneta.webhooks.metrics import registry_for

    settings = _settings()

    def jobs(db: Database, url: str) -> list[Awaitable[None]]:
        dispatcher = Dispatcher(db, settings)
        if metrics_port is not None:
            serve_metrics(registry_for(dispatcher), metrics_port)
        return [dispatcher.run_forever(), Sequencer(url, settings).run_forever()]

    _daemon("webhooks", settings, jobs)


@cli.command()
def migrate() -> None:
    """Bring the database to the newest schema (embedded server or MONETA_DATABASE_URL)."""
    settings = _settings()
    handle = open_database(settings, migrate_embedded=False)
    try:
        migrations.upgrade(handle.url, settings.events_slot)
    finally:
        handle.close()
    typer.echo("database is at the newest schema")


@keys.command("create")
def keys_create(
    scope: Annotated[Scope, typer.Option(help="read, write or admin")],
    ledger: Annotated[str | None, typer.Option(help="bind the key to one ledger (tenant)")] = None,
    name: Annotated[str, typer.Option(help="a label for operators")] = "",
    rate_limit: Annotated[
        float | None, typer.Option(help="requests per second for this key (default: service's)")
    ] = None,
    burst: Annotated[int | None, typer.Option(help="with --rate-limit: requests at once")] = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    ledger_id = None
    if ledger is not None:
        try:
            ledger_id = uuid.UUID(ledger)
        except ValueError:
            raise typer.BadParameter("--ledger must be a ledger id") from None
    limit = None
    if rate_limit is not None:
        try:
            limit = RateLimit(per_second=rate_limit, burst=burst or max(1, int(rate_limit * 2)))
        except ValueError as exc:
            raise typer.BadParameter(f"--rate-limit/--burst: {exc}") from None
    settings = _settings()
    handle = open_database(settings)
    try:
        key = asyncio.run(_issue_key(handle.url, settings, scope, ledger_id, name, limit))
    finally:
        handle.close()
    typer.echo(key)


def main() -> None:
    cli()
