"""A Multi-Paxos replica (proposer, acceptor and learner) for n = 2f+1 crash-only nodes.

Theory of operation
-------------------
*Leader.* Each replica embeds a heartbeat failure detector and a bully election
(``consensus.failure_detector``, ``consensus.election``), whose messages travel wrapped in
signed ``Control`` messages. The replica the election names runs **phase 1 once for all
slots** above the stable checkpoint: ``Prepare(ballot, from_slot)``. With f+1 ``Promise``
messages it re-proposes, slot by slot, the value accepted at the highest ballot (a value
possibly chosen; also slots it knows only from installed state, so that it holds their
certificates) and fills holes below the highest reported slot with no-ops (``b""``); from
then on it is a stable leader and runs **phase 2 only**: ``Accept(ballot, [(slot, value)...])``
batches of up to ``batch_values_max`` values (an idle leader sends a value at once; while
slots are in flight, values wait to fill a batch). A leader that sees a higher ballot (``Nack``,
``Prepare``, ``Accept``) steps down; if the election still names it, it retries phase 1 with
a higher round after a random backoff, so duelling proposers settle, and re-proposes the
values it had in flight unless that phase 1 shows them possibly chosen.

*Proposals.* ``Propose(value)`` at the leader queues the value (bounded); elsewhere it is
forwarded to the leader named by the election (``Forward``), or held until one is known and
forwarded at the next retransmission period (a random nonce lets the leader drop duplicated
copies). A value in flight when its leader crashes or loses the election is either recovered
by the next leader's phase 1 or lost: the application re-proposes what it does not see
delivered (the node's mempool does). Values are not deduplicated otherwise.

*Learning.* Acceptors sign one vote per slot (``Accepted``); the leader learns a slot when f+1
acceptors voted for the same digest at its ballot, and broadcasts ``Decided`` with the value
and the f+1 vote signatures: that is the :class:`~consensus.contract.Certificate`
(:func:`~consensus.paxos.config.verify_certificate`). Values are delivered in slot order
without gaps. Heartbeats carry each replica's delivered slot; a replica that sees a peer
ahead asks it (``CatchUp``) and gets ``Decided`` entries, or a ``CheckpointProof`` when the
slots it lacks are below the peer's stable checkpoint.

*Durability.* ``PromisedRecord`` and ``AcceptedRecord`` are in ``out.persist`` in the same
batch as the Promise/Accepted they justify, and the driver writes ``persist`` before it
sends; :meth:`PaxosReplica.restore` rebuilds the promised ballot and accepted values, so a
restarted replica never goes back on a promise or a vote. An ``IncarnationRecord``, persisted
by the first step of each life, numbers the heartbeat epoch so that peers trust a restarted
replica at its first heartbeat. After ``restore`` the driver should feed
``Applied(height, root)`` for the state its application kept.

*Checkpoints.* ``Applied(seq, root)`` with ``seq`` a multiple of ``checkpoint_interval``
sends a signed ``Checkpoint``; f+1 matching ones make it *stable*: the log at and below it is
truncated (``CheckpointRecord`` persisted). ``Applied(seq)`` beyond the delivered slot means
the driver installed state (after ``StateWanted`` or a restart): delivery resumes after it.
The driver must feed ``Applied`` for delivered values, or the window fills and the leader
stops proposing.

Invariants, checked after every step (``ConsensusBug``): one chosen value per slot; the
promised ballot never decreases; every accepted ballot is at most the promised one;
deliveries are contiguous; the logs stay within their bounds.

Who calls it: the node's consensus driver, the simulator, ``tests/consensus``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import rlp

from consensus.contract import (
    ALL,
    Applied,
    Certificate,
    ConsensusBug,
    Input,
    NodeId,
    Output,
    Propose,
    Receive,
    Signer,
    Tick,
    Validity,
    Verifier,
)
from consensus.election import BullyElection, ElectionOutput
from consensus.failure_detector import DetectorOutput, Heartbeat, HeartbeatFailureDetector
from consensus.paxos._proposer import _Proposal, _ProposerRole
from consensus.paxos._roles import _AcceptorRole, _LearnerRole
from consensus.paxos.config import PaxosConfig, PaxosStatistics, Role, verify_certificate
from consensus.paxos.messages import (
    ZERO_BALLOT,
    Accept,
    Accepted,
    Ballot,
    CatchUp,
    Checkpoint,
    CheckpointProof,
    Control,
    Decided,
    Forward,
    Nack,
    PaxosMessage,
    Prepare,
    Promise,
    digest_of,
)
from consensus.paxos.records import IncarnationRecord

__all__ = ["PaxosReplica"]

#: Forward nonces remembered to drop duplicated copies.
_FORWARDS_SEEN_MAX = 4096


class PaxosReplica(_ProposerRole, _AcceptorRole, _LearnerRole):
    """One Multi-Paxos replica behind the engine contract (see module docstring).

    Args:
        config: cluster parameters (replicas are ``0..n-1``).
        node_id: this replica.
        signer: signs this replica's messages and votes.
        verifier: checks peers' signatures.
        validity: application check; acceptors refuse to vote for invalid values.
        rng: the only source of randomness (backoff after preemption).
    """

    def __init__(
        self,
        config: PaxosConfig,
        node_id: NodeId,
        signer: Signer,
        verifier: Verifier,
        validity: Validity,
        rng: random.Random,
    ) -> None:
        if not 0 <= node_id < config.n:
            raise ValueError("node_id must be in [0, n)")
        self.config = config
        self.node_id = node_id
        self._signer = signer
        self._verifier = verifier
        self._validity = validity
        self._rng = rng
        self._members = frozenset(config.members)
        self._quorum = config.quorum
        self._tag = config.instance_tag
        self._fd = HeartbeatFailureDetector(
            node_id,
            config.members,
            config.heartbeat_ticks,
            config.suspect_timeout_ticks,
            config.suspect_timeout_ticks_max,
        )
        self._election = BullyElection(
            node_id, config.members, config.election_timeout_ticks, config.reannounce_ticks
        )
        # Acceptor state (durable).
        self.promised = ZERO_BALLOT
        self._accepted: dict[int, tuple[Ballot, bytes]] = {}
        self._accepted_ballot_max = ZERO_BALLOT
        self._incarnation = 0  # raised by restore(); persisted by the first step
        self._incarnation_persisted = False
        # Learner state.
        self._chosen: dict[int, tuple[bytes, Certificate]] = {}
        self.delivered = 0
        self.applied = 0
        self.low = 0
        self._low_root = b""
        self._low_proof: tuple[tuple[int, bytes], ...] = ()
        self._checkpoint_votes: dict[int, dict[NodeId, tuple[bytes, bytes]]] = {}
        self._own_checkpoint: Checkpoint | None = None
        self._wanted = 0
        # Proposer state.
        self.role = Role.FOLLOWER
        self.ballot = ZERO_BALLOT
        self._max_round = 0
        self._promises: dict[NodeId, Promise] = {}
        self._next_slot = 1
        self._inflight: dict[int, _Proposal] = {}
        self._pending: deque[bytes] = deque()
        self._forwards_seen: dict[tuple[NodeId, int], None] = {}  # insertion-ordered, bounded
        self._retry_at: int | None = None
        self._orphans: list[tuple[int, bytes]] = []  # (slot, value) in flight when preempted
        # Time and plumbing.
        self._now = 0
        self._last_retransmit = 0
        self._base = 0  # delivered slot at the start of the step (or after installed state)
        self._loopback: deque[PaxosMessage] = deque()
        self._counters: dict[str, int] = dict.fromkeys(
            [
                "received",
                "dropped_invalid",
                "dropped_signature",
                "dropped_stale",
                "dropped_conflicting_decision",
                "proposals_dropped",
                "invalid_values",
                "nacks",
                "phase1_started",
                "retransmissions",
                "catchups_sent",
            ],
            0,
        )
        self._handlers: dict[type, Callable[[NodeId, Any, Output, bool], None]] = {
            Prepare: self._on_prepare,
            Promise: self._on_promise,
            Nack: self._on_nack,
            Accept: self._on_accept,
            Accepted: self._on_accepted,
            Decided: self._on_decided,
            CatchUp: self._on_catchup,
            Forward: self._on_forward,
            Checkpoint: self._on_checkpoint,
            CheckpointProof: self._on_checkpoint_proof,
            Control: self._on_control,
        }

    # -- the engine contract ------------------------------------------------------------

    def step(self, event: Input) -> Output:
        """Handle one input; return persist/send/deliver/wants in that order of execution."""
        out = Output()
        promised_before, delivered_before = self.promised, self.delivered
        self._base = self.delivered
        if not self._incarnation_persisted:
            # Before any heartbeat leaves with this epoch, so a later restart uses a higher one.
            self._incarnation_persisted = True
            self._fd.epoch = self._incarnation
            out.persist.append(IncarnationRecord(self._incarnation))
        if isinstance(event, Receive):
            self._on_receive(event.sender, event.message, out)
        elif isinstance(event, Tick):
            self._on_tick(event.now, out)
        elif isinstance(event, Propose):
            self._on_propose(event.value, out)
        elif isinstance(event, Applied):
            self._on_applied(event.seq, event.state_root, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        self._settle(out)
        self._check_invariants(out, promised_before, delivered_before)
        return out

    def leader(self) -> NodeId | None:
        """The leader named by the embedded election."""
        return self._election.leader()

    def verify_certificate(self, cert: Certificate, value: bytes) -> bool:
        """True when ``cert`` proves ``value`` chosen (f+1 valid vote signatures)."""
        return verify_certificate(cert, value, self._verifier, self.config.n, self._tag)

    def statistics(self) -> PaxosStatistics:
        """Role, ballots, progress, log sizes and drop counters."""
        return PaxosStatistics(
            node_id=self.node_id,
            role=self.role,
            leader=self._election.leader(),
            ballot=self.ballot,
            promised=self.promised,
            delivered=self.delivered,
            applied=self.applied,
            low=self.low,
            next_slot=self._next_slot,
            inflight=len(self._inflight),
            pending=len(self._pending),
            accepted_log=len(self._accepted),
            chosen_log=len(self._chosen),
            suspected=self._fd.suspected(),
            counters=dict(self._counters),
        )

    # -- plumbing -----------------------------------------------------------------------

    def _sign(self, msg: PaxosMessage) -> Any:
        return msg.with_signature(self._signer.sign(msg.signed_bytes(self._tag)))

    def _send(self, out: Output, to: NodeId, msg: PaxosMessage) -> None:
        signed = self._sign(msg)
        if to == self.node_id:
            self._loopback.append(signed)
        else:
            out.send.append((to, signed))

    def _broadcast(self, out: Output, msg: PaxosMessage, *, include_self: bool) -> None:
        signed = self._sign(msg)
        if self.config.n > 1:
            out.send.append((ALL, signed))
        if include_self:
            self._loopback.append(signed)

    def _settle(self, out: Output) -> None:
        """Run messages to ourselves and start proposals until nothing more happens."""
        for _ in range(10_000):
            while self._loopback:
                msg = self._loopback.popleft()
                self._handlers[type(msg)](self.node_id, msg, out, True)
            self._flush(out)
            if not self._loopback:
                return
        raise ConsensusBug("loopback did not settle")

    def _on_receive(self, sender: NodeId, msg: object, out: Output) -> None:
        self._counters["received"] += 1
        if (
            not isinstance(msg, PaxosMessage)
            or type(msg) not in self._handlers
            or msg.sender != sender
            or sender not in self._members
            or sender == self.node_id
        ):
            self._counters["dropped_invalid"] += 1
            return
        if not self._verifier.verify(sender, msg.signed_bytes(self._tag), msg.signature):
            self._counters["dropped_signature"] += 1
            return
        self._handlers[type(msg)](sender, msg, out, False)

    def _see_ballot(self, b: Ballot) -> None:
        self._max_round = max(self._max_round, b.round)

    # -- time, election, proposals --------------------------------------------------------

    def _on_tick(self, now: int, out: Output) -> None:
        self._now = max(self._now, now)
        self._fd.payload = rlp.encode(self.delivered)
        self._on_detector(self._fd.step(Tick(self._now)), out)
        self._on_election(self._election.step(Tick(self._now)), out)
        if (
            self._retry_at is not None
            and self._now >= self._retry_at
            and self.role is Role.FOLLOWER
            and self._election.leader() == self.node_id
        ):
            self._start_phase1(out)
        if self._now - self._last_retransmit >= self.config.retransmit_ticks:
            self._last_retransmit = self._now
            self._retransmit(out)

    def _on_detector(self, fo: DetectorOutput, out: Output) -> None:
        for _, hb in fo.send:
            self._broadcast(out, Control(self.node_id, hb), include_self=False)
        for ev in fo.events:
            self._on_election(self._election.step(ev), out)

    def _on_election(self, eo: ElectionOutput, out: Output) -> None:
        for to, m in eo.send:
            self._send(out, to, Control(self.node_id, m))
        for ev in eo.events:
            if ev.leader == self.node_id:
                if self.role is Role.FOLLOWER:
                    self._start_phase1(out)
            elif self.role is not Role.FOLLOWER:
                self._step_down()
            if ev.leader is not None and ev.leader != self.node_id:
                self._retry_at = None
                self._forward_pending(out)

    def _on_control(self, sender: NodeId, msg: Control, out: Output, local: bool) -> None:
        inner = msg.inner
        if isinstance(inner, Heartbeat):
            self._on_detector(self._fd.step(Receive(sender, inner)), out)
        else:
            self._on_election(self._election.step(Receive(sender, inner)), out)

    def _on_propose(self, value: bytes, out: Output) -> None:
        if len(value) > self.config.value_bytes_max or not self._validity(value):
            self._counters["invalid_values"] += 1
            return
        self._enqueue((value,))
        leader = self._election.leader()
        if self.role is Role.FOLLOWER and leader is not None and leader != self.node_id:
            self._forward_pending(out)

    def _on_forward(self, sender: NodeId, msg: Forward, out: Output, local: bool) -> None:
        key = (sender, msg.nonce)
        if key in self._forwards_seen:
            self._counters["dropped_stale"] += 1
            return
        self._forwards_seen[key] = None
        if len(self._forwards_seen) > _FORWARDS_SEEN_MAX:
            del self._forwards_seen[next(iter(self._forwards_seen))]
        self._enqueue(msg.values)

    def _enqueue(self, values: Sequence[bytes]) -> None:
        for v in values:
            if len(self._pending) >= self.config.pending_values_max:
                self._counters["proposals_dropped"] += 1
            else:
                self._pending.append(v)

    def _forward_pending(self, out: Output) -> None:
        leader = self._election.leader()
        if not self._pending or leader is None or leader == self.node_id:
            return
        while self._pending:
            batch = [
                self._pending.popleft()
                for _ in range(min(len(self._pending), self.config.batch_values_max))
            ]
            nonce = self._rng.getrandbits(64)
            self._send(out, leader, Forward(self.node_id, nonce, tuple(batch)))

    def _flush(self, out: Output) -> None:
        """As leader, put pending values into free slots, one Accept per batch.

        Batching adapts to load: an idle leader sends a value at once; while slots are in
        flight it sends only full batches and keeps a partial one until they are chosen.
        """
        if self.role is not Role.LEADER:
            return
        if self._inflight and len(self._pending) < self.config.batch_values_max:
            return
        limit = self.low + self.config.window
        while self._pending and self._next_slot <= limit:
            entries: list[tuple[int, bytes]] = []
            while (
                self._pending
                and len(entries) < self.config.batch_values_max
                and self._next_slot <= limit
            ):
                value = self._pending.popleft()
                if len(value) > self.config.value_bytes_max or not self._validity(value):
                    self._counters["invalid_values"] += 1
                    continue
                entries.append((self._next_slot, value))
                self._next_slot += 1
            self._propose(entries, out)

    def _propose(self, entries: list[tuple[int, bytes]], out: Output) -> None:
        for start in range(0, len(entries), self.config.batch_values_max):
            chunk = entries[start : start + self.config.batch_values_max]
            for slot, value in chunk:
                self._inflight[slot] = _Proposal(value, digest_of(value))
            self._broadcast(out, Accept(self.node_id, self.ballot, tuple(chunk)), include_self=True)

    def _retransmit(self, out: Output) -> None:
        self._counters["retransmissions"] += 1
        if self.role is Role.CANDIDATE:
            for m in sorted(self._members - set(self._promises)):
                self._send(out, m, Prepare(self.node_id, self.ballot, self.low + 1))
        elif self.role is Role.LEADER and self._inflight:
            slots = sorted(self._inflight)[: self.config.batch_values_max]
            entries = tuple((s, self._inflight[s].value) for s in slots)
            self._broadcast(out, Accept(self.node_id, self.ballot, entries), include_self=False)
        if self._own_checkpoint is not None and self._own_checkpoint.seq > self.low:
            self._broadcast(out, self._own_checkpoint, include_self=False)
        if self.role is Role.FOLLOWER:
            self._forward_pending(out)
        self._maybe_catch_up(out)

    def _maybe_catch_up(self, out: Output) -> None:
        if self._wanted > self.delivered:
            return  # waiting for the driver to install state
        ahead = []
        for peer in sorted(self._fd.alive()):
            payload = self._fd.payload_of(peer)
            if payload is None:
                continue
            try:
                theirs = rlp.sedes.big_endian_int.deserialize(rlp.decode(payload, strict=True))
            except (rlp.exceptions.RLPException, TypeError):
                continue
            if theirs > self.delivered:
                ahead.append(peer)
        if ahead:
            # A random peer ahead: one that restarted may be ahead without the log to serve.
            self._counters["catchups_sent"] += 1
            self._send(out, self._rng.choice(ahead), CatchUp(self.node_id, self.delivered + 1))

    # -- invariants ---------------------------------------------------------------------

    def _check_invariants(
        self, out: Output, promised_before: Ballot, delivered_before: int
    ) -> None:
        if self.promised < promised_before:
            raise ConsensusBug("promised ballot decreased")
        if self.delivered < delivered_before:
            raise ConsensusBug("delivered slot went backwards")
        expected = self._base
        for d in out.deliver:
            if d.seq != expected + 1:
                raise ConsensusBug(f"delivery gap: {d.seq} after {expected}")
            expected = d.seq
        if self._accepted_ballot_max > self.promised:
            raise ConsensusBug("accepted above the promised ballot")
        window = 2 * self.config.window
        if (
            len(self._accepted) > window
            or len(self._chosen) > window
            or len(self._inflight) > window
        ):
            raise ConsensusBug("log grew beyond its bound")
        if len(self._pending) > self.config.pending_values_max:
            raise ConsensusBug("pending proposals beyond their bound")
        if self.role is not Role.FOLLOWER and self.ballot.node != self.node_id:
            raise ConsensusBug("leading with someone else's ballot")
