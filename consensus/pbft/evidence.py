"""PBFT evidence of misbehaviour: a canonical encoding and a pure, self-contained check.

A replica that sees two conflicting messages signed by one peer reports
:class:`~consensus.contract.Evidence` (see ``PbftReplica._evidence``). To hand that proof to
other nodes, and to let each of them judge it without trusting whoever relayed it, this
module gives:

* :func:`encode_evidence` -- the RLP list ``[kind, first, second]`` where ``first`` and
  ``second`` are the two messages' own wire encodings (so the signatures stay checkable);
* :func:`decode_evidence` -- strict decoding (:class:`InvalidMessage` on anything else);
* :func:`check_evidence` -- the reason the evidence does not prove misbehaviour, or
  ``None`` when it does.

Evidence is proof when, for its ``kind``:

==================  ============  ==============================================
kind                messages      conflict
==================  ============  ==============================================
equivocation        PrePrepare    same (view, seq), different digests
double-prepare      Prepare       same (view, seq), different digests
double-commit       Commit        same (view, seq), different digests
double-checkpoint   Checkpoint    same seq, different state roots
==================  ============  ==============================================

and both messages name the accused validator as sender and carry its valid signature for
this chain (``instance_tag``). No honest replica signs such a pair: PBFT replicas persist
their own votes before sending them and never vote twice in one slot.

Pure: no I/O, no clock; the verifier is injected. Who calls it: the node's evidence
service (:mod:`node.evidence`) on every reliably delivered evidence payload.
"""

from __future__ import annotations

from typing import Any

from consensus.contract import Evidence, InvalidMessage, NodeId, Verifier
from consensus.pbft._codec import parse_bytes, parse_list, rlp_encode, strict_rlp
from consensus.pbft.config import DEFAULT_INSTANCE_TAG
from consensus.pbft.messages import (
    Checkpoint,
    Commit,
    Prepare,
    PrePrepare,
    SignedMessage,
    decode_message,
    verify_message,
)

__all__ = [
    "EVIDENCE_BYTES_MAX",
    "EVIDENCE_KINDS",
    "check_evidence",
    "decode_evidence",
    "encode_evidence",
    "evidence_key",
]

#: Message class each evidence kind is made of.
EVIDENCE_KINDS: dict[str, type[SignedMessage]] = {
    "equivocation": PrePrepare,
    "double-prepare": Prepare,
    "double-commit": Commit,
    "double-checkpoint": Checkpoint,
}
#: Largest encoded evidence accepted by :func:`decode_evidence`.
EVIDENCE_BYTES_MAX = 16 * 1024 * 1024
_KIND_BYTES_MAX = 32


def encode_evidence(ev: Evidence) -> bytes:
    """Canonical bytes of ``ev``: RLP ``[kind, first.encode(), second.encode()]``.

    Raises:
        ValueError: ``ev`` is not PBFT evidence (unknown kind or messages without ``encode``).
    """
    if ev.kind not in EVIDENCE_KINDS or not isinstance(ev.first, SignedMessage) \
            or not isinstance(ev.second, SignedMessage):
        raise ValueError(f"not PBFT evidence: {ev.kind!r}")
    return rlp_encode([ev.kind.encode(), ev.first.encode(), ev.second.encode()])


def decode_evidence(data: bytes) -> Evidence:
    """Decode evidence strictly; the signatures are *not* checked (see :func:`check_evidence`).

    Raises:
        InvalidMessage: malformed, non-canonical, oversized, or an unknown kind.
    """
    item = strict_rlp(data, EVIDENCE_BYTES_MAX)
    kind_b, first_b, second_b = parse_list(item, "evidence", length=3)
    kind = parse_bytes(kind_b, "evidence kind", max_len=_KIND_BYTES_MAX).decode("ascii", "replace")
    if kind not in EVIDENCE_KINDS:
        raise InvalidMessage(f"unknown evidence kind {kind!r}")
    first = decode_message(parse_bytes(first_b, "first"))
    second = decode_message(parse_bytes(second_b, "second"))
    return Evidence(offender=NodeId(int(first.sender)), kind=kind, first=first, second=second)


def _slot(msg: Any) -> tuple[int, int]:
    return (0, msg.seq) if isinstance(msg, Checkpoint) else (msg.view, msg.seq)


def _value(msg: Any) -> bytes:
    return bytes(msg.state_root) if isinstance(msg, Checkpoint) else bytes(msg.digest)


def evidence_key(ev: Evidence) -> tuple[int, str, int, int]:
    """``(offender, kind, view, seq)``: one misbehaviour, however many times it is reported."""
    view, seq = _slot(ev.first)
    return (int(ev.offender), ev.kind, view, seq)


def check_evidence(ev: Evidence, verifier: Verifier,
                   instance_tag: bytes = DEFAULT_INSTANCE_TAG) -> str | None:
    """Why ``ev`` does not prove that ``ev.offender`` misbehaved, or ``None`` if it does.

    Args:
        ev: the evidence (as decoded from a peer: nothing in it is trusted).
        verifier: checks validators' signatures (knows every validator's key).
        instance_tag: the chain's tag, mixed into every PBFT signature.

    Returns:
        ``None`` for valid evidence, else a short reason (for logs and counters).
    """
    cls = EVIDENCE_KINDS.get(ev.kind)
    if cls is None:
        return f"unknown kind {ev.kind!r}"
    first, second = ev.first, ev.second
    if type(first) is not cls or type(second) is not cls:
        return f"{ev.kind} needs two {cls.__name__} messages"
    if not first.sender == second.sender == ev.offender:
        return "the messages are not both signed by the accused validator"
    if _slot(first) != _slot(second):
        return "the messages are about different slots"
    if _value(first) == _value(second):
        return "the messages do not conflict"
    if not (verify_message(first, verifier, instance_tag)
            and verify_message(second, verifier, instance_tag)):
        return "a signature does not verify under the accused validator's key"
    return None
