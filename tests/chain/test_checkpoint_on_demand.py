"""On-demand checkpoints (aligned with consensus), stored checkpoint proofs, pruning below a
stable checkpoint, and installing a snapshot into a live, lagging ledger."""

from __future__ import annotations

import pytest

from chain.checkpoint import (
    SnapshotError,
    decode_snapshot,
    export_snapshot,
    install_snapshot,
    prune_below_stable,
)
from chain.db import KeyValueDB, MemoryDB, schema
from chain.ledger import CHECKPOINTS_ON_DEMAND, Ledger, NotFound, Pruned
from chain.state import full_state_root
from tests.chain.chaingen import ChainGen

PROOF = b"quorum-proof-bytes"


def _dump(db: KeyValueDB) -> list[tuple[bytes, bytes]]:
    return list(db.iterate())


def _ledger(gen: ChainGen) -> Ledger:
    return gen.open(MemoryDB(), checkpoint_interval=CHECKPOINTS_ON_DEMAND)


def test_on_demand_ledger_makes_no_automatic_checkpoints() -> None:
    gen = ChainGen(seed=3)
    ledger = _ledger(gen)
    gen.commit_next(ledger, 12)
    assert ledger.latest_checkpoint.height == 0
    assert [schema.height_from_key(k, schema.CHECKPOINT_PREFIX)
            for k, _ in ledger.db.iterate(schema.CHECKPOINT_PREFIX)] == [0]  # fmt: skip


def test_checkpoint_head_records_the_head_state_and_is_idempotent() -> None:
    gen = ChainGen(seed=4)
    ledger = _ledger(gen)
    gen.commit_next(ledger, 7)
    cp = ledger.checkpoint_head()
    assert (cp.height, cp.block_hash, cp.commitment) == (7, ledger.head.block_hash, ledger.state_root)
    assert cp.full_root == full_state_root(ledger.db)
    assert ledger.checkpoint(7) == cp == ledger.latest_checkpoint
    assert ledger.checkpoint_head() == cp  # the head already is a checkpoint: same record
    # A second ledger fed the same blocks makes the same record: validators can sign it.
    twin = _ledger(gen)
    for h in range(1, 8):
        block, cert = ledger.block(h), ledger.certificate(h)
        twin.commit_block(block, cert, gen.executor.apply_block(twin.state(), block))
    assert twin.checkpoint_head().digest == cp.digest


def test_snapshot_after_an_on_demand_checkpoint_is_the_state_at_it() -> None:
    gen = ChainGen(seed=5)
    ledger = _ledger(gen)
    gen.commit_next(ledger, 4)
    cp = ledger.checkpoint_head()
    at_checkpoint = [kv for p in sorted(schema.STATE_PREFIXES) for kv in ledger.db.iterate(p)]
    gen.commit_next(ledger, 5)  # pre-images keep the state at the checkpoint
    snapshot = export_snapshot(ledger.db)
    assert snapshot.checkpoint == cp
    assert list(snapshot.entries) == at_checkpoint
    # Reopening keeps the on-demand checkpoint exportable.
    reopened = gen.open(ledger.db, checkpoint_interval=CHECKPOINTS_ON_DEMAND)
    assert reopened.latest_checkpoint == cp
    assert export_snapshot(reopened.db).checkpoint == cp


def test_checkpoint_proof_is_stored_next_to_its_checkpoint_only() -> None:
    gen = ChainGen(seed=6)
    ledger = _ledger(gen)
    gen.commit_next(ledger, 3)
    with pytest.raises(NotFound):
        ledger.store_checkpoint_proof(3, PROOF)  # no checkpoint there yet
    ledger.checkpoint_head()
    ledger.store_checkpoint_proof(3, PROOF)
    assert ledger.checkpoint_proof(3) == PROOF
    with pytest.raises(NotFound):
        ledger.checkpoint_proof(0)


def test_prune_below_stable_keeps_retain_blocks_under_the_stable_checkpoint() -> None:
    gen = ChainGen(seed=7)
    ledger = _ledger(gen)
    gen.commit_next(ledger, 5)
    ledger.checkpoint_head()
    ledger.store_checkpoint_proof(5, b"old proof")
    gen.commit_next(ledger, 7)
    ledger.checkpoint_head()
    ledger.store_checkpoint_proof(12, PROOF)
    gen.commit_next(ledger, 3)
    assert prune_below_stable(ledger, 12, 0) == 0  # 0 keeps everything
    assert ledger.floor == 0
    assert prune_below_stable(ledger, 12, 4) == 8
    assert ledger.floor == 8
    with pytest.raises(Pruned):
        ledger.block(7)
    assert ledger.block(8).header.height == 8
    with pytest.raises(NotFound):
        ledger.checkpoint_proof(5)  # old proofs go with their heights
    assert ledger.checkpoint_proof(12) == PROOF
    assert prune_below_stable(ledger, 12, 4) == 0
    # Never past the latest checkpoint, whatever the caller says.
    assert prune_below_stable(ledger, 40, 1) == 4
    assert ledger.floor == 12
    assert export_snapshot(ledger.db).height == 12


def _source_and_laggard() -> tuple[ChainGen, Ledger, Ledger]:
    gen = ChainGen(seed=8)
    source = _ledger(gen)
    laggard = _ledger(gen)
    gen.commit_next(source, 3)
    for h in range(1, 4):
        block = source.block(h)
        laggard.commit_block(block, source.certificate(h), gen.executor.apply_block(laggard.state(), block))
    gen.commit_next(source, 6)
    source.checkpoint_head()
    source.store_checkpoint_proof(9, PROOF)
    gen.commit_next(source, 2)
    return gen, source, laggard


def test_install_snapshot_moves_a_lagging_ledger_to_the_checkpoint_and_it_continues() -> None:
    gen, source, laggard = _source_and_laggard()
    snapshot = decode_snapshot(export_snapshot(source.db).chunks(chunk_bytes_max=200))
    head = install_snapshot(laggard, snapshot, trusted_digest=source.checkpoint(9).digest, proof=PROOF)
    assert head.height == 9 and laggard.head == head
    assert laggard.floor == 9 and laggard.latest_checkpoint == source.checkpoint(9)
    assert laggard.checkpoint_proof(9) == PROOF  # it can serve the snapshot in turn
    assert export_snapshot(laggard.db).checkpoint == source.checkpoint(9)
    for h in range(10, source.height + 1):
        block = source.block(h)
        laggard.commit_block(block, source.certificate(h), gen.executor.apply_block(laggard.state(), block))
    assert laggard.head == source.head
    assert full_state_root(laggard.db) == full_state_root(source.db)


@pytest.mark.parametrize("how", ["digest", "entry"])
def test_install_snapshot_refused_leaves_the_ledger_untouched(how: str) -> None:
    _, source, laggard = _source_and_laggard()
    snapshot = export_snapshot(source.db)
    digest = source.checkpoint(9).digest
    if how == "digest":
        digest = bytes(32)
    else:
        key, value = snapshot.entries[0]
        entries = ((key, value[:-1] + bytes([value[-1] ^ 1])), *snapshot.entries[1:])
        snapshot = type(snapshot)(snapshot.checkpoint, snapshot.genesis_hash, snapshot.block,
                                  snapshot.certificate, entries)  # fmt: skip
    before, head = _dump(laggard.db), laggard.head
    with pytest.raises(SnapshotError):
        install_snapshot(laggard, snapshot, trusted_digest=digest, proof=PROOF)
    assert _dump(laggard.db) == before and laggard.head == head
