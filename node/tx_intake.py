"""Gossiped transactions into the mempool, each sender's in nonce order.

Theory of operation
-------------------
:class:`TxIntake` sits between the gossip service's ``delivered`` channel and mempool
admission. For each transaction a peer gossiped it decodes once (the mempool gets the decoded
transaction), then offers it to a :class:`p2p.tx_order.SenderFifo`. Only a transaction
that must wait has its signature checked first (cached on the transaction, so the mempool
does not verify it again), so a forgery never occupies the hold-back; one released at once
goes straight to the mempool, which runs its cheap checks (a full pool, a used nonce)
before any signature check, so a flood is still shed for the price of decoding. A
released forgery that the mempool refuses is retracted, so it does not pose as another
sender's predecessor. The sender's
nonce ``k`` is released only after ``k - 1`` was released here, or is already used at the
head, or pending in the mempool (the FIFO's ``next_nonce`` oracle: head nonce, then the
sender's contiguous pending run). Released transactions are admitted in nonce order and,
once admitted, relayed (deferred, below). So a sender's transactions sent in any order reach the
mempool in nonce order, and the mempool's gap rule (``nonce_gap_max``) no longer refuses
a transaction merely because gossip reordered it.

After each committed block (:meth:`on_commit`, the driver's commit listener) the senders
with held transactions are advanced to their head nonce; what that releases goes through
the ``released`` channel (bounded, ``released_max``; overflow counted) to the same
admission path.

*Deferred relay.* A gossiped transaction admitted here is relayed to the other peers only
if it is still pending ``relay_delay_s`` later. Validators form a full mesh and the origin
already sent it to every peer it reaches, so an immediate relay made each node receive,
decrypt and decode every transaction three times (n = 4) for nothing; a transaction
committed within the delay is not relayed at all, while one the origin could not get to
someone (a cut link, a lost batch) still spreads, one delay later.

Bounds: those of the FIFO (``held_max``, ``held_per_sender_max``, oldest dropped and
counted in the ``mempool_tx_held_back_dropped`` metric), ``released_max``, and
``relay_pending_max`` (beyond it a transaction is relayed at once, as before). The relay
task wakes once per batch (due transactions leave together, at most ``RELAY_BATCH_S``
late), not once per transaction.

Who calls it: :mod:`node.runtime` (``run`` in the node's nursery, ``on_commit`` as a
commit listener).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Final

import trio

from chain.errors import DecodeError
from chain.mempool import MempoolRejected, RejectReason
from chain.tx import Transaction, decode_transaction
from node.app import ApplyOutcome, ChainApp
from node.metrics import NodeMetrics
from p2p import GossipService, PeerId
from p2p.tx_order import SenderFifo

__all__ = ["TxIntake"]

log = logging.getLogger("phalanx.node.tx_intake")

_Item = tuple[PeerId, bytes, Transaction]

#: How late a due relay may go out so that it leaves with the others due by then.
RELAY_BATCH_S: Final = 0.05
#: Most work the intake does on queued transactions before it lets other tasks run (the
#: same slice as RPC admission, ``node.rpc_methods.ADMISSION_SLICE_S``).
INTAKE_SLICE_S: Final = 0.005


class TxIntake:
    """Causal (per-sender nonce order) admission of gossiped transactions.

    Args:
        app: the chain application (ledger head, mempool).
        gossip: the gossip service (its ``delivered`` channel is read here).
        metrics: the node's metrics.
        held_max / held_per_sender_max: hold-back bounds (see :class:`SenderFifo`).
        released_max: bound of the channel that carries releases made by commits.
        relay_delay_s: how long an admitted gossiped transaction waits before it is relayed
            (only if still pending then).
        relay_pending_max: most transactions waiting to be relayed.
    """

    def __init__(self, app: ChainApp, gossip: GossipService, metrics: NodeMetrics, *,
                 held_max: int = 4096, held_per_sender_max: int = 64,
                 released_max: int = 1024, relay_delay_s: float = 1.0,
                 relay_pending_max: int = 20_000) -> None:
        self.app = app
        self.gossip = gossip
        self.metrics = metrics
        self.fifo: SenderFifo[_Item] = SenderFifo(self.next_nonce, held_max=held_max,
                                                  held_per_sender_max=held_per_sender_max,
                                                  hold_check=self._signed)
        self._released_send, self._released = trio.open_memory_channel[_Item](released_max)
        self.released_dropped = 0
        self.relay_delay_s = relay_delay_s
        self.relay_pending_max = relay_pending_max
        # (due, origin, raw, hash), in due order; the relay loop wakes once per batch.
        self._relay_due: collections.deque[tuple[float, PeerId, bytes, bytes]] = collections.deque()
        self._relay_wakeup = trio.Event()
        self.relayed = 0
        self.relay_skipped = 0
        self._dropped_seen = 0
        self._holding = False

    def next_nonce(self, sender: bytes) -> int:
        """The sender's first nonce neither used at the head nor pending in the mempool."""
        nonce = self.app.mempool.head_nonce(sender)   # cached per head, no ledger read
        pending = self.app.mempool.pending(sender)
        for tx in pending:
            if tx.nonce == nonce:
                nonce += 1
            elif tx.nonce > nonce:
                break
        return nonce

    def on_commit(self, outcome: ApplyOutcome) -> None:
        """Driver commit listener: release held transactions whose predecessors committed."""
        block = outcome.block
        if block is None or not len(self.fifo):
            return
        senders = {tx.sender_address for tx in block.transactions}
        for sender in senders:
            if not self.fifo.holds(sender):
                continue
            head_nonce = self.app.ledger.account_fields(sender)[0]
            for item in self.fifo.advance(sender, head_nonce):
                try:
                    self._released_send.send_nowait(item)
                except trio.WouldBlock:
                    self.released_dropped += 1
        self._observe()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Admit gossiped transactions in per-sender nonce order until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._released_loop)
            nursery.start_soon(self._relay_loop)
            task_status.started()
            delivered = self.gossip.delivered
            async for peer, raw in delivered:
                # Take what else is queued, up to INTAKE_SLICE_S of work, before yielding:
                # each receive() is a trip through the scheduler, one per transaction.
                until = time.perf_counter() + INTAKE_SLICE_S
                while True:
                    await self._offer(peer, raw)
                    if time.perf_counter() >= until:
                        break
                    try:
                        peer, raw = delivered.receive_nowait()
                    except trio.WouldBlock:
                        break

    async def _offer(self, peer: PeerId, raw: bytes) -> None:
        try:
            tx = decode_transaction(raw)
        except DecodeError:
            self.metrics.mempool_failed.labels(RejectReason.BAD_ENCODING.value).inc()
            return
        for item in self.fifo.offer(tx.sender_address, int(tx.nonce), (peer, raw, tx)):
            await self._admit(item)
        if len(self.fifo) or self._holding:
            self._observe()

    async def _released_loop(self) -> None:
        async for item in self._released:
            await self._admit(item)

    async def _relay_loop(self) -> None:
        # One wake-up per batch of due transactions, not one sleep per transaction: under
        # load hundreds are admitted per second, each a task switch otherwise.
        due_list = self._relay_due
        while True:
            if not due_list:
                self._relay_wakeup = trio.Event()
                await self._relay_wakeup.wait()
            await trio.sleep_until(due_list[0][0] + RELAY_BATCH_S)
            now = trio.current_time()
            while due_list and due_list[0][0] <= now:
                _, peer, raw, tx_hash = due_list.popleft()
                if tx_hash in self.app.mempool:      # not committed yet: someone may lack it
                    self.relayed += 1
                    await self.gossip.submit(raw, origin=peer)
                else:
                    self.relay_skipped += 1

    def _signed(self, item: _Item) -> bool:
        """Hold-back admission: only a correctly signed transaction may wait for its nonce."""
        if item[2].verify_signature():
            return True
        self.metrics.mempool_failed.labels(RejectReason.BAD_SIGNATURE.value).inc()
        return False

    async def _admit(self, item: _Item) -> None:
        peer, raw, tx = item
        try:
            self.app.admit(tx)
        except MempoolRejected as e:
            self.metrics.mempool_failed.labels(e.reason.value).inc()
            if e.reason is RejectReason.BAD_SIGNATURE:     # a forgery does not move the order
                self.fifo.retract(tx.sender_address, int(tx.nonce))
            return
        if len(self._relay_due) >= self.relay_pending_max:
            self.relayed += 1
            await self.gossip.submit(raw, origin=peer)
            return
        self._relay_due.append((trio.current_time() + self.relay_delay_s, peer, raw, tx.hash))
        self._relay_wakeup.set()

    def _observe(self) -> None:
        held = len(self.fifo)
        self._holding = bool(held)
        self.metrics.tx_held_back.set(held)
        dropped = self.fifo.dropped + self.released_dropped
        if dropped > self._dropped_seen:
            self.metrics.tx_held_back_dropped.inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped

    def statistics(self) -> dict[str, Any]:
        """Hold-back sizes and counters (for ``status``)."""
        s = self.fifo.statistics()
        return {"held": s.held, "senders_held": s.senders_held, "held_total": s.held_total,
                "dropped_full": s.dropped_full, "dropped_stale": s.dropped_stale,
                "released_dropped": self.released_dropped, "relayed": self.relayed,
                "relay_skipped": self.relay_skipped}
