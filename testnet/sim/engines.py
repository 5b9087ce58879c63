"""Engine adapters: how the simulator builds, decodes and verifies each consensus engine.

Every engine follows the contract in :mod:`consensus.contract`; what differs is its
constructor, its ``decode_message`` and how a certificate is checked. An
:class:`EngineSpec` captures those three, and :data:`ENGINES` names them (``toy``, ``pbft``,
``paxos``). The PBFT and Paxos adapters import their engines lazily, so the simulator and
its tests work with the toy engine alone.

Called by: :mod:`testnet.sim.runner`, ``phalanx sim`` and ``testnet/bench_sim.py``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from consensus.contract import Delivery, Engine, NodeId, Signer, Validity, Verifier

__all__ = ["ENGINES", "EngineSpec", "NodeSetup", "make_keys"]


@dataclass(frozen=True, slots=True)
class NodeSetup:
    """Everything one engine instance is built from."""

    node_id: NodeId
    n: int
    f: int
    signer: Signer
    verifier: Verifier
    validity: Validity
    rng: random.Random
    options: tuple[tuple[str, Any], ...] = ()   # engine config overrides, e.g. timeouts


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """How to drive one engine kind."""

    name: str
    byzantine: bool      # True: n >= 3f+1 tolerates f Byzantine; False: crash-only, 2f+1
    build: Callable[[NodeSetup], Engine]
    decode: Callable[[bytes], Any]
    #: ``(any setup of this run) -> check(delivery)``; built once per run.
    make_verify: Callable[[NodeSetup], Callable[[Delivery], bool]]


# -- keys -----------------------------------------------------------------------------------

class _SimHashSigner:
    """A cheap deterministic signer (SHA-256 of a per-node secret and the data)."""

    def __init__(self, node_id: NodeId, secret: bytes) -> None:
        self._node_id = node_id
        self._secret = secret

    @property
    def node_id(self) -> NodeId:
        return self._node_id

    def sign(self, data: bytes) -> bytes:
        return hashlib.sha256(self._secret + data).digest()


class _SimHashVerifier:
    def __init__(self, secrets: dict[int, bytes]) -> None:
        self._secrets = secrets

    def verify(self, node: NodeId, data: bytes, signature: bytes) -> bool:
        secret = self._secrets.get(int(node))
        return secret is not None and hashlib.sha256(secret + data).digest() == signature


def make_keys(n: int, kind: str, seed: int) -> tuple[list[Signer], Verifier]:
    """Signers for nodes ``0..n-1`` and one verifier that knows them all.

    ``kind`` is ``"hash"`` (cheap, for sweeps) or ``"ed25519"``. Uses
    ``consensus.signing.make_keyring`` when present, else a local hash signer.
    """
    try:
        from consensus import signing
    except ImportError:
        signing = None  # type: ignore[assignment]
    if signing is not None and hasattr(signing, "make_keyring"):
        ring = signing.make_keyring(n, kind, b"phalanx-sim-%d" % seed)  # type: ignore[arg-type]
        return _unpack_keyring(ring, n)
    if kind != "hash":
        raise ValueError(f"key kind {kind!r} needs consensus.signing")
    secrets = {i: hashlib.sha256(b"sim-key:%d:%d" % (seed, i)).digest() for i in range(n)}
    signers: list[Signer] = [_SimHashSigner(NodeId(i), secrets[i]) for i in range(n)]
    return signers, _SimHashVerifier(secrets)


def _unpack_keyring(ring: Any, n: int) -> tuple[list[Signer], Verifier]:
    if isinstance(ring, tuple) and len(ring) == 2:
        signers, verifier = ring
        return list(signers), verifier
    signers = list(ring.signers)
    return signers, ring.verifier


# -- toy ------------------------------------------------------------------------------------

def _toy_build(s: NodeSetup) -> Engine:
    from testnet.sim.toy import ToyConfig, ToyEngine
    return ToyEngine(ToyConfig(n=s.n), s.node_id, s.signer, s.verifier)


def _toy_decode(data: bytes) -> Any:
    from testnet.sim.toy import decode_message
    return decode_message(data)


def _toy_verify(s: NodeSetup) -> Callable[[Delivery], bool]:
    from testnet.sim.toy import verify_delivery
    verifier = s.verifier
    return lambda d: verify_delivery(d, verifier)


# -- pbft -----------------------------------------------------------------------------------

def _pbft_config(s: NodeSetup) -> Any:
    from consensus.pbft.config import PbftConfig
    return PbftConfig(n=s.n, f=s.f, **dict(s.options))


def _pbft_build(s: NodeSetup) -> Engine:
    from consensus.pbft.replica import PbftReplica
    replica: Engine = PbftReplica(_pbft_config(s), s.node_id, s.signer, s.verifier, s.validity,
                                  s.rng)
    return replica


def _pbft_decode(data: bytes) -> Any:
    from consensus.pbft.messages import decode_message
    return decode_message(data)


def _pbft_verify(s: NodeSetup) -> Callable[[Delivery], bool]:
    """The replica's own certificate check, bound to the delivered value's digest."""
    from consensus.pbft.replica import PbftReplica

    config = _pbft_config(s)
    checker = PbftReplica(config, s.node_id, s.signer, s.verifier, s.validity, s.rng)
    return lambda d: d.certificate.seq == d.seq and bool(
        checker.verify_certificate(d.certificate, config.digest_of(d.value)))


# -- paxos ----------------------------------------------------------------------------------

def _paxos_config(s: NodeSetup) -> Any:
    from consensus.paxos.config import PaxosConfig
    return PaxosConfig(n=s.n, **dict(s.options))


def _paxos_build(s: NodeSetup) -> Engine:
    from consensus.paxos.replica import PaxosReplica
    replica: Engine = PaxosReplica(_paxos_config(s), s.node_id, s.signer, s.verifier,
                                   s.validity, s.rng)
    return replica


def _paxos_decode(data: bytes) -> Any:
    from consensus.paxos.messages import decode_message
    return decode_message(data)


def _paxos_verify(s: NodeSetup) -> Callable[[Delivery], bool]:
    from consensus.paxos.config import verify_certificate

    config = _paxos_config(s)
    verifier = s.verifier
    return lambda d: d.certificate.seq == d.seq and bool(verify_certificate(
        d.certificate, d.value, verifier, config.n, config.instance_tag))


ENGINES: dict[str, EngineSpec] = {
    "toy": EngineSpec("toy", False, _toy_build, _toy_decode, _toy_verify),
    "pbft": EngineSpec("pbft", True, _pbft_build, _pbft_decode, _pbft_verify),
    "paxos": EngineSpec("paxos", False, _paxos_build, _paxos_decode, _paxos_verify),
}
