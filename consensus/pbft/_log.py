"""The per-sequence-number message log of a PBFT replica.

A :class:`Slot` holds what one replica knows about one sequence number inside its watermarks
``(h, H]``: the accepted pre-prepare and the prepare/commit votes *of the slot's current view*
(reset when the replica moves to a higher view), the highest-view prepared certificate (kept
across views: it goes into view changes), and the commit certificate once committed (kept
across views until delivery and garbage collection).

Invariants (checked by the replica): at most one vote per sender per (view, seq) is stored --
a second, different one is evidence; a prepared certificate always matches the slot's
pre-prepare when both are of the same view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consensus.contract import Certificate, NodeId
from consensus.pbft.messages import Commit, CommittedProof, Prepare, PreparedCert, PrePrepare

__all__ = ["Committed", "Slot"]


@dataclass(frozen=True, slots=True)
class Committed:
    """A committed value with the commits that prove it."""

    view: int
    digest: bytes
    value: bytes
    commits: tuple[Commit, ...]
    certificate: Certificate


@dataclass(slots=True)
class Slot:
    """Everything known about one sequence number (see module docstring)."""

    seq: int
    view: int = 0
    pre_prepare: PrePrepare | None = None
    prepares: dict[NodeId, Prepare] = field(default_factory=dict)
    commits: dict[NodeId, Commit] = field(default_factory=dict)
    prepared: PreparedCert | None = None
    committed: Committed | None = None
    proof: CommittedProof | None = None
    #: The replica's tick when it executed (delivered) this seq; ``None``: unknown (restored).
    executed_at: int | None = None
    #: Peers sent our pre-prepare because they voted for another digest (this view).
    shown: set[NodeId] = field(default_factory=set)

    def move_to(self, view: int) -> None:
        """Forget the votes of older views (the prepared and committed proofs stay)."""
        if view > self.view:
            self.view = view
            self.pre_prepare = None
            self.prepares = {}
            self.commits = {}
            self.shown = set()

    def matching_prepares(self, primary: NodeId) -> list[Prepare]:
        """Prepares from backups matching the accepted pre-prepare, by sender."""
        pp = self.pre_prepare
        if pp is None:
            return []
        return sorted(
            (p for node, p in self.prepares.items() if node != primary and p.digest == pp.digest),
            key=lambda p: p.sender,
        )

    def matching_commits(self, digest: bytes) -> list[Commit]:
        return sorted((c for c in self.commits.values() if c.digest == digest), key=lambda c: c.sender)

    def prepared_in_view(self) -> bool:
        return self.prepared is not None and self.prepared.view == self.view
