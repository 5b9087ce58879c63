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
