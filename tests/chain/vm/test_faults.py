"""Faults, reverts and calls: every failure undoes exactly the failing frame's effects."""

from __future__ import annotations

import pytest

from chain.vm.assembler import assemble
from chain.vm.host import Message, VMConfig
from chain.vm.interpreter import Machine
from tests.chain.vm.helpers import CALLER, CONTRACT, CTX, FUNDS, fresh_state, run

CALLEE = b"\xbb" * 20


def slot(n: int) -> bytes:
    return n.to_bytes(32, "big")


def stored(state: object, address: bytes, n: int) -> int:
    return int.from_bytes(state.get_storage(address, slot(n)), "big")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("ADD", "stack underflow at pc 0 (ADD)"),
        ("PUSH 1\nPUSH 2\nSWAP2", "stack underflow at pc 4 (SWAP2)"),
        ("PUSH 3\nJUMP", "bad jump destination 3 at pc 2 (JUMP)"),
        ("PUSH1 0x5b\nPUSH 1\nJUMP", "bad jump destination 1 at pc 4 (JUMP)"),  # into PUSH data
        ("PUSH 1\nPUSH 1\nJUMPI", "bad jump destination 1 at pc 4 (JUMPI)"),
        (".byte 0xfe", "invalid opcode 0xfe at pc 0"),
        ("PUSH 1\n.byte 0x0c", "invalid opcode 0x0c at pc 2"),
        ("PUSH 1\nPUSH 65505\nMSTORE", "memory limit of 65536 bytes exceeded at pc 5 (MSTORE)"),
        ("PUSH 1\nCALLER\nTRANSFER", "value 1 exceeds balance 0 at pc 3 (TRANSFER)"),
        (f"PUSH {24 * 1024 + 1}\nPUSH 0\nRETURN", "return data of 24577 bytes exceeds 24576 at pc 5 (RETURN)"),
    ],
)
def test_fault_reason_names_pc_and_instruction_and_uses_all_gas(program: str, reason: str) -> None:
    result, _, _ = run(program)
    assert not result.success
    assert result.reason == reason
    assert result.gas_left == 0
    assert result.output == b"" and result.logs == ()


def test_stack_overflow_at_the_1025th_item() -> None:
    result, _, machine = run("top:\nPUSH 1\nPUSH @top\nJUMP")
    # Each round leaves one more item; in round 1024 the label PUSH is item 1025.
    assert result.reason == "stack overflow at pc 3 (PUSH2)"
    assert machine.steps == 1023 * 4 + 2


def test_out_of_gas_reason_has_only_the_pc() -> None:
    result, _, _ = run("PUSH 1\nPUSH 2\nADD", gas=8)
    assert result.reason == "out of gas at pc 4"
    assert result.gas_left == 0


def test_step_limit_stops_an_endless_loop() -> None:
    result, _, machine = run("top:\nPUSH @top\nJUMP", config=VMConfig(steps_max=100))
    assert result.reason.startswith("step limit 100 exceeded at pc")
    assert machine.steps == 101


def test_fault_reverts_storage_transfers_and_logs() -> None:
    program = "PUSH 5\nPUSH 1\nSSTORE\nPUSH 30\nCALLER\nTRANSFER\nPUSH 0\nPUSH 0\nLOG0\nADD"
    result, state, _ = run(program, value=100)
    assert result.reason == "stack underflow at pc 14 (ADD)"
    assert stored(state, CONTRACT, 1) == 0
    assert state.balance(CONTRACT) == 0  # even the call value went back
    assert state.balance(CALLER) == FUNDS
    assert result.logs == ()


def test_revert_undoes_effects_returns_data_and_refunds_unused_gas() -> None:
    program = (
        "PUSH 5\nPUSH 1\nSSTORE\nPUSH 30\nCALLER\nTRANSFER\n"
        "PUSH 0xdead\nPUSH 0\nMSTORE\nPUSH 2\nPUSH 30\nREVERT"
    )
    result, state, _ = run(program, value=100)
    assert not result.success
    assert result.reason == "reverted at pc 19"
    assert result.output == b"\xde\xad"
    assert 0 < result.gas_left < 1_000_000
    assert stored(state, CONTRACT, 1) == 0
    assert state.balance(CONTRACT) == 0 and state.balance(CALLER) == FUNDS


def _caller_program(value: int = 0, gas: str = "GAS") -> str:
    return "\n".join(
        [
            "PUSH 1", "PUSH 3", "SSTORE",  # the caller's own write: slot 3 = 1
            "PUSH 32", "PUSH 0", "PUSH 0", "PUSH 0",  # ret size/offset, args size/offset
            f"PUSH {value}", f"PUSH 0x{CALLEE.hex()}", gas, "CALL",
            "PUSH 2", "SSTORE",  # slot 2 = success flag
            "RETURNDATASIZE", "PUSH 4", "SSTORE",  # slot 4 = callee's return size
            "PUSH 32", "PUSH 0", "RETURN",
        ]
    )  # fmt: skip


CALLEE_OK = "PUSH 7\nPUSH 1\nSSTORE\nPUSH 0\nPUSH 0\nLOG0\nPUSH 42\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nRETURN"
CALLEE_REVERTS = "PUSH 7\nPUSH 1\nSSTORE\nPUSH 0xdead\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nREVERT"
CALLEE_FAULTS = "PUSH 7\nPUSH 1\nSSTORE\nPUSH 0\nPUSH 0\nLOG0\nADD"


def _with_callee(source: str) -> object:
    state = fresh_state({CALLER: FUNDS})
    state.set_code(CALLEE, assemble(source).code)
    return state


def test_call_success_keeps_callee_effects_logs_and_return_data() -> None:
    state = _with_callee(CALLEE_OK)
    result, state, _ = run(_caller_program(value=10), value=50, state=state)  # type: ignore[arg-type]
    assert result.success
    assert int.from_bytes(result.output, "big") == 42
    assert stored(state, CONTRACT, 2) == 1
    assert stored(state, CONTRACT, 4) == 32
    assert stored(state, CALLEE, 1) == 7
    assert state.balance(CALLEE) == 10 and state.balance(CONTRACT) == 40
    assert [log.address for log in result.logs] == [CALLEE]


@pytest.mark.parametrize("callee", [CALLEE_REVERTS, CALLEE_FAULTS])
def test_failed_callee_is_reverted_and_caller_sees_zero_and_continues(callee: str) -> None:
    state = _with_callee(callee)
    result, state, _ = run(_caller_program(value=10), value=50, state=state)  # type: ignore[arg-type]
    assert result.success
    assert stored(state, CONTRACT, 2) == 0  # the flag
    assert stored(state, CONTRACT, 3) == 1  # the caller's own write survives
    assert stored(state, CALLEE, 1) == 0  # the callee's write does not
    assert state.balance(CALLEE) == 0 and state.balance(CONTRACT) == 50
    assert result.logs == ()
    if callee is CALLEE_REVERTS:
        assert stored(state, CONTRACT, 4) == 32
        assert int.from_bytes(result.output, "big") == 0xDEAD
    else:
        assert stored(state, CONTRACT, 4) == 0


def test_callee_fault_uses_only_the_gas_forwarded_to_it() -> None:
    state = _with_callee(CALLEE_FAULTS)
    result, _, _ = run(_caller_program(gas="PUSH 5000"), state=state)  # type: ignore[arg-type]
    assert result.success
    used = 1_000_000 - result.gas_left
    # 20000 (slot 3 set) + 2 * 5000 (zero written to slots 2 and 4) + the 5000 forwarded,
    # all burnt by the fault, + under 1000 for everything else.
    assert 35_000 <= used < 36_000


def test_caller_fault_after_a_successful_call_reverts_the_callee_too() -> None:
    state = _with_callee(CALLEE_OK)
    program = _caller_program().removesuffix("RETURN") + "ADD\nADD"
    result, state, _ = run(program, state=state)  # type: ignore[arg-type]
    assert not result.success
    assert stored(state, CALLEE, 1) == 0 and stored(state, CONTRACT, 3) == 0


def test_call_to_an_account_without_code_moves_value_and_succeeds() -> None:
    state = fresh_state({CALLER: FUNDS})
    result, state, _ = run(_caller_program(value=10), value=10, state=state)
    assert result.success
    assert stored(state, CONTRACT, 2) == 1
    assert state.balance(CALLEE) == 10


def test_call_with_more_value_than_the_contract_holds_fails_softly() -> None:
    state = _with_callee(CALLEE_OK)
    result, state, _ = run(_caller_program(value=10), state=state)  # type: ignore[arg-type]
    assert result.success
    assert stored(state, CONTRACT, 2) == 0 and stored(state, CALLEE, 1) == 0


RECURSIVE = """
    PUSH 0
    SLOAD
    PUSH 1
    ADD
    PUSH 0
    SSTORE          ; slot 0 += 1 at every depth that succeeds
    PUSH 0
    PUSH 0
    PUSH 0
    PUSH 0
    PUSH 0
    ADDRESS
    GAS
    CALL            ; call itself
    STOP
"""


@pytest.mark.parametrize("depth_max", [2, 4, 16])
def test_call_depth_limit_fails_the_deepest_frame_only(depth_max: int) -> None:
    state = fresh_state({CALLER: FUNDS})
    state.set_code(CONTRACT, assemble(RECURSIVE).code)
    config = VMConfig(call_depth_max=depth_max)
    result, state, _ = run(RECURSIVE, gas=5_000_000, state=state, config=config)
    assert result.success
    # Frames 1..depth_max run; the deepest one faults at its CALL and is reverted.
    assert stored(state, CONTRACT, 0) == depth_max - 1


def test_call_depth_limit_of_one_forbids_any_call() -> None:
    result, state, _ = run(RECURSIVE, config=VMConfig(call_depth_max=1))
    assert result.reason == "call depth limit 1 exceeded at pc 21 (CALL)"
    assert stored(state, CONTRACT, 0) == 0


def test_call_at_the_depth_limit_is_a_fault_with_a_reason() -> None:
    state = fresh_state({CALLER: FUNDS})
    machine = Machine(state, CTX)
    msg = Message(CALLER, CONTRACT, 0, b"", 100_000, assemble(RECURSIVE).code, depth=16)
    result = machine.execute(msg)
    assert result.reason == "call depth limit 16 exceeded at pc 21 (CALL)"
    assert stored(state, CONTRACT, 0) == 0


def test_log_limits_fail_the_transaction() -> None:
    result, _, _ = run("top:\nPUSH 0\nPUSH 0\nLOG0\nPUSH @top\nJUMP", config=VMConfig(logs_max=3))
    assert result.reason.startswith("more than 3 logs in one transaction at pc")
    result, _, _ = run("PUSH 4097\nPUSH 0\nLOG0")
    assert result.reason == "log data of 4097 bytes exceeds 4096 at pc 5 (LOG0)"


def test_call_forwards_at_most_63_64ths_of_the_gas_left() -> None:
    callee = assemble("GAS\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nRETURN").code
    # Before CALL the caller spent: 3+3+20000 (slot 3 set), 7 pushes (21), CALL's 700 and
    # 3 for the first word of memory (its return area).
    spent = 20_006 + 21 + 700 + 3
    for requested, gas in ((10**9, 100_000), (5_000, 100_000), (10**9, 80_000)):
        state = fresh_state({CALLER: FUNDS})
        state.set_code(CALLEE, callee)
        result, _, _ = run(_caller_program(gas=f"PUSH {requested}"), gas=gas, state=state)  # type: ignore[arg-type]
        assert result.success
        available = gas - spent
        forwarded = min(requested, available - available // 64)
        assert int.from_bytes(result.output, "big") == forwarded - 2  # GAS after its own 2
