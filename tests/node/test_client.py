"""The RPC client against fake nodes (httpx.MockTransport): envelope, errors, failover,
load-balancing strategies and session guarantees (monotonic reads)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest

from node.client import (
    BAD_RESPONSE,
    UNREACHABLE,
    AsyncRpcClient,
    Balancer,
    NodeUnreachableError,
    RpcClient,
    RpcClientError,
    parse_urls,
    result_height,
)


class FakeNodes:
    """Several fake nodes behind one transport, keyed by host; each has a height."""

    def __init__(self, heights: dict[str, int], down: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.heights = dict(heights)
        self.down = set(down)
        self.calls: list[tuple[str, str, Any]] = []
        self.grow_on_status: dict[str, int] = {}

    def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        body = json.loads(request.content)
        method, params, id_ = body["method"], body.get("params"), body["id"]
        assert body["jsonrpc"] == "2.0"
        self.calls.append((host, method, params))
        if method == "status":
            self.heights[host] += self.grow_on_status.get(host, 0)
            result: Any = {"chain_id": 7, "sync_info": {"latest_block_height": str(self.heights[host])}}
        elif method == "account":
            result = {"address": params["address"], "balance": 5, "nonce": 0, "seen_by": host}
        elif method == "broadcast_tx_commit":
            self.heights[host] += 1
            result = {"hash": "0xab", "height": self.heights[host]}
        elif method == "boom":
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": id_, "error": {
                "code": -32001, "message": "NONCE_TOO_LOW: nonce 0 is used", "data": {"reason": "nonce_too_low"}}})
        elif method == "html":
            return httpx.Response(502, text="<html>bad gateway</html>")
        else:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": id_, "error": {
                "code": -32601, "message": f"method not found: {method}"}})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": id_, "result": result})

    def client(self, urls: str, **kw: Any) -> RpcClient:
        return RpcClient(urls, transport=httpx.MockTransport(self.handler), **kw)


def test_call_posts_a_jsonrpc_request_and_returns_the_result() -> None:
    nodes = FakeNodes({"a": 3})
    with nodes.client("http://a:1") as c:
        result = c.account("0x" + "11" * 20)
    assert result["balance"] == 5
    assert nodes.calls == [("a", "account", {"address": "0x" + "11" * 20})]


def test_error_answer_raises_with_code_message_and_data() -> None:
    nodes = FakeNodes({"a": 3})
    with nodes.client("a:1") as c, pytest.raises(RpcClientError) as err:
        c.call("boom")
    assert err.value.code == -32001
    assert err.value.message.startswith("NONCE_TOO_LOW")
    assert err.value.data == {"reason": "nonce_too_low"}
    with nodes.client("a:1") as c, pytest.raises(RpcClientError) as err:
        c.call("nope")
    assert err.value.code == -32601


def test_non_jsonrpc_answer_is_a_clear_error() -> None:
    nodes = FakeNodes({"a": 3})
    with nodes.client("a:1") as c, pytest.raises(RpcClientError) as err:
        c.call("html")
    assert err.value.code == BAD_RESPONSE
    assert "HTTP 502" in err.value.message and "not JSON" in err.value.message


def test_unreachable_node_names_its_url() -> None:
    nodes = FakeNodes({"a": 3}, down={"a"})
    with nodes.client("http://a:9") as c, pytest.raises(NodeUnreachableError) as err:
        c.status()
    assert err.value.code == UNREACHABLE
    assert str(err.value).startswith("cannot reach node at http://a:9")


def test_real_refused_connection_is_unreachable() -> None:
    with RpcClient("http://127.0.0.1:1", timeout=2) as c, pytest.raises(NodeUnreachableError) as err:
        c.status()
    assert "cannot reach node at http://127.0.0.1:1" in str(err.value)


def test_a_down_node_fails_over_to_the_next() -> None:
    nodes = FakeNodes({"a": 3, "b": 3}, down={"a"})
    with nodes.client("a:1,b:1") as c:
        for _ in range(4):
            assert c.status()["chain_id"] == 7
    assert [h for h, _, _ in nodes.calls] == ["b"] * 4


def test_parse_urls_splits_commas_and_adds_scheme() -> None:
    assert parse_urls("a:1, http://b:2/ ,") == ["http://a:1", "http://b:2"]
    assert parse_urls(["a:1,b:2", "c:3"]) == ["http://a:1", "http://b:2", "http://c:3"]
    with pytest.raises(ValueError):
        parse_urls(" , ")


@pytest.mark.parametrize(
    ("result", "height"),
    [
        ({"height": 4}, 4),
        ({"sync_info": {"latest_block_height": "12"}}, 12),
        ({"block": {"header": {"height": 9}}}, 9),
        ({"height": True}, None),
        ({"height": -1}, None),
        ([1, 2], None),
        ({"hash": "0x"}, None),
    ],
)
def test_result_height(result: Any, height: int | None) -> None:
    assert result_height(result) == height


def test_round_robin_spreads_calls_evenly() -> None:
    nodes = FakeNodes({"a": 1, "b": 1, "c": 1})
    with nodes.client("a:1,b:1,c:1") as c:
        for _ in range(9):
            c.call("status")
    assert Counter(h for h, _, _ in nodes.calls) == {"a": 3, "b": 3, "c": 3}


def test_least_outstanding_prefers_the_idlest_node() -> None:
    b = Balancer(["a", "b", "c"], "least-outstanding")
    b.started(0)
    b.started(0)
    b.started(2)
    assert b.order()[0] == 1
    b.started(1)
    b.started(1)
    assert b.order() == [2, 0, 1]
    b.finished(0)
    b.finished(0)
    assert b.order()[0] == 0


def test_sticky_maps_one_sender_to_one_node_and_spreads_senders() -> None:
    names = ["http://a:1", "http://b:1", "http://c:1"]
    b = Balancer(names, "sticky")
    keys = [i.to_bytes(2, "big") * 10 for i in range(300)]
    first = {k: b.order(k)[0] for k in keys}
    assert all(b.order(k)[0] == first[k] for k in keys)  # stable
    share = Counter(first.values())
    assert set(share) == {0, 1, 2} and min(share.values()) > 40
    assert sorted(b.order(keys[0])) == [0, 1, 2]  # every node is a fallback


def test_sticky_removing_a_node_moves_only_its_keys() -> None:
    keys = [bytes([i, 7]) * 10 for i in range(200)]
    full = Balancer(["a", "b", "c"], "sticky")
    less = Balancer(["a", "c"], "sticky")
    moved = 0
    for k in keys:
        before = full.names[full.order(k)[0]]
        after = less.names[less.order(k)[0]]
        if before != "b":
            assert after == before
        else:
            moved += 1
    assert moved > 0


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        Balancer(["a"], "random")


def test_reads_skip_a_node_behind_the_height_seen() -> None:
    nodes = FakeNodes({"a": 10, "b": 4})
    with nodes.client("a:1,b:1", catch_up_timeout=0.2) as c:
        c.status()  # goes to a: height_seen = 10
        assert c.height_seen == 10
        seen_by = {c.account("0x" + "22" * 20)["seen_by"] for _ in range(6)}
    assert seen_by == {"a"}


def test_read_your_writes_waits_for_a_lagging_node_to_catch_up() -> None:
    nodes = FakeNodes({"a": 10, "b": 5})
    nodes.grow_on_status = {"b": 2}
    with nodes.client("a:1,b:1", catch_up_timeout=5) as c:
        c.broadcast_tx_commit(b"\x01")  # round-robin: a commits it at height 11
        assert c.height_seen == 11
        nodes.down.add("a")  # the writer's node crashes before the read
        assert c.account("0x" + "22" * 20)["seen_by"] == "b"
    b_statuses = [m for h, m, _ in nodes.calls if h == "b" and m == "status"]
    assert len(b_statuses) == 3  # b seen at 7, 9, then 11
    assert nodes.heights["b"] == 11


def test_read_gives_up_clearly_when_no_node_catches_up() -> None:
    nodes = FakeNodes({"a": 10, "b": 4})
    with nodes.client("a:1,b:1", catch_up_timeout=0.2) as c:
        c.status()  # a: height_seen = 10
        nodes.down.add("a")
        with pytest.raises(RpcClientError, match="no node has reached height 10"):
            c.account("0x" + "22" * 20)


async def test_async_client_under_trio_balances_and_reads_monotonically() -> None:
    nodes = FakeNodes({"a": 8, "b": 2})
    async with AsyncRpcClient(
        "a:1,b:1", transport=httpx.MockTransport(nodes.handler), catch_up_timeout=0.2
    ) as c:
        assert (await c.status())["chain_id"] == 7
        assert c.height_seen == 8
        for _ in range(3):
            assert (await c.account("x"))["seen_by"] == "a"
        assert (await c.broadcast_tx_commit(b"\x01"))["height"] == 9
        assert c.height_seen == 9
        with pytest.raises(RpcClientError) as err:
            await c.call("boom")
    assert err.value.code == -32001


async def test_async_client_reports_unreachable() -> None:
    nodes = FakeNodes({"a": 1}, down={"a"})
    async with AsyncRpcClient("a:5", transport=httpx.MockTransport(nodes.handler)) as c:
        with pytest.raises(NodeUnreachableError, match="cannot reach node at http://a:5"):
            await c.call("status")
