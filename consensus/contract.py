"""The engine contract: what every sans-IO protocol core takes and gives.

Theory of operation
-------------------
A core is a plain object with one entry point, ``step(input) -> Output``. Inputs are

* ``Receive(sender, message)`` -- a message from a peer (already decoded, maybe forged);
* ``Tick(now)``                -- the driver's clock, in integer ticks;
* ``Propose(value)``           -- the local application offers a value (a block) to order;
* ``Applied(seq, state_root)`` -- the application executed the value delivered at ``seq``.

The returned :class:`Output` is one batch the driver executes *in this order*:

1. ``persist``  -- records to make durable first (own votes, view, checkpoints);
2. ``send``     -- then messages to put on the wire, each to one node or to :data:`ALL`;
3. ``deliver``  -- then committed values, in sequence order, with their certificates;
4. ``evidence`` -- proof that a peer misbehaved (two conflicting signed messages);
5. ``wants``    -- requests to the driver (for example: fetch state at a stable checkpoint).

Cores never await, sleep, read the wall clock, open sockets, touch the disk, or use global
randomness: time is ``Tick``, randomness is an injected ``random.Random``, and signatures go
through an injected :class:`Signer` / :class:`Verifier`. The same core therefore runs under
the Trio node and under the deterministic simulator.

A bad message from a peer is *input*: the core drops it, counts it in ``statistics()`` and
may turn it into evidence. A broken invariant of our own is a bug: the core raises
:class:`ConsensusBug`, which must crash the replica.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NewType, Protocol, runtime_checkable

__all__ = [
    "ALL",
    "Applied",
    "Broadcast",
    "Certificate",
    "ConsensusBug",
    "ConsensusError",
    "Delivery",
    "Engine",
    "Evidence",
    "Input",
    "InvalidMessage",
    "Message",
    "NodeId",
    "Output",
    "Propose",
    "Receive",
    "Seq",
    "Signer",
    "StateWanted",
    "Tick",
    "Validity",
    "Verifier",
    "View",
    "Want",
    "max_faulty",
    "quorum_size",
]

NodeId = NewType("NodeId", int)
View = NewType("View", int)
Seq = NewType("Seq", int)


class ConsensusError(Exception):
    """Base of the deliberate errors raised by consensus code."""


class InvalidMessage(ConsensusError):
    """Raised while decoding or validating a peer's message; the caller drops the message."""


class ConsensusBug(ConsensusError):
    """Raised when one of our own invariants breaks. Never caught: the replica must stop."""


class Broadcast(enum.Enum):
    """Destination meaning "every other replica"."""

    ALL = "all"


ALL = Broadcast.ALL


class Message(Protocol):
    """A consensus message: an immutable value with a canonical encoding.

    Every engine defines its own message classes (frozen dataclasses) with ``encode()`` and
    a module-level ``decode_message(bytes)`` that raises :class:`InvalidMessage`.
    """

    def encode(self) -> bytes: ...


@runtime_checkable
class Signer(Protocol):
    """Signs bytes with this replica's key. Deterministic (Ed25519 in nodes)."""

    @property
    def node_id(self) -> NodeId: ...

    def sign(self, data: bytes) -> bytes: ...


@runtime_checkable
class Verifier(Protocol):
    """Checks a replica's signature over bytes. Never raises for a bad signature."""

    def verify(self, node: NodeId, data: bytes, signature: bytes) -> bool: ...


#: Application check of a proposed value; False makes honest replicas refuse to vote for it.
Validity = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class Receive:
    sender: NodeId
    message: Any


@dataclass(frozen=True, slots=True)
class Tick:
    now: int


@dataclass(frozen=True, slots=True)
class Propose:
    value: bytes


@dataclass(frozen=True, slots=True)
class Applied:
    seq: int
    state_root: bytes


Input = Receive | Tick | Propose | Applied


@dataclass(frozen=True, slots=True)
class Certificate:
    """Proof that ``digest`` was committed at ``seq``: a quorum of signed commit votes.

    ``signatures`` holds ``(node, signature)`` pairs sorted by node, one per node; each
    signature covers ``signed_bytes`` as defined by the engine that produced it (the engine
    exposes ``verify_certificate`` for checkers and for catch-up).
    """

    seq: int
    view: int
    digest: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def signers(self) -> tuple[int, ...]:
        return tuple(node for node, _ in self.signatures)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A committed value at ``seq``. ``value`` is ``b""`` for a null request (gap fill)."""

    seq: int
    value: bytes
    certificate: Certificate


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two messages signed by ``offender`` that no honest replica would both sign."""

    offender: NodeId
    kind: str
    first: Any
    second: Any


@dataclass(frozen=True, slots=True)
class StateWanted:
    """The replica fell behind a stable checkpoint: fetch the state at ``seq``.

    ``proof`` is the quorum of signed checkpoint messages that makes ``state_root`` stable.
    After installing the state, the driver feeds ``Applied(seq, state_root)``.
    """

    seq: int
    state_root: bytes
    proof: tuple[Any, ...]


Want = StateWanted


@dataclass(slots=True)
class Output:
    """One batch of effects; the driver executes the fields in declaration order."""

    persist: list[Any] = field(default_factory=list)
    send: list[tuple[NodeId | Broadcast, Any]] = field(default_factory=list)
    deliver: list[Delivery] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    wants: list[Want] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.persist.extend(other.persist)
        self.send.extend(other.send)
        self.deliver.extend(other.deliver)
        self.evidence.extend(other.evidence)
        self.wants.extend(other.wants)

    def is_empty(self) -> bool:
        return not (self.persist or self.send or self.deliver or self.evidence or self.wants)


class Engine(Protocol):
    """What drivers (the node, the simulator, Byzantine wrappers) rely on."""

    node_id: NodeId

    def step(self, event: Input) -> Output: ...

    def restore(self, records: Sequence[Any]) -> None:
        """Rebuild state from the records this replica persisted before a crash.

        Called once on a fresh engine, before any ``step``.
        """
        ...

    def statistics(self) -> Any: ...


def max_faulty(n: int, *, byzantine: bool = True) -> int:
    """Largest ``f`` tolerated by ``n`` replicas: ``(n-1)//3`` (Byzantine) or ``(n-1)//2``."""
    if n < 1:
        raise ValueError("need at least one replica")
    return (n - 1) // 3 if byzantine else (n - 1) // 2


def quorum_size(n: int, *, byzantine: bool = True) -> int:
    """Votes needed for a quorum: ``2f+1`` of ``3f+1`` generalised so any two quorums
    intersect in an honest replica (Byzantine), or a strict majority (crash-only).

    For Byzantine ``n`` not of the form ``3f+1`` we use ``ceil((n + f + 1) / 2)``.
    """
    if byzantine:
        f = max_faulty(n)
        return (n + f) // 2 + 1
    return n // 2 + 1
