"""``phalanx sim`` through cli.main.main: summaries, failures, exit codes, JSON, sweeps."""

from __future__ import annotations

import json

import pytest

from cli.main import main


def test_passing_run_prints_summary_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--engine", "toy", "--nodes", "4", "--seed", "3", "--ticks", "80"])
    out = capsys.readouterr().out
    assert code == 0
    assert "PASS" in out and "digest:" in out and "deliveries:" in out and "faults:" in out


def test_safety_failure_exits_3_with_both_values_and_replay(
        capsys: pytest.CaptureFixture[str]) -> None:
    # twins on the toy's sequencer (node 0) fork it once a partition separates the copies
    for seed in range(40):
        code = main(["sim", "--engine", "toy", "--byzantine", "twins", "--seed", str(seed),
                     "--ticks", "60", "--faults", "twins", "--json"])
        doc = json.loads(capsys.readouterr().out)
        if code == 3:
            break
    assert code == 3 and doc["status"] == "safety"
    v = doc["violation"]
    assert v["property"] == "agreement" and v["first"]["value"] != v["second"]["value"]
    replay = doc["replay"].split()
    code = main(replay[1:])
    out = capsys.readouterr().out
    assert code == 3
    assert "property: agreement" in out and f"seed {seed}" in out
    assert f"replay: {doc['replay']}" in out


def test_liveness_failure_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    codes = []
    for seed in range(10):
        codes.append(main(["sim", "--engine", "toy", "--byzantine", "silent", "--seed",
                           str(seed), "--ticks", "30", "--liveness-ticks", "60"]))
        out = capsys.readouterr().out
        if codes[-1] == 2:
            assert "liveness:" in out and "--liveness-ticks 60" in out
            return
    pytest.fail(f"no seed silenced the sequencer: {codes}")


def test_sweep_reports_each_seed_and_the_tally(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sim", "--engine", "toy", "--seeds", "1..4", "--ticks", "40"])
    out = capsys.readouterr().out
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()[:4]] == [
        "seed 1", "seed 2", "seed 3", "seed 4"]
    assert "sweep 1..4: 4 seeds, pass 4" in out


def test_parallel_sweep_prints_the_same_as_a_sequential_one(
        capsys: pytest.CaptureFixture[str]) -> None:
    args = ["sim", "--engine", "toy", "--byzantine", "silent", "--seeds", "0..5", "--ticks",
            "30", "--liveness-ticks", "60"]
    code = main(args)
    sequential = capsys.readouterr().out
    assert main([*args, "--jobs", "2"]) == code
    parallel = capsys.readouterr().out
    lines = [ln for ln in sequential.splitlines() if ln.startswith(("seed ", "sweep "))]
    assert lines == [ln for ln in parallel.splitlines() if ln.startswith(("seed ", "sweep "))]
    assert "replay: phalanx sim" in parallel or code == 0


def test_trace_flag_prints_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--engine", "toy", "--seed", "1", "--ticks", "10", "--trace",
                 "--liveness-ticks", "20"]) == 0
    out = capsys.readouterr().out
    assert " send " in out and " recv " in out and " deliver " in out


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--engine", "nope"]) == 2
    assert "unknown engine" in capsys.readouterr().err
    assert main(["sim", "--engine", "toy", "--byzantine", "lying"]) == 2
    assert "unknown Byzantine behaviour" in capsys.readouterr().err


def test_bench_sim_reports_both_signers(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "sim", "--quick", "--runs", "1", "--sim-ticks", "12", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    for keys in ("hash", "ed25519"):
        assert doc[keys]["instances"] > 0 and doc[keys]["instances_per_s"] > 0
    assert doc["command"].startswith("phalanx bench sim")
