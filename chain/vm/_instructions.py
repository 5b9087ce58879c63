"""Instruction handlers and the dispatch table the interpreter loop indexes by opcode byte.

Pure and memory instructions live here; those with effects beyond the frame (LOG,
TRANSFER, CALL, RETURN, REVERT) in :mod:`chain.vm._effects`.

Each handler has the signature ``handler(frame, pc) -> next_pc`` and returns :data:`HALT`
to stop the frame. Before a handler runs, the loop has already charged the base gas and
checked that the stack holds at least ``pops`` items and will not exceed its bound, so
handlers pop freely. Handlers charge their own dynamic gas and raise only :class:`VMFault`
subclasses. Words are ints in ``[0, 2**256)``; results are reduced modulo ``2**256``.
"""

from __future__ import annotations

import hashlib

from chain.vm import gas as g
from chain.vm._effects import EFFECT_HANDLERS
from chain.vm._frame import HALT, WORD_MASK, Frame, Handler, address_of, word_of
from chain.vm.errors import InvalidJump
from chain.vm.opcodes import OPCODES, Op, OpInfo

__all__ = ["DISPATCH", "HALT", "Handler"]


def _padded(src: bytes, offset: int, size: int) -> bytes:
    """``src[offset:offset+size]`` right-padded with zeros to exactly ``size`` bytes."""
    if offset >= len(src):
        return bytes(size)
    chunk = src[offset : offset + size]
    return chunk + bytes(size - len(chunk))


# -- arithmetic, comparison, bitwise ---------------------------------------------------------


def _add(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = (a + s[-1]) & WORD_MASK
    return pc + 1


def _mul(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = (a * s[-1]) & WORD_MASK
    return pc + 1


def _sub(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = (a - s[-1]) & WORD_MASK
    return pc + 1


def _div(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    b = s[-1]
    s[-1] = a // b if b else 0
    return pc + 1


def _mod(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    b = s[-1]
    s[-1] = a % b if b else 0
    return pc + 1


def _exp(f: Frame, pc: int) -> int:
    s = f.stack
    base = s.pop()
    exponent = s[-1]
    f.use_gas(g.exp_cost(exponent))
    s[-1] = pow(base, exponent, 1 << 256)
    return pc + 1


def _lt(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = 1 if a < s[-1] else 0
    return pc + 1


def _gt(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = 1 if a > s[-1] else 0
    return pc + 1


def _eq(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] = 1 if a == s[-1] else 0
    return pc + 1


def _iszero(f: Frame, pc: int) -> int:
    s = f.stack
    s[-1] = 0 if s[-1] else 1
    return pc + 1


def _and(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] &= a
    return pc + 1


def _or(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] |= a
    return pc + 1


def _xor(f: Frame, pc: int) -> int:
    s = f.stack
    a = s.pop()
    s[-1] ^= a
    return pc + 1


def _not(f: Frame, pc: int) -> int:
    s = f.stack
    s[-1] = WORD_MASK ^ s[-1]
    return pc + 1


def _shl(f: Frame, pc: int) -> int:
    s = f.stack
    shift = s.pop()
    s[-1] = (s[-1] << shift) & WORD_MASK if shift < 256 else 0
    return pc + 1


def _shr(f: Frame, pc: int) -> int:
    s = f.stack
    shift = s.pop()
    s[-1] = s[-1] >> shift if shift < 256 else 0
    return pc + 1


def _sha256(f: Frame, pc: int) -> int:
    s = f.stack
    offset = s.pop()
    size = s.pop()
    f.touch(offset, size)
    f.use_gas(g.G_SHA256_WORD * g.words(size))
    s.append(word_of(hashlib.sha256(f.memory[offset : offset + size]).digest()))
    return pc + 1


# -- context -----------------------------------------------------------------------------------


def _address(f: Frame, pc: int) -> int:
    f.stack.append(word_of(f.msg.to))
    return pc + 1


def _balance(f: Frame, pc: int) -> int:
    s = f.stack
    s[-1] = f.machine.state.balance(address_of(s[-1]))
    return pc + 1


def _caller(f: Frame, pc: int) -> int:
    f.stack.append(word_of(f.msg.sender))
    return pc + 1


def _callvalue(f: Frame, pc: int) -> int:
    f.stack.append(f.msg.value)
    return pc + 1


def _calldataload(f: Frame, pc: int) -> int:
    s = f.stack
    s[-1] = word_of(_padded(f.msg.data, s[-1], 32))
    return pc + 1


def _calldatasize(f: Frame, pc: int) -> int:
    f.stack.append(len(f.msg.data))
    return pc + 1


def _copy_into_memory(f: Frame, src: bytes) -> None:
    s = f.stack
    dest = s.pop()
    offset = s.pop()
    size = s.pop()
    f.touch(dest, size)
    f.use_gas(g.copy_cost(size))
    if size:
        f.write(dest, _padded(src, offset, size))


def _calldatacopy(f: Frame, pc: int) -> int:
    _copy_into_memory(f, f.msg.data)
    return pc + 1


def _codesize(f: Frame, pc: int) -> int:
    f.stack.append(len(f.code))
    return pc + 1


def _codecopy(f: Frame, pc: int) -> int:
    _copy_into_memory(f, f.code)
    return pc + 1


def _returndatasize(f: Frame, pc: int) -> int:
    f.stack.append(len(f.return_data))
    return pc + 1


def _returndatacopy(f: Frame, pc: int) -> int:
    _copy_into_memory(f, f.return_data)
    return pc + 1


def _timestamp(f: Frame, pc: int) -> int:
    f.stack.append(f.machine.env.timestamp & WORD_MASK)
    return pc + 1


def _height(f: Frame, pc: int) -> int:
    f.stack.append(f.machine.env.height & WORD_MASK)
    return pc + 1


def _chainid(f: Frame, pc: int) -> int:
    f.stack.append(f.machine.env.chain_id & WORD_MASK)
    return pc + 1


def _selfbalance(f: Frame, pc: int) -> int:
    f.stack.append(f.machine.state.balance(f.msg.to))
    return pc + 1


# -- stack, memory, storage, flow --------------------------------------------------------------


def _pop(f: Frame, pc: int) -> int:
    f.stack.pop()
    return pc + 1


def _mload(f: Frame, pc: int) -> int:
    s = f.stack
    offset = s[-1]
    f.touch(offset, 32)
    s[-1] = word_of(f.memory[offset : offset + 32])
    return pc + 1


def _mstore(f: Frame, pc: int) -> int:
    s = f.stack
    offset = s.pop()
    value = s.pop()
    f.touch(offset, 32)
    f.memory[offset : offset + 32] = value.to_bytes(32, "big")
    return pc + 1


def _mstore8(f: Frame, pc: int) -> int:
    s = f.stack
    offset = s.pop()
    value = s.pop()
    f.touch(offset, 1)
    f.memory[offset] = value & 0xFF
    return pc + 1


def _sload(f: Frame, pc: int) -> int:
    s = f.stack
    s[-1] = word_of(f.machine.state.get_storage(f.msg.to, s[-1].to_bytes(32, "big")))
    return pc + 1


def _sstore(f: Frame, pc: int) -> int:
    s = f.stack
    slot = s.pop().to_bytes(32, "big")
    value = s.pop()
    state = f.machine.state
    if value and not word_of(state.get_storage(f.msg.to, slot)):
        f.use_gas(g.G_SSTORE_SET)
    state.set_storage(f.msg.to, slot, value.to_bytes(32, "big"))
    return pc + 1


def _jump(f: Frame, pc: int) -> int:
    dest = f.stack.pop()
    if dest >= len(f.jumpdests) or not f.jumpdests[dest]:
        raise InvalidJump(f"bad jump destination {dest}")
    return dest


def _jumpi(f: Frame, pc: int) -> int:
    s = f.stack
    dest = s.pop()
    if not s.pop():
        return pc + 1
    if dest >= len(f.jumpdests) or not f.jumpdests[dest]:
        raise InvalidJump(f"bad jump destination {dest}")
    return dest


def _pc(f: Frame, pc: int) -> int:
    f.stack.append(pc)
    return pc + 1


def _msize(f: Frame, pc: int) -> int:
    f.stack.append(len(f.memory))
    return pc + 1


def _gas(f: Frame, pc: int) -> int:
    f.stack.append(f.gas)
    return pc + 1


def _jumpdest(f: Frame, pc: int) -> int:
    return pc + 1


def _stop(f: Frame, pc: int) -> int:
    return HALT


# The interpreter loop runs PUSH inline (it is the most frequent instruction); this handler
# states the same semantics and serves any caller that dispatches through DISPATCH.
def _make_push(width: int) -> Handler:
    def push(f: Frame, pc: int) -> int:
        end = pc + 1 + width
        data = f.code[pc + 1 : end]
        if len(data) < width:  # PUSH data running past the end of code reads as zeros
            data = data + bytes(width - len(data))
        f.stack.append(int.from_bytes(data, "big"))
        return end

    return push


def _make_dup(n: int) -> Handler:
    def dup(f: Frame, pc: int) -> int:
        s = f.stack
        s.append(s[-n])
        return pc + 1

    return dup


def _make_swap(n: int) -> Handler:
    index = -n - 1

    def swap(f: Frame, pc: int) -> int:
        s = f.stack
        s[-1], s[index] = s[index], s[-1]
        return pc + 1

    return swap


_HANDLERS: dict[int, Handler] = {
    Op.STOP: _stop,
    Op.ADD: _add,
    Op.MUL: _mul,
    Op.SUB: _sub,
    Op.DIV: _div,
    Op.MOD: _mod,
    Op.EXP: _exp,
    Op.LT: _lt,
    Op.GT: _gt,
    Op.EQ: _eq,
    Op.ISZERO: _iszero,
    Op.AND: _and,
    Op.OR: _or,
    Op.XOR: _xor,
    Op.NOT: _not,
    Op.SHL: _shl,
    Op.SHR: _shr,
    Op.SHA256: _sha256,
    Op.ADDRESS: _address,
    Op.BALANCE: _balance,
    Op.CALLER: _caller,
    Op.CALLVALUE: _callvalue,
    Op.CALLDATALOAD: _calldataload,
    Op.CALLDATASIZE: _calldatasize,
    Op.CALLDATACOPY: _calldatacopy,
    Op.CODESIZE: _codesize,
    Op.CODECOPY: _codecopy,
    Op.RETURNDATASIZE: _returndatasize,
    Op.RETURNDATACOPY: _returndatacopy,
    Op.TIMESTAMP: _timestamp,
    Op.HEIGHT: _height,
    Op.CHAINID: _chainid,
    Op.SELFBALANCE: _selfbalance,
    Op.POP: _pop,
    Op.MLOAD: _mload,
    Op.MSTORE: _mstore,
    Op.MSTORE8: _mstore8,
    Op.SLOAD: _sload,
    Op.SSTORE: _sstore,
    Op.JUMP: _jump,
    Op.JUMPI: _jumpi,
    Op.PC: _pc,
    Op.MSIZE: _msize,
    Op.GAS: _gas,
    Op.JUMPDEST: _jumpdest,
    **EFFECT_HANDLERS,
}
for _n in range(1, 33):
    _HANDLERS[Op.PUSH1 + _n - 1] = _make_push(_n)
for _n in range(1, 17):
    _HANDLERS[Op.DUP1 + _n - 1] = _make_dup(_n)
    _HANDLERS[Op.SWAP1 + _n - 1] = _make_swap(_n)

assert set(_HANDLERS) == set(OPCODES), "every opcode needs exactly one handler"

#: Indexed by opcode byte: ``(info, handler)`` or ``None`` for an undefined byte.
DISPATCH: list[tuple[OpInfo, Handler] | None] = [
    (OPCODES[b], _HANDLERS[b]) if b in OPCODES else None for b in range(256)
]
