"""The JSON-RPC client of a Phalanx node: one or several nodes, load balancing, sessions.

Theory of operation
-------------------
A client holds a list of node URLs. Every call is a JSON-RPC 2.0 POST to one of them,
chosen by a :class:`Balancer` (pure logic, shared by the sync and the async client):

* ``round-robin`` (default): the next URL in turn;
* ``least-outstanding``: the URL with the fewest requests in flight (ties: lowest index),
  useful when one client object is shared by many concurrent tasks;
* ``sticky``: consistent hashing of a key (the sender's address for transactions) onto a
  ring of ``VIRTUAL_NODES`` points per URL, so one sender's transactions reach one node in
  nonce order, and removing a URL moves only the keys that were on it.

A connection failure (refused, reset, DNS) marks the URL and the call fails over to the next
candidate; only when none answers does it raise :class:`NodeUnreachableError` ("cannot reach
node at URL"). A JSON-RPC error answer raises :class:`RpcClientError` with the server's code
and message, and is never retried (the node did answer).

Session guarantees: the client remembers the highest chain height it has seen
(``height_seen``: from ``status``, from a committed transaction, from a block) and each
node's last known height. A *read* (``account``, ``call``, ``block``, ``tx``, ...) is sent only
to a node whose head is at least ``height_seen``; a node not known to be there is asked for
``status`` first; when every node is behind, the client polls until one catches up or
``catch_up_timeout`` passes. So reads are monotonic, and a read after ``tx send --wait``
sees the write (read-your-writes), whichever node answers.

Called by the CLI (``phalanx tx``, ``phalanx query``), the testnet tools and the e2e tests.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx

__all__ = [
    "READ_METHODS",
    "STRATEGIES",
    "UNREACHABLE",
    "AsyncRpcClient",
    "Balancer",
    "NodeUnreachableError",
    "RpcClient",
    "RpcClientError",
    "parse_urls",
    "result_height",
]

Strategy = Literal["round-robin", "least-outstanding", "sticky"]
STRATEGIES: tuple[str, ...] = ("round-robin", "least-outstanding", "sticky")
#: Ring points per URL for the sticky strategy.
VIRTUAL_NODES = 64
#: The ``code`` of :class:`NodeUnreachableError` (outside JSON-RPC's reserved range).
UNREACHABLE = -1
#: The ``code`` of an answer that is not a JSON-RPC response.
BAD_RESPONSE = -2
#: Largest response body the client accepts.
RESPONSE_BYTES_MAX = 64 * 1024 * 1024
#: Methods whose answer depends on the node's head: subject to monotonic reads.
READ_METHODS = frozenset(
    {"account", "call", "block", "tx", "commit", "validators", "unconfirmed_txs",
     "num_unconfirmed_txs"}
)  # fmt: skip


class RpcClientError(Exception):
    """Raised when a node answers a call with a JSON-RPC error, or with something invalid.

    Attributes:
        code: the JSON-RPC error code (e.g. -32601), or UNREACHABLE / BAD_RESPONSE.
        message: the node's message.
        data: the error's ``data`` member, if any.
        url: the node that answered.
    """

    def __init__(self, code: int, message: str, *, data: Any = None, url: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.url = url


class NodeUnreachableError(RpcClientError):
    """Raised when no node of the list could be reached (connection refused, reset, timeout)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(UNREACHABLE, f"cannot reach node at {url}: {reason}", url=url)


def parse_urls(text: str | Sequence[str]) -> list[str]:
    """Split ``--node`` values (comma-separated) into URLs; ``host:port`` gets ``http://``.

    Raises:
        ValueError: no URL at all.
    """
    parts = [text] if isinstance(text, str) else list(text)
    urls: list[str] = []
    for part in parts:
        for item in part.split(","):
            item = item.strip()
            if not item:
                continue
            if "://" not in item:
                item = "http://" + item
            urls.append(item.rstrip("/"))
    if not urls:
        raise ValueError("no node URL given")
    return urls


def result_height(result: Any) -> int | None:
    """The chain height an answer reports, if it reports one.

    Looks for ``height`` / ``latest_block_height`` at the top level or in ``sync_info``,
    ``head``, ``block`` or ``header`` (ints or decimal strings, as BFT node APIs write them).
    """
    if not isinstance(result, dict):
        return None
    for key in ("latest_block_height", "height"):
        value = _as_height(result.get(key))
        if value is not None:
            return value
    for sub in ("sync_info", "head", "block", "header"):
        inner = result.get(sub)
        if isinstance(inner, dict):
            found = result_height(inner)
            if found is not None:
                return found
    return None


def _as_height(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class Balancer:
    """Chooses a URL per call; sans-IO (no clock, no sockets), shared by both clients.

    Args:
        count: number of URLs.
        strategy: one of :data:`STRATEGIES`.
        names: the URLs (hashed onto the ring for ``sticky``).
    """

    def __init__(self, names: Sequence[str], strategy: str = "round-robin") -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
        if not names:
            raise ValueError("a balancer needs at least one URL")
        self.names = list(names)
        self.strategy = strategy
        self.outstanding = [0] * len(names)
        self._next = 0
        ring = []
        for i, name in enumerate(self.names):
            for v in range(VIRTUAL_NODES):
                ring.append((_ring_point(f"{name}#{v}".encode()), i))
        ring.sort()
        self._ring_points = [p for p, _ in ring]
        self._ring_owner = [i for _, i in ring]

    def order(self, key: bytes | None = None) -> list[int]:
        """Candidate URL indexes for one call, best first (every index appears once)."""
        n = len(self.names)
        if self.strategy == "least-outstanding":
            return sorted(range(n), key=lambda i: (self.outstanding[i], i))
        if self.strategy == "sticky" and key is not None:
            return self._ring_walk(key)
        first = self._next % n
        self._next = (self._next + 1) % n
        return [(first + k) % n for k in range(n)]

    def _ring_walk(self, key: bytes) -> list[int]:
        start = bisect.bisect_left(self._ring_points, _ring_point(key))
        seen: list[int] = []
        size = len(self._ring_points)
        for k in range(size):
            owner = self._ring_owner[(start + k) % size]
            if owner not in seen:
                seen.append(owner)
                if len(seen) == len(self.names):
                    break
        return seen

    def started(self, index: int) -> None:
        """A request to ``index`` is now in flight."""
        self.outstanding[index] += 1

    def finished(self, index: int) -> None:
        """A request to ``index`` ended (answer or error)."""
        self.outstanding[index] -= 1


def _ring_point(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


class _Session:
    """State shared by the sync and async clients: URLs, balancer, heights seen."""

    def __init__(
        self, urls: Sequence[str] | str, strategy: str, catch_up_timeout: float
    ) -> None:
        self.urls = parse_urls(urls)
        self.balancer = Balancer(self.urls, strategy)
        self.catch_up_timeout = catch_up_timeout
        self.height_seen = 0
        self.node_heights: list[int | None] = [None] * len(self.urls)
        self._ids = itertools.count(1)

    def request(self, method: str, params: dict[str, Any] | None) -> bytes:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self._ids), "method": method}
        if params is not None:
            body["params"] = params
        return json.dumps(body).encode()

    def answer(self, index: int, method: str, response: httpx.Response) -> Any:
        url = self.urls[index]
        raw = response.content
        if len(raw) > RESPONSE_BYTES_MAX:
            raise RpcClientError(BAD_RESPONSE, f"{url}: response larger than {RESPONSE_BYTES_MAX} bytes", url=url)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise RpcClientError(
                BAD_RESPONSE,
                f"{url}: HTTP {response.status_code} answer is not JSON: {raw[:120]!r}",
                url=url,
            ) from None
        if not isinstance(doc, dict) or ("result" not in doc and "error" not in doc):
            raise RpcClientError(BAD_RESPONSE, f"{url}: not a JSON-RPC response: {str(doc)[:120]}", url=url)
        err = doc.get("error")
        if err is not None:
            if not isinstance(err, dict):
                raise RpcClientError(BAD_RESPONSE, f"{url}: malformed error: {err!r}", url=url)
            code = err.get("code")
            raise RpcClientError(
                code if isinstance(code, int) and not isinstance(code, bool) else BAD_RESPONSE,
                str(err.get("message", "")),
                data=err.get("data"),
                url=url,
            )
        result = doc["result"]
        self.observe(index, method, result)
        return result

    def observe(self, index: int, method: str, result: Any) -> None:
        """Learn heights from an answer: a node never reports a height above its own head.

        ``status``, ``account``, ``call`` report the head; ``block``, ``tx``, ``commit``,
        ``broadcast_tx_commit`` report a committed block's height. Either way the node has
        reached it, and so has the chain.
        """
        height = result_height(result)
        if height is None:
            return
        known = self.node_heights[index]
        self.node_heights[index] = height if known is None else max(known, height)
        self.height_seen = max(self.height_seen, height)

    def fresh(self, index: int) -> bool:
        known = self.node_heights[index]
        return self.height_seen == 0 or (known is not None and known >= self.height_seen)


def _connect_reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]


class RpcClient:
    """Synchronous JSON-RPC client over one or several nodes.

    Args:
        urls: node URLs (or one comma-separated string).
        timeout: seconds per HTTP request.
        strategy: ``round-robin``, ``least-outstanding`` or ``sticky``.
        catch_up_timeout: how long a read waits for a node to reach ``height_seen``.
        transport: an httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        urls: Sequence[str] | str,
        *,
        timeout: float = 10.0,
        strategy: str = "round-robin",
        catch_up_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.session = _Session(urls, strategy, catch_up_timeout)
        self._http = httpx.Client(timeout=timeout, transport=transport)

    @property
    def urls(self) -> list[str]:
        return self.session.urls

    @property
    def height_seen(self) -> int:
        return self.session.height_seen

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        key: bytes | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` on one node and return its ``result``.

        Args:
            method: the JSON-RPC method.
            params: named parameters.
            key: the sticky-strategy key (a sender address), if any.
            timeout: overrides the per-request timeout (e.g. for broadcast_tx_commit).

        Raises:
            RpcClientError: the node answered with an error or with invalid JSON-RPC.
            NodeUnreachableError: no node could be reached.
        """
        order = self.session.balancer.order(key)
        last: NodeUnreachableError | None = None
        while order:
            if method in READ_METHODS:
                order = self._fresh_order(order)
            index = order.pop(0)
            try:
                return self._post(index, method, params, timeout)
            except NodeUnreachableError as e:
                last = e
                self.session.node_heights[index] = None  # unknown until it answers again
        assert last is not None
        raise last

    def _post(self, index: int, method: str, params: dict[str, Any] | None, timeout: float | None) -> Any:
        s = self.session
        url = s.urls[index]
        s.balancer.started(index)
        try:
            kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            response = self._http.post(
                url + "/", content=s.request(method, params),
                headers={"content-type": "application/json"}, **kwargs,
            )  # fmt: skip
        except (httpx.TransportError, OSError) as e:
            raise NodeUnreachableError(url, _connect_reason(e)) from None
        finally:
            s.balancer.finished(index)
        return s.answer(index, method, response)

    def _fresh_order(self, order: list[int]) -> list[int]:
        """Reorder candidates so that nodes at ``height_seen`` come first (monotonic reads)."""
        s = self.session
        if s.height_seen == 0:
            return order
        deadline = time.monotonic() + s.catch_up_timeout
        delay = 0.05
        while True:
            reachable = []
            for index in order:
                if not s.fresh(index):
                    try:
                        self._post(index, "status", None, None)
                    except RpcClientError:
                        continue
                reachable.append(index)
                if s.fresh(index):
                    return [index] + [i for i in order if i != index]
            if not reachable:
                return order  # let the call itself report the unreachable nodes
            if time.monotonic() >= deadline:
                best = max(reachable, key=lambda i: s.node_heights[i] or 0)
                raise RpcClientError(
                    BAD_RESPONSE,
                    f"no node has reached height {s.height_seen} within "
                    f"{s.catch_up_timeout:g} s (best: {s.urls[best]} at "
                    f"{s.node_heights[best]})",
                    url=s.urls[best],
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    # -- named methods ---------------------------------------------------------------------

    def status(self) -> Any:
        return self.call("status")

    def account(self, address: str) -> Any:
        return self.call("account", {"address": address})

    def block(self, height: int | None = None) -> Any:
        return self.call("block", None if height is None else {"height": height})

    def tx(self, tx_hash: str) -> Any:
        return self.call("tx", {"hash": tx_hash})

    def broadcast_tx_sync(self, tx: bytes, *, key: bytes | None = None) -> Any:
        return self.call("broadcast_tx_sync", {"tx": "0x" + tx.hex()}, key=key)

    def broadcast_tx_commit(self, tx: bytes, *, key: bytes | None = None, wait: float = 30.0) -> Any:
        """Submit and wait (up to ``wait`` seconds at the node) until the tx is committed."""
        return self.call("broadcast_tx_commit", {"tx": "0x" + tx.hex(), "timeout": wait},
                         key=key, timeout=wait + 10)

    def contract_call(self, to: str, data: bytes, **extra: Any) -> Any:
        return self.call("call", {"to": to, "data": "0x" + data.hex(), **extra})


class AsyncRpcClient:
    """The same client for async code (Trio through httpx's anyio backend).

    Args: as :class:`RpcClient`, with an ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        urls: Sequence[str] | str,
        *,
        timeout: float = 10.0,
        strategy: str = "round-robin",
        catch_up_timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.session = _Session(urls, strategy, catch_up_timeout)
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    @property
    def height_seen(self) -> int:
        return self.session.height_seen

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        key: bytes | None = None,
        timeout: float | None = None,
    ) -> Any:
        """As :meth:`RpcClient.call`."""
        order = self.session.balancer.order(key)
        last: NodeUnreachableError | None = None
        while order:
            if method in READ_METHODS:
                order = await self._fresh_order(order)
            index = order.pop(0)
            try:
                return await self._post(index, method, params, timeout)
            except NodeUnreachableError as e:
                last = e
                self.session.node_heights[index] = None  # unknown until it answers again
        assert last is not None
        raise last

    async def _post(
        self, index: int, method: str, params: dict[str, Any] | None, timeout: float | None
    ) -> Any:
        s = self.session
        url = s.urls[index]
        s.balancer.started(index)
        try:
            kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            response = await self._http.post(
                url + "/", content=s.request(method, params),
                headers={"content-type": "application/json"}, **kwargs,
            )  # fmt: skip
        except (httpx.TransportError, OSError) as e:
            raise NodeUnreachableError(url, _connect_reason(e)) from None
        finally:
            s.balancer.finished(index)
        return s.answer(index, method, response)

    async def _fresh_order(self, order: list[int]) -> list[int]:
        import trio

        s = self.session
        if s.height_seen == 0:
            return order
        with trio.move_on_after(s.catch_up_timeout):
            delay = 0.05
            while True:
                reachable = False
                for index in order:
                    if not s.fresh(index):
                        try:
                            await self._post(index, "status", None, None)
                        except RpcClientError:
                            continue
                    reachable = True
                    if s.fresh(index):
                        return [index] + [i for i in order if i != index]
                if not reachable:
                    return order
                await trio.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise RpcClientError(
            BAD_RESPONSE,
            f"no node has reached height {s.height_seen} within {s.catch_up_timeout:g} s",
        )

    # -- named methods ---------------------------------------------------------------------

    async def status(self) -> Any:
        return await self.call("status")

    async def account(self, address: str) -> Any:
        return await self.call("account", {"address": address})

    async def block(self, height: int | None = None) -> Any:
        return await self.call("block", None if height is None else {"height": height})

    async def tx(self, tx_hash: str) -> Any:
        return await self.call("tx", {"hash": tx_hash})

    async def broadcast_tx_sync(self, tx: bytes, *, key: bytes | None = None) -> Any:
        return await self.call("broadcast_tx_sync", {"tx": "0x" + tx.hex()}, key=key)

    async def broadcast_tx_commit(
        self, tx: bytes, *, key: bytes | None = None, wait: float = 30.0
    ) -> Any:
        """As :meth:`RpcClient.broadcast_tx_commit`."""
        return await self.call("broadcast_tx_commit", {"tx": "0x" + tx.hex(), "timeout": wait},
                               key=key, timeout=wait + 10)  # fmt: skip

    async def contract_call(self, to: str, data: bytes, **extra: Any) -> Any:
        return await self.call("call", {"to": to, "data": "0x" + data.hex(), **extra})
