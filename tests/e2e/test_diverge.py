"""A validator that executes one block differently, found by ``phalanx query diverge``.

Four real ``phalanx start`` processes. Validator 3 runs with ``[testing] diverge_at_height = 3``:
it charges the first transaction of block 3 one more gas, so its receipt and its state differ.
Empty blocks are rare (``block_time_ms`` is long), so each transfer sent with ``--wait`` makes a
block of its own and block 3 holds one. Checks: the three honest validators go on committing
(f = 1) while validator 3 stays at height 3 (it refuses block 4, whose header carries the honest
state root); ``phalanx query diverge URL0 URL3`` exits 1 naming height 3, an execution
divergence (same block hash), transaction index 0 with ``gas_used`` one apart;
``phalanx query diverge URL0 URL1`` exits 0.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from cli.cmd_query import find_field
from node import config as node_config
from tests.e2e.net import Network, address, cli, make_network, phalanx, running

pytestmark = pytest.mark.e2e

DIVERGE_AT = 3
FAULTY = 3  # not the primary of view 0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    # Blocks come from transactions (one empty block at start-up at most).
    network = make_network(tmp_path_factory.mktemp("diverge"), 4, chain_id=83,
                           block_time_ms=600_000)
    node = network.nodes[FAULTY]
    config = node_config.load_config(node.home)
    node_config.write_config(dataclasses.replace(config, testing=node_config.TestingSection(
        test_network_only=True, diverge_at_height=DIVERGE_AT)))
    with running(network):
        yield network


def test_a_diverging_validator_is_found_at_its_height_and_transaction(net: Network) -> None:
    honest = [n.index for n in net.nodes if n.index != FAULTY]
    committed: dict[int, str] = {}  # height -> the transfer committed in it
    amount = 0
    while max(committed, default=0) <= DIVERGE_AT:
        amount += 1
        assert amount <= 2 * DIVERGE_AT + 2, f"too many transfers for {DIVERGE_AT + 1} blocks"
        result = cli("tx", "send", "--key", str(net.user_key_files[0]), "--to",
                     address(net.users[1]), "--amount", str(amount), "--wait", "--json",
                     "--node", net.urls(honest))  # fmt: skip
        assert result.returncode == 0, result.stderr + net.nodes[0].log_tail()
        out = json.loads(result.stdout)
        committed[int(find_field(out, "height"))] = str(out["hash"])
    assert DIVERGE_AT in committed, committed
    top = max(committed)
    net.wait_height(top, only=honest, timeout=30)
    faulty = net.nodes[FAULTY].call("status", timeout=5)
    assert faulty["height"] == DIVERGE_AT, faulty  # it refused block DIVERGE_AT + 1
    log = net.nodes[FAULTY].log_path.read_text(errors="replace")
    assert "TEST FAULT" in log and "carries a stale state root" in log

    # The faulty node against an honest one: height 3, same block, transaction 0, gas + 1.
    url0, url1, url3 = (net.nodes[i].url for i in (0, 1, FAULTY))
    result = cli("query", "diverge", url0, url3, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    print(f"diverge 0-3: height {report['height']} in {report['lookups']} lookups over "
          f"{report['compared']}")
    assert report["height"] == DIVERGE_AT and report["kind"] == "execution"
    assert report["compared"] == {"from": 0, "to": DIVERGE_AT}
    hash0, hash3 = report["block_hashes"]
    assert hash0 == hash3
    diff = report["first_differing_tx"]
    assert diff["index"] == 0 and diff["hash"] == committed[DIVERGE_AT]
    assert "gas_used" in diff["fields"]
    honest_receipt, faulty_receipt = diff["receipts"]
    assert faulty_receipt["gas_used"] == honest_receipt["gas_used"] + 1

    # As a user runs it: the human report, exit code 1.
    shown = phalanx("query", "diverge", url0, url3)
    assert shown.returncode == 1, shown.stderr
    assert f"first diverging height: {DIVERGE_AT}" in shown.stdout
    assert "execution divergence" in shown.stdout and "index 0" in shown.stdout

    # Two honest nodes agree up to the lower head.
    result = cli("query", "diverge", url0, url1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no divergence up to height" in result.stdout
    agreed = int(result.stdout.split("no divergence up to height ")[1].split()[0])
    assert agreed >= top
