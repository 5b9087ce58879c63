"""Checkpoints, snapshots (export, chunked encoding, verified restore) and pruning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain._ledger_records import OverlayView
from chain.checkpoint import (
    Snapshot,
    SnapshotError,
    decode_snapshot,
    export_snapshot,
    prune,
    restore_snapshot,
    verify_snapshot,
)
from chain.db import KeyValueDB, LevelDB, MemoryDB, StorageError, schema
from chain.ledger import Ledger, NotFound, Pruned
from chain.state import full_state_root
from tests.chain.chaingen import ChainGen

K = 5


@pytest.fixture(params=["memory", "level"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueDB]:
    store: KeyValueDB = MemoryDB() if request.param == "memory" else LevelDB(tmp_path / "db")
    yield store
    store.close()


def _state(db: KeyValueDB) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for prefix in sorted(schema.STATE_PREFIXES):
        out.extend(db.iterate(prefix))
    return out


def _source(blocks: int, seed: int = 11) -> tuple[ChainGen, Ledger, list[tuple[bytes, bytes]]]:
    """A MemoryDB ledger at ``blocks``, and its state as it was at the last checkpoint."""
    gen = ChainGen(seed=seed, checkpoint_interval=K)
    ledger = gen.open(MemoryDB())
    at_checkpoint = _state(ledger.db)
    while ledger.height < blocks:
        gen.commit_next(ledger)
        if ledger.height % K == 0:
            at_checkpoint = _state(ledger.db)
    return gen, ledger, at_checkpoint


def test_checkpoint_every_k_blocks_records_the_full_root() -> None:
    gen = ChainGen(seed=2, checkpoint_interval=K)
    ledger = gen.open(MemoryDB())
    for height in range(1, 2 * K + 2):
        gen.commit_next(ledger)
        assert ledger.latest_checkpoint.height == height - height % K
        if height % K == 0:
            cp = ledger.checkpoint(height)
            assert cp == ledger.latest_checkpoint
            assert cp.full_root == full_state_root(ledger.db)
            assert cp.commitment == ledger.state_root
            assert cp.block_hash == ledger.head.block_hash
    with pytest.raises(NotFound):
        ledger.checkpoint(K + 1)


def test_snapshot_is_the_state_at_the_checkpoint_not_at_the_head() -> None:
    _, ledger, at_checkpoint = _source(2 * K + 3)
    snapshot = export_snapshot(ledger.db)
    assert snapshot.height == 2 * K
    assert list(snapshot.entries) == at_checkpoint
    assert _state(ledger.db) != at_checkpoint  # the head moved on
    # Keys created after the checkpoint are not in the snapshot.
    assert len(_state(ledger.db)) > len(at_checkpoint)
    assert verify_snapshot(snapshot).state_root == ledger.checkpoint(2 * K).commitment
    with pytest.raises(SnapshotError, match="only the latest"):
        export_snapshot(ledger.db, K)


def test_restore_into_fresh_db_verifies_and_continues_without_replay(db: KeyValueDB) -> None:
    gen, source, _ = _source(2 * K + 4)
    exported = export_snapshot(source.db, 2 * K)
    # Through the wire format, in small chunks.
    snapshot = decode_snapshot(list(exported.chunks(chunk_bytes_max=300)))
    head = restore_snapshot(db, snapshot, trusted_digest=source.checkpoint(2 * K).digest)
    assert head.height == 2 * K
    restored = gen.open(db)
    assert restored.head == head
    assert restored.floor == 2 * K
    assert full_state_root(db) == snapshot.checkpoint.full_root
    with pytest.raises(Pruned, match="lowest stored height is 10"):
        restored.block(3)
    assert restored.certificate(2 * K) == source.certificate(2 * K)
    # Continue with the source's own blocks, each executed on the restored state.
    for height in range(2 * K + 1, source.height + 1):
        block = source.block(height)
        result = gen.executor.apply_block(restored.state(), block)
        restored.commit_block(block, source.certificate(height), result)
    assert restored.head == source.head
    assert full_state_root(db) == full_state_root(source.db)


def test_chunked_encoding_round_trips_and_is_bounded() -> None:
    _, source, _ = _source(K)
    snapshot = export_snapshot(source.db)
    chunks = list(snapshot.chunks(chunk_bytes_max=200))
    assert len(chunks) > 3
    assert all(len(c) <= 400 for c in chunks[1:])
    assert decode_snapshot(chunks) == snapshot
    with pytest.raises(SnapshotError, match="missing"):
        decode_snapshot(chunks[:-1])
    with pytest.raises(SnapshotError, match="out of order"):
        decode_snapshot([chunks[0], chunks[2], chunks[1], *chunks[3:]])
    with pytest.raises(SnapshotError, match="trailing"):
        decode_snapshot([*chunks, chunks[-1]])
    with pytest.raises(SnapshotError, match="bounds"):
        decode_snapshot(chunks, entries_max=len(snapshot.entries) - 1)
    with pytest.raises(SnapshotError):
        decode_snapshot([b"\xc0", *chunks[1:]])
    with pytest.raises(SnapshotError, match="no manifest"):
        decode_snapshot([])


def _tampered(snapshot: Snapshot, how: str) -> Snapshot:
    entries = list(snapshot.entries)
    cp = snapshot.checkpoint
    if how == "value":
        key, value = entries[1]
        entries[1] = (key, value[:-1] + bytes([value[-1] ^ 1]))
    elif how == "dropped":
        del entries[2]
    elif how == "added":
        entries.append((schema.make_account_key(b"\xee" * 20), entries[0][1]))
    elif how == "unsorted":
        entries[0], entries[1] = entries[1], entries[0]
    elif how == "block":
        return Snapshot(cp, snapshot.genesis_hash, b"\xc0", snapshot.certificate, snapshot.entries)
    elif how == "commitment":
        # A consistent-looking snapshot whose commitment a quorum never signed.
        cp = cp.copy(commitment=b"\x44" * 32)
    return Snapshot(cp, snapshot.genesis_hash, snapshot.block, snapshot.certificate, tuple(entries))


@pytest.mark.parametrize("how", ["value", "dropped", "added", "unsorted", "block", "commitment"])
def test_tampered_snapshot_is_rejected_and_db_untouched(db: KeyValueDB, how: str) -> None:
    gen, source, _ = _source(2 * K)
    snapshot = export_snapshot(source.db)
    trusted = source.latest_checkpoint.digest
    # A lagging node of the same chain, at height 3.
    lagging = gen.open(db)
    gen.commit_next(lagging, 3)
    before = list(db.iterate())
    with pytest.raises(SnapshotError):
        restore_snapshot(db, _tampered(snapshot, how), trusted_digest=trusted)
    assert list(db.iterate()) == before
    # The genuine snapshot restores over the lagging node's data.
    restore_snapshot(db, snapshot, trusted_digest=trusted)
    assert gen.open(db).head == source.head
    assert _state(db) == list(snapshot.entries)


def test_restore_refuses_other_chain_or_a_db_ahead(db: KeyValueDB) -> None:
    gen, source, _ = _source(K)
    snapshot = export_snapshot(source.db)
    other = ChainGen(seed=99, checkpoint_interval=K)
    other.open(db)
    before = list(db.iterate())
    with pytest.raises(SnapshotError, match="another chain"):
        restore_snapshot(db, snapshot)
    assert list(db.iterate()) == before
    ahead = MemoryDB()
    ledger = gen.open(ahead)
    gen.commit_next(ledger, K + 1)
    with pytest.raises(SnapshotError, match="already at height"):
        restore_snapshot(ahead, snapshot)
    plain = MemoryDB()
    plain.put(b"x", b"y")
    with pytest.raises(SnapshotError, match="no ledger"):
        restore_snapshot(plain, snapshot)


def test_prune_keeps_recent_blocks_and_never_passes_the_checkpoint(db: KeyValueDB) -> None:
    gen = ChainGen(seed=5, checkpoint_interval=K)
    ledger = gen.open(db)
    gen.commit_next(ledger, 4 * K + 3)  # head 23, latest checkpoint 20
    old_block = ledger.block(3)
    old_tx = old_block.transactions[0]
    assert prune(ledger, 5) == 19  # keeps heights 19..23
    assert ledger.floor == 19
    for h in range(19, 24):
        assert ledger.block(h).header.height == h
        assert len(ledger.receipts(h)) == len(ledger.block(h).transactions)
    with pytest.raises(
        Pruned, match="block at height 3 was pruned; the lowest stored height is 19"
    ):
        ledger.block(3)
    with pytest.raises(Pruned):
        ledger.certificate(18)
    with pytest.raises(Pruned):
        ledger.receipts(0)
    with pytest.raises(NotFound):
        ledger.transaction(old_tx.hash)
    with pytest.raises(NotFound):
        ledger.block_by_hash(old_block.hash)
    assert ledger.transaction(ledger.block(20).transactions[0].hash).height == 20
    # A tiny retention still stops at the latest checkpoint.
    assert prune(ledger, 1) == 1
    assert ledger.floor == 20
    assert prune(ledger, 1) == 0
    with pytest.raises(ValueError):
        prune(ledger, 0)
    # Old checkpoint records went with their blocks; the latest stays exportable.
    with pytest.raises(NotFound):
        ledger.checkpoint(10)
    verify_snapshot(export_snapshot(db), trusted_digest=ledger.latest_checkpoint.digest)
    # The floor survives a reopen, and the chain continues.
    again = gen.open(db)
    assert again.floor == 20
    gen.commit_next(again, 2)
    assert again.height == 25


def test_snapshots_off_skips_preimages_and_export_says_so() -> None:
    gen = ChainGen(seed=8, checkpoint_interval=K)
    db = MemoryDB()
    ledger = gen.open(db, snapshots=False)
    gen.commit_next(ledger, K + 2)
    assert ledger.latest_checkpoint.height == K
    assert list(db.iterate(schema.CHECKPOINT_PREIMAGE_PREFIX)) == []
    with pytest.raises(SnapshotError, match="was not kept"):
        export_snapshot(db)
    # Turning snapshots on mid-interval is not enough: the pre-images are incomplete ...
    ledger = gen.open(db, snapshots=True)
    gen.commit_next(ledger, 1)
    with pytest.raises(SnapshotError, match="was not kept"):
        export_snapshot(db)
    # ... until the next checkpoint, which is exportable again.
    gen.commit_next(ledger, 2 * K - ledger.height)
    verify_snapshot(export_snapshot(db), trusted_digest=ledger.latest_checkpoint.digest)


def test_turning_snapshots_off_mid_interval_withdraws_the_export() -> None:
    gen = ChainGen(seed=9, checkpoint_interval=K)
    db = MemoryDB()
    gen.commit_next(gen.open(db), K + 1)
    export_snapshot(db)
    gen.commit_next(gen.open(db, snapshots=False), 1)
    with pytest.raises(SnapshotError, match="was not kept"):
        export_snapshot(db)


class _CrashingDB:
    """A MemoryDB whose write batches fail (as a crash would: nothing applied) after
    ``batches_ok`` successful ones."""

    def __init__(self, inner: MemoryDB, batches_ok: int = 1_000_000) -> None:
        self.inner = inner
        self.batches_ok = batches_ok

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.inner.put(key, value)

    def delete(self, key: bytes) -> None:
        self.inner.delete(key)

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        return self.inner.iterate(prefix)

    def write_batch(self, *, sync: bool = True) -> Any:
        if self.batches_ok > 0:
            self.batches_ok -= 1
            return self.inner.write_batch(sync=sync)
        return _LostBatch()

    def close(self) -> None:
        pass


class _LostBatch:
    def put(self, key: bytes, value: bytes) -> None:
        pass

    def delete(self, key: bytes) -> None:
        pass

    def __enter__(self) -> _LostBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            raise StorageError("simulated crash: the batch never reached the disk")


def test_crash_in_the_middle_of_pruning_leaves_a_consistent_ledger() -> None:
    gen = ChainGen(seed=6, checkpoint_interval=K)
    inner = MemoryDB()
    gen.commit_next(gen.open(inner), 3 * K + 1)  # head 16, latest checkpoint 15
    db = _CrashingDB(inner, batches_ok=2)
    ledger = gen.open(db)
    with pytest.raises(StorageError, match="simulated crash"):
        prune(ledger, 1, batch_heights_max=4)
    reopened = gen.open(inner)
    assert reopened.floor == 8  # two batches of four heights made it
    for h in range(8, 17):
        assert reopened.block(h).header.height == h
    with pytest.raises(Pruned):
        reopened.block(7)
    # No index entry points into the pruned range.
    for _, raw in inner.iterate(schema.TX_INDEX_PREFIX):
        assert int.from_bytes(raw[:8], "big") >= 8
    assert prune(reopened, 1) == 7
    assert reopened.floor == 15


def test_failed_commit_changes_nothing_and_the_ledger_goes_on() -> None:
    gen = ChainGen(seed=12, checkpoint_interval=K)
    inner = MemoryDB()
    db = _CrashingDB(inner)
    ledger = gen.open(db)
    gen.commit_next(ledger, K - 1)  # the next block is a checkpoint block
    head, before = ledger.head, list(inner.iterate())
    block, cert, result = gen.next_block(ledger)
    db.batches_ok = 0
    with pytest.raises(StorageError):
        ledger.commit_block(block, cert, result)
    assert ledger.head == head
    assert list(inner.iterate()) == before
    db.batches_ok = 1_000_000
    ledger.commit_block(block, cert, result)
    assert ledger.latest_checkpoint.height == K
    assert gen.open(inner).head == ledger.head


_state_keys = st.sampled_from([b"a:", b"s:", b"code:", b"blk:"]).flatmap(
    lambda prefix: st.binary(min_size=1, max_size=2).map(lambda tail: prefix + tail)
)


@settings(max_examples=80, deadline=None)
@given(
    base=st.dictionaries(_state_keys, st.binary(min_size=1, max_size=3), max_size=12),
    writes=st.dictionaries(_state_keys, st.none() | st.binary(min_size=1, max_size=3), max_size=8),
)
def test_overlay_reads_like_the_db_after_the_writes(
    base: dict[bytes, bytes], writes: dict[bytes, bytes | None]
) -> None:
    """The checkpoint root is computed on db + pending writes; that view must be exact."""
    db = MemoryDB()
    for k, v in base.items():
        db.put(k, v)
    view = OverlayView(db, writes)
    after = MemoryDB()
    for k, v in {**base, **writes}.items():
        if v is not None:
            after.put(k, v)
    for prefix in (b"", b"a:", b"s:", b"code:", b"blk:"):
        assert list(view.iterate(prefix)) == list(after.iterate(prefix))
    for key in list(base) + list(writes):
        assert view.get(key) == after.get(key)
    assert full_state_root(view) == full_state_root(after)
