"""The VM's exception hierarchy: the only exceptions that leave the interpreter.

Every deliberate failure inside :mod:`chain.vm` is a :class:`VMError`, which subclasses
:class:`chain.errors.ChainError`. Execution faults (:class:`VMFault`) carry the program
counter and the opcode name where they happened, so the runtime can record a readable reason
in the receipt ("out of gas at pc 17", "stack underflow at pc 3 (ADD)"). A fault in a frame
reverts that frame's effects and consumes all of its gas; the caller of the frame (another
contract, or the runtime for the top frame) sees a failure flag, never the exception.

:class:`AssemblyError` is raised by the assembler for bad source text, with a line number.
"""

from __future__ import annotations

from chain.errors import ChainError

__all__ = [
    "AssemblyError",
    "BalanceOverflow",
    "CallDepthExceeded",
    "CodeTooLarge",
    "CreateCollision",
    "InsufficientBalance",
    "InvalidJump",
    "InvalidOpcode",
    "LogLimitExceeded",
    "MemoryLimitExceeded",
    "OutOfGas",
    "ReturnDataTooLarge",
    "StackOverflow",
    "StackUnderflow",
    "StepLimitExceeded",
    "VMError",
    "VMFault",
]


class VMError(ChainError):
    """Base of every error raised on purpose by the contract VM."""


class AssemblyError(VMError):
    """Raised when assembly source text is invalid; the message names the line."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class VMFault(VMError):
    """An execution fault: the frame stops, its effects are reverted and its gas is used up.

    ``pc`` and ``op`` are filled in by the interpreter at the instruction that faulted.
    """

    #: Whether :meth:`reason` names the opcode after the program counter.
    show_op = True

    def __init__(self, message: str, pc: int | None = None, op: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pc = pc
        self.op = op

    def reason(self) -> str:
        """A one-line reason for a receipt, e.g. ``"stack underflow at pc 3 (ADD)"``."""
        if self.pc is None:
            return self.message
        where = f"{self.message} at pc {self.pc}"
        if self.show_op and self.op is not None:
            where += f" ({self.op})"
        return where

    def __str__(self) -> str:
        return self.reason()


class OutOfGas(VMFault):
    """Raised when an instruction costs more gas than the frame has left."""

    show_op = False

    def __init__(self, pc: int | None = None, op: str | None = None) -> None:
        super().__init__("out of gas", pc, op)


class StackUnderflow(VMFault):
    """Raised when an instruction needs more stack items than there are."""

    def __init__(self, pc: int | None = None, op: str | None = None) -> None:
        super().__init__("stack underflow", pc, op)


class StackOverflow(VMFault):
    """Raised when an instruction would grow the stack past its bound (1024 items)."""

    def __init__(self, pc: int | None = None, op: str | None = None) -> None:
        super().__init__("stack overflow", pc, op)


class InvalidJump(VMFault):
    """Raised when JUMP or JUMPI targets anything but a JUMPDEST outside PUSH data."""


class InvalidOpcode(VMFault):
    """Raised on a byte that is not an instruction (including a deliberate INVALID)."""

    show_op = False


class MemoryLimitExceeded(VMFault):
    """Raised when an access would grow memory past ``memory_bytes_max``."""


class CallDepthExceeded(VMFault):
    """Raised when CALL would nest frames deeper than ``call_depth_max``."""


class StepLimitExceeded(VMFault):
    """Raised when one transaction executes more than ``steps_max`` instructions."""


class InsufficientBalance(VMFault):
    """Raised when TRANSFER moves more value than the contract holds."""


class BalanceOverflow(VMFault):
    """Raised when moving value would push the recipient's balance past uint256."""


class ReturnDataTooLarge(VMFault):
    """Raised when RETURN or REVERT hands back more than ``return_bytes_max`` bytes."""


class CodeTooLarge(VMFault):
    """Raised when code to run or to deploy exceeds ``code_bytes_max``."""


class LogLimitExceeded(VMFault):
    """Raised when a transaction emits more logs, or larger ones, than its bounds allow."""


class CreateCollision(VMFault):
    """Raised when a deployment targets an address that already has code or a nonce."""
