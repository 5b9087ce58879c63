"""The fault proxy: every directed p2p link i->j of a local testnet through its own port.

Theory of operation
-------------------
With ``phalanx testnet up --proxy``, node ``i``'s config lists peer ``j`` at the proxy port
of link ``i->j``; the proxy forwards that connection to node ``j``'s real p2p port. Bytes
are encrypted end to end by the nodes, so the proxy never reads or alters them: it only

* **partitions**: a blocked link refuses new connections (accept, then close) and its live
  connections are closed at once;
* **delays**: each chunk is held until ``received + delay`` before it is written, in order
  (so bandwidth is kept and only latency grows);
* **loses**: with probability ``P`` per chunk the connection is closed instead of the chunk
  being forwarded (an encrypted, framed stream cannot lose bytes in the middle), and a new
  connection is refused with the same probability.

Control is a file the proxy watches: ``DIR/proxy_rules.json`` holds :class:`Rules` and a
version; the proxy polls its mtime every ``POLL_S``, applies it and writes
``DIR/proxy_applied.json`` with that version, which :class:`ProxyControl` waits for. So the
rules survive a proxy restart and any process (CLI, chaos nemesis, tests) can change them
without a socket protocol of its own.

:class:`Rules` is pure (tested without sockets); the Trio part is :func:`serve`; run it
as ``python -m testnet.proxy --dir DIR``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LinkRule", "ProxyControl", "ProxyError", "Rules", "serve", "serve_links"]

RULES_FILE = "proxy_rules.json"
APPLIED_FILE = "proxy_applied.json"
POLL_S = 0.05
CHUNK_BYTES_MAX = 64 * 1024
#: Chunks buffered per direction while a delay holds them (the bound is back-pressure).
DELAY_QUEUE_MAX = 256


class ProxyError(Exception):
    """Raised for a bad rule (unknown node, bad percentage) or a proxy that does not answer."""


@dataclass(frozen=True)
class LinkRule:
    """What happens on one directed link right now."""

    blocked: bool = False
    delay_ms: int = 0
    loss: float = 0.0


@dataclass(frozen=True)
class Rules:
    """The proxy's fault rules: blocked directed links, per-node delay and loss.

    A node's delay applies to every link touching it (a link takes the larger of its two
    ends); losses combine as independent events.
    """

    blocked: frozenset[tuple[int, int]] = frozenset()
    delay_ms: Mapping[int, int] = field(default_factory=dict)
    loss_percent: Mapping[int, float] = field(default_factory=dict)

    def link(self, src: int, dst: int) -> LinkRule:
        delay = max(self.delay_ms.get(src, 0), self.delay_ms.get(dst, 0))
        keep = (1 - self.loss_percent.get(src, 0.0) / 100) * (1 - self.loss_percent.get(dst, 0.0) / 100)
        return LinkRule((src, dst) in self.blocked, delay, 1 - keep)

    def partition(self, groups: Iterable[Iterable[int]], n: int) -> Rules:
        """Block every link between different groups; nodes in no group are isolated."""
        side: dict[int, int] = {}
        for g, group in enumerate(groups):
            for node in group:
                if not 0 <= node < n:
                    raise ProxyError(f"partition: no node {node} (nodes are 0..{n - 1})")
                if node in side:
                    raise ProxyError(f"partition: node {node} is in two groups")
                side[node] = g
        blocked = frozenset(
            (i, j) for i in range(n) for j in range(n)
            if i != j and side.get(i, -1 - i) != side.get(j, -1 - j)
        )  # fmt: skip
        return Rules(blocked, self.delay_ms, self.loss_percent)

    def isolate(self, node: int, n: int) -> Rules:
        """Block every link to and from ``node`` (on top of what is blocked already)."""
        extra = {(node, j) for j in range(n) if j != node} | {(j, node) for j in range(n) if j != node}
        return Rules(self.blocked | extra, self.delay_ms, self.loss_percent)

    def with_delay(self, node: int, ms: int) -> Rules:
        if ms < 0:
            raise ProxyError(f"delay: must be >= 0 ms, got {ms}")
        delays = {**self.delay_ms, node: ms}
        return Rules(self.blocked, {k: v for k, v in delays.items() if v}, self.loss_percent)

    def with_loss(self, node: int, percent: float) -> Rules:
        if not 0 <= percent <= 100 or math.isnan(percent):
            raise ProxyError(f"loss: percent must be within 0..100, got {percent}")
        losses = {**self.loss_percent, node: percent}
        return Rules(self.blocked, self.delay_ms, {k: v for k, v in losses.items() if v})

    @property
    def healthy(self) -> bool:
        return not (self.blocked or self.delay_ms or self.loss_percent)

    def to_json(self) -> dict[str, Any]:
        return {
            "blocked": sorted([i, j] for i, j in self.blocked),
            "delay_ms": {str(k): v for k, v in sorted(self.delay_ms.items())},
            "loss_percent": {str(k): v for k, v in sorted(self.loss_percent.items())},
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Rules:
        try:
            blocked = frozenset((int(a), int(b)) for a, b in doc.get("blocked", []))
            delay = {int(k): int(v) for k, v in doc.get("delay_ms", {}).items()}
            loss = {int(k): float(v) for k, v in doc.get("loss_percent", {}).items()}
        except (TypeError, ValueError) as e:
            raise ProxyError(f"bad proxy rules: {e}") from None
        return cls(blocked, delay, loss)


class ProxyControl:
    """Reads and writes the rules file of the proxy serving the testnet in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def rules(self) -> tuple[int, Rules]:
        try:
            doc = json.loads((self.dir / RULES_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0, Rules()
        except (OSError, ValueError) as e:
            raise ProxyError(f"{self.dir / RULES_FILE}: {e}") from None
        return int(doc.get("version", 0)), Rules.from_json(doc)

    def applied_version(self) -> int:
        try:
            doc = json.loads((self.dir / APPLIED_FILE).read_text(encoding="utf-8"))
            return int(doc.get("version", -1))
        except (OSError, ValueError, TypeError):
            return -1

    def set(self, rules: Rules, *, wait: float = 3.0) -> int:
        """Write ``rules`` (next version) and wait until the proxy applied them.

        Raises:
            ProxyError: the proxy did not apply them within ``wait`` seconds.
        """
        version, _ = self.rules()
        doc = {"version": version + 1, **rules.to_json()}
        path = self.dir / RULES_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        if wait > 0:
            deadline = time.monotonic() + wait
            while self.applied_version() < version + 1:
                if time.monotonic() > deadline:
                    raise ProxyError(f"the fault proxy did not apply the rules within {wait}s "
                                     f"(is it running? see {self.dir / 'proxy.log'})")  # fmt: skip
                time.sleep(0.02)
        return version + 1

    def wait_ready(self, timeout: float, pid: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while self.applied_version() < 0:
            if time.monotonic() > deadline:
                raise ProxyError(f"the fault proxy did not start; see {self.dir / 'proxy.log'}")
            time.sleep(0.02)


# ---------------------------------------------------------------------------- Trio part


async def serve(directory: Path, *, task_status: Any = None) -> None:
    """Run the proxy for the testnet in ``directory`` until cancelled."""
    from testnet._layout import load_layout

    layout = load_layout(directory)
    links = {}
    for name, port in layout.links.items():
        src, dst = (int(x) for x in name.split("-"))
        links[(src, dst)] = (port, layout.nodes[dst].p2p_port)
    await serve_links(ProxyControl(directory), links, seed=layout.created_ms,
                      task_status=task_status)  # fmt: skip


async def serve_links(
    control: ProxyControl,
    links: Mapping[tuple[int, int], tuple[int, int]],
    *,
    seed: int = 0,
    task_status: Any = None,
) -> None:
    """Forward each link ``(src, dst) -> (listen port, target port)`` under the rules file.

    Reports ready through ``task_status`` once every port listens and the rules are applied.
    """
    import trio

    state = _ProxyState(Rules(), random.Random(seed))
    async with trio.open_nursery() as nursery:
        for (src, dst), (port, target) in sorted(links.items()):
            listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
            nursery.start_soon(trio.serve_listeners,
                               _handler(state, src, dst, target), listeners)  # fmt: skip
        await nursery.start(_watch_rules, control, state)
        if task_status is not None:
            task_status.started()


class _ProxyState:
    def __init__(self, rules: Rules, rng: random.Random) -> None:
        self.rules = rules
        self.rng = rng
        #: (src, dst) -> cancel scopes of the live connections on that link.
        self.live: dict[tuple[int, int], set[Any]] = {}

    def apply(self, rules: Rules) -> None:
        self.rules = rules
        for link, scopes in self.live.items():
            if rules.link(*link).blocked:
                for scope in list(scopes):
                    scope.cancel()

    def lose(self, src: int, dst: int) -> bool:
        loss = self.rules.link(src, dst).loss
        return loss > 0 and self.rng.random() < loss


async def _watch_rules(control: ProxyControl, state: _ProxyState, *, task_status: Any) -> None:
    import trio

    path = control.dir / RULES_FILE
    seen: float | None = None
    first = True
    while True:
        try:
            mtime: float | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if first or mtime != seen:
            seen = mtime
            version, rules = control.rules()
            state.apply(rules)
            tmp = control.dir / (APPLIED_FILE + ".tmp")
            tmp.write_text(json.dumps({"version": version, "pid": os.getpid()}), encoding="utf-8")
            os.replace(tmp, control.dir / APPLIED_FILE)
            if first:
                task_status.started()
            first = False
        await trio.sleep(POLL_S)


def _handler(state: _ProxyState, src: int, dst: int, target: int) -> Any:
    import trio

    async def handle(down: trio.SocketStream) -> None:
        async with down:
            if state.rules.link(src, dst).blocked or state.lose(src, dst):
                return
            try:
                up = await trio.open_tcp_stream("127.0.0.1", target)
            except OSError:
                return  # the node is down: the dialler sees a closed connection
            async with up:
                with trio.CancelScope() as scope:
                    state.live.setdefault((src, dst), set()).add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_pump, state, src, dst, down, up, nursery.cancel_scope)
                            nursery.start_soon(_pump, state, src, dst, up, down, nursery.cancel_scope)
                    finally:
                        state.live[(src, dst)].discard(scope)

    return handle


async def _pump(state: _ProxyState, src: int, dst: int, source: Any, sink: Any, scope: Any) -> None:
    """Copy ``source`` to ``sink`` with the link's delay; close both ends on EOF or loss."""
    import trio

    send, receive = trio.open_memory_channel[tuple[float, bytes]](DELAY_QUEUE_MAX)

    async def reader() -> None:
        async with send:
            while True:
                try:
                    data = await source.receive_some(CHUNK_BYTES_MAX)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    return
                await send.send((trio.current_time(), data))

    async def writer() -> None:
        async with receive:
            async for received, data in receive:
                rule = state.rules.link(src, dst)
                due = received + rule.delay_ms / 1000
                if due > trio.current_time():
                    await trio.sleep_until(due)
                if state.lose(src, dst):
                    return
                try:
                    await sink.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await writer()
        nursery.cancel_scope.cancel()
    scope.cancel()


def main(argv: list[str] | None = None) -> int:
    import signal

    import trio

    parser = argparse.ArgumentParser(prog="python -m testnet.proxy")
    parser.add_argument("--dir", type=Path, required=True, help="the testnet directory")
    args = parser.parse_args(argv)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            async def stop_on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

            nursery.start_soon(stop_on_signal)
            await serve(args.dir)

    trio.run(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
