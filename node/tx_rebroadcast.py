"""Re-gossip of long-pending transactions, so one accepted during a partition is not stuck.

Why
---
Gossip sends a transaction once: :class:`p2p.gossip.TxGossip` forwards it to the peers
connected at the flush and its seen-cache never forwards it again; :mod:`node.tx_intake`
relays a gossiped one once, a second after admission. A transaction that missed a peer
then (a cut link, a lost batch, more transactions accepted while alone than the one batch
the gossip core keeps for the first peer back) would wait in this node's mempool until this
node proposes, which under PBFT may be never ("my transaction is stuck in the mempool").

Theory of operation
-------------------
Every ``period_s`` (``mempool.rebroadcast_ms``; 0 turns the task off) a *round* runs:

* the mempool's pending hashes (admission order) are read; a hash not seen before is
  stamped with the round number (first seen), a hash no longer pending is forgotten, so the
  task's state never exceeds the mempool's own bound (``mempool.tx_count_max``);
* the transactions first seen in an earlier round -- so pending for at least one full
  period -- are due. At most ``txs_max`` of them go out: least recently re-sent first (never
  re-sent before any re-sent), then oldest first; so a round re-sends a transaction at most
  once, i.e. once per period, and a backlog above the bound rotates instead of starving;
* they go to every connected peer through :meth:`p2p.GossipService.resend`, past the
  seen-cache. A peer that has them drops them for a hash lookup; one that lacks them
  delivers them to its intake. With no peer connected nothing is marked sent, so the next
  round tries again.

Cost: in a healthy network transactions commit well within a period, so hardly anything is
due: a round is one pass over the mempool's hashes. The per-round bound
(``REBROADCAST_TXS_MAX``) is ten times below the receivers' gossip burst
(``GossipConfig.rx_burst_txs``, 10 000) and, over a 5 s period, far below their refill
(``rx_txs_per_tick``: 100 per 10 ms tick, 50 000 per 5 s): a round alone never makes a peer
score us down.

The mempool (``chain``) stays clock-free: the periods are counted here.

Who calls it: :mod:`node.runtime` (``run`` in the node's nursery); ``status`` shows
:meth:`TxRebroadcast.statistics` as ``tx_rebroadcast``; the
``phalanx_mempool_tx_rebroadcast_total`` metric counts re-gossiped transactions.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from typing import Any, Final, Protocol

import trio

from chain.mempool import Mempool
from node.metrics import NodeMetrics

__all__ = ["REBROADCAST_TXS_MAX", "Resender", "TxRebroadcast"]

log = logging.getLogger("phalanx.node.tx_rebroadcast")

#: Most transactions re-gossiped per round. Kept well under the receivers' gossip burst
#: (``p2p.GossipConfig.rx_burst_txs`` = 10 000) so a round never trips their rate limit.
REBROADCAST_TXS_MAX: Final = 1000


class Resender(Protocol):
    """What the task needs of the gossip service."""

    async def resend(self, txs: Sequence[bytes]) -> int:
        """Send ``txs`` to every connected peer; return how many peers (0: none sent)."""
        ...


class TxRebroadcast:
    """Periodic re-gossip of the mempool's long-pending transactions.

    Args:
        mempool: the node's mempool (read only: ``hashes`` and ``get``).
        gossip: the gossip service (``resend``).
        metrics: the node's metrics (``tx_rebroadcast`` counter).
        period_s: seconds between rounds; 0 or less: the task does nothing.
        txs_max: most transactions re-gossiped per round.
    """

    def __init__(self, mempool: Mempool, gossip: Resender, metrics: NodeMetrics, *,
                 period_s: float, txs_max: int = REBROADCAST_TXS_MAX) -> None:
        if txs_max < 1:
            raise ValueError(f"txs_max must be at least 1, got {txs_max}")
        self.mempool = mempool
        self.gossip = gossip
        self.metrics = metrics
        self.period_s = period_s
        self.txs_max = txs_max
        self._round = 0
        self._first_seen: dict[bytes, int] = {}   # hash -> round first seen pending
        self._last_sent: dict[bytes, int] = {}    # hash -> round last re-sent
        self.rebroadcast = 0          # transactions re-gossiped, total
        self.rounds_sent = 0          # rounds that re-gossiped something
        self.rounds_no_peers = 0      # rounds with something due but no peer connected

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run a round every ``period_s`` until cancelled (return at once when off)."""
        task_status.started()
        if self.period_s <= 0:
            log.info("transaction re-broadcast is off (mempool.rebroadcast_ms = 0)")
            return
        while True:
            await trio.sleep(self.period_s)
            await self.round()

    async def round(self) -> int:
        """One round: re-gossip what is due; return how many transactions went out."""
        self._round = now = self._round + 1
        old = self._first_seen
        first = {h: old.get(h, now) for h in self.mempool.hashes()}   # forgets the committed
        self._first_seen = first
        last = self._last_sent = {h: r for h, r in self._last_sent.items() if h in first}
        due = [h for h, r in first.items() if r < now]
        if not due:
            return 0
        # Stable: among equal keys the admission order (oldest first) is kept.
        chosen = heapq.nsmallest(self.txs_max, due, key=lambda h: (last.get(h, -1), first[h]))
        txs = []
        for h in chosen:
            tx = self.mempool.get(h)
            if tx is not None:
                txs.append(tx.encoded)
        if not await self.gossip.resend(txs):
            self.rounds_no_peers += 1
            return 0
        for h in chosen:
            last[h] = now
        self.rebroadcast += len(txs)
        self.rounds_sent += 1
        self.metrics.tx_rebroadcast.inc(len(txs))
        log.info("re-gossiped %d transactions pending for at least %g s (%d due)",
                 len(txs), self.period_s, len(due))
        return len(txs)

    def statistics(self) -> dict[str, Any]:
        """Counters for ``status``."""
        return {"period_ms": round(self.period_s * 1000), "rebroadcast": self.rebroadcast,
                "rounds_sent": self.rounds_sent, "rounds_no_peers": self.rounds_no_peers,
                "tracked": len(self._first_seen)}
