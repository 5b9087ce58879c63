"""``LevelDB``: the on-disk :class:`~chain.db.base.KeyValueDB` a node uses, through plyvel.

This is the only module in Phalanx that imports ``plyvel``. It adds three things to plyvel:

* **Atomic batches.** :meth:`LevelDB.write_batch` uses plyvel's ``transaction=True`` batch:
  the writes are applied in one LevelDB ``Write`` when the ``with`` block exits cleanly and
  are discarded when it raises. ``sync=True`` (the default) makes the write durable (fsync of
  the log) before ``__exit__`` returns, so after a crash the batch is either fully visible
  or not at all.
* **Clear errors.** LevelDB's own errors become :class:`StorageError` with a message a person
  can act on: the database is locked by another process (one process owns one database),
  is corrupt, does not exist, or was closed.
* **Ordered prefix iteration** with the iterator closed even when the caller stops early.

plyvel calls block the calling thread. They are short for single reads and writes; a node
running under Trio moves a large batch (a block commit) to a worker thread. A ``LevelDB``
object is not meant to be shared by threads that write concurrently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import plyvel

from chain.db.base import BatchContext
from chain.errors import ChainError

__all__ = ["LevelDB", "StorageError"]


class StorageError(ChainError):
    """Raised when the on-disk database cannot be used.

    Covers: locked by another process, corrupt files, missing database with
    ``create=False``, I/O errors, and use after :meth:`LevelDB.close`.
    """


def _message(e: BaseException) -> str:
    """plyvel puts LevelDB's status as bytes in ``args[0]``; make it text."""
    if e.args and isinstance(e.args[0], bytes):
        return e.args[0].decode("utf-8", "replace")
    return str(e)


class _LevelBatch(BatchContext):
    """A plyvel transaction batch with errors translated; see :meth:`LevelDB.write_batch`."""

    def __init__(self, owner: LevelDB, batch: Any) -> None:
        self._owner = owner
        self._batch = batch

    def put(self, key: bytes, value: bytes) -> None:
        self._batch.put(key, value)

    def delete(self, key: bytes) -> None:
        self._batch.delete(key)

    def _apply(self) -> None:
        try:
            self._batch.write()
        except plyvel.Error as e:
            raise self._owner._error("write", e) from e
        except RuntimeError as e:  # "Database is closed"
            raise self._owner._error("write", e) from e


class LevelDB:
    """A LevelDB database in a directory, owned by this process alone.

    Args:
        path: the database directory.
        create: create the database (and its parent directories) when missing; otherwise
            a missing database is an error.

    Raises:
        StorageError: the database is in use by another process, corrupt, or missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = os.fspath(path)
        if create:
            # LevelDB creates the database directory but not its parents.
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            # A bloom filter makes reads of absent keys (new accounts) skip the table files.
            self._db: Any = plyvel.DB(self.path, create_if_missing=create, bloom_filter_bits=10)
        except plyvel.Error as e:
            raise self._error("open", e) from e

    def _error(self, action: str, e: BaseException) -> StorageError:
        text = _message(e)
        if isinstance(e, plyvel.IOError) and "lock" in text.lower():
            return StorageError(
                f"database at {self.path} is in use by another process "
                f"(one process owns one database): {text}"
            )
        if isinstance(e, plyvel.CorruptionError):
            return StorageError(f"database at {self.path} is corrupt: {text}")
        if "does not exist" in text:
            return StorageError(f"database at {self.path} does not exist: {text}")
        if isinstance(e, RuntimeError):
            return StorageError(f"database at {self.path} is closed ({action})")
        return StorageError(f"database at {self.path}: {action} failed: {text}")

    def get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key)
        except (plyvel.Error, RuntimeError) as e:
            raise self._error("get", e) from e
        return value

    def put(self, key: bytes, value: bytes) -> None:
        try:
            self._db.put(key, value)
        except (plyvel.Error, RuntimeError) as e:
            raise self._error("put", e) from e

    def delete(self, key: bytes) -> None:
        try:
            self._db.delete(key)
        except (plyvel.Error, RuntimeError) as e:
            raise self._error("delete", e) from e

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, value)`` for keys starting with ``prefix``, in key order.

        The iterator reads a consistent snapshot taken when iteration starts: writes made
        while iterating are not seen.
        """
        try:
            it = self._db.iterator(prefix=prefix) if prefix else self._db.iterator()
        except (plyvel.Error, RuntimeError) as e:
            raise self._error("iterate", e) from e
        try:
            yield from it
        finally:
            it.close()

    def write_batch(self, *, sync: bool = True) -> _LevelBatch:
        """Start an atomic batch, applied when the ``with`` block exits without an error.

        Args:
            sync: fsync LevelDB's log before returning from ``__exit__`` (durable commit).
        """
        try:
            batch = self._db.write_batch(transaction=True, sync=sync)
        except (plyvel.Error, RuntimeError) as e:
            raise self._error("write_batch", e) from e
        return _LevelBatch(self, batch)

    @property
    def closed(self) -> bool:
        return bool(self._db.closed)

    def close(self) -> None:
        """Close the database and release its lock; closing twice is harmless."""
        if not self._db.closed:
            self._db.close()

    def __enter__(self) -> LevelDB:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LevelDB({self.path!r})"
