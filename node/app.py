"""The blockchain application that consensus orders blocks for.

Theory of operation
-------------------
Consensus orders opaque values; for a Phalanx node a value is one canonically encoded
block. This module is the bridge between the engine's contract and ``chain/``:

* **Digest.** The engine signs the *block hash* (the header hash), so a commit certificate
  is a certificate for that block. :meth:`ChainApp.digest` slices the header out of the
  block's RLP without decoding the transactions. Bytes that are not a block get a digest
  under another domain, and validity refuses them.
* **Building.** The primary proposes block ``head + 1`` on top of its head, with the parent's
  commit certificate, transactions selected from the mempool, and a timestamp no earlier
  than the parent's (:meth:`build_proposal`). One block is in flight at a time: the node
  only proposes again once its previous proposal was delivered, or the view changed.
* **Validity** (:meth:`check_proposal`, the engine's validity callback): strict decoding,
  chain id, structure (tx root, last-commit hash), size bounds, a proposer that is a
  validator, a timestamp at most ``timestamp_drift_ms_max`` ahead of the validators' median
  time and after the parent's when the block extends our head (no lower bound around the
  median: a value re-proposed after a view change is legitimately old; see
  :mod:`node.clock`, which holds the rule), and every transaction signature valid (verified once per node: the
  mempool's admissions and earlier checks are remembered). Whether the block *extends* the
  head is deliberately not part of validity: with several sequence numbers in flight a
  backup may not have applied the parent yet.
* **Delivery** (:meth:`apply_delivery`): a delivered block that extends the head (height,
  parent hash, state root, and a valid certificate for the parent in ``last_commit``) is
  executed and committed with its own certificate in one atomic ledger batch. Anything
  else -- a null request, a block built on a stale head after a view change, undecodable
  bytes -- is a deterministic no-op at every honest node, because every honest node sees
  the same sequence of deliveries. The consensus sequence number goes into the stored
  certificate so it can be verified again later (by peers catching up).

Threading: :meth:`execute` (execution and the synced batch) may run in a worker thread; the
mempool is touched only by :meth:`finish_delivery`, which the driver calls back on the Trio
thread. Nothing here imports trio.

Called by ``node.driver`` (validity, proposals, deliveries) and ``node.rpc_methods``
(reads, transaction admission).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rlp.codec

from chain.block import (
    EMPTY_CERTIFICATE,
    Block,
    CommitCertificate,
    build_block,
    decode_block,
    make_certificate,
)
from chain.errors import ChainError
from chain.executor import BlockResult, Executor
from chain.genesis import Genesis
from chain.keys import PrivateKey
from chain.ledger import Head, Ledger
from chain.mempool import Mempool, MempoolConfig
from chain.runtime import ContractRuntime
from chain.tx import Transaction
from node.clock import timestamp_problem

__all__ = ["ApplyOutcome", "ChainApp", "LedgerStateView", "block_digest"]

log = logging.getLogger("phalanx.node.app")

_NOT_A_BLOCK = b"phalanx/not-a-block"
VERIFIED_CACHE_MAX = 200_000
DECODED_CACHE_MAX = 64
OWN_BUILT_MAX = 64
STATE_VIEW_ACCOUNTS_MAX = 50_000


def block_digest(value: bytes) -> bytes:
    """The block hash of an encoded block (its header's SHA-256), without decoding the txs.

    For bytes that do not start like a block, a hash under another domain: still
    deterministic, never equal to a real block hash, and refused by validity.
    """
    try:
        _, typ, _, start = rlp.codec.consume_length_prefix(value, 0)
        if typ is not list:
            raise ValueError("not a list")
        _, htyp, hlen, hstart = rlp.codec.consume_length_prefix(value, start)
        if htyp is not list or hstart + hlen > len(value):
            raise ValueError("no header")
        return hashlib.sha256(value[start : hstart + hlen]).digest()
    except Exception:
        return hashlib.sha256(_NOT_A_BLOCK + value).digest()


class LedgerStateView:
    """Nonces and balances at one ledger head, for mempool admission and selection.

    Each account is read from the ledger (its cache of the accounts recent commits wrote,
    else a database read and a decode) at most once per view: admission asks for a sender's
    nonce and balance for every transaction, and the proposer asks for every pending
    sender's nonce per block, so uncached reads were a large share of a loaded node's CPU. The node makes a fresh view after every commit
    (:meth:`ChainApp.finish_delivery`), so a view never outlives its head by more than the
    commit in flight; a value read from the previous head during that commit is at worst
    an older nonce or balance of a sender whose transactions the block included, and
    :meth:`chain.mempool.Mempool.update` re-checks exactly those senders with the new view.
    The cache holds at most ``accounts_max`` accounts (cleared when full).
    """

    def __init__(self, ledger: Ledger, accounts_max: int = STATE_VIEW_ACCOUNTS_MAX) -> None:
        self._ledger = ledger
        self._accounts_max = accounts_max
        self._accounts: dict[bytes, tuple[int, int]] = {}

    def _read(self, address: bytes) -> tuple[int, int]:
        got = self._accounts.get(address)
        if got is None:
            nonce, balance, _ = self._ledger.account_fields(address)
            got = (nonce, balance)
            if len(self._accounts) >= self._accounts_max:
                self._accounts.clear()
            self._accounts[address] = got
        return got

    def nonce(self, address: bytes) -> int:
        return self._read(address)[0]

    def balance(self, address: bytes) -> int:
        return self._read(address)[1]


@dataclass(frozen=True)
class ApplyOutcome:
    """What one delivery did.

    Attributes:
        seq: the consensus sequence number delivered.
        block: the committed block, or None for a no-op.
        result: the execution result, or None for a no-op.
        skipped: why the delivery was a no-op ("" when a block was committed).
        state_root: the state commitment after the delivery.
        seconds: time spent executing and committing the block (0 for a no-op).
    """

    seq: int
    block: Block | None
    result: BlockResult | None
    skipped: str
    state_root: bytes
    seconds: float = 0.0


class ChainApp:
    """Ledger, mempool and executor of one node, seen from consensus.

    Args:
        genesis: the chain's genesis.
        ledger: the opened ledger.
        key: this node's validator key (None for a non-validator).
        mempool_config: mempool bounds.
        runtime: the contract runtime (None disables contracts).
        certificate_ok: checks a stored certificate's votes (engine-specific); gets the
            certificate and a function returning the certified block's encoding (only
            engines that sign the value itself call it).
        now_ms: the local clock in milliseconds (injected; tests pass a fake).
        block_txs_max / block_bytes_max: proposal bounds.
        timestamp_drift_ms_max: how far a proposal's timestamp may be ahead of the median time.
        median_time_ms: the validators' median time (``node.clock.MedianTime.now_ms``);
            ``now_ms`` when not given.
    """

    def __init__(
        self,
        genesis: Genesis,
        ledger: Ledger,
        *,
        key: PrivateKey | None,
        mempool_config: MempoolConfig,
        runtime: ContractRuntime | None,
        certificate_ok: Callable[[CommitCertificate, Callable[[], bytes]], bool],
        now_ms: Callable[[], int],
        block_txs_max: int = 2000,
        block_bytes_max: int = 4 * 1024 * 1024,
        timestamp_drift_ms_max: int = 10_000,
        median_time_ms: Callable[[], int] | None = None,
    ) -> None:
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.ledger = ledger
        self.key = key
        self.executor = Executor(genesis.chain_id, runtime)
        self.mempool = Mempool(genesis.chain_id, mempool_config, LedgerStateView(ledger))
        self.certificate_ok = certificate_ok
        self.now_ms = now_ms
        self.block_txs_max = block_txs_max
        self.block_bytes_max = block_bytes_max
        self.timestamp_drift_ms_max = timestamp_drift_ms_max
        self.median_time_ms = median_time_ms or now_ms
        self._own_built: OrderedDict[bytes, None] = OrderedDict()  # blocks we built (bounded)
        self.timestamp_rejections = 0
        self.validator_addresses = tuple(v.address for v in genesis.validators)
        self._validator_set = frozenset(self.validator_addresses)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._decoded: OrderedDict[bytes, Block] = OrderedDict()
        self._head_encoded: tuple[bytes, bytes] | None = None  # (hash, encoding) of the head
        self.head_seq = 0 if ledger.height == 0 else int(ledger.certificate(ledger.height).seq)
        self.last_seq = self.head_seq
        self.skipped_deliveries = 0
        self.last_skip_reason = ""
        self.invalid_proposals = 0
        self.last_invalid_reason = ""

    # ------------------------------------------------------------------ reads

    @property
    def head(self) -> Head:
        return self.ledger.head

    @property
    def state_root(self) -> bytes:
        return self.ledger.head.state_root

    def state_id(self) -> bytes:
        """What the node reports to consensus as its state after a sequence number.

        ``H(height || block hash || state commitment)``: it names the whole chain state, so
        two validators with the same id at one checkpoint seq hold the same chain. No-op
        deliveries leave it unchanged, which every honest node agrees on.
        """
        head = self.ledger.head
        return hashlib.sha256(
            b"phalanx/state-id" + head.height.to_bytes(8, "big") + head.block_hash
            + head.state_root
        ).digest()

    def head_encoded(self) -> bytes:
        """The encoded head block (cached after our own commits)."""
        head = self.ledger.head
        cached = self._head_encoded
        if cached is not None and cached[0] == head.block_hash:
            return cached[1]
        return bytes(self.ledger.block(head.height).encoded)

    # ------------------------------------------------------------------ admission

    def admit(self, tx: Transaction | bytes) -> bytes:
        """Add a transaction to the mempool (raises ``MempoolRejected``); returns its hash."""
        tx_hash = self.mempool.add(tx, verified=self._verified)
        self._remember_verified(tx_hash)
        return tx_hash

    def _remember_verified(self, tx_hash: bytes) -> None:
        self._verified[tx_hash] = None
        if len(self._verified) > VERIFIED_CACHE_MAX:
            self._verified.popitem(last=False)

    # ------------------------------------------------------------------ proposing

    def build_proposal(self) -> bytes:
        """Encode block ``head + 1`` with the best executable mempool transactions."""
        if self.key is None:
            raise ChainError("only a validator builds blocks")
        head = self.ledger.head
        last_commit = (
            EMPTY_CERTIFICATE if head.height == 0 else self.ledger.certificate(head.height)
        )
        txs = self.mempool.select(self.block_txs_max, self.block_bytes_max - 64 * 1024)
        block = build_block(
            chain_id=self.chain_id,
            height=head.height + 1,
            parent_hash=head.block_hash,
            timestamp=max(self.now_ms(), head.timestamp + 1),
            proposer=self.key.address,
            state_root=head.state_root,
            transactions=txs,
            last_commit=last_commit,
        )
        self._cache(block)
        self._own_built[block.hash] = None
        while len(self._own_built) > OWN_BUILT_MAX:
            self._own_built.popitem(last=False)
        return bytes(block.encoded)

    def forge_value(self) -> bytes:
        """A valid-looking conflicting proposal (for Byzantine test behaviours only)."""
        if self.key is None:
            return b""
        head = self.ledger.head
        last_commit = (
            EMPTY_CERTIFICATE if head.height == 0 else self.ledger.certificate(head.height)
        )
        block = build_block(
            chain_id=self.chain_id,
            height=head.height + 1,
            parent_hash=head.block_hash,
            timestamp=max(self.now_ms(), head.timestamp + 1) + 1 + self.invalid_proposals % 7,
            proposer=self.key.address,
            state_root=head.state_root,
            transactions=(),
            last_commit=last_commit,
        )
        return bytes(block.encoded)

    def _cache(self, block: Block) -> None:
        self._decoded[block.hash] = block
        while len(self._decoded) > DECODED_CACHE_MAX:
            self._decoded.popitem(last=False)

    # ------------------------------------------------------------------ validity

    def digest(self, value: bytes) -> bytes:
        return block_digest(value)

    def check_proposal(self, value: bytes) -> bool:
        """The engine's validity callback. Never raises for bad bytes."""
        reason = self._proposal_problem(value)
        if reason:
            self.invalid_proposals += 1
            self.last_invalid_reason = reason
            log.warning("refusing proposal: %s", reason)
            return False
        return True

    def _proposal_problem(self, value: bytes) -> str:
        if len(value) > self.block_bytes_max:
            return f"block of {len(value)} bytes exceeds {self.block_bytes_max}"
        digest = block_digest(value)
        block = self._decoded.get(digest)
        if block is None:
            try:
                block = decode_block(value, known=self.mempool.get)
            except ChainError as e:
                return f"undecodable block: {e}"
        try:
            block.validate_structure()
        except ChainError as e:
            return f"malformed block: {e}"
        header = block.header
        if header.chain_id != self.chain_id:
            return f"block for chain {header.chain_id}, this is chain {self.chain_id}"
        if len(block.transactions) > self.block_txs_max:
            return f"{len(block.transactions)} transactions exceed {self.block_txs_max}"
        if header.proposer not in self._validator_set:
            return "proposer is not a validator"
        # A height at or below our head is NOT refused: an honest primary that lags (or a
        # backup's liveness proposal that raced a commit) produces such blocks, and refusing
        # them leaves the primary's slot unfinished until a view change. They are ordered
        # and become deterministic no-ops at delivery.
        problem = self._timestamp_problem(block)
        if problem:
            self.timestamp_rejections += 1
            return problem
        for tx in block.transactions:
            if tx.hash in self._verified:
                continue
            if not tx.verify_signature():
                return f"transaction 0x{tx.hash.hex()} has a bad signature"
            self._remember_verified(tx.hash)
        self._cache(block)
        return ""

    def _timestamp_problem(self, block: Block) -> str:
        if block.hash in self._own_built:  # we trust our own clock; the others judge it
            return ""
        head = self.ledger.head
        header = block.header
        extends = header.height == head.height + 1 and header.parent_hash == head.block_hash
        return timestamp_problem(header.timestamp, median_ms=self.median_time_ms(),
                                 bound_ms=self.timestamp_drift_ms_max,
                                 parent_timestamp_ms=head.timestamp if extends else None)

    # ------------------------------------------------------------------ delivery

    def execute(self, seq: int, view: int, value: bytes, signatures: Sequence[tuple[int, bytes]]) -> ApplyOutcome:
        """Execute and durably commit a delivered value, or decide it is a no-op.

        Safe to run in a worker thread: touches the ledger and executor, not the mempool.
        """
        self.last_seq = max(self.last_seq, seq)
        if not value:
            return self._skip(seq, "null request")
        digest = block_digest(value)
        block = self._decoded.pop(digest, None)
        if block is None:
            try:
                block = decode_block(value)
                block.validate_structure()
            except ChainError as e:
                return self._skip(seq, f"undecodable block: {e}")
        head = self.ledger.head
        header = block.header
        if header.height != head.height + 1 or header.parent_hash != head.block_hash:
            return self._skip(seq, f"block {header.height} does not extend head {head.height}")
        if header.state_root != head.state_root:
            return self._skip(seq, f"block {header.height} carries a stale state root")
        if header.height > 1 and not self._parent_certificate_ok(block.last_commit, head):
            return self._skip(seq, f"block {header.height} carries an invalid parent certificate")
        started = time.perf_counter()
        result = self.executor.apply_block(self.ledger.state(), block, verified=self._verified)
        certificate = make_certificate(
            height=header.height,
            seq=seq,
            view=view,
            block_hash=block.hash,
            votes=signatures,
        )
        self.ledger.commit_block(block, certificate, result)
        self._head_encoded = (block.hash, bytes(block.encoded))
        self.head_seq = seq
        return ApplyOutcome(seq, block, result, "", result.state_root,
                            time.perf_counter() - started)

    def apply_synced(self, block: Block, certificate: CommitCertificate) -> ApplyOutcome:
        """Verify and commit a block fetched from a peer (block sync).

        The block must extend the head and ``certificate`` must be a valid quorum
        certificate for it. Safe to run in a worker thread (no mempool access).

        Raises:
            ChainError: the block does not extend the head or the certificate is invalid.
        """
        head = self.ledger.head
        header = block.header
        if header.height != head.height + 1 or header.parent_hash != head.block_hash:
            raise ChainError(f"synced block {header.height} does not extend head {head.height}")
        if certificate.height != header.height or certificate.block_hash != block.hash:
            raise ChainError(f"certificate does not name block {header.height}")
        block.validate_structure()
        if header.chain_id != self.chain_id:
            raise ChainError(f"synced block is for chain {header.chain_id}")
        encoded = bytes(block.encoded)
        if not self.certificate_ok(certificate, lambda: encoded):
            raise ChainError(f"invalid certificate for synced block {header.height}")
        started = time.perf_counter()
        result = self.executor.apply_block(self.ledger.state(), block, verified=self._verified)
        self.ledger.commit_block(block, certificate, result)
        self._head_encoded = (block.hash, encoded)
        self.head_seq = int(certificate.seq)
        self.last_seq = max(self.last_seq, self.head_seq)
        return ApplyOutcome(int(certificate.seq), block, result, "", result.state_root,
                            time.perf_counter() - started)

    def _parent_certificate_ok(self, cert: CommitCertificate, head: Head) -> bool:
        if cert.height != head.height or cert.block_hash != head.block_hash:
            return False
        return self.certificate_ok(cert, self.head_encoded)

    def _skip(self, seq: int, reason: str) -> ApplyOutcome:
        self.skipped_deliveries += 1
        self.last_skip_reason = reason
        log.info("delivery %d is a no-op: %s", seq, reason)
        return ApplyOutcome(seq, None, None, reason, self.ledger.head.state_root)

    def finish_delivery(self, outcome: ApplyOutcome) -> None:
        """Update the mempool after a committed block (call on the driver's thread)."""
        if outcome.block is not None:
            self.mempool.update(outcome.block.transactions, LedgerStateView(self.ledger))
