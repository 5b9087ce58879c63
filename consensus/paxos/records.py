"""Durable records of a Paxos replica: what ``out.persist`` holds and ``restore`` reads.

``PromisedRecord`` (the highest promised ballot), ``AcceptedRecord`` (values accepted at a
ballot) and ``CheckpointRecord`` (a stable checkpoint; every record about slots at or below
it may be dropped by the driver's WAL compaction) and ``IncarnationRecord`` (how many
times the replica started: its heartbeat epoch). Each has ``encode()``;
:func:`decode_record` is strict. :func:`compact_records` folds a log into the fewest records
that restore the same replica (the node's WAL compaction after a stable checkpoint). Who
calls it: the replica, the node's WAL, tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import rlp

from consensus.contract import InvalidMessage
from consensus.paxos._codec import _bytes, _list, _uint, rlp_encode
from consensus.paxos.messages import Ballot, _ballot

__all__ = [
    "AcceptedRecord",
    "CheckpointRecord",
    "IncarnationRecord",
    "PromisedRecord",
    "Record",
    "compact_records",
    "decode_record",
]


@dataclass(frozen=True, slots=True)
class PromisedRecord:
    """Durable: we promised ``ballot`` (never accept or promise below it again)."""

    ballot: Ballot
    KIND: ClassVar[int] = 101

    def encode(self) -> bytes:
        data: bytes = rlp_encode([self.KIND, list(self.ballot)])
        return data


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    """Durable: we accepted these ``(slot, value)`` at ``ballot``."""

    ballot: Ballot
    entries: tuple[tuple[int, bytes], ...]
    KIND: ClassVar[int] = 102

    def encode(self) -> bytes:
        data: bytes = rlp_encode([self.KIND, list(self.ballot), [list(e) for e in self.entries]])
        return data


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """Durable: ``seq`` is a stable checkpoint with ``root``; the log below is gone."""

    seq: int
    root: bytes
    KIND: ClassVar[int] = 103

    def encode(self) -> bytes:
        data: bytes = rlp_encode([self.KIND, self.seq, self.root])
        return data


@dataclass(frozen=True, slots=True)
class IncarnationRecord:
    """Durable: this replica started for the ``number``-th time (its heartbeat epoch), so
    peers tell its fresh heartbeats from old ones after a restart."""

    number: int
    KIND: ClassVar[int] = 104

    def encode(self) -> bytes:
        data: bytes = rlp_encode([self.KIND, self.number])
        return data


Record = PromisedRecord | AcceptedRecord | CheckpointRecord | IncarnationRecord


def decode_record(data: bytes) -> Record:
    """Decode a durable record written from ``out.persist`` (``record.encode()``).

    Raises:
        InvalidMessage: the bytes are not a canonical record.
    """
    try:
        items = _list(rlp.decode(bytes(data), strict=True))
    except (rlp.exceptions.RLPException, RecursionError) as e:
        raise InvalidMessage(f"bad record: {e}") from e
    if not items:
        raise InvalidMessage("empty record")
    kind = _uint(items[0])
    record: Record
    if kind == PromisedRecord.KIND and len(items) == 2:
        record = PromisedRecord(_ballot(items[1]))
    elif kind == AcceptedRecord.KIND and len(items) == 3:
        entries = tuple((_uint(s), _bytes(v)) for s, v in (_list(e, 2) for e in _list(items[2])))
        record = AcceptedRecord(_ballot(items[1]), entries)
    elif kind == CheckpointRecord.KIND and len(items) == 3:
        record = CheckpointRecord(_uint(items[1]), _bytes(items[2]))
    elif kind == IncarnationRecord.KIND and len(items) == 2:
        record = IncarnationRecord(_uint(items[1]))
    else:
        raise InvalidMessage(f"unknown record kind {kind}")
    if record.encode() != bytes(data):
        raise InvalidMessage("non-canonical record")
    return record


def compact_records(records: Sequence[Record]) -> list[Record]:
    """The fewest records from which ``restore`` rebuilds the same acceptor as from ``records``.

    Keeps the newest checkpoint, one promise (the highest ballot promised or accepted at),
    the highest incarnation, and for each slot above the checkpoint only the value accepted
    at the highest ballot (the one ``restore`` would keep), grouped by ballot. Without a
    checkpoint nothing is dropped: the log is returned unchanged.
    """
    checkpoints = [r for r in records if isinstance(r, CheckpointRecord)]
    if not checkpoints:
        return list(records)
    low = max(checkpoints, key=lambda r: r.seq)
    promised: Ballot | None = None
    incarnation: int | None = None
    accepted: dict[int, tuple[Ballot, bytes]] = {}
    for r in records:
        if isinstance(r, PromisedRecord | AcceptedRecord):
            promised = r.ballot if promised is None else max(promised, r.ballot)
        if isinstance(r, AcceptedRecord):
            for slot, value in r.entries:
                old = accepted.get(slot)
                if slot > low.seq and (old is None or old[0] <= r.ballot):
                    accepted[slot] = (r.ballot, value)
        elif isinstance(r, IncarnationRecord):
            incarnation = r.number if incarnation is None else max(incarnation, r.number)
    out: list[Record] = [low]
    if incarnation is not None:
        out.append(IncarnationRecord(incarnation))
    if promised is not None:
        out.append(PromisedRecord(promised))
    by_ballot: dict[Ballot, list[tuple[int, bytes]]] = {}
    for slot in sorted(accepted):
        ballot, value = accepted[slot]
        by_ballot.setdefault(ballot, []).append((slot, value))
    out.extend(AcceptedRecord(b, tuple(entries)) for b, entries in sorted(by_ballot.items()))
    return out
