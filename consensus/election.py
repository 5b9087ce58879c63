"""Bully leader election (Garcia-Molina, 1982) over a failure detector, sans-IO.

Theory of operation
-------------------
Members have totally ordered ids; the highest live id should lead. A node *starts an
election* when it has no leader, when the failure detector suspects the leader, when a peer
with a higher id than the leader is trusted again, when a lower node announces itself, or
when a lower node asks (``Election``). Starting an election means sending ``Election`` to
every higher member that the failure detector does not suspect:

* nobody to ask -> this node is the leader: it sends ``Coordinator`` to every lower member;
* an ``Answer`` arrives -> a higher node took over: wait ``2 * timeout_ticks`` (its own
  election may take one timeout) for its ``Coordinator``, and start again if none comes;
* no ``Answer`` within ``timeout_ticks`` -> this node is the leader.

A node receiving ``Election`` from a lower node answers it and starts its own election.
A node receiving ``Coordinator`` from a lower node bullies: it starts its own election.
With ``reannounce_ticks`` set, the leader repeats ``Coordinator`` to the lower members at
that period, which repairs lost or reordered announcements on a lossy network.

::

    IDLE --(start)--> ELECTING --(Answer)--> WAITING --(Coordinator)--> IDLE
                         |                      |
                         +--(timeout: leader)   +--(timeout: start again)

Inputs to :meth:`BullyElection.step`: ``Tick``, ``Receive`` (Election/Answer/Coordinator),
and the failure detector's :class:`~consensus.failure_detector.Suspect` /
:class:`~consensus.failure_detector.Trust`. Output: :class:`ElectionOutput` with ``send``
and ``events`` (:class:`LeaderChanged`). Messages sent are counted per kind in
:meth:`statistics`, for comparison with the textbook figures (between n-1 and O(n^2)
messages per election).

Invariant: after stabilisation (no crashes, no suspicion changes, messages delivered), every
live node has the same leader, the highest live id. Who calls it: the Paxos replica, tests.

:class:`consensus.ring_election.RingElection` (Chang-Roberts) reaches the same result with
messages passed only to the next live member on a ring.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from rlp.sedes import List, big_endian_int

from consensus.contract import ConsensusBug, InvalidMessage, NodeId, Receive, Tick
from consensus.failure_detector import Suspect, Trust

__all__ = [
    "Answer",
    "BullyElection",
    "Coordinator",
    "Election",
    "ElectionOutput",
    "ElectionStatistics",
    "LeaderChanged",
    "Phase",
    "decode_election_message",
]

_KIND_ELECTION, _KIND_ANSWER, _KIND_COORDINATOR = 1, 2, 3
_SEDES = List([big_endian_int, big_endian_int], strict=True)
_UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class _ElectionMessage:
    sender: NodeId

    KIND = 0

    def __post_init__(self) -> None:
        if isinstance(self.sender, bool) or not isinstance(self.sender, int):
            raise InvalidMessage("sender must be an int")
        if not 0 <= self.sender <= _UINT64_MAX:
            raise InvalidMessage("sender out of range")

    def encode(self) -> bytes:
        """Canonical RLP: ``[kind, sender]``."""
        data: bytes = rlp.encode([self.KIND, self.sender])
        return data


@dataclass(frozen=True, slots=True)
class Election(_ElectionMessage):
    """``sender`` asks higher nodes whether any of them is alive."""

    KIND = _KIND_ELECTION


@dataclass(frozen=True, slots=True)
class Answer(_ElectionMessage):
    """``sender`` (higher) is alive and takes over the election."""

    KIND = _KIND_ANSWER


@dataclass(frozen=True, slots=True)
class Coordinator(_ElectionMessage):
    """``sender`` announces itself leader."""

    KIND = _KIND_COORDINATOR


ElectionMessage = Election | Answer | Coordinator
_BY_KIND: dict[int, type[Election] | type[Answer] | type[Coordinator]] = {
    _KIND_ELECTION: Election,
    _KIND_ANSWER: Answer,
    _KIND_COORDINATOR: Coordinator,
}


def decode_election_message(data: bytes) -> ElectionMessage:
    """Decode an Election, Answer or Coordinator strictly.

    Raises:
        InvalidMessage: unknown kind or not the canonical encoding.
    """
    try:
        kind, sender = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidMessage(f"election message: {e}") from e
    cls = _BY_KIND.get(kind)
    if cls is None:
        raise InvalidMessage(f"election message: unknown kind {kind}")
    msg = cls(NodeId(sender))
    if msg.encode() != bytes(data):
        raise InvalidMessage("election message: non-canonical encoding")
    return msg


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """Event: this node now believes ``leader`` leads (None: unknown, election running)."""

    leader: NodeId | None


class Phase(enum.Enum):
    IDLE = "idle"
    ELECTING = "electing"
    WAITING = "waiting"


@dataclass(slots=True)
class ElectionOutput:
    """Messages to send (each to one node), then leader changes."""

    send: list[tuple[NodeId, ElectionMessage]] = field(default_factory=list)
    events: list[LeaderChanged] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ElectionStatistics:
    leader: NodeId | None
    phase: Phase
    elections_started: int
    sent: dict[str, int]
    received: dict[str, int]
    ignored: int


class BullyElection:
    """Bully election core (see module docstring).

    Args:
        node_id: this node; must be in ``members``.
        members: every node id taking part (this one included).
        timeout_ticks: how long to wait for an Answer, then for a Coordinator.
        reannounce_ticks: if set, the leader repeats Coordinator at this period.
    """

    def __init__(
        self,
        node_id: NodeId,
        members: Iterable[NodeId],
        timeout_ticks: int,
        reannounce_ticks: int | None = None,
    ) -> None:
        self.members: tuple[NodeId, ...] = tuple(sorted(set(members)))
        if node_id not in self.members:
            raise ValueError("node_id must be a member")
        if timeout_ticks < 1 or (reannounce_ticks is not None and reannounce_ticks < 1):
            raise ValueError("timeouts must be >= 1 tick")
        self.node_id = node_id
        self.timeout_ticks = timeout_ticks
        self.reannounce_ticks = reannounce_ticks
        self._leader: NodeId | None = None
        self._phase = Phase.IDLE
        self._deadline = 0
        self._now: int | None = None
        self._last_announce = 0
        self._suspected: set[NodeId] = set()
        self._started = 0
        self._sent = {"Election": 0, "Answer": 0, "Coordinator": 0}
        self._received = {"Election": 0, "Answer": 0, "Coordinator": 0}
        self._ignored = 0

    def leader(self) -> NodeId | None:
        """The node this one currently follows (itself if it leads); None while unknown."""
        return self._leader

    @property
    def phase(self) -> Phase:
        return self._phase

    def statistics(self) -> ElectionStatistics:
        """Message counts per kind (sent and received) and elections started."""
        return ElectionStatistics(
            leader=self._leader,
            phase=self._phase,
            elections_started=self._started,
            sent=dict(self._sent),
            received=dict(self._received),
            ignored=self._ignored,
        )

    def step(self, event: Tick | Receive | Suspect | Trust) -> ElectionOutput:
        """Feed one input; return messages to send and leader changes.

        Messages from non-members, or whose ``sender`` differs from the transport sender,
        are ignored and counted.
        """
        out = ElectionOutput()
        before = self._leader
        if isinstance(event, Tick):
            self._on_tick(event.now, out)
        elif isinstance(event, Receive):
            self._on_receive(event.sender, event.message, out)
        elif isinstance(event, Suspect):
            self._on_suspect(event.node, out)
        elif isinstance(event, Trust):
            self._on_trust(event.node, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        if self._leader != before:
            out.events.append(LeaderChanged(self._leader))
        self._check_invariants()
        return out

    # -- handlers -----------------------------------------------------------------------

    def _on_tick(self, now: int, out: ElectionOutput) -> None:
        first = self._now is None
        self._now = now if self._now is None else max(self._now, now)
        if first and self._leader is None and self._phase is Phase.IDLE:
            self._start(out)
            return
        if self._phase is Phase.ELECTING and self._now >= self._deadline:
            self._become_leader(out)
        elif self._phase is Phase.WAITING and self._now >= self._deadline:
            self._start(out)
        elif (
            self._phase is Phase.IDLE
            and self._leader == self.node_id
            and self.reannounce_ticks is not None
            and self._now - self._last_announce >= self.reannounce_ticks
        ):
            self._announce(out)

    def _on_receive(self, sender: NodeId, msg: object, out: ElectionOutput) -> None:
        if (
            not isinstance(msg, Election | Answer | Coordinator)
            or msg.sender != sender
            or sender not in self.members
            or sender == self.node_id
        ):
            self._ignored += 1
            return
        self._received[type(msg).__name__] += 1
        if isinstance(msg, Election):
            if sender < self.node_id:
                self._send(out, sender, Answer(self.node_id))
                if self._phase is Phase.IDLE:
                    self._start(out)
            else:
                self._ignored += 1
        elif isinstance(msg, Answer):
            if sender > self.node_id and self._phase is Phase.ELECTING:
                # The higher node needs up to one timeout for its own election first.
                self._phase = Phase.WAITING
                self._deadline = self._clock() + 2 * self.timeout_ticks
        elif sender < self.node_id:
            # A lower node claims leadership while we are alive: bully it.
            if self._phase is Phase.IDLE:
                self._start(out)
        else:
            self._leader = sender
            self._phase = Phase.IDLE

    def _on_suspect(self, node: NodeId, out: ElectionOutput) -> None:
        if node == self.node_id or node not in self.members:
            return
        self._suspected.add(node)
        if node == self._leader and self._phase is Phase.IDLE:
            self._leader = None
            self._start(out)

    def _on_trust(self, node: NodeId, out: ElectionOutput) -> None:
        if node not in self.members:
            return
        self._suspected.discard(node)
        if self._phase is not Phase.IDLE:
            return
        if self._leader is None or node > self._leader:
            self._start(out)
        elif self._leader == self.node_id:
            self._send(out, node, Coordinator(self.node_id))

    # -- helpers ------------------------------------------------------------------------

    def _clock(self) -> int:
        return self._now if self._now is not None else 0

    def _send(self, out: ElectionOutput, to: NodeId, msg: ElectionMessage) -> None:
        self._sent[type(msg).__name__] += 1
        out.send.append((to, msg))

    def _start(self, out: ElectionOutput) -> None:
        self._started += 1
        higher = [m for m in self.members if m > self.node_id and m not in self._suspected]
        if not higher:
            self._become_leader(out)
            return
        self._phase = Phase.ELECTING
        self._deadline = self._clock() + self.timeout_ticks
        for m in higher:
            self._send(out, m, Election(self.node_id))

    def _become_leader(self, out: ElectionOutput) -> None:
        self._leader = self.node_id
        self._phase = Phase.IDLE
        self._announce(out)

    def _announce(self, out: ElectionOutput) -> None:
        self._last_announce = self._clock()
        for m in self.members:
            if m < self.node_id:
                self._send(out, m, Coordinator(self.node_id))

    def _check_invariants(self) -> None:
        if self._leader is not None and self._leader not in self.members:
            raise ConsensusBug("leader is not a member")
        if self._phase is Phase.IDLE and self._leader is None and self._now is not None:
            raise ConsensusBug("idle without a leader")
