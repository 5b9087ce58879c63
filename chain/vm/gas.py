"""The gas schedule: base costs per instruction class and the dynamic cost functions.

All costs are integers; nothing here depends on anything but its arguments. Base costs are
charged by the interpreter before an instruction runs (see :mod:`chain.vm.opcodes`); the
dynamic parts below are charged by the instruction itself once its operands are known.

Memory is priced per 32-byte word as ``3 * words + words**2 // 512`` (total, not per step),
so expansion costs the difference between the new and the old total.
"""

from __future__ import annotations

__all__ = [
    "G_BALANCE",
    "G_BASE",
    "G_CALL",
    "G_CALL_VALUE",
    "G_COPY_WORD",
    "G_CREATE_BYTE",
    "G_EXP",
    "G_EXP_BYTE",
    "G_HIGH",
    "G_JUMPDEST",
    "G_LOG",
    "G_LOG_BYTE",
    "G_LOG_TOPIC",
    "G_LOW",
    "G_MID",
    "G_SHA256",
    "G_SHA256_WORD",
    "G_SLOAD",
    "G_SSTORE",
    "G_SSTORE_SET",
    "G_TRANSFER",
    "G_VERYLOW",
    "G_ZERO",
    "copy_cost",
    "exp_cost",
    "memory_cost",
    "words",
]

G_ZERO = 0  # STOP, RETURN, REVERT (their memory expansion is still charged)
G_JUMPDEST = 1
G_BASE = 2  # context reads, POP, PC, MSIZE, GAS
G_VERYLOW = 3  # ADD SUB compare bitwise PUSH DUP SWAP MLOAD MSTORE CALLDATALOAD
G_LOW = 5  # MUL DIV MOD SELFBALANCE
G_MID = 8  # JUMP
G_HIGH = 10  # JUMPI
G_EXP = 10
G_EXP_BYTE = 50  # per byte of the exponent
G_SHA256 = 30
G_SHA256_WORD = 6  # per 32-byte word hashed
G_COPY_WORD = 3  # per 32-byte word copied (CALLDATACOPY, CODECOPY, RETURNDATACOPY)
G_BALANCE = 100
G_SLOAD = 200
G_SSTORE = 5_000  # writing a slot
G_SSTORE_SET = 15_000  # extra when a zero slot becomes non-zero
G_LOG = 375
G_LOG_TOPIC = 375
G_LOG_BYTE = 8
G_CALL = 700
G_CALL_VALUE = 2_300  # extra when CALL moves value
G_TRANSFER = 2_300
G_CREATE_BYTE = 200  # per byte of runtime code stored by a deployment


def words(size: int) -> int:
    """Number of 32-byte words needed for ``size`` bytes."""
    return (size + 31) // 32


def memory_cost(word_count: int) -> int:
    """Total gas for a memory of ``word_count`` words."""
    return 3 * word_count + word_count * word_count // 512


def exp_cost(exponent: int) -> int:
    """Dynamic part of EXP: per byte of the exponent's minimal big-endian form."""
    return G_EXP_BYTE * ((exponent.bit_length() + 7) // 8)


def copy_cost(size: int) -> int:
    """Dynamic part of a copy of ``size`` bytes (CALLDATACOPY and friends)."""
    return G_COPY_WORD * words(size)
