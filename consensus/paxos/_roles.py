"""The acceptor and learner roles of a Paxos replica, as mixins over its shared state.

:class:`PaxosReplica <consensus.paxos.replica.PaxosReplica>` is proposer, acceptor and
learner at once; this module holds the two passive roles and the shared state they declare
(:mod:`consensus.paxos._proposer` holds phase 1 and 2 of the proposer), so the replica
module keeps batching, forwarding, the wiring and the invariants.

*Acceptor*: promises a ballot (``PromisedRecord``) and accepts values
(``AcceptedRecord``) only at or above its promise; both records are put in ``out.persist``
in the same step as the reply, and :meth:`_AcceptorRole.restore` rebuilds them after a
crash. It accepts slots in ``(low, low + 2 * window]`` and refuses invalid values.

*Learner*: records chosen values with their f+1-signature certificates, delivers them in
slot order, answers ``CatchUp``, collects ``Checkpoint`` votes into stable checkpoints,
truncates the logs below them, and asks the driver for state (``StateWanted``) when it fell
behind one.

Who calls it: only :mod:`consensus.paxos.replica`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consensus.contract import (
    Certificate,
    ConsensusBug,
    Delivery,
    NodeId,
    Output,
    Signer,
    StateWanted,
    Validity,
    Verifier,
)
from consensus.paxos.config import PaxosConfig, Role
from consensus.paxos.messages import (
    Accept,
    Accepted,
    Ballot,
    CatchUp,
    Checkpoint,
    CheckpointProof,
    Decided,
    DecidedEntry,
    Nack,
    PaxosMessage,
    Prepare,
    Promise,
    PromiseEntry,
    Vote,
    digest_of,
    vote_bytes,
)
from consensus.paxos.records import (
    AcceptedRecord,
    CheckpointRecord,
    IncarnationRecord,
    PromisedRecord,
)


class _Shared:
    """State and plumbing the roles share; the replica defines and initialises them."""

    config: PaxosConfig
    node_id: NodeId
    _signer: Signer
    _verifier: Verifier
    _validity: Validity
    _members: frozenset[NodeId]
    _quorum: int
    _tag: bytes
    _counters: dict[str, int]
    # acceptor
    promised: Ballot
    _accepted: dict[int, tuple[Ballot, bytes]]
    _accepted_ballot_max: Ballot
    _incarnation: int
    # learner
    _chosen: dict[int, tuple[bytes, Certificate]]
    delivered: int
    applied: int
    low: int
    _low_root: bytes
    _low_proof: tuple[tuple[int, bytes], ...]
    _checkpoint_votes: dict[int, dict[NodeId, tuple[bytes, bytes]]]
    _own_checkpoint: Checkpoint | None
    _wanted: int
    _base: int
    # proposer
    role: Role
    ballot: Ballot
    _max_round: int
    _next_slot: int
    _inflight: dict[int, Any]

    def _sign(self, msg: PaxosMessage) -> Any:
        raise NotImplementedError

    def _send(self, out: Output, to: NodeId, msg: PaxosMessage) -> None:
        raise NotImplementedError

    def _broadcast(self, out: Output, msg: PaxosMessage, *, include_self: bool) -> None:
        raise NotImplementedError

    def _see_ballot(self, b: Ballot) -> None:
        raise NotImplementedError

    def _preempted(self, higher: Ballot) -> None:
        raise NotImplementedError

    def _learn(self, slot: int, value: bytes, cert: Certificate, out: Output) -> None:
        raise NotImplementedError

    def _propose(self, entries: list[tuple[int, bytes]], out: Output) -> None:
        raise NotImplementedError

    def _check_invariants(
        self, out: Output, promised_before: Ballot, delivered_before: int
    ) -> None:
        raise NotImplementedError


class _AcceptorRole(_Shared):
    """Promises and accepts; everything it promises or accepts is persisted first."""

    def restore(self, records: Sequence[Any]) -> None:
        """Rebuild the acceptor state from persisted records (before any ``step``).

        Args:
            records: every record this replica put in ``out.persist``, in order.
        """
        for r in records:
            if isinstance(r, PromisedRecord):
                self.promised = max(self.promised, r.ballot)
            elif isinstance(r, AcceptedRecord):
                self.promised = max(self.promised, r.ballot)
                for slot, value in r.entries:
                    old = self._accepted.get(slot)
                    if old is None or old[0] <= r.ballot:
                        self._accepted[slot] = (r.ballot, value)
                        self._accepted_ballot_max = max(self._accepted_ballot_max, r.ballot)
            elif isinstance(r, IncarnationRecord):
                self._incarnation = max(self._incarnation, r.number + 1)
            elif isinstance(r, CheckpointRecord):
                if r.seq > self.low:
                    self.low, self._low_root = r.seq, r.root
            else:
                raise TypeError(f"not a Paxos record: {r!r}")
        self._accepted = {s: v for s, v in self._accepted.items() if s > self.low}
        self._max_round = self.promised.round
        self._next_slot = self.low + 1
        self._check_invariants(Output(), self.promised, self.delivered)

    def _admit_ballot(self, sender: NodeId, b: Ballot, out: Output) -> bool:
        """Phase 1 and 2 share this gate: the ballot's owner only, never below a promise.

        A lower ballot is answered with a Nack carrying the promise; a higher one becomes
        the promise (persisted before anything is sent) and preempts our own leadership.
        """
        if b.node != sender:
            self._counters["dropped_invalid"] += 1  # only a ballot's owner may use it
            return False
        self._see_ballot(b)
        if b < self.promised:
            self._counters["nacks"] += 1
            self._send(out, sender, Nack(self.node_id, b, self.promised))
            return False
        if b > self.promised:
            self.promised = b
            out.persist.append(PromisedRecord(b))
        if self.role is not Role.FOLLOWER and b > self.ballot:
            self._preempted(b)
        return True

    def _on_prepare(self, sender: NodeId, msg: Prepare, out: Output, local: bool) -> None:
        if not self._admit_ballot(sender, msg.ballot, out):
            return
        b = msg.ballot
        entries = tuple(
            PromiseEntry(s, ab, v)
            for s, (ab, v) in sorted(self._accepted.items())
            if s >= msg.from_slot
        )
        self._send(out, sender, Promise(self.node_id, b, self.low, entries))

    def _on_accept(self, sender: NodeId, msg: Accept, out: Output, local: bool) -> None:
        if not self._admit_ballot(sender, msg.ballot, out):
            return
        b = msg.ballot
        fresh: list[tuple[int, bytes]] = []
        votes: list[Vote] = []
        limit = self.low + 2 * self.config.window
        for slot, value in msg.entries:
            if not self.low < slot <= limit:
                self._counters["dropped_stale"] += 1
                continue
            if value and (len(value) > self.config.value_bytes_max or not self._validity(value)):
                self._counters["invalid_values"] += 1
                continue
            if self._accepted.get(slot) != (b, value):
                self._accepted[slot] = (b, value)
                self._accepted_ballot_max = max(self._accepted_ballot_max, b)
                fresh.append((slot, value))
            d = digest_of(value)
            votes.append(Vote(slot, d, self._signer.sign(vote_bytes(self._tag, slot, b, d))))
        if fresh:
            out.persist.append(AcceptedRecord(b, tuple(fresh)))
        if votes:
            self._send(out, NodeId(b.node), Accepted(self.node_id, b, tuple(votes)))


class _LearnerRole(_Shared):
    """Chosen values, in-order delivery, catch-up and checkpoints."""

    def _entry_proves(self, e: DecidedEntry) -> bool:
        nodes = {node for node, _ in e.signatures}
        if (
            len(nodes) != len(e.signatures)
            or len(nodes) < self._quorum
            or not nodes <= self._members
        ):
            return False
        signed = vote_bytes(self._tag, e.slot, e.ballot, digest_of(e.value))
        return all(self._verifier.verify(NodeId(n), signed, sig) for n, sig in e.signatures)

    def _on_decided(self, sender: NodeId, msg: Decided, out: Output, local: bool) -> None:
        limit = self.low + 2 * self.config.window
        for e in msg.entries:
            if e.slot <= self.low or e.slot > limit:
                self._counters["dropped_stale"] += 1
                continue
            known = self._chosen.get(e.slot)
            if known is not None:
                if known[1].digest != digest_of(e.value) and self._entry_proves(e):
                    # Two quorum certificates for one slot: only possible with Byzantine
                    # acceptors, outside the crash-only model. Keep what we learned and
                    # drop the other rather than crash an honest replica.
                    self._counters["dropped_conflicting_decision"] += 1
                continue
            if not self._entry_proves(e):
                self._counters["dropped_signature"] += 1
                continue
            cert = Certificate(e.slot, e.ballot.packed, digest_of(e.value), e.signatures)
            self._learn(e.slot, e.value, cert, out)

    def _learn(self, slot: int, value: bytes, cert: Certificate, out: Output) -> None:
        if slot <= self.low:
            return
        known = self._chosen.get(slot)
        if known is not None:
            if known[1].digest != cert.digest:
                raise ConsensusBug(f"two values chosen for slot {slot}")
            return
        # Kept even at or below `delivered` (installed state) so that we can serve it.
        self._chosen[slot] = (value, cert)
        while self.delivered + 1 in self._chosen:
            self.delivered += 1
            v, c = self._chosen[self.delivered]
            out.deliver.append(Delivery(self.delivered, v, c))

    def _on_catchup(self, sender: NodeId, msg: CatchUp, out: Output, local: bool) -> None:
        if msg.from_slot <= self.low and self._low_proof:
            self._send(
                out,
                sender,
                CheckpointProof(self.node_id, self.low, self._low_root, self._low_proof),
            )
        entries: list[DecidedEntry] = []
        slot = max(msg.from_slot, self.low + 1)
        while slot in self._chosen and len(entries) < self.config.catchup_entries_max:
            value, cert = self._chosen[slot]
            entries.append(DecidedEntry(slot, Ballot.unpack(cert.view), value, cert.signatures))
            slot += 1
        for start in range(0, len(entries), self.config.batch_values_max):
            chunk = tuple(entries[start : start + self.config.batch_values_max])
            self._send(out, sender, Decided(self.node_id, chunk))

    def _on_applied(self, seq: int, root: bytes, out: Output) -> None:
        if seq <= self.applied:
            return
        if seq > self.delivered:
            # The driver installed state up to seq (state transfer or restart).
            self.delivered = self._base = seq
            while self.delivered + 1 in self._chosen:
                self.delivered += 1
                v, c = self._chosen[self.delivered]
                out.deliver.append(Delivery(self.delivered, v, c))
        self.applied = seq
        if seq % self.config.checkpoint_interval == 0 and seq > self.low:
            self._own_checkpoint = self._sign(Checkpoint(self.node_id, seq, root))
            self._broadcast(out, Checkpoint(self.node_id, seq, root), include_self=True)

    def _on_checkpoint(self, sender: NodeId, msg: Checkpoint, out: Output, local: bool) -> None:
        if not self.low < msg.seq <= self.low + 2 * self.config.window:
            self._counters["dropped_stale"] += 1
            return
        votes = self._checkpoint_votes.setdefault(msg.seq, {})
        votes[sender] = (msg.root, msg.signature)
        matching = tuple(sorted((n, sig) for n, (r, sig) in votes.items() if r == msg.root))
        if len(matching) >= self._quorum:
            self._stabilize(msg.seq, msg.root, matching, out)

    def _on_checkpoint_proof(
        self, sender: NodeId, msg: CheckpointProof, out: Output, local: bool
    ) -> None:
        if msg.seq < self.low or (msg.seq == self.low and self.delivered >= self.low):
            self._counters["dropped_stale"] += 1
            return
        nodes = {n for n, _ in msg.votes}
        ok = (
            len(nodes) == len(msg.votes)
            and len(nodes) >= self._quorum
            and nodes <= self._members
            and all(
                self._verifier.verify(
                    NodeId(n), Checkpoint(NodeId(n), msg.seq, msg.root).signed_bytes(self._tag), sig
                )
                for n, sig in msg.votes
            )
        )
        if not ok:
            self._counters["dropped_signature"] += 1
            return
        self._stabilize(msg.seq, msg.root, msg.votes, out)

    def _stabilize(
        self, seq: int, root: bytes, proof: tuple[tuple[int, bytes], ...], out: Output
    ) -> None:
        if seq > self.low:
            self.low, self._low_root = seq, root
            out.persist.append(CheckpointRecord(seq, root))
            self._accepted = {s: v for s, v in self._accepted.items() if s > seq}
            self._chosen = {s: v for s, v in self._chosen.items() if s > seq}
            self._inflight = {s: v for s, v in self._inflight.items() if s > seq}
            self._checkpoint_votes = {s: v for s, v in self._checkpoint_votes.items() if s > seq}
            self._next_slot = max(self._next_slot, seq + 1)
        self._low_proof = proof
        if self.delivered < seq and self._wanted < seq:
            self._wanted = seq
            out.wants.append(StateWanted(seq, root, proof))
