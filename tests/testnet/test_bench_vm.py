"""``phalanx bench vm`` runs end to end and reports what it measured (no speed asserted)."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from testnet.bench_vm import render


def test_bench_vm_json_counts_the_instructions_it_ran(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "vm", "--runs", "1", "--json", "--vm-iterations", "300", "--vm-token-txs", "5"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    loop = report["loop"]
    assert loop["steps"] == 19 * 300 + 5  # 3 set-up, 19 per iteration, 2 to store
    assert loop["gas"] > loop["steps"]
    assert loop["steps_per_s"] > 0 and loop["gas_per_s"] > 0 and loop["steps_per_cpu_s"] > 0
    assert report["token"]["txs"] == 5 and report["token"]["gas_per_tx"] > 21_000
    assert report["command"] == "phalanx bench vm --runs 1 --vm-iterations 300 --vm-token-txs 5"
    table = render(report)
    assert "instructions/s" in table and report["command"] in table
