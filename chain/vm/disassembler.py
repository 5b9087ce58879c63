"""Bytecode to assembly text that re-assembles to exactly the same bytes.

Every PUSH is printed with its explicit width (``PUSH2 0x000c``) so its size is kept; bytes
that are not instructions, and PUSH data cut off by the end of the code, are printed as
``.byte`` lines. Each line ends with a comment giving its offset. Used by
``phalanx contract disasm`` and the round-trip tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chain.vm.opcodes import OPCODES, OpInfo

__all__ = ["Instruction", "disassemble", "instructions"]


@dataclass(frozen=True, slots=True)
class Instruction:
    """One decoded instruction, or raw bytes when ``info`` is None."""

    pc: int
    info: OpInfo | None
    data: bytes  # PUSH immediate, or the raw bytes when info is None

    def text(self) -> str:
        """The instruction as assembly text."""
        if self.info is None:
            return ".byte " + " ".join(f"0x{b:02x}" for b in self.data)
        if self.info.immediate:
            return f"{self.info.name} 0x{self.data.hex()}"
        return self.info.name


def instructions(code: bytes) -> Iterator[Instruction]:
    """Decode ``code`` instruction by instruction, skipping over PUSH data."""
    pc = 0
    while pc < len(code):
        info = OPCODES.get(code[pc])
        if info is None:
            yield Instruction(pc, None, code[pc : pc + 1])
            pc += 1
        elif pc + 1 + info.immediate > len(code):  # truncated PUSH: keep the raw bytes
            yield Instruction(pc, None, code[pc:])
            pc = len(code)
        else:
            yield Instruction(pc, info, code[pc + 1 : pc + 1 + info.immediate])
            pc += 1 + info.immediate


def disassemble(code: bytes) -> str:
    """Assembly text for ``code``; ``assemble(disassemble(code)).code == code``."""
    lines = [f"    {ins.text():<44} ; {ins.pc:04x}" for ins in instructions(code)]
    return "\n".join(lines) + ("\n" if lines else "")
