"""Trio glue for the transaction gossip core: ticks, inbound batches, outbound sends.

Runs next to a :class:`~p2p.peers.PeerManager`: it subscribes to ``Kind.TX_BATCH`` (with
``drop_when_full``, so a backlog of gossip never holds up a peer's consensus traffic), feeds
every batch to :class:`~p2p.gossip.TxGossip`, ticks the core every half batching deadline
(in the manager's ticks), and executes each :class:`~p2p.gossip.GossipOutput` in order:
batches are queued per peer with ``send_nowait`` (a full queue drops that batch, counted, instead of
stalling gossip), offenders are reported to the manager's scores, new transactions go to the
bounded ``delivered`` channel that the node reads (that one waits: the node's mempool sets
the pace).

The node calls :meth:`GossipService.submit` for transactions it accepted, and
:meth:`GossipService.resend` for those still pending long after (``node.tx_rebroadcast``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from p2p.errors import QueueFull
from p2p.gossip import GossipOutput, TxGossip
from p2p.messages import Kind, PeerId
from p2p.peers import PeerManager

__all__ = ["GossipService"]

log = logging.getLogger("phalanx.p2p.gossip")


class GossipService:
    """Gossip of transactions over a peer manager.

    Args:
        manager: the node's peer manager (``subscribe`` is called here, before it runs).
        core: the gossip core.
        delivered_max: bound of the ``delivered`` channel.
        offence_points: score a peer loses for a malformed batch or a flood.
    """

    def __init__(self, manager: PeerManager, core: TxGossip, *, delivered_max: int = 4096,
                 offence_points: int = 10) -> None:
        self._manager = manager
        self.core = core
        self._inbound = manager.subscribe(Kind.TX_BATCH, drop_when_full=True)
        self._delivered_tx, self.delivered = trio.open_memory_channel[tuple[PeerId, bytes]](
            delivered_max
        )
        self._points = offence_points
        self.batches_dropped = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick the core and process inbound batches until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ticker)
            task_status.started()
            async for peer, _kind, _lamport, payload in self._inbound:
                out = self.core.receive(peer, payload, now=self._now(),
                                        peers=self._manager.connected_peers())
                await self._execute(out)

    async def submit(self, tx: bytes, origin: PeerId | None = None) -> None:
        """Gossip a transaction the node accepted (``origin``: the peer it came from)."""
        out = self.core.submit(tx, now=self._now(), peers=self._manager.connected_peers(),
                               origin=origin)
        await self._execute(out)

    async def resend(self, txs: Sequence[bytes]) -> int:
        """Send ``txs`` again to every connected peer, past the seen-cache
        (:meth:`TxGossip.resend`); returns how many peers that was (0: nothing sent)."""
        peers = self._manager.connected_peers()
        await self._execute(self.core.resend(txs, peers))
        return len(peers) if txs else 0

    async def _ticker(self) -> None:
        # Half the batching deadline: a batch waits at most 1.5x batch_ticks_max.
        period = self._manager.config.tick_seconds * max(1, self.core.config.batch_ticks_max // 2)
        while True:
            await trio.sleep(period)
            await self._execute(self.core.tick(self._now(), self._manager.connected_peers()))

    async def _execute(self, out: GossipOutput) -> None:
        for peer, payload in out.send:
            try:
                self._manager.send_nowait(peer, Kind.TX_BATCH, payload)
            except QueueFull:
                self.batches_dropped += 1
                log.warning("gossip batch to peer %s dropped: send queue full", peer)
        for peer, reason in out.offenders:
            log.warning("gossip: peer %s misbehaved: %s", peer, reason)
            self._manager.report(peer, self._points, reason)
        for item in out.deliver:
            await self._delivered_tx.send(item)

    def _now(self) -> int:
        return int(trio.current_time() / self._manager.config.tick_seconds)
