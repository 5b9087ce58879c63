"""Clock synchronisation between connected peers: a Trio driver of the Cristian core.

Theory of operation
-------------------
Every ``interval_seconds`` the service sends a :class:`~p2p.clocksync.TimeRequest` to each
connected peer (``Kind.CLOCK``) and answers the requests it receives with its own clock
reading. A reply is matched to its request by :class:`~p2p.clocksync.CristianClient`
(nonce, peer, round trip at most ``rtt_us_max``), which turns it into an
:class:`~p2p.clocksync.OffsetEstimate` (``offset = S + rtt/2 - t1``, error ``rtt/2``). The
estimates go into an :class:`~p2p.clocksync.OffsetTable`, which reports per peer the tightest
estimate younger than ``age_seconds_max``: stale estimates are forgotten, so a peer whose
clock jumps is re-measured within that age.

The node reads :meth:`ClockSyncService.peer_clocks` for ``net_info`` and
:meth:`ClockSyncService.median_offset_us` for the validators' median time (ours counts as
offset 0; with fewer than ``times_min`` clocks it returns None and the node falls back to
its own clock).

Clocks: ``clock_us`` is the node's wall clock in microseconds (injected, so a test, or a
test network's ``[testing] clock_skew_ms``, can shift it); estimate ages use ``monotonic``
(default ``trio.current_time``, so ``trio.testing.MockClock`` drives them in tests).

Invariants and bounds: the inbound channel holds at most ``inbound_max`` messages and is
subscribed with ``drop_when_full=True`` (time traffic never holds up consensus); a payload
above :data:`CLOCK_MESSAGE_BYTES_MAX` or one that does not decode strictly is dropped,
counted and reported to the peer manager's score book; a reply that answers no pending
request of ours (or arrives too late), a request or reply that claims another sender, and a
Berkeley ``Adjust`` (the node does not take orders about its clock) are dropped and counted.
Nothing a peer sends raises out of the service.

Called by :mod:`node.runtime` (one service per node, started in the root nursery).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

import trio

from p2p.clocksync import (
    ClockReading,
    CristianClient,
    InvalidClockMessage,
    OffsetTable,
    TimeReply,
    TimeRequest,
    decode_clock_message,
    median_offset_us,
)
from p2p.errors import P2PError
from p2p.messages import Inbound, Kind, PeerId

__all__ = [
    "CLOCK_MESSAGE_BYTES_MAX",
    "ClockSyncService",
    "ClockSyncStatistics",
    "PeerClock",
]

log = logging.getLogger("phalanx.p2p.clocksync")

#: The largest clock-sync payload (a reply is ``[2, sender, nonce, server_us, 0]``: < 40 bytes).
CLOCK_MESSAGE_BYTES_MAX = 64
#: Score points a peer loses for a malformed or oversized clock message.
PENALTY_MALFORMED = 5


class _Manager(Protocol):
    """What the service needs from :class:`p2p.peers.PeerManager`."""

    @property
    def peer_ids(self) -> tuple[PeerId, ...]: ...

    def subscribe(self, kind: Kind, queue_max: int | None = None, *,
                  drop_when_full: bool = False) -> trio.MemoryReceiveChannel[Inbound]: ...

    def connected_peers(self) -> tuple[PeerId, ...]: ...

    def send_nowait(self, peer: PeerId, kind: Kind, payload: bytes) -> None: ...

    def report(self, peer: PeerId, points: int, reason: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class PeerClock:
    """What we know of one peer's clock (for ``net_info``).

    Attributes:
        peer: the peer.
        offset_us: its clock minus ours.
        error_us: the bound on the estimate's error (half the round trip).
        rtt_us: the round trip of the estimate.
        age_seconds: how long ago the estimate was taken.
    """

    peer: PeerId
    offset_us: float
    error_us: float
    rtt_us: int
    age_seconds: float


@dataclass(frozen=True, slots=True)
class ClockSyncStatistics:
    """Counters of the clock-sync service; ``dropped`` is ``(reason, count)`` sorted."""

    requests_sent: int
    requests_served: int
    estimates: int
    dropped: tuple[tuple[str, int], ...]


class ClockSyncService:
    """Measure every connected peer's clock offset and serve our time.

    Args:
        manager: the node's peer manager (``subscribe`` is called here, before it runs).
        self_id: our node id.
        clock_us: our wall clock, microseconds since the epoch.
        interval_seconds: time between two rounds of requests.
        age_seconds_max: estimates older than this no longer count.
        samples_max: estimates kept per peer.
        rtt_us_max: replies with a longer round trip are dropped.
        inbound_max: bound of the inbound channel.
        monotonic: the clock for estimate ages (seconds).
    """

    def __init__(
        self,
        manager: _Manager,
        self_id: PeerId,
        clock_us: Callable[[], int],
        *,
        interval_seconds: float = 1.0,
        age_seconds_max: float = 10.0,
        samples_max: int = 8,
        rtt_us_max: int = 2_000_000,
        inbound_max: int = 256,
        monotonic: Callable[[], float] = trio.current_time,
    ) -> None:
        if interval_seconds <= 0 or age_seconds_max <= 0:
            raise ValueError("interval_seconds and age_seconds_max must be positive")
        self._manager = manager
        self._clock_us = clock_us
        self._monotonic = monotonic
        self.interval_seconds = interval_seconds
        peers = len(manager.peer_ids)
        self.client = CristianClient(int(self_id), pending_max=max(16, 4 * peers),
                                     rtt_us_max=rtt_us_max)
        self.table = OffsetTable(age_seconds_max, samples_max, peers_max=max(1, peers))
        self._known = frozenset(manager.peer_ids)
        self._inbound = manager.subscribe(Kind.CLOCK, inbound_max, drop_when_full=True)
        self._sent = 0
        self._served = 0
        self._estimates = 0
        self._dropped: Counter[str] = Counter()

    # ------------------------------------------------------------------ node-facing API

    def peer_clocks(self) -> tuple[PeerClock, ...]:
        """The fresh estimate of every peer that has one, sorted by peer."""
        now = self._monotonic()
        return tuple(
            PeerClock(PeerId(p), est.offset_us, est.error_us, est.rtt_us, age)
            for p, (est, age) in self.table.fresh(now).items()
        )

    def median_offset_us(self, times_min: int = 1,
                         peers: Collection[PeerId] | None = None) -> float | None:
        """The median of our clock (offset 0) and the peers' fresh estimates, as an offset.

        Args:
            times_min: with fewer clocks than this (ours included), None.
            peers: count only these peers (default: all with a fresh estimate).
        """
        offsets = [c.offset_us for c in self.peer_clocks() if peers is None or c.peer in peers]
        return median_offset_us(offsets, times_min)

    def statistics(self) -> ClockSyncStatistics:
        """Counters: requests sent and served, estimates taken, drops by reason."""
        return ClockSyncStatistics(self._sent, self._served, self._estimates,
                                   tuple(sorted(self._dropped.items())))

    # ------------------------------------------------------------------------ driver

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Send requests every interval and handle inbound clock messages until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._request_loop)
            task_status.started()
            async for peer, _kind, _lamport, payload in self._inbound:
                self.on_message(peer, payload)

    def poll(self) -> int:
        """One round: a time request to every connected peer; returns how many were queued."""
        self.table.prune(self._monotonic())
        queued = 0
        for peer in self._manager.connected_peers():
            request = self.client.request(int(peer), ClockReading(self._clock_us()))
            if self._send(peer, request.encode()):
                queued += 1
        self._sent += queued
        return queued

    def on_message(self, peer: PeerId, payload: bytes) -> None:
        """Handle one ``Kind.CLOCK`` payload from ``peer`` (never raises for bad input)."""
        if len(payload) > CLOCK_MESSAGE_BYTES_MAX:
            self._drop(peer, "oversized", f"{len(payload)} bytes", penalty=True)
            return
        try:
            msg = decode_clock_message(payload)
        except InvalidClockMessage as e:
            self._drop(peer, "malformed", str(e), penalty=True)
            return
        if isinstance(msg, TimeRequest):
            if msg.sender != peer:
                self._drop(peer, "wrong-sender", f"request claims sender {msg.sender}")
                return
            reply = self.client.serve(msg, ClockReading(self._clock_us()))
            if self._send(peer, reply.encode()):
                self._served += 1
        elif isinstance(msg, TimeReply):
            if msg.sender != peer:
                self._drop(peer, "wrong-sender", f"reply claims sender {msg.sender}")
                return
            estimate = self.client.on_reply(int(peer), msg, ClockReading(self._clock_us()))
            if estimate is None:
                self._drop(peer, "unsolicited", "answers no pending request (or too late)")
                return
            self._estimates += 1
            self.table.observe(estimate, self._monotonic())
        else:
            self._drop(peer, "unexpected", type(msg).__name__)

    async def _request_loop(self) -> None:
        while True:
            self.poll()
            await trio.sleep(self.interval_seconds)

    def _send(self, peer: PeerId, payload: bytes) -> bool:
        try:
            self._manager.send_nowait(peer, Kind.CLOCK, payload)
        except P2PError as e:  # a full send queue: the next round tries again
            self._dropped["send-failed"] += 1
            log.debug("clock message to %s not sent: %s", peer, e)
            return False
        return True

    def _drop(self, peer: PeerId, reason: str, detail: str, *, penalty: bool = False) -> None:
        self._dropped[reason] += 1
        if penalty:
            log.warning("dropping clock message from %s (%s): %s", peer, reason, detail)
            if peer in self._known:
                self._manager.report(peer, PENALTY_MALFORMED, f"clock message {reason}")
        else:
            log.debug("dropping clock message from %s (%s): %s", peer, reason, detail)
