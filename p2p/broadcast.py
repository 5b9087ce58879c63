"""Broadcast cores (sans-IO): best-effort, Bracha's Byzantine reliable, and causal broadcast.

Theory of operation
-------------------
Every core has one entry point, ``step(input) -> BroadcastOutput``. Inputs are
:class:`Originate` (the local application broadcasts a payload) and :class:`Incoming` (a
message from a peer, as the authenticated transport saw it). The output lists messages to
send, each to one peer, then payloads to deliver, in order. Links are assumed reliable and
authenticated (the p2p session gives both); they may delay, duplicate and reorder.

* :class:`BestEffortBroadcast` -- send to everyone, deliver what arrives (once). No
  agreement if the origin crashes mid-way.
* :class:`BrachaBroadcast` -- Byzantine reliable broadcast for ``n >= 3f + 1``::

      origin: SEND(v) to all
      on SEND(v) from the origin, first time:               ECHO(v) to all
      on ceil((n+f+1)/2) ECHO(v), or f+1 READY(v), first:    READY(v) to all
      on 2f+1 READY(v):                                      deliver v

  Properties (with at most ``f`` Byzantine nodes): *validity* (an honest origin's value is
  delivered by every honest node), *agreement* (no two honest nodes deliver different
  values for one ``(origin, seq)``), *integrity* (at most one delivery per ``(origin, seq)``,
  and for an honest origin only what it sent), *totality* (if one honest node delivers, all
  do). Each peer counts once per instance and phase, whatever it votes.
* :class:`CausalBroadcast` -- Birman-Schiper-Stephenson: a message carries the vector of
  per-origin delivery counts of its origin (its own entry counting this message). A
  receiver holds it back until it delivered everything the origin had delivered before and
  the origin's previous messages; so delivery respects happens-before, and in particular
  one origin's messages are delivered in the order sent (a sender's transactions in nonce
  order).

Bounds: ``payload_bytes_max`` per message, ``instances_max`` Bracha instances kept, as
per-origin windows of ``window_seqs <= instances_max // n`` seqs (delivered prefixes are
forgotten), so no origin, and no peer's messages about other origins, can fill the table,
``holdback_max`` held-back causal messages (at most ``holdback_per_origin_max`` of one
origin), ``seen_max`` best-effort ids remembered. A peer's message that breaks a bound or a
rule is dropped and counted in ``statistics()``; our own broken invariant raises
``AssertionError``.

Messages and their codec live in :mod:`p2p.broadcast_messages` (re-exported here).

Who calls it: the node's evidence and transaction paths (reliable broadcast of evidence,
causal delivery of a sender's transactions) and the simulator (``testnet.sim.algos``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from p2p.broadcast_messages import (
    PAYLOAD_BYTES_MAX,
    BroadcastMessage,
    CausalMessage,
    InvalidBroadcastMessage,
    Kind,
    PlainMessage,
    decode_broadcast_message,
)
from p2p.clocks import VectorStamp
from p2p.messages import PeerId

__all__ = [
    "PAYLOAD_BYTES_MAX",
    "BestEffortBroadcast",
    "BrachaBroadcast",
    "BroadcastMessage",
    "BroadcastOutput",
    "BroadcastStatistics",
    "CausalBroadcast",
    "CausalMessage",
    "Delivered",
    "Incoming",
    "InvalidBroadcastMessage",
    "Kind",
    "Originate",
    "PlainMessage",
    "decode_broadcast_message",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Originate:
    """Input: the local application broadcasts ``payload``."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Incoming:
    """Input: ``message`` arrived from ``sender`` (the authenticated transport peer)."""

    sender: PeerId
    message: object


@dataclass(frozen=True, slots=True)
class Delivered:
    """Output: deliver ``payload``, the ``seq``-th broadcast of ``origin``."""

    origin: PeerId
    seq: int
    payload: bytes


@dataclass(slots=True)
class BroadcastOutput:
    """Messages to send (each to one peer), then payloads to deliver in order."""

    send: list[tuple[PeerId, BroadcastMessage]] = field(default_factory=list)
    deliver: list[Delivered] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BroadcastStatistics:
    sent: int
    delivered: int
    dropped: int
    pending: int     # Bracha: undelivered instances; causal: held-back messages


class _Core:
    """Shared membership, counters and the ``step`` dispatch."""

    def __init__(self, node: PeerId, members: Iterable[PeerId],
                 payload_bytes_max: int = PAYLOAD_BYTES_MAX) -> None:
        self.members: tuple[PeerId, ...] = tuple(sorted(set(members)))
        if node not in self.members:
            raise ValueError("node must be a member")
        if not 0 < payload_bytes_max <= PAYLOAD_BYTES_MAX:
            raise ValueError("payload_bytes_max out of range")
        self.node = node
        self.payload_bytes_max = payload_bytes_max
        self.peers = tuple(m for m in self.members if m != node)
        self._sent = 0
        self._delivered = 0
        self._dropped = 0
        self._next_seq = 0

    def step(self, event: Originate | Incoming) -> BroadcastOutput:
        """Feed one input; return sends and deliveries (see the module docstring)."""
        out = BroadcastOutput()
        if isinstance(event, Originate):
            if len(event.payload) > self.payload_bytes_max:
                raise ValueError("payload exceeds payload_bytes_max")
            self._originate(event.payload, out)
        elif isinstance(event, Incoming):
            if event.sender not in self.peers:
                self._drop(event.sender, "not a peer")
            else:
                self._incoming(event.sender, event.message, out)
        else:
            raise TypeError(f"unexpected input {event!r}")
        self._sent += len(out.send)
        self._delivered += len(out.deliver)
        self._check_invariants()
        return out

    def statistics(self) -> BroadcastStatistics:
        return BroadcastStatistics(self._sent, self._delivered, self._dropped, self._pending())

    def _to_all(self, out: BroadcastOutput, msg: BroadcastMessage) -> None:
        out.send.extend((p, msg) for p in self.peers)

    def _drop(self, sender: PeerId, why: str) -> None:
        self._dropped += 1
        log.warning("broadcast: dropped a message from %s: %s", sender, why)

    def _originate(self, payload: bytes, out: BroadcastOutput) -> None:
        raise NotImplementedError

    def _incoming(self, sender: PeerId, msg: object, out: BroadcastOutput) -> None:
        raise NotImplementedError

    def _pending(self) -> int:
        return 0

    def _check_invariants(self) -> None:
        pass


class BestEffortBroadcast(_Core):
    """Send to every peer; deliver each ``(origin, seq)`` once (``seen_max`` remembered)."""

    def __init__(self, node: PeerId, members: Iterable[PeerId], seen_max: int = 65536) -> None:
        super().__init__(node, members)
        self.seen_max = seen_max
        self._seen: dict[tuple[int, int], None] = {}

    def _originate(self, payload: bytes, out: BroadcastOutput) -> None:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        self._to_all(out, PlainMessage(Kind.PLAIN, self.node, seq, payload))
        out.deliver.append(Delivered(self.node, seq, payload))

    def _incoming(self, sender: PeerId, msg: object, out: BroadcastOutput) -> None:
        if not isinstance(msg, PlainMessage) or msg.kind is not Kind.PLAIN or msg.origin != sender:
            self._drop(sender, "not a best-effort message from its origin")
            return
        key = (msg.origin, msg.seq)
        if key in self._seen:
            return
        self._seen[key] = None
        if len(self._seen) > self.seen_max:
            del self._seen[next(iter(self._seen))]
        out.deliver.append(Delivered(msg.origin, msg.seq, msg.payload))


@dataclass(slots=True)
class _Instance:
    echoed: bool = False
    readied: bool = False
    delivered: bool = False
    echo_from: dict[PeerId, bytes] = field(default_factory=dict)
    ready_from: dict[PeerId, bytes] = field(default_factory=dict)

    def count(self, votes: dict[PeerId, bytes], value: bytes) -> int:
        return sum(1 for v in votes.values() if v == value)


class BrachaBroadcast(_Core):
    """Bracha's reliable broadcast (see the module docstring).

    Args:
        node: this node.
        members: all ``n`` nodes, this one included; requires ``n >= 3f + 1``.
        f: Byzantine nodes tolerated.
        instances_max: ``(origin, seq)`` instances kept in all.
        window_seqs: per origin, instances are accepted only for the ``window_seqs`` seqs
            from the first one not yet delivered; delivered instances below that point are
            forgotten (their late messages are ignored), so memory stays bounded. The window
            is clamped to an equal share of the table, ``instances_max // n``, so the
            windows of all origins together fit in ``instances_max``: one Byzantine peer
            (opening instances for every origin with junk echoes, or never completing its
            own broadcasts) can occupy at most its own origin's share plus instances that
            honest origins' real broadcasts then use. The table can never be full, and an
            honest origin always has room for its next ``window_seqs`` broadcasts.
    """

    def __init__(self, node: PeerId, members: Iterable[PeerId], f: int,
                 instances_max: int = 4096, payload_bytes_max: int = PAYLOAD_BYTES_MAX,
                 window_seqs: int = 256) -> None:
        super().__init__(node, members, payload_bytes_max)
        n = len(self.members)
        if f < 0 or n < 3 * f + 1:
            raise ValueError(f"Bracha broadcast needs n >= 3f + 1 (n={n}, f={f})")
        self.f = f
        self.echo_quorum = (n + f) // 2 + 1        # ceil((n + f + 1) / 2)
        self.ready_quorum = 2 * f + 1
        if window_seqs < 1 or instances_max < n:
            raise ValueError("window_seqs must be >= 1 and instances_max >= n")
        self.instances_max = instances_max
        self.window_seqs = min(window_seqs, instances_max // n)
        self._instances: dict[tuple[PeerId, int], _Instance] = {}
        self._done_below: dict[PeerId, int] = {}     # origin -> every seq below delivered

    def _instance(self, sender: PeerId, origin: PeerId, seq: int) -> _Instance | None:
        low = self._done_below.get(origin, 0)
        if seq < low:
            return None               # delivered and forgotten: a late message
        key = (origin, seq)
        inst = self._instances.get(key)
        if inst is None:
            if seq >= low + self.window_seqs:
                self._drop(sender, f"seq {seq} beyond the window of origin {origin}")
                return None
            inst = self._instances[key] = _Instance()
        return inst

    def _forget_delivered(self, origin: PeerId) -> None:
        low = self._done_below.get(origin, 0)
        while (inst := self._instances.get((origin, low))) is not None and inst.delivered:
            del self._instances[(origin, low)]
            low += 1
        self._done_below[origin] = low

    def _originate(self, payload: bytes, out: BroadcastOutput) -> None:
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        msg = PlainMessage(Kind.SEND, self.node, seq, payload)
        self._to_all(out, msg)
        self.on_send(self.node, msg, out)

    def _incoming(self, sender: PeerId, msg: object, out: BroadcastOutput) -> None:
        if not isinstance(msg, PlainMessage) or msg.origin not in self.members:
            self._drop(sender, "not a Bracha message about a member")
        elif len(msg.payload) > self.payload_bytes_max:
            self._drop(sender, "payload too large")
        elif msg.kind is Kind.SEND:
            if msg.origin != sender:
                self._drop(sender, "SEND relayed by a non-origin")
            else:
                self.on_send(sender, msg, out)
        elif msg.kind is Kind.ECHO:
            self.on_echo(sender, msg, out)
        elif msg.kind is Kind.READY:
            self.on_ready(sender, msg, out)
        else:
            self._drop(sender, f"kind {msg.kind.name} is not Bracha")

    def on_send(self, sender: PeerId, msg: PlainMessage, out: BroadcastOutput) -> None:
        inst = self._instance(sender, msg.origin, msg.seq)
        if inst is not None and not inst.echoed:
            inst.echoed = True
            echo = PlainMessage(Kind.ECHO, msg.origin, msg.seq, msg.payload)
            self._to_all(out, echo)
            self.on_echo(self.node, echo, out)

    def on_echo(self, sender: PeerId, msg: PlainMessage, out: BroadcastOutput) -> None:
        inst = self._instance(sender, msg.origin, msg.seq)
        if inst is None:
            return
        if sender in inst.echo_from:
            return      # one echo per peer and instance (duplicates, equivocation)
        inst.echo_from[sender] = msg.payload
        if inst.count(inst.echo_from, msg.payload) >= self.echo_quorum:
            self._ready(inst, msg, out)

    def on_ready(self, sender: PeerId, msg: PlainMessage, out: BroadcastOutput) -> None:
        inst = self._instance(sender, msg.origin, msg.seq)
        if inst is None:
            return
        if sender in inst.ready_from:
            return
        inst.ready_from[sender] = msg.payload
        votes = inst.count(inst.ready_from, msg.payload)
        if votes >= self.f + 1:
            self._ready(inst, msg, out)
        if votes >= self.ready_quorum and not inst.delivered:
            inst.delivered = True
            out.deliver.append(Delivered(msg.origin, msg.seq, msg.payload))
            self._forget_delivered(msg.origin)

    def _ready(self, inst: _Instance, msg: PlainMessage, out: BroadcastOutput) -> None:
        if inst.readied:
            return
        inst.readied = True
        ready = PlainMessage(Kind.READY, msg.origin, msg.seq, msg.payload)
        self._to_all(out, ready)
        self.on_ready(self.node, ready, out)

    def _pending(self) -> int:
        return sum(1 for i in self._instances.values() if not i.delivered)

    def _check_invariants(self) -> None:
        assert len(self._instances) <= len(self.members) * self.window_seqs <= self.instances_max, \
            "instance bound broken"
        for origin, low in self._done_below.items():
            assert (origin, low - 1) not in self._instances, "delivered instance kept"


class CausalBroadcast(_Core):
    """Causal broadcast with a bounded hold-back queue (see the module docstring).

    Args:
        node: this node.
        members: all nodes, this one included.
        holdback_max: held-back messages kept; a message beyond it is dropped and counted
            (a gap that the sender's retransmission or a resync must fill).
        holdback_per_origin_max: held-back messages kept per origin (default: an equal
            share of ``holdback_max`` per peer), so one faulty peer sending messages that
            never become deliverable cannot take the queue from the others.
    """

    def __init__(self, node: PeerId, members: Iterable[PeerId], holdback_max: int = 1024,
                 payload_bytes_max: int = PAYLOAD_BYTES_MAX,
                 holdback_per_origin_max: int | None = None) -> None:
        super().__init__(node, members, payload_bytes_max)
        self.holdback_max = holdback_max
        if holdback_per_origin_max is None:
            holdback_per_origin_max = max(1, holdback_max // max(1, len(self.peers)))
        if holdback_per_origin_max < 1:
            raise ValueError("holdback_per_origin_max must be >= 1")
        self.holdback_per_origin_max = holdback_per_origin_max
        self._held_from: dict[int, int] = {}           # origin -> its held-back messages
        self._delivered_from: dict[int, int] = {}      # origin -> messages delivered
        self._holdback: dict[tuple[int, int], CausalMessage] = {}

    @property
    def vector(self) -> VectorStamp:
        """Per-origin delivery counts (this node's own broadcasts included)."""
        return VectorStamp.of(self._delivered_from)

    def held_back(self) -> int:
        return len(self._holdback)

    def _originate(self, payload: bytes, out: BroadcastOutput) -> None:
        seq = self._delivered_from.get(self.node, 0) + 1
        self._delivered_from[self.node] = seq
        msg = CausalMessage(self.node, VectorStamp.of(self._delivered_from), payload)
        self._to_all(out, msg)
        out.deliver.append(Delivered(self.node, seq, payload))

    def _incoming(self, sender: PeerId, msg: object, out: BroadcastOutput) -> None:
        if not isinstance(msg, CausalMessage) or msg.origin != sender:
            self._drop(sender, "not a causal message from its origin")
            return
        if len(msg.payload) > self.payload_bytes_max:
            self._drop(sender, "payload too large")
            return
        if any(n not in self.members for n, _ in msg.stamp.entries):
            self._drop(sender, "stamp names a non-member")
            return
        key = (msg.origin, msg.seq)
        if msg.seq <= self._delivered_from.get(msg.origin, 0) or key in self._holdback:
            return      # a duplicate
        if len(self._holdback) >= self.holdback_max:
            self._drop(sender, "hold-back queue full")
            return
        held = self._held_from.get(msg.origin, 0)
        if held >= self.holdback_per_origin_max:
            self._drop(sender, "hold-back share of this origin full")
            return
        self._held_from[msg.origin] = held + 1
        self._holdback[key] = msg
        self._drain(out)

    def deliverable(self, msg: CausalMessage) -> bool:
        """True when every message ``msg`` causally depends on has been delivered here."""
        mine = self._delivered_from
        for node, count in msg.stamp.entries:
            have = mine.get(node, 0)
            if node == msg.origin:
                if count != have + 1:
                    return False
            elif count > have:
                return False
        return True

    def _drain(self, out: BroadcastOutput) -> None:
        progress = True
        while progress:
            progress = False
            for key in sorted(self._holdback):
                msg = self._holdback[key]
                if self.deliverable(msg):
                    del self._holdback[key]
                    left = self._held_from[msg.origin] - 1
                    if left:
                        self._held_from[msg.origin] = left
                    else:
                        del self._held_from[msg.origin]
                    self._delivered_from[msg.origin] = msg.seq
                    out.deliver.append(Delivered(msg.origin, msg.seq, msg.payload))
                    progress = True

    def _pending(self) -> int:
        return len(self._holdback)

    def _check_invariants(self) -> None:
        assert len(self._holdback) <= self.holdback_max, "hold-back bound broken"
        assert sum(self._held_from.values()) == len(self._holdback), "hold-back counts broken"
