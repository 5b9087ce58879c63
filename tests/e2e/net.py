"""A small local network of real ``phalanx start`` processes for the end-to-end tests.

:func:`make_network` writes, under a temporary directory, one home per validator (key file,
shared genesis, ``config.toml`` with free 127.0.0.1 ports and the other validators as peers)
plus funded user keys. :class:`Node` starts and stops one process (``python -m cli start``),
with its output in ``<home>/stdout.log``. Everything that waits polls with a deadline
(:func:`wait_until`); nothing sleeps and hopes.

The same layout is what ``testnet.local`` generates; this helper stays test-only and small so
the e2e tests do not depend on the testnet package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chain.genesis import make_dev_genesis
from chain.keys import PrivateKey, format_address, save_key_file
from node.client import RpcClient, RpcClientError, result_height
from node.config import (
    ConsensusSection,
    NodeConfig,
    NodeSection,
    P2PSection,
    RpcSection,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
USER_BALANCE = 10**15
T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except (RpcClientError, OSError) as e:
            last_error = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


@dataclass
class Node:
    """One validator's home and, while running, its process."""

    index: int
    home: Path
    key: PrivateKey
    rpc_port: int
    p2p_port: int
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def log_path(self) -> Path:
        return self.home / "stdout.log"

    def start(self, *args: str, env: dict[str, str] | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        full_env = {**os.environ, **self.env, **(env or {})}
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "start", "--home", str(self.home),
             *self.extra_args, *args],
            stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT,
        )  # fmt: skip
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as in a power cut."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, then wait; returns the exit code (SIGKILL after ``timeout``)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def client(self, timeout: float = 10.0) -> RpcClient:
        return RpcClient(self.url, timeout=timeout)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        with self.client(timeout) as c:
            return c.call(method, params)

    def height(self) -> int:
        h = result_height(self.call("status", timeout=3))
        assert h is not None, "status reports no height"
        return h

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Network:
    """Validators, user keys and the genesis they share."""

    root: Path
    nodes: list[Node]
    users: list[PrivateKey]
    user_key_files: list[Path]
    chain_id: int

    def start(self, only: Sequence[int] | None = None) -> None:
        for node in self.nodes:
            if only is None or node.index in only:
                node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.kill() if node.running else None

    def wait_ready(self, timeout: float = 60, only: Sequence[int] | None = None) -> None:
        for node in self.nodes:
            if only is not None and node.index not in only:
                continue
            try:
                wait_until(f"node {node.index} RPC", _height_at_least(node, 0), timeout)
            except AssertionError:
                raise AssertionError(f"node {node.index} did not come up:\n{node.log_tail()}") from None

    def wait_height(self, height: int, timeout: float = 60, only: Sequence[int] | None = None) -> None:
        for node in self.nodes:
            if only is not None and node.index not in only:
                continue
            try:
                wait_until(f"node {node.index} at height {height}",
                           _height_at_least(node, height), timeout)  # fmt: skip
            except AssertionError as e:
                raise AssertionError(f"{e}\n--- node {node.index} log ---\n{node.log_tail()}") from None

    def urls(self, only: Sequence[int] | None = None) -> str:
        return ",".join(n.url for n in self.nodes if only is None or n.index in only)


def _height_at_least(node: Node, height: int) -> Callable[[], bool]:
    return lambda: node.height() >= height


def make_network(
    root: Path,
    n: int,
    *,
    engine: str = "pbft",
    chain_id: int = 77,
    users: int = 2,
    block_time_ms: int = 100,
    tick_ms: int = 50,
    view_timeout_ticks: int = 60,
    checkpoint_interval: int = 10,
    genesis_engine_params: dict[str, int | str | bool] | None = None,
) -> Network:
    """Write homes for ``n`` validators (indexes 0..n-1) on free ports; start nothing."""
    keys = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(n)]
    user_keys = [PrivateKey.from_seed(bytes([0x80 + i]) * 32) for i in range(users)]
    genesis = make_dev_genesis(
        keys,
        chain_id=chain_id,
        balances={u.address: USER_BALANCE for u in user_keys},
        genesis_time=int(time.time() * 1000),
        engine=engine,
        checkpoint_interval=checkpoint_interval,
        block_time_ms=block_time_ms,
        engine_params=genesis_engine_params,
    )
    ports = free_ports(2 * n)
    nodes = []
    for i, key in enumerate(keys):
        home = root / f"node{i}"
        p2p_port, rpc_port = ports[2 * i], ports[2 * i + 1]
        peers = tuple(f"{j}@127.0.0.1:{ports[2 * j]}" for j in range(n) if j != i)
        config = NodeConfig(
            home=home,
            node=NodeSection(moniker=f"v{i}", log_level="info"),
            p2p=P2PSection(listen=f"127.0.0.1:{p2p_port}", peers=peers, heartbeat_ms=200),
            rpc=RpcSection(listen=f"127.0.0.1:{rpc_port}", body_bytes_max=256 * 1024),
            consensus=dataclasses.replace(
                ConsensusSection(), engine=engine, tick_ms=tick_ms, block_time_ms=block_time_ms,
                view_timeout_ticks=view_timeout_ticks, checkpoint_interval=checkpoint_interval,
            ),
        )  # fmt: skip
        write_config(config)
        save_key_file(config.key_path, key)
        config.genesis_path.write_text(genesis.to_json(), encoding="utf-8")
        nodes.append(Node(i, home, key, rpc_port, p2p_port))
    key_files = []
    for j, user in enumerate(user_keys):
        path = root / f"user{j}.json"
        save_key_file(path, user)
        key_files.append(path)
    return Network(root, nodes, user_keys, key_files, chain_id)


@contextlib.contextmanager
def running(net: Network, only: Sequence[int] | None = None) -> Iterator[Network]:
    """Start the network's nodes; kill every process on the way out, whatever happens."""
    try:
        net.start(only)
        net.wait_ready(only=only)
        yield net
    finally:
        for node in net.nodes:
            node.kill()


def phalanx(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the ``phalanx`` command line in a subprocess (as a user would)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout,
        env=env, cwd=ROOT,
    )  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in this process (same code as ``phalanx``, no interpreter start-up,
    which costs seconds on a loaded machine); returns what a subprocess run would."""
    from cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse errors
            code = int(e.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def address(key: PrivateKey) -> str:
    return format_address(key.address)
