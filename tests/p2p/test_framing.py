"""Length-prefixed framing: table round trips, random chunking, oversized frames."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.errors import FrameTooLarge
from p2p.framing import FrameDecoder, encode_frame

TABLE = [
    (b"", b"\x00\x00\x00\x00"),
    (b"a", b"\x00\x00\x00\x01a"),
    (b"hello", b"\x00\x00\x00\x05hello"),
    (b"\x00" * 256, b"\x00\x00\x01\x00" + b"\x00" * 256),
]


@pytest.mark.parametrize(("body", "wire"), TABLE)
def test_encode_and_decode_table(body: bytes, wire: bytes) -> None:
    assert encode_frame(body, 1024) == wire
    assert FrameDecoder(1024).feed_frames(wire) == [body]


def test_encode_refuses_body_over_limit() -> None:
    with pytest.raises(FrameTooLarge):
        encode_frame(b"x" * 11, 10)


def test_decoder_waits_for_incomplete_header_and_body() -> None:
    d = FrameDecoder(100)
    assert d.feed_frames(b"\x00\x00") == []
    assert d.feed_frames(b"\x00\x03ab") == []
    assert d.buffered_bytes == 6
    assert d.feed_frames(b"c\x00\x00\x00\x01z") == [b"abc", b"z"]
    assert d.buffered_bytes == 0


def test_oversized_header_raises_before_body_arrives_and_decoder_stays_failed() -> None:
    d = FrameDecoder(10)
    with pytest.raises(FrameTooLarge, match="11 bytes"):
        d.feed(b"\x00\x00\x00\x0b")
    assert d.buffered_bytes == 0  # the body is never buffered
    with pytest.raises(FrameTooLarge):
        d.feed(b"\x00\x00\x00\x01a")
    with pytest.raises(FrameTooLarge):
        d.next_frame()


def test_huge_announced_length_is_refused_from_the_header_alone() -> None:
    d = FrameDecoder(4 * 1024 * 1024)
    with pytest.raises(FrameTooLarge):
        d.feed(b"\xff\xff\xff\xff")


def test_limit_can_grow_between_frames() -> None:
    d = FrameDecoder(4)
    d.feed(encode_frame(b"abcd", 4) + encode_frame(b"x" * 50, 100))
    assert d.next_frame() == b"abcd"
    d.frame_bytes_max = 100
    assert d.next_frame() == b"x" * 50


@settings(max_examples=100, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_any_chunking_of_a_frame_stream_yields_the_same_frames(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(b, 300) for b in bodies)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    d = FrameDecoder(300)
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out += d.feed_frames(stream[a:b])
    assert out == bodies
    assert d.buffered_bytes == 0
