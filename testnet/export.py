"""``phalanx testnet export``: the same network, one validator per host.

Writes under ``OUT``::

    faucet.json                  the funded faucet key (0600; keep it off the hosts)
    genesis.json                 shared by every node
    node0/ ... nodeN-1/          one home per host: config.toml, genesis.json, keys/
    docker-compose.yml           one service per node (``network_mode: host``), for running
                                 on each host with ``docker compose up nodeI``

Node ``i`` listens for peers on ``0.0.0.0:P2P`` and serves its API on ``0.0.0.0:RPC`` of host
``i``; its peers are ``j@host_j:P2P``. Nothing here starts processes; see docs/testnet.md.

Called by ``cli/cmd_testnet.py``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from chain.genesis import make_dev_genesis
from chain.keys import PrivateKey, save_key_file
from node.config import (
    ConsensusSection,
    NodeConfig,
    NodeSection,
    P2PSection,
    RpcSection,
    write_config,
)
from testnet._layout import FAUCET_BALANCE, TESTNET_CHAIN_ID, LayoutError

__all__ = ["compose_file", "export"]

IMAGE = "phalanx:latest"


def compose_file(hosts: list[str], rpc_port: int) -> str:
    """A docker-compose.yml with one host-networked service per node."""
    lines = ["# One service per host: on host i run `docker compose up node<i>`.", "services:"]
    for i, host in enumerate(hosts):
        lines += [
            f"  node{i}:",
            f"    image: {IMAGE}",
            "    network_mode: host",
            "    restart: unless-stopped",
            f"    command: [\"phalanx\", \"start\", \"--home\", \"/phalanx/node{i}\"]",
            "    volumes:",
            f"      - ./node{i}:/phalanx/node{i}",
            "    healthcheck:",
            f"      test: [\"CMD\", \"python\", \"-c\", \"import urllib.request as u; "
            f"u.urlopen('http://127.0.0.1:{rpc_port}/health')\"]",
            "      interval: 5s",
            f"    # host: {host}",
        ]
    return "\n".join(lines) + "\n"


def export(hosts: list[str], out: Path, *, engine: str = "pbft", p2p_port: int = 26656,
           rpc_port: int = 26657) -> dict[str, Any]:  # fmt: skip
    """Write per-host homes, the genesis, the faucet key and the Compose file.

    Raises:
        LayoutError: no hosts, a repeated host, or a non-empty output directory.
    """
    if not hosts:
        raise LayoutError("--hosts: give at least one host")
    if len(set(hosts)) != len(hosts):
        raise LayoutError("--hosts: a host is named twice (one validator per host)")
    if out.exists() and any(out.iterdir()):
        raise LayoutError(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    keys = [PrivateKey.generate() for _ in hosts]
    faucet = PrivateKey.generate()
    save_key_file(out / "faucet.json", faucet)
    section = ConsensusSection(engine=engine)
    genesis = make_dev_genesis(keys, chain_id=TESTNET_CHAIN_ID,
                               balances={faucet.address: FAUCET_BALANCE},
                               genesis_time=int(time.time() * 1000), engine=engine,
                               block_time_ms=section.block_time_ms,
                               checkpoint_interval=section.checkpoint_interval,
                               faucet=faucet.address)  # fmt: skip
    (out / "genesis.json").write_text(genesis.to_json(), encoding="utf-8")
    for i, key in enumerate(keys):
        config = NodeConfig(
            home=out / f"node{i}",
            node=NodeSection(moniker=f"v{i}"),
            p2p=P2PSection(listen=f"0.0.0.0:{p2p_port}",
                           peers=tuple(f"{j}@{h}:{p2p_port}" for j, h in enumerate(hosts) if j != i)),
            rpc=RpcSection(listen=f"0.0.0.0:{rpc_port}"),
            consensus=section,
        )  # fmt: skip
        write_config(config)
        save_key_file(config.key_path, key)
        config.genesis_path.write_text(genesis.to_json(), encoding="utf-8")
    compose = out / "docker-compose.yml"
    compose.write_text(compose_file(hosts, rpc_port), encoding="utf-8")
    return {"out": str(out), "hosts": hosts, "compose": str(compose),
            "faucet_key": str(out / "faucet.json"), "chain_id": genesis.chain_id}  # fmt: skip
