"""Records and errors shared by :mod:`chain.ledger` and :mod:`chain.checkpoint`.

The ledger's own small records use fixed-width binary layouts (one encoding per value, so
they are canonical by construction) and are checked for length on every read:

* head pointer: ``height(8) || block_hash(32) || state_root(32) || timestamp(8)``;
* transaction location: ``height(8) || index(4)``;
* floor (lowest stored block height): ``height(8)``;
* checkpoint pre-image of a state key: ``0x00`` (the key was absent at the checkpoint) or
  ``0x01 || value``.

A checkpoint record is an RLP :class:`Checkpoint` because it is also what a snapshot
carries and what a peer may sign (:attr:`Checkpoint.digest`).

:class:`OverlayView` is a read-only :class:`~chain.db.base.KeyValueDB` view of "the db with
these writes applied": the ledger computes the full state root of a checkpoint block *before*
writing its batch, so the checkpoint record goes into that same atomic batch.
:class:`EntriesView` is the same kind of view over a snapshot's sorted entries, so a snapshot
is verified with exactly the function (:func:`chain.state.full_state_root`) that made its root.

Not a public module: import the names from :mod:`chain.ledger` / :mod:`chain.checkpoint`.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

import rlp

from chain.db import schema
from chain.db.base import BatchContext
from chain.encoding import (
    decode,
    decode_uint,
    encode,
    encode_list,
    hash32,
    split_list,
    string_items,
    uint64,
)
from chain.errors import ChainError, DecodeError
from chain.receipt import REASON_BYTES_MAX, RETURN_DATA_BYTES_MAX, Receipt, decode_receipt

CHECKPOINT_DOMAIN = b"phalanx/checkpoint/v1"


class LedgerError(ChainError):
    """Base of the errors the ledger, checkpoints and snapshots raise on purpose."""


class InvalidBlock(LedgerError):
    """Raised by ``commit_block`` when a block does not extend the head; nothing is written."""


class GenesisMismatch(LedgerError):
    """Raised when a database was created from a different genesis than the one given."""


class NotFound(LedgerError):
    """Raised when a block, certificate, receipt list or transaction is not stored."""


class Pruned(NotFound):
    """Raised when the requested height is below the floor (pruned, or before a restored
    snapshot)."""


class LedgerCorrupt(LedgerError):
    """Raised when a stored ledger record fails to decode or contradicts the head.

    This is damage on disk, not bad input: the node must stop and be restored.
    """


class SnapshotError(LedgerError):
    """Raised when a snapshot cannot be exported, decoded or verified (nothing written)."""


@dataclass(frozen=True)
class Head:
    """The ledger head.

    Attributes:
        height: height of the last committed block.
        block_hash: its hash.
        state_root: the state commitment after that block (block height+1 carries it).
        timestamp: the block's timestamp (ms).
    """

    height: int
    block_hash: bytes
    state_root: bytes
    timestamp: int


_HEAD_BYTES = 8 + 32 + 32 + 8


def encode_head(head: Head) -> bytes:
    assert len(head.block_hash) == 32 and len(head.state_root) == 32
    return (
        head.height.to_bytes(8, "big")
        + head.block_hash
        + head.state_root
        + head.timestamp.to_bytes(8, "big")
    )


def decode_head(raw: bytes) -> Head:
    if len(raw) != _HEAD_BYTES:
        raise LedgerCorrupt(f"head record has {len(raw)} bytes, expected {_HEAD_BYTES}")
    return Head(
        height=int.from_bytes(raw[:8], "big"),
        block_hash=raw[8:40],
        state_root=raw[40:72],
        timestamp=int.from_bytes(raw[72:80], "big"),
    )


def encode_tx_location(height: int, index: int) -> bytes:
    return height.to_bytes(8, "big") + index.to_bytes(4, "big")


def decode_tx_location(raw: bytes) -> tuple[int, int]:
    if len(raw) != 12:
        raise LedgerCorrupt(f"transaction index record has {len(raw)} bytes, expected 12")
    return int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big")


def encode_height(height: int) -> bytes:
    return height.to_bytes(8, "big")


def decode_height(raw: bytes, what: str) -> int:
    if len(raw) != 8:
        raise LedgerCorrupt(f"{what} record has {len(raw)} bytes, expected 8")
    return int.from_bytes(raw, "big")


def rlp_bytes(data: bytes) -> bytes:
    n = len(data)
    if n == 1 and data[0] < 0x80:
        return data
    if n <= 55:
        return bytes((0x80 + n,)) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(size),)) + size + data


def rlp_uint(value: int) -> bytes:
    return rlp_bytes(value.to_bytes((value.bit_length() + 7) // 8, "big")) if value else b"\x80"


def encode_receipts(receipts: Sequence[Receipt]) -> bytes:
    """RLP of the receipt list, byte for byte what ``encode(receipts, CountableList(Receipt))``
    gives, but assembled by hand (the generic encoder costs ~50 µs a receipt; a block of 2,000
    transfers would spend 100 ms on it inside the commit). Receipts with logs take the generic
    path; a plain successful transfer's receipt takes the shortest one."""
    items: list[bytes] = []
    append = items.append
    for r in receipts:
        if r.logs:
            append(encode(r))
            continue
        reason, contract, ret = r.reason, r.contract_address, r.return_data
        if not reason and not contract and not ret:
            tail = b"\x80\xc0\x80\x80"  # empty reason, no logs, no address, no return data
        else:
            tail = rlp_bytes(reason) + b"\xc0" + rlp_bytes(contract) + rlp_bytes(ret)
        payload = (
            b"\xa0"
            + r.tx_hash
            + (b"\x01" if r.status == 1 else rlp_uint(r.status))
            + rlp_uint(r.gas_used)
            + rlp_uint(r.fee_paid)
            + tail
        )
        n = len(payload)
        append((bytes((0xC0 + n,)) if n < 56 else _long_list_prefix(n)) + payload)
    return encode_list(items)


def decode_receipts(data: bytes) -> list[Receipt]:
    """Strictly decode what :func:`encode_receipts` wrote (same result as the generic decoder
    with ``CountableList(Receipt)``, ~20x faster for receipts without logs).

    Raises:
        DecodeError: not the canonical encoding of a receipt list.
    """
    out: list[Receipt] = []
    for item in split_list(data, "receipts"):
        fields = split_list(item, "receipt")
        if len(fields) != 8 or fields[5] != b"\xc0":
            out.append(decode_receipt(item))  # logs, or malformed: the generic path decides
            continue
        # The seven string fields, checked canonical by the strict splitter.
        tx_hash, status, gas, fee, reason, contract, ret = string_items(
            encode_list(fields[:5] + fields[6:]), "receipt", 7
        )
        if len(tx_hash) != 32:
            raise DecodeError("receipt.tx_hash: must be 32 bytes")
        if len(contract) not in (0, 20):
            raise DecodeError("receipt.contract_address: must be 20 bytes or empty")
        if len(reason) > REASON_BYTES_MAX or len(ret) > RETURN_DATA_BYTES_MAX:
            raise DecodeError("receipt: reason or return data exceeds its bound")
        out.append(
            Receipt(
                tx_hash,
                decode_uint(status, 8, "receipt.status"),
                decode_uint(gas, 64, "receipt.gas_used"),
                decode_uint(fee, 256, "receipt.fee_paid"),
                reason,
                (),
                contract,
                ret,
            )
        )
    return out


def _long_list_prefix(n: int) -> bytes:
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(size),)) + size


def encode_preimage(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value


def decode_preimage(raw: bytes) -> bytes | None:
    if raw == b"\x00":
        return None
    if raw[:1] != b"\x01":
        raise LedgerCorrupt("checkpoint pre-image record has an unknown tag")
    return raw[1:]


class Checkpoint(rlp.Serializable):  # type: ignore[misc]
    """What the ledger records every K blocks.

    Fields: ``height``; ``block_hash``; ``commitment`` (the incremental state commitment
    after the block); ``full_root`` (Merkle root over every state entry after the block).
    """

    fields = (
        ("height", uint64),
        ("block_hash", hash32),
        ("commitment", hash32),
        ("full_root", hash32),
    )

    height: int
    block_hash: bytes
    commitment: bytes
    full_root: bytes

    @property
    def digest(self) -> bytes:
        """SHA-256 over a domain tag and the canonical encoding: what a peer may sign."""
        return hashlib.sha256(CHECKPOINT_DOMAIN + rlp.encode(self)).digest()


def decode_checkpoint(data: bytes) -> Checkpoint:
    """Decode a checkpoint record strictly (DecodeError on bad bytes)."""
    cp: Checkpoint = decode(data, Checkpoint, what="Checkpoint")
    return cp


def read_latest_checkpoint(db: _Readable) -> Checkpoint | None:
    """The checkpoint record with the highest height in ``db`` (None if there is none)."""
    latest: bytes | None = None
    for _, value in db.iterate(schema.CHECKPOINT_PREFIX):
        latest = value
    if latest is None:
        return None
    try:
        return decode_checkpoint(latest)
    except DecodeError as e:
        raise LedgerCorrupt(f"stored checkpoint: {e}") from e


class _Readable(Protocol):
    """The read half of :class:`~chain.db.base.KeyValueDB`."""

    def get(self, key: bytes) -> bytes | None: ...

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]: ...


class _ReadOnlyBatch(BatchContext):
    def put(self, key: bytes, value: bytes) -> None:
        raise AssertionError("read-only view")

    def delete(self, key: bytes) -> None:
        raise AssertionError("read-only view")

    def _apply(self) -> None:
        return None


class _ReadOnly:
    def put(self, key: bytes, value: bytes) -> NoReturn:
        raise AssertionError("read-only view")

    def delete(self, key: bytes) -> NoReturn:
        raise AssertionError("read-only view")

    def write_batch(self, *, sync: bool = True) -> _ReadOnlyBatch:
        raise AssertionError("read-only view")

    def close(self) -> None:
        return None


class OverlayView(_ReadOnly):
    """``base`` as it will read once ``writes`` (key -> value, or None = delete) are applied."""

    def __init__(self, base: _Readable, writes: Mapping[bytes, bytes | None]) -> None:
        self._base = base
        self._writes = writes

    def get(self, key: bytes) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._base.get(key)

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        pending = sorted((k, v) for k, v in self._writes.items() if k.startswith(prefix))
        base = ((k, v) for k, v in self._base.iterate(prefix) if k not in self._writes)
        for key, value in heapq.merge(base, ((k, v) for k, v in pending), key=_first):
            if value is not None:
                yield key, value


class EntriesView(_ReadOnly):
    """A read-only view over strictly sorted ``(key, value)`` entries."""

    def __init__(self, entries: Sequence[tuple[bytes, bytes]]) -> None:
        self._entries = entries
        self._keys = [k for k, _ in entries]

    def get(self, key: bytes) -> bytes | None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return self._entries[i][1]
        return None

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        i = bisect.bisect_left(self._keys, prefix)
        while i < len(self._keys) and self._keys[i].startswith(prefix):
            yield self._entries[i]
            i += 1


def _first(item: tuple[bytes, bytes | None]) -> bytes:
    return item[0]
