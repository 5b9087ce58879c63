"""The proposer role of a Paxos replica: phase 1 (Prepare/Promise/Nack) and phase 2 votes.

A mixin over the replica's shared state, like the acceptor and learner roles in
:mod:`consensus.paxos._roles`. Phase 1 runs once for all slots above the stable checkpoint
and re-proposes every value possibly chosen (the highest-ballot value of each slot among
f+1 promises), filling holes with no-ops; a higher ballot preempts us, and if the election
still names us we retry after a random backoff, re-proposing our *orphans* unless phase 1
shows them possibly chosen. Phase 2 collects f+1 matching signed votes per slot into a
certificate, learns the slot and broadcasts ``Decided``.

The replica (:mod:`consensus.paxos.replica`) keeps batching, forwarding, retransmission
and the invariants. Who calls it: only :mod:`consensus.paxos.replica`.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from consensus.contract import Certificate, NodeId, Output
from consensus.election import BullyElection
from consensus.paxos._roles import _Shared
from consensus.paxos.config import Role
from consensus.paxos.messages import (
    Accepted,
    Ballot,
    Decided,
    DecidedEntry,
    Nack,
    Prepare,
    Promise,
    digest_of,
    vote_bytes,
)


@dataclass(slots=True)
class _Proposal:
    """A value this leader has in flight at one slot, with the votes gathered so far."""

    value: bytes
    digest: bytes
    votes: dict[NodeId, bytes] = field(default_factory=dict)


class _ProposerRole(_Shared):
    """Leads ballots: phase 1 once per leadership, then phase 2 votes into certificates."""

    _election: BullyElection
    _rng: random.Random
    _now: int
    _promises: dict[NodeId, Promise]
    _pending: deque[bytes]
    _retry_at: int | None
    _orphans: list[tuple[int, bytes]]
    _inflight: dict[int, _Proposal]

    # -- phase 1 ----------------------------------------------------------------------

    def _start_phase1(self, out: Output) -> None:
        self._counters["phase1_started"] += 1
        self._max_round = max(self._max_round, self.promised.round) + 1
        self.ballot = Ballot(self._max_round, self.node_id)
        self.role = Role.CANDIDATE
        self._promises = {}
        self._inflight = {}
        self._retry_at = None
        self._broadcast(out, Prepare(self.node_id, self.ballot, self.low + 1), include_self=True)

    def _step_down(self) -> None:
        """Another replica leads: values in flight are left to its phase 1 (or lost)."""
        self.role = Role.FOLLOWER
        self._promises = {}
        self._inflight = {}
        self._orphans = []

    def _preempted(self, higher: Ballot) -> None:
        """A higher ballot overtook ours. If the election still names us, we retry phase 1
        later and keep our unchosen values in flight as *orphans*; the retry proposes each
        orphan again unless its phase 1 shows it possibly chosen (no duplicates)."""
        self._see_ballot(higher)
        orphans = self._orphans + [
            (s, p.value) for s, p in sorted(self._inflight.items()) if p.value
        ]
        self._step_down()
        if self._election.leader() == self.node_id:
            self._retry_at = self._now + self._rng.randint(1, self.config.backoff_ticks_max)
            self._orphans = orphans[-self.config.window :]

    def _on_promise(self, sender: NodeId, msg: Promise, out: Output, local: bool) -> None:
        if self.role is not Role.CANDIDATE or msg.ballot != self.ballot:
            self._counters["dropped_stale"] += 1
            return
        self._promises[sender] = msg
        if len(self._promises) >= self._quorum:
            self._finish_phase1(out)

    def _finish_phase1(self, out: Output) -> None:
        """Re-propose every value possibly chosen; fill the holes with no-ops.

        Phase 1 covers every slot above the stable checkpoint, so slots this replica knows
        only through installed state (a restart) get chosen again with a certificate it can
        serve to peers that lack them. Slots it already holds certificates for are skipped.
        """
        start = max(self.low, max(p.low for p in self._promises.values())) + 1
        best: dict[int, tuple[Ballot, bytes]] = {}
        for p in self._promises.values():
            for e in p.entries:
                if e.slot >= start and (e.slot not in best or best[e.slot][0] < e.ballot):
                    best[e.slot] = (e.ballot, e.value)
        top = max(best, default=start - 1)
        self.role = Role.LEADER
        self._promises = {}
        # Orphans of an earlier ballot of ours: possibly chosen ones are in `best` (or below
        # `start`, or in our chosen log); only the others are proposed again.
        taken = {digest_of(v) for _, v in best.values()}
        taken.update(c.digest for s, (_, c) in self._chosen.items() if s >= start)
        again = [v for s, v in self._orphans if s >= start and digest_of(v) not in taken]
        self._orphans = []
        self._pending.extendleft(
            reversed(again[: self.config.pending_values_max - len(self._pending)])
        )
        self._next_slot = max(top, start - 1, self.delivered, max(self._chosen, default=0)) + 1
        entries = [
            (s, best[s][1] if s in best else b"")
            for s in range(start, top + 1)
            if s not in self._chosen
        ]
        self._propose(entries, out)

    def _on_nack(self, sender: NodeId, msg: Nack, out: Output, local: bool) -> None:
        self._see_ballot(msg.promised)
        if (
            self.role is not Role.FOLLOWER
            and msg.ballot == self.ballot
            and msg.promised > self.ballot
        ):
            self._preempted(msg.promised)
        else:
            self._counters["dropped_stale"] += 1

    # -- phase 2 ----------------------------------------------------------------------

    def _on_accepted(self, sender: NodeId, msg: Accepted, out: Output, local: bool) -> None:
        if self.role is not Role.LEADER or msg.ballot != self.ballot:
            self._counters["dropped_stale"] += 1
            return
        decided: list[DecidedEntry] = []
        for vote in msg.votes:
            p = self._inflight.get(vote.slot)
            if p is None or vote.digest != p.digest or sender in p.votes:
                continue
            signed = vote_bytes(self._tag, vote.slot, self.ballot, vote.digest)
            if not local and not self._verifier.verify(sender, signed, vote.signature):
                self._counters["dropped_signature"] += 1
                continue
            p.votes[sender] = vote.signature
            if len(p.votes) >= self._quorum:
                sigs = tuple(sorted(p.votes.items()))
                cert = Certificate(vote.slot, self.ballot.packed, p.digest, sigs)
                del self._inflight[vote.slot]
                self._learn(vote.slot, p.value, cert, out)
                decided.append(DecidedEntry(vote.slot, self.ballot, p.value, sigs))
        for start in range(0, len(decided), self.config.batch_values_max):
            chunk = tuple(decided[start : start + self.config.batch_values_max])
            self._broadcast(out, Decided(self.node_id, chunk), include_self=False)
