"""Prometheus metrics of one node (own registry, namespace ``phalanx_``).

Names follow CometBFT's where one exists (``consensus_height``, ``mempool_size``,
``p2p_peers``...). The node updates counters and histograms where events happen (the
driver's commit listener, the RPC admission path, the evidence hook) and refreshes the
gauges from snapshots just before each scrape (:meth:`NodeMetrics.render` calls the
``refresh`` callback), so no task polls. A registry per node keeps in-process test
clusters separate.

Called by :mod:`node.runtime` (wiring) and served by :mod:`node.api` at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["NodeMetrics"]

NAMESPACE = "phalanx"


class NodeMetrics:
    """Every metric the node exports."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        ns = NAMESPACE
        self.height = Gauge("consensus_height", "Height of the last committed block", namespace=ns, registry=r)
        self.view = Gauge("consensus_view", "Current consensus view (PBFT) or ballot round (Paxos)",
                          namespace=ns, registry=r)
        self.view_changes = Counter("consensus_view_changes", "View changes started", namespace=ns,
                                    registry=r)
        self.total_txs = Counter("consensus_total_txs", "Transactions committed", namespace=ns,
                                 registry=r)
        self.block_interval = Histogram(
            "consensus_block_interval_seconds", "Time between committed blocks", namespace=ns,
            registry=r, buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30),
        )
        self.mempool_size = Gauge("mempool_size", "Transactions waiting in the mempool", namespace=ns,
                                  registry=r)
        self.mempool_failed = Counter("mempool_failed_txs", "Transactions refused by the mempool",
                                      ["reason"], namespace=ns, registry=r)
        self.peers = Gauge("p2p_peers", "Connected peers", namespace=ns, registry=r)
        self.evidence = Counter("consensus_evidence", "Evidence of misbehaviour seen", ["kind"],
                                namespace=ns, registry=r)
        self.evidence_recorded = Counter(
            "consensus_evidence_recorded", "Evidence reliably delivered, verified and recorded",
            ["kind"], namespace=ns, registry=r)
        self.evidence_rejected = Counter(
            "consensus_evidence_rejected", "Delivered evidence that did not verify", namespace=ns,
            registry=r)
        self.tx_held_back = Gauge("mempool_tx_held_back",
                                  "Gossiped transactions held until their nonce is next",
                                  namespace=ns, registry=r)
        self.tx_held_back_dropped = Counter(
            "mempool_tx_held_back_dropped", "Held-back transactions dropped (bounds, stale)",
            namespace=ns, registry=r)
        self.tx_rebroadcast = Counter(
            "mempool_tx_rebroadcast", "Long-pending transactions re-gossiped to the peers",
            namespace=ns, registry=r)
        self.block_processing = Histogram(
            "state_block_processing_seconds", "Time to execute and commit one block",
            namespace=ns, registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.noops = Counter("consensus_noop_deliveries", "Deliveries that did not extend the head",
                             namespace=ns, registry=r)
        self.proposals_rejected = Counter(
            "proposals_rejected", "Proposals this node's validity check refused", ["reason"],
            namespace=ns, registry=r)
        self.clock_median_offset = Gauge(
            "clock_median_offset_seconds", "Validators' median time minus this node's clock",
            namespace=ns, registry=r)
        self.peer_clock_offset = Gauge(
            "p2p_peer_clock_offset_seconds", "Each peer's clock minus ours (Cristian estimate)",
            ["peer"], namespace=ns, registry=r)
        self.suspected_peers = Gauge("p2p_suspected_peers",
                                     "Peers this node's failure detector suspects",
                                     namespace=ns, registry=r)
        self.confirmed_suspicions = Gauge(
            "p2p_confirmed_suspicions", "Nodes suspected by a quorum (f + 1) of validators",
            namespace=ns, registry=r)
        self.peer_phi = Gauge("p2p_peer_phi", "Phi-accrual suspicion level of each peer",
                              ["peer"], namespace=ns, registry=r)
        self.refresh: Callable[[], None] | None = None
        self._views_seen = 0
        self._noops_seen = 0

    def observe_view_changes(self, total: int) -> None:
        """Advance the view-change counter to the engine's running total."""
        if total > self._views_seen:
            self.view_changes.inc(total - self._views_seen)
            self._views_seen = total

    def observe_noops(self, total: int) -> None:
        """Advance the no-op delivery counter to the driver's running total."""
        if total > self._noops_seen:
            self.noops.inc(total - self._noops_seen)
            self._noops_seen = total

    def render(self) -> bytes:
        """The Prometheus text exposition (gauges refreshed first)."""
        if self.refresh is not None:
            self.refresh()
        return bytes(generate_latest(self.registry))
