"""config.toml: round trip, defaults, and a clear error naming each bad field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.config import ConfigError, NodeConfig, load_config, write_config


def test_defaults_round_trip_through_toml(tmp_path: Path) -> None:
    config = NodeConfig(home=tmp_path)
    write_config(config)
    assert load_config(tmp_path) == config
    assert (tmp_path / "keys").is_dir() and (tmp_path / "data").is_dir()


def test_changed_fields_survive_round_trip(tmp_path: Path) -> None:
    config = NodeConfig(home=tmp_path)
    config = dataclasses.replace(
        config,
        p2p=dataclasses.replace(config.p2p, peers=("1@127.0.0.1:7001", "2@127.0.0.1:7002")),
        consensus=dataclasses.replace(config.consensus, engine="paxos", tick_ms=20),
    )
    write_config(config)
    loaded = load_config(tmp_path)
    assert loaded.p2p.peers == ("1@127.0.0.1:7001", "2@127.0.0.1:7002")
    assert loaded.consensus.engine == "paxos"
    assert loaded.consensus.tick_ms == 20


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="phalanx init"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[rpc]\nbody_bytes_max = -1\n", r"rpc\.body_bytes_max: expected a non-negative integer"),
        ("[rpc]\nbody_bytes_max = 0\n", r"rpc\.body_bytes_max: must be positive"),
        ("[rpc]\nunsafe = 1\n", r"rpc\.unsafe: expected true or false"),
        ("[consensus]\nengine = 'raft'\n", r"consensus\.engine: expected one of pbft, paxos"),
        ("[consensus]\ntick_ms = '50'\n", r"consensus\.tick_ms: expected a non-negative integer"),
        ("[consensus]\nfoo = 1\n", r"consensus\.foo: unknown key"),
        ("[bogus]\n", r"bogus: unknown section"),
        ("[p2p]\nlisten = 'nowhere'\n", r"p2p\.listen: expected host:port"),
        ("[p2p]\npeers = ['127.0.0.1:7000']\n", r"p2p\.peers\[0\]: expected '<validator index>@host:port'"),
        ("[p2p]\npeers = 'x'\n", r"p2p\.peers: expected a list of strings"),
        ("this is = not = toml\n", r"not valid TOML"),
        ("[p2p]\nheartbeat_ms = 0\n", r"p2p\.heartbeat_ms: must be positive"),
        ("[p2p]\nhandshake_timeout_ms = 0\n", r"p2p\.handshake_timeout_ms: must be positive"),
        ("[p2p]\nsend_queue_max = 8\n", r"p2p\.send_queue_max: must be at least 64"),
        ("[consensus]\nblock_time_ms = 0\n", r"consensus\.block_time_ms: must be positive"),
        ("[consensus]\nblock_bytes_max = 0\n", r"consensus\.block_bytes_max: must be positive"),
        ("[mempool]\nbytes_max = 0\n", r"mempool\.bytes_max: must be positive"),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)
