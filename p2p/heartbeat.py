"""Heartbeats: a periodic opaque status to every connected peer, and what we hear back.

Theory of operation
-------------------
:class:`HeartbeatService` (Trio driver) broadcasts ``Kind.HEARTBEAT`` every
``interval_seconds`` with the payload returned by the node's ``status()`` callable (the node
puts its height and view in it; p2p never looks inside). Heartbeats received are recorded in
:class:`HeartbeatTracker` and surfaced on the bounded ``received`` channel as
:class:`Heartbeat` records, which the node feeds to the consensus failure detector. If the
node falls behind, the newest heartbeats are dropped and counted (the next one will come):
a slow consumer never stalls the connection readers.

With heartbeats running, set ``P2PConfig.idle_timeout_seconds`` to a few intervals: a peer
whose host vanished without closing TCP is then dropped and re-dialled by p2p itself.

:class:`HeartbeatTracker` is sans-IO: ``observe(peer, tick)``, ``silent_peers(now,
timeout_ticks)``. Its size is bounded by the address book (only authenticated peers reach it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

import trio

from p2p.messages import Kind, PeerId
from p2p.peers import PeerManager

__all__ = ["Heartbeat", "HeartbeatService", "HeartbeatStatistics", "HeartbeatTracker"]

log = logging.getLogger("phalanx.p2p.heartbeat")


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A heartbeat received from a peer."""

    peer: PeerId
    lamport: int
    status: bytes
    received_tick: int


@dataclass(frozen=True, slots=True)
class HeartbeatStatistics:
    """Counters of the heartbeat service."""

    sent: int
    received: int
    dropped: int
    last_seen: tuple[tuple[PeerId, int], ...]


class HeartbeatTracker:
    """When each peer was last heard from (sans-IO, ticks)."""

    def __init__(self) -> None:
        self._last: dict[PeerId, int] = {}

    def observe(self, peer: PeerId, now: int) -> None:
        """Record a heartbeat from ``peer`` at tick ``now``."""
        self._last[peer] = max(now, self._last.get(peer, now))

    def last_seen(self, peer: PeerId) -> int | None:
        """The tick of ``peer``'s last heartbeat, or None if never heard."""
        return self._last.get(peer)

    def silent_peers(self, now: int, timeout_ticks: int,
                     peers: Collection[PeerId]) -> tuple[PeerId, ...]:
        """Peers among ``peers`` not heard from for more than ``timeout_ticks`` (or never)."""
        return tuple(
            p for p in sorted(peers)
            if (seen := self._last.get(p)) is None or now - seen > timeout_ticks
        )

    def snapshot(self) -> tuple[tuple[PeerId, int], ...]:
        """``(peer, last tick)`` pairs, sorted by peer."""
        return tuple(sorted(self._last.items()))


class HeartbeatService:
    """Send and surface heartbeats.

    Args:
        manager: the node's peer manager (``subscribe`` is called here, before it runs).
        status: returns the opaque status payload to send.
        interval_seconds: time between heartbeats.
        received_max: bound of the ``received`` channel.
    """

    def __init__(self, manager: PeerManager, status: Callable[[], bytes], *,
                 interval_seconds: float = 0.5, received_max: int = 1024) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self._manager = manager
        self._status = status
        self._interval = interval_seconds
        self._inbound = manager.subscribe(Kind.HEARTBEAT, drop_when_full=True)
        self._received_tx, self.received = trio.open_memory_channel[Heartbeat](received_max)
        self.tracker = HeartbeatTracker()
        self._sent = 0
        self._received = 0
        self._dropped = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send heartbeats and surface received ones until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_loop)
            task_status.started()
            async for peer, _kind, lamport, payload in self._inbound:
                now = self._now()
                self.tracker.observe(peer, now)
                self._received += 1
                try:
                    self._received_tx.send_nowait(Heartbeat(peer, lamport, payload, now))
                except trio.WouldBlock:
                    self._dropped += 1

    def statistics(self) -> HeartbeatStatistics:
        """Counters and last-seen ticks."""
        return HeartbeatStatistics(self._sent, self._received, self._dropped,
                                   self.tracker.snapshot())

    async def _send_loop(self) -> None:
        while True:
            sent = await self._manager.broadcast(Kind.HEARTBEAT, self._status())
            self._sent += len(sent)
            await trio.sleep(self._interval)

    def _now(self) -> int:
        return int(trio.current_time() / self._manager.config.tick_seconds)
