"""``phalanx bench`` end to end: real validators, real load processes, a report that adds up.

A short, slow run (the figures themselves are for quiet machines, never asserted here): the
report must account for every submitted transaction, take commit times from node 0's block
feed (``/websocket``), and carry the raw verify rate it is read against.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.net import ROOT

pytestmark = pytest.mark.e2e


def test_network_bench_reports_commits_seen_on_the_block_feed() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cli", "bench", "--engine", "pbft", "--nodes", "4",
         "--rate", "40", "--duration", "4", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["submitted"] > 0 and report["committed"] == report["submitted"]
    assert report["commits_observed_by"].startswith("websocket")
    assert report["websocket_blocks"] >= 1
    assert report["blocks"] >= 2 and report["block_interval_mean_s"] > 0   # heights from the feed
    p50, p99 = report["latency_p50_s"], report["latency_p99_s"]
    assert 0 < p50 <= p99
    assert report["ed25519_verify_per_s"] > 0 and report["ratio_to_verify_rate"] > 0
    low, high = report["ed25519_verify_range_per_s"]
    assert 0 < low <= report["ed25519_verify_per_s"] <= high
    assert report["cpu_ms_per_committed_tx"] > 0


def test_compare_measures_both_engines_and_loads_each_at_80_percent() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "cli", "bench", "--compare", "--runs", "1", "--duration", "3",
         "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    for engine, nodes in (("pbft", 4), ("paxos", 3)):
        e = report["engines"][engine]
        assert e["nodes"] == nodes
        sustained, loaded = e["sustained"], e["loaded"]
        assert sustained["engine"] == loaded["engine"] == engine and sustained["nodes"] == nodes
        assert sustained["offered_rate"] == "max" and sustained["committed_tps"] > 0
        assert loaded["offered_rate"] == e["offered_rate"] == round(
            0.8 * sustained["committed_tps"], 1)
        assert loaded["committed"] == loaded["submitted"] > 0
    assert set(report["pbft_goal"]) == {"ratio_to_verify_rate", "latency_p50_s", "latency_p99_s"}
