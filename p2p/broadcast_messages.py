"""Broadcast messages: the wire format of :mod:`p2p.broadcast` (strict, canonical RLP).

``[kind, origin, seq, payload]`` for best-effort and Bracha messages
(:class:`PlainMessage`), ``[5, origin, vector stamp, payload]`` for causal ones
(:class:`CausalMessage`). Construction checks every field; :func:`decode_broadcast_message`
accepts only the canonical encoding and raises :class:`InvalidBroadcastMessage` (a
:class:`~p2p.errors.P2PError`) for anything else. Payloads are at most
:data:`PAYLOAD_BYTES_MAX` bytes.

Who calls it: :mod:`p2p.broadcast` (re-exports every name), the node and the simulator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import rlp
from rlp.sedes import List, big_endian_int, binary

from p2p.clocks import InvalidVectorStamp, VectorStamp, decode_vector_stamp
from p2p.errors import P2PError
from p2p.messages import PeerId

__all__ = [
    "PAYLOAD_BYTES_MAX",
    "BroadcastMessage",
    "CausalMessage",
    "InvalidBroadcastMessage",
    "Kind",
    "PlainMessage",
    "decode_broadcast_message",
]

PAYLOAD_BYTES_MAX = 64 * 1024
_UINT64_MAX = (1 << 64) - 1


class InvalidBroadcastMessage(P2PError):
    """Raised while decoding or building a broadcast message that breaks the format."""


class Kind(enum.IntEnum):
    PLAIN = 1   # best-effort
    SEND = 2    # Bracha
    ECHO = 3
    READY = 4
    CAUSAL = 5


def _uint(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT64_MAX:
        raise InvalidBroadcastMessage(f"{name} must be a uint64, got {value!r}")


@dataclass(frozen=True, slots=True)
class PlainMessage:
    """A best-effort or Bracha message about instance ``(origin, seq)``."""

    kind: Kind
    origin: PeerId
    seq: int
    payload: bytes

    def __post_init__(self) -> None:
        if self.kind not in (Kind.PLAIN, Kind.SEND, Kind.ECHO, Kind.READY):
            raise InvalidBroadcastMessage(f"not a plain kind: {self.kind!r}")
        _uint("origin", self.origin)
        _uint("seq", self.seq)
        if not isinstance(self.payload, bytes) or len(self.payload) > PAYLOAD_BYTES_MAX:
            raise InvalidBroadcastMessage("payload must be bytes of bounded length")

    def encode(self) -> bytes:
        """Canonical RLP: ``[kind, origin, seq, payload]``."""
        data: bytes = rlp.encode([int(self.kind), self.origin, self.seq, self.payload])
        return data


@dataclass(frozen=True, slots=True)
class CausalMessage:
    """A causal broadcast: ``stamp`` counts the origin's deliveries, this message included."""

    origin: PeerId
    stamp: VectorStamp
    payload: bytes

    def __post_init__(self) -> None:
        _uint("origin", self.origin)
        if not isinstance(self.stamp, VectorStamp) or self.stamp.get(self.origin) < 1:
            raise InvalidBroadcastMessage("causal stamp must count the message itself")
        if not isinstance(self.payload, bytes) or len(self.payload) > PAYLOAD_BYTES_MAX:
            raise InvalidBroadcastMessage("payload must be bytes of bounded length")

    @property
    def seq(self) -> int:
        return self.stamp.get(self.origin)

    def encode(self) -> bytes:
        """Canonical RLP: ``[5, origin, stamp, payload]`` with the stamp's own encoding."""
        data: bytes = rlp.encode([int(Kind.CAUSAL), self.origin, self.stamp.encode(),
                                  self.payload])
        return data


BroadcastMessage = PlainMessage | CausalMessage
_SEDES = List([big_endian_int, big_endian_int, binary, binary], strict=True)


def decode_broadcast_message(data: bytes) -> BroadcastMessage:
    """Decode any broadcast message strictly.

    Raises:
        InvalidBroadcastMessage: unknown kind, out-of-range field, or non-canonical bytes.
    """
    if len(data) > PAYLOAD_BYTES_MAX + 32 * 1024:
        raise InvalidBroadcastMessage("broadcast message too long")
    try:
        kind, origin, third, payload = rlp.decode(bytes(data), sedes=_SEDES, strict=True)
        msg: BroadcastMessage
        if kind == Kind.CAUSAL:
            msg = CausalMessage(PeerId(origin), decode_vector_stamp(third), payload)
        elif kind in (Kind.PLAIN, Kind.SEND, Kind.ECHO, Kind.READY):
            seq = big_endian_int.deserialize(third)
            msg = PlainMessage(Kind(kind), PeerId(origin), seq, payload)
        else:
            raise InvalidBroadcastMessage(f"unknown broadcast kind {kind}")
    except (rlp.exceptions.RLPException, InvalidVectorStamp, TypeError, ValueError) as e:
        raise InvalidBroadcastMessage(f"broadcast message: {e}") from e
    if msg.encode() != bytes(data):
        raise InvalidBroadcastMessage("broadcast message: non-canonical encoding")
    return msg
