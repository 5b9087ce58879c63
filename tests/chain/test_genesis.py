"""Genesis: a valid file loads; every invalid one is refused naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chain.block import EMPTY_CERTIFICATE, ZERO_HASH
from chain.errors import GenesisError
from chain.genesis import (
    Genesis,
    genesis_block,
    load_genesis,
    make_dev_genesis,
    max_faulty,
    parse_genesis,
)
from chain.keys import PrivateKey, format_address

KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
ADDR = [k.address for k in KEYS]


def _example() -> dict[str, Any]:
    return {
        "chain_id": 7,
        "genesis_time": 1_700_000_000_000,
        "validators": [
            {"name": f"node{i}", "public_key": k.public_key.raw.hex()} for i, k in enumerate(KEYS)
        ],
        "balances": {format_address(ADDR[1]): 500, format_address(ADDR[0]): 10**30},
        "consensus": {
            "engine": "pbft",
            "checkpoint_interval": 10,
            "block_time_ms": 500,
            "params": {"view_timeout_ticks": 20, "batch": True},
        },
        "faucet": format_address(ADDR[0]),
    }


def test_valid_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(_example()))
    g = load_genesis(path)
    assert g.chain_id == 7
    assert g.genesis_time == 1_700_000_000_000
    assert [v.public_key for v in g.validators] == [k.public_key.raw for k in KEYS]
    assert [v.name for v in g.validators] == ["node0", "node1", "node2", "node3"]
    assert g.validators[2].address == ADDR[2]
    assert g.balances == tuple(sorted([(ADDR[0], 10**30), (ADDR[1], 500)]))
    assert (g.engine, g.checkpoint_interval, g.block_time_ms) == ("pbft", 10, 500)
    assert dict(g.engine_params) == {"view_timeout_ticks": 20, "batch": True}
    assert g.faucet == ADDR[0]
    assert (g.n, g.f) == (4, 1)
    assert g.validator_index(KEYS[3].public_key.raw) == 3
    assert g.validator_index(b"\x00" * 32) is None


def test_to_json_round_trips_and_hash_is_stable() -> None:
    g = parse_genesis(_example())
    again = parse_genesis(json.loads(g.to_json()))
    assert again == g
    assert again.hash == g.hash
    reordered = _example()
    reordered["balances"] = dict(reversed(list(reordered["balances"].items())))
    assert parse_genesis(reordered).hash == g.hash
    changed = _example()
    changed["consensus"]["block_time_ms"] = 501
    assert parse_genesis(changed).hash != g.hash


def test_genesis_block() -> None:
    g = parse_genesis(_example())
    b = genesis_block(g)
    assert b.height == 0
    assert b.header.parent_hash == ZERO_HASH
    assert b.header.state_root == ZERO_HASH
    assert b.header.timestamp == g.genesis_time
    assert b.header.chain_id == 7
    assert b.transactions == ()
    assert b.last_commit == EMPTY_CERTIFICATE
    assert b.header.proposer == g.hash[:20]
    b.validate_structure()
    other = _example()
    other["balances"][format_address(ADDR[2])] = 1
    assert genesis_block(parse_genesis(other)).hash != b.hash


def test_fault_tolerance_per_engine() -> None:
    assert [max_faulty("pbft", n) for n in (1, 3, 4, 6, 7, 10)] == [0, 0, 1, 1, 2, 3]
    assert [max_faulty("paxos", n) for n in (1, 2, 3, 5)] == [0, 0, 1, 2]


def test_make_dev_genesis_obeys_the_same_rules() -> None:
    g = make_dev_genesis(KEYS, chain_id=3, balances={ADDR[0]: 1}, engine="paxos")
    assert [v.name for v in g.validators] == ["v0", "v1", "v2", "v3"]
    assert g.f == 1
    assert parse_genesis(json.loads(g.to_json())) == g
    assert isinstance(g, Genesis)
    with pytest.raises(GenesisError, match=r"validators\[1\].public_key: duplicate"):
        make_dev_genesis([KEYS[0], KEYS[0]], chain_id=3)
    with pytest.raises(GenesisError, match=r"consensus\.engine"):
        make_dev_genesis(KEYS, chain_id=3, engine="raft")
    with pytest.raises(GenesisError, match="names"):
        make_dev_genesis(KEYS, chain_id=3, names=["a"])


def _set(path: str, value: Any) -> dict[str, Any]:
    """The example with ``path`` (dotted, [i] for arrays) set to value, or removed if DELETE."""
    obj = copy.deepcopy(_example())
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = obj
    for p in parts[:-1]:
        target = target[int(p)] if isinstance(target, list) else target[p]
    last: Any = int(parts[-1]) if isinstance(target, list) else parts[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return obj


DELETE = object()
A0 = format_address(ADDR[0])


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_set("chain_id", DELETE), "chain_id: missing field"),
        (_set("surprise", 1), "surprise: unknown field"),
        (_set("chain_id", "7"), "chain_id: must be an integer"),
        (_set("chain_id", True), "chain_id: must be an integer"),
        (_set("chain_id", -1), "chain_id: must be >= 0"),
        (_set("chain_id", 1 << 64), "chain_id: must be <="),
        (_set("genesis_time", 1.5), "genesis_time: must be an integer"),
        (_set("validators", []), "validators: at least one validator"),
        (_set("validators", {}), "validators: must be an array"),
        (_set("validators[2].public_key", "ab" * 31), r"validators\[2\].public_key: not 64 hex"),
        (_set("validators[2].public_key", "zz" * 32), r"validators\[2\].public_key: not 64 hex"),
        (_set("validators[1].public_key", 5), r"validators\[1\].public_key: not 64 hex"),
        # 64 characters with whitespace would decode to fewer than 32 bytes
        (_set("validators[1].public_key", "ab" * 31 + "  "), r"validators\[1\].public_key: not 64"),
        (_set("validators[1].public_key", " " + "ab" * 31 + "\n"), r"validators\[1\]\.public_key"),
        (_set("balances", {"0x" + "ab" * 19 + "  ": 1}), r"not hexadecimal"),
        (_set("validators[3].name", ""), r"validators\[3\].name: must be a non-empty"),
        (_set("validators[3].name", "x" * 65), r"validators\[3\].name: must be printable"),
        (
            _set("validators[3].name", "node0"),
            r"validators\[3\].name: duplicate of validators\[0\]",
        ),
        (
            _set("validators[3].public_key", KEYS[1].public_key.raw.hex()),
            r"validators\[3\].public_key: duplicate of validators\[1\]",
        ),
        (_set("validators[0].role", "x"), r"validators\[0\].role: unknown field"),
        (_set("validators[0].name", DELETE), r"validators\[0\].name: missing field"),
        (_set("validators[0]", "node0"), r"validators\[0\]: must be an object"),
        (_set("balances", []), "balances: must be an object"),
        (_set(f"balances.{A0}", -5), rf"balances\[{A0}\]: must be >= 0"),
        (_set(f"balances.{A0}", 1 << 256), rf"balances\[{A0}\]: must be <="),
        (_set(f"balances.{A0}", "100"), rf"balances\[{A0}\]: must be an integer"),
        (_set("balances.0x1234", 1), r"balances\[0x1234\]: address .* must have 40 hex"),
        (_set("balances", {A0: 1, A0.upper().replace("0X", "0x"): 2}), "duplicate address"),
        (
            _set("balances", {A0: (1 << 256) - 1, format_address(ADDR[1]): 1}),
            "balances: total supply exceeds uint256",
        ),
        (_set("consensus.engine", "raft"), "consensus.engine: must be one of pbft, paxos"),
        (_set("consensus.checkpoint_interval", 0), "consensus.checkpoint_interval: must be >= 1"),
        (_set("consensus.block_time_ms", DELETE), "consensus.block_time_ms: missing field"),
        (_set("consensus.params", []), "consensus.params: must be an object"),
        (_set("consensus.params.x", 1.5), "consensus.params.x: must be an integer, string"),
        (_set("consensus.params.x", [1]), "consensus.params.x: must be an integer, string"),
        (_set("consensus", None), "consensus: must be an object"),
        (_set("faucet", "0xnothex"), "faucet: address"),
        (_set("faucet", 12), "faucet: must be an address string"),
    ],
)
def test_invalid_genesis_names_the_field(obj: dict[str, Any], expected: str) -> None:
    with pytest.raises(GenesisError, match=expected):
        parse_genesis(obj)


def test_faucet_is_optional() -> None:
    assert parse_genesis(_set("faucet", DELETE)).faucet is None
    assert parse_genesis(_set("faucet", None)).faucet is None


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(GenesisError, match="genesis: must be an object"):
        parse_genesis([])  # type: ignore[arg-type]


def test_too_many_validators() -> None:
    many = [{"name": f"v{i}", "public_key": f"{i:064x}"} for i in range(1025)]
    with pytest.raises(GenesisError, match="at most 1024"):
        parse_genesis(_set("validators", many))


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="not found"):
        load_genesis(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(GenesisError, match="not valid JSON"):
        load_genesis(bad)
    dup = tmp_path / "dup.json"
    text = json.dumps(_example())
    dup.write_text(text[:-1] + ', "chain_id": 8}')
    with pytest.raises(GenesisError, match="duplicate JSON key 'chain_id'"):
        load_genesis(dup)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_set("consensus.engine", "raft")))
    with pytest.raises(GenesisError, match=r"wrong.json: consensus.engine"):
        load_genesis(wrong)
