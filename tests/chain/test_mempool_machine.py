"""Mempool against a plain model (sender -> nonce -> tx), through random add/select/update.

The model re-implements the documented admission rules naively (scans instead of heaps) and
must agree with the real pool on every accepted hash and every rejection reason. After each
rule: the same pending transactions, the bounds hold, no duplicates. ``select`` must equal a
naive greedy merge and never return a nonce gap.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chain.keys import PrivateKey
from chain.mempool import Mempool, MempoolConfig, MempoolRejected, RejectReason
from chain.params import TX_BASE_GAS
from chain.tx import Transaction, make_transaction

CHAIN = 5
KEYS = [PrivateKey.from_seed(bytes([40 + i]) * 32) for i in range(4)]
SENDERS = [k.address for k in KEYS]
DEST = b"\xdd" * 20


def _make(key: PrivateKey, nonce: int, fee: int, amount: int, chain_id: int = CHAIN) -> Transaction:
    return make_transaction(
        key,
        chain_id=chain_id,
        nonce=nonce,
        to=DEST,
        amount=amount,
        fee=fee,
        gas_limit=TX_BASE_GAS,
    )


NONCES = 10
FEES = (0, 1, 2, 4)
AMOUNTS = (1_000, 30_000)
BY_PARAMS = {
    (i, n, fee, amount): _make(k, n, fee, amount)
    for i, k in enumerate(KEYS)
    for n in range(NONCES)
    for fee in FEES
    for amount in AMOUNTS
}
TXS = list(BY_PARAMS.values())
SIZE = len(TXS[0].encoded)
assert all(len(t.encoded) == SIZE for t in TXS)
FORGED = [
    Transaction(
        t.chain_id, t.nonce, t.sender, t.to, t.amount, t.fee, t.gas_limit, t.data, bytes(64)
    )
    for (_, n, fee, _), t in BY_PARAMS.items()
    if n < 3 and fee == 2
]
WRONG_CHAIN = [_make(k, 0, 1, 1, chain_id=CHAIN + 1) for k in KEYS]
CONFIG = MempoolConfig(
    tx_count_max=6, bytes_max=5 * SIZE, per_sender_max=2, nonce_gap_max=1, fee_min=1
)


def cost(t: Transaction) -> int:
    return t.amount + t.fee * t.gas_limit


@dataclass
class View:
    nonces: dict[bytes, int]
    balances: dict[bytes, int]

    def nonce(self, address: bytes) -> int:
        return self.nonces.get(address, 0)

    def balance(self, address: bytes) -> int:
        return self.balances.get(address, 0)


class Model:
    """Naive mempool: the documented rules, written as scans."""

    def __init__(self) -> None:
        self.txs: dict[bytes, dict[int, Transaction]] = {}

    def all(self) -> list[Transaction]:
        return [t for by_nonce in self.txs.values() for t in by_nonce.values()]

    def size(self) -> int:
        return SIZE * len(self.all())

    def remove(self, t: Transaction) -> None:
        by_nonce = self.txs[t.sender_address]
        del by_nonce[t.nonce]
        if not by_nonce:
            del self.txs[t.sender_address]

    def add(self, t: Transaction, view: View) -> RejectReason | None:
        if any(p.hash == t.hash for p in self.all()):
            return RejectReason.DUPLICATE
        if t.chain_id != CHAIN:
            return RejectReason.WRONG_CHAIN_ID
        if t.fee < CONFIG.fee_min:
            return RejectReason.FEE_TOO_LOW
        sender = t.sender_address
        head = view.nonce(sender)
        if t.nonce < head:
            return RejectReason.NONCE_TOO_LOW
        mine = self.txs.get(sender, {})
        old = mine.get(t.nonce)
        if old is not None:
            if t.fee <= old.fee:
                return RejectReason.FEE_TOO_LOW
        else:
            end = head
            while end in mine:
                end += 1
            if t.nonce - end > CONFIG.nonce_gap_max:
                return RejectReason.NONCE_GAP_TOO_LARGE
            if len(mine) >= CONFIG.per_sender_max:
                return RejectReason.SENDER_FULL
        others = sum(cost(p) for p in mine.values() if p is not old)
        if others + cost(t) > view.balance(sender):
            return RejectReason.INSUFFICIENT_BALANCE
        count = len(self.all()) + (old is None)
        if old is None and (count > CONFIG.tx_count_max or count * SIZE > CONFIG.bytes_max):
            # A full pool refuses before verifying when even the first victim does not qualify.
            tails = [by_nonce[max(by_nonce)] for by_nonce in self.txs.values()]
            victim = min(tails, key=lambda p: (p.fee, p.hash))
            if victim.fee >= t.fee or victim.sender_address == sender:
                return RejectReason.POOL_FULL
        if not t.verify_signature():
            return RejectReason.BAD_SIGNATURE
        while count > CONFIG.tx_count_max or count * SIZE > CONFIG.bytes_max:
            tails = [by_nonce[max(by_nonce)] for by_nonce in self.txs.values()]
            victim = min(tails, key=lambda p: (p.fee, p.hash))
            if victim.fee >= t.fee or victim.sender_address == sender:
                return RejectReason.POOL_FULL
            self.remove(victim)
            count -= 1
        if old is not None:
            self.remove(old)
        self.txs.setdefault(sender, {})[t.nonce] = t
        return None

    def select(self, count_max: int, bytes_max: int, view: View) -> list[Transaction]:
        nxt = {s: view.nonce(s) for s in self.txs}
        out: list[Transaction] = []
        used = 0
        while len(out) < count_max:
            ready = [self.txs[s][n] for s, n in nxt.items() if n in self.txs[s]]
            if not ready:
                break
            best = min(ready, key=lambda p: (-p.fee, p.hash))
            if used + SIZE > bytes_max:
                del nxt[best.sender_address]
                continue
            out.append(best)
            used += SIZE
            nxt[best.sender_address] += 1
        return out

    def recheck(self, sender: bytes, view: View) -> None:
        mine = self.txs.get(sender, {})
        budget = 0
        over = False
        for n in sorted(mine):
            t = mine[n]
            if not over and n >= view.nonce(sender):
                budget += cost(t)
                over = budget > view.balance(sender)
                if not over:
                    continue
            self.remove(t)


class MempoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.view = View({}, {s: 200_000 for s in SENDERS})
        self.pool = Mempool(CHAIN, CONFIG, self.view)
        self.model = Model()

    def _fresh_view(self) -> View:
        return View(dict(self.view.nonces), dict(self.view.balances))

    @rule(
        t=st.one_of(st.sampled_from(TXS), st.sampled_from(FORGED), st.sampled_from(WRONG_CHAIN)),
        encoded=st.booleans(),
    )
    def add(self, t: Transaction, encoded: bool) -> None:
        expected = self.model.add(t, self.view)
        try:
            got = self.pool.add(t.encoded if encoded else t)
        except MempoolRejected as e:
            assert e.reason == expected, (e, expected)
        else:
            assert expected is None, f"pool admitted what the model rejects: {expected}"
            assert got == t.hash

    @rule(
        sender=st.sampled_from([0, 0, 0, 1, 2, 3]),
        offset=st.integers(0, 3),
        fee=st.sampled_from(FEES[1:]),
        amount=st.sampled_from(AMOUNTS),
    )
    def add_plausible(self, sender: int, offset: int, fee: int, amount: int) -> None:
        """Mostly admissible transactions: near the head nonce, with a valid fee."""
        nonce = min(NONCES - 1, self.view.nonce(SENDERS[sender]) + offset)
        self.add(BY_PARAMS[(sender, nonce, fee, amount)], encoded=offset % 2 == 0)

    @rule(garbage=st.binary(max_size=40))
    def add_garbage(self, garbage: bytes) -> None:
        try:
            self.pool.add(garbage)
        except MempoolRejected as e:
            assert e.reason == RejectReason.BAD_ENCODING
        else:
            raise AssertionError("garbage admitted")

    @rule(count_max=st.integers(0, 8), slots=st.integers(0, 8))
    def select(self, count_max: int, slots: int) -> None:
        bytes_max = slots * SIZE + SIZE // 2
        got = self.pool.select(count_max, bytes_max)
        assert got == self.model.select(count_max, bytes_max, self.view)
        assert len(got) <= count_max and SIZE * len(got) <= bytes_max
        assert len({t.hash for t in got}) == len(got)
        expected_next = {s: self.view.nonce(s) for s in SENDERS}
        for t in got:
            assert t.nonce == expected_next[t.sender_address], "nonce gap in a batch"
            expected_next[t.sender_address] += 1

    @rule(data=st.data(), spend=st.integers(0, 150_000))
    def commit_block(self, data: st.DataObject, spend: int) -> None:
        """Commit a prefix of a selected batch; each included sender spends ``spend`` more."""
        batch = self.pool.select(4, 10**6)
        included = batch[: data.draw(st.integers(0, len(batch)))]
        view = self._fresh_view()
        for t in included:
            s = t.sender_address
            view.nonces[s] = view.nonce(s) + 1
            view.balances[s] = max(0, view.balance(s) - cost(t) - spend)
        self._update(included, view)

    @rule(t=st.sampled_from(TXS), spend=st.integers(0, 30_000))
    def commit_foreign_transaction(self, t: Transaction, spend: int) -> None:
        """A block includes a transaction this pool never saw (e.g. from another node's pool)."""
        view = self._fresh_view()
        s = t.sender_address
        view.nonces[s] = view.nonce(s) + 1
        view.balances[s] = max(0, view.balance(s) - spend)
        self._update([t], view)

    @rule(sender=st.integers(0, len(KEYS) - 1), keep=st.integers(0, 2), short=st.booleans())
    def commit_foreign_leaving_exact_budget(self, sender: int, keep: int, short: bool) -> None:
        """A foreign transaction leaves exactly enough (or one less) for ``keep`` pending ones."""
        address = SENDERS[sender]
        head = self.view.nonce(address)
        if head >= NONCES:
            return
        foreign = BY_PARAMS[(sender, head, 0, AMOUNTS[0])]  # fee 0: never admitted, so foreign
        later = [t for t in self.pool.pending(address) if t.nonce > head][:keep]
        view = self._fresh_view()
        view.nonces[address] = head + 1
        view.balances[address] = max(0, sum(cost(t) for t in later) - short)
        self._update([foreign], view)

    def _update(self, included: list[Transaction], view: View) -> None:
        self.view = view
        for t in included:
            for p in self.model.all():
                if p.hash == t.hash:
                    self.model.remove(p)
        for s in dict.fromkeys(t.sender_address for t in included):
            self.model.recheck(s, view)
        self.pool.update(included, view)

    @rule(sender=st.sampled_from(SENDERS), amount=st.integers(1, 100_000))
    def receive_funds(self, sender: bytes, amount: int) -> None:
        """Incoming transfers only raise a balance: no re-check is needed."""
        self.view.balances[sender] = self.view.balance(sender) + amount

    @invariant()
    def same_contents_and_bounds(self) -> None:
        expected = {t.hash for t in self.model.all()}
        assert set(self.pool._by_hash) == expected
        assert len(self.pool) == len(expected) <= CONFIG.tx_count_max
        assert self.pool.size_bytes == self.model.size() <= CONFIG.bytes_max
        for s in SENDERS:
            pending = self.pool.pending(s)
            assert pending == [
                self.model.txs.get(s, {})[n] for n in sorted(self.model.txs.get(s, {}))
            ]
            assert len(pending) <= CONFIG.per_sender_max
        assert len(self.pool._tails) <= 2 * len(self.pool) + 64, "eviction heap unbounded"
        stats = self.pool.statistics()
        assert stats.tx_count == len(expected) and stats.bytes == self.pool.size_bytes


MempoolMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestMempoolMachine = MempoolMachine.TestCase
