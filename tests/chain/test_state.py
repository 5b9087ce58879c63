"""StateDB: reads, writes, journal, net-change commit, commitment formula, codecs, full root."""

from __future__ import annotations

import hashlib

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from chain._state_codec import decode_account_fields, encode_account_fields, encode_pairs
from chain.db.memory import MemoryDB
from chain.db.schema import make_account_key, make_code_key, make_storage_key
from chain.encoding import encode
from chain.errors import DecodeError
from chain.state import (
    EMPTY_CODE_HASH,
    EMPTY_STATE_COMMITMENT,
    STATE_DOMAIN,
    ZERO_WORD,
    Account,
    BalanceOverflow,
    InsufficientBalance,
    NonceOverflow,
    StateCorruption,
    StateDB,
    apply_writes,
    decode_account,
    full_state_root,
)

A = b"\x0a" * 20
B = b"\x0b" * 20
C = b"\x0c" * 20
SLOT = b"\x01" * 32
WORD = b"\x00" * 31 + b"\x07"
U256 = (1 << 256) - 1
U64 = (1 << 64) - 1


def fresh() -> tuple[MemoryDB, StateDB]:
    db = MemoryDB()
    return db, StateDB(db, EMPTY_STATE_COMMITMENT)


def expected_commitment(previous: bytes, writes: dict[bytes, bytes | None]) -> bytes:
    """The documented formula, computed with the generic rlp package."""
    pairs = [[k, b"" if writes[k] is None else writes[k]] for k in sorted(writes)]
    digest = hashlib.sha256(rlp.encode(pairs)).digest()
    return hashlib.sha256(STATE_DOMAIN + previous + digest).digest()


def test_fresh_state_reads_defaults() -> None:
    _, state = fresh()
    assert state.balance(A) == 0
    assert state.nonce(A) == 0
    assert state.get_code(A) == b""
    assert state.get_storage(A, SLOT) == ZERO_WORD
    assert not state.account_exists(A)
    assert state.get_account(A) == Account(nonce=0, balance=0, code_hash=EMPTY_CODE_HASH)
    assert state.get_account(A).is_empty


def test_balance_arithmetic_and_errors_leave_state_unchanged() -> None:
    _, state = fresh()
    state.set_balance(A, 100)
    state.add_balance(A, 5)
    state.sub_balance(A, 30)
    assert state.balance(A) == 75
    with pytest.raises(InsufficientBalance):
        state.sub_balance(A, 76)
    assert state.balance(A) == 75
    state.set_balance(B, U256)
    with pytest.raises(BalanceOverflow):
        state.add_balance(B, 1)
    assert state.balance(B) == U256
    with pytest.raises(BalanceOverflow):
        state.set_balance(C, U256 + 1)
    assert not state.account_exists(C)


def test_nonce_increment_and_overflow() -> None:
    _, state = fresh()
    assert state.increment_nonce(A) == 1
    assert state.nonce(A) == 1
    state.set_nonce(A, U64)
    with pytest.raises(NonceOverflow):
        state.increment_nonce(A)
    assert state.nonce(A) == U64
    with pytest.raises(NonceOverflow):
        state.set_nonce(A, U64 + 1)


def test_nested_snapshots_revert_in_order() -> None:
    _, state = fresh()
    state.set_balance(A, 10)
    outer = state.snapshot()
    state.set_balance(A, 20)
    state.set_storage(A, SLOT, WORD)
    inner = state.snapshot()
    state.set_balance(A, 30)
    state.set_code(A, b"\x60\x00")
    state.revert(inner)
    assert state.balance(A) == 20
    assert state.get_code(A) == b""
    assert state.get_storage(A, SLOT) == WORD
    state.revert(outer)
    assert state.balance(A) == 10
    assert state.get_storage(A, SLOT) == ZERO_WORD


def test_revert_invalidates_later_snapshots_only() -> None:
    _, state = fresh()
    first = state.snapshot()
    state.set_balance(A, 1)
    second = state.snapshot()
    state.set_balance(A, 2)
    state.revert(first)
    with pytest.raises(AssertionError):
        state.revert(second)
    state.set_balance(A, 3)
    again = state.snapshot()
    state.set_balance(A, 4)
    state.revert(again)
    assert state.balance(A) == 3


def test_commit_returns_net_changes_and_documented_commitment() -> None:
    db, state = fresh()
    state.set_balance(A, 50)
    state.set_balance(B, 7)
    state.sub_balance(B, 7)  # B ends empty: not written at all
    state.set_storage(C, SLOT, WORD)
    state.set_code(C, b"code")
    result = state.commit()
    code_hash = hashlib.sha256(b"code").digest()
    assert dict(result.writes) == {
        make_account_key(A): encode(Account(nonce=0, balance=50, code_hash=EMPTY_CODE_HASH)),
        make_account_key(C): encode(Account(nonce=0, balance=0, code_hash=code_hash)),
        make_storage_key(C, SLOT): WORD,
        make_code_key(code_hash): b"code",
    }
    assert list(result.writes) == sorted(result.writes)
    assert result.commitment == expected_commitment(EMPTY_STATE_COMMITMENT, dict(result.writes))
    assert state.commitment == result.commitment
    assert len(db) == 0, "commit never writes the db itself"


def test_commit_deletes_emptied_accounts_and_zeroed_slots() -> None:
    db, state = fresh()
    state.set_balance(A, 5)
    state.set_storage(A, SLOT, WORD)
    apply_writes(db, state.commit().writes)
    state.sub_balance(A, 5)
    state.set_storage(A, SLOT, ZERO_WORD)
    result = state.commit()
    assert dict(result.writes) == {make_account_key(A): None, make_storage_key(A, SLOT): None}
    apply_writes(db, result.writes)
    assert len(db) == 0


def test_no_op_changes_are_not_written_but_commitment_advances() -> None:
    db, state = fresh()
    state.set_balance(A, 5)
    first = state.commit()
    apply_writes(db, first.writes)
    state.set_balance(A, 9)
    state.set_balance(A, 5)
    state.set_storage(A, SLOT, ZERO_WORD)
    second = state.commit()
    assert dict(second.writes) == {}
    assert second.commitment == expected_commitment(first.commitment, {})
    assert second.commitment != first.commitment


def test_commitment_depends_on_net_changes_not_operation_order() -> None:
    _, one = fresh()
    _, two = fresh()
    for addr, amount in [(A, 1), (B, 2), (C, 3)]:
        one.set_balance(addr, amount)
    for addr, amount in [(C, 3), (A, 99), (B, 2), (A, 1)]:
        two.set_balance(addr, amount)
    assert one.commit() == two.commit()


def test_reads_after_commit_work_before_and_after_writes_are_applied() -> None:
    db, state = fresh()
    state.set_balance(A, 42)
    state.set_code(B, b"\x01\x02")
    state.set_storage(B, SLOT, WORD)
    result = state.commit()
    # Before the ledger applies the writes, the same StateDB still reads the new state.
    assert state.balance(A) == 42
    assert state.get_code(B) == b"\x01\x02"
    apply_writes(db, result.writes)
    reopened = StateDB(db, result.commitment)
    assert reopened.commitment == result.commitment
    assert reopened.balance(A) == 42
    assert reopened.get_code(B) == b"\x01\x02"
    assert reopened.get_storage(B, SLOT) == WORD
    assert reopened.account_exists(B)


def test_small_read_cache_is_dropped_at_commit_and_reads_stay_correct() -> None:
    db = MemoryDB()
    state = StateDB(db, EMPTY_STATE_COMMITMENT, read_cache_entries_max=1)
    for i in range(5):
        state.set_balance(bytes([i]) * 20, i + 1)
        apply_writes(db, state.commit().writes)
    assert [state.balance(bytes([i]) * 20) for i in range(5)] == [1, 2, 3, 4, 5]


def test_existing_code_is_not_rewritten() -> None:
    db, state = fresh()
    state.set_code(A, b"same")
    apply_writes(db, state.commit().writes)
    state.set_code(B, b"same")
    writes = state.commit().writes
    assert list(writes) == [make_account_key(B)]


def test_discard_drops_uncommitted_changes() -> None:
    _, state = fresh()
    state.set_balance(A, 5)
    state.discard()
    assert state.balance(A) == 0
    assert dict(state.commit().writes) == {}


def test_corrupt_records_raise_state_corruption() -> None:
    db, state = fresh()
    db.put(make_account_key(A), b"\xc3\x01\x02\x03")
    with pytest.raises(StateCorruption):
        state.balance(A)
    db.put(make_storage_key(B, SLOT), b"short")
    with pytest.raises(StateCorruption):
        state.get_storage(B, SLOT)
    bogus_hash = hashlib.sha256(b"real").digest()
    db.put(make_account_key(C), encode(Account(nonce=0, balance=0, code_hash=bogus_hash)))
    db.put(make_code_key(bogus_hash), b"fake")
    with pytest.raises(StateCorruption):
        state.get_code(C)


def test_bad_commitment_length_is_rejected() -> None:
    with pytest.raises(ValueError):
        StateDB(MemoryDB(), b"short")


@settings(max_examples=150, deadline=None)
@given(
    nonce=st.integers(0, U64),
    balance=st.one_of(st.integers(0, 1000), st.integers(0, U256)),
    code_hash=st.binary(min_size=32, max_size=32),
)
def test_fast_account_codec_matches_rlp(nonce: int, balance: int, code_hash: bytes) -> None:
    account = Account(nonce=nonce, balance=balance, code_hash=code_hash)
    encoded = encode(account)
    assert encode_account_fields(nonce, balance, code_hash) == encoded
    assert decode_account_fields(encoded) == (nonce, balance, code_hash)
    assert decode_account(encoded) == account


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.binary(max_size=60), st.binary(min_size=54, max_size=57)),
            st.one_of(
                st.binary(max_size=2), st.binary(max_size=120), st.binary(min_size=55, max_size=57)
            ),
        ),
        max_size=8,
    )
)
def test_fast_pair_leaves_match_rlp(items: list[tuple[bytes, bytes]]) -> None:
    assert encode_pairs(items) == [rlp.encode([k, v]) for k, v in items]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc0",
        b"\xe3\x00\x01\xa0" + b"\x00" * 32,  # integer encoded with a leading zero byte
        b"\xe4\x81\x01\x01\xa0" + b"\x00" * 32,  # single byte in long form
        encode(Account(nonce=1, balance=2, code_hash=EMPTY_CODE_HASH)) + b"\x00",
        b"\xe2\x01\x01\x9f" + b"\x00" * 31,  # 31-byte code hash
        b"\xf8\x23\x01\x01\xa0" + b"\x00" * 32,  # long list form for a short payload
    ],
)
def test_non_canonical_accounts_are_rejected_by_both_decoders(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_account(data)
    with pytest.raises((ValueError, IndexError)):
        decode_account_fields(data)


def test_full_state_root_covers_state_entries_in_key_order_only() -> None:
    from chain.merkle import merkle_root

    db, state = fresh()
    for i in range(1, 40):
        addr = bytes([i]) * 20
        state.set_balance(addr, i)
        state.set_storage(addr, bytes([i]) * 32, b"\x01" * 32)
    state.set_code(A, b"contract")
    apply_writes(db, state.commit().writes)
    db.put(b"zz-not-state", b"ignored")
    entries = sorted(
        (k, v) for k, v in db.iterate(b"") if k[:2] in (b"a:", b"s:") or k.startswith(b"code:")
    )
    expected = merkle_root([rlp.encode([k, v]) for k, v in entries])
    assert full_state_root(db) == expected
    db.put(make_account_key(B), encode(Account(nonce=0, balance=999, code_hash=EMPTY_CODE_HASH)))
    assert full_state_root(db) != expected
