"""Faults beyond a crash: a Byzantine validator that equivocates, and Paxos losing a replica.

* Four PBFT validators, validator 0 (the first primary) started with ``--byzantine
  equivocate``: the honest three agree on every block, keep committing, and all list the
  same evidence of the equivocation, against validator 0.
* Four PBFT validators, validator 3 started with ``--byzantine double-vote`` (each vote
  also goes, with a conflicting digest, to a random subset of peers): whatever any honest
  node detects is reliably broadcast, so every honest node's ``evidence`` method ends up
  listing the same evidence, all against validator 3, including evidence it did not see.
  (``equivocate`` gives each peer one consistent pre-prepare; the backups expose it by
  forwarding the pre-prepare they accepted to a peer that voted for the other digest.)
* Three Paxos replicas (crash faults only): one is SIGKILLed; the other two keep committing.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest

from cli.cmd_query import find_field
from node.client import RpcClient
from tests.e2e.net import Network, address, cli, make_network, running, wait_until

pytestmark = pytest.mark.e2e


def _one_byzantine(factory: pytest.TempPathFactory, chain_id: int, index: int,
                   kind: str) -> Iterator[Network]:
    """Four PBFT validators, validator ``index`` started with ``--byzantine kind``."""
    network = make_network(factory.mktemp(kind), 4, chain_id=chain_id)
    network.nodes[index].extra_args = ["--byzantine", kind]
    with running(network):
        yield network


@pytest.fixture(scope="module")
def byzantine_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    yield from _one_byzantine(tmp_path_factory, 78, 0, "equivocate")


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
    # Each backup heard one value only, yet the equivocation is proven: backups forward the
    # pre-prepare they accepted to a peer that voted for the other digest, and the reliable
    # broadcast of the resulting evidence gives every honest node the same records.
    def agreed() -> frozenset[tuple[int, str, int, int]] | None:
        sets = {frozenset(_evidence(net, i)) for i in honest}
        return sets.pop() if len(sets) == 1 else None
    records = wait_until("the honest nodes to list the same evidence", agreed, 30)
    assert records and all(key[:2] == (0, "equivocation") for key in records)


@pytest.fixture(scope="module")
def double_vote_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    yield from _one_byzantine(tmp_path_factory, 81, 3, "double-vote")


def _evidence(net: Network, index: int) -> dict[tuple[int, str, int, int], int]:
    """``(offender, kind, view, seq) -> reporter`` of every record the node lists."""
    with RpcClient(net.nodes[index].url) as c:
        doc = c.call("evidence", {"limit": 256})
    return {(e["offender"], e["kind"], e["view"], e["seq"]): e["reporter"] for e in doc["evidence"]}


def test_evidence_against_a_double_voter_is_listed_alike_by_every_honest_node(
        double_vote_net: Network) -> None:
    net = double_vote_net
    honest = (0, 1, 2)           # blocks (empty or not) keep coming: no transaction needed
    seen = wait_until("evidence at validator 0", lambda: _evidence(net, 0), 60)
    for i in honest:       # all that 0 recorded reaches the others (and back): same records
        def has_all(i: int = i) -> bool:
            return set(seen) <= set(_evidence(net, i))
        wait_until(f"validator {i} to list validator 0's evidence", has_all, 30)
    lists = {i: _evidence(net, i) for i in honest}
    common = set.intersection(*(set(v) for v in lists.values()))
    assert common and all(key[0] == 3 for v in lists.values() for key in v)
    # reliable broadcast, not each node's own detection: some records came from another node
    assert any(lists[i][k] != i for i in honest for k in common)
    with RpcClient(net.nodes[1].url) as c:
        status = c.status()
    assert set(status["evidence_by_validator"]) == {"3"}


def test_recorded_evidence_is_still_listed_after_a_restart(double_vote_net: Network) -> None:
    net = double_vote_net
    node = net.nodes[1]
    before = wait_until("evidence at validator 1", lambda: _evidence(net, 1), 60)
    assert node.stop() == 0
    # The others are frozen while validator 1 is down and back: what it lists then can only
    # come from its own data/evidence.jsonl, not from peers re-sending their broadcasts.
    others = [net.nodes[i] for i in (0, 2, 3)]
    for other in others:
        assert other.proc is not None
        os.kill(other.proc.pid, signal.SIGSTOP)
    try:
        node.start()
        after = wait_until("validator 1 listing evidence after the restart",
                           lambda: _evidence(net, 1), 60)
    finally:
        for other in others:
            assert other.proc is not None
            os.kill(other.proc.pid, signal.SIGCONT)
    assert set(before) <= set(after)        # (more may have come between the read and the stop)
    assert all(after[k] == before[k] for k in before)            # with the same reporters


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
