"""The interpreter: runs one message (and the frames it calls) against a :class:`VMState`.

Theory of operation
-------------------
:meth:`Machine.execute` takes a state snapshot, moves the message's value, runs the code and
then either keeps the frame's effects (success) or reverts to the snapshot (REVERT or a
fault). REVERT hands back the unused gas; a fault (:class:`VMFault`) uses all of the frame's
gas. Nothing but the frame result leaves ``execute``: faults are caught per frame, so a
failing callee shows its caller only a ``0`` flag on the stack, and the top frame's failure
becomes the reason in a receipt.

The loop charges the base gas, checks stack bounds and the transaction-wide step bound, and
calls the handler, which returns the next pc. Running off the end of the code is STOP.

One ``Machine`` serves one transaction: it counts steps and logs across all of that
transaction's frames; jump maps come from a :class:`CodeCache` (its own, or a runtime's). It is pure: no clock, no randomness, no
I/O, no floating point; the same state and message give the same result and writes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from chain.vm._effects import move_value
from chain.vm._frame import Frame, Log, jump_destinations
from chain.vm._instructions import DISPATCH, HALT, Handler
from chain.vm.errors import (
    CodeTooLarge,
    InvalidOpcode,
    OutOfGas,
    StackOverflow,
    StackUnderflow,
    StepLimitExceeded,
    VMFault,
)
from chain.vm.host import BlockContext, Message, VMConfig, VMState
from chain.vm.opcodes import OPCODES, Op

__all__ = ["CodeCache", "FrameResult", "Machine"]


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Outcome of one message.

    Attributes:
        success: True if the code stopped or returned normally.
        gas_left: gas not used (0 after a fault).
        output: RETURN or REVERT data.
        logs: the frame's logs and those of its successful callees, in order (empty on failure).
        reason: why it failed ("" on success).
        fault: the fault, if one ended the frame.
    """

    success: bool
    gas_left: int
    output: bytes
    logs: tuple[Log, ...]
    reason: str
    fault: VMFault | None = None


class CodeCache:
    """Jump maps of recently run code, keyed by the code itself; LRU, at most ``entries_max``.

    Only speed depends on it: a miss recomputes the same map. A runtime keeps one across
    transactions so popular contracts are analysed once. Memory: two copies of each code
    (key and map), so at most ``2 * entries_max * code_bytes_max`` (12 MiB by default).
    """

    def __init__(self, entries_max: int) -> None:
        self.entries_max = entries_max
        self._maps: OrderedDict[bytes, bytes] = OrderedDict()

    def jump_map(self, code: bytes) -> bytes:
        """The :func:`~chain.vm._frame.jump_destinations` of ``code``."""
        maps = self._maps
        found = maps.get(code)
        if found is not None:
            maps.move_to_end(code)
            return found
        found = jump_destinations(code)
        maps[code] = found
        if len(maps) > self.entries_max:
            maps.popitem(last=False)
        return found

    def __len__(self) -> int:
        return len(self._maps)


class Machine:
    """Executes messages for one transaction. Not reentrant across transactions."""

    def __init__(
        self,
        state: VMState,
        env: BlockContext,
        config: VMConfig | None = None,
        code_cache: CodeCache | None = None,
    ) -> None:
        self.state = state
        self.env = env
        self.config = config or VMConfig()
        self.steps = 0
        self.logs_emitted = 0
        if code_cache is None:
            code_cache = CodeCache(self.config.code_cache_entries_max)
        self._code_cache = code_cache

    def execute(self, msg: Message) -> FrameResult:
        """Run ``msg``: move its value, run its code, keep or revert its effects.

        Returns:
            The frame's result. Never raises a VM error: faults become failed results.
        """
        state = self.state
        snapshot = state.snapshot()
        try:
            move_value(state, msg.sender, msg.to, msg.value)
            if not msg.code:
                return FrameResult(True, msg.gas, b"", (), "")
            if len(msg.code) > self.config.code_bytes_max:
                limit = self.config.code_bytes_max
                raise CodeTooLarge(f"code of {len(msg.code)} bytes exceeds {limit}")
            frame = Frame(self, msg, self._code_cache.jump_map(msg.code), self.config.memory_bytes_max)
            end_pc = self._run(frame)
        except VMFault as fault:
            state.revert(snapshot)
            return FrameResult(False, 0, b"", (), fault.reason(), fault)
        if frame.reverted:
            state.revert(snapshot)
            return FrameResult(False, frame.gas, frame.output, (), f"reverted at pc {end_pc}")
        return FrameResult(True, frame.gas, frame.output, tuple(frame.logs), "")

    def _run(self, f: Frame) -> int:
        """Run ``f`` to completion; return the pc of the halting instruction.

        Gas and the step counter live in locals for speed. They are written back to the
        frame and the machine around every handler not in :data:`_PURE_OPS` (those may charge
        gas, read it, or run child frames that share the step budget) and on exit. PUSH runs
        inline (about 1.6x the speed of calling its handler; DUP and SWAP inline gained
        under 3% and stay handlers).

        Raises:
            VMFault: with ``pc`` and ``op`` set to the faulting instruction.
        """
        code = f.code
        size = len(code)
        stack = f.stack
        table = _table_for(self.config.stack_items_max)
        steps_max = self.config.steps_max
        steps = self.steps
        gas = f.gas
        pc = 0
        try:
            while pc < size:
                entry = table[code[pc]]
                if entry is None:
                    raise InvalidOpcode(f"invalid opcode 0x{code[pc]:02x}")
                handler, cost, pops, depth_max, sync, width = entry
                if gas < cost:
                    raise OutOfGas()
                gas -= cost
                depth = len(stack)
                if not pops <= depth <= depth_max:
                    raise StackUnderflow() if depth < pops else StackOverflow()
                steps += 1
                if steps > steps_max:
                    raise StepLimitExceeded(f"step limit {steps_max} exceeded")
                if width:  # PUSHn runs inline: it is the most frequent instruction
                    start = pc + 1
                    pc = start + width
                    if pc <= size:
                        stack.append(int.from_bytes(code[start:pc], "big"))
                    else:  # data cut off by the end of the code reads as zero bytes
                        stack.append(int.from_bytes(code[start:], "big") << 8 * (pc - size))
                    continue
                if sync:  # the handler may charge gas, read it, or run a child frame
                    f.gas = gas
                    self.steps = steps
                    next_pc = handler(f, pc)
                    gas = f.gas
                    steps = self.steps
                else:
                    next_pc = handler(f, pc)
                if next_pc == HALT:
                    return pc
                pc = next_pc
        except VMFault as fault:
            if fault.pc is None:
                fault.pc = pc
                info_at = OPCODES.get(code[pc]) if pc < size else None
                fault.op = info_at.name if info_at is not None else f"0x{code[pc]:02x}"
            raise
        finally:
            f.gas = gas
            self.steps = max(steps, self.steps)
        return pc


# handler, base gas, stack items needed, largest stack depth allowed before, needs sync,
# PUSH width (0 for everything else; PUSH runs inline in the loop)
_Entry = tuple[Handler, int, int, int, bool, int]

#: Handlers that never touch ``frame.gas`` or ``machine.steps``: they run without the
#: write-back of gas and steps. Anything not listed here is synced (safe by default).
_PURE_OPS: frozenset[int] = frozenset(
    [
        Op.STOP, Op.ADD, Op.MUL, Op.SUB, Op.DIV, Op.MOD, Op.LT, Op.GT, Op.EQ, Op.ISZERO,
        Op.AND, Op.OR, Op.XOR, Op.NOT, Op.SHL, Op.SHR, Op.ADDRESS, Op.BALANCE, Op.CALLER,
        Op.CALLVALUE, Op.CALLDATALOAD, Op.CALLDATASIZE, Op.CODESIZE, Op.RETURNDATASIZE,
        Op.TIMESTAMP, Op.HEIGHT, Op.CHAINID, Op.SELFBALANCE, Op.POP, Op.SLOAD, Op.JUMP,
        Op.JUMPI, Op.PC, Op.MSIZE, Op.JUMPDEST,
        *range(Op.PUSH1, Op.PUSH32 + 1),
        *range(Op.DUP1, Op.DUP1 + 16),
        *range(Op.SWAP1, Op.SWAP1 + 16),
    ]
)  # fmt: skip
_TABLES: dict[int, list[_Entry | None]] = {}


def _table_for(stack_items_max: int) -> list[_Entry | None]:
    """The dispatch table with stack bounds folded in, built once per stack bound."""
    table = _TABLES.get(stack_items_max)
    if table is None:
        table = []
        for entry in DISPATCH:
            if entry is None:
                table.append(None)
                continue
            info, handler = entry
            depth_max = stack_items_max - (info.pushes - info.pops)
            sync = info.code not in _PURE_OPS
            table.append((handler, info.gas, info.pops, depth_max, sync, info.immediate))
        _TABLES[stack_items_max] = table
    return table
