"""Transaction gossip core (sans-IO): seen-cache, batching, no echo, per-peer rate limits.

Theory of operation
-------------------
Transactions are opaque bytes; the caller supplies ``tx_hash`` (the chain's transaction
hash). The core keeps:

* a **seen-cache**: a bounded LRU (``seen_max``) of hashes, so each transaction is
  delivered to the node at most once (while it stays in the cache) and forwarded at most
  once;
* a **pending batch**: transactions to forward, each with the set of peers known to have
  it already (the peer we got it from, and any peer that sent it to us again before the
  flush). A flush sends every connected peer one batch (split by ``batch_bytes_max``) of the
  pending transactions it is not known to have: no echo to the sender. A flush happens when
  ``batch_count_max`` transactions are pending, or on ``tick`` once the oldest pending one
  has waited ``batch_ticks_max`` ticks;
* **resend** (:meth:`TxGossip.resend`): given transactions go again to given peers, past the
  seen-cache (which marks each forwarded once), batched like a flush. The node's
  re-broadcast task (:mod:`node.tx_rebroadcast`) uses it for transactions still pending
  long after they were accepted, so one that could not reach a peer then (a cut link) gets
  there later. A receiver that has seen a transaction drops it again for a hash lookup, and
  delivers one it lacks; the caller keeps each round under the receivers' rate limit;
* a **token bucket per peer** (``rx_txs_per_tick`` refill, ``rx_burst_txs`` burst): a
  peer's transactions beyond its rate are dropped and the peer is named in
  ``GossipOutput.offenders`` (the driver lowers its score).

With ``relay=True`` a new transaction from a peer is delivered *and* queued for forwarding
at once. With ``relay=False`` it is only delivered; the node forwards it after validating it
with ``submit(tx, origin=peer)`` -- so invalid transactions are not amplified.

Wire form of a batch: the canonical RLP list of transaction byte strings. A batch that does
not decode strictly, has too many or too large transactions, names the peer as offender
and is dropped whole.

Time is integer ticks from the driver (``p2p.gossip_service``), which also executes the
returned :class:`GossipOutput`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import rlp
from rlp.sedes import CountableList, binary

from p2p.errors import InvalidBatch, MessageTooLarge
from p2p.messages import PeerId

__all__ = ["GossipConfig", "GossipOutput", "GossipStatistics", "TxGossip", "decode_batch",
           "encode_batch"]

_BATCH_SEDES = CountableList(binary)


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """Bounds of the gossip core (counts, bytes, ticks)."""

    seen_max: int = 100_000
    batch_count_max: int = 256
    batch_bytes_max: int = 1024 * 1024
    batch_ticks_max: int = 5
    tx_bytes_max: int = 64 * 1024
    rx_txs_per_tick: float = 100.0
    rx_burst_txs: int = 10_000
    relay: bool = True

    def __post_init__(self) -> None:
        if min(self.seen_max, self.batch_count_max, self.batch_ticks_max, self.rx_burst_txs) < 1:
            raise ValueError("gossip bounds must be at least 1")
        if self.tx_bytes_max + 8 > self.batch_bytes_max:
            raise ValueError("batch_bytes_max must hold at least one largest transaction")


@dataclass(frozen=True, slots=True)
class GossipOutput:
    """What the driver must do, in order: send batches, report offenders, deliver."""

    send: tuple[tuple[PeerId, bytes], ...] = ()
    offenders: tuple[tuple[PeerId, str], ...] = ()
    deliver: tuple[tuple[PeerId, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class GossipStatistics:
    """Counters of the gossip core."""

    seen: int
    pending: int
    delivered: int
    duplicates: int
    dropped_rate: int
    dropped_malformed: int
    dropped_no_peers: int
    batches_sent: int
    resent: int


@dataclass(slots=True)
class _Pending:
    tx: bytes
    known: set[PeerId] = field(default_factory=set)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    tick: int


def encode_batch(txs: Collection[bytes]) -> bytes:
    """Encode transactions as one gossip batch payload."""
    return rlp.encode(list(txs), sedes=_BATCH_SEDES)  # type: ignore[no-any-return]


def decode_batch(payload: bytes, count_max: int, tx_bytes_max: int) -> list[bytes]:
    """Decode a gossip batch strictly.

    Raises:
        InvalidBatch: malformed, non-canonical, too many or too large transactions.
    """
    try:
        items = rlp.decode(payload, sedes=_BATCH_SEDES, strict=True)
    except (rlp.DecodingError, rlp.DeserializationError, TypeError, RecursionError) as e:
        raise InvalidBatch(f"malformed batch: {e}") from e
    txs = [bytes(t) for t in items]
    if len(txs) > count_max:
        raise InvalidBatch(f"batch of {len(txs)} transactions exceeds {count_max}")
    if any(len(t) > tx_bytes_max for t in txs):
        raise InvalidBatch(f"transaction larger than {tx_bytes_max} bytes")
    if encode_batch(txs) != payload:
        raise InvalidBatch("non-canonical batch encoding")
    return txs


class TxGossip:
    """The gossip core of one node.

    Args:
        config: bounds.
        tx_hash: the caller's hash function over opaque transaction bytes.
    """

    def __init__(self, config: GossipConfig, tx_hash: Callable[[bytes], bytes]) -> None:
        self.config = config
        self._hash = tx_hash
        self._seen: OrderedDict[bytes, bool] = OrderedDict()  # hash -> forwarded
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._pending_since = 0
        self._buckets: dict[PeerId, _Bucket] = {}
        self._delivered = 0
        self._duplicates = 0
        self._dropped_rate = 0
        self._dropped_malformed = 0
        self._batches_sent = 0
        self._dropped_no_peers = 0
        self._resent = 0

    def submit(self, tx: bytes, *, now: int, peers: Collection[PeerId],
               origin: PeerId | None = None) -> GossipOutput:
        """Forward a transaction the node accepted (its own, or a validated relayed one).

        Args:
            tx: the transaction bytes.
            now: current tick.
            peers: connected peers (flush targets).
            origin: the peer it came from, which is not sent it back.

        Raises:
            MessageTooLarge: ``tx`` is longer than ``tx_bytes_max``.
        """
        self._check_size(tx)
        h = self._hash(tx)
        if self._seen.get(h):
            self._duplicates += 1
            self._seen.move_to_end(h)
            return GossipOutput()
        self._mark_seen(h, forwarded=True)
        self._add_pending(h, tx, origin, now)
        return self._maybe_flush(now, peers)

    def receive(self, peer: PeerId, payload: bytes, *, now: int,
                peers: Collection[PeerId]) -> GossipOutput:
        """Take a batch from ``peer``: deliver new transactions, relay them (if ``relay``)."""
        cfg = self.config
        try:
            txs = decode_batch(payload, cfg.batch_count_max, cfg.tx_bytes_max)
        except InvalidBatch as e:
            self._dropped_malformed += 1
            return GossipOutput(offenders=((peer, str(e)),))
        allowed = self._take_tokens(peer, len(txs), now)
        offenders: tuple[tuple[PeerId, str], ...] = ()
        if allowed < len(txs):
            self._dropped_rate += len(txs) - allowed
            offenders = ((peer, f"gossip flood: {len(txs) - allowed} transactions over rate"),)
            txs = txs[:allowed]
        deliver = []
        for tx in txs:
            h = self._hash(tx)
            if h in self._seen:
                self._duplicates += 1
                self._seen.move_to_end(h)
                pending = self._pending.get(h)
                if pending is not None:
                    pending.known.add(peer)
                continue
            self._mark_seen(h, forwarded=cfg.relay)
            deliver.append((peer, tx))
            if cfg.relay:
                self._add_pending(h, tx, peer, now)
        self._delivered += len(deliver)
        flushed = self._maybe_flush(now, peers)
        return GossipOutput(send=flushed.send, offenders=offenders, deliver=tuple(deliver))

    def tick(self, now: int, peers: Collection[PeerId]) -> GossipOutput:
        """Flush the pending batch if its oldest transaction waited ``batch_ticks_max``."""
        if self._pending and now - self._pending_since >= self.config.batch_ticks_max:
            return self._flush(peers)
        return GossipOutput()

    def resend(self, txs: Sequence[bytes], peers: Collection[PeerId]) -> GossipOutput:
        """Send ``txs`` again to every peer in ``peers``, past the seen-cache's dedup.

        Batched as a flush is (``batch_count_max``, ``batch_bytes_max``), in the given order.
        The seen-cache and the pending batch are left alone. ``resent`` counts transactions
        (once per call that reached at least one peer), ``batches_sent`` the batches.

        Raises:
            MessageTooLarge: a transaction is longer than ``tx_bytes_max``.
        """
        for tx in txs:
            self._check_size(tx)
        if not txs or not peers:
            return GossipOutput()
        sends = self._batches([_Pending(tx) for tx in txs], peers)
        self._resent += len(txs)
        return GossipOutput(send=sends)

    def statistics(self) -> GossipStatistics:
        """Counters for metrics and tests."""
        return GossipStatistics(
            seen=len(self._seen), pending=len(self._pending), delivered=self._delivered,
            duplicates=self._duplicates, dropped_rate=self._dropped_rate,
            dropped_malformed=self._dropped_malformed, dropped_no_peers=self._dropped_no_peers,
            batches_sent=self._batches_sent, resent=self._resent,
        )

    # ------------------------------------------------------------------ internals

    def _check_size(self, tx: bytes) -> None:
        if len(tx) > self.config.tx_bytes_max:
            raise MessageTooLarge(
                f"transaction of {len(tx)} bytes exceeds {self.config.tx_bytes_max}"
            )

    def _mark_seen(self, h: bytes, *, forwarded: bool) -> None:
        self._seen[h] = forwarded
        self._seen.move_to_end(h)
        while len(self._seen) > self.config.seen_max:
            old, _ = self._seen.popitem(last=False)
            self._pending.pop(old, None)

    def _add_pending(self, h: bytes, tx: bytes, origin: PeerId | None, now: int) -> None:
        if not self._pending:
            self._pending_since = now
        entry = _Pending(tx)
        if origin is not None:
            entry.known.add(origin)
        self._pending[h] = entry

    def _maybe_flush(self, now: int, peers: Collection[PeerId]) -> GossipOutput:
        if len(self._pending) >= self.config.batch_count_max:
            return self._flush(peers)
        return GossipOutput()

    def _flush(self, peers: Collection[PeerId]) -> GossipOutput:
        cfg = self.config
        if not peers:
            # Nobody to send to yet (a node starting up): keep the newest batch for the first
            # peer that connects, dropping the oldest beyond one batch.
            while len(self._pending) > cfg.batch_count_max:
                self._pending.popitem(last=False)
                self._dropped_no_peers += 1
            return GossipOutput()
        entries = list(self._pending.values())
        self._pending.clear()
        return GossipOutput(send=self._batches(entries, peers))

    def _batches(self, entries: Sequence[_Pending],
                 peers: Collection[PeerId]) -> tuple[tuple[PeerId, bytes], ...]:
        """Each peer's batches of the entries it is not known to have (counted as sent)."""
        cfg = self.config
        sends = []
        for peer in sorted(peers):
            batch: list[bytes] = []
            size = 0
            for entry in entries:
                if peer in entry.known:
                    continue
                cost = len(entry.tx) + 5
                if batch and (size + cost > cfg.batch_bytes_max - 8
                              or len(batch) >= cfg.batch_count_max):
                    sends.append((peer, encode_batch(batch)))
                    batch, size = [], 0
                batch.append(entry.tx)
                size += cost
            if batch:
                sends.append((peer, encode_batch(batch)))
        self._batches_sent += len(sends)
        return tuple(sends)

    def _take_tokens(self, peer: PeerId, wanted: int, now: int) -> int:
        cfg = self.config
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = self._buckets[peer] = _Bucket(float(cfg.rx_burst_txs), now)
        elapsed = max(0, now - bucket.tick)
        bucket.tokens = min(float(cfg.rx_burst_txs), bucket.tokens + elapsed * cfg.rx_txs_per_tick)
        bucket.tick = now
        granted = min(wanted, int(bucket.tokens))
        bucket.tokens -= granted
        return granted
