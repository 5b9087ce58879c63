"""The network benchmark's plumbing: CLI parsing next to the component targets, percentiles, report."""

from __future__ import annotations

import pytest

from cli.main import build_parser
from testnet.bench import _pct, render


def test_bench_without_target_is_the_network_benchmark_and_targets_still_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(["bench", "--engine", "paxos", "--max", "--duration", "5"])
    assert args.target is None and args.max and args.engine == "paxos" and args.duration == 5
    assert parser.parse_args(["bench", "chain", "--runs", "1"]).target == "chain"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--rate", "10", "--max"])


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert (_pct(values, 50), _pct(values, 95), _pct(values, 99)) == (50.0, 95.0, 99.0)
    assert _pct([0.3], 99) == 0.3 and _pct([], 50) is None


def test_report_names_payload_signatures_storage_clients_and_command() -> None:
    report = {
        "engine": "pbft", "nodes": 4, "offered_rate": 100.0, "duration_s": 5, "clients": 2,
        "senders": 20, "committed": 480, "submitted": 500, "rejected": 0, "committed_tps": 96.0,
        "ratio_to_verify_rate": 0.006, "ed25519_verify_per_s": 16000, "latency_p50_s": 0.3,
        "ed25519_verify_range_per_s": [15100, 16700],
        "latency_p95_s": 0.6, "latency_p99_s": 0.9, "blocks": 25, "block_interval_mean_s": 0.2,
        "txs_per_block_mean": 19.2, "cpu_ms_per_committed_tx": 3.1, "payload_bytes": 132,
        "signatures_per_tx": 1, "storage": "LevelDB, one synced write batch per block",
        "command": "phalanx bench --rate 100 --duration 5",
    }  # fmt: skip
    text = render(report)
    for needle in ("132 B", "1 signature", "synced", "2 client processes", "480 of 500",
                   "16000/s, median of samples 15100-16700/s",
                   "p99 0.9 s", "phalanx bench --rate 100 --duration 5"):  # fmt: skip
        assert needle in text
