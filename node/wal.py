"""The consensus write-ahead log: records made durable before the messages they justify.

Theory of operation
-------------------
The consensus driver executes every engine output in order: ``persist`` first, then
``send``. ``persist`` records (own votes, view changes, checkpoints) are appended here and
fsynced *before* any message leaves, so a validator that crashes and restarts replays the
records into a fresh engine and never signs two different values for one slot.

On disk the log is a sequence of records::

    magic (4 bytes "PXW1") once at the start of the file, then per record:
    length (4 bytes, big-endian) | crc32 of payload (4 bytes, big-endian) | payload

Opening the log scans it. A *torn tail* -- an incomplete header or payload, or a bad CRC on
the very last record, which is what a crash in the middle of an append leaves -- is cut off
with a warning. Damage anywhere else means the disk lied or someone edited the file: the log
refuses to open (:class:`WalCorrupted`) with the offset, rather than guess.

``compact(keep)`` rewrites the log with only the records still needed (those after the
latest stable checkpoint), atomically via a temporary file and ``os.replace``.

Invariants: every record returned by :meth:`WriteAheadLog.records` was fully written and
synced; the file always starts with the magic; records are returned in append order.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["MAGIC", "WalCorrupted", "WalError", "WriteAheadLog"]

log = logging.getLogger(__name__)

MAGIC = b"PXW1"
_HEADER = struct.Struct(">II")
RECORD_BYTES_MAX = 32 * 1024 * 1024


class WalError(Exception):
    """Base of write-ahead-log errors."""


class WalCorrupted(WalError):
    """Raised when the log is damaged somewhere other than a torn final record."""


class WriteAheadLog:
    """An append-only, fsynced log of opaque byte records.

    Args:
        path: the log file; created (with its directory) if missing.
        sync: fsync after each append batch (turn off only in tests of speed).
    """

    def __init__(self, path: str | os.PathLike[str], *, sync: bool = True) -> None:
        self.path = Path(path)
        self.sync = sync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: list[bytes] = []
        self.truncated_bytes = 0
        self._load()
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned for the log's lifetime

    # -- reading ---------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "wb") as f:
                f.write(MAGIC)
                f.flush()
                os.fsync(f.fileno())
            self._fsync_dir()
            return
        data = self.path.read_bytes()
        if len(data) < len(MAGIC):
            # A crash while creating the file: nothing was ever recorded.
            self._truncate_to(0, len(data), reason="torn file header")
            with open(self.path, "wb") as f:
                f.write(MAGIC)
                os.fsync(f.fileno())
            return
        if data[: len(MAGIC)] != MAGIC:
            raise WalCorrupted(f"{self.path}: not a Phalanx write-ahead log (bad magic)")
        offset = len(MAGIC)
        end = len(data)
        while offset < end:
            if end - offset < _HEADER.size:
                self._truncate_to(offset, end, reason="torn record header")
                return
            length, crc = _HEADER.unpack_from(data, offset)
            body_start = offset + _HEADER.size
            body_end = body_start + length
            if length == 0 or length > RECORD_BYTES_MAX:
                # We never write empty or oversized records. A zero-filled tail is what a
                # crash during an append can leave behind; anything else is damage.
                if not data[offset:].strip(b"\0"):
                    self._truncate_to(offset, end, reason="zero-filled tail")
                    return
                raise WalCorrupted(
                    f"{self.path}: record at offset {offset} has an impossible length "
                    f"({length}); the log is damaged (restore the node's data or resync it "
                    "from peers)"
                )
            if body_end > end:
                self._truncate_to(offset, end, reason="torn record body")
                return
            payload = data[body_start:body_end]
            if zlib.crc32(payload) != crc:
                if body_end == end:
                    self._truncate_to(offset, end, reason="bad checksum on the final record")
                    return
                raise WalCorrupted(
                    f"{self.path}: checksum mismatch in the record at offset {offset}, which is "
                    "not the last one; the log is damaged (restore the node's data or resync it "
                    "from peers)"
                )
            self._records.append(payload)
            offset = body_end

    def _truncate_to(self, offset: int, end: int, *, reason: str) -> None:
        log.warning(
            "write-ahead log %s: %s; cutting %d trailing bytes at offset %d",
            self.path,
            reason,
            end - offset,
            offset,
        )
        self.truncated_bytes = end - offset
        with open(self.path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[bytes]:
        """All records in append order (a copy)."""
        return list(self._records)

    def __len__(self) -> int:
        return len(self._records)

    # -- writing ---------------------------------------------------------------------------

    def append(self, payloads: Iterable[bytes]) -> int:
        """Append records and make them durable before returning.

        Returns:
            The number of records appended.
        """
        chunks: list[bytes] = []
        added: list[bytes] = []
        for payload in payloads:
            payload = bytes(payload)
            if not payload:
                raise WalError("empty records are not allowed")
            if len(payload) > RECORD_BYTES_MAX:
                raise WalError(f"record of {len(payload)} bytes exceeds {RECORD_BYTES_MAX}")
            chunks.append(_HEADER.pack(len(payload), zlib.crc32(payload)))
            chunks.append(payload)
            added.append(payload)
        if not added:
            return 0
        self._file.write(b"".join(chunks))
        self._file.flush()
        if self.sync:
            os.fsync(self._file.fileno())
        self._records.extend(added)
        return len(added)

    def compact(self, keep: Sequence[bytes]) -> None:
        """Atomically replace the log's contents with ``keep`` (in order)."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC)
            for payload in keep:
                f.write(_HEADER.pack(len(payload), zlib.crc32(payload)))
                f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        self._file.close()
        os.replace(tmp, self.path)
        self._fsync_dir()
        self._records = [bytes(p) for p in keep]
        self._file = open(self.path, "ab")  # noqa: SIM115

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
