"""State and shared helpers of a PBFT replica (the base of :class:`PbftReplica`).

The replica is split across modules by concern -- this base (state, signing, dropping,
evidence, timers), :mod:`._checkpoints` (Applied, checkpoints, stability, state transfer),
:mod:`._viewchange` (view change and new view) and :mod:`.replica` (dispatch, the normal
case, catch-up, restore). The pieces are mixins over :class:`ReplicaCore`; methods that one
piece calls in another are declared here.

Invariants kept across modules (checked by ``PbftReplica._check_invariants``):
``low <= last_executed``; every slot is inside ``(low, high]``; our own votes never
conflict for one (view, seq); at most one prepared digest per (view, seq).
"""

from __future__ import annotations

import enum
import random
from collections import Counter, deque
from dataclasses import dataclass

from consensus.contract import (
    ConsensusBug,
    Evidence,
    NodeId,
    Output,
    Signer,
    Validity,
    Verifier,
)
from consensus.pbft._log import Slot
from consensus.pbft.config import PbftConfig
from consensus.pbft.messages import (
    Checkpoint,
    CheckpointProof,
    NewView,
    PbftMessage,
    SignedMessage,
    ViewChange,
    sign_message,
    verify_message,
)

__all__ = ["PbftStatistics", "Phase", "ReplicaCore"]

#: View changes remembered per sender (distinct views); older ones are forgotten.
VIEW_CHANGES_PER_NODE_MAX = 4


class Phase(enum.Enum):
    """NORMAL: working in ``view``. VIEW_CHANGE: sent a view change for ``view``, awaiting NewView.

    Transitions::

        NORMAL --timer expires / f+1 higher view changes--> VIEW_CHANGE(view+1 or higher)
        VIEW_CHANGE --timer expires (after a quorum of view changes)--> VIEW_CHANGE(view+1)
        VIEW_CHANGE or NORMAL --valid NewView for >= view--> NORMAL(new view)
    """

    NORMAL = "normal"
    VIEW_CHANGE = "view-change"


@dataclass(frozen=True, slots=True)
class PbftStatistics:
    """A snapshot for metrics and for "why is it stuck" answers (``waiting_for``)."""

    node_id: int
    view: int
    phase: str
    primary: int
    last_executed: int
    stable_checkpoint: int
    low_watermark: int
    high_watermark: int
    in_flight: int
    log_size: int
    queued: int
    pending: int
    delivered: int
    view_changes: int
    timer_deadline: int | None
    dropped: tuple[tuple[str, int], ...]
    evidence: int
    waiting_for: str

    def dropped_count(self, reason: str) -> int:
        """How many messages were dropped for ``reason``."""
        return dict(self.dropped).get(reason, 0)


class ReplicaCore:
    """Replica state and the helpers every part of the replica uses."""

    def __init__(
        self,
        config: PbftConfig,
        node_id: NodeId,
        signer: Signer,
        verifier: Verifier,
        validity: Validity,
        rng: random.Random,
    ) -> None:
        if not 0 <= node_id < config.n:
            raise ValueError(f"node {node_id} is not a member of a {config.n}-replica instance")
        if signer.node_id != node_id:
            raise ValueError("the signer belongs to another node")
        self.config = config
        self.node_id = node_id
        self._signer = signer
        self._verifier = verifier
        self._validity = validity
        self._rng = rng
        self.view = 0
        self.phase = Phase.NORMAL
        self.now = 0
        self.last_executed = 0
        self._last_applied = 0
        self._applied_roots: dict[int, bytes] = {}
        self._stable: CheckpointProof | None = None
        self._slots: dict[int, Slot] = {}
        self._slot_seq_max = 0
        self._touched: set[int] = set()
        self._voted: dict[tuple[int, int], bytes] = {}
        self._own_checkpoints: dict[int, Checkpoint] = {}
        self._checkpoint_votes: dict[int, dict[NodeId, Checkpoint]] = {}
        self._state_target: CheckpointProof | None = None
        self._state_target_since = 0
        self._state_wanted_at: int | None = None
        self._state_wanted_seq = -1
        self._queue: deque[bytes] = deque()
        self._queued: set[bytes] = set()
        self._pending: dict[bytes, bytes] = {}
        self._pending_forwards: dict[bytes, int] = {}
        self._recent: dict[bytes, int] = {}
        self._next_seq = 1
        self._view_changes: dict[int, dict[NodeId, ViewChange]] = {}
        self._my_vc: ViewChange | None = None
        self._new_view: NewView | None = None
        self._vc_attempts = 0
        self._deadline: int | None = None
        self._future: list[PbftMessage] = []
        self._last_retransmit = 0
        self._replied_at: dict[NodeId, int] = {}
        self._dropped: Counter[str] = Counter()
        self._evidence_seen: set[tuple[int, str, int, int]] = set()
        self._evidence_count = 0
        #: Pre-prepares forwarded to peers that voted for another digest (see replica).
        self.pre_prepares_shown = 0
        self._view_change_count = 0
        self._delivered_count = 0
        self._delivery_base = 0
        self._started = False

    # --- derived values -------------------------------------------------------------------

    @property
    def low(self) -> int:
        """Low watermark h: the last stable checkpoint."""
        return self._stable.seq if self._stable is not None else 0

    @property
    def high(self) -> int:
        """High watermark H = h + window."""
        return self.low + self.config.window

    @property
    def is_primary(self) -> bool:
        return self.config.primary_of(self.view) == self.node_id

    def primary_of(self, view: int) -> NodeId:
        """The primary of ``view``."""
        return self.config.primary_of(view)

    def _in_window(self, seq: int) -> bool:
        return self.low < seq <= self.high

    def _timeout(self) -> int:
        base = self.config.view_timeout_ticks
        cap = self.config.view_timeout_ticks_max
        return min(cap, base << min(self._vc_attempts, 32))

    # --- helpers --------------------------------------------------------------------------

    def _sign(self, msg: SignedMessage) -> SignedMessage:
        return sign_message(msg, self._signer, self.config.instance_tag)

    def _drop(self, reason: str) -> None:
        self._dropped[reason] += 1

    def _authentic(self, msg: SignedMessage) -> bool:
        """Verify ``msg``'s signature, counting a failure as a drop."""
        if verify_message(msg, self._verifier, self.config.instance_tag):
            return True
        self._drop("bad-signature")
        return False

    def _evidence(
        self, out: Output, offender: NodeId, kind: str, first: object, second: object, view: int, seq: int
    ) -> None:
        key = (int(offender), kind, view, seq)
        if key in self._evidence_seen:
            return
        if len(self._evidence_seen) >= self.config.evidence_max:
            return
        self._evidence_seen.add(key)
        self._evidence_count += 1
        out.evidence.append(Evidence(offender=offender, kind=kind, first=first, second=second))

    def _slot(self, seq: int) -> Slot:
        """The slot for ``seq`` (inside the window), moved to the current view."""
        slot = self._slots.get(seq)
        if slot is None:
            if not self._in_window(seq):
                raise ConsensusBug(f"slot {seq} outside watermarks ({self.low}, {self.high}]")
            slot = Slot(seq, view=self.view)
            self._slots[seq] = slot
            self._slot_seq_max = max(self._slot_seq_max, seq)
        else:
            slot.move_to(self.view)
        self._touched.add(seq)
        return slot

    def _reply_allowed(self, node: NodeId) -> bool:
        """Rate limit of unsolicited help (proofs, new views) to one peer."""
        last = self._replied_at.get(node)
        if last is not None and self.now - last < self.config.retransmit_ticks:
            return False
        self._replied_at[node] = self.now
        return True

    def _remember_delivered(self, digest: bytes, seq: int) -> None:
        self._recent[digest] = seq
        limit = 4 * self.config.window + self.config.proposal_queue_max
        while len(self._recent) > limit:
            del self._recent[next(iter(self._recent))]

    def _has_unfinished_slot(self) -> bool:
        """Is there a pre-prepare of this view, or a commit, above the last executed value?"""
        slots = self._slots
        view = self.view
        for seq in range(self.last_executed + 1, self._slot_seq_max + 1):
            slot = slots.get(seq)
            if slot is not None and (
                slot.committed is not None or (slot.pre_prepare is not None and slot.pre_prepare.view == view)
            ):
                return True
        return False

    def _digest_in_flight(self, digest: bytes) -> bool:
        return any(
            s.pre_prepare is not None and s.pre_prepare.digest == digest and s.committed is None
            for s in self._slots.values()
        )

    # --- implemented by the other parts ---------------------------------------------------

    def _deliver_ready(self, out: Output) -> None:
        raise NotImplementedError

    def _try_propose(self, out: Output) -> None:
        raise NotImplementedError

    def _advance(self, slot: Slot, out: Output) -> None:
        raise NotImplementedError

    def _accept_new_view_pre_prepares(self, out: Output) -> None:
        raise NotImplementedError

    def _on_stable_proof(self, proof: CheckpointProof, out: Output) -> None:
        raise NotImplementedError

    def _dispatch_verified(self, msg: PbftMessage, out: Output) -> None:
        raise NotImplementedError

    def _enqueue(self, value: bytes, digest: bytes, out: Output) -> None:
        raise NotImplementedError

    def _forward_pending(self, out: Output) -> None:
        raise NotImplementedError

    def _checkpoints_to_resend(self) -> list[Checkpoint]:
        raise NotImplementedError

    def _stable_proof_for(self, node: NodeId) -> tuple[Checkpoint, ...]:
        raise NotImplementedError
