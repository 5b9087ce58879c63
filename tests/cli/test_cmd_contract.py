"""``phalanx contract build`` and ``disasm`` through the real command-line entry point."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from chain.vm.assembler import assemble, deploy_code
from cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"


def test_build_writes_deployable_bytes_and_prints_size_and_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = (EXAMPLES / "counter.asm").read_text()
    out = tmp_path / "counter.bin"
    assert main(["contract", "build", str(EXAMPLES / "counter.asm"), "-o", str(out)]) == 0
    code = out.read_bytes()
    assert code == deploy_code(source)
    printed = capsys.readouterr().out
    assert f"{len(code)} bytes, sha256 {hashlib.sha256(code).hexdigest()}" in printed
    runtime = assemble(source).code
    assert f"code hash {hashlib.sha256(runtime).hexdigest()}" in printed


def test_build_hex_and_raw(tmp_path: Path) -> None:
    src = tmp_path / "t.asm"
    src.write_text("PUSH 1\nPUSH 0\nSSTORE\n")
    assert main(["contract", "build", str(src), "--hex", "--raw"]) == 0
    assert (tmp_path / "t.hex").read_text().strip() == "6001600055"


def test_disasm_of_hex_file_reassembles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = deploy_code((EXAMPLES / "token.asm").read_text())
    path = tmp_path / "token.hex"
    path.write_text("0x" + code.hex() + "\n")
    assert main(["contract", "disasm", str(path)]) == 0
    assert assemble(capsys.readouterr().out).code == code


def test_build_error_is_one_line_with_the_source_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.asm"
    src.write_text("PUSH 1\nJUMP @nowhere\n")
    assert main(["contract", "build", str(src)]) == 2
    assert capsys.readouterr().err.strip() == "error: line 2: JUMP takes no operand"
    assert not (tmp_path / "bad.bin").exists()


def test_run_deploys_and_calls_on_a_scratch_state(capsys: pytest.CaptureFixture[str]) -> None:
    token = str(EXAMPLES / "token.asm")
    calls = ["--call", "3", "--call", "1 0x1234 10", "--data", "02" + "00" * 32]
    assert main(["contract", "run", token, *calls]) == 0
    out = capsys.readouterr().out
    assert out.startswith("deploy: ok, gas ")
    assert "return: 0xf4240" in out  # total supply 1,000,000
    assert "call 0x01 (65 bytes of call data): ok" in out
    assert "call 0x02 (33 bytes of call data): ok" in out


def test_run_reports_a_revert_and_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    token = str(EXAMPLES / "token.asm")
    assert main(["contract", "run", token, "--call", "1 0x1234 1000001"]) == 1
    out = capsys.readouterr().out
    assert "FAILED (reverted at pc" in out
    assert "return text: 'insufficient balance'" in out


def test_run_rejects_bad_call_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    token = str(EXAMPLES / "counter.asm")
    assert main(["contract", "run", token, "--call", "inc"]) == 2
    assert "bad --call 'inc'" in capsys.readouterr().err


def test_run_rejects_data_that_is_not_hex(capsys: pytest.CaptureFixture[str]) -> None:
    counter = str(EXAMPLES / "counter.asm")
    assert main(["contract", "run", counter, "--data", "0xzz"]) == 2
    assert "--data: not hex: '0xzz'" in capsys.readouterr().err
