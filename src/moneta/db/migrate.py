"""`moneta migrate`: bring a database to the newest schema with Alembic."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from moneta.events.slot import LogicalDecodingUnavailableError, ensure_slot

log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def sqlalchemy_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg{sep}{rest}" if scheme in ("postgres", "postgresql") else url


def upgrade(url: str, slot: str | None = None) -> None:
    command.upgrade(alembic_config(url), "head")
    # The slot right after the schema: every event from here on is decoded in commit order.
    try:
        ensure_slot(url, slot)
    except LogicalDecodingUnavailableError as exc:
        log.warning("event stream disabled: %s", exc)
