"""Canonical bytes: named RLP sedes and strict decoding.

Everything ``chain`` hashes, signs, sends or stores is RLP through the sedes below. Decoding
is strict: one value has exactly one encoding, so ``encode(decode(b)) == b`` for every ``b``
that decodes at all. Any failure becomes :class:`chain.errors.DecodeError` with a readable
reason; no other exception escapes :func:`decode`.

The fast helpers at the bottom (:func:`split_list`, :func:`string_items`,
:func:`decode_uint`, :func:`encode_list`) apply the same canonical rules without pyrlp's
generic machinery; hot decoders (transactions, blocks, snapshot chunks) are built on them
and fuzzed against the ``rlp.decode`` path in ``tests/chain/test_decoders_fuzz.py``.

Used by every wire and storage type in ``chain`` (transactions, blocks, receipts, accounts).
"""

from __future__ import annotations

import hashlib
from typing import Any

import rlp
from rlp.sedes import BigEndianInt, Binary, CountableList, big_endian_int, binary

from chain.errors import ChainError, DecodeError

__all__ = [
    "MAX_DECODE_BYTES",
    "CachedEncoding",
    "CountableList",
    "address",
    "address_or_empty",
    "big_endian_int",
    "binary",
    "bounded_binary",
    "decode",
    "decode_uint",
    "encode",
    "encode_list",
    "hash32",
    "list_payload",
    "pubkey32",
    "signature64",
    "split_list",
    "string_items",
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
address_or_empty = Binary.fixed_length(20, allow_empty=True)


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
    except (
        rlp.DecodingError,
        rlp.DeserializationError,
        rlp.exceptions.ObjectDeserializationError,
    ) as e:
        raise DecodeError(f"{name}: {_reason(e)}") from e
    except DecodeError:
        raise
    except ChainError as e:  # a type's constructor refused the decoded values
        raise DecodeError(f"{name}: {e}") from e
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
    if msg.startswith("RLP string ends with -"):  # pyrlp's wording for a truncated item
        msg = "truncated input"
    inner = getattr(e, "error", None)
    if inner is not None and inner is not e:
        msg = f"{msg} ({_reason(inner)})"
    return msg


# --- Fast strict helpers -------------------------------------------------------------------
#
# ``rlp.decode`` is pure Python and builds per-item encodings we rarely need; the hot paths
# (transactions in the mempool, transactions inside a block) use the helpers below instead.
# They apply exactly the same canonical rules as strict ``rlp.decode``: shortest length
# prefixes, no leading zero bytes in lengths, a single byte below 0x80 is never wrapped,
# long forms only for payloads of 56 bytes or more, no trailing bytes.


def _item_bounds(data: bytes, pos: int, end: int, what: str) -> tuple[bool, int, int]:
    """Parse the item header at ``pos``; return (is_list, payload_start, payload_end)."""
    if pos >= end:
        raise DecodeError(f"{what}: truncated input")
    b0 = data[pos]
    if b0 < 0x80:
        return False, pos, pos + 1
    if b0 < 0xB8:
        length = b0 - 0x80
        start = pos + 1
        if length == 1 and (start >= end or data[start] < 0x80):
            if start >= end:
                raise DecodeError(f"{what}: truncated input")
            raise DecodeError(f"{what}: single byte below 0x80 wrapped in a string prefix")
        is_list = False
    elif b0 < 0xC0:
        is_list, length, start = False, *_long_length(data, pos, b0 - 0xB7, end, what)
    elif b0 < 0xF8:
        is_list, length, start = True, b0 - 0xC0, pos + 1
    else:
        is_list, length, start = True, *_long_length(data, pos, b0 - 0xF7, end, what)
    stop = start + length
    if stop > end:
        raise DecodeError(f"{what}: truncated input (item announces {length} bytes)")
    return is_list, start, stop


def _long_length(data: bytes, pos: int, ll: int, end: int, what: str) -> tuple[int, int]:
    start = pos + 1 + ll
    if start > end:
        raise DecodeError(f"{what}: truncated length prefix")
    if data[pos + 1] == 0:
        raise DecodeError(f"{what}: length prefix starts with a zero byte")
    length = int.from_bytes(data[pos + 1 : start], "big")
    if length < 56:
        raise DecodeError(f"{what}: long-form prefix used for a short item")
    return length, start


def list_payload(data: bytes, what: str) -> tuple[int, int]:
    """Check that ``data`` is exactly one RLP list; return its payload's (start, end).

    Raises:
        DecodeError: not bytes, not a list, non-canonical prefix, truncated or trailing bytes.
    """
    if not isinstance(data, bytes):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    n = len(data)
    if n > MAX_DECODE_BYTES:
        raise DecodeError(f"{what}: {n} bytes exceeds the {MAX_DECODE_BYTES}-byte limit")
    is_list, start, stop = _item_bounds(data, 0, n, what)
    if not is_list:
        raise DecodeError(f"{what}: expected a list, got a string")
    if stop != n:
        raise DecodeError(f"{what}: {n - stop} trailing byte(s)")
    return start, stop


def split_list(data: bytes, what: str) -> list[bytes]:
    """Split one canonical RLP list into the full encodings of its items (not recursive).

    Raises:
        DecodeError: as for :func:`list_payload`, or an item is malformed.
    """
    pos, end = list_payload(data, what)
    out: list[bytes] = []
    while pos < end:
        _, _, stop = _item_bounds(data, pos, end, what)
        out.append(data[pos:stop])
        pos = stop
    return out


def string_items(data: bytes, what: str, count: int) -> list[bytes]:
    """Decode one canonical RLP list of exactly ``count`` byte strings; return the payloads.

    Raises:
        DecodeError: wrong field count, a nested list, or any non-canonical form.
    """
    pos, end = list_payload(data, what)
    out: list[bytes] = []
    while pos < end:
        is_list, start, stop = _item_bounds(data, pos, end, what)
        if is_list:
            raise DecodeError(f"{what}: field {len(out)} must be a string, got a list")
        out.append(data[start:stop])
        pos = stop
    if len(out) != count:
        raise DecodeError(f"{what}: expected {count} fields, got {len(out)}")
    return out


def decode_uint(raw: bytes, bits: int, what: str) -> int:
    """Decode a minimal big-endian unsigned integer of at most ``bits`` bits.

    Raises:
        DecodeError: leading zero byte, or too many bytes for ``bits``.
    """
    if raw[:1] == b"\x00":
        raise DecodeError(f"{what}: integer has a leading zero byte")
    if len(raw) > (bits + 7) // 8:
        raise DecodeError(f"{what}: too many bytes for uint{bits}")
    return int.from_bytes(raw, "big")


def encode_list(encoded_items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Wrap already-encoded items into one RLP list (the inverse of :func:`split_list`)."""
    payload = b"".join(encoded_items)
    return _list_prefix(len(payload)) + payload


def _list_prefix(length: int) -> bytes:
    if length < 56:
        return bytes((0xC0 + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(size),)) + size


class CachedEncoding:
    """Mixin for immutable ``rlp.Serializable`` records identified by their bytes.

    Put it before ``rlp.Serializable`` in the bases. It gives ``encoded`` (the canonical
    encoding, cached by pyrlp), ``hash`` (SHA-256 of it, computed once), equality of same-type
    records by encoding and ``__hash__`` from ``hash``. Used by transactions, headers and
    commit certificates.
    """

    _cached_rlp: bytes | None
    _digest: bytes | None = None

    @property
    def encoded(self) -> bytes:
        """The canonical encoding (cached)."""
        cached: bytes | None = self._cached_rlp
        return cached if cached is not None else encode(self)

    @property
    def hash(self) -> bytes:
        """SHA-256 of the canonical encoding (cached)."""
        h = self._digest
        if h is None:
            h = hashlib.sha256(self.encoded).digest()
            self._digest = h
        return h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and other.encoded == self.encoded

    def __hash__(self) -> int:
        return hash(self.hash)
