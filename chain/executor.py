"""The executor: applies a block's transactions to the state and produces receipts.

Rules (part of consensus; every honest node applies them identically)
----------------------------------------------------------------------
Pre-checks, in this order. A transaction failing one gets a failed receipt with
``gas_used = 0`` and ``fee_paid = 0`` and changes NOTHING (not even its nonce):

1. ``tx.chain_id`` is this chain's id;
2. the signature is valid (skipped when the caller vouches for it, see below);
3. ``tx.nonce`` equals the sender's account nonce (and is not the last uint64);
4. ``tx.gas_limit`` covers the intrinsic gas (:func:`chain.params.intrinsic_gas`);
5. the sender's balance covers ``tx.max_cost`` (``amount + fee * gas_limit``).

The mempool keeps such transactions out of honest blocks; a Byzantine proposer can include
them, and they cost it nothing but space.

Execution, for a transaction that passes: the sender's nonce goes up by one, then

* a *plain transfer* (recipient without code) moves ``amount`` and uses the intrinsic gas;
* a *contract creation* or a *call to an account with code* goes to the
  :class:`~chain.runtime.ContractRuntime` with ``gas_limit - intrinsic`` gas (the runtime
  moves ``amount``, which is the call's value); without a runtime it fails with "contracts
  are not enabled" after using the intrinsic gas.

If execution fails (runtime failure, a recipient balance that would overflow uint256, a
result that does not fit a receipt), everything it did is reverted except the nonce and the fee.
The fee ``gas_used * tx.fee`` is always charged and credited to the block proposer
(``header.proposer``); a credit that would overflow the proposer's balance is burned.

Signature verification is the expensive part (~60 µs). A node verifies each signature once:
mempool admission verifies it and caches the result on the transaction object, and
:meth:`Executor.apply_block` accepts ``verified``, the hashes of transactions the caller has
already verified (e.g. those its mempool admitted), for blocks decoded anew from the wire.

Invariants: a transaction's content never raises (every outcome is a receipt); what raises is
our own broken invariant (an ``AssertionError``), e.g. a runtime reporting more gas than it was
given, or a sender unable to pay a fee the pre-checks guaranteed.

Callers: the node (on delivery of a committed block), the ledger's tests, the simulator and
the chain benchmark.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from chain.block import Block
from chain.params import intrinsic_gas
from chain.receipt import (
    LOG_DATA_BYTES_MAX,
    LOG_TOPICS_MAX,
    LOGS_PER_RECEIPT_MAX,
    RETURN_DATA_BYTES_MAX,
    Log,
    Receipt,
    ReceiptStatus,
    truncate_reason,
)
from chain.runtime import CallResult, ContractRuntime, ExecutionContext
from chain.state import BalanceOverflow, InsufficientBalance, StateDB, StateError
from chain.tx import Transaction, read_fields

__all__ = [
    "BlockResult",
    "CallResult",
    "ContractRuntime",
    "ExecutionContext",
    "Executor",
    "context_of",
]

_UINT64_MAX = (1 << 64) - 1
_UINT256_MAX = (1 << 256) - 1
_SUCCESS = int(ReceiptStatus.SUCCESS)
_FAILURE = int(ReceiptStatus.FAILURE)
_NO_HASHES: frozenset[bytes] = frozenset()
CONTRACTS_DISABLED = "contracts are not enabled"


@dataclass(frozen=True)
class BlockResult:
    """The outcome of applying one block.

    Attributes:
        receipts: one per transaction, in block order.
        state_root: the state commitment after the block.
        writes: the state writes for the ledger's batch (from :meth:`StateDB.commit`).
        accounts: the accounts among ``writes``, decoded (:attr:`StateCommit.accounts`).
        gas_used: total gas used by the block's transactions.
        tx_count: number of transactions.
        failed_count: how many receipts report failure.
    """

    receipts: tuple[Receipt, ...]
    state_root: bytes
    writes: Mapping[bytes, bytes | None]
    gas_used: int
    tx_count: int
    failed_count: int
    accounts: Mapping[bytes, tuple[int, int, bytes]] = field(default_factory=dict)


def context_of(block: Block) -> ExecutionContext:
    """The execution context of ``block`` (from its header)."""
    h = block.header
    return ExecutionContext(h.chain_id, h.height, h.timestamp, h.proposer)


def _rejected(tx: Transaction, reason: str) -> Receipt:
    return Receipt(tx.hash, _FAILURE, 0, 0, truncate_reason(reason), (), b"", b"")


def _receipt_problem(result: CallResult) -> str:
    """Why a runtime result cannot be put in a receipt ("" if it can)."""
    assert all(isinstance(log, Log) for log in result.logs), "runtime logs must be receipt Logs"
    assert len(result.contract_address) in (0, 20), "a contract address is 20 bytes"
    if len(result.logs) > LOGS_PER_RECEIPT_MAX:
        return f"too many logs: {len(result.logs)} > {LOGS_PER_RECEIPT_MAX}"
    for log in result.logs:
        if len(log.topics) > LOG_TOPICS_MAX or len(log.data) > LOG_DATA_BYTES_MAX:
            return "log exceeds the receipt bounds"
    return ""


class Executor:
    """Applies blocks and transactions for one chain.

    Args:
        chain_id: the chain whose transactions are valid.
        runtime: the contract runtime; ``None`` disables contracts.
    """

    def __init__(self, chain_id: int, runtime: ContractRuntime | None = None) -> None:
        self.chain_id = chain_id
        self.runtime = runtime

    def apply_block(
        self, state: StateDB, block: Block, *, verified: Collection[bytes] = _NO_HASHES
    ) -> BlockResult:
        """Apply every transaction of ``block`` and commit the state.

        Args:
            state: the state after the parent block, with no uncommitted changes.
            block: the block (its structure is validated elsewhere).
            verified: hashes of transactions whose signatures the caller already verified.

        Returns:
            Receipts, the new state commitment and the writes for the ledger.
        """
        assert not state.has_pending_changes, "apply_block needs a state without pending writes"
        ctx = context_of(block)
        receipts = []
        gas_used = 0
        failed = 0
        for index, tx in enumerate(block.transactions):
            receipt = self.apply_transaction(state, ctx, tx, index, verified=tx.hash in verified)
            receipts.append(receipt)
            gas_used += receipt.gas_used
            failed += receipt.status == _FAILURE
        commit = state.commit()
        return BlockResult(
            receipts=tuple(receipts),
            state_root=commit.commitment,
            writes=commit.writes,
            gas_used=gas_used,
            tx_count=len(receipts),
            failed_count=failed,
            accounts=commit.accounts,
        )

    def apply_transaction(
        self,
        state: StateDB,
        ctx: ExecutionContext,
        tx: Transaction,
        index: int = 0,
        *,
        verified: bool = False,
    ) -> Receipt:
        """Apply one transaction (see the module docstring for the rules).

        Args:
            state: the state to change (not committed here).
            ctx: the block being executed.
            tx: the transaction.
            index: its position in the block (for diagnostics only).
            verified: the caller vouches that the signature was verified.

        Returns:
            The receipt; never raises for anything in ``tx``.
        """
        del index  # position does not change the outcome
        chain_id, nonce, to, amount, fee, gas_limit, data = read_fields(tx)
        # ---- pre-checks: on failure, nothing changes
        if chain_id != self.chain_id:
            return _rejected(tx, f"wrong chain id {chain_id}, this chain is {self.chain_id}")
        if not verified and not tx.verify_signature():
            return _rejected(tx, "bad signature")
        sender = tx.sender_address
        expected = state.nonce(sender)
        if nonce != expected:
            return _rejected(tx, f"nonce {nonce} is not the account's next nonce {expected}")
        if expected == _UINT64_MAX:
            return _rejected(tx, "the account's nonces are exhausted")
        creation = not to
        intrinsic = intrinsic_gas(len(data), is_creation=creation)
        if gas_limit < intrinsic:
            return _rejected(tx, f"gas limit {gas_limit} is below the intrinsic gas {intrinsic}")
        balance = state.balance(sender)
        max_cost = amount + fee * gas_limit
        if balance < max_cost:
            return _rejected(
                tx, f"balance {balance} cannot cover amount + fee * gas_limit = {max_cost}"
            )
        if creation or state.has_code(to):
            return self._apply_contract(state, ctx, tx, sender, intrinsic)

        # ---- plain transfer: one write for the sender (nonce, amount and fee)
        fee_paid = intrinsic * fee
        if amount and to != sender and state.balance(to) + amount > _UINT256_MAX:
            state.increment_nonce_and_debit(sender, fee_paid)
            self._pay_proposer(state, ctx.proposer, fee_paid)
            reason = truncate_reason("recipient balance would overflow")
            return Receipt(tx.hash, _FAILURE, intrinsic, fee_paid, reason, (), b"", b"")
        state.increment_nonce_and_debit(sender, amount + fee_paid)
        if amount:
            state.add_balance(to, amount)
        self._pay_proposer(state, ctx.proposer, fee_paid)
        return Receipt(tx.hash, _SUCCESS, intrinsic, fee_paid, b"", (), b"", b"")

    @staticmethod
    def _pay_proposer(state: StateDB, proposer: bytes, fee_paid: int) -> None:
        # A proposer balance that would pass uint256 leaves the fee burned.
        if fee_paid:
            with contextlib.suppress(BalanceOverflow):
                state.add_balance(proposer, fee_paid)

    def _apply_contract(
        self,
        state: StateDB,
        ctx: ExecutionContext,
        tx: Transaction,
        sender: bytes,
        intrinsic: int,
    ) -> Receipt:
        """Contract creation or call (pre-checks passed): nonce and fee stay on failure."""
        state.increment_nonce(sender)
        mark = state.snapshot()
        gas_used = intrinsic
        reason = ""
        return_data = b""
        logs: tuple[Log, ...] = ()
        contract_address = b""
        if self.runtime is None:
            reason = CONTRACTS_DISABLED
        else:
            gas = tx.gas_limit - intrinsic
            run = self.runtime.create if not tx.to else self.runtime.call
            try:
                result = run(state, ctx, tx, gas)
            except StateError as e:
                result = CallResult(False, gas, reason=str(e))
            assert 0 <= result.gas_used <= gas, f"runtime used {result.gas_used} of {gas} gas"
            gas_used += result.gas_used
            return_data = result.return_data[:RETURN_DATA_BYTES_MAX]
            if not result.success:
                reason = result.reason or "execution failed"
            else:
                reason = _receipt_problem(result)
                if not reason:
                    logs = tuple(result.logs)
                    contract_address = result.contract_address
        if reason:
            state.revert(mark)
            logs = ()
            contract_address = b""

        fee_paid = gas_used * tx.fee
        try:
            state.sub_balance(sender, fee_paid)
        except InsufficientBalance as e:  # pragma: no cover - guarded by the balance pre-check
            raise AssertionError(f"sender cannot pay a fee the pre-checks covered: {e}") from e
        self._pay_proposer(state, ctx.proposer, fee_paid)
        return Receipt(
            tx.hash,
            _FAILURE if reason else _SUCCESS,
            gas_used,
            fee_paid,
            truncate_reason(reason),
            logs,
            contract_address,
            return_data,
        )
