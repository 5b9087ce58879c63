"""Multi-Paxos configuration, statistics and certificate checking.

:class:`PaxosConfig` holds every bound and timer of a replica (ticks, batch sizes, window);
:func:`verify_certificate` lets checkers and catch-up code confirm that a delivered value
carries f+1 acceptor signatures. Who calls it: the replica, the node's wiring, the simulator
and its checkers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from consensus.contract import Certificate, NodeId, Verifier, quorum_size
from consensus.paxos.messages import Ballot, digest_of, vote_bytes

__all__ = ["PaxosConfig", "PaxosStatistics", "Role", "verify_certificate"]


@dataclass(frozen=True, slots=True)
class PaxosConfig:
    """Parameters of a Multi-Paxos cluster of ``n = 2f+1`` crash-only replicas (ids 0..n-1).

    Attributes:
        n: number of replicas.
        heartbeat_ticks: period of failure-detector heartbeats.
        election_timeout_ticks: bully election answer timeout.
        batch_values_max: values per Accept (and per Decided) message.
        window: slots the leader may have open above the stable checkpoint.
        instance_tag: names the cluster; signatures cover it.
        suspect_timeout_ticks: initial failure-detector timeout.
        suspect_timeout_ticks_max: cap of the adaptive failure-detector timeout.
        retransmit_ticks: period of retransmissions (Prepare, Accept, Checkpoint, CatchUp).
        checkpoint_interval: a Checkpoint is sent when ``Applied(seq)`` has ``seq`` a multiple.
        pending_values_max: proposals held while no leader can take them.
        value_bytes_max: largest value accepted for ordering.
        catchup_entries_max: chosen values sent in answer to one CatchUp.
        reannounce_ticks: the elected leader repeats its Coordinator at this period.
        backoff_ticks_max: a preempted leader retries phase 1 after 1..this many ticks.
    """

    n: int
    heartbeat_ticks: int = 2
    election_timeout_ticks: int = 6
    batch_values_max: int = 32
    window: int = 256
    instance_tag: bytes = b"phalanx"
    suspect_timeout_ticks: int = 6
    suspect_timeout_ticks_max: int = 48
    retransmit_ticks: int = 4
    checkpoint_interval: int = 64
    pending_values_max: int = 1024
    value_bytes_max: int = 4 * 1024 * 1024
    catchup_entries_max: int = 64
    reannounce_ticks: int = 20
    backoff_ticks_max: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.n <= 1 << 16:
            raise ValueError("n must be in [1, 65536]")
        positive = [
            "heartbeat_ticks",
            "election_timeout_ticks",
            "batch_values_max",
            "window",
            "suspect_timeout_ticks",
            "retransmit_ticks",
            "checkpoint_interval",
            "pending_values_max",
            "value_bytes_max",
            "catchup_entries_max",
            "reannounce_ticks",
            "backoff_ticks_max",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.suspect_timeout_ticks_max < self.suspect_timeout_ticks:
            raise ValueError("suspect_timeout_ticks_max < suspect_timeout_ticks")
        if self.window < 2 * self.checkpoint_interval:
            raise ValueError("window must be at least two checkpoint intervals")

    @property
    def quorum(self) -> int:
        """A strict majority, f+1."""
        return quorum_size(self.n, byzantine=False)

    @property
    def members(self) -> tuple[NodeId, ...]:
        return tuple(NodeId(i) for i in range(self.n))


class Role(enum.Enum):
    """A replica's proposer role (every replica is always an acceptor and a learner).

    ::

        FOLLOWER --(elected)--> CANDIDATE --(f+1 promises)--> LEADER
            ^                       |                            |
            +------(preempted by a higher ballot, or another leader elected)
    """

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class PaxosStatistics:
    """A snapshot for metrics, tests and "why is it stuck" questions."""

    node_id: NodeId
    role: Role
    leader: NodeId | None
    ballot: Ballot
    promised: Ballot
    delivered: int
    applied: int
    low: int
    next_slot: int
    inflight: int
    pending: int
    accepted_log: int
    chosen_log: int
    suspected: frozenset[NodeId]
    counters: dict[str, int]


def verify_certificate(
    cert: Certificate, value: bytes, verifier: Verifier, n: int, instance_tag: bytes
) -> bool:
    """Check that ``cert`` proves ``value`` chosen at ``cert.seq``.

    Args:
        cert: the certificate delivered with the value.
        value: the delivered value (``b""`` for a gap-filling no-op).
        verifier: checks acceptor signatures.
        n: cluster size.
        instance_tag: the cluster's tag.

    Returns:
        True when the digest matches and f+1 distinct replicas signed the vote.
    """
    if cert.digest != digest_of(value):
        return False
    ballot = Ballot.unpack(cert.view)
    signed = vote_bytes(instance_tag, cert.seq, ballot, cert.digest)
    nodes = {node for node, _ in cert.signatures}
    if len(nodes) != len(cert.signatures) or not nodes <= set(range(n)):
        return False
    good = sum(1 for node, sig in cert.signatures if verifier.verify(NodeId(node), signed, sig))
    return good == len(cert.signatures) and good >= quorum_size(n, byzantine=False)
