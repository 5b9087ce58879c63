"""Local multi-process testnets: N real ``phalanx start`` processes on 127.0.0.1.

Theory of operation
-------------------
:func:`testnet.up` generates a layout (:mod:`testnet._layout`), optionally starts the
fault proxy (:mod:`testnet.proxy`, its own process), then starts one ``phalanx start``
process per validator and waits until every honest node answers ``status`` and the chain
commits. The pids live in ``DIR/testnet.json``, so any later ``phalanx testnet ...`` command
(status, kill, pause, restart, partition, down) acts on the running testnet from another
terminal. A Byzantine node is started with ``--byzantine KIND``.

Faults on nodes: ``kill`` (SIGKILL), ``pause``/``resume`` (SIGSTOP/SIGCONT), ``restart``
(SIGTERM then start again on the same home: the node recovers from its ledger and WAL).
Faults on links go through the proxy (:class:`ProxyControl`).

Called by ``cli/cmd_testnet.py``, :mod:`testnet.chaos`, :mod:`testnet.bench` and the e2e tests.
"""

from __future__ import annotations

import heapq
import json
import signal
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from testnet._layout import Layout, LayoutError, NodeSpec, generate, load_layout
from testnet._procs import pid_alive, pid_runs, pid_stopped, send_signal, spawn, stop_pid, stop_pids
from testnet.proxy import ProxyControl

__all__ = ["Testnet", "TestnetError", "merged_logs"]

STATUS_TIMEOUT_S = 2.0


class TestnetError(Exception):
    """Raised when a testnet cannot be started, reached or acted upon."""


def _height_of(status: Any) -> int | None:
    from node.client import result_height

    return result_height(status)


class Testnet:
    """A local testnet described by a :class:`Layout` (loaded or freshly generated)."""

    __test__ = False  # not a pytest class

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, directory: Path, **kwargs: Any) -> Testnet:
        """Generate a layout under ``directory`` (see :func:`testnet._layout.generate`)."""
        try:
            return cls(generate(directory, **kwargs))
        except LayoutError as e:
            raise TestnetError(str(e)) from None

    @classmethod
    def open(cls, directory: Path) -> Testnet:
        """Attach to the testnet whose state is in ``directory``."""
        try:
            return cls(load_layout(directory))
        except LayoutError as e:
            raise TestnetError(str(e)) from None

    @property
    def dir(self) -> Path:
        return Path(self.layout.dir)

    @property
    def proxy(self) -> ProxyControl:
        if not self.layout.proxy:
            raise TestnetError("this testnet runs without the fault proxy (start it with --proxy)")
        return ProxyControl(self.dir)

    # ------------------------------------------------------------------ processes
    def start(self, timeout: float = 60.0) -> None:
        """Start the proxy (if any) and every node not running; wait until healthy."""
        if self.layout.proxy and not self._proxy_pid():
            self.layout.proxy_pid = spawn(
                ["testnet.proxy", "--dir", self.layout.dir], self.dir / "proxy.log"
            )
            self.layout.save()
            self.proxy.wait_ready(timeout=10.0, pid=self.layout.proxy_pid)
        for node in self.layout.nodes:
            if not self._pid(node):
                self._spawn(node)
        self.layout.save()
        self.wait_healthy(timeout)

    def _spawn(self, node: NodeSpec) -> None:
        argv = ["cli", "start", "--home", node.home]
        if node.byzantine:
            argv += ["--byzantine", node.byzantine]
        node.pid = spawn(argv, Path(node.home) / "logs" / "stdout.log")

    def stop(self) -> None:
        """Stop every node and the proxy cleanly (SIGTERM, SIGKILL after a grace period)."""
        stop_pids([self._pid(node) for node in self.layout.nodes])
        for node in self.layout.nodes:
            node.pid = 0
        if self._proxy_pid():
            stop_pid(self._proxy_pid(), grace=3.0)
        self.layout.proxy_pid = 0
        self.layout.save()

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash: no clean shutdown)."""
        pid = self._pid(self._node(index))
        send_signal(pid, signal.SIGCONT)
        send_signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def pause(self, index: int) -> None:
        """SIGSTOP node ``index``."""
        if not send_signal(self._pid(self._node(index)), signal.SIGSTOP):
            raise TestnetError(f"node {index} is not running")

    def resume(self, index: int) -> None:
        """SIGCONT node ``index``."""
        if not send_signal(self._pid(self._node(index)), signal.SIGCONT):
            raise TestnetError(f"node {index} is not running")

    def restart(self, index: int, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Stop node ``index`` (if running) and start it again on the same home."""
        node = self._node(index)
        stop_pid(self._pid(node))
        self._spawn(node)
        self.layout.save()
        if wait:
            self.wait_node(index, timeout)

    def _pid(self, node: NodeSpec) -> int:
        """The node's pid if that process is still this node (its home on the command line)."""
        return node.pid if pid_runs(node.pid, node.home) else 0

    def _proxy_pid(self) -> int:
        pid = self.layout.proxy_pid
        return pid if pid_runs(pid, "testnet.proxy") and pid_runs(pid, self.layout.dir) else 0

    def _node(self, index: int) -> NodeSpec:
        try:
            return self.layout.node(index)
        except LayoutError as e:
            raise TestnetError(str(e)) from None

    # ------------------------------------------------------------------ health
    def node_status(self, index: int, timeout: float = STATUS_TIMEOUT_S) -> dict[str, Any] | None:
        """The node's ``status`` result, or None if it does not answer."""
        node = self._node(index)
        try:
            r = httpx.post(node.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "status"},
                           timeout=timeout)  # fmt: skip
            doc = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        result = doc.get("result") if isinstance(doc, dict) else None
        return result if isinstance(result, dict) else None

    def height(self, index: int, timeout: float = STATUS_TIMEOUT_S) -> int | None:
        status = self.node_status(index, timeout)
        return None if status is None else _height_of(status)

    def heights(self, nodes: list[int] | None = None, timeout: float = 1.0) -> dict[int, int | None]:
        """Every node's height, asked in parallel (a paused node costs one ``timeout``)."""
        targets = list(range(self.layout.n)) if nodes is None else nodes
        with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
            found = pool.map(lambda i: self.height(i, timeout), targets)
            return dict(zip(targets, found, strict=True))

    def honest(self) -> list[int]:
        return [n.index for n in self.layout.nodes if not n.byzantine]

    def wait_node(self, index: int, timeout: float = 30.0) -> None:
        """Wait until node ``index`` answers ``status``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pid(self._node(index)):
                raise TestnetError(f"node {index} exited; see {self._stdout(index)}")
            if self.node_status(index, timeout=1.0) is not None:
                return
            time.sleep(0.1)
        raise TestnetError(f"node {index} did not answer within {timeout:.0f}s; see "
                           f"{self._stdout(index)}")  # fmt: skip

    def _stdout(self, index: int) -> Path:
        return Path(self._node(index).home) / "logs" / "stdout.log"

    def wait_healthy(self, timeout: float = 60.0, *, min_height: int = 1) -> None:
        """Wait until every honest node answers and reports a height >= ``min_height``."""
        deadline = time.monotonic() + timeout
        for i in range(self.layout.n):
            self.wait_node(i, max(1.0, deadline - time.monotonic()))
        self.wait_height(min_height, timeout=max(1.0, deadline - time.monotonic()))

    def wait_height(self, height: int, *, timeout: float = 30.0,
                    nodes: list[int] | None = None) -> float:  # fmt: skip
        """Wait until ``nodes`` (default: honest ones) reach ``height``; returns seconds waited.

        Raises:
            TestnetError: not reached in time (the heights seen are in the message).
        """
        targets = self.honest() if nodes is None else nodes
        start = time.monotonic()
        seen: dict[int, int | None] = {}
        while True:
            seen = self.heights(targets)
            if all(h is not None and h >= height for h in seen.values()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TestnetError(f"height {height} not reached within {timeout:.0f}s "
                                   f"(heights: {seen})")  # fmt: skip
            time.sleep(0.2)

    def status(self) -> list[dict[str, Any]]:
        """One row per node: index, pid, state, height, API URL, p2p port, role, and
        ``suspected_by``: the answering nodes whose failure detector suspects it."""
        rows = []
        states: dict[int, tuple[bool, str, dict[str, Any] | None]] = {}
        for node in self.layout.nodes:
            alive = bool(self._pid(node))
            state = "paused" if alive and pid_stopped(node.pid) else ("running" if alive else "down")
            st = self.node_status(node.index, timeout=1.0) if state == "running" else None
            states[node.index] = (alive, state, st)
        suspects = {i: (st or {}).get("liveness", {}).get("suspected", [])
                    for i, (_, _, st) in states.items()}
        for node in self.layout.nodes:
            alive, state, st = states[node.index]
            rows.append({
                "id": node.index,
                "name": node.name,
                "pid": node.pid if alive else None,
                "state": state,
                "height": None if st is None else _height_of(st),
                "api": node.rpc_url,
                "p2p_port": node.p2p_port,
                "role": self.role(node, st),
                "suspected_by": sorted(i for i, s in suspects.items() if node.index in s),
            })  # fmt: skip
        return rows

    def role(self, node: NodeSpec, status: Mapping[str, Any] | None = None) -> str:
        """``byzantine:KIND``, ``primary`` or ``backup`` (from the node's status when it says)."""
        if node.byzantine:
            return f"byzantine:{node.byzantine}"
        if status is not None:
            for key in ("primary", "leader", "is_primary", "is_leader"):
                value = _find(status, key)
                if isinstance(value, bool):
                    return "primary" if value else "backup"
                if isinstance(value, int):
                    return "primary" if value == node.index else "backup"
        return "primary" if node.index == 0 else "backup"


def _find(obj: Any, key: str, depth: int = 3) -> Any:
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        if depth:
            for v in obj.values():
                found = _find(v, key, depth - 1)
                if found is not None:
                    return found
    return None


def _log_lines(index: int, path: Path) -> Iterator[tuple[int, int, str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.rstrip("\n")
                try:
                    lamport = int(json.loads(line).get("lamport", 0))
                except (ValueError, AttributeError, TypeError):
                    lamport = 0
                yield lamport, index, line
    except FileNotFoundError:
        return


def merged_logs(homes: Mapping[int, Path]) -> Iterator[tuple[int, int, str]]:
    """Merge nodes' ``logs/node.jsonl`` by (Lamport timestamp, node id).

    Each node's own lines are already in Lamport order, so a k-way merge suffices (bounded
    memory). Lines that are not JSON or carry no ``lamport`` count as 0.

    Yields:
        ``(lamport, node index, raw line)``.
    """
    streams = [_log_lines(i, Path(home) / "logs" / "node.jsonl") for i, home in homes.items()]
    yield from heapq.merge(*streams, key=lambda t: (t[0], t[1]))
