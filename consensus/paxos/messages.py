"""Multi-Paxos wire messages and durable records, with their canonical RLP encoding.

Every message is a frozen dataclass validated in its constructor, with ``encode()``;
:func:`decode_message` is strict (one value, one encoding) and raises
:class:`~consensus.contract.InvalidMessage` for anything else. The wire form is the RLP list
``[kind, sender, *body, signature]``. The signature covers :meth:`PaxosMessage.signed_bytes`,
``rlp([DOMAIN, instance_tag, kind, sender, *body])``, so a message signed for one cluster
(``instance_tag``) is worthless in another.

``Accepted`` additionally carries one *vote* signature per slot over
:func:`vote_bytes` ``(instance_tag, slot, ballot, digest)``: f+1 of those votes are the
commit :class:`~consensus.contract.Certificate` of a slot, checkable without the messages.

Ballots are ``(round, node)`` tuples, ordered lexicographically; a certificate's ``view`` is
the packed ballot ``round * 2**16 + node``.

Who calls it: the Paxos replica, the drivers that put these messages on the wire (they call
``encode()`` and :func:`decode_message`), and the replica's durable records (:mod:`consensus.paxos.records`).
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import rlp

from consensus.contract import InvalidMessage, NodeId
from consensus.election import Answer, Coordinator, Election, decode_election_message
from consensus.failure_detector import Heartbeat, decode_heartbeat
from consensus.paxos._codec import (
    NODE_ID_MAX,
    SIGNATURE_BYTES_MAX,
    _bytes,
    _check_bytes,
    _check_sigs,
    _check_tuple,
    _check_uint,
    _list,
    _sigs,
    _uint,
    rlp_encode,
)

__all__ = [
    "Accept",
    "Accepted",
    "Ballot",
    "CatchUp",
    "Checkpoint",
    "CheckpointProof",
    "Control",
    "Decided",
    "DecidedEntry",
    "Forward",
    "Nack",
    "PaxosMessage",
    "Prepare",
    "Promise",
    "PromiseEntry",
    "Vote",
    "decode_message",
    "digest_of",
    "rlp_encode",
    "vote_bytes",
]

DOMAIN = b"phalanx/paxos/msg/v1"
VOTE_DOMAIN = b"phalanx/paxos/accepted/v1"
MESSAGE_BYTES_MAX = 16 * 1024 * 1024
ROOT_BYTES_MAX = 64


class Ballot(NamedTuple):
    """A Paxos ballot; ``(round, node)`` ordered as a tuple."""

    round: int
    node: int

    @property
    def packed(self) -> int:
        """One integer with the same order (used as a certificate's ``view``)."""
        return self.round * (NODE_ID_MAX + 1) + self.node

    @staticmethod
    def unpack(value: int) -> Ballot:
        return Ballot(value // (NODE_ID_MAX + 1), value % (NODE_ID_MAX + 1))


ZERO_BALLOT = Ballot(0, 0)


def digest_of(value: bytes) -> bytes:
    """The 32-byte digest of a value (SHA-256)."""
    return hashlib.sha256(value).digest()


def vote_bytes(instance_tag: bytes, slot: int, ballot: Ballot, digest: bytes) -> bytes:
    """What an acceptor signs per slot in ``Accepted``: the certificate's signed bytes."""
    data: bytes = rlp_encode([VOTE_DOMAIN, instance_tag, slot, ballot.packed, digest])
    return data


# -- validation helpers -------------------------------------------------------------------


def _check_ballot(name: str, value: object) -> None:
    if not isinstance(value, Ballot):
        raise InvalidMessage(f"{name} must be a Ballot")
    _check_uint(f"{name}.round", value.round)
    _check_uint(f"{name}.node", value.node, NODE_ID_MAX)


# -- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaxosMessage:
    """Base of every message: a sender, a body (the subclass fields), a signature."""

    sender: NodeId

    KIND: ClassVar[int] = 0

    def body(self) -> list[Any]:
        """RLP-ready list of the subclass fields (without sender and signature)."""
        raise NotImplementedError

    def _validate(self) -> None:
        """Subclass hook: raise InvalidMessage for a bad field."""

    def __post_init__(self) -> None:
        _check_uint("sender", self.sender, NODE_ID_MAX)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES_MAX)
        self._validate()

    @property
    def signature(self) -> bytes:  # overridden by the field of each subclass
        raise NotImplementedError

    def signed_bytes(self, instance_tag: bytes) -> bytes:
        """What the sender signs: the domain, the cluster's tag, the kind, sender and body."""
        data: bytes = rlp_encode([DOMAIN, instance_tag, self.KIND, self.sender, *self.body()])
        return data

    def encode(self) -> bytes:
        """Canonical wire bytes ``rlp([kind, sender, *body, signature])``."""
        data: bytes = rlp_encode([self.KIND, self.sender, *self.body(), self.signature])
        return data

    def with_signature(self, signature: bytes) -> Any:
        """A copy carrying ``signature`` (the other fields were validated already)."""
        _check_bytes("signature", signature, SIGNATURE_BYTES_MAX)
        clone = copy.copy(self)
        object.__setattr__(clone, "signature", signature)
        return clone


@dataclass(frozen=True, slots=True)
class Prepare(PaxosMessage):
    """Phase 1a: the leader asks for promises at ``ballot`` for every slot >= ``from_slot``."""

    ballot: Ballot
    from_slot: int
    signature: bytes = b""
    KIND: ClassVar[int] = 1

    def _validate(self) -> None:
        _check_ballot("ballot", self.ballot)
        _check_uint("from_slot", self.from_slot)

    def body(self) -> list[Any]:
        return [list(self.ballot), self.from_slot]


@dataclass(frozen=True, slots=True)
class PromiseEntry:
    """One accepted value reported in a promise."""

    slot: int
    ballot: Ballot
    value: bytes

    def __post_init__(self) -> None:
        _check_uint("slot", self.slot)
        _check_ballot("ballot", self.ballot)
        _check_bytes("value", self.value, MESSAGE_BYTES_MAX)


@dataclass(frozen=True, slots=True)
class Promise(PaxosMessage):
    """Phase 1b: never accept below ``ballot``; here is what I accepted above the leader's
    first unchosen slot, and ``low``, my stable checkpoint (slots <= low are chosen)."""

    ballot: Ballot
    low: int
    entries: tuple[PromiseEntry, ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 2

    def _validate(self) -> None:
        _check_ballot("ballot", self.ballot)
        _check_uint("low", self.low)
        _check_tuple("entries", self.entries, PromiseEntry)

    def body(self) -> list[Any]:
        entries = [[e.slot, list(e.ballot), e.value] for e in self.entries]
        return [list(self.ballot), self.low, entries]


@dataclass(frozen=True, slots=True)
class Nack(PaxosMessage):
    """Refusal of ``ballot``: the sender already promised the higher ``promised``."""

    ballot: Ballot
    promised: Ballot
    signature: bytes = b""
    KIND: ClassVar[int] = 3

    def _validate(self) -> None:
        _check_ballot("ballot", self.ballot)
        _check_ballot("promised", self.promised)

    def body(self) -> list[Any]:
        return [list(self.ballot), list(self.promised)]


@dataclass(frozen=True, slots=True)
class Accept(PaxosMessage):
    """Phase 2a, batched: accept each ``(slot, value)`` at ``ballot``."""

    ballot: Ballot
    entries: tuple[tuple[int, bytes], ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 4

    def _validate(self) -> None:
        _check_ballot("ballot", self.ballot)
        _check_tuple("entries", self.entries, tuple)
        for entry in self.entries:
            if len(entry) != 2:
                raise InvalidMessage("Accept entries are (slot, value) pairs")
            _check_uint("slot", entry[0])
            _check_bytes("value", entry[1], MESSAGE_BYTES_MAX)

    def body(self) -> list[Any]:
        return [list(self.ballot), [list(e) for e in self.entries]]


@dataclass(frozen=True, slots=True)
class Vote:
    """One slot of an ``Accepted``: the digest accepted and the signature over vote_bytes."""

    slot: int
    digest: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_uint("slot", self.slot)
        if not isinstance(self.digest, bytes) or len(self.digest) != 32:
            raise InvalidMessage("digest must be 32 bytes")
        _check_bytes("vote signature", self.signature, SIGNATURE_BYTES_MAX)


@dataclass(frozen=True, slots=True)
class Accepted(PaxosMessage):
    """Phase 2b, batched: the sender accepted these slots at ``ballot``."""

    ballot: Ballot
    votes: tuple[Vote, ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 5

    def _validate(self) -> None:
        _check_ballot("ballot", self.ballot)
        _check_tuple("votes", self.votes, Vote)

    def body(self) -> list[Any]:
        return [list(self.ballot), [[v.slot, v.digest, v.signature] for v in self.votes]]


@dataclass(frozen=True, slots=True)
class DecidedEntry:
    """A chosen value with its proof: f+1 vote signatures at ``ballot``."""

    slot: int
    ballot: Ballot
    value: bytes
    signatures: tuple[tuple[int, bytes], ...]

    def __post_init__(self) -> None:
        _check_uint("slot", self.slot)
        _check_ballot("ballot", self.ballot)
        _check_bytes("value", self.value, MESSAGE_BYTES_MAX)
        _check_sigs("signatures", self.signatures)


@dataclass(frozen=True, slots=True)
class Decided(PaxosMessage):
    """Learn: these slots are chosen (sent by the leader, and in answer to CatchUp)."""

    entries: tuple[DecidedEntry, ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 6

    def _validate(self) -> None:
        _check_tuple("entries", self.entries, DecidedEntry)

    def body(self) -> list[Any]:
        return [
            [
                [e.slot, list(e.ballot), e.value, [list(s) for s in e.signatures]]
                for e in self.entries
            ]
        ]


@dataclass(frozen=True, slots=True)
class CatchUp(PaxosMessage):
    """A lagging replica asks for the chosen values from ``from_slot`` on."""

    from_slot: int
    signature: bytes = b""
    KIND: ClassVar[int] = 7

    def _validate(self) -> None:
        _check_uint("from_slot", self.from_slot)

    def body(self) -> list[Any]:
        return [self.from_slot]


@dataclass(frozen=True, slots=True)
class Forward(PaxosMessage):
    """Values proposed at a non-leader, handed to the leader. ``nonce`` (random) lets the
    leader drop a duplicated copy of the same Forward."""

    nonce: int
    values: tuple[bytes, ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 8

    def _validate(self) -> None:
        _check_uint("nonce", self.nonce)
        _check_tuple("values", self.values, bytes)
        for v in self.values:
            _check_bytes("value", v, MESSAGE_BYTES_MAX)

    def body(self) -> list[Any]:
        return [self.nonce, list(self.values)]


@dataclass(frozen=True, slots=True)
class Checkpoint(PaxosMessage):
    """The sender executed every slot up to ``seq`` and reached ``root``."""

    seq: int
    root: bytes
    signature: bytes = b""
    KIND: ClassVar[int] = 9

    def _validate(self) -> None:
        _check_uint("seq", self.seq)
        _check_bytes("root", self.root, ROOT_BYTES_MAX)

    def body(self) -> list[Any]:
        return [self.seq, self.root]


@dataclass(frozen=True, slots=True)
class CheckpointProof(PaxosMessage):
    """A stable checkpoint relayed: ``votes`` are the ``(node, signature)`` of f+1
    ``Checkpoint(seq, root)`` messages (each one re-checkable)."""

    seq: int
    root: bytes
    votes: tuple[tuple[int, bytes], ...]
    signature: bytes = b""
    KIND: ClassVar[int] = 10

    def _validate(self) -> None:
        _check_uint("seq", self.seq)
        _check_bytes("root", self.root, ROOT_BYTES_MAX)
        _check_sigs("votes", self.votes)

    def body(self) -> list[Any]:
        return [self.seq, self.root, [list(v) for v in self.votes]]


@dataclass(frozen=True, slots=True)
class Control(PaxosMessage):
    """A failure-detector heartbeat or a bully-election message, signed like the rest."""

    inner: Heartbeat | Election | Answer | Coordinator
    signature: bytes = b""
    KIND: ClassVar[int] = 11

    def _validate(self) -> None:
        if not isinstance(self.inner, Heartbeat | Election | Answer | Coordinator):
            raise InvalidMessage("Control carries a heartbeat or an election message")
        if self.inner.sender != self.sender:
            raise InvalidMessage("Control inner sender differs from the sender")

    def body(self) -> list[Any]:
        return [0 if isinstance(self.inner, Heartbeat) else 1, self.inner.encode()]


# -- decoding -----------------------------------------------------------------------------


def _ballot(item: Any) -> Ballot:
    r, n = _list(item, 2)
    return Ballot(_uint(r), _uint(n))


def _control_inner(kind: int, data: bytes) -> Heartbeat | Election | Answer | Coordinator:
    if kind == 0:
        return decode_heartbeat(data)
    if kind == 1:
        return decode_election_message(data)
    raise InvalidMessage(f"unknown Control kind {kind}")


_ARITY = {1: 2, 2: 3, 3: 2, 4: 2, 5: 2, 6: 1, 7: 1, 8: 2, 9: 2, 10: 3, 11: 2}


def _build(kind: int, sender: NodeId, body: list[Any], sig: bytes) -> PaxosMessage:
    if kind == Prepare.KIND:
        return Prepare(sender, _ballot(body[0]), _uint(body[1]), sig)
    if kind == Promise.KIND:
        entries = tuple(
            PromiseEntry(_uint(s), _ballot(b), _bytes(v))
            for s, b, v in (_list(e, 3) for e in _list(body[2]))
        )
        return Promise(sender, _ballot(body[0]), _uint(body[1]), entries, sig)
    if kind == Nack.KIND:
        return Nack(sender, _ballot(body[0]), _ballot(body[1]), sig)
    if kind == Accept.KIND:
        pairs = tuple((_uint(s), _bytes(v)) for s, v in (_list(e, 2) for e in _list(body[1])))
        return Accept(sender, _ballot(body[0]), pairs, sig)
    if kind == Accepted.KIND:
        votes = tuple(
            Vote(_uint(s), _bytes(d), _bytes(g))
            for s, d, g in (_list(e, 3) for e in _list(body[1]))
        )
        return Accepted(sender, _ballot(body[0]), votes, sig)
    if kind == Decided.KIND:
        decided = tuple(
            DecidedEntry(_uint(s), _ballot(b), _bytes(v), _sigs(g))
            for s, b, v, g in (_list(e, 4) for e in _list(body[0]))
        )
        return Decided(sender, decided, sig)
    if kind == CatchUp.KIND:
        return CatchUp(sender, _uint(body[0]), sig)
    if kind == Forward.KIND:
        return Forward(sender, _uint(body[0]), tuple(_bytes(v) for v in _list(body[1])), sig)
    if kind == Checkpoint.KIND:
        return Checkpoint(sender, _uint(body[0]), _bytes(body[1]), sig)
    if kind == CheckpointProof.KIND:
        return CheckpointProof(sender, _uint(body[0]), _bytes(body[1]), _sigs(body[2]), sig)
    if kind == Control.KIND:
        return Control(sender, _control_inner(_uint(body[0]), _bytes(body[1])), sig)
    raise InvalidMessage(f"unknown message kind {kind}")


def decode_message(data: bytes) -> PaxosMessage:
    """Decode one Paxos message strictly.

    Args:
        data: wire bytes, exactly one canonical RLP list.

    Returns:
        The message (its signature is *not* checked here; the replica does that).

    Raises:
        InvalidMessage: malformed, non-canonical, unknown kind, or an invalid field.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidMessage("expected bytes")
    data = bytes(data)
    if len(data) > MESSAGE_BYTES_MAX:
        raise InvalidMessage("message too large")
    try:
        raw = rlp.decode(data, strict=True)
    except (rlp.exceptions.RLPException, RecursionError) as e:
        raise InvalidMessage(f"bad RLP: {e}") from e
    items = _list(raw)
    if len(items) < 3:
        raise InvalidMessage("message too short")
    kind = _uint(items[0])
    sender = NodeId(_uint(items[1]))
    arity = _ARITY.get(kind)
    if arity is None:
        raise InvalidMessage(f"unknown message kind {kind}")
    if len(items) != arity + 3:
        raise InvalidMessage(f"kind {kind} takes {arity} body fields")
    # Strict RLP (minimal lengths, no single byte behind a prefix) plus minimal integers in
    # `_uint` leave one encoding per message, so no re-encoding check is needed here; the
    # tests check encode(decode(b)) == b over random inputs.
    return _build(kind, sender, items[2:-1], _bytes(items[-1]))
