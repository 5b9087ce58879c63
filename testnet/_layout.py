"""The on-disk layout of a local testnet: keys, genesis, per-node homes, and ``testnet.json``.

``generate`` writes, under ``DIR``::

    faucet.json            the funded faucet's key (0600)
    genesis.json           the shared genesis (also copied into every home)
    node0/ node1/ ...      node homes: config.toml, genesis.json, keys/validator.json
    testnet.json           the testnet's state: nodes, ports, pids, proxy links

Invariants: every port in a layout is distinct; node ``i`` is validator index ``i``;
with a proxy, node ``i`` reaches node ``j`` only through the proxy port of the directed
link ``i->j`` (its config's ``p2p.peers`` say so), otherwise directly.

Called by :mod:`testnet.local` (``up``) and :mod:`testnet.bench`; read back by every
``phalanx testnet`` subcommand through :func:`load_layout`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chain.genesis import make_dev_genesis, max_faulty
from chain.keys import PrivateKey, format_address, save_key_file
from node.config import (
    ConsensusSection,
    NodeConfig,
    NodeSection,
    P2PSection,
    RpcSection,
    write_config,
)
from testnet._procs import free_ports

__all__ = [
    "FAUCET_BALANCE",
    "STATE_FILE",
    "Layout",
    "LayoutError",
    "NodeSpec",
    "generate",
    "load_layout",
    "parse_byzantine",
]

STATE_FILE = "testnet.json"
FAUCET_BALANCE = 10**24
TESTNET_CHAIN_ID = 1337
NODES_MAX = 64


class LayoutError(Exception):
    """Raised for a bad testnet description (node count, Byzantine spec, missing state)."""


@dataclass
class NodeSpec:
    """One node of a local testnet (mutable: pids change on restart)."""

    index: int
    name: str
    home: str
    rpc_port: int
    p2p_port: int
    byzantine: str = ""
    pid: int = 0

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"


@dataclass
class Layout:
    """A generated testnet and its running state (saved as ``DIR/testnet.json``)."""

    dir: str
    engine: str
    chain_id: int
    nodes: list[NodeSpec]
    faucet_key: str
    proxy: bool = False
    #: ``"i-j"`` -> proxy listen port of the directed link i->j.
    links: dict[str, int] = field(default_factory=dict)
    proxy_pid: int = 0
    proxy_control_port: int = 0
    created_ms: int = 0

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def f(self) -> int:
        return max_faulty(self.engine, self.n)

    @property
    def rpc_urls(self) -> list[str]:
        return [node.rpc_url for node in self.nodes]

    @property
    def path(self) -> Path:
        return Path(self.dir) / STATE_FILE

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def node(self, index: int) -> NodeSpec:
        if not 0 <= index < self.n:
            raise LayoutError(f"no node {index} (this testnet has nodes 0..{self.n - 1})")
        return self.nodes[index]


def parse_byzantine(text: str | None, n: int) -> dict[int, str]:
    """Parse ``"3=equivocate,2=silent"`` into ``{3: "equivocate", 2: "silent"}``.

    Raises:
        LayoutError: malformed entry, index out of range, or a node named twice.
    """
    result: dict[int, str] = {}
    if not text:
        return result
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        index, sep, kind = item.partition("=")
        if not sep or not index.strip().isdigit() or not kind.strip():
            raise LayoutError(f"--byzantine: expected INDEX=KIND, got {item!r}")
        i = int(index)
        if not 0 <= i < n:
            raise LayoutError(f"--byzantine: node {i} out of range 0..{n - 1}")
        if i in result:
            raise LayoutError(f"--byzantine: node {i} named twice")
        result[i] = kind.strip()
    return result


def generate(
    directory: Path,
    *,
    nodes: int = 4,
    engine: str = "pbft",
    byzantine: Mapping[int, str] | None = None,
    proxy: bool = False,
    extra_balances: Mapping[bytes, int] | None = None,
    consensus: Mapping[str, Any] | None = None,
) -> Layout:
    """Write keys, genesis, homes and configs for a fresh testnet under ``directory``.

    Args:
        directory: created if missing; must not already hold a testnet.
        nodes: validator count (1..NODES_MAX).
        engine: ``pbft`` or ``paxos``.
        byzantine: validator index -> behaviour name (``--byzantine`` of ``phalanx start``).
        proxy: route every directed p2p link through a fault-proxy port.
        extra_balances: more genesis accounts (the benchmark funds its senders here).
        consensus: overrides for the ``[consensus]`` config section.

    Raises:
        LayoutError: bad arguments or an existing testnet in ``directory``.
    """
    if not 1 <= nodes <= NODES_MAX:
        raise LayoutError(f"--nodes: expected 1..{NODES_MAX}, got {nodes}")
    if engine not in ("pbft", "paxos"):
        raise LayoutError(f"--engine: expected pbft or paxos, got {engine!r}")
    byz = dict(byzantine or {})
    directory = directory.resolve()
    if (directory / STATE_FILE).exists():
        raise LayoutError(f"{directory} already holds a testnet (run `phalanx testnet down "
                          f"--dir {directory} --purge` or pick another --dir)")  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    keys = [PrivateKey.generate() for _ in range(nodes)]
    faucet = PrivateKey.generate()
    faucet_path = directory / "faucet.json"
    save_key_file(faucet_path, faucet)
    balances: dict[bytes, int] = {faucet.address: FAUCET_BALANCE}
    for addr, amount in (extra_balances or {}).items():
        balances[addr] = balances.get(addr, 0) + amount
    section = ConsensusSection(engine=engine, **dict(consensus or {}))
    genesis = make_dev_genesis(
        keys,
        chain_id=TESTNET_CHAIN_ID,
        balances=balances,
        genesis_time=int(time.time() * 1000),
        engine=engine,
        block_time_ms=section.block_time_ms,
        checkpoint_interval=section.checkpoint_interval,
        faucet=faucet.address,
    )
    link_pairs = [(i, j) for i in range(nodes) for j in range(nodes) if i != j] if proxy else []
    ports = free_ports(2 * nodes + len(link_pairs) + (1 if proxy else 0))
    rpc_ports, p2p_ports = ports[:nodes], ports[nodes : 2 * nodes]
    links = {f"{i}-{j}": ports[2 * nodes + k] for k, (i, j) in enumerate(link_pairs)}
    (directory / "genesis.json").write_text(genesis.to_json(), encoding="utf-8")
    specs: list[NodeSpec] = []
    for i, key in enumerate(keys):
        home = directory / f"node{i}"
        peers = tuple(
            f"{j}@127.0.0.1:{links[f'{i}-{j}'] if proxy else p2p_ports[j]}"
            for j in range(nodes)
            if j != i
        )
        config = NodeConfig(
            home=home,
            node=NodeSection(moniker=f"v{i}", byzantine=byz.get(i, "")),
            p2p=P2PSection(listen=f"127.0.0.1:{p2p_ports[i]}", peers=peers),
            rpc=RpcSection(listen=f"127.0.0.1:{rpc_ports[i]}"),
            consensus=section,
        )
        write_config(config)
        save_key_file(config.key_path, key)
        config.genesis_path.write_text(genesis.to_json(), encoding="utf-8")
        specs.append(NodeSpec(i, f"v{i}", str(home), rpc_ports[i], p2p_ports[i], byz.get(i, "")))
    layout = Layout(
        dir=str(directory),
        engine=engine,
        chain_id=genesis.chain_id,
        nodes=specs,
        faucet_key=str(faucet_path),
        proxy=proxy,
        links=links,
        proxy_control_port=ports[-1] if proxy else 0,
        created_ms=int(time.time() * 1000),
    )
    layout.save()
    return layout


def faucet_address(layout: Layout) -> str:
    """The faucet's ``0x`` address (read from its key file)."""
    from chain.keys import load_key_file

    return format_address(load_key_file(layout.faucet_key).address)


def load_layout(directory: Path) -> Layout:
    """Read ``DIR/testnet.json``.

    Raises:
        LayoutError: no testnet there, or the file is damaged.
    """
    path = directory.expanduser().resolve() / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        nodes = [NodeSpec(**n) for n in doc.pop("nodes")]
        return Layout(nodes=nodes, **doc)
    except FileNotFoundError:
        raise LayoutError(f"no testnet in {path.parent} (start one with `phalanx testnet up "
                          f"--dir {path.parent}`)") from None  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise LayoutError(f"{path}: damaged testnet state: {e}") from None
