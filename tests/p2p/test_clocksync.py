"""Unit tests of the sans-IO clock sync cores: Cristian estimates, Berkeley rounds, codecs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.clocksync import (
    Adjust,
    BerkeleyCoordinator,
    ClockReading,
    CristianClient,
    InvalidClockMessage,
    TimeReply,
    TimeRequest,
    decode_clock_message,
    median_time,
    timestamp_within,
)


def _round_trip(client: CristianClient, server: CristianClient, peer: int, t0_true: int,
                serve_true: int, t1_true: int, c_off: int, s_off: int) -> float:
    req = client.request(peer, ClockReading(t0_true + c_off))
    reply = server.serve(req, ClockReading(serve_true + s_off))
    est = client.on_reply(peer, reply, ClockReading(t1_true + c_off))
    assert est is not None
    assert est.error_us == est.rtt_us / 2
    return est.offset_us


def test_cristian_symmetric_delay_gives_exact_offset() -> None:
    client, server = CristianClient(0), CristianClient(1)
    off = _round_trip(client, server, 1, 1_000, 1_500, 2_000, c_off=50_000, s_off=70_000)
    assert off == 20_000


@settings(max_examples=200, deadline=None)
@given(t0=st.integers(0, 10**9), up=st.integers(0, 10**6), down=st.integers(0, 10**6),
       c_off=st.integers(0, 10**9), s_off=st.integers(0, 10**9))
def test_cristian_error_is_at_most_half_the_round_trip(t0: int, up: int, down: int,
                                                       c_off: int, s_off: int) -> None:
    client, server = CristianClient(0), CristianClient(1)
    off = _round_trip(client, server, 1, t0, t0 + up, t0 + up + down, c_off, s_off)
    assert abs(off - (s_off - c_off)) <= (up + down) / 2


def test_cristian_keeps_the_tightest_estimate_and_drops_strays() -> None:
    client, server = CristianClient(0, rtt_us_max=5_000), CristianClient(1)
    _round_trip(client, server, 1, 0, 900, 1_000, 0, 0)
    _round_trip(client, server, 1, 2_000, 2_100, 2_200, 0, 0)
    best = client.best(1)
    assert best is not None and best.rtt_us == 200
    # A reply nobody asked for, a reply from the wrong peer, a too-slow reply: dropped.
    assert client.on_reply(1, TimeReply(1, 999, 5), ClockReading(0)) is None
    req = client.request(1, ClockReading(0))
    assert client.on_reply(2, TimeReply(2, req.nonce, 5), ClockReading(10)) is None
    req = client.request(1, ClockReading(0))
    assert client.on_reply(1, TimeReply(1, req.nonce, 5), ClockReading(6_000)) is None
    assert client.dropped == 3


def test_cristian_pending_requests_are_bounded() -> None:
    client = CristianClient(0, pending_max=2)
    first = client.request(1, ClockReading(0))
    client.request(1, ClockReading(1))
    client.request(1, ClockReading(2))
    assert client.on_reply(1, TimeReply(1, first.nonce, 0), ClockReading(3)) is None


def _berkeley(offsets: dict[int, int], reject: bool = True) -> tuple[object, dict[int, int]]:
    coord = BerkeleyCoordinator(0, offsets, outlier_us=1_000, reject_outliers=reject)
    servers = {p: CristianClient(p) for p in offsets}
    for peer, req in coord.start_round(ClockReading(10_000)):
        reply = servers[peer].serve(req, ClockReading(10_050 + offsets[peer]))
        coord.on_reply(peer, reply, ClockReading(10_100))
    rnd, sends = coord.finish_round()
    assert all(isinstance(a, Adjust) and a.round == 1 for _, a in sends)
    return rnd, dict(rnd.adjustments)


def test_berkeley_drops_the_outlier_and_converges_the_rest() -> None:
    offsets = {1: 300, 2: -300, 3: 10**9}
    rnd, adj = _berkeley(offsets)
    assert rnd.dropped == frozenset({3})  # type: ignore[attr-defined]
    after = {0: adj[0], 1: 300 + adj[1], 2: -300 + adj[2]}
    assert max(after.values()) - min(after.values()) <= 1
    assert abs(after[0]) <= 1          # the honest average is 0


def test_berkeley_without_outlier_rejection_is_dragged_by_the_liar() -> None:
    rnd, adj = _berkeley({1: 300, 2: -300, 3: 10**9}, reject=False)
    assert rnd.dropped == frozenset()  # type: ignore[attr-defined]
    assert adj[0] > 10**8              # every honest clock jumps towards the liar


def test_codec_round_trips_and_rejects_non_canonical() -> None:
    for msg in (TimeRequest(1, 2), TimeReply(3, 4, 5), Adjust(0, 7, -12), Adjust(0, 7, 12)):
        assert decode_clock_message(msg.encode()) == msg
    import rlp
    for bad in (b"", b"\x80", rlp.encode([9, 0, 0, 0, 0]), rlp.encode([1, 0, 0, 1, 0]),
                rlp.encode([3, 0, 0, 0, 1]), rlp.encode([3, 0, 0, 5, 2]),
                rlp.encode([b"\x00\x01", 0, 0, 0, 0])):
        with pytest.raises(InvalidClockMessage):
            decode_clock_message(bad)
    with pytest.raises(InvalidClockMessage):
        TimeReply(1, 1, -1)


def test_median_time_bounds_block_timestamps() -> None:
    times = [1_000, 1_200, 50_000, 900, 1_100]
    assert median_time(times) == 1_100
    assert timestamp_within(1_500, times, 500)
    assert not timestamp_within(1_700, times, 500)
    with pytest.raises(ValueError):
        median_time([])


def test_berkeley_with_only_a_liar_to_compare_keeps_the_coordinator_time() -> None:
    rnd, adj = _berkeley({1: 10**9})
    assert rnd.dropped == frozenset({0, 1})  # type: ignore[attr-defined]
    assert adj[0] == 0 and adj[1] == -(10**9)
