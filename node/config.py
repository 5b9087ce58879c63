"""Node configuration: ``config.toml`` under the node's home directory.

The home directory (``--home``, default ``~/.phalanx``) holds::

    config.toml      this file's schema (below)
    genesis.json     the chain's genesis (chain.genesis)
    keys/            validator.json (Ed25519 identity and signing key, mode 0600)
    data/            LevelDB ledger (data/ledger) and the consensus WAL (data/consensus.wal)
    logs/            node.jsonl, one JSON object per line

Every field has a default, so a config file only needs what differs. Unknown sections or keys,
wrong types and out-of-range values are refused with the dotted path of the offending field
(``rpc.body_bytes_max: expected a positive integer, got -1``): a typo must not silently fall
back to a default.

Called by ``node.runtime`` at start-up and by ``phalanx init`` / ``phalanx testnet`` to write
configs.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from node.clock import CLOCK_SKEW_MS_MAX
from node.logs import LOG_LEVELS

__all__ = [
    "ConfigError",
    "ConsensusSection",
    "MempoolSection",
    "NodeConfig",
    "NodeSection",
    "P2PSection",
    "RpcSection",
    "StorageSection",
    "TestingSection",
    "default_home",
    "load_config",
    "write_config",
]

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
KEY_FILE = "keys/validator.json"


class ConfigError(Exception):
    """Raised when a config file is missing, unparsable, or a field fails validation."""


def default_home() -> Path:
    return Path(os.environ.get("PHALANX_HOME", "~/.phalanx")).expanduser()


@dataclass(frozen=True)
class NodeSection:
    moniker: str = "node"
    log_level: str = "info"
    #: Byzantine behaviour to switch on (off by default; loudly logged when on).
    byzantine: str = ""


@dataclass(frozen=True)
class P2PSection:
    listen: str = "127.0.0.1:26656"
    #: ``"<validator index>@host:port"`` entries for the other validators.
    peers: tuple[str, ...] = ()
    frame_bytes_max: int = 8 * 1024 * 1024
    send_queue_max: int = 1024
    handshake_timeout_ms: int = 5000
    heartbeat_ms: int = 500
    #: Time between two rounds of Cristian time requests to every connected peer.
    clock_sync_ms: int = 1000
    #: Failure detector: a peer is suspected when its phi-accrual level reaches this.
    suspect_phi: int = 8
    #: Failure detector: silence always tolerated on top of the mean heartbeat interval.
    suspect_pause_ms: int = 2000


@dataclass(frozen=True)
class RpcSection:
    listen: str = "127.0.0.1:26657"
    body_bytes_max: int = 1024 * 1024
    #: Allow methods that change the node's behaviour (fault injection, unsafe resets).
    unsafe: bool = False
    websocket_clients_max: int = 64


@dataclass(frozen=True)
class ConsensusSection:
    engine: str = "pbft"
    tick_ms: int = 50
    block_time_ms: int = 200
    block_txs_max: int = 2000
    block_bytes_max: int = 4 * 1024 * 1024
    view_timeout_ticks: int = 40
    view_timeout_ticks_max: int = 1280
    checkpoint_interval: int = 50
    #: Largest allowed distance between a block's timestamp and the validators' median time.
    timestamp_drift_ms_max: int = 10_000


@dataclass(frozen=True)
class MempoolSection:
    tx_count_max: int = 20_000
    bytes_max: int = 64 * 1024 * 1024
    per_sender_max: int = 256
    nonce_gap_max: int = 64
    fee_min: int = 0
    #: Period of the re-gossip of long-pending transactions (``node.tx_rebroadcast``); 0 = off.
    rebroadcast_ms: int = 5000


@dataclass(frozen=True)
class StorageSection:
    """Pruning and snapshot serving (see ``node.snapshot_sync``).

    ``retain_blocks``: block data kept below the latest stable checkpoint; older blocks,
    certificates, receipts and tx index entries are pruned (0 = keep everything). A node
    that falls behind a peer's floor catches up from that peer's verified snapshot.
    ``snapshot_chunk_bytes_max``: bound of one snapshot chunk on the wire.
    ``snapshot_bytes_max``: largest snapshot served or accepted.
    ``snapshot_chunks_per_s``: snapshot chunks served to one peer per second (and burst).
    """

    retain_blocks: int = 0
    snapshot_chunk_bytes_max: int = 512 * 1024
    snapshot_bytes_max: int = 256 * 1024 * 1024
    snapshot_chunks_per_s: int = 20


@dataclass(frozen=True)
class TestingSection:
    """Faults for test networks only; refused unless ``test_network_only = true``.

    ``clock_skew_ms``: shifts this node's wall clock (the timestamps it proposes and the time
    it answers to peers' clock-sync requests) by this many ms, negative for behind.
    ``diverge_at_height``: when this node executes that block, it charges the block's first
    transaction one more unit of gas, so its receipt and state differ from every other node's
    (``node.diverge_fault``; 0 = off).
    """

    test_network_only: bool = False
    clock_skew_ms: int = 0
    diverge_at_height: int = 0


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    node: NodeSection = field(default_factory=NodeSection)
    p2p: P2PSection = field(default_factory=P2PSection)
    rpc: RpcSection = field(default_factory=RpcSection)
    consensus: ConsensusSection = field(default_factory=ConsensusSection)
    mempool: MempoolSection = field(default_factory=MempoolSection)
    storage: StorageSection = field(default_factory=StorageSection)
    testing: TestingSection = field(default_factory=TestingSection)

    @property
    def genesis_path(self) -> Path:
        return self.home / GENESIS_FILE

    @property
    def key_path(self) -> Path:
        return self.home / KEY_FILE

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        return self.home / "logs" / "node.jsonl"

    def to_toml(self) -> str:
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "home" or (f.name == "testing" and self.testing == TestingSection()):
                continue
            section = getattr(self, f.name)
            doc[f.name] = {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(section).items()
            }
        return tomli_w.dumps(doc)


_SECTIONS: dict[str, type] = {
    "node": NodeSection,
    "p2p": P2PSection,
    "rpc": RpcSection,
    "consensus": ConsensusSection,
    "mempool": MempoolSection,
    "storage": StorageSection,
    "testing": TestingSection,
}
#: Integer fields that may be negative.
_SIGNED = frozenset({"testing.clock_skew_ms"})
_ENGINES = ("pbft", "paxos")
#: Smallest per-peer send queue (frames): a view change or a retransmission period is a burst.
SEND_QUEUE_MIN = 64



def parse_config(doc: dict[str, Any], home: Path) -> NodeConfig:
    """Validate a parsed TOML document into a :class:`NodeConfig`.

    Raises:
        ConfigError: naming the first offending field.
    """
    sections: dict[str, Any] = {}
    for name in doc:
        if name not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section (known: {', '.join(_SECTIONS)})")
    for name, cls in _SECTIONS.items():
        raw = doc.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: expected a table")
        sections[name] = _build_section(name, cls, raw)
    config = NodeConfig(home=home, **sections)
    _check_semantics(config)
    return config


def _build_section(name: str, cls: type, raw: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key}: unknown key (known: {', '.join(fields)})")
        default = fields[key].default
        values[key] = _coerce(f"{name}.{key}", default, value)
    return cls(**values)


def _coerce(path: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int) or (value < 0 and path not in _SIGNED):
            raise ConfigError(f"{path}: expected a non-negative integer, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise AssertionError(f"unhandled config type for {path}")


def parse_host_port(path: str, text: str) -> tuple[str, int]:
    """Split ``host:port``; raise ConfigError naming ``path`` when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{path}: expected host:port, got {text!r}")
    return host, int(port)


def _check_semantics(c: NodeConfig) -> None:
    if c.consensus.engine not in _ENGINES:
        raise ConfigError(
            f"consensus.engine: expected one of {', '.join(_ENGINES)}, got {c.consensus.engine!r}"
        )
    if c.node.log_level not in LOG_LEVELS:
        raise ConfigError(f"node.log_level: expected one of {', '.join(LOG_LEVELS)}")
    parse_host_port("p2p.listen", c.p2p.listen)
    parse_host_port("rpc.listen", c.rpc.listen)
    for i, peer in enumerate(c.p2p.peers):
        index, sep, addr = peer.partition("@")
        if not sep or not index.isdigit():
            raise ConfigError(f"p2p.peers[{i}]: expected '<validator index>@host:port', got {peer!r}")
        parse_host_port(f"p2p.peers[{i}]", addr)
    positive = [
        ("consensus.tick_ms", c.consensus.tick_ms),
        ("consensus.block_txs_max", c.consensus.block_txs_max),
        ("consensus.checkpoint_interval", c.consensus.checkpoint_interval),
        ("consensus.view_timeout_ticks", c.consensus.view_timeout_ticks),
        ("p2p.frame_bytes_max", c.p2p.frame_bytes_max),
        ("p2p.suspect_phi", c.p2p.suspect_phi),
        ("rpc.body_bytes_max", c.rpc.body_bytes_max),
        ("mempool.tx_count_max", c.mempool.tx_count_max),
        ("mempool.per_sender_max", c.mempool.per_sender_max),
        ("consensus.timestamp_drift_ms_max", c.consensus.timestamp_drift_ms_max),
        ("p2p.clock_sync_ms", c.p2p.clock_sync_ms),
        ("p2p.heartbeat_ms", c.p2p.heartbeat_ms),
        ("p2p.handshake_timeout_ms", c.p2p.handshake_timeout_ms),
        ("consensus.block_time_ms", c.consensus.block_time_ms),
        ("consensus.block_bytes_max", c.consensus.block_bytes_max),
        ("mempool.bytes_max", c.mempool.bytes_max),
        ("storage.snapshot_chunk_bytes_max", c.storage.snapshot_chunk_bytes_max),
        ("storage.snapshot_bytes_max", c.storage.snapshot_bytes_max),
        ("storage.snapshot_chunks_per_s", c.storage.snapshot_chunks_per_s),
    ]
    for path, value in positive:
        if value <= 0:
            raise ConfigError(f"{path}: must be positive, got {value}")
    if c.p2p.send_queue_max < SEND_QUEUE_MIN:
        raise ConfigError(f"p2p.send_queue_max: must be at least {SEND_QUEUE_MIN} (a peer's "
                          f"queue holds a burst of consensus messages), got {c.p2p.send_queue_max}")
    # A chunk travels in one frame with its proof and envelope; keep ample room for them.
    if c.storage.snapshot_chunk_bytes_max > c.p2p.frame_bytes_max // 2:
        raise ConfigError(
            f"storage.snapshot_chunk_bytes_max: must be at most half of p2p.frame_bytes_max "
            f"({c.p2p.frame_bytes_max // 2}), got {c.storage.snapshot_chunk_bytes_max}"
        )
    if c.consensus.view_timeout_ticks_max < c.consensus.view_timeout_ticks:
        raise ConfigError("consensus.view_timeout_ticks_max: must be >= view_timeout_ticks")
    if c.testing.clock_skew_ms and not c.testing.test_network_only:
        raise ConfigError("testing.clock_skew_ms: a test-network fault; set "
                          "testing.test_network_only = true to use it")
    if c.testing.diverge_at_height and not c.testing.test_network_only:
        raise ConfigError("testing.diverge_at_height: a test-network fault; set "
                          "testing.test_network_only = true to use it")
    if abs(c.testing.clock_skew_ms) > CLOCK_SKEW_MS_MAX:
        raise ConfigError(f"testing.clock_skew_ms: at most {CLOCK_SKEW_MS_MAX} ms either way, "
                          f"got {c.testing.clock_skew_ms}")


def load_config(home: str | os.PathLike[str]) -> NodeConfig:
    """Read and validate ``<home>/config.toml``.

    Raises:
        ConfigError: the file is missing, not TOML, or a field is invalid.
    """
    home_path = Path(home).expanduser()
    path = home_path / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no config file (run `phalanx init --home {home_path}`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        return parse_config(doc, home_path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def write_config(config: NodeConfig) -> Path:
    """Write ``config.toml`` into ``config.home`` (creating the home layout)."""
    for sub in ("keys", "data", "logs"):
        (config.home / sub).mkdir(parents=True, exist_ok=True)
    path = config.home / CONFIG_FILE
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(config.to_toml(), encoding="utf-8")
    os.replace(tmp, path)
    return path
