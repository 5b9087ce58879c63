"""Storage: the ``KeyValueDB`` protocol, its backends, and the one schema that builds keys.

``MemoryDB`` serves tests and the simulator; ``LevelDB`` (plyvel) serves nodes. Both pass
the same test suite (tests/chain/test_db.py). Keys come only from :mod:`chain.db.schema`.
"""

from chain.db.base import KeyValueDB, WriteBatch
from chain.db.level import LevelDB, StorageError
from chain.db.memory import MemoryDB

__all__ = ["KeyValueDB", "LevelDB", "MemoryDB", "StorageError", "WriteBatch"]
