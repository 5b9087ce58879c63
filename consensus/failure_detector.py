"""Heartbeat failure detector: a sans-IO eventually-perfect detector with adaptive timeouts.

Theory of operation
-------------------
Every ``heartbeat_ticks`` the detector emits one :class:`Heartbeat` to :data:`ALL`. It
remembers, per peer, the tick at which it last heard a fresh heartbeat. A peer silent for
longer than its timeout becomes *suspected* (a :class:`Suspect` event). A suspected peer that
sends a heartbeat is *trusted* again (a :class:`Trust` event) and, with ``adaptive=True``,
its timeout doubles (capped at ``timeout_ticks_max``): each false suspicion buys a longer
detection time for that peer, which is the classic trade of the eventually-perfect detector
(Chandra & Toueg's diamond-P) between detection speed and false suspicions.

::

    TRUSTED --(silent > timeout)--> SUSPECTED --(heartbeat; timeout *= 2)--> TRUSTED

Outputs: :meth:`HeartbeatFailureDetector.step` returns a :class:`DetectorOutput` with
``send`` (``(ALL, Heartbeat)`` pairs to put on the wire) and ``events`` (the suspicion
changes of this step, in order). The Paxos replica embeds one detector and feeds its events
to the bully election; the p2p layer can drive one directly with real heartbeats.

Invariants: ``suspected() | alive() == peers`` and they are disjoint; every timeout stays in
``[timeout_ticks, timeout_ticks_max]``; heartbeats from one peer are taken in
``(epoch, seq)`` order, so duplicates and reordered old heartbeats change nothing.

Who calls it: ``consensus.paxos.replica`` (embedded), ``p2p`` heartbeats, tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from rlp.sedes import List, big_endian_int, binary

from consensus.contract import ALL, Broadcast, ConsensusBug, InvalidMessage, NodeId, Receive, Tick

__all__ = [
    "DetectorOutput",
    "DetectorStatistics",
    "Heartbeat",
    "HeartbeatDetectorBase",
    "HeartbeatFailureDetector",
    "Suspect",
    "Trust",
    "decode_heartbeat",
]

#: Largest heartbeat payload we accept (the replica puts a few integers there).
HEARTBEAT_PAYLOAD_BYTES_MAX = 256
_UINT64_MAX = (1 << 64) - 1
_HEARTBEAT_SEDES = List([big_endian_int, big_endian_int, big_endian_int, binary], strict=True)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """``sender`` is alive: its ``seq``-th heartbeat of incarnation ``epoch``, with a payload."""

    sender: NodeId
    epoch: int
    seq: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        for name in ("sender", "epoch", "seq"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= _UINT64_MAX
            ):
                raise InvalidMessage(f"Heartbeat.{name} must be a uint64, got {value!r}")
        if not isinstance(self.payload, bytes) or len(self.payload) > HEARTBEAT_PAYLOAD_BYTES_MAX:
            raise InvalidMessage("Heartbeat.payload must be bytes of bounded length")

    def encode(self) -> bytes:
        """Canonical RLP: ``[sender, epoch, seq, payload]``."""
        data: bytes = rlp.encode([self.sender, self.epoch, self.seq, self.payload])
        return data


def decode_heartbeat(data: bytes) -> Heartbeat:
    """Decode a :class:`Heartbeat` strictly.

    Raises:
        InvalidMessage: not the one canonical encoding of a valid heartbeat.
    """
    try:
        sender, epoch, seq, payload = rlp.decode(bytes(data), sedes=_HEARTBEAT_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidMessage(f"Heartbeat: {e}") from e
    hb = Heartbeat(NodeId(sender), epoch, seq, payload)
    if hb.encode() != bytes(data):
        raise InvalidMessage("Heartbeat: non-canonical encoding")
    return hb


@dataclass(frozen=True, slots=True)
class Suspect:
    """Event (and election input): ``node`` is now suspected to have crashed."""

    node: NodeId


@dataclass(frozen=True, slots=True)
class Trust:
    """Event (and election input): ``node``, once suspected, sent a heartbeat again."""

    node: NodeId


@dataclass(slots=True)
class DetectorOutput:
    """What one step produced: heartbeats to send, then suspicion changes."""

    send: list[tuple[NodeId | Broadcast, Heartbeat]] = field(default_factory=list)
    events: list[Suspect | Trust] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DetectorStatistics:
    """Counters for tests, metrics and the comparison of timeout policies."""

    heartbeats_sent: int
    heartbeats_received: int
    heartbeats_ignored: int
    suspicions: int
    false_suspicions: int
    suspected: frozenset[NodeId]
    timeouts: dict[NodeId, int]


class HeartbeatDetectorBase:
    """What every heartbeat detector shares: sending heartbeats, ordering arrivals by
    ``(epoch, seq)``, suspecting and trusting peers, and the counters.

    Subclasses decide *when* a silent peer is overdue (:meth:`_overdue`), and may learn from
    each fresh arrival (:meth:`_on_arrival`) or from a suspicion that proved false
    (:meth:`_on_false_suspicion`).
    """

    def __init__(self, node_id: NodeId, peers: Iterable[NodeId], heartbeat_ticks: int,
                 epoch: int) -> None:
        self.node_id = node_id
        self.peers: tuple[NodeId, ...] = tuple(sorted(p for p in set(peers) if p != node_id))
        self.heartbeat_ticks = heartbeat_ticks
        self.epoch = epoch
        self.payload = b""
        self._now: int | None = None
        self._seq = 0
        self._last_sent: int | None = None
        self._last_heard: dict[NodeId, int] = {}
        self._last_stamp: dict[NodeId, tuple[int, int]] = {}
        self._last_payload: dict[NodeId, bytes] = {}
        self._peer_set = frozenset(self.peers)
        self._suspected: set[NodeId] = set()
        self._sent = self._received = self._ignored = 0
        self._suspicions = self._false_suspicions = 0

    # -- hooks ----------------------------------------------------------------------------

    def _overdue(self, peer: NodeId, silence: int) -> bool:
        raise NotImplementedError

    def _on_arrival(self, peer: NodeId, now: int) -> None:
        """A fresh heartbeat from ``peer`` arrived at ``now`` (before ``_last_heard`` moves)."""

    def _on_false_suspicion(self, peer: NodeId) -> None:
        """``peer`` was suspected but has spoken again."""

    # -- queries ------------------------------------------------------------------------

    def timeout_of(self, peer: NodeId) -> int:
        """The silence, in ticks, after which ``peer`` would now be suspected."""
        raise NotImplementedError

    def statistics(self) -> DetectorStatistics:
        """Counters, current suspicions and each peer's current timeout."""
        return DetectorStatistics(
            heartbeats_sent=self._sent,
            heartbeats_received=self._received,
            heartbeats_ignored=self._ignored,
            suspicions=self._suspicions,
            false_suspicions=self._false_suspicions,
            suspected=self.suspected(),
            timeouts={p: self.timeout_of(p) for p in self.peers},
        )

    def suspected(self) -> frozenset[NodeId]:
        """Peers currently suspected to have crashed."""
        return frozenset(self._suspected)

    def alive(self) -> frozenset[NodeId]:
        """Peers currently trusted (not suspected)."""
        return frozenset(p for p in self.peers if p not in self._suspected)

    def payload_of(self, peer: NodeId) -> bytes | None:
        """The payload of the freshest heartbeat heard from ``peer`` (None if none yet)."""
        return self._last_payload.get(peer)

    # -- the one entry point ------------------------------------------------------------

    def step(self, event: Tick | Receive) -> DetectorOutput:
        """Feed a tick or a received heartbeat; return heartbeats to send and events.

        A message that is not a :class:`Heartbeat` from a known peer, whose ``sender`` field
        matches the transport sender, is ignored and counted.
        """
        out = DetectorOutput()
        if isinstance(event, Tick):
            self._on_tick(event.now, out)
        elif isinstance(event, Receive):
            self._on_heartbeat(event.sender, event.message, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        self._check_invariants()
        return out

    def _on_tick(self, now: int, out: DetectorOutput) -> None:
        if self._now is None:
            # First tick: every peer gets a full timeout of grace from here.
            for p in self.peers:
                self._last_heard.setdefault(p, now)
        self._now = now if self._now is None else max(self._now, now)
        if self._last_sent is None or self._now - self._last_sent >= self.heartbeat_ticks:
            self._seq += 1
            self._last_sent = self._now
            self._sent += 1
            out.send.append((ALL, Heartbeat(self.node_id, self.epoch, self._seq, self.payload)))
        for p in self.peers:
            if p not in self._suspected and self._overdue(p, self._now - self._last_heard[p]):
                self._suspected.add(p)
                self._suspicions += 1
                out.events.append(Suspect(p))

    def _on_heartbeat(self, sender: NodeId, hb: object, out: DetectorOutput) -> None:
        if not isinstance(hb, Heartbeat) or hb.sender != sender or sender not in self._peer_set:
            self._ignored += 1
            return
        stamp = (hb.epoch, hb.seq)
        if sender in self._last_stamp and stamp <= self._last_stamp[sender]:
            self._ignored += 1  # duplicate or reordered old heartbeat
            return
        now = self._now if self._now is not None else 0
        self._on_arrival(sender, now)
        self._received += 1
        self._last_stamp[sender] = stamp
        self._last_payload[sender] = hb.payload
        self._last_heard[sender] = now
        if sender in self._suspected:
            self._suspected.discard(sender)
            self._false_suspicions += 1
            self._on_false_suspicion(sender)
            out.events.append(Trust(sender))

    def _check_invariants(self) -> None:
        if not self._suspected <= self._peer_set:
            raise ConsensusBug("suspected a node that is not a peer")


class HeartbeatFailureDetector(HeartbeatDetectorBase):
    """Sans-IO heartbeat failure detector (see module docstring).

    Args:
        node_id: this node.
        peers: the other nodes to watch (``node_id`` is ignored if present).
        heartbeat_ticks: ticks between two of our heartbeats.
        timeout_ticks: initial silence, in ticks, after which a peer is suspected.
        timeout_ticks_max: cap of the adaptive timeout.
        adaptive: double a peer's timeout after each false suspicion.
        epoch: our incarnation number (a restarted node should use a larger one).
    """

    def __init__(
        self,
        node_id: NodeId,
        peers: Iterable[NodeId],
        heartbeat_ticks: int,
        timeout_ticks: int,
        timeout_ticks_max: int,
        adaptive: bool = True,
        epoch: int = 0,
    ) -> None:
        if heartbeat_ticks < 1 or timeout_ticks < 1 or timeout_ticks_max < timeout_ticks:
            raise ValueError(
                "need heartbeat_ticks >= 1 and 1 <= timeout_ticks <= timeout_ticks_max"
            )
        super().__init__(node_id, peers, heartbeat_ticks, epoch)
        self.timeout_ticks = timeout_ticks
        self.timeout_ticks_max = timeout_ticks_max
        self.adaptive = adaptive
        self._timeout: dict[NodeId, int] = dict.fromkeys(self.peers, timeout_ticks)

    def timeout_of(self, peer: NodeId) -> int:
        """The current timeout for ``peer``, in ticks."""
        return self._timeout[peer]

    def _overdue(self, peer: NodeId, silence: int) -> bool:
        return silence > self._timeout[peer]

    def _on_false_suspicion(self, peer: NodeId) -> None:
        if self.adaptive:
            self._timeout[peer] = min(self._timeout[peer] * 2, self.timeout_ticks_max)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        for t in self._timeout.values():
            if not self.timeout_ticks <= t <= self.timeout_ticks_max:
                raise ConsensusBug("timeout outside its bounds")
