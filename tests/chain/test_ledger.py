"""The ledger: atomic block commits, reads, indexes, rejection of bad blocks, reopening."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain._ledger_records import decode_receipts, encode_receipts
from chain.block import Block, make_certificate
from chain.db import KeyValueDB, LevelDB, MemoryDB, schema
from chain.encoding import CountableList, decode, encode
from chain.errors import DecodeError
from chain.genesis import make_dev_genesis
from chain.keys import PrivateKey
from chain.ledger import (
    GenesisMismatch,
    InvalidBlock,
    Ledger,
    LedgerCorrupt,
    LedgerError,
    NotFound,
)
from chain.params import TX_BASE_GAS
from chain.receipt import REASON_BYTES_MAX, Log, Receipt, ReceiptStatus
from chain.state import full_state_root
from chain.tx import Transaction, make_transaction
from tests.chain.chaingen import BALANCE, CHAIN_ID, ChainGen


@pytest.fixture(params=["memory", "level"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueDB]:
    store: KeyValueDB = MemoryDB() if request.param == "memory" else LevelDB(tmp_path / "db")
    yield store
    store.close()


def _dump(db: KeyValueDB) -> list[tuple[bytes, bytes]]:
    return list(db.iterate())


def test_open_empty_db_writes_genesis(db: KeyValueDB) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    assert ledger.height == 0
    block0 = ledger.block(0)
    assert block0.hash == ledger.head.block_hash
    assert ledger.block_by_hash(block0.hash) == block0
    assert ledger.receipts(0) == []
    for key in gen.keys:
        assert ledger.account(key.address).balance == BALANCE
    assert ledger.account(gen.validator.address).balance == 0
    assert ledger.latest_checkpoint.height == 0
    assert ledger.latest_checkpoint.full_root == full_state_root(db)
    with pytest.raises(NotFound, match="genesis"):
        ledger.certificate(0)


def test_commit_blocks_and_read_them_back(db: KeyValueDB) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    committed = []
    for _ in range(4):
        block, cert, result = gen.next_block(ledger)
        ledger.commit_block(block, cert, result)
        committed.append((block, cert, result))
        assert ledger.head.block_hash == block.hash
        assert ledger.state_root == result.state_root
    assert ledger.height == 4
    for block, cert, result in committed:
        h = block.header.height
        assert ledger.block(h) == block
        assert ledger.block(h).encoded == block.encoded
        assert ledger.block_by_hash(block.hash) == block
        assert ledger.certificate(h) == cert
        assert ledger.receipts(h) == list(result.receipts)
        for index, tx in enumerate(block.transactions):
            loc = ledger.transaction(tx.hash)
            assert (loc.height, loc.index) == (h, index)
            assert loc.tx == tx
            assert loc.receipt == result.receipts[index]
            assert loc.receipt.tx_hash == tx.hash
    # Parents chain and every header's state root is the previous head's commitment.
    for h in range(1, 5):
        assert ledger.block(h).header.parent_hash == ledger.block(h - 1).hash
    # Money moved: fees went to the proposer, nonces advanced.
    assert ledger.account(gen.validator.address).balance > 0
    assert sum(ledger.account(k.address).nonce for k in gen.keys) == 4 * gen.txs_per_block


def test_reads_out_of_range_are_clear_errors(db: KeyValueDB) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    gen.commit_next(ledger, 2)
    with pytest.raises(NotFound, match="head is at 2"):
        ledger.block(3)
    with pytest.raises(NotFound):
        ledger.receipts(99)
    with pytest.raises(NotFound, match="no stored block"):
        ledger.block_by_hash(b"\x01" * 32)
    with pytest.raises(NotFound, match="no committed transaction"):
        ledger.transaction(b"\x02" * 32)
    with pytest.raises(NotFound):
        ledger.transaction(b"short")


@pytest.mark.parametrize(
    "defect",
    ["height", "parent", "state_root", "chain_id", "tx_root", "certificate", "receipts"],
)
def test_bad_block_rejected_and_nothing_written(db: KeyValueDB, defect: str) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    gen.commit_next(ledger, 1)
    before = _dump(db)
    head = ledger.head
    block, cert, result = gen.next_block(ledger)
    changes = {
        "height": {"height": head.height + 2},
        "parent": {"parent_hash": b"\x07" * 32},
        "state_root": {"state_root": b"\x08" * 32},
        "chain_id": {"chain_id": CHAIN_ID + 1},
        "tx_root": {"tx_root": b"\x0a" * 32},
    }
    if defect in changes:
        # Forged headers, as a Byzantine peer could send them (build_block would refuse).
        bad = Block(block.header.copy(**changes[defect]), block.transactions, block.last_commit)
        bad_cert = make_certificate(height=bad.header.height, view=0, block_hash=bad.hash, votes=[])
        with pytest.raises(InvalidBlock, match=defect.replace("_", " ").split()[0]):
            ledger.commit_block(bad, bad_cert, result)
    elif defect == "certificate":
        other = make_certificate(
            height=block.header.height, view=0, block_hash=b"\x09" * 32, votes=[]
        )
        with pytest.raises(InvalidBlock, match="certificate"):
            ledger.commit_block(block, other, result)
    else:
        short = type(result)(**{**result.__dict__, "receipts": tuple(result.receipts)[:-1]})
        with pytest.raises(InvalidBlock, match="receipts"):
            ledger.commit_block(block, cert, short)
    assert _dump(db) == before
    assert ledger.head == head
    # The good block still commits afterwards.
    ledger.commit_block(block, cert, result)
    assert ledger.height == head.height + 1


def test_reopen_gives_same_head_and_continues(tmp_path: Path) -> None:
    gen = ChainGen()
    path = tmp_path / "db"
    db = LevelDB(path)
    ledger = gen.open(db)
    gen.commit_next(ledger, 3)
    head = ledger.head
    db.close()
    db = LevelDB(path, create=False)
    again = gen.open(db)
    assert again.head == head
    assert again.block(3).hash == head.block_hash
    gen.commit_next(again, 2)
    assert again.height == 5
    db.close()


def test_reopen_with_another_genesis_is_refused(db: KeyValueDB) -> None:
    gen = ChainGen()
    gen.open(db)
    other = make_dev_genesis(
        [PrivateKey.from_seed(b"\x05" * 32)], chain_id=CHAIN_ID, balances={b"\x01" * 20: 5}
    )
    with pytest.raises(GenesisMismatch, match="not from the given genesis"):
        Ledger.open(db, other)


def test_two_fresh_ledgers_fed_the_same_blocks_agree(tmp_path: Path) -> None:
    gen = ChainGen(seed=3)
    source = gen.open(MemoryDB())
    mirror_db = LevelDB(tmp_path / "mirror")
    mirror = gen.open(mirror_db)
    for _ in range(7):
        block, cert, _ = gen.next_block(source)
        # Each ledger executes the block itself on its own state.
        source.commit_block(block, cert, gen.executor.apply_block(source.state(), block))
        mirror.commit_block(block, cert, gen.executor.apply_block(mirror.state(), block))
        assert mirror.head == source.head
    assert [source.block(h).hash for h in range(8)] == [mirror.block(h).hash for h in range(8)]
    assert full_state_root(source.db) == full_state_root(mirror_db)
    mirror_db.close()


def test_unsynced_commit_is_still_atomic_and_readable(db: KeyValueDB) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    block, cert, result = gen.next_block(ledger)
    ledger.commit_block(block, cert, result, sync=False)
    assert ledger.block(1) == block


_receipts = st.lists(
    st.builds(
        Receipt,
        tx_hash=st.binary(min_size=32, max_size=32),
        status=st.sampled_from([0, 1]),
        gas_used=st.integers(0, 2**64 - 1),
        fee_paid=st.integers(0, 2**256 - 1),
        reason=st.binary(max_size=REASON_BYTES_MAX // 2),
        logs=st.lists(
            st.builds(
                Log,
                address=st.binary(min_size=20, max_size=20),
                topics=st.lists(st.binary(min_size=32, max_size=32), max_size=4).map(tuple),
                data=st.binary(max_size=80),
            ),
            max_size=2,
        ).map(tuple),
        contract_address=st.sampled_from([b"", b"\x11" * 20]),
        return_data=st.binary(max_size=120),
    ),
    max_size=6,
)


@settings(max_examples=80, deadline=None)
@given(_receipts)
def test_fast_receipt_encoding_is_the_canonical_one(receipts: list[Receipt]) -> None:
    encoded = encode_receipts(receipts)
    assert encoded == encode(receipts, CountableList(Receipt))
    assert list(decode(encoded, CountableList(Receipt))) == receipts
    assert decode_receipts(encoded) == receipts


def _generic_receipts(data: bytes) -> list[Receipt] | str:
    try:
        return list(decode(data, CountableList(Receipt)))
    except DecodeError:
        return "rejected"


def _fast_receipts(data: bytes) -> list[Receipt] | str:
    try:
        return decode_receipts(data)
    except DecodeError:
        return "rejected"


@settings(max_examples=100, deadline=None)
@given(_receipts, st.data())
def test_fast_receipt_decoding_agrees_with_the_generic_decoder(
    receipts: list[Receipt], data: st.DataObject
) -> None:
    encoded = bytearray(encode_receipts(receipts))
    if encoded:
        for _ in range(data.draw(st.integers(0, 3))):
            i = data.draw(st.integers(0, len(encoded) - 1))
            encoded[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(encoded)))
        encoded = encoded[:cut] if data.draw(st.booleans()) else encoded
    assert _fast_receipts(bytes(encoded)) == _generic_receipts(bytes(encoded))


def test_checkpoint_interval_override() -> None:
    gen = ChainGen(checkpoint_interval=5)
    ledger = gen.open(MemoryDB(), checkpoint_interval=3)
    gen.commit_next(ledger, 4)
    assert ledger.latest_checkpoint.height == 3
    with pytest.raises(LedgerError, match="must be >= 1"):
        gen.open(MemoryDB(), checkpoint_interval=0)


def test_damaged_records_are_reported_not_guessed(db: KeyValueDB) -> None:
    gen = ChainGen()
    ledger = gen.open(db)
    gen.commit_next(ledger, 2)
    db.put(schema.make_block_key(1), b"\xc3\x01\x02\x03")
    with pytest.raises(LedgerCorrupt, match="stored block 1"):
        ledger.block(1)
    db.delete(schema.make_receipts_key(2))
    with pytest.raises(LedgerCorrupt, match="missing below the head"):
        ledger.receipts(2)
    db.put(schema.HEAD_KEY, b"short")
    with pytest.raises(LedgerCorrupt, match="head record"):
        gen.open(db)


def test_a_database_with_foreign_data_is_not_taken_for_a_ledger(db: KeyValueDB) -> None:
    db.put(b"something", b"else")
    with pytest.raises(LedgerCorrupt, match="no ledger"):
        ChainGen().open(db)
    assert list(db.iterate()) == [(b"something", b"else")]


def _commit_with(gen: ChainGen, ledger: Ledger, txs: list[Transaction]) -> Block:
    """Commit the next block carrying exactly ``txs`` (a proposer may pick any)."""
    block, cert, result = gen.next_block(ledger, txs)
    ledger.commit_block(block, cert, result)
    return block


def test_a_transaction_included_again_keeps_the_index_of_its_execution(db: KeyValueDB) -> None:
    """A block may carry an already-committed transaction (it gets a no-effect rejection
    receipt); the index must keep pointing at the inclusion that executed it, also after
    the later block's neighbours are pruned, and a rejected first inclusion yields to the
    later one that executes."""
    gen = ChainGen(checkpoint_interval=2)
    ledger = gen.open(db)
    sender = gen.keys[0]
    early = make_transaction(
        sender, chain_id=CHAIN_ID, nonce=1, to=gen.keys[1].address, amount=3, fee=1,
        gas_limit=TX_BASE_GAS,
    )  # fmt: skip
    first = make_transaction(
        sender, chain_id=CHAIN_ID, nonce=0, to=gen.keys[1].address, amount=5, fee=1,
        gas_limit=TX_BASE_GAS,
    )  # fmt: skip
    _commit_with(gen, ledger, [early])  # height 1: nonce 1 is early, rejected
    assert ledger.transaction(early.hash).receipt.status == ReceiptStatus.FAILURE
    _commit_with(gen, ledger, [first])  # height 2: executes
    _commit_with(gen, ledger, [first, early])  # height 3: first again (rejected), early runs
    loc = ledger.transaction(first.hash)
    assert (loc.height, loc.index, loc.receipt.status) == (2, 0, ReceiptStatus.SUCCESS)
    loc = ledger.transaction(early.hash)
    assert (loc.height, loc.index, loc.receipt.status) == (3, 1, ReceiptStatus.SUCCESS)
    _commit_with(gen, ledger, [])  # height 4: a checkpoint, so heights below it may go
    assert ledger.prune_below(2) == 2  # drops block 1, which also carried ``early``
    assert ledger.transaction(early.hash).height == 3
    assert ledger.prune_below(3) == 1  # drops block 2: ``first`` executed there
    with pytest.raises(NotFound):
        ledger.transaction(first.hash)


def test_cached_head_accounts_read_like_a_fresh_ledger(db: KeyValueDB) -> None:
    """The ledger keeps the accounts each commit wrote; what it answers from that cache must
    be what a ledger reading only the database answers, block after block."""
    gen = ChainGen()
    ledger = gen.open(db)
    addresses = [k.address for k in gen.keys] + [gen.validator.address, b"\x77" * 20]
    for _ in range(5):
        gen.commit_next(ledger)
        fresh = Ledger.open(db, gen.genesis)          # empty cache: database reads only
        for address in addresses:
            assert ledger.account_fields(address) == fresh.account_fields(address)
            assert ledger.account(address) == fresh.account(address)
            assert ledger.state().get_account(address) == fresh.account(address)
    # The senders really are served from the cache (no database read).
    assert all(k.address in ledger._head_accounts for k in gen.keys)


def test_reload_forgets_cached_accounts(db: KeyValueDB) -> None:
    """After the database is replaced underneath (a snapshot install), the ledger reads the
    accounts it now holds, not the ones its own last commit wrote."""
    gen = ChainGen()
    ledger = gen.open(db)
    before = _dump(db)
    sender = gen.keys[0].address
    genesis_nonce = ledger.account_fields(sender)[0]
    gen.commit_next(ledger)
    assert ledger.account_fields(sender)[0] == genesis_nonce + 1
    with db.write_batch() as batch:              # put back the genesis-only database
        for key, _ in _dump(db):
            batch.delete(key)
        for key, value in before:
            batch.put(key, value)
    ledger.reload()
    assert ledger.height == 0
    assert ledger.account_fields(sender)[0] == genesis_nonce
    assert ledger.account(sender).nonce == genesis_nonce
