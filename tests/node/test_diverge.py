"""The divergence search finds the first differing height in O(log n) lookups; the
``diverge_at_height`` fault changes exactly one receipt and the state, at exactly one height."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.block import EMPTY_CERTIFICATE, ZERO_HASH, Block, build_block
from chain.db.memory import MemoryDB
from chain.executor import Executor
from chain.keys import PrivateKey
from chain.state import EMPTY_STATE_COMMITMENT, StateDB, apply_writes
from chain.tx import make_transaction
from node.config import ConfigError, parse_config
from node.diverge import DivergenceError, common_range, first_divergence
from node.diverge_fault import DivergingExecutor


def _root(node: int, height: int, diverged_at: int | None) -> bytes:
    """A chained-looking commitment: node 1 differs from ``diverged_at`` on."""
    tag = b"b" if node == 1 and diverged_at is not None and height >= diverged_at else b"a"
    return hashlib.sha256(tag + height.to_bytes(8, "big")).digest()


@st.composite
def _case(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int], int, int | None]:
    spans = []
    for _ in range(2):
        floor = draw(st.integers(0, 300))
        head = floor + draw(st.integers(0, 3000))
        spans.append((floor, head))
    low = max(f for f, _ in spans)
    high = min(h for _, h in spans)
    if low > high:  # make them overlap: node 1's span is moved onto node 0's
        spans[1] = (spans[0][0], spans[0][1] + draw(st.integers(0, 50)))
    start = draw(st.integers(0, 400))
    diverged = draw(st.none() | st.integers(0, 3500))
    return spans[0], spans[1], start, diverged


@settings(max_examples=300, deadline=None)
@given(_case())
def test_the_search_finds_the_first_diverging_height_exactly_and_cheaply(
    case: tuple[tuple[int, int], tuple[int, int], int, int | None],
) -> None:
    span_a, span_b, start, diverged = case
    spans = (span_a, span_b)
    looked: list[tuple[int, int]] = []

    def post_state(node: int, height: int) -> bytes:
        floor, head = spans[node]
        assert floor <= height <= head, f"node {node} asked for {height} outside {spans[node]}"
        assert height >= start
        looked.append((node, height))
        return _root(node, height, diverged)

    low = max(start, span_a[0], span_b[0])
    high = min(span_a[1], span_b[1])
    if low > high:
        with pytest.raises(DivergenceError, match="no height in common"):
            first_divergence(post_state, spans, start)
        assert not looked
        return
    found = first_divergence(post_state, spans, start)
    assert (found.low, found.high) == (low, high)
    if diverged is None or diverged > high:
        assert found.height is None
    else:
        assert found.height == max(diverged, low)
        assert found.at_low == (diverged <= low)
    n = high - low + 1
    assert found.lookups == len(looked)
    assert found.lookups <= 2 * math.ceil(math.log2(n)) + 4, (n, found.lookups)
    assert len(set(looked)) == len(looked), "a height was looked up twice"


def test_common_range_refuses_malformed_spans() -> None:
    with pytest.raises(DivergenceError, match="not a range"):
        common_range([(5, 4), (0, 10)])
    with pytest.raises(DivergenceError, match="two nodes"):
        common_range([(0, 10)])
    assert common_range([(3, 10), (0, 8)], start=1) == (3, 8)
    with pytest.raises(DivergenceError, match="from 11 up to 8"):
        common_range([(3, 10), (0, 8)], start=11)


# ------------------------------------------------------------------ the fault

CHAIN = 7
ALICE = PrivateKey.from_seed(b"\x01" * 32)
BOB = PrivateKey.from_seed(b"\x02" * 32)
PROPOSER = b"\xee" * 20


def _state() -> StateDB:
    db = MemoryDB()
    state = StateDB(db, EMPTY_STATE_COMMITMENT)
    state.set_balance(ALICE.address, 10_000_000)
    result = state.commit()
    apply_writes(db, result.writes)
    return StateDB(db, result.commitment)


def _block(height: int, fee: int) -> Block:
    txs = [make_transaction(ALICE, chain_id=CHAIN, nonce=i, to=BOB.address, amount=10 + i,
                            fee=fee, gas_limit=100_000, data=b"") for i in range(3)]
    return build_block(chain_id=CHAIN, height=height, parent_hash=b"\x11" * 32,
                       timestamp=1_700_000_000_000, proposer=PROPOSER, state_root=ZERO_HASH,
                       transactions=txs, last_commit=EMPTY_CERTIFICATE)


@pytest.mark.parametrize("fee", [0, 3])
def test_the_fault_overcharges_transaction_zero_of_its_block_only(fee: int) -> None:
    honest, faulty = Executor(CHAIN), DivergingExecutor(CHAIN, None, height=1)
    at = _block(1, fee)
    good = honest.apply_block(_state(), at)
    bad = faulty.apply_block(_state(), at)
    charge = max(fee, 1)
    assert bad.receipts[0].gas_used == good.receipts[0].gas_used + 1
    assert bad.receipts[0].fee_paid == good.receipts[0].fee_paid + charge
    assert bad.receipts[1:] == good.receipts[1:]
    assert bad.state_root != good.state_root
    state = _state()
    faulty.apply_block(state, at)
    assert state.balance(PROPOSER) == sum(r.fee_paid for r in good.receipts) + charge
    later = DivergingExecutor(CHAIN, None, height=2)  # not this block: nothing changes
    assert later.apply_block(_state(), at) == good


def test_the_fault_is_refused_outside_a_test_network() -> None:
    with pytest.raises(ConfigError, match=r"testing\.diverge_at_height: a test-network fault"):
        parse_config({"testing": {"diverge_at_height": 4}}, Path("/x"))
    config = parse_config({"testing": {"diverge_at_height": 4, "test_network_only": True}},
                          Path("/x"))
    assert config.testing.diverge_at_height == 4
    with pytest.raises(ConfigError, match="non-negative"):
        parse_config({"testing": {"diverge_at_height": -1, "test_network_only": True}},
                     Path("/x"))
