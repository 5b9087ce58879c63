"""The RPC methods through the real ASGI app (httpx.ASGITransport), over a real ledger.

A single validator with PBFT n=1 commits blocks in-process, so ``broadcast_tx_commit``,
``tx``, ``block`` and ``commit`` answer from a chain that really grows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from chain.keys import format_address
from chain.tx import make_transaction
from chain.vm.runtime import VMRuntime
from node.api import build_app
from node.jsonrpc import Dispatcher
from node.metrics import NodeMetrics
from node.rpc_methods import CommitWaiters, NodeInfo, RpcNode
from tests.node.cluster import CHAIN_ID, Cluster, build_driver, make_cluster


class Node:
    def __init__(self, c: Cluster, client: httpx.AsyncClient, metrics: NodeMetrics) -> None:
        self.c = c
        self.client = client
        self.metrics = metrics
        self.ids = 0

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        self.ids += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            body["params"] = params
        r = await self.client.post("/", content=json.dumps(body))
        doc: dict[str, Any] = r.json()
        return doc

    async def ok(self, method: str, params: Any = None) -> Any:
        doc = await self.call(method, params)
        assert "result" in doc, doc
        return doc["result"]

    async def err(self, method: str, params: Any = None) -> dict[str, Any]:
        doc = await self.call(method, params)
        assert "error" in doc, doc
        error: dict[str, Any] = doc["error"]
        return error


@pytest.fixture
async def node(autojump_clock: trio.testing.MockClock) -> AsyncIterator[Node]:
    c = make_cluster(1)
    driver = build_driver(c, 0)
    c.drivers[0] = driver
    waiters = CommitWaiters()
    driver.commit_listeners.append(waiters.on_commit)
    metrics = NodeMetrics()
    rpc = RpcNode(driver.app, c.genesis, NodeInfo("t", 0, "127.0.0.1:1", "127.0.0.1:2"),
                  driver=driver, waiters=waiters, metrics=metrics, runtime=VMRuntime())
    app = build_app(Dispatcher(rpc.methods()), body_bytes_max=4096, block_feed=waiters.block_feed,
                    metrics=metrics.render)
    async with trio.open_nursery() as nursery:
        await nursery.start(driver.run)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://node") as client:
            yield Node(c, client, metrics)
        nursery.cancel_scope.cancel()


async def test_status_health_validators(node: Node) -> None:
    st = await node.ok("status")
    assert st["chain_id"] == CHAIN_ID and st["engine"] == "pbft"
    assert isinstance(st["height"], int) and st["view"] == 0 and st["primary"] == 0
    assert "waiting_for" in st and st["byzantine"] is None
    assert await node.ok("health") == {}
    vals = await node.ok("validators")
    assert vals["count"] == 1
    assert vals["validators"][0]["address"] == format_address(node.c.keys[0].address)


async def test_broadcast_commit_then_tx_block_commit_account(node: Node) -> None:
    tx = node.c.tx(amount=5)
    res = await node.ok("broadcast_tx_commit", {"tx": "0x" + tx.encoded.hex()})
    assert res["hash"] == "0x" + tx.hash.hex()
    assert res["receipt"]["success"] is True
    height = res["height"]
    got = await node.ok("tx", {"hash": res["hash"]})
    assert got["height"] == height and got["tx"]["amount"] == 5
    block = await node.ok("block", {"height": height})
    assert block["height"] == height and res["hash"] in [t["hash"] for t in block["txs"]]
    latest = await node.ok("block")
    assert latest["height"] >= height
    cert = await node.ok("commit", {"height": height})
    assert cert["certificate"]["block_hash"] == block["hash"] and cert["certificate"]["seq"] >= 1
    acct = await node.ok("account", {"address": format_address(node.c.user.address)})
    assert acct["nonce"] == 1 and acct["next_nonce"] == 1
    recipient = await node.ok("account", {"address": "0x" + "42" * 20})
    assert recipient["balance"] == 5
    # GET routes answer the same methods
    r = await node.client.get("/block", params={"height": str(height)})
    assert r.json()["result"]["hash"] == block["hash"]


async def test_sync_and_async_broadcast_and_unconfirmed(node: Node) -> None:
    t1, t2 = node.c.tx(), node.c.tx()
    r1 = await node.ok("broadcast_tx_sync", {"tx": "0x" + t1.encoded.hex()})
    r2 = await node.ok("broadcast_tx_async", {"tx": "0x" + t2.encoded.hex()})
    assert r1["hash"] == "0x" + t1.hash.hex() and r2["hash"] == "0x" + t2.hash.hex()
    n = await node.ok("num_unconfirmed_txs")
    assert n["n_txs"] in (0, 1, 2)
    acct = await node.ok("account", {"address": format_address(node.c.user.address)})
    assert acct["next_nonce"] == 2
    with trio.fail_after(30):
        while True:
            try:
                await node.ok("tx", {"hash": r2["hash"]})
                break
            except AssertionError:
                await trio.sleep(0.1)


async def test_typed_rejections(node: Node) -> None:
    user = node.c.user
    good = dict(chain_id=CHAIN_ID, nonce=0, to=b"\x42" * 20, amount=1, fee=1, gas_limit=21_000)
    wrong = make_transaction(user, **{**good, "chain_id": CHAIN_ID + 1})  # type: ignore[arg-type]
    e = await node.err("broadcast_tx_sync", {"tx": "0x" + wrong.encoded.hex()})
    assert e["code"] == -32010 and e["message"].startswith("WRONG_CHAIN_ID")
    assert e["data"]["reason"] == "wrong_chain_id"
    raw = bytearray(make_transaction(user, **good).encoded)  # type: ignore[arg-type]
    raw[-1] ^= 1
    e = await node.err("broadcast_tx_sync", {"tx": "0x" + raw.hex()})
    assert e["code"] == -32010 and e["message"].startswith("BAD_SIGNATURE")
    # commit one, then the same nonce again is too low
    first = node.c.tx()
    await node.ok("broadcast_tx_commit", {"tx": "0x" + first.encoded.hex()})
    stale = make_transaction(user, **{**good, "amount": 2})  # type: ignore[arg-type]
    e = await node.err("broadcast_tx_sync", {"tx": "0x" + stale.encoded.hex()})
    assert e["message"].startswith("NONCE_TOO_LOW")
    assert b'phalanx_mempool_failed_txs_total{reason="nonce_too_low"} 1.0' in node.metrics.render()


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("broadcast_tx_sync", {"tx": "0xzz"}, -32602),
        ("broadcast_tx_sync", {"tx": 5}, -32602),
        ("broadcast_tx_sync", {"tx": "0x0102"}, -32010),
        ("broadcast_tx_sync", {"nope": "0x01"}, -32602),
        ("tx", {"hash": "0x1234"}, -32602),
        ("tx", {"hash": "0x" + "00" * 32}, -32001),
        ("block", {"height": -1}, -32602),
        ("block", {"height": "abc"}, -32602),
        ("block", {"height": 10**9}, -32001),
        ("commit", {"height": 0}, -32001),
        ("account", {"address": "0x12"}, -32602),
        ("no_such_method", None, -32601),
        ("broadcast_tx_commit", {"tx": "0x00", "timeout": "x"}, -32602),
    ],
)
async def test_bad_input_gets_clear_errors(node: Node, method: str, params: Any, code: int) -> None:
    e = await node.err(method, params)
    assert e["code"] == code, e
    assert e["message"]


async def test_oversized_body_is_refused(node: Node) -> None:
    r = await node.client.post("/", content=b"x" * 5000)
    assert r.status_code == 413 and r.json()["error"]["code"] == -32600


async def test_dump_consensus_state_net_info_and_metrics(node: Node) -> None:
    tx = node.c.tx()
    await node.ok("broadcast_tx_commit", {"tx": "0x" + tx.encoded.hex()})
    dump = await node.ok("dump_consensus_state")
    assert dump["engine"] == "pbft" and dump["state"]["last_executed"] >= 1
    info = await node.ok("net_info")
    assert info["n_peers"] == 0 and info["suspected"] == []
    text = (await node.client.get("/metrics")).text
    assert "phalanx_consensus_height" in text and "phalanx_mempool_size" in text


async def test_call_on_an_account_without_code(node: Node) -> None:
    res = await node.ok("call", {"to": "0x" + "42" * 20, "data": "0x"})
    assert res["success"] is True and res["return_data"] == "0x"


async def test_unsafe_methods_are_refused_unless_enabled_in_config(node: Node) -> None:
    app = node.c.driver(0).app
    future = make_transaction(node.c.user, chain_id=CHAIN_ID, nonce=50, to=b"\x42" * 20,
                              amount=1, fee=1, gas_limit=21_000)  # waits for nonces 0..49
    app.admit(future.encoded)
    for method, params in (("unsafe_flush_mempool", None),
                           ("unsafe_set_log_level", {"level": "debug"})):
        e = await node.err(method, params)
        assert e["code"] == -32003 and "rpc.unsafe = true" in e["message"], e
    assert future.hash in app.mempool  # refused: nothing changed

    unsafe = RpcNode(app, node.c.genesis,
                     NodeInfo("t", 0, "127.0.0.1:1", "127.0.0.1:2", unsafe=True))
    asgi = build_app(Dispatcher(unsafe.methods()), body_bytes_max=4096,
                     block_feed=CommitWaiters().block_feed, metrics=node.metrics.render)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi),
                                 base_url="http://node") as client:
        allowed = Node(node.c, client, node.metrics)
        assert await allowed.ok("unsafe_flush_mempool") == {"flushed": 1}
        assert future.hash not in app.mempool and len(app.mempool) == 0
        assert (await allowed.err("unsafe_set_log_level", {"level": "loud"}))["code"] == -32602
        try:
            assert await allowed.ok("unsafe_set_log_level", {"level": "error"}) == \
                {"log_level": "error"}
            assert logging.getLogger("phalanx").level == logging.ERROR
        finally:
            logging.getLogger("phalanx").setLevel(logging.NOTSET)


async def test_get_routes_answer_errors_with_a_matching_http_status(node: Node) -> None:
    """The real node's methods on GET: the status says what failed, the body still holds
    the JSON-RPC error."""
    app = node.c.driver(0).app
    tx = make_transaction(node.c.user, chain_id=CHAIN_ID, nonce=0, to=b"\x42" * 20,
                          amount=1, fee=1, gas_limit=21_000)
    cases = [
        ("/tx", {"hash": "0x" + "00" * 32}, 404, -32001),           # unknown transaction
        ("/block", {"height": "99999"}, 404, -32001),               # above the head
        ("/block", {"height": "-3"}, 400, -32602),
        ("/no_such_method", {}, 404, -32601),
        ("/unsafe_flush_mempool", {}, 403, -32003),
        ("/broadcast_tx_sync", {"tx": "0x" + bytes(tx.encoded)[:-1].hex()}, 400, -32010),
    ]
    for path, params, status, code in cases:
        r = await node.client.get(path, params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)
    ok = await node.client.get("/broadcast_tx_sync", params={"tx": "0x" + tx.encoded.hex()})
    assert ok.status_code == 200 and ok.json()["result"]["hash"] == "0x" + tx.hash.hex()
    assert tx.hash in app.mempool
