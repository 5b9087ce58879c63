"""Vector clocks: comparison, canonical bytes, the clock discipline, and log merging."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.clocks import (
    InvalidVectorStamp,
    VectorClock,
    VectorStamp,
    decode_vector_stamp,
    merge_logs,
)
from p2p.lamport import LAMPORT_MAX, LAMPORT_OBSERVE_MAX, LamportClock


def v(**kw: int) -> VectorStamp:
    return VectorStamp.of({int(k[1:]): c for k, c in kw.items()})


def test_order_and_concurrency() -> None:
    a, b, c = v(n0=1), v(n0=2, n1=1), v(n1=1)
    assert a < b and a <= b and b > a and not b < a
    assert a.happened_before(b) and not b.happened_before(a)
    assert a.concurrent(c) and c.concurrent(a)
    assert not a.concurrent(a) and not a < a and a <= a
    assert a.merge(c) == v(n0=1, n1=1)
    assert v(n0=0, n1=2) == v(n1=2)        # zero entries are not stored


def test_codec_round_trips_and_rejects_non_canonical() -> None:
    for stamp in (VectorStamp(), v(n0=1), v(n3=7, n900=2**40)):
        assert decode_vector_stamp(stamp.encode()) == stamp
    good = v(n1=1, n2=1).encode()
    swapped = bytes.fromhex("c6c20201c20101")       # [[2,1],[1,1]]: unsorted
    zero = bytes.fromhex("c3c20100")                # [[1,0]]: a stored zero
    for bad in (swapped, zero, good + b"\x00", b"\x80", bytes.fromhex("c4c3010101")):
        with pytest.raises(InvalidVectorStamp):
            decode_vector_stamp(bad)


def test_bad_entries_are_refused() -> None:
    with pytest.raises(InvalidVectorStamp):
        VectorStamp(((2, 1), (1, 1)))
    with pytest.raises(InvalidVectorStamp):
        VectorStamp(((1, 0),))
    with pytest.raises(InvalidVectorStamp):
        VectorStamp(((True, 1),))


def test_send_receive_discipline() -> None:
    p, q = VectorClock(0), VectorClock(1)
    s1 = p.tick()
    q.tick()
    r = q.observe(s1)
    assert r == v(n0=1, n1=2)
    assert s1.happened_before(r)
    assert p.tick().concurrent(r)


def test_merge_logs_respects_happens_before() -> None:
    p, q = VectorClock(0), VectorClock(1)
    a = p.tick()                       # p: a (send to q)
    x = q.tick()                       # q: x, concurrent with a
    b = q.observe(a)                   # q: b (receive a)
    c = p.tick()                       # p: c
    logs = {1: [(x, "x"), (b, "b")], 0: [(a, "a"), (c, "c")]}
    merged = [item for _, item in merge_logs(logs)]
    assert sorted(merged) == ["a", "b", "c", "x"]
    assert merged.index("a") < merged.index("b")
    assert merged.index("x") < merged.index("b")
    assert merged == [item for _, item in merge_logs(logs)]      # deterministic
    with pytest.raises(ValueError):
        merge_logs({0: [(c, "c"), (a, "a")]})


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=2, max_value=4))
def test_random_executions_match_ground_truth(seed: int, n: int) -> None:
    """a -> b iff V(a) < V(b); a -> b implies L(a) < L(b); over random executions."""
    rng = random.Random(seed)
    vc = [VectorClock(i) for i in range(n)]
    lc = [LamportClock() for _ in range(n)]
    events: list[tuple[VectorStamp, int, int]] = []     # stamp, lamport, past bitset
    last = [-1] * n
    in_flight: list[tuple[int, VectorStamp, int, int]] = []
    for _ in range(30):
        p = rng.randrange(n)
        past = 0 if last[p] < 0 else events[last[p]][2] | (1 << last[p])
        if in_flight and rng.random() < 0.5:
            dst, stamp, lam, e = in_flight.pop(rng.randrange(len(in_flight)))
            p = dst
            past = (0 if last[p] < 0 else events[last[p]][2] | (1 << last[p]))
            past |= events[e][2] | (1 << e)
            events.append((vc[p].observe(stamp), lc[p].observe(lam), past))
        else:
            events.append((vc[p].tick(), lc[p].tick(), past))
            if rng.random() < 0.6:
                in_flight.append((rng.choice([q for q in range(n) if q != p]),
                                  events[-1][0], events[-1][1], len(events) - 1))
        last[p] = len(events) - 1
    for i, (va, la, _) in enumerate(events):
        for j, (vb, lb, past_b) in enumerate(events):
            hb = bool(past_b >> i & 1)
            assert (va < vb) == hb, (i, j)
            if hb:
                assert la < lb


def test_a_stamp_at_the_counter_bound_leaves_room_to_tick() -> None:
    """A peer's stamp carrying LAMPORT_MAX (even for our own entry) used to leave the clock
    at the bound, so the next tick raised OverflowError; entries adopt at most
    LAMPORT_OBSERVE_MAX."""
    clock = VectorClock(0)
    clock.tick()
    after = clock.observe(VectorStamp.of({0: LAMPORT_MAX, 1: LAMPORT_MAX}))
    assert after.get(0) == LAMPORT_OBSERVE_MAX + 1 and after.get(1) == LAMPORT_OBSERVE_MAX
    assert clock.tick().get(0) == LAMPORT_OBSERVE_MAX + 2
    assert clock.observe(VectorStamp.of({1: 3})).get(1) == LAMPORT_OBSERVE_MAX
