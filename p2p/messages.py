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

import rlp
from rlp.sedes import List as RlpList
from rlp.sedes import big_endian_int, binary

from p2p.errors import InvalidEnvelope
from p2p.lamport import LAMPORT_MAX

__all__ = ["ENVELOPE_OVERHEAD_BYTES_MAX", "Envelope", "Inbound", "Kind", "PeerId"]

#: A peer's node id, as listed in the address book (the node maps validators to these).
PeerId = NewType("PeerId", int)

#: Upper bound on the RLP bytes an envelope adds around its payload.
ENVELOPE_OVERHEAD_BYTES_MAX = 24

_SEDES = RlpList([big_endian_int, big_endian_int, binary], strict=True)


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
        if not isinstance(self.kind, Kind):
            raise TypeError(f"kind must be a Kind, got {self.kind!r}")
        if not 0 <= self.lamport <= LAMPORT_MAX:
            raise ValueError(f"lamport out of range: {self.lamport}")
        if not isinstance(self.payload, bytes):
            raise TypeError("payload must be bytes")

    def encode(self) -> bytes:
        """Return the canonical RLP bytes."""
        return rlp.encode([int(self.kind), self.lamport, self.payload])  # type: ignore[no-any-return]

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """Decode canonical envelope bytes.

        Raises:
            InvalidEnvelope: the bytes are not the canonical encoding of a valid envelope.
        """
        try:
            kind_n, lamport, payload = rlp.decode(data, sedes=_SEDES, strict=True)
        except (rlp.DecodingError, rlp.DeserializationError) as e:
            raise InvalidEnvelope(f"envelope: {e}") from e
        except (ValueError, TypeError, IndexError, RecursionError) as e:
            raise InvalidEnvelope(f"envelope: {e}") from e
        try:
            kind = Kind(kind_n)
        except ValueError as e:
            raise InvalidEnvelope(f"envelope: unknown kind {kind_n}") from e
        if lamport > LAMPORT_MAX:
            raise InvalidEnvelope(f"envelope: lamport {lamport} exceeds {LAMPORT_MAX}")
        env = cls(kind, lamport, bytes(payload))
        if env.encode() != bytes(data):
            raise InvalidEnvelope("envelope: non-canonical encoding")
        return env


class Inbound(NamedTuple):
    """A message received from an authenticated peer, as handed to the node.

    A ``NamedTuple`` (immutable) so that ``async for peer, kind, lamport, payload in ...``
    unpacks it directly.
    """

    peer: PeerId
    kind: Kind
    lamport: int
    payload: bytes
