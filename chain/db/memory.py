"""``MemoryDB``: an in-memory :class:`~chain.db.base.KeyValueDB` for tests and the simulator.

Keeps keys sorted lazily so ``iterate(prefix)`` yields in key order like LevelDB does, from a
snapshot of the matching entries taken when iteration starts (writes made meanwhile are not
seen, as with LevelDB).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from chain.db.base import BatchContext


class _MemoryBatch(BatchContext):
    def __init__(self, db: MemoryDB) -> None:
        self._db = db
        self._ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self._ops.append((bytes(key), bytes(value)))

    def delete(self, key: bytes) -> None:
        self._ops.append((bytes(key), None))

    def _apply(self) -> None:
        for key, value in self._ops:
            if value is None:
                self._db.delete(key)
            else:
                self._db.put(key, value)


class MemoryDB:
    """A dict with sorted iteration; not thread-safe, single owner."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = []

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            self._sorted = None
        self._data[bytes(key)] = bytes(value)

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            self._sorted = None

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        if self._sorted is None:
            self._sorted = sorted(self._data)
        keys = self._sorted
        data = self._data
        snapshot: list[tuple[bytes, bytes]] = []  # like LevelDB: writes made meanwhile unseen
        for i in range(bisect.bisect_left(keys, prefix), len(keys)):
            key = keys[i]
            if not key.startswith(prefix):
                break
            snapshot.append((key, data[key]))
        yield from snapshot

    def write_batch(self, *, sync: bool = True) -> _MemoryBatch:
        return _MemoryBatch(self)

    def close(self) -> None:
        pass

    def __len__(self) -> int:
        return len(self._data)
