"""The ``[testing] diverge_at_height`` fault: a validator that executes one block differently.

For test networks only (``node.config`` refuses the key unless ``test_network_only = true``).
When this node executes block ``diverge_at_height``, the first transaction is charged one more
unit of gas: its receipt's ``gas_used`` goes up by one and ``fee_paid`` by the transaction's fee
per gas (at least 1, so a zero-fee transaction diverges too); the sender pays that much more and
the block proposer receives it (when the sender cannot pay, only the receipt differs). So
this node's receipt and post-state differ from every honest node's; it commits that block,
then refuses the next one (its header carries the honest state root) and stops committing:
``phalanx query diverge`` finds the height and the transaction.

Every other block, and every block on a node without the fault, goes through
:class:`chain.executor.Executor` unchanged: the wrapper only adds to the result of one call.

Called by ``node.runtime`` (it replaces the application's executor when the key is set).
"""

from __future__ import annotations

import logging

from chain.executor import Executor
from chain.receipt import Receipt
from chain.runtime import ContractRuntime, ExecutionContext
from chain.state import StateDB, StateError
from chain.tx import Transaction

__all__ = ["DivergingExecutor"]

log = logging.getLogger("phalanx.node.fault")


class DivergingExecutor(Executor):
    """An executor that overcharges the first transaction of block ``height`` by one gas.

    Args:
        chain_id: the chain whose transactions are valid.
        runtime: the contract runtime (None disables contracts).
        height: the block to execute differently (> 0).
    """

    def __init__(self, chain_id: int, runtime: ContractRuntime | None, height: int) -> None:
        super().__init__(chain_id, runtime)
        assert height > 0, "diverge_at_height is a block height"
        self.height = height

    def apply_transaction(
        self,
        state: StateDB,
        ctx: ExecutionContext,
        tx: Transaction,
        index: int = 0,
        *,
        verified: bool = False,
    ) -> Receipt:
        """As :meth:`Executor.apply_transaction`, plus one gas for transaction 0 of the block."""
        receipt = super().apply_transaction(state, ctx, tx, index, verified=verified)
        if ctx.height != self.height or index != 0:
            return receipt
        charge = max(tx.fee, 1)
        try:
            state.sub_balance(tx.sender_address, charge)
        except StateError:                     # an empty balance: only the receipt differs
            pass
        else:
            self._pay_proposer(state, ctx.proposer, charge)
        log.warning("!!! TEST FAULT diverge_at_height: block %d, transaction 0x%s charged one "
                    "more gas (%d more paid): this node's state now differs !!!",
                    ctx.height, tx.hash.hex(), charge)
        changed: Receipt = receipt.copy(gas_used=receipt.gas_used + 1,
                                        fee_paid=receipt.fee_paid + charge)
        return changed
