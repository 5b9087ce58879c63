"""The mempool: admitted, not yet committed transactions, and the proposer's batch selection.

Admission (:meth:`Mempool.add`) decodes once, runs the cheap checks, verifies the signature
once (the result is cached on the kept transaction, so the executor never re-verifies it),
then stores the decoded object. Checks, in order, each with its :class:`RejectReason`:

==========================  ===============================================================
``TOO_LARGE``               encoding longer than ``tx_bytes_max`` (checked before decoding)
``BAD_ENCODING``            not one canonical transaction
``DUPLICATE``               same hash already pending
``WRONG_CHAIN_ID``          made for another chain
``FEE_TOO_LOW``             fee per gas below ``fee_min``, or a same-nonce replacement that
                            does not pay strictly more than the pending transaction
``GAS_LIMIT_TOO_LOW``       gas limit below the intrinsic gas (:mod:`chain.params`)
``NONCE_TOO_LOW``           nonce already used at the head state
``NONCE_GAP_TOO_LARGE``     more than ``nonce_gap_max`` nonces missing between the sender's
                            executable run (head nonce, then contiguous pending nonces) and it
``SENDER_FULL``             the sender already has ``per_sender_max`` pending transactions
``INSUFFICIENT_BALANCE``    the sender's pending ``max_cost`` total (with this one) exceeds
                            its head balance, so honest blocks never fail a balance pre-check
``POOL_FULL``               no room (``tx_count_max``/``bytes_max``) and nothing to evict;
                            a new nonce is refused before its signature is verified when
                            even the first eviction victim does not qualify, so a full pool
                            sheds a flood for the price of decoding it
``BAD_SIGNATURE``           signature invalid (checked after the cheap checks)
==========================  ===============================================================

Replacement: a transaction with the nonce of a pending one from the same sender replaces it
when its fee per gas is strictly higher.

Eviction: when the pool is full, a new transaction evicts the pending transaction with the
lowest ``(fee, hash)`` among senders' *tails* (highest pending nonce, so no gap is created),
repeatedly until it fits, as long as each victim's fee is strictly lower than the new fee and
the victim is from another sender. If the next victim does not qualify the new transaction is
rejected with ``POOL_FULL`` (victims evicted until then stay evicted: each paid less).

Selection (:meth:`Mempool.select`): only executable transactions (for each sender, contiguous
nonces starting at its head nonce), merged across senders greedily by fee per gas, highest
first, ties by hash; a sender whose next transaction does not fit the byte budget is skipped
for the rest of the batch, so a batch never has a nonce gap. Select does not remove anything.

After each block, :meth:`Mempool.update` drops the included transactions and re-checks only
their senders (only a sender's own transactions lower its nonce or balance): nonces now used
are dropped; then, walking nonces upward, the first transaction whose cumulative ``max_cost``
exceeds the balance is dropped with all above it. No signature is verified again.

Bounds: ``tx_count_max``, ``bytes_max``, ``per_sender_max``, ``nonce_gap_max``,
``tx_bytes_max``; the eviction heap is rebuilt when it grows past twice the pool.

The pool is sans-IO and single-threaded. Callers: the node API (admission), p2p gossip via
the node, the proposer (select), the node after each committed block (update).
"""

from __future__ import annotations

import enum
import heapq
from collections import Counter
from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeGuard

from chain.errors import ChainError, DecodeError
from chain.params import intrinsic_gas
from chain.tx import MAX_TX_BYTES, Transaction, decode_transaction, read_fields

__all__ = [
    "Mempool",
    "MempoolConfig",
    "MempoolRejected",
    "MempoolStatistics",
    "RejectReason",
    "StateView",
]


class RejectReason(enum.Enum):
    """Why a transaction was not admitted."""

    BAD_ENCODING = "bad_encoding"
    BAD_SIGNATURE = "bad_signature"
    WRONG_CHAIN_ID = "wrong_chain_id"
    NONCE_TOO_LOW = "nonce_too_low"
    NONCE_GAP_TOO_LARGE = "nonce_gap_too_large"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    FEE_TOO_LOW = "fee_too_low"
    GAS_LIMIT_TOO_LOW = "gas_limit_too_low"
    TOO_LARGE = "too_large"
    POOL_FULL = "pool_full"
    SENDER_FULL = "sender_full"
    DUPLICATE = "duplicate"


class MempoolRejected(ChainError):
    """Raised by :meth:`Mempool.add` when a transaction is not admitted.

    Attributes:
        reason: the machine-readable reason.
        message: what the sender can do about it.
    """

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(f"{reason.name}: {message}")
        self.reason = reason
        self.message = message


class StateView(Protocol):
    """The head state as the mempool needs it (``StateDB`` satisfies it)."""

    def nonce(self, address: bytes) -> int: ...

    def balance(self, address: bytes) -> int: ...


@dataclass(frozen=True)
class MempoolConfig:
    """Bounds and admission policy.

    Attributes:
        tx_count_max: most pending transactions.
        bytes_max: most encoded bytes of pending transactions.
        per_sender_max: most pending transactions per sender.
        nonce_gap_max: most missing nonces allowed below an admitted transaction.
        tx_bytes_max: largest encoded transaction admitted.
        fee_min: lowest fee per gas admitted.
    """

    tx_count_max: int = 10_000
    bytes_max: int = 32 * 1024 * 1024
    per_sender_max: int = 64
    nonce_gap_max: int = 16
    tx_bytes_max: int = MAX_TX_BYTES
    fee_min: int = 1

    def __post_init__(self) -> None:
        for name in ("tx_count_max", "bytes_max", "per_sender_max", "tx_bytes_max"):
            if getattr(self, name) < 1:
                raise ValueError(f"mempool {name} must be at least 1")
        if self.nonce_gap_max < 0 or self.fee_min < 0:
            raise ValueError("mempool nonce_gap_max and fee_min must not be negative")


@dataclass(frozen=True)
class MempoolStatistics:
    """A snapshot of the pool's size and counters (counters since creation)."""

    tx_count: int
    bytes: int
    senders: int
    added_total: int
    replaced_total: int
    evicted_total: int
    dropped_total: int
    rejected_total: int
    rejected_by_reason: tuple[tuple[str, int], ...]


class _Entry:
    __slots__ = ("cost", "fee", "hash", "nonce", "sender", "size", "tx")

    def __init__(
        self,
        tx: Transaction,
        tx_hash: bytes,
        size: int,
        sender: bytes,
        nonce: int,
        fee: int,
        cost: int,
    ) -> None:
        self.tx = tx
        self.hash = tx_hash
        self.size = size
        self.sender = sender
        self.nonce = nonce
        self.fee = fee
        self.cost = cost  # max_cost: amount + fee * gas_limit


class _Sender:
    __slots__ = ("cost", "txs")

    def __init__(self) -> None:
        self.txs: dict[int, _Entry] = {}
        self.cost = 0  # sum of max_cost of pending transactions


class Mempool:
    """Pending transactions, bounded, de-duplicated, ordered per sender by nonce.

    Args:
        chain_id: the chain whose transactions are admitted.
        config: bounds and policy.
        state_view: nonce and balance at the head block.
    """

    def __init__(self, chain_id: int, config: MempoolConfig, state_view: StateView) -> None:
        self.chain_id = chain_id
        self.config = config
        self._view = state_view
        self._by_hash: dict[bytes, _Entry] = {}
        self._senders: dict[bytes, _Sender] = {}
        self._bytes = 0
        self._tails: list[tuple[int, bytes, _Entry]] = []  # (fee, hash, entry), lazy
        self._added = 0
        self._replaced = 0
        self._evicted = 0
        self._dropped = 0
        self._rejected: Counter[RejectReason] = Counter()

    # ------------------------------------------------------------- queries

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._by_hash

    @property
    def size_bytes(self) -> int:
        """Encoded bytes of all pending transactions."""
        return self._bytes

    def get(self, tx_hash: bytes) -> Transaction | None:
        """The pending transaction with this hash, if any."""
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    def hashes(self) -> list[bytes]:
        """Hashes of every pending transaction, in admission order (oldest first)."""
        return list(self._by_hash)

    def head_nonce(self, sender: bytes) -> int:
        """``sender``'s nonce at the head, through the (cached) state view admission uses."""
        return self._view.nonce(sender)

    def pending(self, sender: bytes) -> list[Transaction]:
        """Pending transactions of ``sender`` (an address), by nonce."""
        s = self._senders.get(sender)
        if s is None:
            return []
        return [s.txs[n].tx for n in sorted(s.txs)]

    def statistics(self) -> MempoolStatistics:
        """Current size and counters."""
        return MempoolStatistics(
            tx_count=len(self._by_hash),
            bytes=self._bytes,
            senders=len(self._senders),
            added_total=self._added,
            replaced_total=self._replaced,
            evicted_total=self._evicted,
            dropped_total=self._dropped,
            rejected_total=sum(self._rejected.values()),
            rejected_by_reason=tuple(
                sorted((reason.value, n) for reason, n in self._rejected.items())
            ),
        )

    def flush(self) -> int:
        """Drop every pending transaction (an operator's ``unsafe_flush_mempool``).

        Returns:
            How many transactions were dropped (counted in ``dropped_total``).
        """
        count = len(self._by_hash)
        self._dropped += count
        self._by_hash.clear()
        self._senders.clear()
        self._tails.clear()
        self._bytes = 0
        return count

    # ----------------------------------------------------------- admission

    def _reject(self, reason: RejectReason, message: str) -> MempoolRejected:
        self._rejected[reason] += 1
        return MempoolRejected(reason, message)

    def add(self, tx: Transaction | bytes, *, verified: Container[bytes] = ()) -> bytes:
        """Admit a transaction (decoded or encoded).

        Args:
            tx: the transaction.
            verified: hashes of encodings whose signature the caller already verified (the
                hash covers the signature, so these exact bytes verified); their signature
                is not checked again.

        Returns:
            The transaction hash.

        Raises:
            MempoolRejected: with the reason and a message a person can act on.
        """
        config = self.config
        size = len(tx.encoded) if isinstance(tx, Transaction) else len(tx)
        if size > config.tx_bytes_max:
            raise self._reject(
                RejectReason.TOO_LARGE, f"{size} bytes exceeds {config.tx_bytes_max}"
            )
        if not isinstance(tx, Transaction):
            try:
                tx = decode_transaction(tx)
            except DecodeError as e:
                raise self._reject(RejectReason.BAD_ENCODING, str(e)) from None
        tx_hash = tx.hash
        if tx_hash in self._by_hash:
            raise self._reject(RejectReason.DUPLICATE, "this transaction is already pending")
        chain_id, nonce, to, amount, fee, gas_limit, data = read_fields(tx)
        if chain_id != self.chain_id:
            raise self._reject(
                RejectReason.WRONG_CHAIN_ID,
                f"signed for chain {chain_id}; this node runs chain {self.chain_id}",
            )
        if fee < config.fee_min:
            raise self._reject(
                RejectReason.FEE_TOO_LOW, f"fee {fee} per gas is below the minimum {config.fee_min}"
            )
        need = intrinsic_gas(len(data), is_creation=not to)
        if gas_limit < need:
            raise self._reject(
                RejectReason.GAS_LIMIT_TOO_LOW,
                f"gas limit {gas_limit} is below the {need} this transaction needs",
            )
        sender = tx.sender_address
        view = self._view
        head_nonce = view.nonce(sender)
        if nonce < head_nonce:
            raise self._reject(
                RejectReason.NONCE_TOO_LOW, f"nonce {nonce} is used; the next nonce is {head_nonce}"
            )
        s = self._senders.get(sender)
        old = None
        total = cost = amount + fee * gas_limit
        if s is not None:
            pending = s.txs
            old = pending.get(nonce)
            if old is not None:
                if fee <= old.fee:
                    raise self._reject(
                        RejectReason.FEE_TOO_LOW,
                        f"nonce {nonce} is pending with fee {old.fee}; a replacement must pay more",
                    )
                total -= old.cost
            total += s.cost
        else:
            pending = {}
        if old is None:
            run_end = head_nonce
            while run_end in pending:
                run_end += 1
            if nonce - run_end > config.nonce_gap_max:
                raise self._reject(
                    RejectReason.NONCE_GAP_TOO_LARGE,
                    f"nonce {nonce} leaves {nonce - run_end} nonces missing from {run_end}; "
                    f"at most {config.nonce_gap_max} may be",
                )
            if len(pending) >= config.per_sender_max:
                raise self._reject(
                    RejectReason.SENDER_FULL,
                    f"the sender has {len(pending)} pending transactions (the limit); "
                    "wait for some to commit",
                )
        balance = view.balance(sender)
        if total > balance:
            raise self._reject(
                RejectReason.INSUFFICIENT_BALANCE,
                f"balance {balance} cannot cover {total}, the most this and the sender's other "
                "pending transactions can cost",
            )
        if old is None and self._full_for(fee, sender, size):
            raise self._pool_full()
        if tx_hash not in verified and not tx.verify_signature():
            raise self._reject(RejectReason.BAD_SIGNATURE, "the signature does not verify")

        # Room: the replaced transaction makes room; then evict lower-fee tails if needed.
        count = len(self._by_hash) + (0 if old is not None else 1)
        volume = self._bytes + size - (old.size if old is not None else 0)
        while count > config.tx_count_max or volume > config.bytes_max:
            victim = self._lowest_tail()
            if not _may_evict(victim, fee, sender):
                raise self._pool_full()
            self._remove(victim)
            self._evicted += 1
            count -= 1
            volume -= victim.size

        if old is not None:
            self._remove(old)
            self._replaced += 1
            s = self._senders.get(sender)
        if s is None:
            s = self._senders[sender] = _Sender()
        entry = _Entry(tx, tx_hash, size, sender, nonce, fee, cost)
        txs = s.txs
        is_tail = not txs or nonce > max(txs)
        txs[nonce] = entry
        s.cost += cost
        self._by_hash[tx_hash] = entry
        self._bytes += size
        if is_tail:
            self._push_tail(entry)
        self._added += 1
        return tx_hash

    def _full_for(self, fee: int, sender: bytes, size: int) -> bool:
        """True when a new transaction certainly finds no room: the pool is at a bound and
        the first eviction victim (the lowest-fee tail) does not qualify. Cheap, so a full
        pool turns a flood away before verifying its signatures."""
        config = self.config
        if len(self._by_hash) < config.tx_count_max and self._bytes + size <= config.bytes_max:
            return False
        return not _may_evict(self._lowest_tail(), fee, sender)

    def _pool_full(self) -> MempoolRejected:
        return self._reject(
            RejectReason.POOL_FULL,
            "the pool is full of transactions paying at least as much; retry later "
            "or raise the fee",
        )

    # ------------------------------------------------------------ removal

    def _remove(self, entry: _Entry) -> None:
        """Remove one pending entry, keeping the tail heap and sender totals right."""
        del self._by_hash[entry.hash]
        self._bytes -= entry.size
        s = self._senders[entry.sender]
        del s.txs[entry.nonce]
        s.cost -= entry.cost
        if not s.txs:
            del self._senders[entry.sender]
            return
        top = max(s.txs)
        if entry.nonce > top:  # it was the tail: the next one down is now
            self._push_tail(s.txs[top])

    def _push_tail(self, entry: _Entry) -> None:
        tails = self._tails
        heapq.heappush(tails, (entry.fee, entry.hash, entry))
        if len(tails) > 2 * len(self._by_hash) + 64:
            self._rebuild_tails()

    def _is_tail(self, entry: _Entry) -> bool:
        if self._by_hash.get(entry.hash) is not entry:
            return False
        return entry.nonce == max(self._senders[entry.sender].txs)

    def _lowest_tail(self) -> _Entry | None:
        tails = self._tails
        while tails:
            entry = tails[0][2]
            if self._is_tail(entry):
                return entry
            heapq.heappop(tails)
        return None

    def _rebuild_tails(self) -> None:
        tails = []
        for s in self._senders.values():
            e = s.txs[max(s.txs)]
            tails.append((e.fee, e.hash, e))
        heapq.heapify(tails)
        self._tails = tails

    # ----------------------------------------------------------- selection

    def select(self, count_max: int, bytes_max: int) -> list[Transaction]:
        """Executable transactions for a block, best fee first, never with a nonce gap.

        Args:
            count_max: most transactions to return.
            bytes_max: most encoded bytes to return.

        Returns:
            Transactions in block order (per sender, nonces ascending and contiguous).
        """
        view = self._view
        heap: list[tuple[int, bytes, int, _Entry]] = []
        for sender, s in self._senders.items():
            first = s.txs.get(view.nonce(sender))
            if first is not None:
                heap.append((-first.fee, first.hash, first.nonce, first))
        heapq.heapify(heap)
        out: list[Transaction] = []
        used = 0
        while heap and len(out) < count_max:
            _, _, nonce, entry = heapq.heappop(heap)
            if used + entry.size > bytes_max:
                continue  # skip this sender for the rest of the batch
            out.append(entry.tx)
            used += entry.size
            following = self._senders[entry.sender].txs.get(nonce + 1)
            if following is not None:
                heapq.heappush(heap, (-following.fee, following.hash, following.nonce, following))
        return out

    # -------------------------------------------------------------- update

    def update(self, included: Iterable[Transaction], state_view: StateView) -> None:
        """Forget the transactions a committed block included and re-check their senders.

        Args:
            included: the block's transactions.
            state_view: the state at the new head.
        """
        self._view = state_view
        senders: dict[bytes, None] = {}
        for tx in included:
            entry = self._by_hash.get(tx.hash)
            if entry is not None:
                self._remove(entry)
            senders[tx.sender_address] = None
        for sender in senders:
            self._recheck(sender)

    def recheck_all(self, state_view: StateView) -> None:
        """Re-check every sender against ``state_view`` (after a state sync or restart)."""
        self._view = state_view
        for sender in list(self._senders):
            self._recheck(sender)

    def _recheck(self, sender: bytes) -> None:
        s = self._senders.get(sender)
        if s is None:
            return
        head_nonce = self._view.nonce(sender)
        balance = self._view.balance(sender)
        budget = 0
        over = False
        for nonce in sorted(s.txs):
            entry = s.txs[nonce]
            if not over and nonce >= head_nonce:
                budget += entry.cost
                over = budget > balance
                if not over:
                    continue
            self._remove(entry)
            self._dropped += 1


def _may_evict(victim: _Entry | None, fee: int, sender: bytes) -> TypeGuard[_Entry]:
    """Whether a newcomer paying ``fee`` from ``sender`` may push ``victim`` (the lowest-fee
    tail) out: it must pay strictly more and belong to someone else."""
    return victim is not None and victim.fee < fee and victim.sender != sender
