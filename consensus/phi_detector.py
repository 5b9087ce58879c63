"""Phi-accrual failure detector (Hayashibara et al. 2004), sans-IO, same API as the heartbeat one.

Theory of operation
-------------------
Instead of a yes/no timeout, the detector outputs a *suspicion level* per peer:
``phi(now) = -log10(P(next heartbeat arrives later than now))``, where the arrival law is
a normal distribution fitted to the last ``window_max`` inter-arrival intervals of that
peer's heartbeats. ``phi = 1`` means a 10 % chance that a live peer would be this late,
``phi = 3`` 0.1 %, and so on. A peer is suspected when ``phi >= threshold``; the threshold
sets the trade-off directly as a mistake probability, and the detector adapts by itself
to the mean *and the jitter* of each link (a jittery link gets a longer effective timeout,
a steady one a short one), without the doubling steps of
:class:`~consensus.failure_detector.HeartbeatFailureDetector`.

The normal tail uses the logistic approximation Akka uses (no ``erfc`` underflow for large
``y``); the standard deviation is floored at ``std_ticks_min`` so a perfectly regular link
does not make phi jump to infinity one tick after the mean.

Inputs, outputs and messages are the heartbeat detector's: :class:`Heartbeat` in
:class:`Receive`, :class:`Tick`; :class:`DetectorOutput` with heartbeats to send and
:class:`Suspect` / :class:`Trust` events; :class:`DetectorStatistics` reports, as
``timeouts``, the silence after which each peer would now be suspected.

Invariants: ``suspected() | alive() == peers`` and they are disjoint; each interval window
holds at most ``window_max`` intervals; heartbeats are taken in ``(epoch, seq)`` order.

Who calls it: the fd study (``testnet.sim.fd_study``), drivers that want an adaptive
detector, tests.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from consensus.contract import ALL, ConsensusBug, NodeId, Receive, Tick
from consensus.failure_detector import (
    DetectorOutput,
    DetectorStatistics,
    Heartbeat,
    Suspect,
    Trust,
)

__all__ = ["PhiAccrualFailureDetector", "phi"]

_PHI_MAX = 1e9


def phi(elapsed: float, mean: float, std: float) -> float:
    """The suspicion level after ``elapsed`` ticks of silence, for intervals ~ N(mean, std)."""
    y = (elapsed - mean) / std
    y = max(-12.0, min(12.0, y))    # exp() stays finite; phi saturates near 61
    e = math.exp(-y * (1.5976 + 0.070566 * y * y))
    p_later = e / (1.0 + e) if elapsed > mean else 1.0 - 1.0 / (1.0 + e)
    if p_later <= 0.0:
        return _PHI_MAX
    return -math.log10(p_later)


class PhiAccrualFailureDetector:
    """Sans-IO phi-accrual detector (see module docstring).

    Args:
        node_id: this node.
        peers: the other nodes to watch.
        heartbeat_ticks: ticks between two of our heartbeats (also the prior interval).
        threshold: suspect a peer when its phi reaches this (typically 1 to 12).
        window_max: how many recent intervals per peer the estimate uses.
        std_ticks_min: floor of the standard deviation.
        pause_ticks: extra silence always tolerated (added to the mean, like Akka's
            acceptable heartbeat pause).
        epoch: our incarnation number.
    """

    def __init__(self, node_id: NodeId, peers: Iterable[NodeId], heartbeat_ticks: int,
                 threshold: float = 8.0, window_max: int = 100, std_ticks_min: float = 1.0,
                 pause_ticks: int = 0, epoch: int = 0) -> None:
        if heartbeat_ticks < 1 or threshold <= 0 or window_max < 2 or std_ticks_min <= 0 \
                or pause_ticks < 0:
            raise ValueError("need heartbeat_ticks >= 1, threshold > 0, window_max >= 2, "
                             "std_ticks_min > 0 and pause_ticks >= 0")
        self.node_id = node_id
        self.peers: tuple[NodeId, ...] = tuple(sorted(p for p in set(peers) if p != node_id))
        self.heartbeat_ticks = heartbeat_ticks
        self.threshold = threshold
        self.window_max = window_max
        self.std_ticks_min = std_ticks_min
        self.pause_ticks = pause_ticks
        self.epoch = epoch
        self.payload = b""
        self._now: int | None = None
        self._seq = 0
        self._last_sent: int | None = None
        self._last_heard: dict[NodeId, int] = {}
        self._last_stamp: dict[NodeId, tuple[int, int]] = {}
        self._last_payload: dict[NodeId, bytes] = {}
        prior = [float(heartbeat_ticks)] * 2
        self._intervals: dict[NodeId, deque[float]] = {
            p: deque(prior, maxlen=window_max) for p in self.peers}
        # Running (sum, sum of squares) per window: intervals are whole ticks, so exact.
        self._sums: dict[NodeId, tuple[float, float]] = {
            p: (sum(prior), sum(x * x for x in prior)) for p in self.peers}
        self._fits: dict[NodeId, tuple[float, float]] = {}
        self._suspected: set[NodeId] = set()
        self._sent = self._received = self._ignored = 0
        self._suspicions = self._false_suspicions = 0

    # -- queries ------------------------------------------------------------------------

    def suspected(self) -> frozenset[NodeId]:
        """Peers currently suspected to have crashed."""
        return frozenset(self._suspected)

    def alive(self) -> frozenset[NodeId]:
        """Peers currently trusted (not suspected)."""
        return frozenset(p for p in self.peers if p not in self._suspected)

    def _fit(self, peer: NodeId) -> tuple[float, float]:
        fit = self._fits.get(peer)
        if fit is None:       # refit only after a new interval (every tick asks for phi)
            window = self._intervals[peer]
            total, squares = self._sums[peer]
            mean = total / len(window)
            var = max(squares / len(window) - mean * mean, 0.0)
            fit = self._fits[peer] = (mean + self.pause_ticks,
                                      max(math.sqrt(var), self.std_ticks_min))
        return fit

    def _add_interval(self, peer: NodeId, interval: float) -> None:
        window = self._intervals[peer]
        total, squares = self._sums[peer]
        if len(window) == self.window_max:
            old = window[0]
            total, squares = total - old, squares - old * old
        window.append(interval)
        self._sums[peer] = (total + interval, squares + interval * interval)
        self._fits.pop(peer, None)

    def phi_of(self, peer: NodeId) -> float:
        """The current suspicion level of ``peer`` (0 before the first tick)."""
        if self._now is None:
            return 0.0
        mean, std = self._fit(peer)
        return phi(self._now - self._last_heard[peer], mean, std)

    def timeout_of(self, peer: NodeId) -> int:
        """The silence, in ticks, after which ``peer`` would now be suspected."""
        mean, std = self._fit(peer)
        t = math.ceil(mean)
        while phi(t, mean, std) < self.threshold and t < _PHI_MAX:
            t += max(1, math.ceil(std / 4))
        return t

    def payload_of(self, peer: NodeId) -> bytes | None:
        """The payload of the freshest heartbeat heard from ``peer`` (None if none yet)."""
        return self._last_payload.get(peer)

    def statistics(self) -> DetectorStatistics:
        """Counters, current suspicions and each peer's effective timeout."""
        return DetectorStatistics(
            heartbeats_sent=self._sent,
            heartbeats_received=self._received,
            heartbeats_ignored=self._ignored,
            suspicions=self._suspicions,
            false_suspicions=self._false_suspicions,
            suspected=self.suspected(),
            timeouts={p: self.timeout_of(p) for p in self.peers},
        )

    # -- the one entry point ------------------------------------------------------------

    def step(self, event: Tick | Receive) -> DetectorOutput:
        """Feed a tick or a received heartbeat; return heartbeats to send and events."""
        out = DetectorOutput()
        if isinstance(event, Tick):
            self._on_tick(event.now, out)
        elif isinstance(event, Receive):
            self._on_heartbeat(event.sender, event.message, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        self._check_invariants()
        return out

    def _on_tick(self, now: int, out: DetectorOutput) -> None:
        if self._now is None:
            for p in self.peers:
                self._last_heard.setdefault(p, now)
        self._now = now if self._now is None else max(self._now, now)
        if self._last_sent is None or self._now - self._last_sent >= self.heartbeat_ticks:
            self._seq += 1
            self._last_sent = self._now
            self._sent += 1
            out.send.append((ALL, Heartbeat(self.node_id, self.epoch, self._seq, self.payload)))
        for p in self.peers:
            if p not in self._suspected and self.phi_of(p) >= self.threshold:
                self._suspected.add(p)
                self._suspicions += 1
                out.events.append(Suspect(p))

    def _on_heartbeat(self, sender: NodeId, hb: object, out: DetectorOutput) -> None:
        if not isinstance(hb, Heartbeat) or hb.sender != sender or sender not in self._intervals:
            self._ignored += 1
            return
        stamp = (hb.epoch, hb.seq)
        if sender in self._last_stamp and stamp <= self._last_stamp[sender]:
            self._ignored += 1
            return
        now = self._now if self._now is not None else 0
        if sender in self._last_stamp:      # the first arrival has no interval before it
            self._add_interval(sender, float(now - self._last_heard.get(sender, now)))
        self._received += 1
        self._last_stamp[sender] = stamp
        self._last_payload[sender] = hb.payload
        self._last_heard[sender] = now
        if sender in self._suspected:
            self._suspected.discard(sender)
            self._false_suspicions += 1
            out.events.append(Trust(sender))

    def _check_invariants(self) -> None:
        if not self._suspected <= set(self.peers):
            raise ConsensusBug("suspected a node that is not a peer")
        if any(len(w) > self.window_max for w in self._intervals.values()):
            raise ConsensusBug("interval window over its bound")
