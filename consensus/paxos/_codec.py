"""Canonical RLP helpers for the Paxos wire and records: a direct encoder, strict field
readers for decoded RLP, and constructor checks. Private to :mod:`consensus.paxos`.

The encoder gives byte-for-byte what ``rlp.encode`` gives for nested lists of ``bytes`` and
non-negative ``int`` (checked against it in the tests). The readers raise
:class:`~consensus.contract.InvalidMessage` for anything but the one canonical form.
"""

from __future__ import annotations

from typing import Any

from consensus.contract import InvalidMessage

ENTRIES_MAX = 4096
SIGNATURE_BYTES_MAX = 128
NODE_ID_MAX = (1 << 16) - 1
UINT64_MAX = (1 << 64) - 1


def rlp_encode(item: Any) -> bytes:
    """Canonical RLP of nested lists/tuples of ``bytes`` and non-negative ``int``.

    Byte-for-byte what ``rlp.encode`` gives for such items (checked against it in the
    tests), without its per-item sedes inference, which dominated the cost of a step.
    """
    kind = type(item)
    if kind is bytes:
        n = len(item)
        if n == 1 and item[0] < 0x80:
            return item  # type: ignore[no-any-return]
        if n < 56:
            return bytes((0x80 + n,)) + item  # type: ignore[no-any-return]
        return _long_prefix(n, 0x80) + item  # type: ignore[no-any-return]
    if kind is list or kind is tuple:
        payload = b"".join([rlp_encode(x) for x in item])
        n = len(payload)
        return (bytes((0xC0 + n,)) if n < 56 else _long_prefix(n, 0xC0)) + payload
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise ValueError("RLP integers are non-negative")
        if item == 0:
            return b"\x80"
        if item < 0x80:
            return bytes((item,))
        return rlp_encode(item.to_bytes((item.bit_length() + 7) // 8, "big"))
    if isinstance(item, bytes | list | tuple):  # subclasses, e.g. NamedTuple ballots
        return rlp_encode(bytes(item) if isinstance(item, bytes) else list(item))
    raise TypeError(f"cannot RLP-encode {type(item).__name__}")


def _long_prefix(length: int, offset: int) -> bytes:
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((offset + 55 + len(size),)) + size


def _check_uint(name: str, value: object, limit: int = UINT64_MAX) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InvalidMessage(f"{name} must be an integer in [0, {limit}], got {value!r}")


def _check_bytes(name: str, value: object, limit: int) -> None:
    if not isinstance(value, bytes) or len(value) > limit:
        raise InvalidMessage(f"{name} must be bytes of at most {limit} bytes")


def _check_tuple(name: str, value: object, item_type: type) -> None:
    if not isinstance(value, tuple) or len(value) > ENTRIES_MAX:
        raise InvalidMessage(f"{name} must be a tuple of at most {ENTRIES_MAX} entries")
    for item in value:
        if not isinstance(item, item_type):
            raise InvalidMessage(f"{name} holds a {type(item).__name__}, not {item_type.__name__}")


def _check_sigs(name: str, value: object) -> None:
    if not isinstance(value, tuple) or len(value) > NODE_ID_MAX:
        raise InvalidMessage(f"{name} must be a tuple")
    for item in value:
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidMessage(f"{name} entries are (node, signature) pairs")
        _check_uint(f"{name}.node", item[0], NODE_ID_MAX)
        _check_bytes(f"{name}.signature", item[1], SIGNATURE_BYTES_MAX)


# -- readers of decoded RLP ------------------------------------------------------------


def _uint(item: Any) -> int:
    if not isinstance(item, bytes):
        raise InvalidMessage("expected an integer, got a list")
    if item[:1] == b"\x00":
        raise InvalidMessage("non-minimal integer")
    if len(item) > 8:
        raise InvalidMessage("integer too large")
    return int.from_bytes(item, "big")


def _bytes(item: Any) -> bytes:
    if not isinstance(item, bytes):
        raise InvalidMessage("expected bytes, got a list")
    return item


def _list(item: Any, length: int | None = None) -> list[Any]:
    if not isinstance(item, list):
        raise InvalidMessage("expected a list")
    if length is not None and len(item) != length:
        raise InvalidMessage(f"expected a list of {length} items, got {len(item)}")
    if len(item) > ENTRIES_MAX:
        raise InvalidMessage("list too long")
    return item


def _sigs(item: Any) -> tuple[tuple[int, bytes], ...]:
    out = []
    for pair in _list(item):
        node, sig = _list(pair, 2)
        out.append((_uint(node), _bytes(sig)))
    return tuple(out)
