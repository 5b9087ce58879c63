"""Canonical bytes: named RLP sedes and strict decoding.

Everything ``chain`` hashes, signs, sends or stores is RLP through the sedes below. Decoding
is strict: one value has exactly one encoding, so ``encode(decode(b)) == b`` for every ``b``
that decodes at all. Any failure becomes :class:`chain.errors.DecodeError` with a readable
reason; no other exception escapes :func:`decode`.

Used by every wire and storage type in ``chain`` (transactions, blocks, receipts, accounts).
"""

from __future__ import annotations

from typing import Any

import rlp
from rlp.sedes import BigEndianInt, Binary, CountableList, big_endian_int, binary

from chain.errors import DecodeError

__all__ = [
    "MAX_DECODE_BYTES",
    "CountableList",
    "address",
    "address_or_empty",
    "big_endian_int",
    "binary",
    "bounded_binary",
    "decode",
    "encode",
    "hash32",
    "pubkey32",
    "signature64",
    "uint8",
    "uint32",
    "uint64",
    "uint256",
]

#: Upper bound on any single RLP input we agree to decode (a block with its transactions).
MAX_DECODE_BYTES = 16 * 1024 * 1024

class _BoundedInt(BigEndianInt):  # type: ignore[misc]
    """A minimal big-endian unsigned integer with an upper bound of ``bits`` bits."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = bits
        self.max_value = (1 << bits) - 1

    def serialize(self, obj: Any) -> bytes:
        if isinstance(obj, bool) or not isinstance(obj, int):
            raise rlp.SerializationError(f"uint{self.bits} must be an int", obj)
        if obj < 0 or obj > self.max_value:
            raise rlp.SerializationError(f"value out of range for uint{self.bits}", obj)
        return super().serialize(obj)  # type: ignore[no-any-return]

    def deserialize(self, serial: Any) -> int:
        if not isinstance(serial, bytes):
            raise rlp.DeserializationError(f"uint{self.bits} must be a string, got a list", serial)
        if len(serial) > (self.bits + 7) // 8:
            raise rlp.DeserializationError(f"too many bytes for uint{self.bits}", serial)
        value: int = super().deserialize(serial)
        return value


uint8 = _BoundedInt(8)
uint32 = _BoundedInt(32)
uint64 = _BoundedInt(64)
uint256 = _BoundedInt(256)

hash32 = Binary.fixed_length(32)
address = Binary.fixed_length(20)
pubkey32 = Binary.fixed_length(32)
signature64 = Binary.fixed_length(64)
#: Recipient field: 20 bytes, or empty for contract creation.
address_or_empty = Binary(min_length=0, max_length=20)


def bounded_binary(max_length: int) -> Binary:
    """A byte string of at most ``max_length`` bytes."""
    return Binary(max_length=max_length)


def encode(obj: Any, sedes: Any = None) -> bytes:
    """Encode ``obj`` canonically (``sedes`` optional for ``rlp.Serializable`` objects)."""
    return rlp.encode(obj, sedes=sedes)  # type: ignore[no-any-return]


def decode(data: bytes, sedes: Any, *, what: str | None = None) -> Any:
    """Decode ``data`` strictly as ``sedes``.

    Args:
        data: the bytes to decode; must be exactly one canonical RLP item.
        sedes: an RLP sedes or an ``rlp.Serializable`` subclass.
        what: a name for error messages (defaults to the sedes' class name).

    Returns:
        The decoded value.

    Raises:
        DecodeError: the bytes are not the one canonical encoding of a valid value.
    """
    name = what or getattr(sedes, "__name__", type(sedes).__name__)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{name}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_DECODE_BYTES:
        raise DecodeError(f"{name}: {len(data)} bytes exceeds the {MAX_DECODE_BYTES}-byte limit")
    try:
        value = rlp.decode(data, sedes=sedes, strict=True)
    except (rlp.DecodingError, rlp.DeserializationError, rlp.exceptions.ObjectDeserializationError) as e:
        raise DecodeError(f"{name}: {_reason(e)}") from e
    except (ValueError, TypeError, IndexError, OverflowError, RecursionError) as e:
        raise DecodeError(f"{name}: {e}") from e
    # Belt and braces: a canonical encoding re-encodes to itself.
    try:
        again = rlp.encode(value, sedes=sedes) if sedes is not None else rlp.encode(value)
    except rlp.SerializationError as e:
        raise DecodeError(f"{name}: value does not re-encode: {e}") from e
    if again != data:
        raise DecodeError(f"{name}: non-canonical encoding")
    return value


def _reason(e: Exception) -> str:
    msg = str(e.args[0]) if e.args else type(e).__name__
    inner = getattr(e, "error", None)
    if inner is not None and inner is not e:
        msg = f"{msg} ({_reason(inner)})"
    return msg
