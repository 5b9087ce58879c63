"""``phalanx init`` + ``phalanx start``: a single-node dev chain that takes transactions at
once, and the token contract deployed, called and read through the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.keys import PrivateKey, format_address
from chain.vm.abi import address_word
from cli.cmd_query import find_field
from node.config import load_config, write_config
from tests.e2e.net import ROOT, Node, cli, free_ports, phalanx, wait_until

pytestmark = pytest.mark.e2e

TOKEN = ROOT / "examples" / "contracts" / "token.asm"
TRANSFER_TOPIC = "0xdde8bef78cbb720683fa1fe76bfb900592099ed4346ed995bcbc514e9aa67256"


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    home = tmp_path_factory.mktemp("dev") / "home"
    result = phalanx("init", "--home", str(home), "--chain-id", "5", "--json")
    assert result.returncode == 0, result.stderr
    me = json.loads(result.stdout)["address"]
    config = load_config(home)
    p2p, rpc = free_ports(2)
    write_config(dataclasses.replace(
        config,
        p2p=dataclasses.replace(config.p2p, listen=f"127.0.0.1:{p2p}"),
        rpc=dataclasses.replace(config.rpc, listen=f"127.0.0.1:{rpc}"),
        consensus=dataclasses.replace(config.consensus, block_time_ms=100),
    ))  # fmt: skip
    node = Node(0, home, PrivateKey.generate(), rpc, p2p)
    node.start()
    try:
        wait_until("the dev node's RPC", lambda: node.height() >= 0, 60)
        yield node, me
    finally:
        node.kill()


def _cli(node: Node, *args: str, subprocess: bool = False) -> dict[str, Any]:
    run = phalanx if subprocess else cli
    result = run(*args, "--home", str(node.home), "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_init_and_start_take_a_transfer_at_once(dev: tuple[Node, str]) -> None:
    node, _ = dev
    to = format_address(b"\x42" * 20)
    doc = _cli(node, "tx", "send", "--to", to, "--amount", "12345", "--wait", subprocess=True)
    assert int(find_field(doc, "height")) >= 1
    account = _cli(node, "query", "account", to)
    assert int(find_field(account, "balance")) == 12345
    status = _cli(node, "query", "status")
    assert int(find_field(status, "chain_id")) == 5


def test_token_contract_deploy_call_and_read(dev: tuple[Node, str], tmp_path: Path) -> None:
    node, me = dev
    deployed = _cli(node, "tx", "deploy", str(TOKEN), "--wait")
    receipt = deployed["receipt"]
    contract = find_field(receipt, "contract_address")
    assert isinstance(contract, str) and len(contract) == 42
    supply = _cli(node, "query", "call", contract, "--call", "3")
    assert int(str(find_field(supply, "return_data", "return", "output")), 16) == 1_000_000

    friend = b"\x99" * 20
    moved = _cli(node, "tx", "call", contract, "--call", f"1 0x{friend.hex()} 250", "--wait")
    logs = moved["receipt"]["logs"]
    assert len(logs) == 1
    topics = [str(t).lower() for t in logs[0]["topics"]]
    assert topics == [TRANSFER_TOPIC, "0x" + address_word(bytes.fromhex(me[2:])).hex(),
                      "0x" + address_word(friend).hex()]  # fmt: skip
    balance = _cli(node, "query", "call", contract, "--call", f"2 0x{friend.hex()}")
    assert int(str(find_field(balance, "return_data", "return", "output")), 16) == 250

    broke = cli("tx", "call", contract, "--call", f"1 0x{friend.hex()} 2000000", "--wait",
                    "--home", str(node.home))  # fmt: skip
    assert broke.returncode == 1
    assert "FAILED" in broke.stdout and "reverted" in broke.stdout.lower()
