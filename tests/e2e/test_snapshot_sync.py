"""A validator that was down while the others pruned catches up through a verified snapshot.

Four PBFT validators as real processes, a checkpoint every 5 sequence numbers and
``[storage] retain_blocks = 20``: validator 3 is killed, the others commit transfers and empty
blocks past several stable checkpoints and prune the blocks it would need. Restarted, it
gets no blocks from anyone (their floor is above its head), fetches the newest snapshot with
its checkpoint proof, installs it (its log says so), block-syncs the rest, and ends with the
same blocks, state and balances as the others, committing along with them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from cli.cmd_query import find_field
from node.client import RpcClient, RpcClientError
from node.config import StorageSection, load_config, write_config
from tests.e2e.net import Network, address, cli, make_network, running, wait_until

pytestmark = pytest.mark.e2e

RETAIN = 20
INSTALLED = "snapshot sync: installed the snapshot at height"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("snap4"), 4, users=2, checkpoint_interval=5)
    for node in network.nodes:
        config = load_config(node.home)
        write_config(dataclasses.replace(config, storage=StorageSection(retain_blocks=RETAIN)))
    with running(network):
        yield network


def _block(node_url: str, height: int) -> dict[str, Any]:
    with RpcClient(node_url, timeout=5) as c:
        result: dict[str, Any] = c.block(height)
    return result


def _pruned(node_url: str, height: int) -> bool:
    try:
        _block(node_url, height)
    except RpcClientError as e:
        return "pruned" in e.message
    return False


def _balance(node_url: str, who: str) -> int:
    with RpcClient(node_url, timeout=5) as c:
        return int(find_field(c.account(who), "balance"))


def test_restarted_validator_catches_up_from_a_snapshot_after_the_others_pruned(net: Network) -> None:
    laggard, others = net.nodes[3], net.nodes[:3]
    net.wait_height(3)
    laggard.kill()
    stopped_at = laggard.height() if laggard.running else max(n.height() for n in others)
    # Transfers while it is down, so the snapshot carries state genesis did not have.
    to = address(net.users[1])
    for amount in (700, 11):
        sent = cli("tx", "send", "--key", str(net.user_key_files[0]), "--to", to, "--amount",
                   str(amount), "--wait", "--json", "--node", net.urls([0, 1, 2]))  # fmt: skip
        assert sent.returncode == 0, sent.stderr + sent.stdout
        assert json.loads(sent.stdout)["height"] > 0
    # Several checkpoints later the others no longer hold the blocks it would need.
    wait_until("the others to prune past the laggard's head",
               lambda: all(_pruned(n.url, stopped_at + 2) for n in others), timeout=30)  # fmt: skip

    laggard.start()
    wait_until("the laggard to install a snapshot",
               lambda: INSTALLED in laggard.log_path.read_text(errors="replace"), timeout=30)  # fmt: skip
    line = next(x for x in laggard.log_path.read_text().splitlines() if INSTALLED in x)
    assert "checkpoint signatures" in line
    # It caught up and keeps committing with the others.
    net.wait_height(max(n.height() for n in others) + 3, timeout=30)
    target = min(n.height() for n in net.nodes)  # stored everywhere for a while (RETAIN)
    for height in (target - 1, target):
        hashes = {str(find_field(_block(n.url, height), "hash", "block_hash")) for n in net.nodes}
        assert len(hashes) == 1, f"block {height} differs: {hashes}"
    # The header of block `target` commits to the state after `target - 1`: same everywhere.
    roots = {str(find_field(_block(n.url, target), "state_root")) for n in net.nodes}
    assert len(roots) == 1 and roots != {"None"}
    assert len({_balance(n.url, to) for n in net.nodes}) == 1
    # Blocks below its snapshot were never stored there, and status says where they start.
    assert _pruned(laggard.url, stopped_at + 1)
    def floor_as_reported() -> int | None:  # pruning may move it between two reads
        with RpcClient(laggard.url, timeout=5) as c:
            earliest = int(c.status()["earliest_block_height"])
        if _pruned(laggard.url, earliest) or not _pruned(laggard.url, earliest - 1):
            return None
        return earliest

    assert wait_until("status to report the stored floor", floor_as_reported, timeout=10) \
        > stopped_at + 1
    # A transfer sent through the restarted validator alone commits.
    sent = cli("tx", "send", "--key", str(net.user_key_files[1]), "--to", address(net.users[0]),
               "--amount", "5", "--wait", "--json", "--node", laggard.url)  # fmt: skip
    assert sent.returncode == 0, sent.stderr + sent.stdout
