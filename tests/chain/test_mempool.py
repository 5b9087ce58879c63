"""Mempool: every rejection reason, replacement, eviction, selection order, update re-checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chain.block import EMPTY_CERTIFICATE, ZERO_HASH, build_block
from chain.db.memory import MemoryDB
from chain.executor import Executor
from chain.keys import PrivateKey
from chain.mempool import Mempool, MempoolConfig, MempoolRejected, RejectReason
from chain.params import TX_BASE_GAS
from chain.state import EMPTY_STATE_COMMITMENT, StateDB, apply_writes
from chain.tx import Transaction, make_transaction

CHAIN = 3
KEYS = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 7)]
A, B, C = KEYS[0], KEYS[1], KEYS[2]
DEST = b"\xdd" * 20
GAS = TX_BASE_GAS
BALANCE = 100_000_000


def head(
    balances: dict[bytes, int] | None = None, nonces: dict[bytes, int] | None = None
) -> StateDB:
    db = MemoryDB()
    state = StateDB(db, EMPTY_STATE_COMMITMENT)
    for key in KEYS:
        state.set_balance(key.address, BALANCE)
    for addr, amount in (balances or {}).items():
        state.set_balance(addr, amount)
    for addr, nonce in (nonces or {}).items():
        state.set_nonce(addr, nonce)
    result = state.commit()
    apply_writes(db, result.writes)
    return StateDB(db, result.commitment)


def tx(
    key: PrivateKey = A,
    nonce: int = 0,
    *,
    fee: int = 1,
    amount: int = 10,
    gas_limit: int = GAS,
    chain_id: int = CHAIN,
    data: bytes = b"",
) -> Transaction:
    return make_transaction(
        key,
        chain_id=chain_id,
        nonce=nonce,
        to=DEST,
        amount=amount,
        fee=fee,
        gas_limit=gas_limit,
        data=data,
    )


def pool(config: MempoolConfig | None = None, state: StateDB | None = None) -> Mempool:
    return Mempool(CHAIN, config or MempoolConfig(), state or head())


def reject(mempool: Mempool, item: Transaction | bytes) -> RejectReason:
    before = (len(mempool), mempool.size_bytes)
    with pytest.raises(MempoolRejected) as info:
        mempool.add(item)
    assert (len(mempool), mempool.size_bytes) == before
    assert info.value.message
    return info.value.reason


def forged(t: Transaction) -> Transaction:
    return Transaction(
        t.chain_id, t.nonce, t.sender, t.to, t.amount, t.fee, t.gas_limit, t.data, b"\x01" * 64
    )


def test_admits_encoded_and_decoded_and_indexes_them() -> None:
    mp = pool()
    t0, t1 = tx(nonce=0), tx(nonce=1)
    assert mp.add(t0.encoded) == t0.hash
    assert mp.add(t1) == t1.hash
    assert len(mp) == 2 and mp.size_bytes == len(t0.encoded) + len(t1.encoded)
    assert t0.hash in mp and b"\x00" * 32 not in mp
    kept = mp.get(t0.hash)
    assert kept == t0 and kept is not None and kept.verify_signature()
    assert mp.get(b"\x00" * 32) is None
    assert mp.pending(A.address) == [t0, t1]
    assert mp.pending(B.address) == []
    stats = mp.statistics()
    assert (stats.tx_count, stats.senders, stats.added_total) == (2, 1, 2)


REJECTIONS: list[tuple[str, Callable[[Mempool], RejectReason], RejectReason]] = [
    ("garbage", lambda mp: reject(mp, b"\xc0not rlp"), RejectReason.BAD_ENCODING),
    ("forged", lambda mp: reject(mp, forged(tx())), RejectReason.BAD_SIGNATURE),
    ("chain", lambda mp: reject(mp, tx(chain_id=CHAIN + 1)), RejectReason.WRONG_CHAIN_ID),
    ("fee", lambda mp: reject(mp, tx(fee=0)), RejectReason.FEE_TOO_LOW),
    ("gas", lambda mp: reject(mp, tx(gas_limit=GAS - 1)), RejectReason.GAS_LIMIT_TOO_LOW),
    ("gap", lambda mp: reject(mp, tx(nonce=5)), RejectReason.NONCE_GAP_TOO_LARGE),
    ("cost", lambda mp: reject(mp, tx(amount=BALANCE)), RejectReason.INSUFFICIENT_BALANCE),
    ("size", lambda mp: reject(mp, tx(data=b"x" * 300, gas_limit=10**6)), RejectReason.TOO_LARGE),
    (
        "size-bytes",
        lambda mp: reject(mp, tx(data=b"x" * 300, gas_limit=10**6).encoded),
        RejectReason.TOO_LARGE,
    ),
]


@pytest.mark.parametrize(
    ("name", "attempt", "expected"), REJECTIONS, ids=[r[0] for r in REJECTIONS]
)
def test_each_rejection_reason_leaves_the_pool_unchanged(
    name: str, attempt: Callable[[Mempool], RejectReason], expected: RejectReason
) -> None:
    mp = pool(MempoolConfig(nonce_gap_max=4, tx_bytes_max=300))
    assert attempt(mp) == expected
    assert dict(mp.statistics().rejected_by_reason) == {expected.value: 1}


def test_duplicate_and_used_nonce_are_rejected() -> None:
    state = head(nonces={A.address: 2})
    mp = pool(state=state)
    t = tx(nonce=2)
    mp.add(t)
    assert reject(mp, t.encoded) == RejectReason.DUPLICATE
    assert reject(mp, tx(nonce=1)) == RejectReason.NONCE_TOO_LOW


def test_gap_is_measured_from_the_end_of_the_executable_run() -> None:
    mp = pool(MempoolConfig(nonce_gap_max=1))
    mp.add(tx(nonce=0))
    mp.add(tx(nonce=1))
    mp.add(tx(nonce=3))  # one missing nonce (2)
    assert reject(mp, tx(nonce=5)) == RejectReason.NONCE_GAP_TOO_LARGE  # 2 and 4 missing from 2
    mp.add(tx(nonce=2))
    mp.add(tx(nonce=5))  # now only 4 is missing


def test_sender_full() -> None:
    mp = pool(MempoolConfig(per_sender_max=2))
    mp.add(tx(nonce=0))
    mp.add(tx(nonce=1))
    assert reject(mp, tx(nonce=2)) == RejectReason.SENDER_FULL
    mp.add(tx(B, 0))


def test_balance_check_counts_all_pending_costs_of_the_sender() -> None:
    each = 10 + GAS  # amount + fee * gas_limit at fee 1
    mp = pool(state=head({A.address: 2 * each}))
    mp.add(tx(nonce=0))
    mp.add(tx(nonce=1))
    assert reject(mp, tx(nonce=2)) == RejectReason.INSUFFICIENT_BALANCE


def test_replacement_needs_a_strictly_higher_fee() -> None:
    mp = pool()
    first = tx(nonce=0, fee=2)
    mp.add(first)
    assert reject(mp, tx(nonce=0, fee=2, amount=11)) == RejectReason.FEE_TOO_LOW
    better = tx(nonce=0, fee=3)
    mp.add(better)
    assert first.hash not in mp and better.hash in mp
    assert len(mp) == 1 and mp.size_bytes == len(better.encoded)
    assert mp.statistics().replaced_total == 1


def test_full_pool_evicts_the_cheapest_tail_without_leaving_a_gap() -> None:
    mp = pool(MempoolConfig(tx_count_max=3))
    a0, a1, b0 = tx(A, 0, fee=1), tx(A, 1, fee=5), tx(B, 0, fee=2)
    for t in (a0, a1, b0):
        mp.add(t)
    # a0 pays least but is not a tail; the cheapest tail is b0 (fee 2) vs a1 (fee 5).
    c0 = tx(C, 0, fee=3)
    mp.add(c0)
    assert b0.hash not in mp and {a0.hash, a1.hash, c0.hash} <= set(mp._by_hash)
    assert mp.statistics().evicted_total == 1
    # Nothing pays less than 3 now among tails (c0=3, a1=5): a fee-3 newcomer is refused.
    assert reject(mp, tx(B, 0, fee=3)) == RejectReason.POOL_FULL


def test_full_pool_sheds_a_newcomer_before_verifying_its_signature() -> None:
    mp = pool(MempoolConfig(tx_count_max=2))
    mp.add(tx(A, 0, fee=4))
    mp.add(tx(B, 0, fee=4))
    # Nothing to evict for a fee of 4: refused as POOL_FULL without spending a verification,
    # which a forged signature shows (it would otherwise be BAD_SIGNATURE).
    assert reject(mp, forged(tx(C, 0, fee=4))) == RejectReason.POOL_FULL
    # A newcomer that could evict someone is verified first: a forgery is still caught.
    assert reject(mp, forged(tx(C, 0, fee=5))) == RejectReason.BAD_SIGNATURE
    assert len(mp) == 2


def test_signature_is_not_checked_again_for_hashes_the_caller_verified() -> None:
    mp = pool()
    fake = forged(tx(A, 0))
    assert reject(mp, fake) == RejectReason.BAD_SIGNATURE
    # The caller vouches for these exact bytes (e.g. verified in a block's validity check).
    assert mp.add(fake, verified={fake.hash}) == fake.hash
    other = forged(tx(B, 0))
    with pytest.raises(MempoolRejected):
        mp.add(other, verified={fake.hash})


def test_full_pool_never_evicts_the_newcomers_own_sender() -> None:
    mp = pool(MempoolConfig(tx_count_max=2))
    mp.add(tx(A, 0, fee=1))
    mp.add(tx(B, 0, fee=9))
    assert reject(mp, tx(A, 1, fee=20)) == RejectReason.POOL_FULL


def test_bytes_bound_evicts_the_lowest_fee_then_hash() -> None:
    a0, b0, c0 = tx(A, 0, fee=1), tx(B, 0, fee=1), tx(C, 0, fee=2)
    assert len(a0.encoded) == len(b0.encoded) == len(c0.encoded)
    mp = pool(MempoolConfig(bytes_max=2 * len(a0.encoded)))
    mp.add(a0)
    mp.add(b0)
    mp.add(c0)
    victim, survivor = sorted([a0, b0], key=lambda t: t.hash)
    assert victim.hash not in mp and survivor.hash in mp and c0.hash in mp
    assert mp.size_bytes == 2 * len(a0.encoded)


def test_select_orders_by_fee_then_hash_and_keeps_nonces_contiguous() -> None:
    mp = pool()
    a = [tx(A, 0, fee=1), tx(A, 1, fee=9)]
    b = [tx(B, 0, fee=5)]
    c = [tx(C, 0, fee=5)]
    gapped = tx(KEYS[3], 1, fee=100)  # nonce 0 missing: never selected
    for t in [*a, *b, *c, gapped]:
        mp.add(t)
    picked = mp.select(10, 10**6)
    first_two = sorted([b[0], c[0]], key=lambda t: t.hash)
    assert picked == [*first_two, a[0], a[1]]
    assert mp.select(2, 10**6) == first_two
    assert len(mp) == 5, "select removes nothing"


def test_select_skips_a_sender_that_does_not_fit_the_byte_budget() -> None:
    mp = pool()
    big = tx(A, 0, fee=9, data=b"x" * 200, gas_limit=10**5)
    after_big = tx(A, 1, fee=9)
    small = tx(B, 0, fee=1)
    for t in (big, after_big, small):
        mp.add(t)
    assert mp.select(10, len(small.encoded) + 10) == [small]


def test_select_starts_at_the_head_nonce() -> None:
    state = head()
    mp = pool(state=state)
    t0, t1 = tx(nonce=0), tx(nonce=1)
    mp.add(t0)
    mp.add(t1)
    state.set_nonce(A.address, 1)
    assert mp.select(10, 10**6) == [t1]


def test_update_drops_included_and_rechecks_senders_without_verifying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = head()
    mp = pool(state=state)
    a = [tx(A, n) for n in range(3)]
    b0 = tx(B, 0)
    for t in (*a, b0):
        mp.add(t)
    # A's nonce 0 commits elsewhere, and A spends so much that only one more fits.
    new_state = head({A.address: 10 + GAS}, nonces={A.address: 1})
    monkeypatch.setattr(Transaction, "verify_signature", lambda self: pytest.fail("re-verified"))
    mp.update([a[0]], new_state)
    assert mp.pending(A.address) == [a[1]]
    assert mp.pending(B.address) == [b0]
    assert mp.statistics().dropped_total == 1


def test_eviction_heap_stays_bounded_under_churn() -> None:
    state = head()
    mp = pool(state=state)
    nonce = 0
    for _ in range(40):
        batch = [tx(A, nonce + i) for i in range(4)]
        for t in batch:
            mp.add(t)
        nonce += 4
        state.set_nonce(A.address, nonce)
        mp.update(batch, state)
        assert len(mp) == 0
    assert len(mp._tails) <= 64


def test_recheck_all_drops_stale_transactions_of_every_sender() -> None:
    mp = pool()
    mp.add(tx(A, 0))
    mp.add(tx(B, 0))
    mp.recheck_all(head(nonces={A.address: 1, B.address: 1}))
    assert len(mp) == 0 and mp.size_bytes == 0


def test_mempool_batches_execute_without_failures() -> None:
    db = MemoryDB()
    genesis = StateDB(db, EMPTY_STATE_COMMITMENT)
    for key in KEYS:
        genesis.set_balance(key.address, BALANCE)
    result = genesis.commit()
    apply_writes(db, result.writes)
    state = StateDB(db, result.commitment)
    mp = Mempool(CHAIN, MempoolConfig(), state)
    for key in KEYS:
        for n in range(4):
            mp.add(tx(key, n, fee=1 + (n * 7 + key.address[0]) % 5).encoded)
    executor = Executor(CHAIN)
    height = 0
    while len(mp):
        batch = mp.select(7, 10**6)
        height += 1
        block = build_block(
            chain_id=CHAIN,
            height=1,
            parent_hash=ZERO_HASH,
            timestamp=height,
            proposer=DEST,
            state_root=state.commitment,
            transactions=batch,
            last_commit=EMPTY_CERTIFICATE,
        )
        out = executor.apply_block(state, block)
        assert out.failed_count == 0
        apply_writes(db, out.writes)
        mp.update(batch, state)
    assert height == 4
    assert all(state.nonce(key.address) == 4 for key in KEYS)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        MempoolConfig(tx_count_max=0)
    with pytest.raises(ValueError):
        MempoolConfig(nonce_gap_max=-1)


def test_fast_field_readers_agree_with_the_public_properties() -> None:
    """Both hot paths read rlp's storage attributes directly; they must match the fields."""
    from chain.tx import read_fields

    t = tx(B, 3, fee=7, amount=11, data=b"\x01\x02", gas_limit=GAS + 100)
    public = (t.chain_id, t.nonce, t.to, t.amount, t.fee, t.gas_limit, t.data)
    assert read_fields(t) == public
