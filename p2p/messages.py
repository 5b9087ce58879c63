"""The message envelope carried inside every encrypted frame, and the inbound record.

Wire form: the canonical RLP list ``[kind, lamport, payload]`` where ``kind`` is a
:class:`Kind` (a small integer), ``lamport`` the sender's Lamport timestamp and ``payload``
opaque bytes (p2p never looks inside). Decoding is strict: exactly one encoding per value,
no trailing bytes, known kinds only, ``lamport <= LAMPORT_MAX``; everything else raises
:class:`~p2p.errors.InvalidEnvelope`.

Used by ``p2p.transport`` (encode on send, decode on receive), the gossip and heartbeat
services, and the node (which reads :class:`Inbound` records).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, NewType

from p2p.errors import InvalidEnvelope
from p2p.lamport import LAMPORT_MAX

__all__ = ["ENVELOPE_OVERHEAD_BYTES_MAX", "Envelope", "Inbound", "Kind", "PeerId"]

#: A peer's node id, as listed in the address book (the node maps validators to these).
PeerId = NewType("PeerId", int)

#: Upper bound on the RLP bytes an envelope adds around its payload.
ENVELOPE_OVERHEAD_BYTES_MAX = 24

class Kind(enum.IntEnum):
    """What an envelope's payload is for; the node routes inbound messages by kind."""

    TX_BATCH = 1
    CONSENSUS = 2
    HEARTBEAT = 3
    REQUEST = 4
    RESPONSE = 5


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on the wire: kind, Lamport timestamp, opaque payload."""

    kind: Kind
    lamport: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.kind.__class__ is not Kind:
            raise TypeError(f"kind must be a Kind, got {self.kind!r}")
        if not 0 <= self.lamport <= LAMPORT_MAX:
            raise ValueError(f"lamport out of range: {self.lamport}")
        if not isinstance(self.payload, bytes):
            raise TypeError("payload must be bytes")

    def encode(self) -> bytes:
        """Return the canonical RLP bytes."""
        return _rlp_list(
            _rlp_string(_uint_bytes(int(self.kind)))
            + _rlp_string(_uint_bytes(self.lamport))
            + _rlp_string(self.payload)
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Decode canonical envelope bytes.

        Raises:
            InvalidEnvelope: the bytes are not the canonical encoding of a valid envelope.
        """
        data = bytes(data)
        try:
            start, end = _item(data, 0, want_list=True)
            if end != len(data):
                raise InvalidEnvelope("envelope: trailing bytes")
            fields: list[bytes] = []
            pos = start
            while pos < end and len(fields) < 4:
                s, e = _item(data, pos, want_list=False)
                if e > end:
                    raise InvalidEnvelope("envelope: item runs past the list")
                fields.append(data[s:e])
                pos = e
        except IndexError as e:  # a header cut short
            raise InvalidEnvelope("envelope: truncated") from e
        if len(fields) != 3 or pos != end:
            raise InvalidEnvelope("envelope: expected the list [kind, lamport, payload]")
        kind_b, lamport_b, payload = fields
        if len(kind_b) > 1 or len(lamport_b) > 8:
            raise InvalidEnvelope("envelope: integer field too long")
        if lamport_b[:1] == b"\x00":
            raise InvalidEnvelope("envelope: integer with a leading zero")
        kind = _KINDS.get(kind_b)
        if kind is None:
            raise InvalidEnvelope(f"envelope: unknown kind {kind_b.hex() or '0'}")
        lamport = int.from_bytes(lamport_b, "big")
        if lamport > LAMPORT_MAX:
            raise InvalidEnvelope(f"envelope: lamport {lamport} exceeds {LAMPORT_MAX}")
        return cls(kind, lamport, payload)


_KINDS = {bytes((int(k),)): k for k in Kind}

# A hand-written codec for this one fixed shape: pyrlp's generic decoder costs tens of
# microseconds per message, which would dominate the per-frame cost. tests/p2p compare it
# with pyrlp on random inputs.


def _uint_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def _rlp_string(b: bytes) -> bytes:
    n = len(b)
    if n == 1 and b[0] < 0x80:
        return b
    if n <= 55:
        return bytes((0x80 + n,)) + b
    nb = _uint_bytes(n)
    return bytes((0xB7 + len(nb),)) + nb + b


def _rlp_list(payload: bytes) -> bytes:
    n = len(payload)
    if n <= 55:
        return bytes((0xC0 + n,)) + payload
    nb = _uint_bytes(n)
    return bytes((0xF7 + len(nb),)) + nb + payload


def _item(data: bytes, pos: int, *, want_list: bool) -> tuple[int, int]:
    """Return (start, end) of the payload of the item at ``pos``, refusing every
    non-canonical header (RLP's rules: a byte below 0x80 stands for itself, short forms up
    to 55 bytes, long forms only above 55 with no leading zero in the length)."""
    b = data[pos]
    is_list = b >= 0xC0
    if is_list != want_list:
        raise InvalidEnvelope("envelope: " + ("expected a list" if want_list else "unexpected list"))
    if b < 0x80:
        return pos, pos + 1
    short_base, long_base = (0xC0, 0xF7) if is_list else (0x80, 0xB7)
    if b <= long_base:
        start, n = pos + 1, b - short_base
        if n == 1 and not is_list and data[start] < 0x80:
            raise InvalidEnvelope("envelope: non-canonical single byte")
    else:
        ll = b - long_base
        if pos + 1 + ll > len(data) or data[pos + 1] == 0:
            raise InvalidEnvelope("envelope: truncated or non-canonical length")
        start, n = pos + 1 + ll, int.from_bytes(data[pos + 1 : pos + 1 + ll], "big")
        if n <= 55:
            raise InvalidEnvelope("envelope: non-canonical long form")
    end = start + n
    if end > len(data):
        raise InvalidEnvelope("envelope: truncated item")
    return start, end


class Inbound(NamedTuple):
    """A message received from an authenticated peer, as handed to the node.

    A ``NamedTuple`` (immutable) so that ``async for peer, kind, lamport, payload in ...``
    unpacks it directly.
    """

    peer: PeerId
    kind: Kind
    lamport: int
    payload: bytes
