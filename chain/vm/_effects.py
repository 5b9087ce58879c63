"""Instructions with effects beyond the frame: LOG, TRANSFER, CALL, and the halting RETURN/REVERT.

Same handler contract as :mod:`chain.vm._instructions` (``handler(frame, pc) -> next_pc``,
base gas and stack depth already checked). CALL is the only handler that runs another frame
(through :meth:`Machine.execute`, which keeps or reverts the child's effects); the
interpreter syncs gas and the step counter around all of these. Value moves go through
:func:`move_value`, which checks balance and overflow before touching state.
"""

from __future__ import annotations

from chain.vm import gas as g
from chain.vm._frame import HALT, WORD_MASK, Frame, Handler, Log, address_of
from chain.vm.errors import (
    BalanceOverflow,
    CallDepthExceeded,
    InsufficientBalance,
    LogLimitExceeded,
    ReturnDataTooLarge,
)
from chain.vm.host import Message, VMState
from chain.vm.opcodes import Op

__all__ = ["EFFECT_HANDLERS", "move_value"]


def move_value(state: VMState, sender: bytes, to: bytes, value: int) -> None:
    """Move ``value`` from ``sender`` to ``to`` or raise a fault, leaving state unchanged.

    Raises:
        InsufficientBalance: ``sender`` holds less than ``value``.
        BalanceOverflow: ``to`` would hold more than uint256.
    """
    if not value:
        return
    have = state.balance(sender)
    if have < value:
        raise InsufficientBalance(f"value {value} exceeds balance {have}")
    if sender == to:
        return
    if state.balance(to) + value > WORD_MASK:
        raise BalanceOverflow("recipient balance would exceed uint256")
    state.sub_balance(sender, value)
    state.add_balance(to, value)


def make_log(topic_count: int) -> Handler:
    def log(f: Frame, pc: int) -> int:
        s = f.stack
        offset = s.pop()
        size = s.pop()
        topics = tuple(s.pop().to_bytes(32, "big") for _ in range(topic_count))
        machine = f.machine
        config = machine.config
        if size > config.log_bytes_max:
            raise LogLimitExceeded(f"log data of {size} bytes exceeds {config.log_bytes_max}")
        f.use_gas(g.G_LOG_TOPIC * topic_count + g.G_LOG_BYTE * size)
        data = f.read(offset, size)
        machine.logs_emitted += 1
        if machine.logs_emitted > config.logs_max:
            raise LogLimitExceeded(f"more than {config.logs_max} logs in one transaction")
        f.logs.append(Log(f.msg.to, topics, data))
        return pc + 1

    return log


def transfer(f: Frame, pc: int) -> int:
    s = f.stack
    to = address_of(s.pop())
    value = s.pop()
    state = f.machine.state
    move_value(state, f.msg.to, to, value)
    return pc + 1


def call(f: Frame, pc: int) -> int:
    s = f.stack
    gas_requested = s.pop()
    to = address_of(s.pop())
    value = s.pop()
    args_offset = s.pop()
    args_size = s.pop()
    ret_offset = s.pop()
    ret_size = s.pop()
    f.touch(args_offset, args_size)
    f.touch(ret_offset, ret_size)
    if value:
        f.use_gas(g.G_CALL_VALUE)
    machine = f.machine
    if f.msg.depth >= machine.config.call_depth_max:
        raise CallDepthExceeded(f"call depth limit {machine.config.call_depth_max} exceeded")
    # Keep 1/64 of the gas left for the caller to handle the callee's failure.
    child_gas = min(gas_requested, f.gas - f.gas // 64)
    f.gas -= child_gas
    child = Message(
        sender=f.msg.to,
        to=to,
        value=value,
        data=bytes(f.memory[args_offset : args_offset + args_size]),
        gas=child_gas,
        code=machine.state.get_code(to),
        depth=f.msg.depth + 1,
    )
    result = machine.execute(child)
    f.gas += result.gas_left
    f.return_data = result.output
    if ret_size:
        f.write(ret_offset, result.output[:ret_size])
    if result.success:
        f.logs.extend(result.logs)
    s.append(1 if result.success else 0)
    return pc + 1


def _halt_with_data(f: Frame) -> None:
    s = f.stack
    offset = s.pop()
    size = s.pop()
    limit = f.machine.config.return_bytes_max
    if size > limit:
        raise ReturnDataTooLarge(f"return data of {size} bytes exceeds {limit}")
    f.output = f.read(offset, size)


def return_(f: Frame, pc: int) -> int:
    _halt_with_data(f)
    return HALT


def revert(f: Frame, pc: int) -> int:
    _halt_with_data(f)
    f.reverted = True
    return HALT


#: Handlers of the instructions above, by opcode.
EFFECT_HANDLERS: dict[int, Handler] = {
    Op.CALL: call,
    Op.RETURN: return_,
    Op.TRANSFER: transfer,
    Op.REVERT: revert,
    **{Op.LOG0 + n: make_log(n) for n in range(5)},
}
