"""``phalanx testnet restart --rolling`` on a real 4-node PBFT testnet.

Every validator is restarted once under Ricart-Agrawala; the timeline says never two down, and
the chain kept committing during the roll: each node came back at a height above the one the
previous node came back at, so blocks were committed while each node was down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import main
from testnet.chaos import CHAOS_CONSENSUS
from testnet.local import Testnet

pytestmark = pytest.mark.e2e


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Testnet]:
    testnet = Testnet.create(tmp_path / "net", nodes=4, consensus=CHAOS_CONSENSUS)
    try:
        testnet.start(timeout=60)
        yield testnet
    finally:
        Testnet.open(testnet.dir).stop()  # no process outlives the test


def test_rolling_restart_keeps_one_node_down_at_most_and_the_chain_commits(
    net: Testnet, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {n.index: n.pid for n in net.layout.nodes}
    start_height = max(h or 0 for h in net.heights().values())
    assert main(["testnet", "restart", "--rolling", "--dir", str(net.dir), "--json",
                 "--timeout", "60"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["violations"] == []
    events = report["timeline"]
    assert [e["kind"] for e in events] == ["enter", "down", "up", "release"] * 4
    assert sorted(e["node"] for e in events if e["kind"] == "down") == [0, 1, 2, 3]
    ups = [e["height"] for e in events if e["kind"] == "up"]
    assert start_height < ups[0] < ups[1] < ups[2] < ups[3]  # committing throughout
    after = Testnet.open(net.dir)
    assert all(after.layout.node(i).pid != before[i] for i in range(4))  # really restarted
    after.wait_height(ups[-1] + 1, timeout=30)
