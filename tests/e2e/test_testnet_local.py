"""``phalanx testnet`` end to end: real processes started through the CLI, checked over their APIs.

* Four PBFT validators, the first primary started Byzantine (equivocating): the honest three
  change view, a transfer workload commits and every checker passes (agreement, no lost
  ack, no double spend, conservation).
* Negative control past the threshold: a 2/2 partition through the fault proxy leaves no
  quorum, and the liveness checker flags it; after the heal the chain moves again.
* A 60-second seeded chaos run with faults never above f ends with zero violations, the
  clients' transfer/read history linearizable on every account.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cli.main import main
from testnet._collect import check_testnet
from testnet._workload import Workload, workload_keys
from testnet.chaos import ChaosConfig, render, run_chaos
from testnet.check import check_liveness
from testnet.local import Testnet

pytestmark = pytest.mark.e2e


def test_byzantine_testnet_started_by_the_cli_commits_and_passes_the_checkers(
    testnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["testnet", "up", "--dir", str(testnet_dir), "--nodes", "4",
                 "--byzantine", "0=equivocate", "--detach", "--json"]) == 0  # fmt: skip
    up = json.loads(capsys.readouterr().out.split("\ndetached")[0])
    roles = [row["role"] for row in up["nodes"]]
    assert roles[0] == "byzantine:equivocate" and set(roles[1:]) <= {"primary", "backup"}
    assert Path(up["faucet_key"]).exists()

    net = Testnet.open(testnet_dir)
    # Fund two accounts from the faucet through the CLI, then run a short workload.
    keys = workload_keys(5, 2)
    from chain.keys import format_address

    for key in keys:
        assert main(["tx", "send", "--key", up["faucet_key"], "--to", format_address(key.address),
                     "--amount", str(10**12), "--wait", "--json",
                     "--node", net.layout.rpc_urls[1]]) == 0  # fmt: skip
    capsys.readouterr()
    honest = [net.layout.rpc_urls[i] for i in net.honest()]
    workload = Workload(honest, keys, net.layout.chain_id, seed=5, threads=2)
    workload.start()
    time.sleep(6)
    stats = workload.stop()
    assert len(stats.acks) >= 5

    verdict = check_testnet({i: net.layout.rpc_urls[i] for i in net.honest()},
                            testnet_dir / "genesis.json", stats.acks)  # fmt: skip
    assert verdict.ok, verdict.violations
    assert verdict.figures["txs_committed"] >= len(stats.acks) + len(keys)
    assert main(["testnet", "check", "--dir", str(testnet_dir)]) == 0
    assert main(["testnet", "down", "--dir", str(testnet_dir)]) == 0
    assert all(row["state"] == "down" for row in Testnet.open(testnet_dir).status())


def test_negative_control_two_two_partition_stalls_and_liveness_flags_it(testnet_dir: Path) -> None:
    assert main(["testnet", "up", "--dir", str(testnet_dir), "--proxy", "--detach"]) == 0
    net = Testnet.open(testnet_dir)
    assert main(["testnet", "partition", "0,1/2,3", "--dir", str(testnet_dir)]) == 0
    time.sleep(2)  # blocks in flight at the cut may still land
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < 8:
        heights = [h for i in range(4) if (h := net.height(i)) is not None]
        samples.append((time.monotonic() - t0, max(heights)))
        time.sleep(0.5)
    found, _ = check_liveness(samples, healed_at=0.0, bound_s=5.0)
    assert [v.check for v in found] == ["liveness"], samples
    # The failure detectors see the cut: each node is suspected by the other side's two.
    rows = net.status()
    assert [r["suspected_by"] for r in rows] == [[2, 3], [2, 3], [0, 1], [0, 1]], rows

    assert main(["testnet", "heal", "--dir", str(testnet_dir)]) == 0
    stalled_at = samples[-1][1]
    net.wait_height(stalled_at + 3, timeout=40)
    verdict = check_testnet(dict(enumerate(net.layout.rpc_urls)), testnet_dir / "genesis.json")
    assert verdict.ok, verdict.violations


def test_chaos_sixty_seconds_within_f_has_no_violations(tmp_path: Path) -> None:
    report = run_chaos(ChaosConfig(directory=tmp_path / "chaos", duration_s=60, seed=11))
    print(render(report))
    assert report["verdict"] == "PASS", render(report)
    assert report["faults_injected"] >= 5
    assert report["txs_acknowledged"] > 0 and report["txs_lost"] == 0
    assert report["recovery_s"] is not None
    lin = report["linearizability"]   # the client history was checked, every account passed
    assert lin["reads"] > 0 and lin["operations"] > 0 and lin["accounts"] > 1
    assert lin["linearizable"] == lin["accounts"] and lin["not_linearizable"] == 0
