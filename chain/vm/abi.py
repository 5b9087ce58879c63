"""The call-data convention of Phalanx contracts (a convention, not enforced by the VM).

Call data is one selector byte followed by 32-byte big-endian arguments::

    data = selector (1 byte) || arg0 (32 bytes) || arg1 (32 bytes) || ...

so a contract reads the selector with ``PUSH 0, CALLDATALOAD, PUSH 248, SHR`` and argument
``i`` with ``PUSH 1+32*i, CALLDATALOAD``. Addresses are words whose low 20 bytes are the
address. Return data is a sequence of 32-byte words. Used by the examples, tests and tools
that build call data.
"""

from __future__ import annotations

__all__ = ["address_word", "decode_words", "encode_call", "word"]

_WORD_MAX = (1 << 256) - 1


def word(value: int | bytes) -> bytes:
    """A 32-byte big-endian word from an int in ``[0, 2**256)`` or up to 32 bytes."""
    if isinstance(value, bytes):
        if len(value) > 32:
            raise ValueError(f"a word holds at most 32 bytes, got {len(value)}")
        return value.rjust(32, b"\x00")
    if not 0 <= value <= _WORD_MAX:
        raise ValueError(f"{value} does not fit in a 256-bit word")
    return value.to_bytes(32, "big")


def address_word(address: bytes) -> bytes:
    """The word form of a 20-byte address."""
    if len(address) != 20:
        raise ValueError("addresses are 20 bytes")
    return word(address)


def encode_call(selector: int, *args: int | bytes) -> bytes:
    """Call data for method ``selector`` (0..255) with word arguments."""
    if not 0 <= selector <= 0xFF:
        raise ValueError(f"selector {selector} is not one byte")
    return bytes([selector]) + b"".join(word(a) for a in args)


def decode_words(data: bytes) -> list[int]:
    """Return data split into 32-byte words (a trailing partial word is an error)."""
    if len(data) % 32:
        raise ValueError(f"return data of {len(data)} bytes is not whole words")
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]
