"""An in-process cluster of node drivers over a fake transport (for tests/node).

Every node has a MemoryDB ledger, a ChainApp, an engine built like the real node's, a
recording WAL and a transport whose messages reach the other drivers through unbounded
memory channels (one pump task per node). ``log`` records ``("persist", node, n)`` and
``("send", node, payload)`` in order, so tests can check persist-before-send.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from chain.db.memory import MemoryDB
from chain.genesis import Genesis, make_dev_genesis
from chain.keys import PrivateKey
from chain.ledger import Ledger
from chain.mempool import MempoolConfig
from chain.tx import Transaction, make_transaction
from node.app import ChainApp, block_digest
from node.driver import ConsensusDriver, DriverConfig
from node.engines import build_engine, make_signing

GENESIS_TIME = 1_700_000_000_000
CHAIN_ID = 7


def now_ms() -> int:
    return GENESIS_TIME + int(trio.current_time() * 1000)


class RecordingWal:
    """An in-memory WAL that logs each append into the shared event log."""

    def __init__(self, node: int, log: list[tuple[Any, ...]]) -> None:
        self.node = node
        self.log = log
        self.items: list[bytes] = []

    def records(self) -> list[bytes]:
        return list(self.items)

    def append(self, payloads: Any) -> int:
        payloads = list(payloads)
        self.items.extend(payloads)
        self.log.append(("persist", self.node, len(payloads)))
        return len(payloads)

    def compact(self, keep: Any) -> None:
        self.items = list(keep)


class FakeNet:
    """Routes payloads between drivers; links can be cut per node."""

    def __init__(self, log: list[tuple[Any, ...]]) -> None:
        self.log = log
        self.inboxes: dict[int, trio.MemorySendChannel[tuple[int, bytes]]] = {}
        self.down: set[int] = set()

    def transport(self, node: int) -> FakeTransport:
        return FakeTransport(self, node)

    def deliver(self, sender: int, dest: int, payload: bytes) -> None:
        if sender in self.down or dest in self.down or dest not in self.inboxes:
            return
        self.inboxes[dest].send_nowait((sender, payload))


@dataclass
class FakeTransport:
    net: FakeNet
    node: int

    async def send(self, peer: int, payload: bytes) -> None:
        self.net.log.append(("send", self.node, payload))
        self.net.deliver(self.node, peer, payload)
        await trio.lowlevel.checkpoint()

    async def broadcast(self, payload: bytes) -> None:
        self.net.log.append(("send", self.node, payload))
        for peer in list(self.net.inboxes):
            if peer != self.node:
                self.net.deliver(self.node, peer, payload)
        await trio.lowlevel.checkpoint()


@dataclass
class Cluster:
    genesis: Genesis
    keys: list[PrivateKey]
    user: PrivateKey
    net: FakeNet
    log: list[tuple[Any, ...]]
    ledgers: list[Ledger] = field(default_factory=list)
    wals: list[RecordingWal] = field(default_factory=list)
    drivers: list[ConsensusDriver | None] = field(default_factory=list)
    scopes: list[trio.CancelScope | None] = field(default_factory=list)
    nonce: int = 0

    def tx(self, amount: int = 1) -> Transaction:
        t = make_transaction(self.user, chain_id=CHAIN_ID, nonce=self.nonce, to=b"\x42" * 20,
                             amount=amount, fee=1, gas_limit=21_000)
        self.nonce += 1
        return t

    def driver(self, i: int) -> ConsensusDriver:
        d = self.drivers[i]
        assert d is not None
        return d


def make_cluster(n: int, *, engine: str = "pbft", checkpoint_interval: int = 10) -> Cluster:
    keys = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(n)]
    user = PrivateKey.from_seed(b"\x99" * 32)
    genesis = make_dev_genesis(keys, chain_id=CHAIN_ID, balances={user.address: 10**15},
                               genesis_time=GENESIS_TIME, engine=engine,
                               checkpoint_interval=checkpoint_interval)
    log: list[tuple[Any, ...]] = []
    c = Cluster(genesis, keys, user, FakeNet(log), log)
    for i in range(n):
        c.ledgers.append(Ledger.open(MemoryDB(), genesis))
        c.wals.append(RecordingWal(i, log))
        c.drivers.append(None)
        c.scopes.append(None)
    return c


def lone_app_and_transfers(count: int, *, nonce_gap_max: int) -> tuple[ChainApp, list[Transaction]]:
    """A validator's ChainApp on a fresh ledger (no engine) and ``count`` signed transfers
    of the cluster's funded user, nonces 0..count-1."""
    c = make_cluster(1)
    app = ChainApp(c.genesis, Ledger.open(MemoryDB(), c.genesis), key=c.keys[0],
                   mempool_config=MempoolConfig(fee_min=0, per_sender_max=64,
                                                nonce_gap_max=nonce_gap_max),
                   runtime=None, certificate_ok=lambda cert, value: True, now_ms=now_ms)
    txs = [make_transaction(c.user, chain_id=CHAIN_ID, nonce=n, to=b"\x42" * 20, amount=1,
                            fee=1, gas_limit=21_000) for n in range(count)]
    return app, txs


def build_driver(c: Cluster, i: int, *, byzantine: str = "",
                 config: DriverConfig | None = None) -> ConsensusDriver:
    key = c.keys[i]
    node_id, signer, verifier = make_signing(c.genesis, key)
    holder: dict[str, Any] = {}

    def certificate_ok(cert: Any, value: Callable[[], bytes]) -> bool:
        return bool(holder["kit"].verify_commit(cert, value))

    app = ChainApp(c.genesis, c.ledgers[i], key=key,
                   mempool_config=MempoolConfig(fee_min=0, per_sender_max=1000, nonce_gap_max=1000),
                   runtime=None, certificate_ok=certificate_ok, now_ms=now_ms)
    kit = build_engine(c.genesis, node_id, signer, verifier, app.check_proposal, block_digest,
                       view_timeout_ticks=20, byzantine=byzantine, forge_value=app.forge_value)
    holder["kit"] = kit
    cfg = config or DriverConfig(tick_ms=50, block_time_ms=200, use_threads=False)
    return ConsensusDriver(kit, app, c.wals[i], c.net.transport(i), cfg, now_ms=now_ms)


async def start_node(c: Cluster, nursery: trio.Nursery, i: int, **kw: Any) -> ConsensusDriver:
    driver = build_driver(c, i, **kw)
    tx, rx = trio.open_memory_channel[tuple[int, bytes]](math.inf)
    c.net.inboxes[i] = tx
    scope = trio.CancelScope()
    c.drivers[i] = driver
    c.scopes[i] = scope

    async def node_main(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with trio.open_nursery() as inner:
                await inner.start(driver.run)

                async def pump() -> None:
                    async for sender, payload in rx:
                        await driver.receive(sender, payload)

                inner.start_soon(pump)
                task_status.started()

    await nursery.start(node_main)
    return driver


def stop_node(c: Cluster, i: int) -> None:
    scope = c.scopes[i]
    assert scope is not None
    scope.cancel()
    c.net.inboxes.pop(i, None)
    c.drivers[i] = None


async def wait_height(c: Cluster, height: int, nodes: list[int] | None = None,
                      timeout: float = 120) -> None:
    nodes = nodes if nodes is not None else [i for i, d in enumerate(c.drivers) if d is not None]
    with trio.fail_after(timeout):
        while not all(c.ledgers[i].height >= height for i in nodes):
            await trio.sleep(0.05)
