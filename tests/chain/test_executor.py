"""Executor: pre-checks change nothing, execution charges nonce and fee, contracts via the hook."""

from __future__ import annotations

import pytest

from chain.block import EMPTY_CERTIFICATE, ZERO_HASH, Block, build_block
from chain.db.memory import MemoryDB
from chain.executor import CONTRACTS_DISABLED, Executor, context_of
from chain.keys import PrivateKey
from chain.params import CREATE_BASE_GAS, TX_BASE_GAS, TX_DATA_GAS_PER_BYTE
from chain.receipt import LOGS_PER_RECEIPT_MAX, Log, Receipt, ReceiptStatus
from chain.runtime import CallResult, ExecutionContext
from chain.state import EMPTY_STATE_COMMITMENT, BalanceOverflow, StateDB, apply_writes
from chain.tx import Transaction, make_transaction

CHAIN = 7
ALICE = PrivateKey.from_seed(b"\x01" * 32)
BOB = PrivateKey.from_seed(b"\x02" * 32)
PROPOSER = b"\xee" * 20
CONTRACT = b"\xcc" * 20
U256 = (1 << 256) - 1
FEE = 2
GAS = 100_000
START = 10_000_000


def genesis(balances: dict[bytes, int] | None = None) -> tuple[MemoryDB, StateDB]:
    db = MemoryDB()
    state = StateDB(db, EMPTY_STATE_COMMITMENT)
    for addr, amount in (balances or {ALICE.address: START, BOB.address: START}).items():
        state.set_balance(addr, amount)
    state.set_code(CONTRACT, b"\x00code")
    result = state.commit()
    apply_writes(db, result.writes)
    return db, StateDB(db, result.commitment)


def tx(
    key: PrivateKey = ALICE,
    *,
    nonce: int = 0,
    to: bytes | None = None,
    amount: int = 100,
    fee: int = FEE,
    gas_limit: int = GAS,
    chain_id: int = CHAIN,
    data: bytes = b"",
) -> Transaction:
    return make_transaction(
        key,
        chain_id=chain_id,
        nonce=nonce,
        to=BOB.address if to is None else to,
        amount=amount,
        fee=fee,
        gas_limit=gas_limit,
        data=data,
    )


def block(*txs: Transaction, proposer: bytes = PROPOSER) -> Block:
    return build_block(
        chain_id=CHAIN,
        height=1,
        parent_hash=b"\x11" * 32,
        timestamp=1_700_000_000_000,
        proposer=proposer,
        state_root=ZERO_HASH,
        transactions=txs,
        last_commit=EMPTY_CERTIFICATE,
    )


CTX = ExecutionContext(CHAIN, 1, 1_700_000_000_000, PROPOSER)


def with_signature(t: Transaction, signature: bytes) -> Transaction:
    return Transaction(
        t.chain_id, t.nonce, t.sender, t.to, t.amount, t.fee, t.gas_limit, t.data, signature
    )


def test_transfer_moves_amount_bumps_nonce_and_pays_proposer() -> None:
    _, state = genesis()
    t = tx(amount=500)
    receipt = Executor(CHAIN).apply_transaction(state, CTX, t)
    fee = TX_BASE_GAS * FEE
    assert receipt == Receipt(t.hash, ReceiptStatus.SUCCESS, TX_BASE_GAS, fee, b"", (), b"", b"")
    assert receipt.succeeded
    assert state.balance(ALICE.address) == START - 500 - fee
    assert state.balance(BOB.address) == START + 500
    assert state.balance(PROPOSER) == fee
    assert state.nonce(ALICE.address) == 1
    assert state.nonce(BOB.address) == 0


def test_self_transfer_only_pays_the_fee() -> None:
    _, state = genesis()
    receipt = Executor(CHAIN).apply_transaction(state, CTX, tx(to=ALICE.address, amount=START // 2))
    assert receipt.succeeded
    assert state.balance(ALICE.address) == START - TX_BASE_GAS * FEE
    assert state.nonce(ALICE.address) == 1


def test_proposer_sending_to_itself_gets_its_fee_back() -> None:
    _, state = genesis()
    ctx = ExecutionContext(CHAIN, 1, 0, ALICE.address)
    assert Executor(CHAIN).apply_transaction(state, ctx, tx(amount=5)).succeeded
    assert state.balance(ALICE.address) == START - 5


def test_data_bytes_cost_intrinsic_gas() -> None:
    _, state = genesis()
    receipt = Executor(CHAIN).apply_transaction(state, CTX, tx(data=b"hello"))
    assert receipt.gas_used == TX_BASE_GAS + 5 * TX_DATA_GAS_PER_BYTE


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: tx(chain_id=CHAIN + 1), "wrong chain id"),
        (lambda: with_signature(tx(), b"\x00" * 64), "bad signature"),
        (lambda: tx(nonce=1), "nonce 1 is not the account's next nonce 0"),
        (lambda: tx(gas_limit=TX_BASE_GAS - 1), "below the intrinsic gas"),
        (lambda: tx(amount=START - FEE * GAS + 1), "cannot cover"),
        (lambda: tx(key=PrivateKey.from_seed(b"\x09" * 32)), "cannot cover"),
    ],
)
def test_failed_pre_check_changes_nothing_and_charges_nothing(make: object, reason: str) -> None:
    _, state = genesis()
    t = make()  # type: ignore[operator]
    receipt = Executor(CHAIN).apply_transaction(state, CTX, t)
    assert receipt.status == ReceiptStatus.FAILURE
    assert (receipt.gas_used, receipt.fee_paid) == (0, 0)
    assert reason in receipt.reason_text
    assert not state.has_pending_changes
    assert state.nonce(ALICE.address) == 0


def test_exact_max_cost_balance_is_enough() -> None:
    _, state = genesis()
    t = tx(amount=START - FEE * GAS)
    assert Executor(CHAIN).apply_transaction(state, CTX, t).succeeded
    assert state.balance(ALICE.address) == FEE * GAS - FEE * TX_BASE_GAS


def test_exhausted_nonce_is_rejected_without_change() -> None:
    _, state = genesis()
    state.set_nonce(ALICE.address, (1 << 64) - 1)
    state.commit()
    receipt = Executor(CHAIN).apply_transaction(state, CTX, tx(nonce=(1 << 64) - 1))
    assert "exhausted" in receipt.reason_text
    assert not state.has_pending_changes


def test_caller_vouching_for_the_signature_skips_verification() -> None:
    _, state = genesis()
    forged = with_signature(tx(), b"\x00" * 64)
    assert Executor(CHAIN).apply_transaction(state, CTX, forged, verified=True).succeeded
    _, state2 = genesis()
    forged2 = with_signature(tx(), b"\x00" * 64)
    result = Executor(CHAIN).apply_block(state2, block(forged2), verified={forged2.hash})
    assert result.receipts[0].succeeded


def test_contracts_disabled_without_runtime_charges_fee_keeps_amount() -> None:
    _, state = genesis()
    executor = Executor(CHAIN)
    create = executor.apply_transaction(state, CTX, tx(to=b"", data=b"\x01\x02", amount=7))
    assert create.reason_text == CONTRACTS_DISABLED
    assert create.gas_used == CREATE_BASE_GAS + 2 * TX_DATA_GAS_PER_BYTE
    call = executor.apply_transaction(state, CTX, tx(nonce=1, to=CONTRACT, amount=9))
    assert call.reason_text == CONTRACTS_DISABLED
    assert call.gas_used == TX_BASE_GAS
    assert state.nonce(ALICE.address) == 2
    assert state.balance(CONTRACT) == 0
    fees = (create.gas_used + call.gas_used) * FEE
    assert state.balance(ALICE.address) == START - fees
    assert state.balance(PROPOSER) == fees


class FakeRuntime:
    """A runtime that writes state, moves the value, then returns a scripted result."""

    def __init__(self, result: CallResult | Exception) -> None:
        self.result = result
        self.seen: list[tuple[str, int]] = []

    def _run(self, kind: str, state: StateDB, tx: Transaction, gas: int) -> CallResult:
        self.seen.append((kind, gas))
        target = CONTRACT if tx.to == b"" else tx.to
        state.sub_balance(tx.sender_address, tx.amount)
        state.add_balance(target, tx.amount)
        state.set_storage(target, b"\x01" * 32, b"\x02" * 32)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def create(
        self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int
    ) -> CallResult:
        return self._run("create", state, tx, gas)

    def call(self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int) -> CallResult:
        return self._run("call", state, tx, gas)


def test_runtime_success_keeps_effects_logs_and_address() -> None:
    _, state = genesis()
    log = Log(address=CONTRACT, topics=(b"\x05" * 32,), data=b"event")
    runtime = FakeRuntime(CallResult(True, 1_000, b"ret", (log,), "", CONTRACT))
    receipt = Executor(CHAIN, runtime).apply_transaction(state, CTX, tx(to=b"", amount=10))
    assert runtime.seen == [("create", GAS - CREATE_BASE_GAS)]
    assert receipt.succeeded
    assert receipt.gas_used == CREATE_BASE_GAS + 1_000
    assert receipt.logs == (log,)
    assert receipt.contract_address == CONTRACT
    assert receipt.return_data == b"ret"
    assert state.balance(CONTRACT) == 10
    assert state.get_storage(CONTRACT, b"\x01" * 32) == b"\x02" * 32


@pytest.mark.parametrize(
    "outcome",
    [
        CallResult(False, 5_000, b"why", (), "revert at pc 3"),
        BalanceOverflow("credit overflow"),
        CallResult(
            True, 5_000, b"", tuple(Log(CONTRACT, (), b"") for _ in range(LOGS_PER_RECEIPT_MAX + 1))
        ),
    ],
)
def test_runtime_failure_reverts_all_but_nonce_and_fee(outcome: CallResult | Exception) -> None:
    _, state = genesis()
    receipt = Executor(CHAIN, FakeRuntime(outcome)).apply_transaction(
        state, CTX, tx(to=CONTRACT, amount=10)
    )
    gas = TX_BASE_GAS + (5_000 if isinstance(outcome, CallResult) else GAS - TX_BASE_GAS)
    assert receipt.status == ReceiptStatus.FAILURE
    assert receipt.reason_text
    assert receipt.logs == () and receipt.contract_address == b""
    assert receipt.gas_used == gas
    assert state.balance(CONTRACT) == 0
    assert state.get_storage(CONTRACT, b"\x01" * 32) == b"\x00" * 32
    assert state.nonce(ALICE.address) == 1
    assert state.balance(ALICE.address) == START - gas * FEE
    assert state.balance(PROPOSER) == gas * FEE


def test_runtime_claiming_more_gas_than_given_is_our_bug() -> None:
    _, state = genesis()
    runtime = FakeRuntime(CallResult(True, GAS))
    with pytest.raises(AssertionError):
        Executor(CHAIN, runtime).apply_transaction(state, CTX, tx(to=CONTRACT))


def test_recipient_overflow_fails_and_fee_is_still_charged() -> None:
    _, state = genesis({ALICE.address: START, BOB.address: U256})
    receipt = Executor(CHAIN).apply_transaction(state, CTX, tx(amount=1))
    assert "overflow" in receipt.reason_text
    assert state.balance(BOB.address) == U256
    assert state.balance(ALICE.address) == START - TX_BASE_GAS * FEE
    assert state.nonce(ALICE.address) == 1


def test_fee_that_would_overflow_the_proposer_is_burned() -> None:
    _, state = genesis({ALICE.address: START, PROPOSER: U256})
    assert Executor(CHAIN).apply_transaction(state, CTX, tx()).succeeded
    assert state.balance(PROPOSER) == U256
    assert state.balance(ALICE.address) == START - 100 - TX_BASE_GAS * FEE


def test_apply_block_runs_in_order_and_commits() -> None:
    db, state = genesis()
    txs = [
        tx(nonce=0, amount=1),
        tx(nonce=1, amount=2),
        tx(nonce=1, amount=3),
        tx(BOB, to=ALICE.address),
    ]
    b = block(*txs)
    assert context_of(b) == CTX
    result = Executor(CHAIN).apply_block(state, b)
    assert [r.succeeded for r in result.receipts] == [True, True, False, True]
    assert [r.tx_hash for r in result.receipts] == [t.hash for t in txs]
    assert result.tx_count == 4 and result.failed_count == 1
    assert result.gas_used == 3 * TX_BASE_GAS
    assert result.state_root == state.commitment
    assert not state.has_pending_changes
    apply_writes(db, result.writes)
    reopened = StateDB(db, result.state_root)
    assert reopened.balance(PROPOSER) == 3 * TX_BASE_GAS * FEE
    assert reopened.nonce(ALICE.address) == 2


def test_apply_block_refuses_a_state_with_pending_writes() -> None:
    _, state = genesis()
    state.set_balance(PROPOSER, 1)
    with pytest.raises(AssertionError):
        Executor(CHAIN).apply_block(state, block(tx()))


def test_same_blocks_on_two_fresh_states_are_identical() -> None:
    keys = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 9)]
    balances = {k.address: START for k in keys}
    blocks = [
        block(
            *(
                tx(
                    k,
                    nonce=h,
                    to=keys[(i + h + 1) % len(keys)].address,
                    amount=i * 10 + h,
                    fee=i % 3,
                )
                for i, k in enumerate(keys)
            ),
            tx(keys[0], nonce=h + 5),  # a nonce gap: rejected identically everywhere
            proposer=keys[h % len(keys)].address,
        )
        for h in range(4)
    ]
    outcomes = []
    for _ in range(2):
        db, state = genesis(balances)
        trace = []
        for b in blocks:
            result = Executor(CHAIN).apply_block(state, b)
            apply_writes(db, result.writes)
            trace.append((result.receipts, result.state_root, dict(result.writes)))
        outcomes.append(trace)
    assert outcomes[0] == outcomes[1]
    assert len({root for _, root, _ in outcomes[0]}) == len(blocks)
