"""Faults beyond a crash: a Byzantine validator that equivocates, and Paxos losing a replica.

* Four PBFT validators, validator 0 (the first primary) started with ``--byzantine
  equivocate``: the honest three agree on every block and keep committing.
* Three Paxos replicas (crash faults only): one is SIGKILLed; the other two keep committing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from cli.cmd_query import find_field
from node.client import RpcClient
from tests.e2e.net import Network, address, cli, make_network, running

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def byzantine_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("byz"), 4, chain_id=78)
    network.nodes[0].extra_args = ["--byzantine", "equivocate"]
    with running(network):
        yield network


def _send_wait(net: Network, user: int, amount: int, nodes: tuple[int, ...]) -> int:
    result = cli("tx", "send", "--key", str(net.user_key_files[user]),
                     "--to", address(net.users[1 - user]), "--amount", str(amount),
                     "--wait", "--wait-timeout", "90", "--json", "--node", net.urls(nodes))  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    return int(find_field(json.loads(result.stdout), "height"))


def _hashes(net: Network, index: int, heights: range) -> list[str]:
    with RpcClient(net.nodes[index].url) as c:
        return [str(find_field(c.block(h), "hash", "block_hash")) for h in heights]


def _balances(net: Network, index: int) -> list[int]:
    with RpcClient(net.nodes[index].url) as c:
        return [int(find_field(c.account(address(u)), "balance")) for u in net.users]


def test_an_equivocating_validator_cannot_split_the_honest_three(byzantine_net: Network) -> None:
    net = byzantine_net
    honest = (1, 2, 3)
    heights = [_send_wait(net, i % 2, 10 + i, honest) for i in range(3)]
    assert heights == sorted(heights)
    top = max(heights) + 1
    net.wait_height(top, only=honest)
    chains = {tuple(_hashes(net, i, range(1, top + 1))) for i in honest}
    assert len(chains) == 1
    assert len({tuple(_balances(net, i)) for i in honest}) == 1
    assert all(net.nodes[i].running for i in honest)


@pytest.fixture(scope="module")
def paxos_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("paxos"), 3, engine="paxos", chain_id=79)
    with running(network):
        yield network


def test_paxos_on_three_nodes_keeps_committing_after_one_crash(paxos_net: Network) -> None:
    net = paxos_net
    _send_wait(net, 0, 5, (0, 1, 2))
    with RpcClient(net.nodes[0].url) as c:
        leader = c.status().get("primary")
    victim = int(leader) if isinstance(leader, int) else 2  # the leader: the hard case
    net.nodes[victim].kill()
    alive = tuple(i for i in range(3) if i != victim)
    height = _send_wait(net, 1, 7, alive)
    height = max(height, _send_wait(net, 0, 8, alive))
    net.wait_height(height, only=alive)
    assert len({tuple(_hashes(net, i, range(1, height + 1))) for i in alive}) == 1
    assert len({tuple(_balances(net, i)) for i in alive}) == 1
