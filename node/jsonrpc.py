"""JSON-RPC 2.0 dispatch, independent of HTTP.

Turns a request body into a response body: parse, validate the envelope, look the method up,
bind ``params`` (by name or by position) to the handler's keyword arguments, and map errors
to the standard codes users of node APIs know:

=======  =====================================================
-32700   parse error (the body is not JSON)
-32600   invalid request (not a JSON-RPC 2.0 request object)
-32601   method not found
-32602   invalid params (wrong names, types or values)
-32603   internal error (a bug: logged with its traceback)
-32000+  application errors (:class:`RpcError` raised by a handler, e.g. a rejected tx)
=======  =====================================================

Batches (a JSON array) are answered with an array; notifications (no ``id``) get no entry.
Handlers are ``async def name(**params) -> JSON value``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "Dispatcher",
    "RpcError",
]

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
BATCH_MAX = 100

Handler = Callable[..., Awaitable[Any]]


class RpcError(Exception):
    """Raised by a handler to answer with a JSON-RPC error a person can act on."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def error_response(id_: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error.to_json()}


class Dispatcher:
    """Maps method names to async handlers and answers JSON-RPC bodies."""

    def __init__(self, methods: Mapping[str, Handler]) -> None:
        self.methods = dict(methods)
        self._signatures: dict[str, tuple[Handler, inspect.Signature]] = {}

    async def handle_body(self, body: bytes) -> dict[str, Any] | list[dict[str, Any]] | None:
        """Answer a raw request body; ``None`` means nothing to send (only notifications)."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return error_response(None, RpcError(PARSE_ERROR, f"parse error: body is not JSON ({e})"))
        if isinstance(doc, list):
            if not doc:
                return error_response(None, RpcError(INVALID_REQUEST, "invalid request: empty batch"))
            if len(doc) > BATCH_MAX:
                return error_response(
                    None, RpcError(INVALID_REQUEST, f"invalid request: batch larger than {BATCH_MAX}")
                )
            answers = [await self.handle_one(item) for item in doc]
            return [a for a in answers if a is not None] or None
        return await self.handle_one(doc)

    async def handle_one(self, req: Any) -> dict[str, Any] | None:
        if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or not isinstance(
            req.get("method"), str
        ):
            return error_response(
                req.get("id") if isinstance(req, dict) else None,
                RpcError(
                    INVALID_REQUEST,
                    'invalid request: expected {"jsonrpc": "2.0", "method": ..., "id": ...}',
                ),
            )
        id_ = req.get("id")
        notification = "id" not in req
        if id_ is not None and not isinstance(id_, str | int):
            return error_response(None, RpcError(INVALID_REQUEST, "invalid request: bad id"))
        try:
            result = await self.call(req["method"], req.get("params"))
        except RpcError as e:
            return None if notification else error_response(id_, e)
        if notification:
            return None
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    async def call(self, method: str, params: Any) -> Any:
        """Call ``method`` with JSON params (dict, list or None); raise RpcError on failure."""
        handler = self.methods.get(method)
        if handler is None:
            raise RpcError(
                METHOD_NOT_FOUND,
                f"method not found: {method!r} (available: {', '.join(sorted(self.methods))})",
            )
        cached = self._signatures.get(method)
        if cached is None or cached[0] is not handler:
            # inspect.signature costs ~20 µs: once per method, not once per call
            cached = self._signatures[method] = (handler, inspect.signature(handler))
        sig = cached[1]
        try:
            if params is None:
                bound = sig.bind()
            elif isinstance(params, dict):
                bound = sig.bind(**params)
            elif isinstance(params, list):
                bound = sig.bind(*params)
            else:
                raise TypeError("params must be an object or an array")
        except TypeError as e:
            raise RpcError(INVALID_PARAMS, f"invalid params for {method}: {e}") from None
        try:
            return await handler(*bound.args, **bound.kwargs)
        except RpcError:
            raise
        except ValueError as e:
            # Handlers parse their params (hex, integers, addresses) and let ValueError say
            # what was wrong with them.
            raise RpcError(INVALID_PARAMS, f"invalid params for {method}: {e}") from None
        except Exception as e:
            log.exception("internal error in RPC method %s", method)
            raise RpcError(INTERNAL_ERROR, f"internal error in {method}: {type(e).__name__}") from e
