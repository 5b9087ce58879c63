"""The genesis file: chain id, start time, validators, initial balances, consensus params.

File format (``genesis.json``; every field required except ``faucet``; no other field)::

    {
      "chain_id": 7,
      "genesis_time": 1700000000000,            # milliseconds since the Unix epoch
      "validators": [{"name": "v0", "public_key": "<64 hex>"}, ...],
      "balances": {"0x<40 hex>": 1000000, ...},
      "consensus": {
        "engine": "pbft",                       # or "paxos"
        "checkpoint_interval": 100,             # blocks, >= 1
        "block_time_ms": 1000,
        "params": {}                            # engine-specific: str -> int | str | bool
      },
      "faucet": "0x<40 hex>"                    # optional, or null
    }

Fault tolerance: with ``n`` validators, PBFT tolerates ``f = (n - 1) // 3`` Byzantine ones
and Paxos ``f = (n - 1) // 2`` crashed ones; both accept ``n >= 1`` (a single validator
tolerates nothing, which is still useful for development).

Invariants of a :class:`Genesis` (checked by :func:`parse_genesis`, so an invalid one
cannot be loaded): validator names and keys unique and non-empty, between 1 and
``VALIDATORS_MAX`` of them; balances sorted by address, unique, each and their sum within
uint256; duplicate JSON keys anywhere are rejected (``json`` would silently keep the last).
Errors are :class:`~chain.errors.GenesisError` with a path-like reason, for example
``validators[2].public_key: not 64 hex chars``.

``Genesis.hash`` is SHA-256 of the canonical (sorted-keys, compact) JSON, so nodes can
compare genesis files. Block 0 has no proposer: its ``proposer`` field carries the first 20
bytes of ``Genesis.hash``, so the hash of block 0 commits to the whole genesis file.

Called by the node (startup), the state engine (initial balances), the testnet builder and
the CLI (``init``, ``testnet``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from chain.block import EMPTY_CERTIFICATE, ZERO_HASH, Block, build_block
from chain.errors import ChainError, GenesisError
from chain.keys import (
    PrivateKey,
    PublicKey,
    address_of,
    format_address,
    hex_digits_to_bytes,
    parse_address,
)

__all__ = [
    "ENGINES",
    "GENESIS_BYTES_MAX",
    "VALIDATORS_MAX",
    "Genesis",
    "GenesisValidator",
    "genesis_block",
    "load_genesis",
    "make_dev_genesis",
    "max_faulty",
    "parse_genesis",
]

ENGINES = ("pbft", "paxos")
#: Most validators a chain may have (a commit certificate holds at most this many votes).
VALIDATORS_MAX = 1024
#: Largest genesis file we read.
GENESIS_BYTES_MAX = 16 * 1024 * 1024
VALIDATOR_NAME_CHARS_MAX = 64
ENGINE_PARAM_KEY_CHARS_MAX = 64
ENGINE_PARAMS_MAX = 64
CHECKPOINT_INTERVAL_MAX = 1_000_000
BLOCK_TIME_MS_MAX = 3_600_000

_UINT64_MAX = (1 << 64) - 1
_UINT256_MAX = (1 << 256) - 1


@dataclass(frozen=True)
class GenesisValidator:
    """One validator: a human name and its 32-byte Ed25519 public key."""

    name: str
    public_key: bytes

    @property
    def address(self) -> bytes:
        """The validator's 20-byte address."""
        return address_of(self.public_key)


@dataclass(frozen=True)
class Genesis:
    """A validated genesis description (build it with :func:`parse_genesis`).

    Attributes:
        chain_id: the chain id every transaction and header carries (uint64).
        genesis_time: block 0's timestamp, ms since the Unix epoch.
        validators: the validator set, in index order (index = position).
        balances: ``(address, amount)`` pairs sorted by address, addresses unique.
        engine: ``"pbft"`` or ``"paxos"``.
        checkpoint_interval: blocks between checkpoints (>= 1).
        block_time_ms: target interval between blocks.
        engine_params: extra engine-specific settings (read-only mapping).
        faucet: an address the testnet tools may spend from, or None.
    """

    chain_id: int
    genesis_time: int
    validators: tuple[GenesisValidator, ...]
    balances: tuple[tuple[bytes, int], ...]
    engine: str = "pbft"
    checkpoint_interval: int = 100
    block_time_ms: int = 1000
    engine_params: Mapping[str, int | str | bool] = field(
        default_factory=lambda: MappingProxyType({})
    )
    faucet: bytes | None = None

    def __hash__(self) -> int:
        return hash(self.hash)

    @property
    def n(self) -> int:
        """Number of validators."""
        return len(self.validators)

    @property
    def f(self) -> int:
        """Faults tolerated by the configured engine (see :func:`max_faulty`)."""
        return max_faulty(self.engine, self.n)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file format above."""
        return {
            "chain_id": self.chain_id,
            "genesis_time": self.genesis_time,
            "validators": [
                {"name": v.name, "public_key": v.public_key.hex()} for v in self.validators
            ],
            "balances": {format_address(a): amount for a, amount in self.balances},
            "consensus": {
                "engine": self.engine,
                "checkpoint_interval": self.checkpoint_interval,
                "block_time_ms": self.block_time_ms,
                "params": dict(sorted(self.engine_params.items())),
            },
            "faucet": None if self.faucet is None else format_address(self.faucet),
        }

    def to_json(self) -> str:
        """Human-readable JSON that :func:`parse_genesis` reads back to an equal value."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @functools.cached_property
    def hash(self) -> bytes:
        """SHA-256 of the canonical JSON (sorted keys, no whitespace); computed once."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()

    def validator_index(self, public_key: bytes) -> int | None:
        """The index of the validator with this public key, or None."""
        for i, v in enumerate(self.validators):
            if v.public_key == public_key:
                return i
        return None


def max_faulty(engine: str, n: int) -> int:
    """Faults ``n`` validators tolerate: ``(n-1)//3`` for PBFT, ``(n-1)//2`` for Paxos."""
    if n < 1:
        return 0
    return (n - 1) // 3 if engine == "pbft" else (n - 1) // 2


# --- parsing -------------------------------------------------------------------------------


def _fail(path: str, reason: str) -> GenesisError:
    return GenesisError(f"{path}: {reason}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise GenesisError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _check_fields(obj: Any, path: str, required: set[str], optional: set[str]) -> None:
    if not isinstance(obj, dict):
        raise _fail(path or "genesis", f"must be an object, got {_json_type(obj)}")
    missing = sorted(required - obj.keys())
    if missing:
        raise _fail(f"{path}.{missing[0]}" if path else missing[0], "missing field")
    extra = sorted(obj.keys() - required - optional)
    if extra:
        raise _fail(f"{path}.{extra[0]}" if path else extra[0], "unknown field")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {_json_type(value)}")
    if value < low:
        raise _fail(path, f"must be >= {low}, got {value}")
    if value > high:
        raise _fail(path, f"must be <= {high}, got {value}")
    return value


def _address(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(path, f"must be an address string, got {_json_type(value)}")
    try:
        return parse_address(value)
    except ChainError as e:
        raise _fail(path, str(e)) from None


def _validators(value: Any) -> tuple[GenesisValidator, ...]:
    if not isinstance(value, list):
        raise _fail("validators", f"must be an array, got {_json_type(value)}")
    if not value:
        raise _fail("validators", "at least one validator is required")
    if len(value) > VALIDATORS_MAX:
        raise _fail("validators", f"{len(value)} validators, at most {VALIDATORS_MAX}")
    out: list[GenesisValidator] = []
    names: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for i, item in enumerate(value):
        path = f"validators[{i}]"
        _check_fields(item, path, {"name", "public_key"}, set())
        name = item["name"]
        if not isinstance(name, str) or not name.strip():
            raise _fail(f"{path}.name", "must be a non-empty string")
        if len(name) > VALIDATOR_NAME_CHARS_MAX or not name.isprintable():
            raise _fail(
                f"{path}.name", f"must be printable, at most {VALIDATOR_NAME_CHARS_MAX} chars"
            )
        pk_hex = item["public_key"]
        if not isinstance(pk_hex, str) or len(pk_hex) != 64:
            raise _fail(f"{path}.public_key", "not 64 hex chars")
        public_key = hex_digits_to_bytes(pk_hex)
        if public_key is None:
            raise _fail(f"{path}.public_key", "not 64 hex chars")
        if name in names:
            raise _fail(f"{path}.name", f"duplicate of validators[{names[name]}].name")
        if public_key in keys:
            raise _fail(
                f"{path}.public_key", f"duplicate of validators[{keys[public_key]}].public_key"
            )
        names[name] = i
        keys[public_key] = i
        out.append(GenesisValidator(name=name, public_key=public_key))
    return tuple(out)


def _balances(value: Any) -> tuple[tuple[bytes, int], ...]:
    if not isinstance(value, dict):
        raise _fail("balances", f"must be an object of address -> amount, got {_json_type(value)}")
    out: dict[bytes, int] = {}
    total = 0
    for text, amount in value.items():
        path = f"balances[{text}]"
        addr = _address(text, path)
        if addr in out:  # same address in two spellings (upper/lower case hex)
            raise _fail(path, "duplicate address")
        out[addr] = _int(amount, path, 0, _UINT256_MAX)
        total += amount
    if total > _UINT256_MAX:
        raise _fail("balances", "total supply exceeds uint256")
    return tuple(sorted(out.items()))


def _consensus(value: Any, n: int) -> tuple[str, int, int, Mapping[str, int | str | bool]]:
    _check_fields(
        value, "consensus", {"engine", "checkpoint_interval", "block_time_ms", "params"}, set()
    )
    engine = value["engine"]
    if engine not in ENGINES:
        raise _fail("consensus.engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if n < 1:  # both engines run with one validator (f = 0); kept explicit for new engines
        raise _fail("validators", f"{engine} needs at least 1 validator")
    interval = _int(
        value["checkpoint_interval"], "consensus.checkpoint_interval", 1, CHECKPOINT_INTERVAL_MAX
    )
    block_time = _int(value["block_time_ms"], "consensus.block_time_ms", 1, BLOCK_TIME_MS_MAX)
    raw = value["params"]
    if not isinstance(raw, dict):
        raise _fail("consensus.params", f"must be an object, got {_json_type(raw)}")
    if len(raw) > ENGINE_PARAMS_MAX:
        raise _fail("consensus.params", f"at most {ENGINE_PARAMS_MAX} entries")
    params: dict[str, int | str | bool] = {}
    for key, item in sorted(raw.items()):
        if not key or len(key) > ENGINE_PARAM_KEY_CHARS_MAX:
            raise _fail(f"consensus.params.{key}", "key must be 1 to 64 characters")
        if not isinstance(item, int | str | bool):
            raise _fail(
                f"consensus.params.{key}",
                f"must be an integer, string or boolean, got {_json_type(item)}",
            )
        params[key] = item
    return engine, interval, block_time, MappingProxyType(params)


def parse_genesis(obj: dict[str, Any]) -> Genesis:
    """Validate a parsed genesis JSON object.

    Args:
        obj: the object (as from ``json.loads``).

    Returns:
        The genesis.

    Raises:
        GenesisError: naming the first offending field, e.g.
            ``validators[2].public_key: not 64 hex chars``.
    """
    _check_fields(
        obj,
        "",
        {"chain_id", "genesis_time", "validators", "balances", "consensus"},
        {"faucet"},
    )
    chain_id = _int(obj["chain_id"], "chain_id", 0, _UINT64_MAX)
    genesis_time = _int(obj["genesis_time"], "genesis_time", 0, _UINT64_MAX)
    validators = _validators(obj["validators"])
    balances = _balances(obj["balances"])
    engine, interval, block_time, params = _consensus(obj["consensus"], len(validators))
    faucet_raw = obj.get("faucet")
    faucet = None if faucet_raw is None else _address(faucet_raw, "faucet")
    return Genesis(
        chain_id=chain_id,
        genesis_time=genesis_time,
        validators=validators,
        balances=balances,
        engine=engine,
        checkpoint_interval=interval,
        block_time_ms=block_time,
        engine_params=params,
        faucet=faucet,
    )


def load_genesis(path: str | os.PathLike[str]) -> Genesis:
    """Read and validate a genesis file.

    Raises:
        GenesisError: missing or unreadable file, too large, not JSON (or duplicate keys),
            or invalid content (see :func:`parse_genesis`).
    """
    target = Path(path)
    try:
        with target.open("rb") as fh:
            raw = fh.read(GENESIS_BYTES_MAX + 1)
    except FileNotFoundError:
        raise GenesisError(f"{target}: genesis file not found") from None
    except OSError as e:
        raise GenesisError(f"{target}: cannot read genesis file: {e.strerror or e}") from None
    if len(raw) > GENESIS_BYTES_MAX:
        raise GenesisError(f"{target}: larger than {GENESIS_BYTES_MAX} bytes")
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except GenesisError as e:
        raise GenesisError(f"{target}: {e}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise GenesisError(f"{target}: not valid JSON: {e}") from None
    try:
        return parse_genesis(obj)
    except GenesisError as e:
        raise GenesisError(f"{target}: {e}") from None


def genesis_block(g: Genesis) -> Block:
    """Block 0: no transactions, zero parent and state root, timestamp ``genesis_time``.

    Its ``proposer`` field is ``g.hash[:20]`` (see the module docstring).
    """
    return build_block(
        chain_id=g.chain_id,
        height=0,
        parent_hash=ZERO_HASH,
        timestamp=g.genesis_time,
        proposer=g.hash[:20],
        state_root=ZERO_HASH,
        transactions=(),
        last_commit=EMPTY_CERTIFICATE,
    )


def make_dev_genesis(
    keys: Sequence[PrivateKey | PublicKey],
    *,
    chain_id: int,
    balances: Mapping[bytes, int] | Iterable[tuple[bytes, int]] = (),
    genesis_time: int = 0,
    engine: str = "pbft",
    checkpoint_interval: int = 100,
    block_time_ms: int = 1000,
    engine_params: Mapping[str, int | str | bool] | None = None,
    faucet: bytes | None = None,
    names: Sequence[str] | None = None,
) -> Genesis:
    """Build a validated genesis for tests, testnets and ``phalanx init``.

    Validators are named ``v0``, ``v1``, ... unless ``names`` is given. The result goes
    through :func:`parse_genesis`, so it obeys every rule a file does.

    Raises:
        GenesisError: the arguments describe an invalid genesis.
    """
    publics = [k.public_key if isinstance(k, PrivateKey) else k for k in keys]
    labels = list(names) if names is not None else [f"v{i}" for i in range(len(publics))]
    if len(labels) != len(publics):
        raise GenesisError("names: must have one name per key")
    pairs = list(balances.items()) if isinstance(balances, Mapping) else list(balances)
    obj_balances: dict[str, int] = {}
    for addr, amount in pairs:
        text = format_address(addr)
        if text in obj_balances:
            raise _fail(f"balances[{text}]", "duplicate address")
        obj_balances[text] = amount
    obj: dict[str, Any] = {
        "chain_id": chain_id,
        "genesis_time": genesis_time,
        "validators": [
            {"name": name, "public_key": pk.raw.hex()}
            for name, pk in zip(labels, publics, strict=True)
        ],
        "balances": obj_balances,
        "consensus": {
            "engine": engine,
            "checkpoint_interval": checkpoint_interval,
            "block_time_ms": block_time_ms,
            "params": dict(engine_params or {}),
        },
        "faucet": None if faucet is None else format_address(faucet),
    }
    return parse_genesis(obj)
