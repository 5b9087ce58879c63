"""Wiring of clock synchronisation into the node: service, median time, RPC and metrics.

:func:`build_clock_sync` makes the node's :class:`~p2p.clocksync_service.ClockSyncService`
over its peer manager (``Kind.CLOCK``, every ``p2p.clock_sync_ms``, estimates kept for eight
rounds) and the :class:`~node.clock.MedianTime` that ``node.app`` checks proposals against
(a quorum of clocks, ``n - f``, before the median is trusted). A test-only clock skew
(``[testing] clock_skew_ms``) is announced here with a loud warning, like ``--byzantine``.

:class:`NodeClockSync` renders the ``net_info`` and ``status`` fields and moves the
metrics (``phalanx_proposals_rejected_total{reason}``, the median offset, per-peer offsets).

Called by :mod:`node.runtime` (once, at start) and :mod:`node.rpc_methods` (reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from node.clock import MedianTime, NodeClock, quorum_times
from node.config import NodeConfig
from p2p.clocksync_service import ClockSyncService
from p2p.messages import PeerId
from p2p.peers import PeerManager

__all__ = ["ESTIMATE_ROUNDS", "NodeClockSync", "build_clock_sync"]

log = logging.getLogger("phalanx.node.clock")

#: An estimate counts for this many clock-sync rounds, then the peer is re-measured.
ESTIMATE_ROUNDS = 8


@dataclass
class NodeClockSync:
    """The node's clock, its clock-sync service and the validators' median time."""

    clock: NodeClock
    service: ClockSyncService
    median: MedianTime
    bound_ms: int
    _seen: dict[str, int] = field(default_factory=dict)

    def net_info(self) -> dict[str, Any]:
        """Per peer: ``offset_ms`` (its clock minus ours), ``error_ms`` (rtt/2), ``rtt_ms``,
        ``age_ms`` of the estimate; the median's offset and the drop counters."""
        stats = self.service.statistics()
        return {
            "peers": {
                str(int(c.peer)): {
                    "offset_ms": round(c.offset_us / 1000, 3),
                    "error_ms": round(c.error_us / 1000, 3),
                    "rtt_ms": round(c.rtt_us / 1000, 3),
                    "age_ms": round(c.age_seconds * 1000),
                }
                for c in self.service.peer_clocks()
            },
            "median_time_offset_ms": self.median.status()["median_time_offset_ms"],
            "requests_sent": stats.requests_sent,
            "requests_served": stats.requests_served,
            "estimates": stats.estimates,
            "dropped": dict(stats.dropped),
        }

    def status(self) -> dict[str, Any]:
        """The median time, where it comes from, the bound and any test skew."""
        out: dict[str, Any] = dict(self.median.status())
        out["timestamp_bound_ms"] = self.bound_ms
        return out

    def update_metrics(self, metrics: Any, timestamp_rejections: int, invalid_total: int) -> None:
        """Move the rejection counters to the app's totals; set the clock gauges."""
        for reason, total in (("timestamp", timestamp_rejections),
                              ("other", invalid_total - timestamp_rejections)):
            seen = self._seen.get(reason, 0)
            if total > seen:
                metrics.proposals_rejected.labels(reason).inc(total - seen)
                self._seen[reason] = total
        off = self.median.offset_ms()
        metrics.clock_median_offset.set(0.0 if off is None else off / 1000)
        for c in self.service.peer_clocks():
            metrics.peer_clock_offset.labels(str(int(c.peer))).set(c.offset_us / 1e6)


def build_clock_sync(config: NodeConfig, clock: NodeClock, node_id: int, validators: int,
                     peers: PeerManager) -> NodeClockSync:
    """Make the service (subscribes ``Kind.CLOCK``: call before ``peers.run``) and the median.

    Args:
        config: the node's config (``p2p.clock_sync_ms``, the timestamp bound, the skew).
        clock: the node's wall clock (already carrying any test skew).
        node_id: this validator.
        validators: how many validators the chain has.
        peers: the node's peer manager.
    """
    if clock.skew_ms:
        log.warning("!!! CLOCK SKEW of %+d ms is ON at validator %d: its clock is wrong on "
                    "purpose (test networks only) !!!", clock.skew_ms, node_id)
    interval = config.p2p.clock_sync_ms / 1000
    service = ClockSyncService(peers, PeerId(node_id), clock.now_us, interval_seconds=interval,
                               age_seconds_max=ESTIMATE_ROUNDS * interval)
    median = MedianTime(clock, lambda times_min: service.median_offset_us(times_min),
                        times_min=quorum_times(validators))
    return NodeClockSync(clock, service, median, config.consensus.timestamp_drift_ms_max)
