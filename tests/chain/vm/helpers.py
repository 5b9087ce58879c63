"""Shared fixtures for the VM tests: fresh states, funded keys, a real executor, runners."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from chain.db.memory import MemoryDB
from chain.executor import Executor
from chain.keys import PrivateKey
from chain.params import intrinsic_gas
from chain.receipt import Receipt
from chain.runtime import ExecutionContext
from chain.state import StateDB, apply_writes
from chain.tx import Transaction, make_transaction
from chain.vm import VMRuntime
from chain.vm.assembler import assemble, deploy_code
from chain.vm.host import Message, VMConfig
from chain.vm.interpreter import FrameResult, Machine
from chain.vm.runtime import contract_address

CHAIN_ID = 77
PROPOSER = b"\xee" * 20
CTX = ExecutionContext(CHAIN_ID, height=12, timestamp=1_700_000_000_123, proposer=PROPOSER)
CALLER = b"\xca" * 20
CONTRACT = b"\xc0" * 20
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "contracts"
FUNDS = 10**18


def key(name: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(name.encode()).digest())


def fresh_state(balances: dict[bytes, int] | None = None) -> StateDB:
    """A committed state over a MemoryDB holding ``balances``."""
    db = MemoryDB()
    state = StateDB(db, bytes(32))
    for address, amount in (balances or {}).items():
        state.set_balance(address, amount)
    apply_writes(db, state.commit().writes)
    return state


def code_of(source_or_code: str | bytes) -> bytes:
    return assemble(source_or_code).code if isinstance(source_or_code, str) else source_or_code


def run(
    source_or_code: str | bytes,
    *,
    gas: int = 1_000_000,
    data: bytes = b"",
    value: int = 0,
    state: StateDB | None = None,
    config: VMConfig | None = None,
) -> tuple[FrameResult, StateDB, Machine]:
    """Run code directly as CONTRACT called by CALLER (who holds FUNDS)."""
    if state is None:
        state = fresh_state({CALLER: FUNDS})
    machine = Machine(state, CTX, config)
    msg = Message(CALLER, CONTRACT, value, data, gas, code_of(source_or_code))
    return machine.execute(msg), state, machine


def word(result: FrameResult) -> int:
    assert result.success, result.reason
    assert len(result.output) == 32, result.output
    return int.from_bytes(result.output, "big")


def example(name: str) -> str:
    return (EXAMPLES / f"{name}.asm").read_text()


@dataclass
class Chain:
    """A StateDB, an executor with the VM runtime, and keys with funds; sends real txs."""

    names: tuple[str, ...] = ("alice", "bob", "carol")
    config: VMConfig | None = None
    state: StateDB = field(init=False)
    keys: dict[str, PrivateKey] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = {n: key(n) for n in self.names}
        self.state = fresh_state({k.address: FUNDS for k in self.keys.values()})
        self.executor = Executor(CHAIN_ID, VMRuntime(self.config))

    def addr(self, name: str) -> bytes:
        return self.keys[name].address

    def tx(
        self, name: str, to: bytes, *, data: bytes = b"", amount: int = 0,
        gas_limit: int = 2_000_000, fee: int = 1,
    ) -> Transaction:
        k = self.keys[name]
        return make_transaction(
            k, chain_id=CHAIN_ID, nonce=self.state.nonce(k.address), to=to, amount=amount,
            fee=fee, gas_limit=gas_limit, data=data,
        )

    def apply(self, tx: Transaction) -> Receipt:
        return self.executor.apply_transaction(self.state, CTX, tx, verified=True)

    def send(self, name: str, to: bytes, **kw: object) -> Receipt:
        return self.apply(self.tx(name, to, **kw))  # type: ignore[arg-type]

    def deploy(self, name: str, source: str, *, amount: int = 0) -> bytes:
        nonce = self.state.nonce(self.addr(name))
        receipt = self.send(name, b"", data=deploy_code(source), amount=amount)
        assert receipt.succeeded, receipt.reason_text
        assert receipt.contract_address == contract_address(self.addr(name), nonce)
        return bytes(receipt.contract_address)


def call_gas(receipt: Receipt, data: bytes) -> int:
    """Gas the VM used for a call receipt (without the intrinsic part)."""
    return int(receipt.gas_used) - intrinsic_gas(len(data), is_creation=False)
