"""docs/vm.md documents the instruction set the VM actually has."""

from __future__ import annotations

import re
from pathlib import Path

from chain.vm.opcodes import OPCODES

DOC = Path(__file__).resolve().parents[3] / "docs" / "vm.md"
_RANGED = re.compile(r"^(PUSH|DUP|SWAP|LOG)\d+$")


def test_every_single_opcode_row_matches_the_table() -> None:
    rows: dict[str, tuple[int, int]] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `0x([0-9a-f]{2})` \| (\S+)(?: \.\. \S+)? \| \S+ \| \S+ \| (\d+) \|", line)
        if m:
            rows[m.group(2)] = (int(m.group(1), 16), int(m.group(3)))
    by_name = {info.name: info for info in OPCODES.values()}
    for code, info in OPCODES.items():
        if _RANGED.match(info.name) and info.name not in ("PUSH1", "DUP1", "SWAP1", "LOG0"):
            continue
        assert rows.get(info.name) == (code, info.gas), info.name
    assert set(rows) <= set(by_name)
