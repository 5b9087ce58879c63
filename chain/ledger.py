"""The ledger: committed blocks, certificates, receipts, indexes, state and the head, on a KeyValueDB.

Theory of operation
-------------------
:meth:`Ledger.commit_block` writes everything a committed block changes in ONE write batch
(synced by default): the block, its commit certificate, its receipts, the executor's state
writes, the transaction index (tx hash -> height, index), the hash -> height index, the
checkpoint bookkeeping (below) and, last, the head pointer. LevelDB applies a batch
atomically, so after a crash a reopened ledger sees either the old head with the old state or
the new head with the new state, never a mixture. Nothing else writes ledger keys, except
:mod:`chain.checkpoint` (pruning and snapshot restore), also in atomic batches.

Before anything is written the block is checked against the head: height = head + 1, parent
hash = head hash, header state root = head state commitment, the chain id, the block's own
structure (:meth:`Block.validate_structure`: tx root, last commit), the certificate names
this block, one receipt per transaction in order. A failed check raises
:class:`InvalidBlock` and writes nothing.

Checkpoints (every ``checkpoint_interval`` heights, genesis included) record the full Merkle
state root next to the incremental commitment; see :mod:`chain.checkpoint` for the snapshot
model (pre-images of state keys changed since the latest checkpoint, kept in the same batch).

Invariants
----------
* the transaction index maps a hash to the inclusion that executed it (a receipt with gas
  used), or, while none did, to the first inclusion (a no-effect rejection: a block may carry
  a transaction whose nonce is stale or already used).
* ``floor <= head.height``; every block, certificate and receipt list in ``[floor, head]`` is
  stored (the certificate of block 0 does not exist; a block restored from a snapshot has no
  receipts).
* ``head.state_root`` is the commitment of the state stored under the state prefixes.
* the latest checkpoint is at or below the head, and pre-images exist exactly for the state
  keys written since it.

Threads: one writer. The node may run :meth:`Ledger.commit_block` in a worker thread (a big
synced batch blocks) while reads run elsewhere on a LevelDB: the in-memory head moves only
after the batch is durable, so a read never sees a height the database does not hold yet
(state reads made while the batch lands may already see the new balances; build blocks only
between commits).

Callers: the node (commit after consensus delivers, reads for the API and sync), the
simulator, ``phalanx demo`` and the chain benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chain._ledger_records import (
    Checkpoint,
    GenesisMismatch,
    Head,
    InvalidBlock,
    LedgerCorrupt,
    LedgerError,
    NotFound,
    OverlayView,
    Pruned,
    decode_checkpoint,
    decode_head,
    decode_height,
    decode_receipts,
    decode_tx_location,
    encode_head,
    encode_height,
    encode_preimage,
    encode_receipts,
    encode_tx_location,
    read_latest_checkpoint,
)
from chain.block import Block, CommitCertificate, decode_block, decode_certificate
from chain.db import schema
from chain.db.base import KeyValueDB
from chain.encoding import encode, split_list
from chain.errors import ChainError, DecodeError
from chain.genesis import Genesis, genesis_block
from chain.receipt import Receipt, decode_receipt
from chain.state import (
    EMPTY_STATE_COMMITMENT,
    Account,
    StateDB,
    full_state_root,
    read_account_fields,
)
from chain.tx import Transaction, decode_transaction

__all__ = [
    "CHECKPOINTS_ON_DEMAND",
    "GenesisMismatch",
    "Head",
    "InvalidBlock",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "NotFound",
    "Pruned",
    "TxLocation",
]


#: A ``checkpoint_interval`` that turns automatic checkpoints off (only genesis is one): the
#: node's consensus driver makes checkpoints on demand (:meth:`Ledger.checkpoint_head`) at
#: the engine's checkpoint sequence numbers, so a ledger checkpoint is exactly the state a
#: quorum signs (see :mod:`node.snapshot_sync`).
CHECKPOINTS_ON_DEMAND = 1 << 62
#: Bound on the ledger's cache of head accounts (entries; the cache is cleared past it).
HEAD_ACCOUNTS_MAX = 200_000


class _BlockResult(Protocol):
    """What the ledger needs from :class:`chain.executor.BlockResult`."""

    @property
    def receipts(self) -> Sequence[Receipt]: ...

    @property
    def state_root(self) -> bytes: ...

    @property
    def writes(self) -> Mapping[bytes, bytes | None]: ...

    @property
    def accounts(self) -> Mapping[bytes, tuple[int, int, bytes]]: ...


@dataclass(frozen=True)
class TxLocation:
    """Where a committed transaction is: the transaction, its block height, index and receipt."""

    tx: Transaction
    height: int
    index: int
    receipt: Receipt


class Ledger:
    """The committed chain on a :class:`~chain.db.base.KeyValueDB`; open with :meth:`open`.

    A ledger object is the only writer of its database (one process owns one database).
    """

    def __init__(
        self,
        db: KeyValueDB,
        *,
        chain_id: int,
        genesis_hash: bytes,
        head: Head,
        floor: int,
        checkpoint_interval: int,
        latest_checkpoint: Checkpoint,
        preserved: set[bytes],
        snapshots: bool,
        exportable: bool,
    ) -> None:
        self._db = db
        self.chain_id = chain_id
        self.genesis_hash = genesis_hash
        self._head = head
        self._floor = floor
        self.checkpoint_interval = checkpoint_interval
        self._latest_checkpoint = latest_checkpoint
        self._preserved = preserved
        self._snapshots = snapshots
        # True while the pre-images since the latest checkpoint are complete (meta:preimages).
        self._exportable = exportable
        # Accounts as of the head, as recent commits wrote them (see _remember_accounts).
        self._head_accounts: dict[bytes, tuple[int, int, bytes]] = {}

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        db: KeyValueDB,
        genesis: Genesis,
        *,
        checkpoint_interval: int | None = None,
        snapshots: bool = True,
    ) -> Ledger:
        """Open the ledger in ``db``, creating block 0 and the genesis state if ``db`` is empty.

        Args:
            db: the database (empty, or created earlier from the same genesis).
            genesis: the chain's genesis.
            checkpoint_interval: blocks between checkpoints (default: the genesis parameter).
            snapshots: keep the pre-images that make the latest checkpoint exportable as a
                snapshot (see :mod:`chain.checkpoint`); off saves one read per changed key.

        Returns:
            The ledger, with its head loaded.

        Raises:
            GenesisMismatch: the database was created from another genesis.
            LedgerCorrupt: the database holds data but no (or a damaged) ledger.
        """
        interval = (
            genesis.checkpoint_interval if checkpoint_interval is None else checkpoint_interval
        )
        if interval < 1:
            raise LedgerError(f"checkpoint_interval must be >= 1, got {interval}")
        expected = genesis.hash
        stored = db.get(schema.GENESIS_HASH_KEY)
        if stored is None:
            if next(iter(db.iterate()), None) is not None:
                raise LedgerCorrupt("the database holds data but no ledger (no genesis record)")
            _write_genesis(db, genesis, expected)
        elif stored != expected:
            raise GenesisMismatch(
                f"the database was created from genesis {stored.hex()}, "
                f"not from the given genesis {expected.hex()}"
            )
        raw_head = db.get(schema.HEAD_KEY)
        raw_floor = db.get(schema.FLOOR_KEY)
        if raw_head is None or raw_floor is None:
            raise LedgerCorrupt("the database has a genesis record but no head or floor")
        head = decode_head(raw_head)
        floor = decode_height(raw_floor, "floor")
        latest = read_latest_checkpoint(db)
        if latest is None or latest.height > head.height or floor > head.height:
            raise LedgerCorrupt("head, floor and latest checkpoint are inconsistent")
        preserved = {
            schema.state_key_of_preimage(k)
            for k, _ in db.iterate(schema.CHECKPOINT_PREIMAGE_PREFIX)
        }
        marker = db.get(schema.PREIMAGES_KEY)
        exportable = marker is not None and decode_height(marker, "pre-images") == latest.height
        return cls(
            db,
            chain_id=genesis.chain_id,
            genesis_hash=expected,
            head=head,
            floor=floor,
            checkpoint_interval=interval,
            latest_checkpoint=latest,
            preserved=preserved,
            snapshots=snapshots,
            exportable=exportable,
        )

    # ------------------------------------------------------------------ head

    @property
    def db(self) -> KeyValueDB:
        return self._db

    @property
    def head(self) -> Head:
        """The last committed block's height, hash, state commitment and timestamp."""
        return self._head

    @property
    def height(self) -> int:
        return self._head.height

    @property
    def state_root(self) -> bytes:
        """The state commitment after the head block (the next header's ``state_root``)."""
        return self._head.state_root

    @property
    def floor(self) -> int:
        """The lowest height whose block is still stored."""
        return self._floor

    @property
    def latest_checkpoint(self) -> Checkpoint:
        return self._latest_checkpoint

    def is_checkpoint_height(self, height: int) -> bool:
        return height % self.checkpoint_interval == 0

    # ------------------------------------------------------------------ commit

    def commit_block(
        self,
        block: Block,
        certificate: CommitCertificate,
        result: _BlockResult,
        *,
        sync: bool = True,
    ) -> None:
        """Commit ``block`` with its certificate and execution result in one atomic batch.

        Args:
            block: the block at ``head.height + 1``.
            certificate: the commit certificate for ``block``.
            result: the executor's result of applying ``block`` on :meth:`state`.
            sync: make the batch durable before returning (on for nodes).

        Raises:
            InvalidBlock: the block does not extend the head, is malformed, or the
                certificate or receipts do not match it (nothing was written).
        """
        header = block.header
        head = self._head
        height = header.height
        if height != head.height + 1:
            raise InvalidBlock(f"block height {height} does not extend the head at {head.height}")
        if header.parent_hash != head.block_hash:
            raise InvalidBlock(
                f"block {height}: parent hash {header.parent_hash.hex()} is not the head "
                f"hash {head.block_hash.hex()}"
            )
        if header.state_root != head.state_root:
            raise InvalidBlock(
                f"block {height}: header state root {header.state_root.hex()} is not the "
                f"head state commitment {head.state_root.hex()}"
            )
        if header.chain_id != self.chain_id:
            raise InvalidBlock(f"block {height}: chain id {header.chain_id} != {self.chain_id}")
        try:
            block.validate_structure()  # tx_root, tx chain ids, duplicates, last_commit, size
        except ChainError as e:
            raise InvalidBlock(str(e)) from e
        block_hash = block.hash
        if certificate.height != height or certificate.block_hash != block_hash:
            raise InvalidBlock(f"block {height}: the certificate is for another block")
        txs = block.transactions
        receipts = list(result.receipts)
        if len(receipts) != len(txs):
            raise InvalidBlock(f"block {height}: {len(receipts)} receipts for {len(txs)} txs")
        tx_hashes = [tx.hash for tx in txs]
        for i, (tx_hash, receipt) in enumerate(zip(tx_hashes, receipts, strict=True)):
            if receipt.tx_hash != tx_hash:
                raise InvalidBlock(f"block {height}: receipt {i} is for another transaction")
        writes = dict(result.writes)
        for key in writes:
            assert key.startswith(schema.STATE_PREFIXES), f"not a state key: {key!r}"

        db = self._db
        new_head = Head(height, block_hash, result.state_root, header.timestamp)
        checkpoint: Checkpoint | None = None
        new_preserved: list[bytes] = []
        preimages: list[tuple[bytes, bytes]] = []
        if self.is_checkpoint_height(height):
            full_root = full_state_root(OverlayView(db, writes))
            checkpoint = Checkpoint(
                height=height,
                block_hash=block_hash,
                commitment=result.state_root,
                full_root=full_root,
            )
        elif self._snapshots:
            # Keep the value each key had at the latest checkpoint, the first time it changes.
            preserved = self._preserved
            for key in writes:
                if key not in preserved:
                    preimages.append(
                        (schema.make_checkpoint_preimage_key(key), encode_preimage(db.get(key)))
                    )
                    new_preserved.append(key)

        with db.write_batch(sync=sync) as batch:
            batch.put(schema.make_block_key(height), block.encoded)
            batch.put(schema.make_block_hash_key(block_hash), encode_height(height))
            batch.put(schema.make_certificate_key(height), certificate.encoded)
            batch.put(schema.make_receipts_key(height), encode_receipts(receipts))
            for index, (tx_hash, receipt) in enumerate(zip(tx_hashes, receipts, strict=True)):
                index_key = schema.make_tx_index_key(tx_hash)
                # A block may carry a transaction that is already committed (it gets a
                # no-effect rejection); the index keeps the inclusion that executed it.
                if receipt.gas_used > 0 or db.get(index_key) is None:
                    batch.put(index_key, encode_tx_location(height, index))
            for key, value in writes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            for key, value in preimages:
                batch.put(key, value)
            if checkpoint is not None:
                batch.put(schema.make_checkpoint_key(height), encode(checkpoint))
                for key in self._preserved:
                    batch.delete(schema.make_checkpoint_preimage_key(key))
                if self._snapshots:
                    batch.put(schema.PREIMAGES_KEY, encode_height(height))
                else:
                    batch.delete(schema.PREIMAGES_KEY)
            elif not self._snapshots and self._exportable:
                batch.delete(schema.PREIMAGES_KEY)  # the checkpoint state is no longer kept
            batch.put(schema.HEAD_KEY, encode_head(new_head))

        self._remember_accounts(result.accounts)   # before the head moves: see there
        self._head = new_head
        if checkpoint is not None:
            self._latest_checkpoint = checkpoint
            self._preserved = set()
            self._exportable = self._snapshots
        else:
            self._preserved.update(new_preserved)
            self._exportable = self._exportable and self._snapshots

    # ------------------------------------------------------------------ on-demand checkpoints

    def checkpoint_head(self) -> Checkpoint:
        """Make the head a checkpoint, unless it already is one; return the head's record.

        Computes the full state root (O(state)), writes the checkpoint record, drops the
        pre-images of the previous checkpoint and starts keeping new ones, in one batch. Two
        ledgers with the same head produce the same record, so its :attr:`Checkpoint.digest`
        is what validators sign when they agree on a state. Call between commits only.

        Returns:
            The checkpoint record at the head.
        """
        head = self._head
        latest = self._latest_checkpoint
        if latest.height == head.height:
            return latest
        db = self._db
        checkpoint = Checkpoint(
            height=head.height,
            block_hash=head.block_hash,
            commitment=head.state_root,
            full_root=full_state_root(db),
        )
        with db.write_batch() as batch:
            batch.put(schema.make_checkpoint_key(head.height), encode(checkpoint))
            for key in self._preserved:
                batch.delete(schema.make_checkpoint_preimage_key(key))
            if self._snapshots:
                batch.put(schema.PREIMAGES_KEY, encode_height(head.height))
            else:
                batch.delete(schema.PREIMAGES_KEY)
        self._latest_checkpoint = checkpoint
        self._preserved = set()
        self._exportable = self._snapshots
        return checkpoint

    def store_checkpoint_proof(self, height: int, proof: bytes) -> None:
        """Keep ``proof`` (a quorum's signatures over checkpoint ``height``; opaque here).

        Raises:
            NotFound: no checkpoint record at ``height``.
        """
        if self._db.get(schema.make_checkpoint_key(height)) is None:
            raise NotFound(f"no checkpoint stored at height {height}")
        self._db.put(schema.make_checkpoint_proof_key(height), proof)

    def checkpoint_proof(self, height: int) -> bytes:
        """The proof stored next to checkpoint ``height`` (NotFound if none)."""
        raw = self._db.get(schema.make_checkpoint_proof_key(height))
        if raw is None:
            raise NotFound(f"no checkpoint proof stored at height {height}")
        return raw

    def reload(self) -> None:
        """Re-read the head, floor and checkpoint bookkeeping from the database.

        For :func:`chain.checkpoint.install_snapshot`, which replaces the ledger's content
        in one batch underneath this object.

        Raises:
            LedgerCorrupt: the database no longer holds a consistent ledger of this chain.
        """
        db = self._db
        raw_head, raw_floor = db.get(schema.HEAD_KEY), db.get(schema.FLOOR_KEY)
        latest = read_latest_checkpoint(db)
        if db.get(schema.GENESIS_HASH_KEY) != self.genesis_hash or raw_head is None:
            raise LedgerCorrupt("the database no longer holds this chain's ledger")
        if raw_floor is None or latest is None:
            raise LedgerCorrupt("the database has a head but no floor or checkpoint")
        head = decode_head(raw_head)
        floor = decode_height(raw_floor, "floor")
        if latest.height > head.height or floor > head.height:
            raise LedgerCorrupt("head, floor and latest checkpoint are inconsistent")
        marker = db.get(schema.PREIMAGES_KEY)
        self._head_accounts.clear()
        self._head = head
        self._floor = floor
        self._latest_checkpoint = latest
        self._preserved = {
            schema.state_key_of_preimage(k)
            for k, _ in db.iterate(schema.CHECKPOINT_PREIMAGE_PREFIX)
        }
        self._exportable = (
            marker is not None and decode_height(marker, "pre-images") == latest.height
        )

    # ------------------------------------------------------------------ reads

    def _check_height(self, height: int, what: str) -> None:
        if not 0 <= height <= self._head.height:
            raise NotFound(f"no {what} at height {height}: the head is at {self._head.height}")
        if height < self._floor:
            raise Pruned(
                f"the {what} at height {height} was pruned; the lowest stored height is "
                f"{self._floor}"
            )

    def _stored(self, key: bytes, height: int, what: str) -> bytes:
        self._check_height(height, what)
        raw = self._db.get(key)
        if raw is None:
            raise LedgerCorrupt(f"the {what} at height {height} is missing below the head")
        return raw

    def block(self, height: int) -> Block:
        """The committed block at ``height``.

        Raises:
            NotFound: above the head. Pruned: below the floor.
        """
        raw = self._stored(schema.make_block_key(height), height, "block")
        try:
            return decode_block(raw)
        except DecodeError as e:
            raise LedgerCorrupt(f"stored block {height}: {e}") from e

    def block_by_hash(self, block_hash: bytes) -> Block:
        """The committed block with this hash (NotFound if unknown or pruned)."""
        raw = (
            self._db.get(schema.make_block_hash_key(block_hash)) if len(block_hash) == 32 else None
        )
        if raw is None:
            raise NotFound(f"no stored block with hash {block_hash.hex()}")
        return self.block(decode_height(raw, "block hash index"))

    def certificate(self, height: int) -> CommitCertificate:
        """The commit certificate of the block at ``height`` (block 0 has none: NotFound)."""
        if height == 0:
            self._check_height(0, "certificate")
            raise NotFound("block 0 (genesis) has no commit certificate")
        raw = self._stored(schema.make_certificate_key(height), height, "certificate")
        try:
            return decode_certificate(raw)
        except DecodeError as e:
            raise LedgerCorrupt(f"stored certificate {height}: {e}") from e

    def receipts(self, height: int) -> list[Receipt]:
        """The receipts of the block at ``height``, one per transaction, in order."""
        self._check_height(height, "receipts")
        raw = self._db.get(schema.make_receipts_key(height))
        if raw is None:
            if height == self._floor:
                raise NotFound(f"the receipts of block {height} are not stored (restored snapshot)")
            raise LedgerCorrupt(f"the receipts at height {height} are missing below the head")
        try:
            return decode_receipts(raw)
        except DecodeError as e:
            raise LedgerCorrupt(f"stored receipts {height}: {e}") from e

    def transaction(self, tx_hash: bytes) -> TxLocation:
        """Find a committed transaction by hash, with its height, index and receipt.

        Raises:
            NotFound: unknown, or its block was pruned.
        """
        raw = self._db.get(schema.make_tx_index_key(tx_hash)) if len(tx_hash) == 32 else None
        if raw is None:
            raise NotFound(f"no committed transaction {tx_hash.hex()}")
        height, index = decode_tx_location(raw)
        raw_block = self._stored(schema.make_block_key(height), height, "block")
        raw_receipts = self._stored(schema.make_receipts_key(height), height, "receipts")
        # Decode only the one transaction and receipt, not the whole block (2,000 receipts
        # through the generic decoder would take ~100 ms).
        try:
            txs = split_list(split_list(raw_block, "block")[1], "block.transactions")
            receipts = split_list(raw_receipts, "receipts")
            if index >= len(txs) or index >= len(receipts):
                raise LedgerCorrupt(f"index of tx {tx_hash.hex()} points past block {height}")
            tx = decode_transaction(txs[index])
            receipt = decode_receipt(receipts[index])
        except DecodeError as e:
            raise LedgerCorrupt(f"stored block or receipts {height}: {e}") from e
        if tx.hash != tx_hash or receipt.tx_hash != tx_hash:
            raise LedgerCorrupt(f"index of tx {tx_hash.hex()} points at another transaction")
        return TxLocation(tx, height, index, receipt)

    def checkpoint(self, height: int) -> Checkpoint:
        """The checkpoint record at ``height`` (NotFound if none is stored there)."""
        raw = self._db.get(schema.make_checkpoint_key(height))
        if raw is None:
            raise NotFound(f"no checkpoint stored at height {height}")
        try:
            return decode_checkpoint(raw)
        except DecodeError as e:
            raise LedgerCorrupt(f"stored checkpoint {height}: {e}") from e

    def state(self) -> StateDB:
        """A fresh state overlay at the head (writes stay in memory until committed)."""
        return StateDB(self._db, self._head.state_root, head_accounts=self._head_accounts)

    def account(self, address: bytes) -> Account:
        """The account at ``address`` in the head state (empty if it does not exist)."""
        nonce, balance, code_hash = self.account_fields(address)
        return Account(nonce=nonce, balance=balance, code_hash=code_hash)

    def account_fields(self, address: bytes) -> tuple[int, int, bytes]:
        """``(nonce, balance, code_hash)`` of ``address`` in the head state, without
        building an :class:`Account` (the mempool asks this for every admission)."""
        got = self._head_accounts.get(address)
        return read_account_fields(self._db, address) if got is None else got

    def _remember_accounts(self, accounts: Mapping[bytes, tuple[int, int, bytes]]) -> None:
        """Keep the accounts a commit wrote, so the next blocks and admissions read them from
        memory: a loaded chain's senders and recipients change every block, and reading each
        back from LevelDB (a get and a decode) was a tenth of a node's CPU.

        Only commits fill this cache, never reads: a read racing a commit in another thread
        (admission runs beside block execution) could otherwise store a value older than the
        commit's. Called after the batch is written and before the head moves, so whoever
        sees the new head sees these values (a reader still at the old head may get old or
        new values in between, as it could from the db alone). Cleared when it passes
        ``HEAD_ACCOUNTS_MAX`` entries and when the db is replaced underneath (:meth:`reload`).
        """
        cache = self._head_accounts
        if len(cache) > HEAD_ACCOUNTS_MAX:
            cache.clear()
        cache.update(accounts)   # decoded by the executor's StateDB.commit: no decode here

    # ------------------------------------------------------------------ pruning

    def prune_below(self, height: int, *, batch_heights_max: int = 256) -> int:
        """Delete blocks, certificates, receipts, tx index and old checkpoints below ``height``.

        Used by :func:`chain.checkpoint.prune`, which picks a safe ``height``. Works in atomic
        batches of at most ``batch_heights_max`` heights, each also raising the floor, so a
        crash leaves a consistent (partly pruned) ledger.

        Returns:
            The number of heights pruned.

        Raises:
            LedgerError: ``height`` is above the latest checkpoint.
        """
        if height > self._latest_checkpoint.height:
            raise LedgerError(
                f"cannot prune below {height}: the latest checkpoint is at "
                f"{self._latest_checkpoint.height}"
            )
        pruned = 0
        db = self._db
        while self._floor < height:
            start = self._floor
            stop = min(height, start + batch_heights_max)
            with db.write_batch() as batch:
                for h in range(start, stop):
                    raw = db.get(schema.make_block_key(h))
                    if raw is not None:
                        block = decode_block(raw)
                        for tx in block.transactions:
                            index_key = schema.make_tx_index_key(tx.hash)
                            location = db.get(index_key)
                            # The index may point at a later inclusion of the same transaction.
                            if location is not None and decode_tx_location(location)[0] == h:
                                batch.delete(index_key)
                        batch.delete(schema.make_block_hash_key(block.hash))
                    batch.delete(schema.make_block_key(h))
                    batch.delete(schema.make_certificate_key(h))
                    batch.delete(schema.make_receipts_key(h))
                    batch.delete(schema.make_checkpoint_key(h))
                    batch.delete(schema.make_checkpoint_proof_key(h))
                batch.put(schema.FLOOR_KEY, encode_height(stop))
            self._floor = stop
            pruned += stop - start
        return pruned


def _write_genesis(db: KeyValueDB, genesis: Genesis, genesis_hash: bytes) -> None:
    """Block 0, the initial balances and the first checkpoint, in one batch."""
    block = genesis_block(genesis)
    state = StateDB(db, EMPTY_STATE_COMMITMENT)
    for address, amount in genesis.balances:
        state.add_balance(address, amount)
    commit = state.commit()
    writes = dict(commit.writes)
    checkpoint = Checkpoint(
        height=0,
        block_hash=block.hash,
        commitment=commit.commitment,
        full_root=full_state_root(OverlayView(db, writes)),
    )
    head = Head(0, block.hash, commit.commitment, block.header.timestamp)
    with db.write_batch() as batch:
        batch.put(schema.make_block_key(0), block.encoded)
        batch.put(schema.make_block_hash_key(block.hash), encode_height(0))
        batch.put(schema.make_receipts_key(0), encode_receipts([]))
        for key, value in writes.items():
            if value is not None:
                batch.put(key, value)
        batch.put(schema.make_checkpoint_key(0), encode(checkpoint))
        batch.put(schema.FLOOR_KEY, encode_height(0))
        batch.put(schema.PREIMAGES_KEY, encode_height(0))
        batch.put(schema.GENESIS_HASH_KEY, genesis_hash)
        batch.put(schema.HEAD_KEY, encode_head(head))
