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
    CLOCK = 6  # Cristian time requests and replies (p2p.clocksync_service)
    EVIDENCE = 7  # Bracha reliable broadcast of misbehaviour evidence (node.evidence)


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
        lam = self.lamport
        if lam == 0:
            lam_b = b"\x80"
        elif lam < 0x80:
            lam_b = bytes((lam,))
        else:
            raw = lam.to_bytes((lam.bit_length() + 7) // 8, "big")
            lam_b = bytes((0x80 + len(raw),)) + raw
        payload = self.payload
        n = len(payload)
        if n == 1 and payload[0] < 0x80:
            head = b""
        elif n <= 55:
            head = bytes((0x80 + n,))
        else:
            nb = _uint_bytes(n)
            head = bytes((0xB7 + len(nb),)) + nb
        body = 1 + len(lam_b) + len(head) + n
        if body <= 55:
            list_head = bytes((0xC0 + body,))
        else:
            bb = _uint_bytes(body)
            list_head = bytes((0xF7 + len(bb),)) + bb
        return b"".join((list_head, _KIND_BYTES[self.kind], lam_b, head, payload))

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Decode canonical envelope bytes.

        Raises:
            InvalidEnvelope: the bytes are not the canonical encoding of a valid envelope.
        """
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        try:
            # list header
            b = data[0]
            if 0xC0 <= b <= 0xF7:
                pos, length = 1, b - 0xC0
            elif b >= 0xF8:
                ll = b - 0xF7
                if data[1] == 0:
                    raise InvalidEnvelope("envelope: list length with a leading zero")
                pos, length = 1 + ll, int.from_bytes(data[1 : 1 + ll], "big")
                if length <= 55:
                    raise InvalidEnvelope("envelope: non-canonical long list")
            else:
                raise InvalidEnvelope("envelope: not a list")
            if pos + length != n:
                raise InvalidEnvelope("envelope: list length does not match the bytes")
            # kind: one byte 0x01..0x7f stands for itself
            kind = _KINDS.get(data[pos])
            if kind is None:
                raise InvalidEnvelope(f"envelope: unknown kind byte 0x{data[pos]:02x}")
            pos += 1
            # lamport: a minimal big-endian integer of at most 8 bytes
            b = data[pos]
            if b < 0x80:
                if b == 0:
                    raise InvalidEnvelope("envelope: integer with a leading zero")
                lamport, pos = b, pos + 1
            elif b <= 0x88:
                m = b - 0x80
                if m and data[pos + 1] == 0:
                    raise InvalidEnvelope("envelope: integer with a leading zero")
                if m == 1 and data[pos + 1] < 0x80:
                    raise InvalidEnvelope("envelope: non-canonical single byte")
                lamport, pos = int.from_bytes(data[pos + 1 : pos + 1 + m], "big"), pos + 1 + m
            else:
                raise InvalidEnvelope("envelope: lamport is not a 64-bit integer")
            # payload: a byte string
            b = data[pos]
            if b < 0x80:
                payload, pos = data[pos : pos + 1], pos + 1
            elif b <= 0xB7:
                m = b - 0x80
                if m == 1 and data[pos + 1] < 0x80:
                    raise InvalidEnvelope("envelope: non-canonical single byte")
                payload, pos = data[pos + 1 : pos + 1 + m], pos + 1 + m
            elif b <= 0xBF:
                ll = b - 0xB7
                if data[pos + 1] == 0:
                    raise InvalidEnvelope("envelope: payload length with a leading zero")
                m = int.from_bytes(data[pos + 1 : pos + 1 + ll], "big")
                if m <= 55:
                    raise InvalidEnvelope("envelope: non-canonical long string")
                start = pos + 1 + ll
                payload, pos = data[start : start + m], start + m
            else:
                raise InvalidEnvelope("envelope: payload is a list")
        except IndexError as e:
            raise InvalidEnvelope("envelope: truncated") from e
        if pos != n:
            raise InvalidEnvelope("envelope: truncated or trailing bytes")
        if lamport > LAMPORT_MAX:
            raise InvalidEnvelope(f"envelope: lamport {lamport} exceeds {LAMPORT_MAX}")
        return cls(kind, lamport, payload)


_KINDS = {int(k): k for k in Kind}
_KIND_BYTES = {k: bytes((int(k),)) for k in Kind}

# A hand-written codec for this one fixed shape: pyrlp's generic decoder costs tens of
# microseconds per message, which would dominate the per-frame cost. tests/p2p compare it
# with pyrlp on random inputs.


def _uint_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


class Inbound(NamedTuple):
    """A message received from an authenticated peer, as handed to the node.

    A ``NamedTuple`` (immutable) so that ``async for peer, kind, lamport, payload in ...``
    unpacks it directly.
    """

    peer: PeerId
    kind: Kind
    lamport: int
    payload: bytes
