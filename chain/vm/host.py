"""What the VM needs from the world: a state to read and write, block context, a message.

:class:`VMState` is the small storage interface the interpreter runs against; the chain's
``StateDB`` satisfies it structurally, and tests may use any object with these methods.
Snapshots nest: ``revert(id)`` undoes every write made since ``snapshot()`` returned ``id``.

:class:`BlockContext` is read-only block data (``chain.executor.ExecutionContext`` fits).
:class:`Message` is one frame's input: who calls whom, with what value, data, gas and code.
:class:`VMConfig` holds every bound of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chain.receipt import LOG_DATA_BYTES_MAX, LOGS_PER_RECEIPT_MAX

__all__ = ["ADDRESS_BYTES", "BlockContext", "Message", "VMConfig", "VMState"]

ADDRESS_BYTES = 20


class VMState(Protocol):
    """Account state as the VM sees it. Amounts are non-negative ints; slots are 32 bytes."""

    def balance(self, address: bytes) -> int: ...

    def add_balance(self, address: bytes, amount: int) -> None: ...

    def sub_balance(self, address: bytes, amount: int) -> None: ...

    def nonce(self, address: bytes) -> int: ...

    def get_code(self, address: bytes) -> bytes: ...

    def set_code(self, address: bytes, code: bytes) -> None: ...

    def get_storage(self, address: bytes, slot: bytes) -> bytes: ...

    def set_storage(self, address: bytes, slot: bytes, value: bytes) -> None: ...

    def snapshot(self) -> int: ...

    def revert(self, snapshot_id: int) -> None: ...


class BlockContext(Protocol):
    """The block a transaction executes in."""

    @property
    def chain_id(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def timestamp(self) -> int: ...


@dataclass(frozen=True, slots=True)
class VMConfig:
    """Bounds of one transaction's execution. Every run is finite even before gas."""

    stack_items_max: int = 1024
    memory_bytes_max: int = 64 * 1024
    call_depth_max: int = 16
    code_bytes_max: int = 24 * 1024
    return_bytes_max: int = 24 * 1024
    steps_max: int = 1_000_000
    logs_max: int = LOGS_PER_RECEIPT_MAX
    log_bytes_max: int = LOG_DATA_BYTES_MAX
    #: Jump maps kept by a :class:`~chain.vm.runtime.VMRuntime` across transactions.
    code_cache_entries_max: int = 256


@dataclass(frozen=True, slots=True)
class Message:
    """Input of one frame.

    Attributes:
        sender: the 20-byte address that calls (CALLER).
        to: the 20-byte address whose code runs and whose storage is used (ADDRESS).
        value: amount moved from ``sender`` to ``to`` before the code runs (CALLVALUE).
        data: call data (CALLDATA*); empty for a deployment's init code.
        gas: gas available to this frame.
        code: the code to run (the callee's code, or init code for a deployment).
        depth: 1 for the transaction's own frame, +1 per nested CALL.
    """

    sender: bytes
    to: bytes
    value: int
    data: bytes
    gas: int
    code: bytes
    depth: int = 1

    def __post_init__(self) -> None:
        assert len(self.sender) == ADDRESS_BYTES and len(self.to) == ADDRESS_BYTES
        assert self.value >= 0 and self.gas >= 0 and self.depth >= 1
