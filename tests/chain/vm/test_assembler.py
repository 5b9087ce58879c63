"""Assembler and disassembler: syntax, labels, sections, errors with lines, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.vm.assembler import LOADER_BYTES, assemble, deploy_code, loader_for
from chain.vm.disassembler import disassemble, instructions
from chain.vm.errors import AssemblyError
from chain.vm.opcodes import BY_NAME, OPCODES
from tests.chain.vm.helpers import example, run, word


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("STOP", "00"),
        ("push 0", "6000"),  # mnemonics are case-insensitive
        ("PUSH 255\nPUSH 256", "60ff610100"),
        ("PUSH 0x010203", "62010203"),
        ("PUSH3 1", "62000001"),
        (f"PUSH {(1 << 256) - 1}", "7f" + "ff" * 32),
        ("PUSH32 0", "7f" + "00" * 32),
        ("top: PUSH @top\nJUMP", "5b61000056"),
        ("PUSH @end\nJUMP\nend:", "610004565b"),
        (".const K 0x42\nPUSH K", "6042"),
        (".byte 0xfe 0x00 7", "fe0007"),
        ("  ADD   ; a comment ; with ; semicolons\n\n; only a comment", "01"),
        ("a: b: STOP", "5b5b00"),
    ],
)
def test_assembles_to_expected_bytes(source: str, expected: str) -> None:
    assert assemble(source).code.hex() == expected


ERRORS = [
        ("ADD\nFROB", "line 2: unknown instruction 'FROB'"),
        ("PUSH", "line 1: PUSH takes exactly one operand"),
        ("PUSH 1 2", "line 1: PUSH takes exactly one operand"),
        ("ADD 1", "line 1: ADD takes no operand"),
        ("PUSH -1", "line 1: negative number '-1'"),
        ("PUSH 0xzz", "line 1: bad number '0xzz'"),
        (f"PUSH {1 << 256}", "does not fit in 256 bits"),
        ("PUSH1 256", "line 1: value 0x100 does not fit in PUSH1"),
        ("\n\nPUSH @nowhere", "line 3: unknown label 'nowhere'"),
        ("x:\nx:", "line 2: duplicate name 'x'"),
        ("1x: STOP", "line 1: bad label name '1x'"),
        ("PUSH K", "line 1: unknown constant 'K' (define it above; labels need @)"),
        ("PUSH2 K", "line 1: unknown constant 'K' (labels need @)"),
        (".byte 256", "line 1: .byte value 256 exceeds 0xff"),
        (".const K", "line 1: expected .const NAME VALUE"),
        ("PUSH @runtime.size", "line 1: @runtime.size needs a .runtime section"),
        (".runtime\n.runtime", "line 2: only one .runtime section is allowed"),
        ("init:\n.runtime\nPUSH @init", "line 3: label 'init' is in the other section"),
        (".byte 0\n" * 65536, "exceeds 65535"),
]


@pytest.mark.parametrize(("source", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_errors_name_the_line(source: str, message: str) -> None:
    with pytest.raises(AssemblyError) as info:
        assemble(source)
    assert message in str(info.value)


def test_runtime_section_labels_count_from_the_runtime_start() -> None:
    source = "PUSH @runtime.size\nPUSH @runtime.offset\n.runtime\nSTOP\nhere:\nPUSH @here"
    out = assemble(source)
    assert out.runtime_offset == 6
    assert out.labels["here"] == 1
    assert out.runtime_code == bytes.fromhex("00" + "5b" + "610001")
    assert out.code[:6] == bytes.fromhex("610005610006")
    assert deploy_code(source) == out.code


def test_loader_returns_the_runtime_code() -> None:
    runtime = assemble("PUSH 7\nPUSH 0\nSSTORE").code
    init = deploy_code("PUSH 7\nPUSH 0\nSSTORE")
    assert init == loader_for(runtime) + runtime and len(loader_for(runtime)) == LOADER_BYTES
    result, _, _ = run(init)
    assert result.success and result.output == runtime


def test_constructor_runs_once_and_returns_runtime() -> None:
    source = (
        "PUSH 5\nPUSH 0\nSSTORE\nPUSH @runtime.size\nDUP1\nPUSH @runtime.offset\nPUSH 0\n"
        "CODECOPY\nPUSH 0\nRETURN\n.runtime\nPUSH 0\nSLOAD\nPUSH 0\nMSTORE\nPUSH 32\nPUSH 0\nRETURN"
    )
    out = assemble(source)
    result, state, _ = run(out.code)
    assert result.output == out.runtime_code
    again, _, _ = run(result.output, state=state)
    assert word(again) == 5


@pytest.mark.parametrize("name", ["counter", "token", "escrow"])
def test_examples_round_trip_through_the_disassembler(name: str) -> None:
    code = deploy_code(example(name))
    text = disassemble(code)
    assert assemble(text).code == code
    assert "JUMPDEST" in text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_disassembly_of_any_bytes_reassembles_to_the_same_bytes(code: bytes) -> None:
    assert assemble(disassemble(code)).code == code
    assert b"".join(
        bytes([ins.info.code]) + ins.data if ins.info else ins.data for ins in instructions(code)
    ) == code


def test_every_opcode_has_one_mnemonic_that_assembles_back() -> None:
    for code, info in OPCODES.items():
        assert BY_NAME[info.name] is info
        text = info.name + (" 0x" + "01" * info.immediate if info.immediate else "")
        assert assemble(text).code == bytes([code]) + b"\x01" * info.immediate


def test_disassembly_marks_undefined_bytes_and_cut_push_data() -> None:
    text = disassemble(bytes([0x0C, 0x62, 0x01]))
    lines = [line.split(";")[0].strip() for line in text.splitlines()]
    assert lines == [".byte 0x0c", ".byte 0x62 0x01"]
