"""The testnet checkers on fabricated histories: clean ones pass, broken ones are flagged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from testnet.check import (
    Ack,
    BlockRecord,
    TxRecord,
    check_agreement,
    check_conservation,
    check_double_spend,
    check_liveness,
    check_lost_acks,
    replay_balances,
)

A, B, C, P = "0xaa", "0xbb", "0xcc", "0xpp"


def tx(h: str, sender: str = A, nonce: int = 0, to: str = B, amount: int = 10, fee: int = 1,
       success: bool = True) -> TxRecord:  # fmt: skip
    return TxRecord(h, sender, nonce, to, amount, success, fee)


def chain(*blocks: BlockRecord) -> dict[int, BlockRecord]:
    return {b.height: b for b in blocks}


def test_agreement_passes_on_identical_chains_and_prefixes() -> None:
    full = chain(BlockRecord(1, "h1"), BlockRecord(2, "h2"), BlockRecord(3, "h3"))
    behind = chain(BlockRecord(1, "h1"), BlockRecord(2, "h2"))
    assert check_agreement({0: full, 1: full, 2: behind}) == []


def test_agreement_flags_a_fork_at_its_height() -> None:
    a = chain(BlockRecord(1, "h1"), BlockRecord(2, "h2"))
    b = chain(BlockRecord(1, "h1"), BlockRecord(2, "X2"))
    found = check_agreement({0: a, 1: b, 2: a})
    assert len(found) == 1 and found[0].check == "agreement" and "height 2" in found[0].detail


def test_acknowledged_tx_present_everywhere_passes() -> None:
    c = chain(BlockRecord(1, "h1", (tx("t1"),)), BlockRecord(2, "h2", (tx("t2", nonce=1),)))
    acks = [Ack("t1", 1), Ack("t2", None)]
    assert check_lost_acks(acks, {0: c, 1: c}) == []


def test_lost_acknowledged_tx_is_flagged_on_the_node_that_lost_it() -> None:
    good = chain(BlockRecord(1, "h1", (tx("t1"),)), BlockRecord(2, "h2"))
    lossy = chain(BlockRecord(1, "h1"), BlockRecord(2, "h2"))
    found = check_lost_acks([Ack("t1", 1)], {0: good, 3: lossy})
    assert [v.check for v in found] == ["lost-ack"] and "node 3" in found[0].detail


def test_ack_at_a_different_height_is_flagged_and_a_lagging_node_is_not() -> None:
    moved = chain(BlockRecord(1, "h1"), BlockRecord(2, "h2", (tx("t1"),)))
    lagging = chain(BlockRecord(0, "h0"))
    found = check_lost_acks([Ack("t1", 1)], {0: moved, 1: lagging})
    assert len(found) == 1 and "at height 2" in found[0].detail
    assert check_lost_acks([Ack("t9", None)], {0: moved})[0].check == "lost-ack"


def test_double_spend_flags_same_sender_nonce_and_same_hash() -> None:
    clean = chain(BlockRecord(1, "h1", (tx("t1", nonce=0), tx("t2", nonce=1))))
    assert check_double_spend({0: clean}) == []
    twice = chain(BlockRecord(1, "h1", (tx("t1", nonce=0),)), BlockRecord(2, "h2", (tx("t3", nonce=0),)))
    found = check_double_spend({0: twice})
    assert len(found) == 1 and "nonce 0 committed 2 times" in found[0].detail
    replayed = chain(BlockRecord(1, "h1", (tx("t1"),)), BlockRecord(2, "h2", (tx("t1"),)))
    assert len(check_double_spend({1: replayed})) == 2


def test_a_rejected_reinclusion_is_neither_a_double_spend_nor_a_moved_ack() -> None:
    """A block may carry an already-committed transaction; the executor rejects it without
    effect (no fee, no success), which spends nothing and does not move where it committed."""
    rejected = tx("t1", success=False, fee=0)
    again = chain(BlockRecord(1, "h1", (tx("t1"),)), BlockRecord(2, "h2", (rejected,)))
    assert check_double_spend({0: again}) == []
    assert check_lost_acks([Ack("t1", 1)], {0: again}) == []
    early = chain(BlockRecord(1, "h1", (rejected,)), BlockRecord(2, "h2", (tx("t1"),)))
    assert check_lost_acks([Ack("t1", 2)], {0: early}) == []


def test_conservation_with_fees_to_the_proposer() -> None:
    genesis = {A: 1000, B: 0}
    c = chain(BlockRecord(1, "h1", (tx("t1", amount=100, fee=5), tx("t2", nonce=1, success=False,
                                                                    fee=7)), proposer=P))  # fmt: skip
    balances = replay_balances(genesis, c)
    assert balances == {A: 1000 - 100 - 5 - 7, B: 100, P: 12}
    assert check_conservation(genesis, balances, c) == []


def test_conservation_flags_money_created_or_a_wrong_balance() -> None:
    genesis = {A: 1000}
    c = chain(BlockRecord(1, "h1", (tx("t1", amount=100, fee=5),), proposer=P))
    minted = {A: 895, B: 100, P: 6}
    found = check_conservation(genesis, minted, c)
    assert {v.check for v in found} == {"conservation"}
    assert "difference +1" in found[0].detail and any(P in v.detail for v in found)
    # Same total, wrong split: only the replay sees it.
    shifted = {A: 894, B: 101, P: 5}
    found = check_conservation(genesis, shifted, c)
    assert len(found) == 2 and all("replay" in v.detail for v in found)
    assert check_conservation(genesis, {A: 999}) != []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.sampled_from([A, B, C]),
                          st.integers(0, 50), st.integers(0, 3), st.booleans()), max_size=20))  # fmt: skip
def test_replay_always_conserves_the_supply(moves: list[tuple[str, str, int, int, bool]]) -> None:
    txs = tuple(TxRecord(f"t{i}", s, i, t, amt, ok, fee) for i, (s, t, amt, fee, ok) in enumerate(moves))
    genesis = {A: 500, B: 500, C: 500}
    c = chain(BlockRecord(1, "h1", txs, proposer=P))
    balances = replay_balances(genesis, c)
    assert sum(balances.values()) == 1500
    assert check_conservation(genesis, balances, c) == []


def test_liveness_reports_recovery_time_or_a_stall() -> None:
    samples = [(0.0, 5), (1.0, 5), (2.0, 5), (3.5, 6)]
    found, recovery = check_liveness(samples, healed_at=1.0, bound_s=5.0)
    assert found == [] and recovery == 2.5
    found, recovery = check_liveness(samples, healed_at=1.0, bound_s=2.0)
    assert found[0].check == "liveness" and recovery == 2.5
    stalled = [(0.0, 5), (1.0, 5), (9.0, 5)]
    found, recovery = check_liveness(stalled, healed_at=1.0, bound_s=5.0)
    assert recovery is None and "stayed at 5" in found[0].detail
