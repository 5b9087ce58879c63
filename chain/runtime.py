"""The contract-runtime hook between the executor and the VM, and the types it exchanges.

The executor (:mod:`chain.executor`) knows nothing of bytecode: for a contract creation, or
a transaction to an account that holds code, it hands the transaction to a
:class:`ContractRuntime` (implemented in ``chain.vm``) and turns the :class:`CallResult` into
a receipt. The contract of the hook:

* ``create``/``call`` get the state *after* the executor has bumped the sender's nonce and
  taken its own snapshot; ``gas`` is ``tx.gas_limit`` minus the intrinsic gas.
* The runtime moves ``tx.amount`` from the sender to the callee / new contract itself (it
  is CALLVALUE) and derives the new contract's address.
* It returns a :class:`CallResult` and never raises for anything a transaction contains:
  faults are failed results. ``gas_used`` is within ``[0, gas]``.
* On failure the runtime may leave state dirty: the executor reverts its snapshot anyway.

Callers: :mod:`chain.executor`; implemented by ``chain.vm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chain.receipt import Log

if TYPE_CHECKING:
    from chain.state import StateDB
    from chain.tx import Transaction

__all__ = ["CallResult", "ContractRuntime", "ExecutionContext"]


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """The block a transaction executes in.

    Attributes:
        chain_id: the chain id.
        height: the block height.
        timestamp: the block timestamp (ms since the epoch, chosen by the proposer).
        proposer: the 20-byte address that receives the fees.
    """

    chain_id: int
    height: int
    timestamp: int
    proposer: bytes


@dataclass(frozen=True, slots=True)
class CallResult:
    """What a contract creation or call did.

    Attributes:
        success: whether its effects are kept.
        gas_used: gas consumed beyond the intrinsic gas, in ``[0, gas]``.
        return_data: RETURN/REVERT data.
        logs: events emitted, in order (empty on failure).
        reason: why it failed, for people ("" on success).
        contract_address: the new contract's address for a successful creation, else ``b""``.
    """

    success: bool
    gas_used: int
    return_data: bytes = b""
    logs: Sequence[Log] = ()
    reason: str = ""
    contract_address: bytes = b""


class ContractRuntime(Protocol):
    """The VM as the executor sees it."""

    def create(
        self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int
    ) -> CallResult:
        """Deploy the contract that ``tx`` creates, with at most ``gas`` gas."""
        ...

    def call(self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int) -> CallResult:
        """Run the code at ``tx.to`` with ``tx.data`` and ``tx.amount``, with at most ``gas``."""
        ...
