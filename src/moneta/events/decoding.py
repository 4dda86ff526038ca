"""A reader for the parts of PostgreSQL's `pgoutput` protocol (version 1) the sequencer uses.

`pg_logical_slot_peek_binary_changes(... 'proto_version', '1', 'publication_names', ...)`
returns one message per row: Begin, Relation, Insert and Commit for our insert-only
publication. The format is documented in "Logical Replication Message Formats"
(https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field


class DecodingError(ValueError):
    """A message this reader does not understand: stop rather than guess."""


@dataclass(frozen=True)
class OutboxRow:
    ledger_id: uuid.UUID
    outbox_id: int


@dataclass(frozen=True)
class CommittedTransaction:
    end_lsn: int  # the slot may be advanced to here once the rows are stored
    rows: tuple[OutboxRow, ...]


@dataclass
class Decoder:
    """Turns a stream of messages into committed transactions, in commit order.

    Relation messages describe a table's columns before its first row in each decoding
    session; they are remembered by relation id so later calls can rely on them."""

    relations: dict[int, dict[str, int]] = field(default_factory=dict)
    _pending: list[OutboxRow] = field(default_factory=list)
    _in_transaction: bool = False

    def feed(self, message: bytes) -> CommittedTransaction | None:
        kind = message[:1]
        if kind == b"B":
            self._pending, self._in_transaction = [], True
        elif kind == b"R":
            self._relation(message)
        elif kind == b"I":
            if not self._in_transaction:
                raise DecodingError("insert outside a transaction")
            self._pending.append(self._insert(message))
        elif kind == b"C":
            # Byte1('C'), Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 timestamp.
            (end_lsn,) = struct.unpack_from("!Q", message, 10)
            committed = CommittedTransaction(end_lsn, tuple(self._pending))
            self._pending, self._in_transaction = [], False
            return committed
        elif kind in (b"Y", b"O"):
            pass  # type and origin messages carry nothing we need
        else:
            raise DecodingError(f"unexpected pgoutput message {kind!r}")
        return None

    def _relation(self, message: bytes) -> None:
        (relid,) = struct.unpack_from("!I", message, 1)
        offset = 5
        _, offset = _cstring(message, offset)  # namespace
        _, offset = _cstring(message, offset)  # relation name
        offset += 1  # replica identity setting
        (ncols,) = struct.unpack_from("!H", message, offset)
        offset += 2
        columns: dict[str, int] = {}
        for position in range(ncols):
            offset += 1  # flags
            name, offset = _cstring(message, offset)
            offset += 8  # type oid, type modifier
            columns[name] = position
        self.relations[relid] = columns

    def _insert(self, message: bytes) -> OutboxRow:
        relid, marker = struct.unpack_from("!Ic", message, 1)
        if marker != b"N":
            raise DecodingError("insert without a new tuple")
        columns = self.relations.get(relid)
        if columns is None or "ledger_id" not in columns or "id" not in columns:
            raise DecodingError(f"insert for an unknown relation {relid}")
        values = _tuple(message, 6)
        ledger_id, outbox_id = values[columns["ledger_id"]], values[columns["id"]]
        if ledger_id is None or outbox_id is None:
            raise DecodingError("outbox row without ledger_id or id")
        return OutboxRow(uuid.UUID(ledger_id), int(outbox_id))


def _cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\x00", offset)
    return data[offset:end].decode(), end + 1


def _tuple(data: bytes, offset: int) -> list[str | None]:
    (ncols,) = struct.unpack_from("!H", data, offset)
    offset += 2
    values: list[str | None] = []
    for _ in range(ncols):
        kind = data[offset : offset + 1]
        offset += 1
        if kind == b"t":
            (length,) = struct.unpack_from("!I", data, offset)
            offset += 4
            values.append(data[offset : offset + length].decode())
            offset += length
        elif kind in (b"n", b"u"):
            values.append(None)
        else:
            raise DecodingError(f"unexpected tuple column kind {kind!r}")
    return values
