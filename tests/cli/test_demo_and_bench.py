"""``phalanx demo`` and ``phalanx bench chain`` through the real command line entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from chain.db import LevelDB
from chain.genesis import load_genesis
from chain.keys import load_key_file
from chain.ledger import Ledger
from cli.cmd_demo import START_BALANCE
from cli.main import main
from testnet.bench_chain import render


def test_demo_commits_blocks_and_continues_on_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "demo"
    assert main(["demo", "--dir", str(home), "--blocks", "3", "--txs", "4", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "created a one-validator chain" in out
    rows = re.findall(r"^\s+(\d+)\s+([0-9a-f]{16})\s+(\d+)\s+([0-9a-f]{16})\s+\d+$", out, re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    assert all(int(r[2]) == 4 for r in rows)
    head_line = re.search(r"head: height (\d+), hash ([0-9a-f]{16})", out)
    assert head_line is not None and head_line.group(1) == "3"
    assert "DUPLICATE" in out
    assert re.search(
        r"snapshot at 2: \d+ state entries, \d+ bytes in 2 chunks, Merkle root verified", out
    )
    assert re.search(r"^\s+alice\s+0x[0-9a-f]{40}\s+\d+\s+\d+$", out, re.M)

    # The printed head is what is on disk.
    db = LevelDB(home / "data" / "chain", create=False)
    try:
        ledger = Ledger.open(db, load_genesis(home / "genesis.json"))
        assert ledger.height == 3
        assert ledger.head.block_hash.hex().startswith(head_line.group(2))
        assert ledger.block(3).hash.hex()[:16] == rows[-1][1]
        # Money is conserved: transfers move it and fees go to the validator.
        keys = [load_key_file(f) for f in sorted((home / "keys").glob("*.json"))]
        assert len(keys) == 5
        assert sum(ledger.account(k.address).balance for k in keys) == 4 * START_BALANCE
        assert ledger.account(keys[-1].address).balance > 0  # validator.json sorts last
    finally:
        db.close()

    # A second run reopens the ledger and continues from its head.
    assert main(["demo", "--dir", str(home), "--blocks", "1", "--txs", "2"]) == 0
    again = capsys.readouterr().out
    assert "reopened" in again and "head at 3" in again
    assert re.search(r"head: height 4,", again)


def test_demo_rejects_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path), "--blocks", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_bench_chain_quick_json_has_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "chain", "--runs", "1", "--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["target"] == "chain"
    assert report["command"] == "phalanx bench chain --runs 1 --quick"
    assert report["payload"]["transactions"] == 500
    for part, keys in {
        "admission": ("raw_verify_per_s", "admission_per_s", "ratio", "goal", "meets_goal"),
        "block": ("raw_verify_ms", "apply_ms", "commit_ms", "total_ms", "ratio", "goal"),
    }.items():
        for key in keys:
            assert key in report[part], (part, key)
        assert len(report[part]["per_run"]) == 1
    assert report["admission"]["admission_per_s"] > 0
    assert report["block"]["total_ms"] >= report["block"]["commit_ms"] > 0
    assert report["block"]["state_writes"] > 0
    table = render(report)
    assert "(a) mempool admission" in table and "(b) apply + commitment + synced commit" in table
    assert "phalanx bench chain --runs 1 --quick" in table


def test_bench_unknown_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "nosuch"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
