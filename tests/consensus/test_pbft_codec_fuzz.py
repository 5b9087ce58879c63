"""The hand-written strict RLP reader accepts exactly the bytes the generic rlp library accepts.

Reference: strict ``rlp.decode`` plus a re-encoding check (the PBFT decoder's former path).
Inputs: arbitrary bytes, canonical encodings of random nested items (strings around the
55/56-byte boundary), real PBFT messages, and all of these mutated (a byte flipped, cut,
inserted or deleted, prefixes rewritten in a longer form). Both must agree on accept/reject
and, when accepting, on the decoded item; ``decode_message`` must agree with a reference
decoder built on the library.
"""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus.contract import InvalidMessage
from consensus.pbft import decode_message
from consensus.pbft._codec import RLP_DEPTH_MAX, strict_rlp
from consensus.pbft.messages import MESSAGE_BYTES_MAX, _decode_signed
from tests.consensus.test_pbft_messages import all_messages

SIZE_MAX = 1 << 20


def reference(data: bytes) -> Any:
    """The generic library's verdict: the item, or ``None`` when it rejects ``data``."""
    try:
        item = rlp.decode(data, strict=True)
    except (rlp.DecodingError, rlp.DeserializationError, RecursionError, ValueError, TypeError, IndexError):
        return None
    if rlp.encode(item) != data:
        return None
    return item


def ours(data: bytes) -> Any:
    try:
        return strict_rlp(data, SIZE_MAX)
    except InvalidMessage:
        return None


def reference_message(data: bytes) -> Any:
    item = reference(data)
    if item is None:
        return None
    try:
        return _decode_signed(item, None)
    except InvalidMessage:
        return None


def ours_message(data: bytes) -> Any:
    try:
        return decode_message(data)
    except InvalidMessage:
        return None


def assert_same(data: bytes) -> None:
    expected = reference(data)
    got = ours(data)
    assert got == expected, data.hex()
    assert ours_message(data) == reference_message(data), data.hex()


_strings = st.one_of(
    st.binary(max_size=3),
    st.binary(min_size=54, max_size=58),
    st.integers(0, 0x81).map(lambda b: bytes([b])),
    st.binary(max_size=300),
)
_items = st.recursive(_strings, lambda inner: st.lists(inner, max_size=6), max_leaves=24)
_messages = st.sampled_from([m.encode() for m in all_messages()])  # type: ignore[attr-defined]


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete", "append"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0xB7, 0xB8, 0xB9, 0xBF,
                                             0xC0, 0xF7, 0xF8, 0xF9, 0xFF]))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        elif op == "delete" and data:
            del data[at]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=400, deadline=None)
@given(data=_mutated(_items.map(rlp.encode)))
def test_canonical_items_and_their_mutations(data: bytes) -> None:
    assert_same(data)


@settings(max_examples=400, deadline=None)
@given(data=_mutated(_messages))
def test_real_messages_and_their_mutations(data: bytes) -> None:
    assert_same(data)


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x7f", b"\x80", b"\x81\x00", b"\x81\x7f", b"\x81\x80", b"\xb8\x37" + b"a" * 55,
    b"\xb8\x38" + b"a" * 56, b"\xb9\x00\x38" + b"a" * 56, b"\xc0", b"\xc1\x80", b"\xc2\x81\x01",
    b"\xf8\x37" + b"\x80" * 55, b"\xf8\x38" + b"\x80" * 56, b"\xf9\x00\x38" + b"\x80" * 56,
    b"\xc1\xc0\x00", b"\xc2\xc0", b"\xbf" + b"\xff" * 8, b"\xff" + b"\xff" * 8,
], ids=lambda d: d[:4].hex() or "empty")
def test_boundary_cases(data: bytes) -> None:
    assert_same(data)


def test_nesting_is_bounded_and_memoryview_accepted() -> None:
    deep_ok = rlp.encode(_nest(RLP_DEPTH_MAX))
    assert strict_rlp(memoryview(deep_ok), SIZE_MAX) == reference(deep_ok)
    with pytest.raises(InvalidMessage, match="nested"):
        strict_rlp(rlp.encode(_nest(RLP_DEPTH_MAX + 1)), SIZE_MAX)
    with pytest.raises(InvalidMessage):
        strict_rlp(b"\x80" * 3, 2)
    with pytest.raises(InvalidMessage):
        strict_rlp("text", SIZE_MAX)  # type: ignore[arg-type]


def test_every_real_message_decodes_to_itself() -> None:
    for msg in all_messages():
        data = msg.encode()  # type: ignore[attr-defined]
        assert decode_message(data) == msg
        assert strict_rlp(data, MESSAGE_BYTES_MAX) == rlp.decode(data)


def _nest(depth: int) -> Any:
    item: Any = b"x"
    for _ in range(depth):
        item = [item]
    return item
