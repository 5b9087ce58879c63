"""Distributed mutual exclusion (sans-IO): Ricart-Agrawala and Lamport's queue algorithm.

Theory of operation
-------------------
Both cores order requests by ``(lamport_timestamp, node_id)`` -- a total order every node
computes the same way -- and take inputs :class:`Acquire`, :class:`Release` and
``Receive(sender, message)``. The output lists messages (each to one node) and
:class:`Granted` when this node enters its critical section. ::

    RELEASED --Acquire--> WANTED --(permission from everyone)--> HELD --Release--> RELEASED

* :class:`RicartAgrawala` (1981): send ``Request(ts)`` to the ``n-1`` others; a node answers
  ``Reply`` at once unless it holds the section or wants it with an earlier request, in
  which case it defers the reply until it releases. Enter with ``n-1`` replies to *this*
  request (a reply names the request's timestamp, so a stale reply never counts).
  ``2(n-1)`` messages per entry; channels need not be FIFO.
* :class:`LamportMutex` (1978): broadcast ``Request(ts)``; everyone queues it and acks with
  its clock; enter when our request heads the queue and we heard a later-stamped message
  from every other node; ``Release`` is broadcast and dequeues it. ``3(n-1)`` messages per
  entry; needs FIFO channels (a Release must not overtake its Request).

Safety: at most one node holds the section. Liveness (no deadlock, no starvation) holds on
reliable channels with no crashes: requests are served in timestamp order. Neither
algorithm tolerates a crashed node or a lost message -- the simulator's negative controls
show the stall -- so the node uses it only under a plan where everyone is up (the rolling
restart: at most one validator down by plan).

Invariants (checked after every step): a held section implies permission from everyone;
the queue and deferred sets hold members only. A message stamped above
:data:`TIMESTAMP_ACCEPT_MAX` is ignored, so the clock keeps room for our own stamps.

Who calls it: ``phalanx testnet restart --rolling`` (Ricart-Agrawala between validators), the
simulator, tests.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

import rlp
from rlp.sedes import List, big_endian_int

from consensus.contract import ConsensusBug, InvalidMessage, NodeId, Receive

__all__ = [
    "TIMESTAMP_ACCEPT_MAX",
    "Acquire",
    "Granted",
    "LamportMutex",
    "MutexAck",
    "MutexOutput",
    "MutexRelease",
    "MutexReply",
    "MutexRequest",
    "MutexState",
    "MutexStatistics",
    "Release",
    "RicartAgrawala",
    "decode_mutex_message",
]

_UINT64_MAX = (1 << 64) - 1
#: Highest peer timestamp taken into the clock. A stamp above it is ignored: adopting it
#: would leave the clock too little room for our own requests (each must fit a uint64).
TIMESTAMP_ACCEPT_MAX = (1 << 63) - 1
_SEDES = List([big_endian_int, big_endian_int, big_endian_int], strict=True)


@dataclass(frozen=True, slots=True)
class _MutexMessage:
    sender: NodeId
    ts: int

    KIND = 0

    def __post_init__(self) -> None:
        for name in ("sender", "ts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _UINT64_MAX:
                raise InvalidMessage(f"{type(self).__name__}.{name} must be a uint64")

    def encode(self) -> bytes:
        """Canonical RLP: ``[kind, sender, ts]``."""
        data: bytes = rlp.encode([self.KIND, self.sender, self.ts])
        return data


@dataclass(frozen=True, slots=True)
class MutexRequest(_MutexMessage):
    """``sender`` asks for the section with request timestamp ``ts``."""

    KIND = 1


@dataclass(frozen=True, slots=True)
class MutexReply(_MutexMessage):
    """Ricart-Agrawala: permission for ``sender``'s peer's request stamped ``ts``."""

    KIND = 2


@dataclass(frozen=True, slots=True)
class MutexAck(_MutexMessage):
    """Lamport: ``sender`` queued a request; ``ts`` is its clock after doing so."""

    KIND = 3


@dataclass(frozen=True, slots=True)
class MutexRelease(_MutexMessage):
    """Lamport: ``sender`` left the section; ``ts`` is its clock."""

    KIND = 4


MutexMessage = MutexRequest | MutexReply | MutexAck | MutexRelease
_BY_KIND: dict[int, type[MutexMessage]] = {
    c.KIND: c for c in (MutexRequest, MutexReply, MutexAck, MutexRelease)
}


def decode_mutex_message(data: bytes) -> MutexMessage:
    """Decode a mutual-exclusion message strictly.

    Raises:
        InvalidMessage: unknown kind or not the canonical encoding.
    """
    try:
        kind, sender, ts = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
    except (rlp.exceptions.RLPException, TypeError, ValueError) as e:
        raise InvalidMessage(f"mutex message: {e}") from e
    cls = _BY_KIND.get(kind)
    if cls is None:
        raise InvalidMessage(f"mutex message: unknown kind {kind}")
    msg = cls(NodeId(sender), ts)
    if msg.encode() != bytes(data):
        raise InvalidMessage("mutex message: non-canonical encoding")
    return msg


@dataclass(frozen=True, slots=True)
class Acquire:
    """Input: the local application wants the critical section."""


@dataclass(frozen=True, slots=True)
class Release:
    """Input: the local application leaves the critical section."""


@dataclass(frozen=True, slots=True)
class Granted:
    """Event: this node entered the critical section (request stamped ``ts``)."""

    ts: int


class MutexState(enum.Enum):
    RELEASED = "released"
    WANTED = "wanted"
    HELD = "held"


@dataclass(slots=True)
class MutexOutput:
    send: list[tuple[NodeId, MutexMessage]] = field(default_factory=list)
    events: list[Granted] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MutexStatistics:
    state: MutexState
    clock: int
    entries: int
    sent: dict[str, int]
    ignored: int


class _MutexCore:
    """Shared clock, state, counters and dispatch."""

    def __init__(self, node_id: NodeId, members: Iterable[NodeId]) -> None:
        self.members: tuple[NodeId, ...] = tuple(sorted(set(members)))
        if node_id not in self.members:
            raise ValueError("node_id must be a member")
        self.node_id = node_id
        self.peers = tuple(m for m in self.members if m != node_id)
        self.state = MutexState.RELEASED
        self.clock = 0
        self.request_ts: int | None = None
        self._entries = 0
        self._ignored = 0
        self._sent: dict[str, int] = {}

    def statistics(self) -> MutexStatistics:
        return MutexStatistics(self.state, self.clock, self._entries, dict(self._sent),
                               self._ignored)

    def step(self, event: Acquire | Release | Receive) -> MutexOutput:
        """Feed one input; return messages to send and a :class:`Granted` on entry.

        Raises:
            ValueError: ``Acquire`` while not released, or ``Release`` while not held.
        """
        out = MutexOutput()
        if isinstance(event, Acquire):
            if self.state is not MutexState.RELEASED:
                raise ValueError(f"Acquire while {self.state.value}")
            self.clock += 1
            self.request_ts = self.clock
            self.state = MutexState.WANTED
            self._on_acquire(out)
        elif isinstance(event, Release):
            if self.state is not MutexState.HELD:
                raise ValueError(f"Release while {self.state.value}")
            self.state = MutexState.RELEASED
            self._on_release(out)
            self.request_ts = None
        elif isinstance(event, Receive):
            msg = event.message
            if (not isinstance(msg, _MutexMessage) or msg.sender != event.sender
                    or event.sender not in self.peers or msg.ts > TIMESTAMP_ACCEPT_MAX):
                self._ignored += 1
            else:
                self.clock = min(max(self.clock, msg.ts) + 1, _UINT64_MAX)
                self._on_message(event.sender, msg, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        if self.state is MutexState.WANTED and self._may_enter():
            self.state = MutexState.HELD
            self._entries += 1
            assert self.request_ts is not None
            out.events.append(Granted(self.request_ts))
        for _, m in out.send:
            name = type(m).__name__
            self._sent[name] = self._sent.get(name, 0) + 1
        self._check_invariants()
        return out

    def _mine(self) -> tuple[int, int]:
        assert self.request_ts is not None
        return (self.request_ts, self.node_id)

    def _on_acquire(self, out: MutexOutput) -> None:
        raise NotImplementedError

    def _on_release(self, out: MutexOutput) -> None:
        raise NotImplementedError

    def _on_message(self, sender: NodeId, msg: _MutexMessage, out: MutexOutput) -> None:
        raise NotImplementedError

    def _may_enter(self) -> bool:
        raise NotImplementedError

    def _check_invariants(self) -> None:
        if self.state is MutexState.HELD and not self._may_enter():
            raise ConsensusBug("holding the critical section without permission")
        if (self.state is MutexState.RELEASED) != (self.request_ts is None):
            raise ConsensusBug("request timestamp out of step with the state")


class RicartAgrawala(_MutexCore):
    """Ricart-Agrawala mutual exclusion (see the module docstring)."""

    def __init__(self, node_id: NodeId, members: Iterable[NodeId]) -> None:
        super().__init__(node_id, members)
        self.replies: set[NodeId] = set()
        self.deferred: dict[NodeId, int] = {}     # peer -> its request timestamp

    def _on_acquire(self, out: MutexOutput) -> None:
        self.replies = set()
        for p in self.peers:
            out.send.append((p, MutexRequest(self.node_id, self._mine()[0])))

    def _on_release(self, out: MutexOutput) -> None:
        for p in sorted(self.deferred):
            out.send.append((p, MutexReply(self.node_id, self.deferred[p])))
        self.deferred.clear()
        self.replies = set()

    def _on_message(self, sender: NodeId, msg: _MutexMessage, out: MutexOutput) -> None:
        if isinstance(msg, MutexRequest):
            theirs = (msg.ts, sender)
            if self.state is MutexState.HELD or (
                    self.state is MutexState.WANTED and self._mine() < theirs):
                self.deferred[sender] = msg.ts
            else:
                out.send.append((sender, MutexReply(self.node_id, msg.ts)))
        elif isinstance(msg, MutexReply):
            if self.state is MutexState.WANTED and msg.ts == self.request_ts:
                self.replies.add(sender)
            else:
                self._ignored += 1     # stale or duplicate
        else:
            self._ignored += 1

    def _may_enter(self) -> bool:
        return len(self.replies) == len(self.peers)

    def _check_invariants(self) -> None:
        super()._check_invariants()
        if not self.replies <= set(self.peers) or not set(self.deferred) <= set(self.peers):
            raise ConsensusBug("replies or deferred name a non-peer")


class LamportMutex(_MutexCore):
    """Lamport's queue-based mutual exclusion (see the module docstring); FIFO channels."""

    def __init__(self, node_id: NodeId, members: Iterable[NodeId]) -> None:
        super().__init__(node_id, members)
        self.queue: dict[NodeId, int] = {}          # node -> its pending request timestamp
        self.latest: dict[NodeId, int] = {p: 0 for p in self.peers}

    def _on_acquire(self, out: MutexOutput) -> None:
        ts = self._mine()[0]
        self.queue[self.node_id] = ts
        for p in self.peers:
            out.send.append((p, MutexRequest(self.node_id, ts)))

    def _on_release(self, out: MutexOutput) -> None:
        del self.queue[self.node_id]
        self.clock += 1
        for p in self.peers:
            out.send.append((p, MutexRelease(self.node_id, self.clock)))

    def _on_message(self, sender: NodeId, msg: _MutexMessage, out: MutexOutput) -> None:
        self.latest[sender] = max(self.latest[sender], msg.ts)
        if isinstance(msg, MutexRequest):
            self.queue[sender] = msg.ts
            out.send.append((sender, MutexAck(self.node_id, self.clock)))
        elif isinstance(msg, MutexRelease):
            self.queue.pop(sender, None)
        elif not isinstance(msg, MutexAck):
            self._ignored += 1

    def _may_enter(self) -> bool:
        if self.request_ts is None:
            return False
        mine = self._mine()
        head = min((ts, n) for n, ts in self.queue.items())
        return head == mine and all((self.latest[p], p) > mine for p in self.peers)

    def _check_invariants(self) -> None:
        if self.state is MutexState.HELD and self.node_id not in self.queue:
            raise ConsensusBug("holding the critical section without a queued request")
        super()._check_invariants()
        if not set(self.queue) <= set(self.members):
            raise ConsensusBug("queue names a non-member")
