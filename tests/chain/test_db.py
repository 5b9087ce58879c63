"""One suite over both KeyValueDB backends (MemoryDB and LevelDB), plus LevelDB-only cases."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chain.db import KeyValueDB, LevelDB, MemoryDB, StorageError, schema
from chain.errors import ChainError


@pytest.fixture(params=["memory", "level"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueDB]:
    store: KeyValueDB = MemoryDB() if request.param == "memory" else LevelDB(tmp_path / "db")
    yield store
    store.close()


def test_get_put_delete(db: KeyValueDB) -> None:
    assert db.get(b"k") is None
    db.put(b"k", b"v1")
    assert db.get(b"k") == b"v1"
    db.put(b"k", b"v2")
    assert db.get(b"k") == b"v2"
    db.delete(b"k")
    assert db.get(b"k") is None
    db.delete(b"never-there")  # deleting a missing key is not an error
    db.put(b"empty", b"")
    assert db.get(b"empty") == b""


def test_iterate_prefix_in_key_order(db: KeyValueDB) -> None:
    keys = [schema.make_block_key(h) for h in (300, 2, 256, 1, 0, 65536)]
    for i, k in enumerate(keys):
        db.put(k, bytes([i]))
    db.put(b"blj", b"before")
    db.put(b"blk;", b"after")
    db.put(b"a:" + b"\x01" * 20, b"account")
    got = [k for k, _ in db.iterate(schema.BLOCK_PREFIX)]
    assert got == sorted(keys)
    assert [schema.height_from_key(k, schema.BLOCK_PREFIX) for k in got] == [
        0,
        1,
        2,
        256,
        300,
        65536,
    ]
    everything = [k for k, _ in db.iterate()]
    assert everything == sorted(everything)
    assert len(everything) == len(keys) + 3
    assert list(db.iterate(b"nothing-here")) == []


def test_iterate_values_and_binary_keys(db: KeyValueDB) -> None:
    items = {bytes([0xFF, i]): bytes([i]) * i for i in range(0, 256, 17)}
    items[b"\xff"] = b"short"
    for k, v in items.items():
        db.put(k, v)
    assert list(db.iterate(b"\xff")) == sorted(items.items())


def test_iterate_sees_state_at_start(db: KeyValueDB) -> None:
    for i in range(5):
        db.put(b"p" + bytes([i]), b"x")
    it = db.iterate(b"p")
    first = next(it)
    db.put(b"p\x09", b"late")  # written after the iteration began
    rest = list(it)
    assert first[0] == b"p\x00"
    assert [k for k, _ in rest] == [b"p" + bytes([i]) for i in range(1, 5)]


def test_iterate_does_not_see_overwrites_or_deletes_made_meanwhile(db: KeyValueDB) -> None:
    """Both implementations read the snapshot of when iteration began (MemoryDB used to
    show later overwrites and skip later deletes)."""
    for i in range(5):
        db.put(b"p" + bytes([i]), b"old")
    it = db.iterate(b"p")
    assert next(it) == (b"p\x00", b"old")
    db.put(b"p\x02", b"new")
    db.delete(b"p\x03")
    assert list(it) == [(b"p" + bytes([i]), b"old") for i in range(1, 5)]
    assert db.get(b"p\x02") == b"new" and db.get(b"p\x03") is None


def test_batch_applies_all_writes(db: KeyValueDB) -> None:
    db.put(b"gone", b"x")
    with db.write_batch() as batch:
        batch.put(b"a", b"1")
        batch.put(b"b", b"2")
        batch.delete(b"gone")
        assert db.get(b"a") is None  # nothing visible before the batch exits
    assert db.get(b"a") == b"1"
    assert db.get(b"b") == b"2"
    assert db.get(b"gone") is None


def test_batch_is_atomic_when_an_exception_escapes(db: KeyValueDB) -> None:
    db.put(b"keep", b"old")
    with pytest.raises(RuntimeError, match="boom"), db.write_batch(sync=False) as batch:
        batch.put(b"a", b"1")
        batch.put(b"keep", b"new")
        batch.delete(b"keep")
        raise RuntimeError("boom")
    assert db.get(b"a") is None
    assert db.get(b"keep") == b"old"
    assert list(db.iterate()) == [(b"keep", b"old")]


def test_batch_last_write_wins(db: KeyValueDB) -> None:
    with db.write_batch() as batch:
        batch.put(b"k", b"1")
        batch.delete(b"k")
        batch.put(b"k", b"2")
        batch.put(b"j", b"1")
        batch.delete(b"j")
    assert db.get(b"k") == b"2"
    assert db.get(b"j") is None


def test_leveldb_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "db"
    first = LevelDB(path)
    first.put(b"direct", b"1")
    with first.write_batch() as batch:
        batch.put(b"batched", b"2")
    first.close()
    first.close()  # closing twice is harmless
    again = LevelDB(path, create=False)
    assert again.get(b"direct") == b"1"
    assert again.get(b"batched") == b"2"
    again.close()


def test_leveldb_second_open_in_same_process_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    owner = LevelDB(path)
    with pytest.raises(StorageError, match="in use by another process"):
        LevelDB(path)
    owner.close()
    LevelDB(path).close()  # the lock is released on close


def test_leveldb_locked_by_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    code = (
        "import sys\n"
        "from chain.db import LevelDB\n"
        "db = LevelDB(sys.argv[1])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n"
        "db.close()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(StorageError, match=r"is in use by another process \(one process owns"):
            LevelDB(path)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
    LevelDB(path).close()


def test_leveldb_missing_without_create(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        LevelDB(tmp_path / "nope", create=False)


def test_leveldb_corrupt_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    LevelDB(path).close()
    (path / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(StorageError, match="corrupt"):
        LevelDB(path)


def test_leveldb_use_after_close(tmp_path: Path) -> None:
    db = LevelDB(tmp_path / "db")
    db.close()
    with pytest.raises(StorageError, match="closed"):
        db.get(b"k")
    with pytest.raises(StorageError, match="closed"):
        db.put(b"k", b"v")


def test_storage_error_is_a_chain_error() -> None:
    assert issubclass(StorageError, ChainError)


_keys = st.binary(min_size=0, max_size=3).map(lambda b: b"k" + b)


class BackendsAgainstADict(RuleBasedStateMachine):
    """MemoryDB and LevelDB fed the same operations read exactly like a sorted dict."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="phalanx-db-machine-")
        self.stores: list[KeyValueDB] = [MemoryDB(), LevelDB(os.path.join(self.tmp, "db"))]
        self.model: dict[bytes, bytes] = {}

    @rule(key=_keys, value=st.binary(max_size=8))
    def put(self, key: bytes, value: bytes) -> None:
        for store in self.stores:
            store.put(key, value)
        self.model[key] = value

    @rule(key=_keys)
    def delete(self, key: bytes) -> None:
        for store in self.stores:
            store.delete(key)
        self.model.pop(key, None)

    @rule(
        ops=st.lists(st.tuples(_keys, st.none() | st.binary(max_size=8)), max_size=6),
        fail=st.booleans(),
    )
    def batch(self, ops: list[tuple[bytes, bytes | None]], fail: bool) -> None:
        for store in self.stores:
            try:
                with store.write_batch(sync=False) as batch:
                    for key, value in ops:
                        if value is None:
                            batch.delete(key)
                        else:
                            batch.put(key, value)
                    if fail:
                        raise KeyError("abandon the batch")
            except KeyError:
                pass
        if not fail:
            for key, value in ops:
                if value is None:
                    self.model.pop(key, None)
                else:
                    self.model[key] = value

    @rule(prefix=st.binary(max_size=2).map(lambda b: b"k" + b) | st.just(b""))
    def iterate(self, prefix: bytes) -> None:
        expected = sorted((k, v) for k, v in self.model.items() if k.startswith(prefix))
        for store in self.stores:
            assert list(store.iterate(prefix)) == expected

    @invariant()
    def reads_agree(self) -> None:
        for key in list(self.model)[:5]:
            for store in self.stores:
                assert store.get(key) == self.model[key]

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


BackendsAgainstADict.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None
)
test_backends_against_a_dict = BackendsAgainstADict.TestCase
