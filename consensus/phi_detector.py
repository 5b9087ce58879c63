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

from consensus.contract import ConsensusBug, NodeId
from consensus.failure_detector import (
    HeartbeatDetectorBase,
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


class PhiAccrualFailureDetector(HeartbeatDetectorBase):
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
        skip_outage_intervals: do not learn the interval ended by the first heartbeat of a
            suspected peer (as Akka does): an outage, e.g. a crash and restart, says
            nothing about the link, and would otherwise stretch that peer's effective
            timeout for the next ``window_max`` heartbeats.
    """

    def __init__(self, node_id: NodeId, peers: Iterable[NodeId], heartbeat_ticks: int,
                 threshold: float = 8.0, window_max: int = 100, std_ticks_min: float = 1.0,
                 pause_ticks: int = 0, epoch: int = 0,
                 skip_outage_intervals: bool = False) -> None:
        if heartbeat_ticks < 1 or threshold <= 0 or window_max < 2 or std_ticks_min <= 0 \
                or pause_ticks < 0:
            raise ValueError("need heartbeat_ticks >= 1, threshold > 0, window_max >= 2, "
                             "std_ticks_min > 0 and pause_ticks >= 0")
        super().__init__(node_id, peers, heartbeat_ticks, epoch)
        self.threshold = threshold
        self.window_max = window_max
        self.std_ticks_min = std_ticks_min
        self.pause_ticks = pause_ticks
        self.skip_outage_intervals = skip_outage_intervals
        prior = [float(heartbeat_ticks)] * 2
        self._intervals: dict[NodeId, deque[float]] = {
            p: deque(prior, maxlen=window_max) for p in self.peers}
        # Running (sum, sum of squares) per window: intervals are whole ticks, so exact.
        self._sums: dict[NodeId, tuple[float, float]] = {
            p: (sum(prior), sum(x * x for x in prior)) for p in self.peers}
        self._fits: dict[NodeId, tuple[float, float]] = {}

    # -- queries ------------------------------------------------------------------------

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

    # -- hooks of the shared heartbeat machinery ---------------------------------------------

    def _overdue(self, peer: NodeId, silence: int) -> bool:
        return self.phi_of(peer) >= self.threshold

    def _on_arrival(self, peer: NodeId, now: int) -> None:
        if self.skip_outage_intervals and peer in self._suspected:
            return                        # the end of an outage, not a sample of the link
        if peer in self._last_stamp:      # the first arrival has no interval before it
            self._add_interval(peer, float(now - self._last_heard.get(peer, now)))

    def _check_invariants(self) -> None:
        super()._check_invariants()
        if any(len(w) > self.window_max for w in self._intervals.values()):
            raise ConsensusBug("interval window over its bound")
