"""Checkpoints, stability, garbage collection and state transfer for the PBFT replica.

Theory of operation: the driver reports ``Applied(seq, root)`` after executing each delivered
value. At every multiple of K the replica signs ``Checkpoint(seq, root)`` and broadcasts it.
A quorum of matching checkpoints (from any replicas, ours included or not) is a
:class:`CheckpointProof`: the checkpoint is *stable*. If we have executed up to it, it becomes
our low watermark: the log at or below it is garbage-collected and the window moves. If we
have not, we are lagging: after ``state_wait_ticks`` (at once if it is beyond our high
watermark) we emit ``StateWanted``; the driver installs that state and feeds
``Applied(seq, root)`` with ``seq`` beyond our last executed value, and we continue from there.

Checkpoints beyond our high watermark are remembered one per sender (its newest), so a peer
cannot fill memory with far-future checkpoints, yet a lagging replica still sees a quorum.
"""

from __future__ import annotations

from consensus.contract import ALL, Applied, ConsensusBug, NodeId, Output, StateWanted
from consensus.pbft._core import ReplicaCore
from consensus.pbft.messages import Checkpoint, CheckpointProof

__all__ = ["CheckpointMixin"]


class CheckpointMixin(ReplicaCore):
    """Applied / Checkpoint handling (see module docstring)."""

    def _on_applied(self, ev: Applied, out: Output) -> None:
        seq, root = ev.seq, ev.state_root
        if not isinstance(root, bytes) or len(root) != 32:
            raise ConsensusBug("Applied.state_root must be 32 bytes (driver bug)")
        if seq <= self.last_executed:
            if seq < self.low and self._stable is not None and self._last_applied < self.low:
                # Restarted behind our own stable checkpoint: the log below it is gone.
                self._want_state(self._stable, out)
            self._last_applied = max(self._last_applied, seq)
        else:
            # The driver installed state beyond what we delivered (state transfer, restart).
            self.last_executed = seq
            self._last_applied = seq
            self._delivery_base = seq
            # Values we were waiting for may be inside the installed state (which carries no
            # per-value deliveries): forget them rather than let them run the view timer.
            # Peers that still wait for one keep it pending, so censorship is still caught.
            if self._pending:
                self._dropped["pending-dropped-by-state-transfer"] += len(self._pending)
                self._pending.clear()
                self._pending_forwards.clear()
            target = self._state_target
            if target is not None and target.seq == seq and target.state_root == root:
                self._make_stable(target, out)
        if seq % self.config.checkpoint_interval == 0 and seq > self.low:
            self._applied_roots[seq] = root
            self._send_checkpoint(seq, root, out)
        stable = self._stable
        if stable is not None and stable.seq == seq and stable.state_root != root:
            self._drop("own-state-diverged")
            self._want_state(stable, out)
        self._check_stable_candidates(out)
        self._deliver_ready(out)
        self._try_propose(out)

    def _send_checkpoint(self, seq: int, root: bytes, out: Output) -> None:
        mine = self._own_checkpoints.get(seq)
        if mine is not None and mine.state_root != root:
            # We already signed another root for this seq: never sign a conflicting one.
            self._drop("own-state-diverged")
            return
        if mine is None:
            signed = self._sign(Checkpoint(seq, root, self.node_id))
            assert isinstance(signed, Checkpoint)
            mine = signed
            self._own_checkpoints[seq] = mine
            out.persist.append(mine)
        out.send.append((ALL, mine))
        self._record_checkpoint(mine, out)

    def _on_checkpoint(self, c: Checkpoint, out: Output) -> None:
        if c.seq <= self.low:
            self._drop("stale-checkpoint")
            return
        if c.seq % self.config.checkpoint_interval:
            self._drop("bad-checkpoint-seq")
            return
        votes = self._checkpoint_votes.get(c.seq)
        have = votes.get(c.sender) if votes else None
        if have is not None:
            if have.state_root == c.state_root:
                self._drop("duplicate")
            elif self._authentic(c):
                self._evidence(out, c.sender, "double-checkpoint", have, c, 0, c.seq)
                self._drop("double-checkpoint")
            return
        beyond = c.seq > self.high
        if beyond:
            newer = [s for s, v in self._checkpoint_votes.items() if s > self.high and c.sender in v]
            if any(s >= c.seq for s in newer):
                self._drop("stale-checkpoint")
                return
        if not self._authentic(c):
            return
        if beyond:
            for s in [s for s, v in self._checkpoint_votes.items() if s > self.high and c.sender in v]:
                del self._checkpoint_votes[s][c.sender]
                if not self._checkpoint_votes[s]:
                    del self._checkpoint_votes[s]
        self._record_checkpoint(c, out)

    def _record_checkpoint(self, c: Checkpoint, out: Output) -> None:
        votes = self._checkpoint_votes.setdefault(c.seq, {})
        votes[c.sender] = c
        matching = sorted((v for v in votes.values() if v.state_root == c.state_root), key=lambda v: v.sender)
        if len(matching) >= self.config.quorum:
            proof = CheckpointProof(c.seq, c.state_root, tuple(matching[: self.config.quorum]))
            self._on_stable_proof(proof, out)

    def _check_stable_candidates(self, out: Output) -> None:
        target = self._state_target
        if target is not None and target.seq <= self.last_executed:
            self._on_stable_proof(target, out)

    def _on_stable_proof(self, proof: CheckpointProof, out: Output) -> None:
        if proof.seq <= self.low:
            return
        if proof.seq <= self.last_executed:
            own = self._applied_roots.get(proof.seq)
            if own is not None and own != proof.state_root:
                self._drop("own-state-diverged")
                self._make_stable(proof, out)
                self._want_state(proof, out)
                return
            self._make_stable(proof, out)
            return
        target = self._state_target
        if target is None or proof.seq > target.seq:
            self._state_target = proof
            self._state_target_since = self.now
        if proof.seq > self.high:
            self._want_state(proof, out)

    def _make_stable(self, proof: CheckpointProof, out: Output) -> None:
        """Adopt ``proof`` as the low watermark and garbage-collect below it."""
        if proof.seq <= self.low:
            return
        if proof.seq > self.last_executed:
            raise ConsensusBug("stable checkpoint beyond the last executed value")
        self._stable = proof
        out.persist.append(proof)
        h = proof.seq
        for seq in [s for s in self._slots if s <= h]:
            del self._slots[seq]
        for key in [k for k in self._voted if k[1] <= h]:
            del self._voted[key]
        for seq in [s for s in self._checkpoint_votes if s <= h]:
            del self._checkpoint_votes[seq]
        for seq in [s for s in self._own_checkpoints if s <= h]:
            del self._own_checkpoints[seq]
        for seq in [s for s in self._applied_roots if s < h]:
            del self._applied_roots[seq]
        if self._state_target is not None and self._state_target.seq <= h:
            self._state_target = None
        self._next_seq = max(self._next_seq, h + 1)
        self._accept_new_view_pre_prepares(out)
        self._try_propose(out)

    def _want_state(self, proof: CheckpointProof, out: Output) -> None:
        self._state_wanted_at = self.now
        self._state_wanted_seq = proof.seq
        out.wants.append(StateWanted(seq=proof.seq, state_root=proof.state_root, proof=proof.checkpoints))

    def _tick_state_transfer(self, out: Output) -> None:
        target = self._state_target
        if target is None or target.seq <= self.last_executed:
            return
        wait = self.config.state_wait_ticks
        if self.now - self._state_target_since < wait:
            return
        if (
            self._state_wanted_seq == target.seq
            and self._state_wanted_at is not None
            and self.now - self._state_wanted_at < 4 * wait
        ):
            return
        self._want_state(target, out)

    def _checkpoints_to_resend(self) -> list[Checkpoint]:
        return [c for s, c in sorted(self._own_checkpoints.items()) if s > self.low]

    def _stable_proof_for(self, node: NodeId) -> tuple[Checkpoint, ...]:
        del node
        return self._stable.checkpoints if self._stable is not None else ()
