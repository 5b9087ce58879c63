"""One executing frame: code, jump table, stack, bounded memory, gas and collected logs.

Invariants kept here: ``0 <= gas``; ``len(memory)`` is a multiple of 32 and never exceeds
``memory_bytes_max``; memory only grows after its expansion gas has been paid. Every word on
the stack is an int in ``[0, 2**256)``.

Also the handler type and the word/address helpers every handler module shares. Used by
:mod:`chain.vm._instructions` and :mod:`chain.vm._effects` (the handlers) and
:mod:`chain.vm.interpreter`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chain.vm import gas as g
from chain.vm.errors import MemoryLimitExceeded, OutOfGas
from chain.vm.host import Message
from chain.vm.opcodes import Op

if TYPE_CHECKING:
    from chain.vm.interpreter import Machine

__all__ = [
    "HALT",
    "WORD_MASK",
    "Frame",
    "Handler",
    "Log",
    "address_of",
    "jump_destinations",
    "word_of",
]

WORD_MASK = (1 << 256) - 1
_ADDRESS_MASK = (1 << 160) - 1
#: What a handler returns to stop its frame.
HALT = -1


def address_of(word: int) -> bytes:
    """The 20-byte address held in the low 160 bits of a word."""
    return (word & _ADDRESS_MASK).to_bytes(20, "big")


def word_of(data: bytes | bytearray) -> int:
    """A big-endian word from up to 32 bytes."""
    return int.from_bytes(data, "big")


@dataclass(frozen=True, slots=True)
class Log:
    """An event emitted by LOG0..LOG4: the emitting contract, 0-4 topics of 32 bytes, data."""

    address: bytes
    topics: tuple[bytes, ...]
    data: bytes


def jump_destinations(code: bytes) -> bytes:
    """Valid jump targets as a byte map: ``result[i] == 1`` iff ``code[i]`` is a JUMPDEST
    instruction (not a 0x5b byte inside PUSH data). As long as the code, so a cache of many
    maps stays small.

    A plain scan, one step per instruction (cached by
    :class:`~chain.vm.interpreter.CodeCache`). Faster-looking variants (regex search for
    PUSH bytes, slice clearing) were measured slower on PUSH-dense code.
    """
    marks = bytearray(len(code))
    pc = 0
    n = len(code)
    push1, push32, jumpdest = Op.PUSH1, Op.PUSH32, Op.JUMPDEST
    while pc < n:
        op = code[pc]
        if op == jumpdest:
            marks[pc] = 1
        elif push1 <= op <= push32:
            pc += op - push1 + 1
        pc += 1
    return bytes(marks)


class Frame:
    """Mutable execution state of one message; created and run by the Machine."""

    __slots__ = (
        "code",
        "gas",
        "jumpdests",
        "logs",
        "machine",
        "memory",
        "memory_bytes_max",
        "msg",
        "output",
        "return_data",
        "reverted",
        "stack",
    )

    def __init__(
        self, machine: Machine, msg: Message, jumpdests: bytes, memory_bytes_max: int
    ) -> None:
        self.machine = machine
        self.msg = msg
        self.code = msg.code
        self.jumpdests = jumpdests
        self.gas = msg.gas
        self.stack: list[int] = []
        self.memory = bytearray()
        self.memory_bytes_max = memory_bytes_max
        self.return_data = b""
        self.output = b""
        self.reverted = False
        self.logs: list[Log] = []

    def use_gas(self, amount: int) -> None:
        """Charge ``amount`` gas or raise :class:`OutOfGas`."""
        if amount > self.gas:
            raise OutOfGas()
        self.gas -= amount

    def touch(self, offset: int, size: int) -> None:
        """Make ``memory[offset:offset+size]`` addressable, paying for any expansion.

        A zero-size access touches nothing, whatever the offset.

        Raises:
            MemoryLimitExceeded: the range ends past ``memory_bytes_max``.
            OutOfGas: the expansion costs more than the gas left.
        """
        if size == 0:
            return
        end = offset + size
        if end > self.memory_bytes_max:
            raise MemoryLimitExceeded(f"memory limit of {self.memory_bytes_max} bytes exceeded")
        have = len(self.memory)
        if end > have:
            new_words = g.words(end)
            self.use_gas(g.memory_cost(new_words) - g.memory_cost(have // 32))
            self.memory.extend(bytes(new_words * 32 - have))

    def read(self, offset: int, size: int) -> bytes:
        """Bytes of memory (touching it first)."""
        if size == 0:
            return b""
        self.touch(offset, size)
        return bytes(self.memory[offset : offset + size])

    def write(self, offset: int, data: bytes) -> None:
        """Write ``data`` to memory at ``offset`` (already touched by the caller)."""
        if data:
            self.memory[offset : offset + len(data)] = data


#: An instruction handler: ``handler(frame, pc) -> next pc`` (or :data:`HALT`).
Handler = Callable[[Frame, int], int]
