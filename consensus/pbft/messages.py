"""PBFT wire messages and persisted records: frozen dataclasses with canonical RLP.

Every message carries ``sender`` and ``signature``. The signature covers
``DOMAIN_TAG + signing_bytes(instance_tag)``, where ``signing_bytes`` is the RLP list
``[instance_tag, kind, body, sender]`` -- so a signature made for one chain (instance) or one
message kind never verifies for another. ``encode()`` is the RLP list
``[kind, body, sender, signature]``; :func:`decode_message` is strict (one value, one
encoding; bounded sizes and counts) and raises :class:`InvalidMessage` on anything else.

Kinds (normal case, checkpoints, view change, catch-up):

    PrePrepare(view, seq, digest, value)    primary assigns value to seq in view
    Prepare(view, seq, digest)              backup accepted that pre-prepare
    Commit(view, seq, digest)               replica is prepared
    Checkpoint(seq, state_root)             state after executing seq (every K)
    ViewChange(new_view, stable_seq, checkpoint_proof, prepared)
    NewView(view, view_changes, pre_prepares)
    Request(value)                          a backup forwards a proposal to the primary
    Status(view, last_executed, stable_seq) periodic; peers ahead answer with proofs
    CommittedProof(seq, value, commits)     a value with a quorum of signed commits

Records (persisted, never sent alone): :class:`PreparedCert` (a pre-prepare with its
matching prepares) and :class:`CheckpointProof` (a quorum of matching checkpoints).
:func:`decode_record` decodes any message or record.

Who calls it: the replica, the simulator and Byzantine wrappers (to forge messages with
their own key via :func:`sign_message`), and the node (to put messages on the wire).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from consensus.contract import InvalidMessage, NodeId, Signer, Verifier
from consensus.pbft._codec import (
    HASH_BYTES,
    SIG_BYTES,
    check_hash,
    check_sig,
    check_uint,
    parse_bytes,
    parse_list,
    parse_uint,
    rlp_encode,
    strict_rlp,
    u,
)
from consensus.pbft.config import DEFAULT_INSTANCE_TAG

__all__ = [
    "DOMAIN_TAG",
    "MESSAGE_BYTES_MAX",
    "Checkpoint",
    "CheckpointProof",
    "Commit",
    "CommittedProof",
    "NewView",
    "PbftMessage",
    "PrePrepare",
    "Prepare",
    "PreparedCert",
    "Request",
    "SignedMessage",
    "Status",
    "ViewChange",
    "decode_message",
    "decode_record",
    "sign_message",
    "verify_message",
]

#: Prefix of every signed byte string (keeps PBFT signatures apart from other uses of a key).
DOMAIN_TAG = b"phalanx/pbft/v1\x00"
#: Largest encoded message or record accepted by the decoders.
MESSAGE_BYTES_MAX = 32 * 1024 * 1024
#: Largest value (block) inside a message.
VALUE_BYTES_MAX = 8 * 1024 * 1024
#: Most votes / checkpoints / view changes in one message (bounds the replica count).
VOTES_MAX = 1024
#: Most prepared certificates in a view change, and pre-prepares in a new view.
SLOTS_MAX = 4096


# --- the signed message base -------------------------------------------------------------

_M = TypeVar("_M", bound="SignedMessage")


class SignedMessage:
    """Shared behaviour of every signed PBFT message (mixin for the dataclasses below)."""

    __slots__ = ()
    KIND: ClassVar[int]
    sender: NodeId
    signature: bytes
    _signed_cache: tuple[bytes, bytes] | None
    _encoded_cache: bytes | None

    def _body(self) -> list[Any]:
        raise NotImplementedError

    def torlp_encode(self) -> list[Any]:
        """The RLP structure ``[kind, body, sender, signature]``."""
        return [u(self.KIND), self._body(), u(self.sender), self.signature]

    def encode(self) -> bytes:
        """Canonical bytes on the wire (memoised: a message is re-sent and forwarded as is)."""
        cached = self._encoded_cache
        if cached is None:
            cached = rlp_encode(self.torlp_encode())
            object.__setattr__(self, "_encoded_cache", cached)
        return cached

    def signing_bytes(self, instance_tag: bytes = DEFAULT_INSTANCE_TAG) -> bytes:
        """RLP ``[instance_tag, kind, body, sender]`` (the signature is over DOMAIN_TAG + this)."""
        return rlp_encode([instance_tag, u(self.KIND), self._body(), u(self.sender)])

    def signed_bytes(self, instance_tag: bytes = DEFAULT_INSTANCE_TAG) -> bytes:
        """The exact bytes the sender signs (memoised per message: every receiver verifies)."""
        cached = self._signed_cache
        if cached is not None and cached[0] == instance_tag:
            return cached[1]
        data = DOMAIN_TAG + self.signing_bytes(instance_tag)
        object.__setattr__(self, "_signed_cache", (instance_tag, data))
        return data

    def with_signature(self: _M, signature: bytes) -> _M:
        """A copy carrying ``signature``."""
        return dataclasses.replace(self, signature=signature)  # type: ignore[type-var]

    @property
    def unsigned(self) -> bool:
        return self.signature == b""


def _check_common(sender: int, signature: bytes) -> None:
    if isinstance(sender, bool) or not isinstance(sender, int) or not 0 <= sender < 1 << 32:
        raise ValueError(f"sender must be a 32-bit node id, got {sender!r}")
    check_sig(signature)


@dataclass(frozen=True, slots=True)
class PrePrepare(SignedMessage):
    """The primary of ``view`` assigns ``value`` (digest ``digest``) to ``seq``."""

    KIND: ClassVar[int] = 1
    view: int
    seq: int
    digest: bytes
    value: bytes
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.view, "view")
        check_uint(self.seq, "seq")
        check_hash(self.digest, "digest")
        if not isinstance(self.value, bytes):
            raise ValueError("value must be bytes")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.view), u(self.seq), self.digest, self.value]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> PrePrepare:
        view, seq, digest, value = parse_list(body, "PrePrepare", length=4)
        return cls(
            parse_uint(view, "view"),
            parse_uint(seq, "seq"),
            parse_bytes(digest, "digest", exact=HASH_BYTES),
            parse_bytes(value, "value", max_len=VALUE_BYTES_MAX),
            sender,
            sig,
        )


@dataclass(frozen=True, slots=True)
class _Vote(SignedMessage):
    """A vote on (view, seq, digest): the shape shared by :class:`Prepare` and :class:`Commit`."""

    view: int
    seq: int
    digest: bytes
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.view, "view")
        check_uint(self.seq, "seq")
        check_hash(self.digest, "digest")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.view), u(self.seq), self.digest]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> Self:
        view, seq, digest = parse_list(body, cls.__name__, length=3)
        return cls(
            parse_uint(view, "view"),
            parse_uint(seq, "seq"),
            parse_bytes(digest, "digest", exact=HASH_BYTES),
            sender,
            sig,
        )


@dataclass(frozen=True, slots=True)
class Prepare(_Vote):
    """A backup accepted the pre-prepare for (view, seq, digest)."""

    KIND: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class Commit(_Vote):
    """The sender is prepared for (view, seq, digest)."""

    KIND: ClassVar[int] = 3


@dataclass(frozen=True, slots=True)
class Checkpoint(SignedMessage):
    """The sender's state root after executing every value up to ``seq``."""

    KIND: ClassVar[int] = 4
    seq: int
    state_root: bytes
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.seq, "seq")
        check_hash(self.state_root, "state_root")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.seq), self.state_root]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> Checkpoint:
        seq, root = parse_list(body, "Checkpoint", length=2)
        return cls(parse_uint(seq, "seq"), parse_bytes(root, "state_root", exact=HASH_BYTES), sender, sig)


@dataclass(frozen=True, slots=True)
class PreparedCert:
    """Proof that a replica was prepared: a pre-prepare plus matching prepares (a record too)."""

    KIND: ClassVar[int] = 20
    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]

    def torlp_encode(self) -> list[Any]:
        return [self.pre_prepare.torlp_encode(), [p.torlp_encode() for p in self.prepares]]

    def encode(self) -> bytes:
        return rlp_encode([u(self.KIND), self.torlp_encode()])

    @property
    def view(self) -> int:
        return self.pre_prepare.view

    @property
    def seq(self) -> int:
        return self.pre_prepare.seq

    @property
    def digest(self) -> bytes:
        return self.pre_prepare.digest

    @classmethod
    def fromrlp_encode(cls, item: Any) -> PreparedCert:
        pp_item, preps = parse_list(item, "PreparedCert", length=2)
        pp = _decode_signed(pp_item, PrePrepare)
        prepares = tuple(_decode_signed(p, Prepare) for p in parse_list(preps, "prepares", max_len=VOTES_MAX))
        return cls(pp, prepares)


@dataclass(frozen=True, slots=True)
class CheckpointProof:
    """A quorum of matching signed checkpoints: ``state_root`` at ``seq`` is stable (a record)."""

    KIND: ClassVar[int] = 21
    seq: int
    state_root: bytes
    checkpoints: tuple[Checkpoint, ...]

    def torlp_encode(self) -> list[Any]:
        return [u(self.seq), self.state_root, [c.torlp_encode() for c in self.checkpoints]]

    def encode(self) -> bytes:
        return rlp_encode([u(self.KIND), self.torlp_encode()])

    @classmethod
    def fromrlp_encode(cls, item: Any) -> CheckpointProof:
        seq, root, cps = parse_list(item, "CheckpointProof", length=3)
        return cls(
            parse_uint(seq, "seq"),
            parse_bytes(root, "state_root", exact=HASH_BYTES),
            tuple(_decode_signed(c, Checkpoint) for c in parse_list(cps, "checkpoints", max_len=VOTES_MAX)),
        )


@dataclass(frozen=True, slots=True)
class ViewChange(SignedMessage):
    """The sender moves to ``new_view``: its stable checkpoint proof and prepared certificates.

    ``checkpoint_proof`` is empty when ``stable_seq == 0`` (the genesis checkpoint).
    """

    KIND: ClassVar[int] = 5
    new_view: int
    stable_seq: int
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCert, ...]
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.new_view, "new_view")
        check_uint(self.stable_seq, "stable_seq")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [
            u(self.new_view),
            u(self.stable_seq),
            [c.torlp_encode() for c in self.checkpoint_proof],
            [p.torlp_encode() for p in self.prepared],
        ]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> ViewChange:
        nv, ss, cps, prepared = parse_list(body, "ViewChange", length=4)
        return cls(
            parse_uint(nv, "new_view"),
            parse_uint(ss, "stable_seq"),
            tuple(_decode_signed(c, Checkpoint) for c in parse_list(cps, "checkpoint_proof", max_len=VOTES_MAX)),
            tuple(PreparedCert.fromrlp_encode(p) for p in parse_list(prepared, "prepared", max_len=SLOTS_MAX)),
            sender,
            sig,
        )


@dataclass(frozen=True, slots=True)
class NewView(SignedMessage):
    """The primary of ``view`` starts it: a quorum of view changes and the re-issued O set."""

    KIND: ClassVar[int] = 6
    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[PrePrepare, ...]
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.view, "view")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.view), [v.torlp_encode() for v in self.view_changes], [p.torlp_encode() for p in self.pre_prepares]]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> NewView:
        view, vcs, pps = parse_list(body, "NewView", length=3)
        return cls(
            parse_uint(view, "view"),
            tuple(_decode_signed(v, ViewChange) for v in parse_list(vcs, "view_changes", max_len=VOTES_MAX)),
            tuple(_decode_signed(p, PrePrepare) for p in parse_list(pps, "pre_prepares", max_len=SLOTS_MAX)),
            sender,
            sig,
        )


@dataclass(frozen=True, slots=True)
class Request(SignedMessage):
    """A backup forwards a proposed value to the primary."""

    KIND: ClassVar[int] = 7
    value: bytes
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise ValueError("value must be bytes")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [self.value]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> Request:
        (value,) = parse_list(body, "Request", length=1)
        return cls(parse_bytes(value, "value", max_len=VALUE_BYTES_MAX), sender, sig)


@dataclass(frozen=True, slots=True)
class Status(SignedMessage):
    """Periodic summary; a peer that is ahead answers with proofs so the sender catches up."""

    KIND: ClassVar[int] = 8
    view: int
    last_executed: int
    stable_seq: int
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.view, "view")
        check_uint(self.last_executed, "last_executed")
        check_uint(self.stable_seq, "stable_seq")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.view), u(self.last_executed), u(self.stable_seq)]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> Status:
        view, last, stable = parse_list(body, "Status", length=3)
        return cls(
            parse_uint(view, "view"), parse_uint(last, "last_executed"), parse_uint(stable, "stable_seq"), sender, sig
        )


@dataclass(frozen=True, slots=True)
class CommittedProof(SignedMessage):
    """``value`` committed at ``seq``: a quorum of signed commits for its digest (catch-up)."""

    KIND: ClassVar[int] = 9
    seq: int
    value: bytes
    commits: tuple[Commit, ...]
    sender: NodeId
    signature: bytes = b""
    _signed_cache: tuple[bytes, bytes] | None = field(default=None, init=False, repr=False, compare=False)
    _encoded_cache: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_uint(self.seq, "seq")
        if not isinstance(self.value, bytes):
            raise ValueError("value must be bytes")
        _check_common(self.sender, self.signature)

    def _body(self) -> list[Any]:
        return [u(self.seq), self.value, [c.torlp_encode() for c in self.commits]]

    @classmethod
    def _from_body(cls, body: list[Any], sender: NodeId, sig: bytes) -> CommittedProof:
        seq, value, commits = parse_list(body, "CommittedProof", length=3)
        return cls(
            parse_uint(seq, "seq"),
            parse_bytes(value, "value", max_len=VALUE_BYTES_MAX),
            tuple(_decode_signed(c, Commit) for c in parse_list(commits, "commits", max_len=VOTES_MAX)),
            sender,
            sig,
        )


PbftMessage = (
    PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | Request | Status | CommittedProof
)
_MESSAGE_TYPES: dict[int, Any] = {
    cls.KIND: cls
    for cls in (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, Request, Status, CommittedProof)
}
_RECORD_TYPES: dict[int, Any] = {PreparedCert.KIND: PreparedCert, CheckpointProof.KIND: CheckpointProof}

_T = TypeVar("_T")


def _decode_signed(item: Any, cls: type[_T] | None) -> _T:
    kind_b, body, sender_b, sig_b = parse_list(item, "message", length=4)
    kind = parse_uint(kind_b, "kind")
    mcls = _MESSAGE_TYPES.get(kind)
    if mcls is None:
        raise InvalidMessage(f"unknown message kind {kind}")
    if cls is not None and mcls is not cls:
        raise InvalidMessage(f"expected {cls.__name__}, got {mcls.__name__}")
    sender = parse_uint(sender_b, "sender")
    if sender >= 1 << 32:
        raise InvalidMessage("sender id out of range")
    sig = parse_bytes(sig_b, "signature", exact=SIG_BYTES)
    try:
        msg: _T = mcls._from_body(body, NodeId(sender), sig)
    except ValueError as e:  # a constructor check (field out of range)
        raise InvalidMessage(f"{mcls.__name__}: {e}") from e
    return msg


def decode_message(data: bytes) -> PbftMessage:
    """Decode one wire message strictly.

    Args:
        data: the bytes from the wire.

    Returns:
        The message (its signature is *not* checked here; see :func:`verify_message`).

    Raises:
        InvalidMessage: malformed, non-canonical, oversized, unknown kind or bad field.
    """
    msg: PbftMessage = _decode_signed(strict_rlp(data, MESSAGE_BYTES_MAX), None)
    return msg


def decode_record(data: bytes) -> PbftMessage | PreparedCert | CheckpointProof:
    """Decode a persisted record: a signed message or a :class:`PreparedCert` / :class:`CheckpointProof`.

    Raises:
        InvalidMessage: the bytes are not a valid record.
    """
    item = strict_rlp(data, MESSAGE_BYTES_MAX)
    if isinstance(item, list) and len(item) == 2:
        kind = parse_uint(item[0], "kind")
        rcls = _RECORD_TYPES.get(kind)
        if rcls is None:
            raise InvalidMessage(f"unknown record kind {kind}")
        try:
            record: PreparedCert | CheckpointProof = rcls.fromrlp_encode(item[1])
        except ValueError as e:
            raise InvalidMessage(f"{rcls.__name__}: {e}") from e
        return record
    msg: PbftMessage = _decode_signed(item, None)
    return msg


_S = TypeVar("_S", bound=SignedMessage)


def sign_message(msg: _S, signer: Signer, instance_tag: bytes = DEFAULT_INSTANCE_TAG) -> _S:
    """Return ``msg`` signed by ``signer`` (whose node id must be ``msg.sender``).

    Raises:
        ValueError: the signer is not the message's sender.
    """
    if signer.node_id != msg.sender:
        raise ValueError(f"signer {signer.node_id} cannot sign for sender {msg.sender}")
    return msg.with_signature(signer.sign(msg.signed_bytes(instance_tag)))


def verify_message(msg: SignedMessage, verifier: Verifier, instance_tag: bytes = DEFAULT_INSTANCE_TAG) -> bool:
    """True iff ``msg.signature`` is its sender's valid signature (only this message, not nested ones)."""
    if len(msg.signature) != SIG_BYTES:
        return False
    return verifier.verify(msg.sender, msg.signed_bytes(instance_tag), msg.signature)


def sorted_signatures(msgs: Sequence[SignedMessage]) -> tuple[tuple[int, bytes], ...]:
    """``(node, signature)`` pairs sorted by node, one per node (first one wins)."""
    by_node: dict[int, bytes] = {}
    for m in msgs:
        by_node.setdefault(int(m.sender), m.signature)
    return tuple(sorted(by_node.items()))
