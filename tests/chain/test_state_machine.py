"""StateDB against a plain dict model, through random operations (Hypothesis state machine).

The StateDB under test is a pair fed identical operations (results must agree at every
call, commitments at every commit); the model is three dicts (balances, nonces, storage)
plus a stack of copies for snapshots and a copy of the last committed state. After every rule the StateDB must read exactly like the
model. At each commit the writes must be exactly the model's net change since the last commit,
and a *twin* StateDB that is handed only that net change, in reverse key order, must reach the
same commitment (the commitment depends on what changed, never on how or in which order).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from chain.db.memory import MemoryDB
from chain.db.schema import make_account_key, make_storage_key
from chain.state import (
    EMPTY_STATE_COMMITMENT,
    ZERO_WORD,
    BalanceOverflow,
    InsufficientBalance,
    NonceOverflow,
    StateCommit,
    StateDB,
    apply_writes,
)

U256 = (1 << 256) - 1
U64 = (1 << 64) - 1
ADDRESSES = [bytes([i]) * 20 for i in range(1, 5)]
SLOTS = [bytes([i]) * 32 for i in range(1, 4)]
WORDS = [ZERO_WORD, b"\x00" * 31 + b"\x01", b"\xff" * 32]

addresses = st.sampled_from(ADDRESSES)
amounts = st.one_of(st.integers(0, 1_000), st.integers(0, U256), st.just(U256))


@dataclass
class Model:
    balances: dict[bytes, int] = field(default_factory=dict)
    nonces: dict[bytes, int] = field(default_factory=dict)
    storage: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)

    def entries(self) -> dict[bytes, tuple[int, int] | bytes]:
        """Non-default entries by schema key (what the db should hold)."""
        out: dict[bytes, tuple[int, int] | bytes] = {}
        for addr in ADDRESSES:
            nonce, balance = self.nonces.get(addr, 0), self.balances.get(addr, 0)
            if nonce or balance:
                out[make_account_key(addr)] = (nonce, balance)
        for (addr, slot), word in self.storage.items():
            if word != ZERO_WORD:
                out[make_storage_key(addr, slot)] = word
        return out


class Pair:
    """Two StateDBs fed the same operations; every result (or error type) must agree.

    The second one keeps no read cache across commits, so cached and uncached reads are
    compared too.
    """

    def __init__(self, db: MemoryDB, mirror_db: MemoryDB, commitment: bytes) -> None:
        self.dbs = (db, mirror_db)
        self.states = (
            StateDB(db, commitment),
            StateDB(mirror_db, commitment, read_cache_entries_max=0),
        )

    def __getattr__(self, name: str) -> Any:
        first, second = (getattr(state, name) for state in self.states)
        if not callable(first):
            assert first == second, f"{name}: the two StateDBs disagree"
            return first

        def both(*args: Any) -> Any:
            try:
                result = first(*args)
            except Exception as e:
                try:
                    second(*args)
                except type(e):
                    raise e from None
                raise AssertionError(f"{name}: only the first StateDB raised {e!r}") from None
            assert second(*args) == result, f"{name}{args}: the two StateDBs disagree"
            return result

        return both

    def commit(self) -> StateCommit:
        results = [state.commit() for state in self.states]
        assert results[0] == results[1], "two StateDBs fed the same operations diverged"
        for db in self.dbs:
            apply_writes(db, results[0].writes)
        return results[0]


class StateMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.db = MemoryDB()
        self.mirror_db = MemoryDB()
        self.state = Pair(self.db, self.mirror_db, EMPTY_STATE_COMMITMENT)
        self.twin_db = MemoryDB()
        self.twin = StateDB(self.twin_db, EMPTY_STATE_COMMITMENT, read_cache_entries_max=3)
        self.model = Model()
        self.committed = Model()
        self.snapshots: list[tuple[int, Model]] = []

    # ------------------------------------------------------------------ writes

    @rule(addr=addresses, amount=amounts)
    def set_balance(self, addr: bytes, amount: int) -> None:
        self.state.set_balance(addr, amount)
        self.model.balances[addr] = amount

    @rule(addr=addresses, amount=amounts)
    def add_balance(self, addr: bytes, amount: int) -> None:
        old = self.model.balances.get(addr, 0)
        try:
            self.state.add_balance(addr, amount)
        except BalanceOverflow:
            assert old + amount > U256
        else:
            assert old + amount <= U256
            self.model.balances[addr] = old + amount

    @rule(addr=addresses, amount=amounts)
    def sub_balance(self, addr: bytes, amount: int) -> None:
        old = self.model.balances.get(addr, 0)
        try:
            self.state.sub_balance(addr, amount)
        except InsufficientBalance:
            assert old < amount
        else:
            assert old >= amount
            self.model.balances[addr] = old - amount

    @rule(addr=addresses)
    def increment_nonce(self, addr: bytes) -> None:
        old = self.model.nonces.get(addr, 0)
        try:
            new = self.state.increment_nonce(addr)
        except NonceOverflow:
            assert old == U64
        else:
            assert new == old + 1
            self.model.nonces[addr] = new

    @rule(addr=addresses, amount=amounts)
    def increment_nonce_and_debit(self, addr: bytes, amount: int) -> None:
        nonce, balance = self.model.nonces.get(addr, 0), self.model.balances.get(addr, 0)
        try:
            self.state.increment_nonce_and_debit(addr, amount)
        except NonceOverflow:
            assert nonce == U64
        except InsufficientBalance:
            assert nonce < U64 and balance < amount
        else:
            assert nonce < U64 and balance >= amount
            self.model.nonces[addr] = nonce + 1
            self.model.balances[addr] = balance - amount

    @rule(addr=addresses, nonce=st.sampled_from([0, 1, U64 - 1, U64]))
    def set_nonce(self, addr: bytes, nonce: int) -> None:
        self.state.set_nonce(addr, nonce)
        self.model.nonces[addr] = nonce

    @rule(addr=addresses, slot=st.sampled_from(SLOTS), word=st.sampled_from(WORDS))
    def set_storage(self, addr: bytes, slot: bytes, word: bytes) -> None:
        self.state.set_storage(addr, slot, word)
        self.model.storage[(addr, slot)] = word

    # ----------------------------------------------------------------- journal

    @rule()
    def snapshot(self) -> None:
        self.snapshots.append((self.state.snapshot(), copy.deepcopy(self.model)))

    @precondition(lambda self: bool(self.snapshots))
    @rule(data=st.data())
    def revert(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.snapshots) - 1))
        snapshot_id, saved = self.snapshots[index]
        self.state.revert(snapshot_id)
        self.model = copy.deepcopy(saved)
        del self.snapshots[index:]

    # ------------------------------------------------------------------ commit

    @rule()
    def commit(self) -> None:
        before = self.committed.entries()
        after = self.model.entries()
        result = self.state.commit()
        expected_keys = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert set(result.writes) == expected_keys
        for key in expected_keys:
            assert (result.writes[key] is None) == (key not in after)

        # The twin is told only the net change, in reverse key order.
        for key in sorted(expected_keys, reverse=True):
            addr = key[2:22]
            if key.startswith(b"a:"):
                nonce, balance = after.get(key, (0, 0))  # type: ignore[misc]
                self.twin.set_nonce(addr, nonce)
                self.twin.set_balance(addr, balance)
            else:
                word = after.get(key, ZERO_WORD)
                assert isinstance(word, bytes)
                self.twin.set_storage(addr, key[22:], word)
        twin_result = self.twin.commit()
        assert twin_result.commitment == result.commitment
        assert dict(twin_result.writes) == dict(result.writes)
        apply_writes(self.twin_db, twin_result.writes)

        self.committed = copy.deepcopy(self.model)
        self.snapshots.clear()

    @rule()
    def reopen_from_db(self) -> None:
        """Drop the overlay: a new StateDB over the db sees exactly the committed state."""
        self.state = Pair(self.db, self.mirror_db, self.state.commitment)
        self.model = copy.deepcopy(self.committed)
        self.snapshots.clear()

    # --------------------------------------------------------------- invariant

    @invariant()
    def reads_match_model(self) -> None:
        for addr in ADDRESSES:
            assert self.state.balance(addr) == self.model.balances.get(addr, 0)
            assert self.state.nonce(addr) == self.model.nonces.get(addr, 0)
            exists = bool(self.model.balances.get(addr, 0) or self.model.nonces.get(addr, 0))
            assert self.state.account_exists(addr) == exists
            for slot in SLOTS:
                expected = self.model.storage.get((addr, slot), ZERO_WORD)
                assert self.state.get_storage(addr, slot) == expected


StateMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None)
TestStateMachine = StateMachine.TestCase
