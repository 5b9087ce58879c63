"""Overload: four PBFT validators flooded far above their capacity keep committing.

Every validator runs a small mempool (``tx_count_max`` of a few hundred) and twelve client
threads, three per validator, submit batches of signed transfers from many senders as fast as
the nodes answer, round after round, while the chain is watched. What must hold:

* the chain keeps committing: every validator's height advances by ``ADVANCE`` blocks while
  the flood goes on (no fixed time: the flood lasts until that happened or ``ROUNDS_MAX``
  rounds were sent, and then the assertion tells which it was);
* the nodes shed the excess with a clear rejection to the client (``POOL_FULL`` with a
  message a person can act on), instead of queueing it into consensus;
* consensus is not starved: no node's log says a consensus message was dropped behind a
  full send queue, the views stay low (no storm of view changes), every validator holds the
  same block at a common height, and right after the flood a fresh transfer commits.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.keys import PrivateKey, format_address
from chain.tx import make_transaction
from node.config import load_config, write_config
from tests.e2e.net import Network, make_network, running

pytestmark = pytest.mark.e2e

N = 4
SENDERS = 48  # users 0..46 flood, the last one sends the transfer after the flood
CLIENTS_PER_NODE = 3
TXS_PER_SENDER = 24  # per round: 4 senders x 24 = 96 calls, within the API's batch bound
POOL_MAX = 200
ADVANCE = 25
ROUNDS_MAX = 80
VIEW_MAX = 2
GAS = 21_000


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root: Path = tmp_path_factory.mktemp("overload")
    network = make_network(root, N, users=SENDERS, block_time_ms=100)
    for node in network.nodes:
        config = load_config(node.home)
        write_config(dataclasses.replace(
            config, mempool=dataclasses.replace(config.mempool, tx_count_max=POOL_MAX)))
    with running(network) as started:
        started.wait_height(1)
        yield started


def _rpc(client: httpx.Client, url: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    body = [{"jsonrpc": "2.0", "id": k, "method": m, "params": p} for k, (m, p) in enumerate(calls)]
    answer = client.post(url, json=body).json()
    if isinstance(answer, dict):  # the whole batch refused
        return [answer] * len(calls)
    by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
    return [by_id.get(k, {}) for k in range(len(calls))]


class Flooder(threading.Thread):
    """One client of one validator: its senders' transfers, as fast as the node answers."""

    def __init__(self, net: Network, node: int, senders: list[PrivateKey], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = net.nodes[node].url
        self.chain_id = net.chain_id
        self.senders = senders
        self.stop = stop
        self.accepted = 0
        self.errors: Counter[str] = Counter()
        self.messages: dict[str, str] = {}
        self.rounds = 0

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                self.flood_once(client)
                self.rounds += 1

    def flood_once(self, client: httpx.Client) -> None:
        accounts = _rpc(client, self.url, [("account", {"address": format_address(k.address)})
                                           for k in self.senders])  # fmt: skip
        calls = []
        for key, acct in zip(self.senders, accounts, strict=True):
            nonce = int(acct.get("result", {}).get("next_nonce", 0))
            for k in range(TXS_PER_SENDER):
                tx = make_transaction(key, chain_id=self.chain_id, nonce=nonce + k, to=key.address,
                                      amount=1, fee=1, gas_limit=GAS)  # fmt: skip
                calls.append(("broadcast_tx_sync", {"tx": "0x" + tx.encoded.hex()}))
        for item in _rpc(client, self.url, calls):
            if "result" in item:
                self.accepted += 1
                continue
            message = str(item.get("error", {}).get("message", "no answer"))
            reason = message.split(":", 1)[0]
            self.errors[reason] += 1
            self.messages.setdefault(reason, message)


def _status(net: Network, i: int) -> dict[str, Any]:
    return dict(net.nodes[i].call("status"))


def test_flood_far_above_capacity_sheds_load_and_keeps_committing(net: Network) -> None:
    floods = net.users[:-1]
    start = [net.nodes[i].height() for i in range(N)]
    stop = threading.Event()
    clients = N * CLIENTS_PER_NODE
    flooders = [Flooder(net, c % N, floods[c::clients], stop) for c in range(clients)]
    for f in flooders:
        f.start()
    try:
        advanced = [0] * N
        while min(f.rounds for f in flooders) < ROUNDS_MAX and min(advanced) < ADVANCE:
            advanced = [net.nodes[i].height() - start[i] for i in range(N)]
            stop.wait(0.2)
    finally:
        stop.set()
        for f in flooders:
            f.join(90)
    accepted = sum(f.accepted for f in flooders)
    errors: Counter[str] = sum((f.errors for f in flooders), Counter())
    messages = {k: v for f in flooders for k, v in f.messages.items()}
    rounds = [f.rounds for f in flooders]
    assert min(advanced) >= ADVANCE, (f"the chain stalled under the flood: heights advanced by "
                                      f"{advanced} in {rounds} rounds; errors {dict(errors)}")
    # The excess was shed at the door, with a reason a client can act on.
    assert errors["POOL_FULL"] > 0, (accepted, dict(errors))
    assert "full" in messages["POOL_FULL"] and "retry" in messages["POOL_FULL"]
    assert accepted > POOL_MAX  # more than one poolful went through while flooded
    # Consensus was never starved by the flood.
    for node in net.nodes:
        assert "CONSENSUS dropped" not in node.log_path.read_text(errors="replace"), node.log_tail()
    views = [int(_status(net, i)["view"]) for i in range(N)]
    assert max(views) <= VIEW_MAX, views
    common = min(net.nodes[i].height() for i in range(N))
    hashes = {net.nodes[i].call("block", {"height": common})["hash"] for i in range(N)}
    assert len(hashes) == 1
    # And the network still serves a new client that pays more than the flood.
    fresh = net.users[-1]
    tx = make_transaction(fresh, chain_id=net.chain_id, nonce=0, to=floods[0].address, amount=5,
                          fee=2, gas_limit=GAS)  # fmt: skip  (outbids the flood: pools are full)
    done = net.nodes[1].call("broadcast_tx_commit", {"tx": "0x" + tx.encoded.hex(), "timeout": 60},
                             timeout=90)  # fmt: skip
    assert int(done["height"]) > common - 1
