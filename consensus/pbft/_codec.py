"""Field codecs for PBFT messages: a fast canonical RLP encoder and strict field parsers.

Every parser raises :class:`InvalidMessage` with a readable reason; every ``check_*`` raises
``ValueError`` (used by message constructors, so an invalid message cannot be built).
Used only by :mod:`consensus.pbft.messages`.
"""

from __future__ import annotations

from typing import Any

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


def strict_rlp(data: bytes | bytearray | memoryview, size_max: int) -> Any:
    """Decode exactly one canonical RLP item of at most ``size_max`` bytes.

    A hand-written reader: it accepts exactly the bytes that strict ``rlp.decode`` followed by
    a re-encoding check accepts (shortest length prefixes, single bytes below 0x80 never
    wrapped, no leading zero in a long length, nothing after the item), without building the
    item twice. Lists nest at most :data:`RLP_DEPTH_MAX` deep (the deepest PBFT message is 10).
    Fuzzed against ``rlp`` in tests/consensus/test_pbft_codec_fuzz.py.

    Raises:
        InvalidMessage: not bytes, oversized, malformed or non-canonical.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise InvalidMessage(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
    end = len(data)
    if end > size_max:
        raise InvalidMessage(f"{end} bytes exceeds the {size_max}-byte limit")
    if end == 0:
        raise InvalidMessage("malformed RLP: no input")
    item, pos = _read_item(data, 0, end, 0)
    if pos != end:
        raise InvalidMessage(f"malformed RLP: {end - pos} trailing bytes")
    return item


#: Deepest list nesting :func:`strict_rlp` accepts (bounds its recursion).
RLP_DEPTH_MAX = 32


def _read_item(data: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    """The item starting at ``pos`` (``pos < end``) and the position after it; never past ``end``."""
    b0 = data[pos]
    if b0 < 0x80:
        return data[pos : pos + 1], pos + 1
    if b0 < 0xB8:
        start = pos + 1
        stop = start + b0 - 0x80
        if stop > end:
            raise InvalidMessage("malformed RLP: truncated string")
        if stop == start + 1 and data[start] < 0x80:
            raise InvalidMessage("non-canonical RLP encoding: single byte wrapped in a string prefix")
        return data[start:stop], stop
    if b0 < 0xC0:
        length, start = _long_length(data, pos + 1, b0 - 0xB7, end)
        stop = start + length
        if stop > end:
            raise InvalidMessage("malformed RLP: truncated string")
        return data[start:stop], stop
    if b0 < 0xF8:
        start = pos + 1
        stop = start + b0 - 0xC0
    else:
        length, start = _long_length(data, pos + 1, b0 - 0xF7, end)
        stop = start + length
    if stop > end:
        raise InvalidMessage("malformed RLP: truncated list")
    if depth >= RLP_DEPTH_MAX:
        raise InvalidMessage(f"malformed RLP: lists nested deeper than {RLP_DEPTH_MAX}")
    items: list[Any] = []
    append = items.append
    depth += 1
    while start < stop:
        b = data[start]
        if b < 0x80:  # the common single-byte item, inline
            append(data[start : start + 1])
            start += 1
        else:
            item, start = _read_item(data, start, stop, depth)
            append(item)
    return items, stop


def _long_length(data: bytes, pos: int, size: int, end: int) -> tuple[int, int]:
    """A long-form length of ``size`` bytes at ``pos``: (length, position after it)."""
    stop = pos + size
    if stop > end:
        raise InvalidMessage("malformed RLP: truncated length prefix")
    if data[pos] == 0:
        raise InvalidMessage("non-canonical RLP encoding: length with a leading zero byte")
    length = int.from_bytes(data[pos:stop], "big")
    if length < 56:
        raise InvalidMessage("non-canonical RLP encoding: long form for a short length")
    return length, stop
