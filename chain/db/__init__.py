"""Storage: the ``KeyValueDB`` protocol, its backends, and the one schema that builds keys."""

from chain.db.base import KeyValueDB, WriteBatch
from chain.db.memory import MemoryDB

__all__ = ["KeyValueDB", "MemoryDB", "WriteBatch"]
