"""View change and new view for the PBFT replica.

Theory of operation
-------------------
* A replica's timer runs in NORMAL phase while it has pending work (an accepted pre-prepare
  or a committed value not yet delivered, or a forwarded proposal not yet delivered); any
  delivery restarts it. On expiry it sends ``ViewChange(view+1, C, P)``: its stable checkpoint
  proof and its prepared certificates above it, and stops taking part in the old view.
* In VIEW_CHANGE phase the timer only starts once a quorum of view changes for the target
  view is known (as in the paper: a lone replica that timed out waits for the others instead
  of racing through views); on expiry it moves to the next view, and the timeout doubles with
  every consecutive failed view (capped at ``view_timeout_ticks_max``). A delivery in NORMAL
  phase resets the doubling.
* Join rule: view changes from ``f+1`` other replicas for views above ours make us move to
  the smallest of their views at once (at least one honest replica wants it).
* The new primary, with a quorum of view changes, computes O (:func:`_proofs.compute_o`),
  signs the pre-prepares and sends ``NewView``. Replicas check it by recomputing O, then enter
  the view and prepare every pre-prepare of O inside their window. A replica that receives a
  valid NewView for a view above its own enters it directly.
* A replica still waiting for a NewView that was already sent is helped: its view-change or
  status retransmission makes a peer in that view send it the NewView.
* Our own view changes and new views are persisted before they are sent, and we never sign a
  second view change for a view we already signed one for.
"""

from __future__ import annotations

from consensus.contract import ALL, NodeId, Output
from consensus.pbft._core import VIEW_CHANGES_PER_NODE_MAX, Phase, ReplicaCore
from consensus.pbft._proofs import check_new_view, check_view_change, compute_o
from consensus.pbft.messages import (
    CheckpointProof,
    NewView,
    PbftMessage,
    Prepare,
    PrePrepare,
    Request,
    ViewChange,
)

__all__ = ["ViewChangeMixin"]


class ViewChangeMixin(ReplicaCore):
    """View change and new view handling (see module docstring)."""

    def _start_view_change(self, new_view: int, out: Output) -> None:
        if new_view <= self.view:
            return
        self.view = new_view
        self.phase = Phase.VIEW_CHANGE
        self._new_view = None
        self._deadline = None
        self._vc_attempts += 1
        self._view_change_count += 1
        # Values the old primary had queued wait as pending (forwarded or re-proposed later).
        for value in self._queue:
            self._keep_pending(self.config.digest_of(value), value)
        self._queue.clear()
        self._queued.clear()
        mine = self._my_vc
        if mine is None or mine.new_view != new_view:
            prepared = tuple(
                slot.prepared
                for seq, slot in sorted(self._slots.items())
                if slot.prepared is not None and seq > self.low
            )
            stable = self._stable
            signed = self._sign(
                ViewChange(
                    new_view=new_view,
                    stable_seq=self.low,
                    checkpoint_proof=stable.checkpoints if stable is not None else (),
                    prepared=prepared,
                    sender=self.node_id,
                )
            )
            assert isinstance(signed, ViewChange)
            mine = signed
            self._my_vc = mine
            out.persist.append(mine)
        out.send.append((ALL, mine))
        self._view_changes.setdefault(new_view, {})[self.node_id] = mine
        for view in [v for v in self._view_changes if v < new_view]:
            del self._view_changes[view]
        self._forget_votes_below(new_view)
        self._future = [m for m in self._future if _view_of(m) >= new_view]
        self._maybe_send_new_view(out)

    def _forget_votes_below(self, view: int) -> None:
        """Our votes of older views can go: we never sign anything in a view below ours."""
        for key in [k for k in self._voted if k[0] < view]:
            del self._voted[key]

    def _keep_pending(self, digest: bytes, value: bytes) -> None:
        if digest in self._pending or digest in self._recent:
            return
        if len(self._pending) >= self.config.pending_values_max:
            self._drop("pending-full")
            return
        self._pending[digest] = value

    def _on_view_change(self, vc: ViewChange, out: Output) -> None:
        w = vc.new_view
        if w < self.view or (w == self.view and self.phase is Phase.NORMAL):
            if (
                self.phase is Phase.NORMAL
                and self._new_view is not None
                and self._reply_allowed(vc.sender)
            ):  # the sender still waits for a view we already entered: show it the way
                out.send.append((vc.sender, self._new_view))
            self._drop("stale-view-change")
            return
        if vc.sender in self._view_changes.get(w, {}):
            self._drop("duplicate")
            return
        if not self._authentic(vc):
            return
        if not check_view_change(self.config, self._verifier, vc):
            self._drop("invalid-view-change")
            return
        views_of_sender = sorted(v for v, votes in self._view_changes.items() if vc.sender in votes)
        if len(views_of_sender) >= VIEW_CHANGES_PER_NODE_MAX:
            if views_of_sender[0] > w:
                self._drop("view-change-flood")
                return
            del self._view_changes[views_of_sender[0]][vc.sender]
        self._view_changes.setdefault(w, {})[vc.sender] = vc
        self._maybe_join(out)
        if self.phase is Phase.VIEW_CHANGE and w == self.view:
            self._maybe_send_new_view(out)

    def _maybe_join(self, out: Output) -> None:
        """Join the smallest view that f+1 other replicas want, when it is above ours."""
        latest: dict[NodeId, int] = {}
        for view, votes in self._view_changes.items():
            if view <= self.view:
                continue
            for node in votes:
                if node != self.node_id and view > latest.get(node, -1):
                    latest[node] = view
        if len(latest) >= self.config.weak_quorum:
            # The (f+1)-th highest wish: at least f+1 replicas want this view or a higher one.
            wishes = sorted(latest.values(), reverse=True)
            self._start_view_change(wishes[self.config.weak_quorum - 1], out)

    def _maybe_send_new_view(self, out: Output) -> None:
        if self.phase is not Phase.VIEW_CHANGE or not self.is_primary:
            return
        votes = self._view_changes.get(self.view, {})
        if len(votes) < self.config.quorum or self.node_id not in votes:
            return
        others = [votes[n] for n in sorted(votes) if n != self.node_id]
        chosen = sorted([votes[self.node_id], *others[: self.config.quorum - 1]], key=lambda v: v.sender)
        _, entries = compute_o(chosen)
        pre_prepares = []
        for entry in entries:
            pp = self._sign(PrePrepare(self.view, entry.seq, entry.digest, entry.value, self.node_id))
            assert isinstance(pp, PrePrepare)
            pre_prepares.append(pp)
        nv = self._sign(NewView(self.view, tuple(chosen), tuple(pre_prepares), self.node_id))
        assert isinstance(nv, NewView)
        out.persist.append(nv)
        out.send.append((ALL, nv))
        self._enter_view(nv, out)

    def _on_new_view(self, nv: NewView, out: Output) -> None:
        if nv.view < self.view or (nv.view == self.view and self.phase is Phase.NORMAL):
            self._drop("stale-new-view")
            return
        if nv.sender != self.primary_of(nv.view):
            self._drop("not-primary")
            return
        if not self._authentic(nv):
            return
        reason = check_new_view(self.config, self._verifier, nv)
        if reason is not None:
            self._drop("invalid-new-view")
            return
        self._enter_view(nv, out)

    def _enter_view(self, nv: NewView, out: Output) -> None:
        joined_from_normal = nv.view > self.view
        self.view = nv.view
        self.phase = Phase.NORMAL
        self._new_view = nv
        self._deadline = None
        if joined_from_normal:
            self._view_change_count += 1
        best, _ = compute_o(nv.view_changes)
        if best is not None and best.stable_seq > self.low:
            root = best.checkpoint_proof[0].state_root
            self._on_stable_proof(CheckpointProof(best.stable_seq, root, best.checkpoint_proof), out)
        max_o = max((pp.seq for pp in nv.pre_prepares), default=0)
        min_s = best.stable_seq if best is not None else 0
        self._next_seq = max(max_o, min_s, self.low, self.last_executed) + 1
        for view in [v for v in self._view_changes if v <= nv.view]:
            del self._view_changes[view]
        self._forget_votes_below(nv.view)
        self._accept_new_view_pre_prepares(out)
        future, self._future = self._future, []
        for msg in future:
            view = _view_of(msg)
            if view == self.view:
                self._dispatch_verified(msg, out)
            elif view > self.view:
                self._future.append(msg)
        if self.is_primary:
            pending, self._pending = self._pending, {}
            self._pending_forwards.clear()
            for digest, value in pending.items():
                if digest not in self._recent and not self._digest_in_flight(digest):
                    self._enqueue(value, digest, out)
        else:
            self._forward_pending(out)
        self._try_propose(out)

    def _accept_new_view_pre_prepares(self, out: Output) -> None:
        nv = self._new_view
        if nv is None or self.phase is not Phase.NORMAL or nv.view != self.view:
            return
        primary = self.primary_of(self.view)
        for pp in nv.pre_prepares:
            if not self._in_window(pp.seq):
                continue
            slot = self._slot(pp.seq)
            if slot.pre_prepare is not None:
                continue
            voted = self._voted.get((pp.view, pp.seq))
            if voted is not None and voted != pp.digest:
                self._drop("conflicts-own-vote")
                continue
            slot.pre_prepare = pp
            if self.node_id != primary:
                prepare = self._sign(Prepare(pp.view, pp.seq, pp.digest, self.node_id))
                assert isinstance(prepare, Prepare)
                self._voted[(pp.view, pp.seq)] = pp.digest
                slot.prepares[self.node_id] = prepare
                out.persist.append(prepare)
                out.send.append((ALL, prepare))
            else:
                self._voted[(pp.view, pp.seq)] = pp.digest
            self._advance(slot, out)

    def _forward_pending(self, out: Output) -> None:
        # Also while in a view change: a replica alone in a higher view still gets its
        # values ordered by the others (and then catches up through committed proofs).
        if self.phase is Phase.NORMAL and self.is_primary:
            return
        batch = list(self._pending.items())[: self.config.retransmit_slots_max]
        for digest, value in batch:
            request = self._sign(Request(value, self.node_id))
            out.send.append((ALL, request))
            # Rotate, so that every pending value gets its turn; forget it after too many.
            del self._pending[digest]
            forwards = self._pending_forwards.get(digest, 0) + 1
            if forwards >= self.config.pending_forwards_max:
                self._pending_forwards.pop(digest, None)
                self._drop("pending-expired")
            else:
                self._pending[digest] = value
                self._pending_forwards[digest] = forwards

    def _update_timer(self) -> None:
        if self.phase is Phase.NORMAL:
            busy = bool(self._pending) or self._has_unfinished_slot()
            if not busy:
                self._deadline = None
            elif self._deadline is None:
                self._deadline = self.now + self._timeout()
        elif self._deadline is None and len(self._view_changes.get(self.view, {})) >= self.config.quorum:
            self._deadline = self.now + self._timeout()


def _view_of(msg: PbftMessage) -> int:
    view = getattr(msg, "view", None)
    if view is None:
        view = getattr(msg, "new_view", 0)
    assert isinstance(view, int)
    return view
