"""Local testnet plumbing without processes: layout, configs, logs merge, fault plans, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.genesis import load_genesis
from chain.keys import load_key_file
from cli.main import main
from node.config import load_config
from testnet._layout import LayoutError, generate, load_layout, parse_byzantine
from testnet.chaos import plan_faults
from testnet.export import export
from testnet.local import Testnet, merged_logs


def test_layout_writes_loadable_homes_with_distinct_ports(tmp_path: Path) -> None:
    layout = generate(tmp_path / "net", nodes=4, engine="pbft", byzantine={3: "equivocate"})
    ports = [n.rpc_port for n in layout.nodes] + [n.p2p_port for n in layout.nodes]
    assert len(set(ports)) == 8
    genesis = load_genesis(tmp_path / "net" / "genesis.json")
    faucet = load_key_file(layout.faucet_key)
    assert genesis.faucet == faucet.address and dict(genesis.balances)[faucet.address] > 0
    for node in layout.nodes:
        config = load_config(node.home)
        assert config.rpc.listen == f"127.0.0.1:{node.rpc_port}"
        assert load_key_file(config.key_path).public_key.raw == genesis.validators[node.index].public_key
        others = {int(p.split("@")[0]): int(p.rsplit(":", 1)[1]) for p in config.p2p.peers}
        assert others == {j.index: j.p2p_port for j in layout.nodes if j.index != node.index}
        assert config.node.byzantine == ("equivocate" if node.index == 3 else "")
    assert load_layout(tmp_path / "net") == layout
    assert layout.f == 1


def test_proxied_layout_routes_each_directed_link_through_its_own_port(tmp_path: Path) -> None:
    layout = generate(tmp_path, nodes=3, engine="paxos", proxy=True)
    assert layout.f == 1 and len(layout.links) == 6
    all_ports = [*layout.links.values(), *(n.p2p_port for n in layout.nodes), layout.proxy_control_port]
    assert len(set(all_ports)) == len(all_ports)
    for node in layout.nodes:
        for peer in load_config(node.home).p2p.peers:
            j = int(peer.split("@")[0])
            assert peer.endswith(f":{layout.links[f'{node.index}-{j}']}")


def test_layout_refuses_bad_input_and_an_existing_testnet(tmp_path: Path) -> None:
    generate(tmp_path, nodes=1)
    with pytest.raises(LayoutError, match="already holds a testnet"):
        generate(tmp_path, nodes=1)
    with pytest.raises(LayoutError, match="--nodes"):
        generate(tmp_path / "x", nodes=0)
    with pytest.raises(LayoutError, match="--engine"):
        generate(tmp_path / "y", engine="raft")
    with pytest.raises(LayoutError, match="no testnet"):
        load_layout(tmp_path / "missing")


def test_parse_byzantine() -> None:
    assert parse_byzantine("3=equivocate, 1=silent", 4) == {3: "equivocate", 1: "silent"}
    assert parse_byzantine("", 4) == {}
    for bad in ("4=silent", "x=silent", "1", "1=", "1=a,1=b"):
        with pytest.raises(LayoutError):
            parse_byzantine(bad, 4)


def test_logs_merge_by_lamport_then_node(tmp_path: Path) -> None:
    lines = {0: [1, 5, 9], 1: [2, 5, 7], 2: [5]}
    homes = {}
    for i, stamps in lines.items():
        home = tmp_path / f"node{i}"
        (home / "logs").mkdir(parents=True)
        body = "".join(json.dumps({"lamport": s, "msg": f"n{i}"}) + "\n" for s in stamps)
        (home / "logs" / "node.jsonl").write_text(("not json\n" + body) if i == 2 else body)
        homes[i] = home
    merged = [(lam, i) for lam, i, _ in merged_logs(homes)]
    # An unparsable line counts as Lamport 0; ties go to the lower node id.
    assert merged == [(0, 2), (1, 0), (2, 1), (5, 0), (5, 1), (5, 2), (7, 1), (9, 0)]


def test_fault_plan_is_seeded_and_stays_within_the_budget() -> None:
    a = plan_faults(7, 60, 4, set(), 1, 9.0)
    assert a == plan_faults(7, 60, 4, set(), 1, 9.0) and a != plan_faults(8, 60, 4, set(), 1, 9.0)
    assert len(a) >= 6 and all(len(f.targets) == 1 for f in a)
    wide = plan_faults(3, 60, 7, {6}, 2, 5.0)
    assert all(1 <= len(f.targets) <= 1 and 6 not in f.targets for f in wide)
    assert plan_faults(1, 60, 4, {3}, 1, 9.0) == []  # the Byzantine node uses the whole budget
    over = plan_faults(1, 60, 4, set(), 2, 5.0)
    assert any(len(f.targets) == 2 for f in over)


def test_export_writes_per_host_homes_and_compose(tmp_path: Path) -> None:
    out = tmp_path / "exp"
    result = export(["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"], out)
    compose = Path(result["compose"]).read_text()
    for i in range(4):
        config = load_config(out / f"node{i}")
        assert config.p2p.listen == "0.0.0.0:26656"
        assert all(p.split("@")[1].startswith("10.0.0.") for p in config.p2p.peers)
        assert f"10.0.0.{i + 1}" not in " ".join(config.p2p.peers)
        assert f"node{i}:" in compose
    with pytest.raises(LayoutError, match="not empty"):
        export(["a"], out)
    with pytest.raises(LayoutError, match="twice"):
        export(["a", "a"], tmp_path / "e2")


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testnet", "status", "--dir", str(tmp_path / "none")]) == 1
    assert "no testnet in" in capsys.readouterr().err
    generate(tmp_path / "plain", nodes=1)
    assert main(["testnet", "heal", "--dir", str(tmp_path / "plain")]) == 1
    assert "without the fault proxy" in capsys.readouterr().err
    assert main(["testnet", "kill", "5", "--dir", str(tmp_path / "plain")]) == 1
    assert "no node 5" in capsys.readouterr().err


def test_status_of_a_stopped_testnet_shows_nodes_down(tmp_path: Path) -> None:
    net = Testnet(generate(tmp_path, nodes=2, byzantine={1: "silent"}))
    rows = net.status()
    assert [r["state"] for r in rows] == ["down", "down"]
    assert [r["role"] for r in rows] == ["primary", "byzantine:silent"]


def test_catch_up_time_is_until_the_slowest_honest_node_reaches_the_top_at_the_heal() -> None:
    from testnet.chaos import catch_up_times

    # (time, lowest honest height, highest): node killed at 1 s (-1), healed at 3 s.
    samples = [(0.0, 10, 10), (1.0, -1, 12), (3.0, -1, 15), (4.0, 9, 16), (6.5, 15, 18)]
    assert catch_up_times(samples, [3.0]) == [3.5]
    assert catch_up_times(samples, [6.0]) == [None]  # the top at 6 s (16) is never reached by all
    assert catch_up_times(samples, [-1.0]) == [None]


def test_a_pid_is_only_ours_when_its_command_line_says_so() -> None:
    import os

    from testnet._procs import pid_runs

    assert pid_runs(os.getpid(), "python") or pid_runs(os.getpid(), "pytest")
    assert not pid_runs(os.getpid(), "/no/such/testnet/home")
    assert not pid_runs(0, "") and not pid_runs(2**22 + 12345, "")
