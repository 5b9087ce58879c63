"""Building the consensus engine of a node: PBFT or Paxos, optionally Byzantine-wrapped.

Theory of operation
-------------------
:func:`build_engine` turns the genesis (validator set, engine kind, checkpoint interval) and
the node's key into a sans-IO engine plus the few engine-specific functions the rest of the
node needs, bundled in :class:`EngineKit`:

* ``decode_message`` / ``decode_record``: wire messages and WAL records (each engine has its own);
* ``verify_commit``: checks a stored :class:`chain.block.CommitCertificate` (what catching-up
  peers receive) by rebuilding the consensus :class:`~consensus.contract.Certificate` from
  ``(seq, view, digest, votes)``. PBFT signs the block hash, so it needs no block bytes;
  Paxos signs its own digest of the value, so it asks for the encoded block lazily;
* ``leader``: who should propose now (PBFT: ``view mod n``; Paxos: the elected leader).

Every replica of one chain must agree on the PBFT parameters that shape the protocol (n, f,
checkpoint interval, instance tag), so they come from the genesis, never from config.toml;
timers come from config.toml (they may differ per node). The instance tag is derived from
the chain id, so votes of one chain are worthless on another.

``node.byzantine`` (test networks only) wraps the honest engine with
``consensus.byzantine.BEHAVIOURS[kind]``; the honest engine stays reachable as ``kit.inner``
for statistics and leader queries.

Called by :mod:`node.runtime` and the driver tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chain.block import CommitCertificate
from chain.genesis import Genesis
from chain.keys import PrivateKey
from consensus.byzantine import BEHAVIOURS, ByzantineContext
from consensus.contract import Certificate, Engine, NodeId, Signer, Validity, Verifier
from consensus.signing import Ed25519Signer, Ed25519Verifier

__all__ = ["EngineKit", "build_engine", "instance_tag_of", "make_signing"]

#: Ticks of PBFT's retransmission period (status, own votes) at the default 50 ms tick.
RETRANSMIT_TICKS = 4


class EngineSetupError(Exception):
    """The genesis and config describe an engine the node cannot build."""


def instance_tag_of(chain_id: int) -> bytes:
    """The tag mixed into every consensus signature of chain ``chain_id``."""
    return b"phalanx/chain/" + chain_id.to_bytes(8, "big")


def make_signing(genesis: Genesis, key: PrivateKey) -> tuple[NodeId, Signer, Verifier]:
    """This node's id (its index in the genesis validator list), signer and verifier.

    Raises:
        EngineSetupError: the key is not one of the genesis validators.
    """
    index = genesis.validator_index(key.public_key.raw)
    if index is None:
        raise EngineSetupError(
            f"key {key.public_key.raw.hex()[:16]}... is not a validator of chain {genesis.chain_id}"
        )
    node_id = NodeId(index)
    verifier = Ed25519Verifier({NodeId(i): v.public_key for i, v in enumerate(genesis.validators)})
    return node_id, Ed25519Signer(node_id, key.seed), verifier


@dataclass
class EngineKit:
    """An engine and the engine-specific helpers the node uses (see module docstring)."""

    kind: str
    engine: Engine
    inner: Any
    node_id: NodeId
    n: int
    f: int
    decode_message: Callable[[bytes], Any]
    decode_record: Callable[[bytes], Any]
    verify_commit: Callable[[CommitCertificate, Callable[[], bytes]], bool]
    leader: Callable[[], int | None]
    checkpoint_interval: int = 1
    byzantine: str = ""

    def view(self) -> int:
        """The engine's current view (PBFT) or ballot round (Paxos)."""
        stats = self.inner.statistics()
        if self.kind == "pbft":
            return int(stats.view)
        return int(getattr(stats.ballot, "round", 0))


def build_engine(
    genesis: Genesis,
    node_id: NodeId,
    signer: Signer,
    verifier: Verifier,
    validity: Validity,
    digest: Callable[[bytes], bytes],
    *,
    view_timeout_ticks: int = 40,
    view_timeout_ticks_max: int = 1280,
    byzantine: str = "",
    forge_value: Callable[[], bytes] | None = None,
    rng: random.Random | None = None,
) -> EngineKit:
    """Build the engine named by ``genesis.engine`` for validator ``node_id``.

    Args:
        genesis: the chain (validators, engine, checkpoint interval).
        node_id: this validator's index.
        signer / verifier: consensus signatures.
        validity: the application's check of a proposed block.
        digest: the value digest (the block hash) for PBFT.
        view_timeout_ticks / view_timeout_ticks_max: view-change timers.
        byzantine: a key of ``consensus.byzantine.BEHAVIOURS`` or "" (honest).
        forge_value: for Byzantine behaviours that forge values.
        rng: injected randomness.

    Raises:
        EngineSetupError: unknown engine or behaviour.
    """
    rng = rng or random.Random(int(node_id))
    tag = instance_tag_of(genesis.chain_id)
    n = genesis.n
    kit: EngineKit
    if genesis.engine == "pbft":
        from consensus.pbft import PbftConfig, PbftReplica, decode_message, decode_record
        from consensus.pbft import verify_certificate as pbft_verify

        interval = genesis.checkpoint_interval
        cfg = PbftConfig(
            n=n,
            checkpoint_interval=interval,
            watermark_window=max(2 * interval, 16),
            view_timeout_ticks=view_timeout_ticks,
            view_timeout_ticks_max=view_timeout_ticks_max,
            batch_values_max=1,
            retransmit_ticks=RETRANSMIT_TICKS,
            instance_tag=tag,
            digest_fn=digest,
        )
        replica = PbftReplica(cfg, node_id, signer, verifier, validity, rng)

        def verify_pbft(cert: CommitCertificate, value: Callable[[], bytes]) -> bool:
            del value
            c = Certificate(
                cert.seq, cert.view, cert.block_hash,
                tuple((v.validator_index, v.signature) for v in cert.votes),
            )
            return bool(pbft_verify(cfg, verifier, c, cert.block_hash))

        kit = EngineKit(
            "pbft", replica, replica, node_id, n, cfg.faults, decode_message, decode_record,
            verify_pbft, lambda: int(cfg.primary_of(replica.view)), interval,
        )
    elif genesis.engine == "paxos":
        from consensus.paxos import PaxosConfig, PaxosReplica
        from consensus.paxos import verify_certificate as paxos_verify
        from consensus.paxos.messages import decode_message as paxos_decode
        from consensus.paxos.messages import digest_of as paxos_digest
        from consensus.paxos.records import decode_record as paxos_record

        interval = genesis.checkpoint_interval
        pcfg = PaxosConfig(
            n=n, instance_tag=tag, checkpoint_interval=interval,
            window=max(256, 2 * interval), batch_values_max=1,
        )
        preplica = PaxosReplica(pcfg, node_id, signer, verifier, validity, rng)

        def verify_paxos(cert: CommitCertificate, value: Callable[[], bytes]) -> bool:
            encoded = value()
            c = Certificate(
                cert.seq, cert.view, paxos_digest(encoded),
                tuple((v.validator_index, v.signature) for v in cert.votes),
            )
            return bool(paxos_verify(c, encoded, verifier, n, tag))

        def paxos_leader() -> int | None:
            leader = preplica.leader()
            return None if leader is None else int(leader)

        kit = EngineKit(
            "paxos", preplica, preplica, node_id, n, (n - 1) // 2, paxos_decode, paxos_record,
            verify_paxos, paxos_leader, interval,
        )
    else:
        raise EngineSetupError(f"unknown consensus engine {genesis.engine!r}")
    if byzantine:
        behaviour = BEHAVIOURS.get(byzantine)
        if behaviour is None:
            raise EngineSetupError(
                f"unknown Byzantine behaviour {byzantine!r} (known: {', '.join(sorted(BEHAVIOURS))})"
            )
        ctx = ByzantineContext(
            node_id=node_id, n=n, f=kit.f, signer=signer, rng=rng,
            forge_value=forge_value or (lambda: b""),
            options=(("instance_tag", tag),),
        )
        kit.engine = behaviour(kit.engine, ctx)
        kit.byzantine = byzantine
    return kit
