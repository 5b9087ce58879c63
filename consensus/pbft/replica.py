"""The PBFT replica: a sans-IO engine (``step(input) -> Output``) after Castro & Liskov.

Theory of operation
-------------------
Normal case, one value per sequence number::

    Propose(value) at the primary --> PrePrepare(v, n, d, value) to all
    backup accepts it (signed by primary(v), view v, h < n <= H, d = digest(value),
        validity(value), no other accepted digest for (v, n))   --> Prepare(v, n, d) to all
    prepared  = pre-prepare + quorum-1 matching prepares from backups --> Commit(v, n, d)
    committed = prepared + quorum matching commits --> deliver in seq order, with a
        Certificate of quorum signed commits

Proposals made at a backup are remembered as *pending* and broadcast in a signed ``Request``
(re-sent on retransmission, like a PBFT client multicasting its request): the primary queues
it, the other backups keep it pending too. Pending work runs every backup's view-change
timer, so a primary that ignores requests is replaced, and whichever replica becomes primary
proposes the pending values.

Checkpoints, garbage collection and state transfer live in :mod:`._checkpoints`; view change
in :mod:`._viewchange`; retransmission, catch-up and restore in :mod:`._recovery`; proof
checks in :mod:`._proofs`; the log of one sequence number in :mod:`._log`.

Not every signed message is a vote: ``Status``, ``Request`` and ``CommittedProof`` carry no
promise and are not persisted (the first two are re-signed when re-sent).

Catch-up: every ``retransmit_ticks`` each replica re-sends its own messages for unfinished
sequence numbers (bounded) and a signed ``Status``. A peer that is ahead answers with
``CommittedProof`` messages (value + quorum of commits), its stable checkpoint proof when the
sender is below it, and its NewView when the sender is in an older view.

Persistence: every message we sign is in ``out.persist`` before it appears in ``out.send``,
as are prepared certificates and stable checkpoint proofs. ``restore(records)`` rebuilds the
votes, view, prepared certificates and stable checkpoint, so a restarted replica never signs
a conflicting vote. After ``restore`` the driver feeds ``Applied(head_seq, head_root)`` for
its durable ledger head (null requests count as values: the driver reports ``Applied`` for
them too).

Peers' bad input (non-member, bad signature, stale view, outside watermarks, oversized,
invalid) is dropped and counted by reason in :meth:`PbftReplica.statistics`.

Evidence: two different messages one validator signed for the same (view, seq) and phase
go to ``out.evidence``. A primary that equivocates tells each backup only one value, so a
replica that sees a vote for another digest than its accepted pre-prepare's sends the voter
that pre-prepare (``_show_pre_prepare``); the voter then holds two and reports it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from consensus.contract import (
    ALL,
    Applied,
    Certificate,
    ConsensusBug,
    Delivery,
    Input,
    InvalidMessage,
    NodeId,
    Output,
    Propose,
    Receive,
    Signer,
    Tick,
    Validity,
    Verifier,
)
from consensus.pbft._checkpoints import CheckpointMixin
from consensus.pbft._core import PbftStatistics, Phase
from consensus.pbft._log import Committed, Slot
from consensus.pbft._proofs import (
    certificate_from_commits,
    verify_certificate,
)
from consensus.pbft._recovery import RecoveryMixin
from consensus.pbft._viewchange import ViewChangeMixin
from consensus.pbft.config import PbftConfig
from consensus.pbft.messages import (
    Checkpoint,
    Commit,
    CommittedProof,
    NewView,
    PbftMessage,
    Prepare,
    PreparedCert,
    PrePrepare,
    Request,
    Status,
    ViewChange,
    decode_record,
)

__all__ = ["PbftReplica", "PbftStatistics", "Phase", "verify_certificate"]


class PbftReplica(RecoveryMixin, ViewChangeMixin, CheckpointMixin):
    """One PBFT replica. See the module docstring for the protocol.

    Args:
        config: the instance's parameters (shared by all replicas).
        node_id: this replica's id, ``0 <= node_id < n``.
        signer: signs with this replica's key.
        verifier: checks every replica's signatures.
        validity: application check of a proposed value; invalid values get no prepare.
        rng: injected randomness (currently unused by the protocol; kept for the contract).
    """

    def __init__(
        self,
        config: PbftConfig,
        node_id: NodeId,
        signer: Signer,
        verifier: Verifier,
        validity: Validity,
        rng: random.Random,
    ) -> None:
        super().__init__(config, node_id, signer, verifier, validity, rng)
        self._handlers: dict[type, Callable[[Any, Output], None]] = {
            PrePrepare: self._on_pre_prepare,
            Prepare: self._on_prepare,
            Commit: self._on_commit,
            Checkpoint: self._on_checkpoint,
            ViewChange: self._on_view_change,
            NewView: self._on_new_view,
            Request: self._on_request,
            Status: self._on_status,
            CommittedProof: self._on_committed_proof,
        }

    # --- the engine contract -------------------------------------------------------------

    def step(self, event: Input) -> Output:
        """Process one input and return the effects to execute in order.

        Raises:
            ConsensusBug: one of our own invariants broke (never for a peer's bad message).
        """
        self._started = True
        self._delivery_base = self.last_executed
        out = Output()
        if isinstance(event, Receive):
            self._on_receive(event.message, out)
        elif isinstance(event, Tick):
            self._on_tick(event, out)
        elif isinstance(event, Propose):
            self._on_propose(event.value, out)
        elif isinstance(event, Applied):
            self._on_applied(event, out)
        else:
            raise TypeError(f"unknown input {event!r}")
        self._update_timer()
        self._check_invariants(out)
        return out

    def statistics(self) -> PbftStatistics:
        """A snapshot of the replica's progress and drop counters."""
        return PbftStatistics(
            node_id=int(self.node_id),
            view=self.view,
            phase=self.phase.value,
            primary=int(self.primary_of(self.view)),
            last_executed=self.last_executed,
            stable_checkpoint=self.low,
            low_watermark=self.low,
            high_watermark=self.high,
            in_flight=sum(
                1
                for s, slot in self._slots.items()
                if s > self.last_executed and slot.pre_prepare is not None and slot.pre_prepare.view == self.view
            ),
            log_size=len(self._slots),
            queued=len(self._queue),
            pending=len(self._pending),
            delivered=self._delivered_count,
            view_changes=self._view_change_count,
            timer_deadline=self._deadline,
            dropped=tuple(sorted(self._dropped.items())),
            evidence=self._evidence_count,
            waiting_for=self._waiting_for(),
        )

    def _waiting_for(self) -> str:
        """What the replica waits for next, in words (for operators and failing tests)."""
        quorum = self.config.quorum
        primary = int(self.primary_of(self.view))
        if self.phase is Phase.VIEW_CHANGE:
            have = sorted(int(n) for n in self._view_changes.get(self.view, {}))
            if len(have) < quorum:
                return f"view changes for view {self.view}: {len(have)}/{quorum} from {have}"
            return f"NewView for view {self.view} from primary {primary}"
        target = self._state_target
        if target is not None and target.seq > self.last_executed:
            return f"state at stable checkpoint {target.seq} from the driver"
        seq = self.last_executed + 1
        slot = self._slots.get(seq)
        pp = slot.pre_prepare if slot is not None else None
        if slot is None or pp is None or pp.view != self.view:
            if not self._pending and not self._queue and not self._has_unfinished_slot():
                return "nothing (idle)"
            if seq > self.high:
                return f"a stable checkpoint to move the high watermark {self.high}"
            return f"pre-prepare for seq {seq} from primary {primary}"
        if not slot.prepared_in_view():
            got = sorted(int(p.sender) for p in slot.matching_prepares(self.primary_of(self.view)))
            return f"prepares for seq {seq}: {len(got)}/{quorum - 1} from {got}"
        got = sorted(int(c.sender) for c in slot.matching_commits(pp.digest))
        return f"commits for seq {seq}: {len(got)}/{quorum} from {got}"

    def verify_certificate(self, cert: Certificate, value_digest: bytes) -> bool:
        """True iff ``cert`` is a valid commit certificate for ``value_digest``."""
        return verify_certificate(self.config, self._verifier, cert, value_digest)

    # --- inputs --------------------------------------------------------------------------

    def _on_receive(self, msg: Any, out: Output) -> None:
        if isinstance(msg, bytes | bytearray):
            try:
                msg = decode_record(bytes(msg))
            except InvalidMessage:
                self._drop("malformed")
                return
        handler = self._handlers.get(type(msg))
        if handler is None:
            self._drop("unknown-message")
            return
        if not 0 <= msg.sender < self.config.n:
            self._drop("non-member")
            return
        if msg.sender == self.node_id:
            self._drop("own-message")
            return
        handler(msg, out)

    def _on_tick(self, ev: Tick, out: Output) -> None:
        self.now = max(self.now, ev.now)
        if self._deadline is not None and self.now >= self._deadline:
            self._deadline = None
            self._start_view_change(self.view + 1, out)
        self._tick_state_transfer(out)
        if self.now - self._last_retransmit >= self.config.retransmit_ticks:
            self._last_retransmit = self.now
            self._retransmit(out)

    def _on_propose(self, value: bytes, out: Output) -> None:
        if not value:
            self._drop("empty-proposal")
            return
        if len(value) > self.config.value_bytes_max:
            self._drop("oversized")
            return
        digest = self.config.digest_of(value)
        if digest in self._recent or digest in self._queued or digest in self._pending:
            self._drop("duplicate-proposal")
            return
        if not self._validity(value):
            self._drop("invalid-value")
            return
        if self.phase is Phase.NORMAL and self.is_primary:
            self._enqueue(value, digest, out)
            return
        self._keep_pending(digest, value)
        if digest in self._pending:
            request = self._sign(Request(value, self.node_id))
            out.send.append((ALL, request))

    def _enqueue(self, value: bytes, digest: bytes, out: Output) -> None:
        if digest in self._queued:
            return
        if len(self._queue) >= self.config.proposal_queue_max:
            self._drop("queue-full")
            return
        self._queue.append(value)
        self._queued.add(digest)
        self._try_propose(out)

    # --- normal case ---------------------------------------------------------------------

    def _view_ok(self, msg: PbftMessage, view: int) -> bool:
        """Is ``msg`` (of ``view``) for our current, working view? Buffers future ones."""
        if view < self.view:
            self._drop("stale-view")
            return False
        if view > self.view or self.phase is Phase.VIEW_CHANGE:
            share = max(1, self.config.future_messages_max // self.config.n)
            if len(self._future) >= self.config.future_messages_max or (
                sum(1 for m in self._future if m.sender == msg.sender) >= share
            ):
                self._drop("future-full")  # each sender gets a fair share of the buffer
            elif self._authentic(msg):
                self._future.append(msg)
            return False
        return True

    def _dispatch_verified(self, msg: PbftMessage, out: Output) -> None:
        if isinstance(msg, PrePrepare):
            self._on_pre_prepare(msg, out, verified=True)
        elif isinstance(msg, Prepare):
            self._on_prepare(msg, out, verified=True)
        elif isinstance(msg, Commit):
            self._on_commit(msg, out, verified=True)

    def _on_pre_prepare(self, pp: PrePrepare, out: Output, verified: bool = False) -> None:
        if not self._view_ok(pp, pp.view):
            return
        if pp.sender != self.primary_of(pp.view):
            self._drop("not-primary")
            return
        if not self._in_window(pp.seq):
            self._drop("outside-watermarks")
            return
        if len(pp.value) > self.config.value_bytes_max:
            self._drop("oversized")
            return
        slot = self._slot(pp.seq)
        have = slot.pre_prepare
        if have is not None:
            if have.digest == pp.digest:
                self._drop("duplicate")
            elif verified or self._authentic(pp):
                self._evidence(out, pp.sender, "equivocation", have, pp, pp.view, pp.seq)
                self._drop("equivocation")
            return
        if not verified and not self._authentic(pp):
            return
        if self.config.digest_of(pp.value) != pp.digest:
            self._drop("bad-digest")
            return
        if pp.value and not self._validity(pp.value):
            self._drop("invalid-value")
            return
        voted = self._voted.get((pp.view, pp.seq))
        if voted is not None and voted != pp.digest:
            self._drop("conflicts-own-vote")
            return
        if slot.committed is not None and slot.committed.digest != pp.digest:
            self._drop("conflicts-committed")
            return
        slot.pre_prepare = pp
        if self.node_id != pp.sender:
            prepare = self._sign(Prepare(pp.view, pp.seq, pp.digest, self.node_id))
            assert isinstance(prepare, Prepare)
            self._voted[(pp.view, pp.seq)] = pp.digest
            slot.prepares[self.node_id] = prepare
            out.persist.append(prepare)
            out.send.append((ALL, prepare))
        for vote in (*slot.prepares.values(), *slot.commits.values()):
            self._show_pre_prepare(slot, vote.sender, vote.digest, out)
        self._advance(slot, out)

    def _show_pre_prepare(self, slot: Slot, peer: NodeId, digest: bytes, out: Output) -> None:
        """``peer`` voted for another digest than our pre-prepare's in this view: send it ours.

        A primary that equivocates tells each backup one value only, so no backup holds two
        pre-prepares and none could prove it. The one we forward carries the primary's
        signature: a peer that accepted another one for the same (view, seq) now holds both
        and reports the equivocation (evidence, broadcast by the node); a peer that had none
        yet takes it like the primary's own. At most once per peer and view of a slot, and
        only on a conflicting vote, so honest runs never send it.
        """
        pp = slot.pre_prepare
        if (pp is None or digest == pp.digest or peer in slot.shown or peer == pp.sender
                or peer == self.node_id):
            return
        slot.shown.add(peer)
        self.pre_prepares_shown += 1
        out.send.append((peer, pp))

    def _on_prepare(self, p: Prepare, out: Output, verified: bool = False) -> None:
        if not self._view_ok(p, p.view):
            return
        if p.sender == self.primary_of(p.view):
            self._drop("prepare-from-primary")
            return
        if not self._in_window(p.seq):
            self._drop("outside-watermarks")
            return
        slot = self._slot(p.seq)
        have = slot.prepares.get(p.sender)
        if have is not None:
            if have.digest == p.digest:
                self._drop("duplicate")
            elif verified or self._authentic(p):
                self._evidence(out, p.sender, "double-prepare", have, p, p.view, p.seq)
                self._drop("double-prepare")
            return
        if not verified and not self._authentic(p):
            return
        slot.prepares[p.sender] = p
        self._show_pre_prepare(slot, p.sender, p.digest, out)
        self._advance(slot, out)

    def _on_commit(self, c: Commit, out: Output, verified: bool = False) -> None:
        if not self._view_ok(c, c.view):
            return
        if not self._in_window(c.seq):
            self._drop("outside-watermarks")
            return
        slot = self._slot(c.seq)
        have = slot.commits.get(c.sender)
        if have is not None:
            if have.digest == c.digest:
                self._drop("duplicate")
            elif verified or self._authentic(c):
                self._evidence(out, c.sender, "double-commit", have, c, c.view, c.seq)
                self._drop("double-commit")
            return
        if not verified and not self._authentic(c):
            return
        slot.commits[c.sender] = c
        self._show_pre_prepare(slot, c.sender, c.digest, out)
        self._advance(slot, out)

    def _advance(self, slot: Slot, out: Output) -> None:
        """Move ``slot`` to prepared (send a commit) and committed (deliver) when quorums allow."""
        pp = slot.pre_prepare
        if pp is None or pp.view != self.view or self.phase is not Phase.NORMAL:
            return
        quorum = self.config.quorum
        if not slot.prepared_in_view():
            prepares = slot.matching_prepares(self.primary_of(pp.view))
            if len(prepares) < quorum - 1:
                return
            cert = PreparedCert(pp, tuple(prepares[: quorum - 1]))
            slot.prepared = cert
            out.persist.append(cert)
            voted = self._voted.get((pp.view, pp.seq))
            if voted is not None and voted != pp.digest:
                raise ConsensusBug(f"prepared ({pp.view}, {pp.seq}) against our own vote")
            self._voted[(pp.view, pp.seq)] = pp.digest
            commit = self._sign(Commit(pp.view, pp.seq, pp.digest, self.node_id))
            assert isinstance(commit, Commit)
            out.persist.append(commit)
            out.send.append((ALL, commit))
            slot.commits.setdefault(self.node_id, commit)
        if slot.committed is None:
            commits = slot.matching_commits(pp.digest)
            if len(commits) < quorum:
                return
            chosen = tuple(commits[:quorum])
            cert_c = certificate_from_commits(self.config, chosen)
            slot.committed = Committed(pp.view, pp.digest, pp.value, chosen, cert_c)
            self._deliver_ready(out)

    def _deliver_ready(self, out: Output) -> None:
        progressed = False
        while True:
            slot = self._slots.get(self.last_executed + 1)
            if slot is None or slot.committed is None:
                break
            done = slot.committed
            out.deliver.append(Delivery(seq=slot.seq, value=done.value, certificate=done.certificate))
            self.last_executed = slot.seq
            slot.executed_at = self.now
            self._delivered_count += 1
            self._pending.pop(done.digest, None)
            self._pending_forwards.pop(done.digest, None)
            self._remember_delivered(done.digest, slot.seq)
            progressed = True
        if progressed:
            if self.phase is Phase.NORMAL:
                self._vc_attempts = 0
            if self._deadline is not None:
                self._deadline = self.now + self._timeout()
            self._check_stable_candidates(out)
            self._try_propose(out)

    def _try_propose(self, out: Output) -> None:
        if self.phase is not Phase.NORMAL or not self.is_primary:
            return
        self._next_seq = max(self._next_seq, self.last_executed + 1)
        while (
            self._queue
            and self._next_seq <= self.high
            and self._next_seq - 1 - self.last_executed < self.config.batch_values_max
        ):
            value = self._queue.popleft()
            digest = self.config.digest_of(value)
            self._queued.discard(digest)
            if digest in self._recent or self._digest_in_flight(digest):
                continue
            seq = self._next_seq
            self._next_seq += 1
            if (self.view, seq) in self._voted:
                self._queue.appendleft(value)
                self._queued.add(digest)
                continue
            pp = self._sign(PrePrepare(self.view, seq, digest, value, self.node_id))
            assert isinstance(pp, PrePrepare)
            self._voted[(self.view, seq)] = digest
            out.persist.append(pp)
            out.send.append((ALL, pp))
            slot = self._slot(seq)
            slot.pre_prepare = pp
            self._advance(slot, out)

    def _on_request(self, r: Request, out: Output) -> None:
        if not r.value or len(r.value) > self.config.value_bytes_max:
            self._drop("oversized" if r.value else "empty-proposal")
            return
        digest = self.config.digest_of(r.value)
        if (
            digest in self._queued
            or digest in self._recent
            or digest in self._pending
            or self._digest_in_flight(digest)
        ):
            self._drop("duplicate")
            return
        if not self._authentic(r):
            return
        if not self._validity(r.value):
            self._drop("invalid-value")
            return
        if self.phase is Phase.NORMAL and self.is_primary:
            self._enqueue(r.value, digest, out)
        else:
            self._keep_pending(digest, r.value)

    # --- invariants ----------------------------------------------------------------------

    def _check_invariants(self, out: Output) -> None:
        if self.low > self.last_executed:
            raise ConsensusBug(f"stable checkpoint {self.low} beyond last executed {self.last_executed}")
        expected = self._delivery_base
        for d in out.deliver:
            if d.seq != expected + 1:
                raise ConsensusBug(f"delivered seq {d.seq} after {expected}: not contiguous")
            expected = d.seq
        if out.deliver and expected != self.last_executed:
            raise ConsensusBug("last_executed does not match the deliveries")
        low, high = self.low, self.high
        if self._slots and not (low < min(self._slots) and max(self._slots) <= high):
            raise ConsensusBug(f"log outside watermarks ({low}, {high}]")
        touched, self._touched = self._touched, set()
        for seq in touched:
            slot = self._slots.get(seq)
            if slot is None:
                continue
            pp, cert = slot.pre_prepare, slot.prepared
            if pp is not None and cert is not None and cert.view == pp.view and cert.digest != pp.digest:
                raise ConsensusBug(f"two prepared digests for ({pp.view}, {seq})")
            mine = slot.prepares.get(self.node_id)
            if mine is not None and self._voted.get((mine.view, seq)) != mine.digest:
                raise ConsensusBug(f"own prepare for ({mine.view}, {seq}) not recorded as our vote")
