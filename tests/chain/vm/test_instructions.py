"""One test per instruction: the result it leaves and the exact gas it costs.

Each program leaves one word on the stack; the runner appends a fixed epilogue that stores
it at memory 0 and returns it. Expected gas is written out by hand from docs/vm.md, not
read from the opcode table, so a change to either shows up here.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.vm.assembler import assemble
from tests.chain.vm.helpers import CALLER, CHAIN_ID, CONTRACT, CTX, FUNDS, run, word

M = (1 << 256) - 1
EPILOGUE = "\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nRETURN\n"
EPILOGUE_GAS = 3 + 3 + 3 + 3 + 0  # PUSH MSTORE PUSH PUSH RETURN
FIRST_WORD_GAS = 3  # memory expansion to one word, if the program did not touch memory

CASES: list[tuple[str, str, int, int, bool]] = [
    # (id, program, expected word, program gas, program touched memory)
    ("add", "PUSH 2\nPUSH 3\nADD", 5, 9, False),
    ("add-wraps", f"PUSH {M}\nPUSH 1\nADD", 0, 9, False),
    ("sub-top-minus-second", "PUSH 3\nPUSH 10\nSUB", 7, 9, False),
    ("sub-wraps", "PUSH 10\nPUSH 3\nSUB", (3 - 10) % (1 << 256), 9, False),
    ("mul", "PUSH 6\nPUSH 7\nMUL", 42, 11, False),
    ("mul-wraps", f"PUSH 2\nPUSH {1 << 255}\nMUL", 0, 11, False),
    ("div", "PUSH 2\nPUSH 7\nDIV", 3, 11, False),
    ("div-by-zero-is-zero", "PUSH 0\nPUSH 7\nDIV", 0, 11, False),
    ("mod", "PUSH 3\nPUSH 7\nMOD", 1, 11, False),
    ("mod-by-zero-is-zero", "PUSH 0\nPUSH 7\nMOD", 0, 11, False),
    ("exp-one-byte-exponent", "PUSH 10\nPUSH 2\nEXP", 1024, 3 + 3 + 10 + 50, False),
    ("exp-two-byte-exponent-wraps", "PUSH 256\nPUSH 2\nEXP", 0, 3 + 3 + 10 + 100, False),
    ("exp-zero-exponent", "PUSH 0\nPUSH 9\nEXP", 1, 16, False),
    ("lt", "PUSH 5\nPUSH 3\nLT", 1, 9, False),
    ("gt", "PUSH 5\nPUSH 3\nGT", 0, 9, False),
    ("eq", "PUSH 5\nPUSH 5\nEQ", 1, 9, False),
    ("iszero-of-zero", "PUSH 0\nISZERO", 1, 6, False),
    ("iszero-of-nonzero", "PUSH 4\nISZERO", 0, 6, False),
    ("and", "PUSH 12\nPUSH 10\nAND", 8, 9, False),
    ("or", "PUSH 12\nPUSH 10\nOR", 14, 9, False),
    ("xor", "PUSH 12\nPUSH 10\nXOR", 6, 9, False),
    ("not", "PUSH 0\nNOT", M, 6, False),
    ("shl-value-second-shift-top", "PUSH 1\nPUSH 4\nSHL", 16, 9, False),
    ("shl-past-width-is-zero", "PUSH 1\nPUSH 256\nSHL", 0, 9, False),
    ("shl-huge-shift-is-zero", f"PUSH 1\nPUSH {M}\nSHL", 0, 9, False),
    ("shr", "PUSH 256\nPUSH 4\nSHR", 16, 9, False),
    ("shr-past-width-is-zero", f"PUSH {M}\nPUSH 256\nSHR", 0, 9, False),
    (
        "sha256-of-memory",
        "PUSH 0xabc\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nSHA256",
        int.from_bytes(hashlib.sha256((0xABC).to_bytes(32, "big")).digest(), "big"),
        3 + 3 + 3 + 3 + 3 + 3 + 30 + 6,
        True,
    ),
    ("address", "ADDRESS", int.from_bytes(CONTRACT, "big"), 2, False),
    ("caller", "CALLER", int.from_bytes(CALLER, "big"), 2, False),
    ("balance", "CALLER\nBALANCE", FUNDS, 2 + 100, False),
    ("selfbalance-empty", "SELFBALANCE", 0, 5, False),
    ("height", "HEIGHT", CTX.height, 2, False),
    ("timestamp", "TIMESTAMP", CTX.timestamp, 2, False),
    ("chainid", "CHAINID", CHAIN_ID, 2, False),
    ("calldatasize-empty", "CALLDATASIZE", 0, 2, False),
    ("pop", "PUSH 1\nPUSH 2\nPOP", 1, 8, False),
    ("dup2", "PUSH 1\nPUSH 2\nDUP2", 1, 9, False),
    ("swap1", "PUSH 1\nPUSH 2\nSWAP1", 1, 9, False),
    ("dup16", "\n".join(f"PUSH {i}" for i in range(1, 17)) + "\nDUP16", 1, 51, False),
    (
        "swap16",
        "\n".join(f"PUSH {i}" for i in range(1, 18)) + "\nSWAP16\nPOP\n" + "POP\n" * 15,
        17,
        17 * 3 + 3 + 16 * 2,
        False,
    ),
    ("push32", f"PUSH32 {M}", M, 3, False),
    ("push-explicit-width", "PUSH4 7", 7, 3, False),
    ("mstore-mload", "PUSH 99\nPUSH 64\nMSTORE\nPUSH 64\nMLOAD", 99, 3 + 3 + 3 + 9 + 3 + 3, True),
    (
        "mstore8-writes-low-byte",
        "PUSH 0x1ff\nPUSH 31\nMSTORE8\nPUSH 0\nMLOAD",
        0xFF,
        3 + 3 + 3 + 3 + 3 + 3,
        True,
    ),
    ("msize-rounds-to-words", "PUSH 1\nPUSH 33\nMSTORE8\nMSIZE", 64, 3 + 3 + 3 + 6 + 2, True),
    ("mload-unwritten-is-zero", "PUSH 100\nMLOAD", 0, 3 + 3 + 5 * 3, True),  # 132 bytes: 5 words
    ("sload-unset-is-zero", "PUSH 7\nSLOAD", 0, 3 + 200, False),
    (
        "sstore-fresh-then-sload",
        "PUSH 5\nPUSH 7\nSSTORE\nPUSH 7\nSLOAD",
        5,
        3 + 3 + 5000 + 15000 + 3 + 200,
        False,
    ),
    (
        "sstore-existing-slot-is-cheap",
        "PUSH 5\nPUSH 7\nSSTORE\nPUSH 6\nPUSH 7\nSSTORE\nPUSH 7\nSLOAD",
        6,
        3 + 3 + 20000 + 3 + 3 + 5000 + 3 + 200,
        False,
    ),
    ("jump", "PUSH @to\nJUMP\nPUSH 1\nto:\nPUSH 2", 2, 3 + 8 + 1 + 3, False),
    ("jumpi-taken", "PUSH 1\nPUSH @to\nJUMPI\nPUSH 1\nto:\nPUSH 2", 2, 3 + 3 + 10 + 1 + 3, False),
    (
        "jumpi-not-taken",
        "PUSH 0\nPUSH @to\nJUMPI\nPUSH 1\nPUSH @end\nJUMP\nto:\nPUSH 2\nend:",
        1,
        3 + 3 + 10 + 3 + 3 + 8 + 1,
        False,
    ),
    ("pc", "PUSH 0\nPOP\nPC", 3, 3 + 2 + 2, False),
    ("gas-after-own-charge", "GAS", 1_000_000 - 2, 2, False),
    ("codesize", "CODESIZE", len(assemble("CODESIZE" + EPILOGUE).code), 2, False),
    (
        "codecopy",
        "PUSH 1\nPUSH 0\nPUSH 31\nCODECOPY\nPUSH 0\nMLOAD",
        0x60,  # the first code byte: PUSH1
        3 + 3 + 3 + 3 + 3 + 3 + 3 + 3,
        True,
    ),
    ("returndatasize-before-call", "RETURNDATASIZE", 0, 2, False),
    ("jumpdest-costs-one", "here:\nPUSH 1", 1, 1 + 3, False),
]


@pytest.mark.parametrize(
    ("program", "expected", "gas", "touched"),
    [pytest.param(p, e, g, t, id=i) for i, p, e, g, t in CASES],
)
def test_instruction_result_and_gas(program: str, expected: int, gas: int, touched: bool) -> None:
    result, _, _ = run(program + EPILOGUE)
    assert word(result) == expected
    used = 1_000_000 - result.gas_left
    assert used == gas + EPILOGUE_GAS + (0 if touched else FIRST_WORD_GAS)


def test_calldata_instructions_read_zero_padded_words() -> None:
    data = bytes(range(1, 41))  # 40 bytes
    result, _, _ = run("PUSH 8\nCALLDATALOAD" + EPILOGUE, data=data)
    assert result.output == data[8:40]
    result, _, _ = run("PUSH 30\nCALLDATALOAD" + EPILOGUE, data=data)
    assert result.output == data[30:] + bytes(22)
    result, _, _ = run(f"PUSH {1 << 200}\nCALLDATALOAD" + EPILOGUE, data=data)
    assert result.output == bytes(32)
    result, _, _ = run("CALLDATASIZE" + EPILOGUE, data=data)
    assert word(result) == 40


def test_calldatacopy_copies_and_pads_and_charges_per_word() -> None:
    data = b"\x11" * 40
    program = "PUSH 64\nPUSH 0\nPUSH 0\nCALLDATACOPY\nPUSH 64\nPUSH 0\nRETURN"
    result, _, _ = run(program, data=data)
    assert result.output == data + bytes(24)
    mem_two_words = 6
    assert 1_000_000 - result.gas_left == 3 * 3 + 3 + mem_two_words + 2 * 3 + 3 + 3


def test_callvalue_moves_value_from_caller_before_code_runs() -> None:
    result, state, _ = run("CALLVALUE\nSELFBALANCE\nADD" + EPILOGUE, value=250)
    assert word(result) == 500
    assert state.balance(CONTRACT) == 250
    assert state.balance(CALLER) == FUNDS - 250


def test_memory_expansion_is_quadratic() -> None:
    # One MSTORE at the last word of 64 KiB: 2048 words cost 3*2048 + 2048**2//512.
    result, _, _ = run(f"PUSH 1\nPUSH {64 * 1024 - 32}\nMSTORE\nSTOP")
    assert 1_000_000 - result.gas_left == 3 + 3 + 3 + 3 * 2048 + 2048 * 2048 // 512


def test_log_records_topics_and_data_with_gas() -> None:
    program = "PUSH 0xbeef\nPUSH 0\nMSTORE\nPUSH 9\nPUSH 8\nPUSH 32\nPUSH 0\nLOG2\nSTOP"
    result, _, _ = run(program)
    assert result.success
    (log,) = result.logs
    assert log.address == CONTRACT
    assert log.topics == ((8).to_bytes(32, "big"), (9).to_bytes(32, "big"))
    assert log.data == (0xBEEF).to_bytes(32, "big")
    assert 1_000_000 - result.gas_left == 3 + 3 + 6 + 3 * 4 + 375 + 2 * 375 + 8 * 32


def test_transfer_moves_value_from_the_contract() -> None:
    result, state, _ = run("PUSH 40\nCALLER\nTRANSFER\nSTOP", value=100)
    assert result.success
    assert state.balance(CONTRACT) == 60
    assert state.balance(CALLER) == FUNDS - 60
    assert 1_000_000 - result.gas_left == 3 + 2 + 2300


def test_stop_and_running_off_the_end_return_nothing() -> None:
    for program in ("PUSH 1\nSTOP\nPUSH 2", "PUSH 1"):
        result, _, _ = run(program)
        assert result.success and result.output == b""


def test_push_data_cut_off_by_the_end_of_code_reads_as_zero_bytes() -> None:
    result, _, _ = run(bytes([0x61, 0x01]))  # PUSH2 with one byte of data
    assert result.success


_REFERENCE = {
    "ADD": lambda a, b: (a + b) % (1 << 256),
    "SUB": lambda a, b: (a - b) % (1 << 256),
    "MUL": lambda a, b: (a * b) % (1 << 256),
    "DIV": lambda a, b: a // b if b else 0,
    "MOD": lambda a, b: a % b if b else 0,
    "EXP": lambda a, b: pow(a, b, 1 << 256),
    "LT": lambda a, b: int(a < b),
    "GT": lambda a, b: int(a > b),
    "EQ": lambda a, b: int(a == b),
    "AND": lambda a, b: a & b,
    "OR": lambda a, b: a | b,
    "XOR": lambda a, b: a ^ b,
    "SHL": lambda a, b: (b << a) % (1 << 256) if a < 256 else 0,
    "SHR": lambda a, b: b >> a if a < 256 else 0,
}
_words = st.one_of(
    st.integers(0, M),
    st.integers(0, 300),
    st.sampled_from([0, 1, 255, 256, M, M - 1, 1 << 255]),
)


@settings(max_examples=200, deadline=None)
@given(op=st.sampled_from(sorted(_REFERENCE)), a=_words, b=_words)
def test_binary_operations_match_a_reference_model(op: str, a: int, b: int) -> None:
    result, _, _ = run(f"PUSH {b}\nPUSH {a}\n{op}" + EPILOGUE)
    assert word(result) == _REFERENCE[op](a, b)


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.integers(0, M), min_size=1, max_size=18),
    kind=st.sampled_from(["DUP", "SWAP", "POP"]),
    n=st.integers(1, 16),
)
def test_stack_operations_match_a_list_model(values: list[int], kind: str, n: int) -> None:
    model = list(values)
    program = [f"PUSH {v}" for v in values]
    if kind == "POP":
        program.append("POP")
        model.pop()
    elif kind == "DUP":
        program.append(f"DUP{n}")
        if n <= len(model):
            model.append(model[-n])
    else:
        program.append(f"SWAP{n}")
        if n + 1 <= len(model):
            model[-1], model[-n - 1] = model[-n - 1], model[-1]
    # Unload the stack into memory, top first, and return it.
    program += [f"PUSH {32 * i}\nMSTORE" for i in range(len(model))]
    program.append(f"PUSH {32 * len(model)}\nPUSH 0\nRETURN")
    result, _, _ = run("\n".join(program))
    needed = {"POP": 1, "DUP": n, "SWAP": n + 1}[kind]
    if len(values) < needed:
        assert result.reason.startswith("stack underflow")
        return
    assert result.success, result.reason
    got = [int.from_bytes(result.output[i : i + 32], "big") for i in range(0, len(result.output), 32)]
    assert got == model[::-1]
