"""Fast, exact RLP for the few fixed shapes the state layer writes on its hot path.

The generic ``rlp`` package costs 10-30 µs per object; a block of 2,000 transfers touches
~4,000 accounts, so the state layer encodes accounts, commitment entries and Merkle leaves
by hand here. Every function produces byte-for-byte the canonical RLP that
``chain.encoding.encode`` would (the tests compare them on random values), and
:func:`decode_account_fields` accepts exactly the canonical encoding of an account.

Called by :mod:`chain.state` only.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "decode_account_fields",
    "encode_account_fields",
    "encode_bytes",
    "encode_list_payload",
    "encode_pair",
    "encode_pairs",
]

_UINT64_MAX = (1 << 64) - 1
_UINT256_MAX = (1 << 256) - 1


def encode_bytes(data: bytes) -> bytes:
    """RLP of one byte string."""
    n = len(data)
    if n == 1 and data[0] < 0x80:
        return data
    if n <= 55:
        return bytes((0x80 + n,)) + data
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xB7 + len(length),)) + length + data


def encode_list_payload(payload: bytes) -> bytes:
    """RLP of a list whose items are already encoded and concatenated into ``payload``."""
    n = len(payload)
    if n <= 55:
        return bytes((0xC0 + n,)) + payload
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0xF7 + len(length),)) + length + payload


def encode_pair(key: bytes, value: bytes) -> bytes:
    """RLP of the two-item list ``[key, value]``."""
    return encode_list_payload(encode_bytes(key) + encode_bytes(value))


_STRING_HEADERS = [bytes((0x80 + n,)) for n in range(56)]
#: List headers for payloads of 0..113 bytes (two short strings).
_LIST_HEADERS = [bytes((0xC0 + n,)) if n <= 55 else bytes((0xF8, n)) for n in range(114)]


def encode_pairs(items: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """``[encode_pair(k, v) for k, v in items]``, faster for short keys and values."""
    sh = _STRING_HEADERS
    lh = _LIST_HEADERS
    out: list[bytes] = []
    append = out.append
    for key, value in items:
        lk = len(key)
        lv = len(value)
        if 1 < lk < 56 and 1 < lv < 56:
            append(lh[lk + lv + 2] + sh[lk] + key + sh[lv] + value)
        else:
            append(encode_pair(key, value))
    return out


def _encode_uint(value: int) -> bytes:
    if value < 0x80:
        return b"\x80" if value == 0 else bytes((value,))
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes((0x80 + len(raw),)) + raw  # at most 32 bytes: always the short form


def encode_account_fields(nonce: int, balance: int, code_hash: bytes) -> bytes:
    """RLP of ``[nonce, balance, code_hash]`` exactly as ``Account`` encodes it."""
    assert 0 <= nonce <= _UINT64_MAX and 0 <= balance <= _UINT256_MAX and len(code_hash) == 32
    payload = _encode_uint(nonce) + _encode_uint(balance) + b"\xa0" + code_hash
    n = len(payload)  # 34..75 bytes
    return (bytes((0xC0 + n,)) if n <= 55 else bytes((0xF8, n))) + payload


def _read_item(data: bytes, pos: int) -> tuple[bytes, int]:
    """One byte-string item at ``pos``: returns (value, next position). Raises ValueError."""
    first = data[pos]
    if first < 0x80:
        return data[pos : pos + 1], pos + 1
    if first <= 0xB7:
        end = pos + 1 + first - 0x80
        if end > len(data):
            raise ValueError("truncated item")
        return data[pos + 1 : end], end
    raise ValueError("unexpected long or list item")


def decode_account_fields(data: bytes) -> tuple[int, int, bytes]:
    """Parse the canonical RLP of an account into ``(nonce, balance, code_hash)``.

    Raises:
        ValueError: ``data`` is not exactly the canonical encoding of an account.
    """
    if len(data) < 2:
        raise ValueError("too short for an account")
    first = data[0]
    if 0xC0 <= first <= 0xF7:
        pos = 1
        end = 1 + first - 0xC0
    elif first == 0xF8:
        pos = 2
        end = 2 + data[1]
    else:
        raise ValueError("not an account list")
    if end != len(data):
        raise ValueError("account length mismatch")
    raw_nonce, pos = _read_item(data, pos)
    raw_balance, pos = _read_item(data, pos)
    code_hash, pos = _read_item(data, pos)
    if pos != end or len(code_hash) != 32 or len(raw_nonce) > 8 or len(raw_balance) > 32:
        raise ValueError("malformed account fields")
    nonce = int.from_bytes(raw_nonce, "big")
    balance = int.from_bytes(raw_balance, "big")
    if encode_account_fields(nonce, balance, code_hash) != data:
        raise ValueError("non-canonical account encoding")
    return nonce, balance, code_hash
