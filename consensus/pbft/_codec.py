"""Field codecs for PBFT messages: a fast canonical RLP encoder and strict field parsers.

Every parser raises :class:`InvalidMessage` with a readable reason; every ``check_*`` raises
``ValueError`` (used by message constructors, so an invalid message cannot be built).
Used only by :mod:`consensus.pbft.messages`.
"""

from __future__ import annotations

from typing import Any

import rlp

from consensus.contract import InvalidMessage

UINT_BYTES_MAX = 8
SIG_BYTES = 64
HASH_BYTES = 32



def rlp_encode(item: Any) -> bytes:
    """Canonical RLP of nested lists of bytes (the same bytes as ``rlp.encode``, faster)."""
    if isinstance(item, bytes):
        n = len(item)
        if n == 1 and item[0] < 0x80:
            return item
        return _prefix(n, 0x80) + item
    payload = b"".join([rlp_encode(x) for x in item])
    return _prefix(len(payload), 0xC0) + payload


def _prefix(length: int, offset: int) -> bytes:
    if length < 56:
        return bytes((offset + length,))
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


def u(value: int) -> bytes:
    return b"" if value == 0 else value.to_bytes((value.bit_length() + 7) // 8, "big")


def parse_uint(item: Any, what: str) -> int:
    if not isinstance(item, bytes):
        raise InvalidMessage(f"{what}: expected an integer, got a list")
    if len(item) > UINT_BYTES_MAX:
        raise InvalidMessage(f"{what}: integer too large")
    if item[:1] == b"\x00":
        raise InvalidMessage(f"{what}: integer with a leading zero byte")
    return int.from_bytes(item, "big")


def parse_bytes(item: Any, what: str, *, exact: int | None = None, max_len: int | None = None) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidMessage(f"{what}: expected bytes, got a list")
    if exact is not None and len(item) != exact:
        raise InvalidMessage(f"{what}: expected {exact} bytes, got {len(item)}")
    if max_len is not None and len(item) > max_len:
        raise InvalidMessage(f"{what}: {len(item)} bytes exceeds {max_len}")
    return item


def parse_list(item: Any, what: str, *, length: int | None = None, max_len: int | None = None) -> list[Any]:
    if not isinstance(item, list):
        raise InvalidMessage(f"{what}: expected a list")
    if length is not None and len(item) != length:
        raise InvalidMessage(f"{what}: expected {length} items, got {len(item)}")
    if max_len is not None and len(item) > max_len:
        raise InvalidMessage(f"{what}: {len(item)} items exceeds {max_len}")
    return item


def check_uint(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ValueError(f"{what} must be an unsigned 64-bit int, got {value!r}")


def check_sig(sig: bytes) -> None:
    if not isinstance(sig, bytes) or len(sig) not in (0, SIG_BYTES):
        raise ValueError("signature must be b'' (unsigned) or 64 bytes")


def check_hash(h: bytes, what: str) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_BYTES:
        raise ValueError(f"{what} must be {HASH_BYTES} bytes")



def strict_rlp(data: bytes, size_max: int) -> Any:
    """Decode exactly one canonical RLP item of at most ``size_max`` bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidMessage(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > size_max:
        raise InvalidMessage(f"{len(data)} bytes exceeds the {size_max}-byte limit")
    try:
        item = rlp.decode(data, strict=True)
    except (rlp.DecodingError, rlp.DeserializationError, RecursionError, ValueError, TypeError, IndexError) as e:
        raise InvalidMessage(f"malformed RLP: {e}") from e
    if rlp.encode(item) != data:
        raise InvalidMessage("non-canonical RLP encoding")
    return item


