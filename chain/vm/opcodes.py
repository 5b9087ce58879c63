"""The instruction set: numbering, stack effects, immediate sizes and base gas.

The numbering follows the familiar EVM layout where an instruction has an EVM counterpart,
so existing intuition (and hex dumps) carry over; Phalanx-specific instructions (SHA256,
HEIGHT, TRANSFER) take free slots. The table is the single source of truth: the
interpreter, the assembler, the disassembler and docs/vm.md all read it.

Operand order: the first operand is the top of the stack. After ``PUSH 3, PUSH 10`` the top
is 10, so ``SUB`` pops ``a = 10`` then ``b = 3`` and pushes ``a - b = 7``.

Base gas is charged before an instruction runs; dynamic costs (memory expansion, EXP
exponent bytes, copies, SHA256 words, LOG bytes, SSTORE to a fresh slot, CALL) are charged by
the instruction itself, see :mod:`chain.vm.gas`.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.vm import gas as g

__all__ = ["BY_NAME", "OPCODES", "Op", "OpInfo", "push_op"]


@dataclass(frozen=True, slots=True)
class OpInfo:
    """One instruction: its byte, mnemonic, stack effect, immediate bytes and base gas."""

    code: int
    name: str
    pops: int
    pushes: int
    gas: int
    immediate: int = 0


class Op:
    """Opcode bytes by name, for code that builds bytecode by hand (tests, tools)."""

    STOP = 0x00
    ADD = 0x01
    MUL = 0x02
    SUB = 0x03
    DIV = 0x04
    MOD = 0x06
    EXP = 0x0A
    LT = 0x10
    GT = 0x11
    EQ = 0x14
    ISZERO = 0x15
    AND = 0x16
    OR = 0x17
    XOR = 0x18
    NOT = 0x19
    SHL = 0x1B
    SHR = 0x1C
    SHA256 = 0x20
    ADDRESS = 0x30
    BALANCE = 0x31
    CALLER = 0x33
    CALLVALUE = 0x34
    CALLDATALOAD = 0x35
    CALLDATASIZE = 0x36
    CALLDATACOPY = 0x37
    CODESIZE = 0x38
    CODECOPY = 0x39
    RETURNDATASIZE = 0x3D
    RETURNDATACOPY = 0x3E
    TIMESTAMP = 0x42
    HEIGHT = 0x43
    CHAINID = 0x46
    SELFBALANCE = 0x47
    POP = 0x50
    MLOAD = 0x51
    MSTORE = 0x52
    MSTORE8 = 0x53
    SLOAD = 0x54
    SSTORE = 0x55
    JUMP = 0x56
    JUMPI = 0x57
    PC = 0x58
    MSIZE = 0x59
    GAS = 0x5A
    JUMPDEST = 0x5B
    PUSH1 = 0x60
    PUSH32 = 0x7F
    DUP1 = 0x80
    SWAP1 = 0x90
    LOG0 = 0xA0
    CALL = 0xF1
    RETURN = 0xF3
    TRANSFER = 0xF5
    REVERT = 0xFD
    INVALID = 0xFE


def _table() -> dict[int, OpInfo]:
    ops: list[OpInfo] = [
        OpInfo(Op.STOP, "STOP", 0, 0, g.G_ZERO),
        OpInfo(Op.ADD, "ADD", 2, 1, g.G_VERYLOW),
        OpInfo(Op.MUL, "MUL", 2, 1, g.G_LOW),
        OpInfo(Op.SUB, "SUB", 2, 1, g.G_VERYLOW),
        OpInfo(Op.DIV, "DIV", 2, 1, g.G_LOW),
        OpInfo(Op.MOD, "MOD", 2, 1, g.G_LOW),
        OpInfo(Op.EXP, "EXP", 2, 1, g.G_EXP),
        OpInfo(Op.LT, "LT", 2, 1, g.G_VERYLOW),
        OpInfo(Op.GT, "GT", 2, 1, g.G_VERYLOW),
        OpInfo(Op.EQ, "EQ", 2, 1, g.G_VERYLOW),
        OpInfo(Op.ISZERO, "ISZERO", 1, 1, g.G_VERYLOW),
        OpInfo(Op.AND, "AND", 2, 1, g.G_VERYLOW),
        OpInfo(Op.OR, "OR", 2, 1, g.G_VERYLOW),
        OpInfo(Op.XOR, "XOR", 2, 1, g.G_VERYLOW),
        OpInfo(Op.NOT, "NOT", 1, 1, g.G_VERYLOW),
        OpInfo(Op.SHL, "SHL", 2, 1, g.G_VERYLOW),
        OpInfo(Op.SHR, "SHR", 2, 1, g.G_VERYLOW),
        OpInfo(Op.SHA256, "SHA256", 2, 1, g.G_SHA256),
        OpInfo(Op.ADDRESS, "ADDRESS", 0, 1, g.G_BASE),
        OpInfo(Op.BALANCE, "BALANCE", 1, 1, g.G_BALANCE),
        OpInfo(Op.CALLER, "CALLER", 0, 1, g.G_BASE),
        OpInfo(Op.CALLVALUE, "CALLVALUE", 0, 1, g.G_BASE),
        OpInfo(Op.CALLDATALOAD, "CALLDATALOAD", 1, 1, g.G_VERYLOW),
        OpInfo(Op.CALLDATASIZE, "CALLDATASIZE", 0, 1, g.G_BASE),
        OpInfo(Op.CALLDATACOPY, "CALLDATACOPY", 3, 0, g.G_VERYLOW),
        OpInfo(Op.CODESIZE, "CODESIZE", 0, 1, g.G_BASE),
        OpInfo(Op.CODECOPY, "CODECOPY", 3, 0, g.G_VERYLOW),
        OpInfo(Op.RETURNDATASIZE, "RETURNDATASIZE", 0, 1, g.G_BASE),
        OpInfo(Op.RETURNDATACOPY, "RETURNDATACOPY", 3, 0, g.G_VERYLOW),
        OpInfo(Op.TIMESTAMP, "TIMESTAMP", 0, 1, g.G_BASE),
        OpInfo(Op.HEIGHT, "HEIGHT", 0, 1, g.G_BASE),
        OpInfo(Op.CHAINID, "CHAINID", 0, 1, g.G_BASE),
        OpInfo(Op.SELFBALANCE, "SELFBALANCE", 0, 1, g.G_LOW),
        OpInfo(Op.POP, "POP", 1, 0, g.G_BASE),
        OpInfo(Op.MLOAD, "MLOAD", 1, 1, g.G_VERYLOW),
        OpInfo(Op.MSTORE, "MSTORE", 2, 0, g.G_VERYLOW),
        OpInfo(Op.MSTORE8, "MSTORE8", 2, 0, g.G_VERYLOW),
        OpInfo(Op.SLOAD, "SLOAD", 1, 1, g.G_SLOAD),
        OpInfo(Op.SSTORE, "SSTORE", 2, 0, g.G_SSTORE),
        OpInfo(Op.JUMP, "JUMP", 1, 0, g.G_MID),
        OpInfo(Op.JUMPI, "JUMPI", 2, 0, g.G_HIGH),
        OpInfo(Op.PC, "PC", 0, 1, g.G_BASE),
        OpInfo(Op.MSIZE, "MSIZE", 0, 1, g.G_BASE),
        OpInfo(Op.GAS, "GAS", 0, 1, g.G_BASE),
        OpInfo(Op.JUMPDEST, "JUMPDEST", 0, 0, g.G_JUMPDEST),
        OpInfo(Op.CALL, "CALL", 7, 1, g.G_CALL),
        OpInfo(Op.RETURN, "RETURN", 2, 0, g.G_ZERO),
        OpInfo(Op.TRANSFER, "TRANSFER", 2, 0, g.G_TRANSFER),
        OpInfo(Op.REVERT, "REVERT", 2, 0, g.G_ZERO),
    ]
    for n in range(1, 33):
        ops.append(OpInfo(Op.PUSH1 + n - 1, f"PUSH{n}", 0, 1, g.G_VERYLOW, immediate=n))
    for n in range(1, 17):
        ops.append(OpInfo(Op.DUP1 + n - 1, f"DUP{n}", n, n + 1, g.G_VERYLOW))
        ops.append(OpInfo(Op.SWAP1 + n - 1, f"SWAP{n}", n + 1, n + 1, g.G_VERYLOW))
    for n in range(5):
        ops.append(OpInfo(Op.LOG0 + n, f"LOG{n}", 2 + n, 0, g.G_LOG))
    table: dict[int, OpInfo] = {}
    for info in ops:
        assert info.code not in table, f"opcode 0x{info.code:02x} defined twice"
        table[info.code] = info
    return dict(sorted(table.items()))


#: Every defined instruction by its byte. Bytes absent here (including INVALID, 0xfe) fault.
OPCODES: dict[int, OpInfo] = _table()
#: Every defined instruction by its mnemonic.
BY_NAME: dict[str, OpInfo] = {info.name: info for info in OPCODES.values()}


def push_op(width: int) -> int:
    """The opcode byte of PUSH\\ ``width`` (1..32)."""
    if not 1 <= width <= 32:
        raise ValueError(f"PUSH width must be 1..32, got {width}")
    return Op.PUSH1 + width - 1
