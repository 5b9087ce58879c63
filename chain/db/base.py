"""The ``KeyValueDB`` protocol every storage user in Phalanx talks to.

Two implementations share one test suite: :class:`chain.db.memory.MemoryDB` (tests and the
simulator) and :class:`chain.db.level.LevelDB` (nodes, through plyvel). A write batch is
atomic: after a crash either all of its puts and deletes are visible or none is.
:class:`BatchContext` is the ``with`` half every batch class shares.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self


class WriteBatch(Protocol):
    """An atomic group of writes; applied when used as a context manager exits cleanly."""

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def __enter__(self) -> WriteBatch: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class KeyValueDB(Protocol):
    """A sorted byte-key, byte-value store."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` pairs whose key starts with ``prefix``, in key order."""
        ...

    def write_batch(self, *, sync: bool = True) -> WriteBatch:
        """Start an atomic batch; ``sync`` makes it durable before ``__exit__`` returns."""
        ...

    def close(self) -> None: ...


class BatchContext:
    """The context-manager half of a :class:`WriteBatch`, shared by the implementations.

    ``__exit__`` calls :meth:`_apply` when the ``with`` block exits cleanly and drops the
    batch (applies nothing) when it raises.
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._apply()

    def _apply(self) -> None:
        """Write the batch's operations (called once, on a clean exit)."""
        raise NotImplementedError
