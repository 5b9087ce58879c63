"""The executor hook: deploy and call contracts for a transaction, and read-only queries.

Deployment model
----------------
A transaction with an empty recipient deploys a contract. Its data is *init code*: it runs
once at the new address (with empty call data and the transaction's amount as CALLVALUE) and
whatever it RETURNs becomes the contract's code, paying :data:`~chain.vm.gas.G_CREATE_BYTE`
per byte. The assembler's ``deploy_code`` builds init code from any source file. The address
is ``SHA-256(b"phalanx/create" || sender address || nonce as 8 bytes)[:20]``; deploying to an
address that already has code or a nonce fails.

A transaction to an account with code runs that code with the transaction's data as call
data and its amount as value. Both paths run in one state snapshot: on failure every effect
(storage, value moved, logs, the new code) is undone, the reason is reported, and the gas
used is still charged by the executor.

Read-only calls (:meth:`VMRuntime.query`) run the same way and then revert their snapshot, so
nothing they do survives; a node answers ``query call`` with them.

:class:`VMRuntime` is the :class:`chain.runtime.ContractRuntime` the executor is given; the
functions :func:`run_call` and :func:`run_create` underneath need only a
:class:`~chain.vm.host.VMState`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from chain import receipt
from chain.runtime import CallResult, ExecutionContext
from chain.state import StateDB
from chain.tx import Transaction
from chain.vm import gas as g
from chain.vm._frame import Log
from chain.vm.errors import CodeTooLarge, CreateCollision, OutOfGas, VMFault
from chain.vm.host import BlockContext, Message, VMConfig, VMState
from chain.vm.interpreter import CodeCache, FrameResult, Machine

__all__ = [
    "CREATE_DOMAIN",
    "Outcome",
    "VMRuntime",
    "contract_address",
    "run_call",
    "run_create",
]

CREATE_DOMAIN = b"phalanx/create"


def contract_address(sender: bytes, nonce: int) -> bytes:
    """The address a deployment by ``sender`` with transaction ``nonce`` creates."""
    assert len(sender) == 20 and 0 <= nonce < 1 << 64
    return hashlib.sha256(CREATE_DOMAIN + sender + nonce.to_bytes(8, "big")).digest()[:20]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one contract transaction did.

    Attributes:
        success: whether its effects were kept.
        gas_used: gas consumed, in ``[0, gas]``.
        return_data: RETURN or REVERT data (the runtime code for a deployment is not repeated).
        logs: events, in order (empty on failure).
        reason: why it failed ("" on success).
        contract_address: the new contract for a successful deployment, else ``b""``.
        steps: instructions executed, for benchmarks and metrics.
    """

    success: bool
    gas_used: int
    return_data: bytes
    logs: tuple[Log, ...]
    reason: str
    contract_address: bytes = b""
    steps: int = 0


def _outcome(res: FrameResult, gas: int, machine: Machine, address: bytes = b"") -> Outcome:
    return Outcome(
        success=res.success,
        gas_used=gas - res.gas_left,
        return_data=res.output,
        logs=res.logs,
        reason=res.reason,
        contract_address=address if res.success else b"",
        steps=machine.steps,
    )


def run_call(
    state: VMState,
    env: BlockContext,
    *,
    sender: bytes,
    to: bytes,
    value: int,
    data: bytes,
    gas: int,
    config: VMConfig | None = None,
    code_cache: CodeCache | None = None,
) -> Outcome:
    """Call the contract at ``to`` (a plain value transfer if it has no code).

    Returns:
        The outcome; VM faults become failed outcomes, never exceptions.
    """
    machine = Machine(state, env, config, code_cache)
    msg = Message(sender=sender, to=to, value=value, data=data, gas=gas, code=state.get_code(to))
    return _outcome(machine.execute(msg), gas, machine)


def run_create(
    state: VMState,
    env: BlockContext,
    *,
    sender: bytes,
    nonce: int,
    value: int,
    init_code: bytes,
    gas: int,
    config: VMConfig | None = None,
    code_cache: CodeCache | None = None,
) -> Outcome:
    """Deploy: run ``init_code`` at the derived address and store what it returns as code.

    Returns:
        The outcome, with ``contract_address`` set on success.
    """
    machine = Machine(state, env, config, code_cache)
    address = contract_address(sender, nonce)
    if state.get_code(address) or state.nonce(address):
        fault: VMFault = CreateCollision(f"address 0x{address.hex()} is already in use")
        return Outcome(False, gas, b"", (), fault.reason(), steps=0)
    snapshot = state.snapshot()
    msg = Message(sender=sender, to=address, value=value, data=b"", gas=gas, code=init_code)
    res = machine.execute(msg)
    if not res.success:
        return _outcome(res, gas, machine)
    code = res.output
    config = machine.config
    failure: VMFault | None = None
    if len(code) > config.code_bytes_max:
        failure = CodeTooLarge(f"deployed code of {len(code)} bytes exceeds {config.code_bytes_max}")
    elif g.G_CREATE_BYTE * len(code) > res.gas_left:
        failure = OutOfGas()
        failure.message = f"out of gas storing {len(code)} bytes of code"
    if failure is not None:
        state.revert(snapshot)
        return Outcome(False, gas, b"", (), failure.reason(), steps=machine.steps)
    state.set_code(address, code)
    gas_left = res.gas_left - g.G_CREATE_BYTE * len(code)
    return Outcome(True, gas - gas_left, b"", res.logs, "", address, machine.steps)


class VMRuntime:
    """The contract runtime the executor calls (:class:`chain.runtime.ContractRuntime`).

    Args:
        config: the VM's bounds (defaults: :class:`~chain.vm.host.VMConfig`).
    """

    def __init__(self, config: VMConfig | None = None) -> None:
        self.config = config or VMConfig()
        self.code_cache = CodeCache(self.config.code_cache_entries_max)

    def create(
        self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int
    ) -> CallResult:
        """Deploy ``tx.data`` as init code at the address derived from the sender and nonce."""
        outcome = run_create(
            state,
            ctx,
            sender=tx.sender_address,
            nonce=tx.nonce,
            value=tx.amount,
            init_code=tx.data,
            gas=gas,
            config=self.config,
            code_cache=self.code_cache,
        )
        return _call_result(outcome)

    def call(
        self, state: StateDB, ctx: ExecutionContext, tx: Transaction, gas: int
    ) -> CallResult:
        """Run the code at ``tx.to`` with ``tx.data`` as call data and ``tx.amount`` as value."""
        outcome = run_call(
            state,
            ctx,
            sender=tx.sender_address,
            to=tx.to,
            value=tx.amount,
            data=tx.data,
            gas=gas,
            config=self.config,
            code_cache=self.code_cache,
        )
        return _call_result(outcome)

    def query(
        self,
        state: VMState,
        ctx: BlockContext,
        *,
        to: bytes,
        data: bytes,
        gas: int,
        sender: bytes = bytes(20),
        value: int = 0,
    ) -> Outcome:
        """A read-only call: run it, then revert every effect it had on ``state``.

        Returns:
            The outcome as if the call had been a transaction; ``state`` is unchanged.
        """
        snapshot = state.snapshot()
        try:
            return run_call(
                state, ctx, sender=sender, to=to, value=value, data=data, gas=gas,
                config=self.config, code_cache=self.code_cache,
            )  # fmt: skip
        finally:
            state.revert(snapshot)


def _call_result(outcome: Outcome) -> CallResult:
    logs = tuple(receipt.Log(log.address, log.topics, log.data) for log in outcome.logs)
    return CallResult(
        success=outcome.success,
        gas_used=outcome.gas_used,
        return_data=outcome.return_data,
        logs=logs,
        reason=outcome.reason,
        contract_address=outcome.contract_address,
    )
