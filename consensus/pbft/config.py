"""PBFT configuration: replica count, fault threshold, quorums, bounds and timers.

``n`` replicas tolerate ``f`` Byzantine ones. ``f`` defaults to ``(n - 1) // 3``; any
``0 <= f < n`` is accepted so that tests can build the *unsafe* negative control ``n = 3f``
(for example ``n = 3, f = 1``: quorum 2, and two quorums may meet only in a Byzantine
replica). Safety needs ``n >= 3f + 1``; :attr:`PbftConfig.is_safe` says whether it holds.

The quorum is ``n - f`` (``2f + 1`` when ``n = 3f + 1``): the most votes that can be waited
for while ``f`` replicas are silent. Any two quorums intersect in ``n - 2f`` replicas, which
is ``>= f + 1`` (so at least one honest replica) exactly when ``n >= 3f + 1``.

Every bound a peer could push against has a ``*_max`` here. Time is in driver ticks.
Used by :mod:`consensus.pbft.replica`, the message checks and the simulator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.contract import NodeId

__all__ = ["DEFAULT_INSTANCE_TAG", "NULL_DIGEST", "PbftConfig", "sha256_digest"]

#: Default chain/instance tag mixed into every signature (nodes use their chain id).
DEFAULT_INSTANCE_TAG = b"phalanx/pbft"

#: Digest of the null request (value ``b""``), used to fill gaps in a new view.
NULL_DIGEST = b"\x00" * 32


def sha256_digest(value: bytes) -> bytes:
    """The default value digest: SHA-256 of the value bytes."""
    return hashlib.sha256(value).digest()


@dataclass(frozen=True)
class PbftConfig:
    """Static parameters shared by every replica of one PBFT instance.

    Attributes:
        n: number of replicas (node ids ``0..n-1``).
        f: tolerated Byzantine replicas (default ``(n-1)//3``).
        checkpoint_interval: K; a checkpoint every K delivered sequence numbers.
        watermark_window: H - h (default ``2K``); pre-prepares beyond it are dropped.
        view_timeout_ticks: base view-change timer.
        view_timeout_ticks_max: cap of the doubling timer.
        batch_values_max: most sequence numbers the primary keeps in flight (pre-prepared,
            not yet delivered); further proposals wait in its queue.
        proposal_queue_max: most values waiting in the primary's queue.
        pending_values_max: most forwarded values a backup remembers (to re-forward them and
            to propose them if it becomes primary).
        pending_forwards_max: a pending value is forgotten after this many re-broadcasts
            without being delivered (it may have been ordered inside a state transfer, which
            carries no per-value deliveries; the application proposes it again if needed).
        retransmit_ticks: period of re-sending own messages for unfinished work and status.
        retransmit_slots_max: most sequence numbers re-sent per period.
        catchup_batch_max: most committed proofs sent to one lagging peer per status.
        state_wait_ticks: how long a replica waits for in-flight messages before asking the
            driver for state at a stable checkpoint it has not reached.
        future_messages_max: buffered messages for the next view (replayed on entering it).
        value_bytes_max: largest value (block) accepted.
        evidence_max: distinct evidence items remembered (to report each once).
        instance_tag: chain/instance tag inside every signed message.
        digest_fn: value digest (32 bytes); the node may use its block hash.
    """

    n: int
    f: int | None = None
    checkpoint_interval: int = 10
    watermark_window: int | None = None
    view_timeout_ticks: int = 20
    view_timeout_ticks_max: int = 320
    batch_values_max: int = 8
    proposal_queue_max: int = 1024
    pending_values_max: int = 256
    pending_forwards_max: int = 64
    retransmit_ticks: int = 5
    retransmit_slots_max: int = 16
    catchup_batch_max: int = 16
    state_wait_ticks: int = 10
    future_messages_max: int = 512
    value_bytes_max: int = 4 * 1024 * 1024
    evidence_max: int = 1024
    instance_tag: bytes = DEFAULT_INSTANCE_TAG
    digest_fn: Callable[[bytes], bytes] = field(default=sha256_digest, compare=False)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("need at least one replica")
        if self.f is None:
            object.__setattr__(self, "f", (self.n - 1) // 3)
        assert self.f is not None
        if not 0 <= self.f < self.n:
            raise ValueError(f"f={self.f} must satisfy 0 <= f < n={self.n}")
        if self.checkpoint_interval < 1:
            raise ValueError("checkpoint_interval must be >= 1")
        if self.watermark_window is None:
            object.__setattr__(self, "watermark_window", 2 * self.checkpoint_interval)
        assert self.watermark_window is not None
        if self.watermark_window < self.checkpoint_interval:
            raise ValueError("watermark_window must be >= checkpoint_interval")
        for name in (
            "view_timeout_ticks",
            "batch_values_max",
            "retransmit_ticks",
            "retransmit_slots_max",
            "catchup_batch_max",
            "proposal_queue_max",
            "pending_values_max",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.view_timeout_ticks_max < self.view_timeout_ticks:
            raise ValueError("view_timeout_ticks_max must be >= view_timeout_ticks")
        if len(self.instance_tag) > 64:
            raise ValueError("instance_tag is at most 64 bytes")

    @property
    def faults(self) -> int:
        """``f`` as a plain int (resolved in ``__post_init__``)."""
        assert self.f is not None
        return self.f

    @property
    def window(self) -> int:
        """The watermark window H - h as a plain int."""
        assert self.watermark_window is not None
        return self.watermark_window

    @property
    def quorum(self) -> int:
        """Votes for prepared-plus-own / committed / stable / new view: ``n - f``."""
        return self.n - self.faults

    @property
    def weak_quorum(self) -> int:
        """``f + 1``: at least one honest replica among them."""
        return self.faults + 1

    @property
    def is_safe(self) -> bool:
        """True when ``n >= 3f + 1`` (quorums intersect in an honest replica)."""
        return self.n >= 3 * self.faults + 1

    @property
    def members(self) -> tuple[NodeId, ...]:
        return tuple(NodeId(i) for i in range(self.n))

    def primary_of(self, view: int) -> NodeId:
        """The primary of ``view``: ``view mod n``."""
        return NodeId(view % self.n)

    def digest_of(self, value: bytes) -> bytes:
        """Digest of a value; the null request ``b""`` has :data:`NULL_DIGEST`."""
        if value == b"":
            return NULL_DIGEST
        return self.digest_fn(value)
