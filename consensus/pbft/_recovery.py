"""Catch-up, retransmission and restart for the PBFT replica.

Theory of operation
-------------------
Networks drop messages, so every ``retransmit_ticks`` a replica re-sends (never re-signs)
its own messages for unfinished sequence numbers of the current view (at most
``retransmit_slots_max``; a primary's pre-prepare, which carries the value, only to replicas
whose matching prepare or commit it does not hold), its view change while waiting for a new view, its unstable
checkpoints and its pending requests, and broadcasts a signed ``Status``. A peer that is
ahead answers a ``Status`` (at most once per ``retransmit_ticks`` per peer) with

* its NewView, when the sender is in an older view;
* its stable checkpoint proof, when the sender is below it (the sender then asks its driver
  for state: ``StateWanted``);
* up to ``catchup_batch_max`` ``CommittedProof`` messages (value + a quorum of signed
  commits), which the sender checks and delivers like its own commits -- only for seqs the
  sender is really behind on: seqs this replica executed at least ``retransmit_ticks`` ago
  (or before a restart). A seq executed more recently is most likely still in flight at the
  sender, whose own prepares and commits finish it; if not, its next ``Status`` (one period
  later) gets the proof.

Restart: :meth:`RecoveryMixin.restore` rebuilds, from the records the replica persisted,
its view and phase, its votes per (view, seq), its prepared certificates, its own
checkpoints, view change and new view, and its stable checkpoint; so it never signs a
conflicting vote after a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consensus.contract import ALL, ConsensusBug, InvalidMessage, NodeId, Output
from consensus.pbft._core import Phase, ReplicaCore
from consensus.pbft._log import Committed, Slot
from consensus.pbft._proofs import check_committed_proof
from consensus.pbft.messages import (
    Checkpoint,
    CheckpointProof,
    Commit,
    CommittedProof,
    NewView,
    PbftMessage,
    Prepare,
    PreparedCert,
    PrePrepare,
    Status,
    ViewChange,
    decode_record,
)

__all__ = ["RecoveryMixin"]


class RecoveryMixin(ReplicaCore):
    """Retransmission, catch-up answers and restore (see module docstring)."""

    def _retransmit(self, out: Output) -> None:
        if self.phase is Phase.NORMAL:
            sent = 0
            for seq in sorted(self._slots):
                if sent >= self.config.retransmit_slots_max:
                    break
                slot = self._slots[seq]
                if seq <= self.last_executed or slot.view != self.view:
                    continue
                mine: list[PbftMessage] = []
                pp = slot.pre_prepare
                if pp is not None and pp.sender == self.node_id:
                    self._resend_pre_prepare(slot, pp, out)
                    mine.append(pp)
                for vote in (slot.prepares.get(self.node_id), slot.commits.get(self.node_id)):
                    if vote is not None:
                        mine.append(vote)
                        out.send.append((ALL, vote))
                sent += 1 if mine else 0
        elif self._my_vc is not None and self._my_vc.new_view == self.view:
            out.send.append((ALL, self._my_vc))
        self._forward_pending(out)
        for c in self._checkpoints_to_resend():
            out.send.append((ALL, c))
        status = self._sign(Status(self.view, self.last_executed, self.low, self.node_id))
        out.send.append((ALL, status))

    def _resend_pre_prepare(self, slot: Slot, pp: PrePrepare, out: Output) -> None:
        """Re-send our pre-prepare (it carries the whole value) only where it may be missing.

        A replica whose prepare or commit for this digest we hold has the pre-prepare: the
        value, often the largest message by far, is not sent to it again. To everyone when
        nobody has answered yet (one broadcast, as before).
        """
        have = {s for s, v in slot.prepares.items() if v.digest == pp.digest}
        have.update(s for s, v in slot.commits.items() if v.digest == pp.digest)
        have.discard(self.node_id)
        if not have:
            out.send.append((ALL, pp))
            return
        for peer in range(self.config.n):
            if peer != self.node_id and peer not in have:
                out.send.append((NodeId(peer), pp))

    def _on_status(self, st: Status, out: Output) -> None:
        if st.last_executed >= self.last_executed and st.view >= self.view:
            return
        if not self._authentic(st) or not self._reply_allowed(st.sender):
            return
        if st.view < self.view and self.phase is Phase.NORMAL and self._new_view is not None:
            out.send.append((st.sender, self._new_view))
        if st.last_executed >= self.last_executed:
            return
        if st.last_executed < self.low:
            for c in self._stable_proof_for(st.sender):
                out.send.append((st.sender, c))
        start = max(st.last_executed, self.low) + 1
        stop = min(self.last_executed, start + self.config.catchup_batch_max - 1)
        ripe = self.now - self.config.retransmit_ticks  # executed no later than this: not in flight
        for seq in range(start, stop + 1):
            slot = self._slots.get(seq)
            if slot is None or slot.committed is None:
                continue
            if slot.executed_at is not None and slot.executed_at > ripe:
                break  # this seq and every later one were executed too recently
            proof = self._committed_proof(slot)
            out.send.append((st.sender, proof))

    def _committed_proof(self, slot: Slot) -> CommittedProof:
        done = slot.committed
        assert done is not None
        cached = slot.proof
        if cached is None:
            signed = self._sign(CommittedProof(slot.seq, done.value, done.commits, self.node_id))
            assert isinstance(signed, CommittedProof)
            cached = signed
            slot.proof = cached
        return cached

    def _on_committed_proof(self, cp: CommittedProof, out: Output) -> None:
        if cp.seq <= self.last_executed:
            self._drop("stale-proof")
            return
        if not self._in_window(cp.seq):
            self._drop("outside-watermarks")
            return
        slot = self._slots.get(cp.seq)
        if slot is not None and slot.committed is not None:
            self._drop("duplicate")
            return
        if not self._authentic(cp):
            return
        cert = check_committed_proof(self.config, self._verifier, cp)
        if cert is None:
            self._drop("invalid-proof")
            return
        chosen = tuple(sorted(cp.commits, key=lambda c: c.sender)[: self.config.quorum])
        slot = self._slot(cp.seq)
        slot.committed = Committed(cert.view, cert.digest, cp.value, chosen, cert)
        self._deliver_ready(out)

    def restore(self, records: Sequence[Any]) -> None:
        """Rebuild votes, view, prepared certificates and stable checkpoint from ``records``.

        Records are what this replica put in ``out.persist`` (objects or their encodings).
        Call once on a fresh replica, before any ``step``; then feed ``Applied`` for the
        driver's durable head.

        Raises:
            ConsensusBug: called after ``step``, or a record is not ours / not decodable.
        """
        if self._started:
            raise ConsensusBug("restore() must come before the first step()")
        own_votes: list[PrePrepare | Prepare | Commit] = []
        prepared: dict[int, PreparedCert] = {}
        stable: CheckpointProof | None = None
        my_vc: ViewChange | None = None
        my_nv: NewView | None = None
        for raw in records:
            rec = raw
            if isinstance(raw, bytes | bytearray):
                try:
                    rec = decode_record(bytes(raw))
                except InvalidMessage as e:
                    raise ConsensusBug(f"undecodable persisted record: {e}") from e
            if isinstance(rec, PreparedCert):
                have = prepared.get(rec.seq)
                if have is None or rec.view > have.view:
                    prepared[rec.seq] = rec
            elif isinstance(rec, CheckpointProof):
                if stable is None or rec.seq > stable.seq:
                    stable = rec
            elif getattr(rec, "sender", None) != self.node_id:
                raise ConsensusBug(f"persisted record not signed by us: {rec!r}")
            elif isinstance(rec, PrePrepare | Prepare | Commit):
                own_votes.append(rec)
            elif isinstance(rec, Checkpoint):
                self._own_checkpoints[rec.seq] = rec
            elif isinstance(rec, ViewChange):
                if my_vc is None or rec.new_view > my_vc.new_view:
                    my_vc = rec
            elif isinstance(rec, NewView):
                if my_nv is None or rec.view > my_nv.view:
                    my_nv = rec
                own_votes.extend(rec.pre_prepares)
        self._stable = stable
        h = self.low
        self.last_executed = h
        self._delivery_base = h
        vote_views = [v.view for v in own_votes]
        self.view = max([0, *vote_views, *([my_vc.new_view] if my_vc else []), *([my_nv.view] if my_nv else [])])
        in_view_votes = any(v == self.view for v in vote_views) or (
            my_nv is not None and my_nv.view == self.view
        )
        if my_vc is not None and my_vc.new_view == self.view and not in_view_votes:
            self.phase = Phase.VIEW_CHANGE
            self._view_changes[self.view] = {self.node_id: my_vc}
        self._my_vc = my_vc
        if my_nv is not None and my_nv.view == self.view and self.phase is Phase.NORMAL:
            self._new_view = my_nv
        for seq, cert in sorted(prepared.items()):
            if self._in_window(seq):
                self._slots[seq] = Slot(seq, view=cert.view, pre_prepare=cert.pre_prepare, prepared=cert)
                self._slot_seq_max = max(self._slot_seq_max, seq)
        for vote in own_votes:
            if vote.seq <= h:
                continue
            voted = self._voted.get((vote.view, vote.seq))
            if voted is not None and voted != vote.digest:
                raise ConsensusBug(f"persisted conflicting votes for ({vote.view}, {vote.seq})")
            self._voted[(vote.view, vote.seq)] = vote.digest
            slot_r = self._slots.get(vote.seq)
            if slot_r is None or slot_r.view != vote.view or not self._in_window(vote.seq):
                continue
            if isinstance(vote, Prepare):
                slot_r.prepares[self.node_id] = vote
            elif isinstance(vote, Commit):
                slot_r.commits[self.node_id] = vote
        for seq_c in [s for s in self._own_checkpoints if s <= h]:
            del self._own_checkpoints[seq_c]
        mine = [v.seq for v in own_votes if isinstance(v, PrePrepare) and v.view == self.view]
        self._next_seq = max([h, *mine]) + 1

