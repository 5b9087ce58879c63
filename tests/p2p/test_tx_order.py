"""SenderFifo: a sender's transactions released in nonce order, once, within bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2p.tx_order import SenderFifo

A, B = b"a" * 20, b"b" * 20


def test_reverse_order_is_released_in_nonce_order_when_the_gap_closes() -> None:
    asked: list[bytes] = []

    def oracle(sender: bytes) -> int:
        asked.append(sender)
        return 0

    fifo: SenderFifo[str] = SenderFifo(oracle)
    for nonce in (3, 2, 1):
        assert fifo.offer(A, nonce, f"a{nonce}") == []
    assert len(fifo) == 3 and fifo.statistics().held_total == 3
    assert fifo.offer(A, 0, "a0") == ["a0", "a1", "a2", "a3"]
    assert len(fifo) == 0
    assert fifo.offer(A, 4, "a4") == ["a4"]          # in order: no oracle call needed
    assert asked == [A]                              # asked once, at the first hold


def test_committed_nonces_count_and_other_senders_are_independent() -> None:
    head = {A: 5, B: 0}
    fifo: SenderFifo[str] = SenderFifo(lambda s: head[s])
    assert fifo.offer(A, 5, "a5") == ["a5"]          # the head says 0..4 are used
    assert fifo.offer(A, 3, "a3") == ["a3"]          # below: released, the mempool judges
    assert fifo.offer(B, 1, "b1") == []
    assert fifo.offer(A, 7, "a7") == []
    assert fifo.advance(A, 7) == ["a7"]              # a block used 5 and 6
    assert fifo.advance(B, 3) == []                  # b1 is stale now
    assert fifo.statistics().dropped_stale == 1 and len(fifo) == 0


def test_oracle_catches_admissions_made_elsewhere() -> None:
    admitted = {A: 0}
    fifo: SenderFifo[str] = SenderFifo(lambda s: admitted[s])
    assert fifo.offer(A, 0, "a0") == ["a0"]
    admitted[A] = 3                                   # nonces 1, 2 came in through the API
    assert fifo.offer(A, 3, "a3") == ["a3"]           # nothing held: the oracle is asked
    assert fifo.offer(A, 6, "a6") == []
    admitted[A] = 6                                   # 4, 5 through the API: seen once they commit
    assert fifo.offer(A, 7, "a7") == []
    assert fifo.advance(A, 6) == ["a6", "a7"]


def test_bounds_drop_the_oldest_and_count() -> None:
    fifo: SenderFifo[int] = SenderFifo(lambda s: 0, held_max=4, held_per_sender_max=2)
    fifo.offer(A, 5, 5)
    fifo.offer(A, 6, 6)
    fifo.offer(A, 7, 7)                               # A's oldest (5) goes
    assert fifo.statistics().dropped_full == 1 and len(fifo) == 2
    fifo.offer(B, 1, 1)
    fifo.offer(B, 2, 2)
    fifo.offer(B, 3, 3)                               # B's oldest (1) goes, B has 2 again
    fifo.offer(b"c" * 20, 9, 9)                       # total full: the oldest of all (6) goes
    stats = fifo.statistics()
    assert stats.dropped_full == 3 and stats.held == 4
    assert fifo.advance(A, 7) == [7]
    fifo.offer(A, 8, 8)
    fifo.offer(A, 8, 80)                              # not held: it was released in order
    assert fifo.statistics().duplicates == 0
    fifo.offer(B, 3, 33)
    assert fifo.statistics().duplicates == 1
    with pytest.raises(ValueError):
        SenderFifo(lambda s: 0, held_max=0)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 14)), min_size=1, max_size=60),
       st.integers(0, 2**32), st.integers(1, 16), st.integers(1, 48))
def test_random_interleavings_release_in_nonce_order_once_within_bounds(
        offers: list[tuple[int, int]], seed: int, per_sender: int, total: int) -> None:
    """Senders' txs arrive shuffled (with repeats); releases per sender are in nonce order,
    never twice, contiguous from 0; with room for everything, all are released."""
    rng = random.Random(seed)
    rng.shuffle(offers)
    fifo: SenderFifo[tuple[int, int]] = SenderFifo(
        lambda s: 0, held_max=total, held_per_sender_max=per_sender)
    released: dict[int, list[int]] = {}
    offered: dict[int, set[int]] = {}
    for sender, nonce in offers:
        offered.setdefault(sender, set()).add(nonce)
        first_time = nonce not in released.get(sender, [])
        for s, n in fifo.offer(bytes([sender]) * 20, nonce, (sender, nonce)):
            assert s == sender
            got = released.setdefault(s, [])
            if first_time or n != nonce:
                assert n not in got, "released twice"
            got.append(n)
        assert len(fifo) <= total
        assert fifo.statistics().held <= total
    for s, got in released.items():
        firsts = list(dict.fromkeys(got))
        assert firsts == list(range(len(firsts))), f"sender {s} out of order: {got}"
    # with room for everything, every contiguous prefix offered was released
    if per_sender >= 15 and total >= 45:
        for s, nonces in offered.items():
            k = 0
            while k in nonces:
                k += 1
            assert set(range(k)) <= set(released.get(s, []))


def test_hold_check_runs_only_before_holding_and_retract_undoes_a_bogus_release() -> None:
    checked: list[str] = []

    def signed(item: str) -> bool:
        checked.append(item)
        return not item.startswith("forged")

    fifo: SenderFifo[str] = SenderFifo(lambda s: 0, hold_check=signed)
    assert fifo.offer(A, 0, "forged0") == ["forged0"]     # released at once: not checked
    fifo.retract(A, 0)                                     # the mempool refused it
    assert fifo.offer(A, 2, "forged2") == []               # checked, refused, not held
    assert fifo.offer(A, 1, "a1") == []                    # 0 is expected again: held
    assert fifo.offer(A, 0, "a0") == ["a0", "a1"]
    assert checked == ["forged2", "a1"]
    stats = fifo.statistics()
    assert stats.refused == 1 and stats.held == 0
