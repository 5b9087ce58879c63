"""The HTTP layer: JSON-RPC envelope, error codes, GET routes, body bound, metrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from node.api import build_app
from node.jsonrpc import Dispatcher, RpcError


async def _status() -> dict[str, Any]:
    return {"height": 7}


async def _block(height: str | int) -> dict[str, Any]:
    h = int(height)
    if h < 0:
        raise ValueError("height must be >= 0")
    if h > 7:
        raise RpcError(-32001, f"block {h} is not committed yet (head is 7)")
    return {"height": h}


async def _boom() -> None:
    raise KeyError("bug")


def _client(body_bytes_max: int = 1024) -> httpx.AsyncClient:
    dispatcher = Dispatcher({"status": _status, "block": _block, "boom": _boom})
    app = build_app(dispatcher, body_bytes_max=body_bytes_max, metrics=lambda: b"phalanx_up 1\n")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


async def _post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post("/", content=content, headers={"content-type": "application/json"})


async def test_jsonrpc_call_returns_result_with_same_id() -> None:
    async with _client() as c:
        r = await _post(c, {"jsonrpc": "2.0", "id": 3, "method": "block", "params": {"height": 2}})
    assert r.json() == {"jsonrpc": "2.0", "id": 3, "result": {"height": 2}}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", -32700),
        ({"id": 1, "method": "status"}, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "nope"}, -32601),
        ({"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"h": 1}}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": -1}}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": "block", "params": {"height": 99}}, -32001),
        ({"jsonrpc": "2.0", "id": 1, "method": "boom"}, -32603),
        ([], -32600),
    ],
)
async def test_errors_carry_standard_codes_and_messages(body: Any, code: int) -> None:
    async with _client() as c:
        r = await _post(c, body)
    err = r.json()["error"]
    assert err["code"] == code
    assert isinstance(err["message"], str) and err["message"]


async def test_batch_answers_each_request_and_skips_notifications() -> None:
    async with _client() as c:
        r = await _post(
            c,
            [
                {"jsonrpc": "2.0", "id": 1, "method": "status"},
                {"jsonrpc": "2.0", "method": "status"},
                {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            ],
        )
    answers = r.json()
    assert [a["id"] for a in answers] == [1, 2]
    assert answers[0]["result"] == {"height": 7}
    assert answers[1]["error"]["code"] == -32601


async def test_get_routes_take_query_params() -> None:
    async with _client() as c:
        ok = await c.get("/block", params={"height": "3"})
        missing = await c.get("/nope")
        bad = await c.get("/block", params={"height": "x"})
    assert ok.json()["result"] == {"height": 3}
    assert missing.status_code == 404 and missing.json()["error"]["code"] == -32601
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32602


async def test_oversized_body_is_refused_before_dispatch() -> None:
    async with _client(body_bytes_max=100) as c:
        r = await _post(c, {"jsonrpc": "2.0", "id": 1, "method": "status", "pad": "x" * 200})
    assert r.status_code == 413
    assert "larger than 100 bytes" in r.json()["error"]["message"]


async def test_metrics_served_as_prometheus_text() -> None:
    async with _client() as c:
        r = await c.get("/metrics")
    assert r.status_code == 200 and b"phalanx_up 1" in r.content


@pytest.mark.parametrize(("code", "data", "status"), [
    (-32010, {"reason": "nonce_too_low"}, 400),
    (-32010, {"reason": "pool_full"}, 503),          # retry later, not "your request is bad"
    (-32002, {"hash": "0x01"}, 504),
    (-32003, None, 403),
    (-32099, None, 500),                             # a code without an entry
])
async def test_get_error_status_by_code(code: int, data: Any, status: int) -> None:
    async def fails() -> None:
        raise RpcError(code, "no", data)

    app = build_app(Dispatcher({"fails": fails}), body_bytes_max=1024)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://node") as c:
        r = await c.get("/fails")
        posted = await _post(c, {"jsonrpc": "2.0", "id": 1, "method": "fails"})
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert posted.status_code == 200 and posted.json()["error"]["code"] == code  # POST: always 200
