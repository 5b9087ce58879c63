"""Ring leader election (Chang & Roberts, 1979; after LeLann, 1977), sans-IO.

Reaches the same result as :class:`consensus.election.BullyElection` (the highest live id
leads) with messages passed only to the next live member on a ring: fewer messages than
bully (``O(n)`` with one initiator, ``O(n log n)`` on average with all initiating), at the
price of ``O(n)`` sequential hops. Suspected members are skipped on the ring; a lost token
is repaired only by the initiator's timeout (the negative control turns it off).

Who calls it: the simulator's election study (``testnet.sim.algos.election``) and tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from rlp.sedes import List, big_endian_int

from consensus.contract import ConsensusBug, InvalidMessage, NodeId, Receive, Tick
from consensus.election import ElectionStatistics, LeaderChanged, Phase
from consensus.failure_detector import Suspect, Trust

_UINT64_MAX = (1 << 64) - 1

__all__ = [
    "RingElect",
    "RingElected",
    "RingElection",
    "RingOutput",
    "decode_ring_message",
]

_KIND_RING_ELECT, _KIND_RING_ELECTED = 4, 5
_RING_SEDES = List([big_endian_int, big_endian_int, big_endian_int], strict=True)


@dataclass(frozen=True, slots=True)
class _RingMessage:
    sender: NodeId
    candidate: NodeId

    KIND = 0

    def __post_init__(self) -> None:
        for name in ("sender", "candidate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _UINT64_MAX:
                raise InvalidMessage(f"{type(self).__name__}.{name} must be a uint64")

    def encode(self) -> bytes:
        """Canonical RLP: ``[kind, sender, candidate]``."""
        data: bytes = rlp.encode([self.KIND, self.sender, self.candidate])
        return data


@dataclass(frozen=True, slots=True)
class RingElect(_RingMessage):
    """The election token: the highest id seen so far on its way round the ring."""

    KIND = _KIND_RING_ELECT


@dataclass(frozen=True, slots=True)
class RingElected(_RingMessage):
    """The result going round the ring once: ``candidate`` leads."""

    KIND = _KIND_RING_ELECTED


RingMessage = RingElect | RingElected


def decode_ring_message(data: bytes) -> RingMessage:
    """Decode a RingElect or RingElected strictly.

    Raises:
        InvalidMessage: unknown kind or not the canonical encoding.
    """
    try:
        kind, sender, candidate = rlp.decode(bytes(data), sedes=_RING_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidMessage(f"ring message: {e}") from e
    cls: type[RingElect] | type[RingElected]
    if kind == _KIND_RING_ELECT:
        cls = RingElect
    elif kind == _KIND_RING_ELECTED:
        cls = RingElected
    else:
        raise InvalidMessage(f"ring message: unknown kind {kind}")
    msg = cls(NodeId(sender), NodeId(candidate))
    if msg.encode() != bytes(data):
        raise InvalidMessage("ring message: non-canonical encoding")
    return msg


@dataclass(slots=True)
class RingOutput:
    """Messages to send (each to the successor), then leader changes."""

    send: list[tuple[NodeId, RingMessage]] = field(default_factory=list)
    events: list[LeaderChanged] = field(default_factory=list)


class RingElection:
    """Chang-Roberts ring election over a failure detector, sans-IO.

    Members sit on a ring in id order; each sends only to its *successor*, the next member
    (wrapping round) that the failure detector does not suspect. A node starts an election
    (on its first ``Tick``, when its leader is suspected, or when its timeout expires) by
    marking itself a participant and sending ``RingElect(self)``. On ``RingElect(c)``: a
    higher ``c`` is forwarded (marking the node a participant); a lower ``c`` is replaced by
    the node's own id unless it already participates (then it is swallowed); its own id back
    means it is the highest live id: it leads and sends ``RingElected(self)`` round the ring,
    which every node records and forwards until it returns home.

    With one initiator that costs at most ``2n - 1`` Elect plus ``n`` Elected messages
    (``3n - 1``); with all ``n`` initiating at once, at worst ``n(n+1)/2`` Elect messages.

    A lost token stalls the textbook algorithm for ever. ``timeout_ticks`` repairs that: a
    participant that has not learned a leader within it starts again. With
    ``timeout_ticks=None`` (the textbook) a lost token is never noticed -- the simulator's
    negative control shows the stall.

    Inputs and outputs are those of :class:`BullyElection` (``Tick``, ``Receive``,
    ``Suspect``, ``Trust`` in; :class:`RingOutput` with ``send`` and ``LeaderChanged`` out).
    """

    def __init__(self, node_id: NodeId, members: Iterable[NodeId],
                 timeout_ticks: int | None = None) -> None:
        self.members: tuple[NodeId, ...] = tuple(sorted(set(members)))
        if node_id not in self.members:
            raise ValueError("node_id must be a member")
        if timeout_ticks is not None and timeout_ticks < 1:
            raise ValueError("timeout_ticks must be >= 1 tick")
        self.node_id = node_id
        self.timeout_ticks = timeout_ticks
        self.participant = False
        self._leader: NodeId | None = None
        self._suspected: set[NodeId] = set()
        self._now: int | None = None
        self._deadline = 0
        self._started = 0
        self._sent = {"RingElect": 0, "RingElected": 0}
        self._received = {"RingElect": 0, "RingElected": 0}
        self._ignored = 0

    def leader(self) -> NodeId | None:
        """The node this one follows (itself if it leads); None while unknown."""
        return self._leader

    @property
    def phase(self) -> Phase:
        return Phase.ELECTING if self.participant else Phase.IDLE

    def statistics(self) -> ElectionStatistics:
        """Message counts per kind (sent and received) and elections started."""
        return ElectionStatistics(self._leader, self.phase, self._started, dict(self._sent),
                                  dict(self._received), self._ignored)

    def successor(self) -> NodeId:
        """The next unsuspected member after this one on the ring (itself if alone)."""
        i = self.members.index(self.node_id)
        for k in range(1, len(self.members)):
            m = self.members[(i + k) % len(self.members)]
            if m not in self._suspected:
                return m
        return self.node_id

    def step(self, event: Tick | Receive | Suspect | Trust) -> RingOutput:
        """Feed one input; return messages to send and leader changes."""
        out = RingOutput()
        before = self._leader
        if isinstance(event, Tick):
            first = self._now is None
            self._now = event.now if self._now is None else max(self._now, event.now)
            expired = (self.participant and self.timeout_ticks is not None
                       and self._now >= self._deadline)
            if expired or (first and self._leader is None and not self.participant):
                self._start(out)
        elif isinstance(event, Receive):
            self._on_receive(event.sender, event.message, out)
        elif isinstance(event, Suspect):
            if event.node in self.members and event.node != self.node_id:
                self._suspected.add(event.node)
                if event.node == self._leader:
                    self._leader = None
                    self._start(out)
        elif isinstance(event, Trust):
            back = event.node in self._suspected
            self._suspected.discard(event.node)
            if back and self._leader is not None and event.node > self._leader:
                self._start(out)      # a higher node is back: it should lead
        else:
            raise TypeError(f"unexpected input {event!r}")
        if self._leader != before:
            out.events.append(LeaderChanged(self._leader))
        self._check_invariants()
        return out

    def _on_receive(self, sender: NodeId, msg: object, out: RingOutput) -> None:
        if (not isinstance(msg, RingElect | RingElected) or msg.sender != sender
                or sender not in self.members or sender == self.node_id
                or msg.candidate not in self.members):
            self._ignored += 1
            return
        self._received[type(msg).__name__] += 1
        if isinstance(msg, RingElected):
            self.participant = False
            if msg.candidate == self.node_id:
                return            # the announcement went all the way round
            self._leader = msg.candidate
            self._send(out, RingElected(self.node_id, msg.candidate))
        elif msg.candidate > self.node_id:
            self._participate()
            self._send(out, RingElect(self.node_id, msg.candidate))
        elif msg.candidate < self.node_id:
            if not self.participant:
                self._participate()
                self._send(out, RingElect(self.node_id, self.node_id))
        else:
            self.participant = False
            self._leader = self.node_id
            self._send(out, RingElected(self.node_id, self.node_id))

    def _participate(self) -> None:
        self.participant = True
        self._deadline = (self._now or 0) + (self.timeout_ticks or 0)

    def _start(self, out: RingOutput) -> None:
        self._started += 1
        self._participate()
        if self.successor() == self.node_id:
            self.participant = False
            self._leader = self.node_id
            return
        self._send(out, RingElect(self.node_id, self.node_id))

    def _send(self, out: RingOutput, msg: RingMessage) -> None:
        to = self.successor()
        if to == self.node_id:
            return
        self._sent[type(msg).__name__] += 1
        out.send.append((to, msg))

    def _check_invariants(self) -> None:
        if self._leader is not None and self._leader not in self.members:
            raise ConsensusBug("leader is not a member")
