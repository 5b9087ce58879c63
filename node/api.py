"""The HTTP face of a node: JSON-RPC 2.0 at ``/``, GET routes, a block WebSocket, metrics.

Served by Hypercorn's Trio worker (see :func:`serve`). The methods themselves live in a
:class:`~node.jsonrpc.Dispatcher`; this module only speaks HTTP:

* ``POST /``                 JSON-RPC 2.0 (single or batch);
* ``GET /<method>?k=v``      the same methods with string params (``/status``,
  ``/block?height=5``, ``/broadcast_tx_sync?tx=0x...``) answered with the same JSON-RPC
  envelope, as users of BFT nodes expect;
* ``GET /websocket``         a WebSocket that streams every new block as a JSON message;
* ``GET /metrics``           Prometheus text format.

Request bodies are bounded (``body_bytes_max``): a larger body is refused with HTTP 413 and
a JSON-RPC error before it is read in full. Every error is JSON with a code and a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from node.jsonrpc import INVALID_REQUEST, Dispatcher, RpcError, error_response

__all__ = ["BlockFeed", "build_app"]

log = logging.getLogger(__name__)

#: Produces an async iterator of JSON-ready block summaries for one WebSocket subscriber.
BlockFeed = Callable[[], AsyncIterator[dict[str, Any]]]


class _BodyTooLarge(Exception):
    pass


#: HTTP status of an error on a GET route, by JSON-RPC code (``curl -f`` and HTTP clients
#: see the failure; the body still carries the JSON-RPC error). Unlisted codes: 500.
GET_ERROR_STATUS: dict[int, int] = {
    -32700: 400, -32600: 400, -32602: 400,   # the request is wrong
    -32601: 404, -32001: 404,                # no such method; no such block or transaction
    -32003: 403,                             # unsafe method refused by the config
    -32010: 400,                             # the transaction was refused (but see below)
    -32002: 504,                             # broadcast_tx_commit gave up waiting
    -32603: 500,
}


def get_error_status(e: RpcError) -> int:
    """The HTTP status for ``e`` on a GET route: :data:`GET_ERROR_STATUS`, except that a
    transaction refused because the pool is full is 503 (retry later), not 400."""
    if isinstance(e.data, dict) and e.data.get("reason") == "pool_full":
        return 503
    return GET_ERROR_STATUS.get(e.code, 500)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(
    dispatcher: Dispatcher,
    *,
    body_bytes_max: int,
    block_feed: BlockFeed | None = None,
    metrics: Callable[[], bytes] | None = None,
    websocket_clients_max: int = 64,
) -> Starlette:
    """Build the ASGI application for one node."""
    ws_clients = 0

    async def jsonrpc(request: Request) -> Response:
        try:
            body = await _read_body(request, body_bytes_max)
        except _BodyTooLarge:
            return JSONResponse(
                error_response(
                    None,
                    RpcError(INVALID_REQUEST, f"request body larger than {body_bytes_max} bytes"),
                ),
                status_code=413,
            )
        answer = await dispatcher.handle_body(body)
        if answer is None:
            return Response(status_code=204)
        return JSONResponse(answer)

    async def get_method(request: Request) -> Response:
        method = request.path_params["method"]
        params = dict(request.query_params)
        try:
            result = await dispatcher.call(method, params or None)
        except RpcError as e:
            return JSONResponse(error_response(-1, e), status_code=get_error_status(e))
        return JSONResponse({"jsonrpc": "2.0", "id": -1, "result": result})

    async def metrics_route(request: Request) -> Response:
        if metrics is None:
            return Response("metrics are not enabled\n", status_code=404, media_type="text/plain")
        return Response(metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def websocket_route(ws: WebSocket) -> None:
        nonlocal ws_clients
        if block_feed is None or ws_clients >= websocket_clients_max:
            await ws.close(code=1013)
            return
        ws_clients += 1
        try:
            await ws.accept()
            async for block in block_feed():
                await ws.send_text(json.dumps(block))
        except WebSocketDisconnect:
            pass
        finally:
            ws_clients -= 1

    return Starlette(
        routes=[
            Route("/", jsonrpc, methods=["POST"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            WebSocketRoute("/websocket", websocket_route),
            Route("/{method:str}", get_method, methods=["GET"]),
        ]
    )
