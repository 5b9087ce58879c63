"""Repeated and comparative network benchmark runs: medians, the 80% load, the goal verdict.

The runs are fed by a fake ``run_bench`` that answers from the configuration it is given, so
the arithmetic and the configurations each step asks for are checked exactly.
"""

from __future__ import annotations

from typing import Any

import pytest

from cli.main import CliError, build_parser
from testnet.bench import NetBenchConfig
from testnet.bench_suite import compare, median_report, render_compare, repeat


def _report(tps: float, p50: float, p99: float, verify: float = 10_000.0) -> dict[str, Any]:
    return {"engine": "pbft", "committed_tps": tps, "ratio_to_verify_rate": round(tps / verify, 4),
            "ed25519_verify_per_s": verify, "ed25519_verify_range_per_s": [verify - 5, verify + 5],
            "latency_p50_s": p50, "latency_p95_s": p99 - 0.1, "latency_p99_s": p99,
            "cpu_ms_per_committed_tx": 2.0, "offered_rate": "max", "websocket_blocks": 3}  # fmt: skip


def test_median_report_takes_each_figures_median_and_keeps_the_runs() -> None:
    reports = [_report(700, 0.4, 1.0, 11_000), _report(900, 0.2, 3.0, 9_000),
               _report(800, 0.3, 2.0, 10_000)]  # fmt: skip
    out = median_report(reports)
    assert out["committed_tps"] == 800 and out["latency_p99_s"] == 2.0
    assert out["ed25519_verify_per_s"] == 10_000
    assert out["ed25519_verify_range_per_s"] == [8_995, 11_005]
    assert out["engine"] == "pbft" and out["offered_rate"] == "max" and out["runs"] == 3
    two = median_report(reports[:2])              # an even count: the median would be a float
    assert two["websocket_blocks"] == 3 and isinstance(two["websocket_blocks"], int)
    assert two["committed_tps"] == 800.0
    assert out["per_run"]["committed_tps"] == [700, 900, 800]
    with pytest.raises(ValueError):
        median_report([])


def test_compare_offers_80_percent_of_each_engines_median_sustained_rate() -> None:
    asked: list[NetBenchConfig] = []
    sustained = {"pbft": iter([640.0, 800.0, 720.0]), "paxos": iter([900.0, 1000.0, 950.0])}

    def fake(config: NetBenchConfig) -> dict[str, Any]:
        asked.append(config)
        if config.rate is None:
            return _report(next(sustained[config.engine]), 2.0, 4.0)
        return _report(config.rate, 0.3 if config.engine == "pbft" else 0.2, 0.9)

    report = compare(NetBenchConfig(nodes=4, duration_s=5, command="x"), 3, fake)
    assert [(c.engine, c.nodes, c.rate) for c in asked] == (
        [("pbft", 4, None)] * 3 + [("pbft", 4, 576.0)] * 3
        + [("paxos", 3, None)] * 3 + [("paxos", 3, 760.0)] * 3)
    assert report["engines"]["pbft"]["sustained"]["committed_tps"] == 720
    assert report["engines"]["paxos"]["offered_rate"] == 760.0
    goal = report["pbft_goal"]
    assert goal["ratio_to_verify_rate"] == {"goal": ">= 0.06", "measured": 0.072, "met": True}
    assert goal["latency_p50_s"]["met"] and goal["latency_p99_s"]["met"]
    text = render_compare(report)
    assert "576.0" in text and "760.0" in text and "NOT met" not in text


def test_compare_says_which_goal_is_missed() -> None:
    def slow(config: NetBenchConfig) -> dict[str, Any]:
        return _report(500.0 if config.rate is None else config.rate, 0.7, 1.5)

    report = compare(NetBenchConfig(), 1, slow)
    goal = report["pbft_goal"]
    assert not goal["ratio_to_verify_rate"]["met"] and not goal["latency_p50_s"]["met"]
    assert goal["latency_p99_s"]["met"]
    assert "PBFT latency_p50_s: 0.7 (goal < 0.5): NOT met" in render_compare(report)


def test_repeat_runs_the_same_configuration() -> None:
    seen: list[NetBenchConfig] = []

    def fake(config: NetBenchConfig) -> dict[str, Any]:
        seen.append(config)
        return _report(100.0 * len(seen), 0.1, 0.2)

    config = NetBenchConfig(rate=300.0)
    assert repeat(config, 3, fake)["committed_tps"] == 200
    assert seen == [config] * 3


def test_cli_refuses_compare_with_attach_or_engine() -> None:
    parser = build_parser()
    for extra in (["--attach", "/tmp/x"], ["--engine", "paxos"]):
        args = parser.parse_args(["bench", "--compare", *extra])
        with pytest.raises(CliError, match="--compare"):
            args.func(args)
