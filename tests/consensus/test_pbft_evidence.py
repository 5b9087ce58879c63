"""PBFT evidence: the replica's own reports verify, forgeries and non-conflicts do not."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from consensus.contract import Evidence, InvalidMessage, NodeId, Receive
from consensus.pbft import PbftConfig, PbftReplica
from consensus.pbft.evidence import check_evidence, decode_evidence, encode_evidence, evidence_key
from tests.consensus.cluster import Keys

TAG = b"phalanx/test-evidence"


def _config() -> PbftConfig:
    return PbftConfig(n=4, instance_tag=TAG)


def _replica_evidence(keys: Keys, first: object, second: object) -> Evidence:
    """Evidence as a real replica reports it (replica 1 fed both messages)."""
    replica = PbftReplica(_config(), NodeId(1), keys.signers[1], keys.verifier, lambda v: True,
                          random.Random(1))
    replica.step(Receive(NodeId(int(first.sender)), first))  # type: ignore[attr-defined]
    out = replica.step(Receive(NodeId(int(second.sender)), second))  # type: ignore[attr-defined]
    (ev,) = out.evidence
    return ev


@pytest.mark.parametrize("kind", ["equivocation", "double-prepare", "double-commit"])
def test_replica_evidence_round_trips_and_verifies(kind: str) -> None:
    keys = Keys(_config(), "ed25519")
    a: Any
    b: Any
    if kind == "equivocation":
        a, b = keys.pre_prepare(0, 1, b"A"), keys.pre_prepare(0, 1, b"B")
    elif kind == "double-prepare":
        a, b = keys.prepare(0, 1, b"A", 2), keys.prepare(0, 1, b"B", 2)
    else:
        a, b = keys.commit(0, 1, b"A", 3), keys.commit(0, 1, b"B", 3)
    ev = _replica_evidence(keys, a, b)
    assert ev.kind == kind
    back = decode_evidence(encode_evidence(ev))
    assert back == ev and evidence_key(back) == (int(a.sender), kind, 0, 1)
    assert check_evidence(back, keys.verifier, TAG) is None
    # the same pair under another chain's tag proves nothing
    assert check_evidence(back, keys.verifier, b"another chain") is not None


def test_double_checkpoint_verifies() -> None:
    keys = Keys(_config(), "ed25519")
    a, b = keys.checkpoint(8, b"\x01" * 32, 2), keys.checkpoint(8, b"\x02" * 32, 2)
    ev = Evidence(NodeId(2), "double-checkpoint", a, b)
    assert check_evidence(decode_evidence(encode_evidence(ev)), keys.verifier, TAG) is None
    assert evidence_key(ev) == (2, "double-checkpoint", 0, 8)


def test_unprovable_evidence_is_refused_with_a_reason() -> None:
    keys = Keys(_config(), "ed25519")
    a, b = keys.prepare(0, 1, b"A", 2), keys.prepare(0, 1, b"B", 2)
    forged_sig = dataclasses.replace(b, signature=bytes(64))
    other_slot = keys.prepare(0, 2, b"B", 2)
    other_sender = keys.prepare(0, 1, b"B", 3)
    cases = [
        Evidence(NodeId(2), "double-prepare", a, a),                 # no conflict
        Evidence(NodeId(2), "double-prepare", a, forged_sig),        # bad signature
        Evidence(NodeId(2), "double-prepare", a, other_slot),        # different slots
        Evidence(NodeId(2), "double-prepare", a, other_sender),      # two signers
        Evidence(NodeId(3), "double-prepare", a, b),                 # wrong accused
        Evidence(NodeId(2), "double-commit", a, b),                  # kind/type mismatch
        Evidence(NodeId(2), "made-up", a, b),
    ]
    for ev in cases:
        assert check_evidence(ev, keys.verifier, TAG) is not None, ev
    assert check_evidence(Evidence(NodeId(2), "double-prepare", a, b), keys.verifier, TAG) is None


def test_decode_rejects_malformed_bytes() -> None:
    keys = Keys(_config(), "ed25519")
    good = encode_evidence(Evidence(NodeId(2), "double-prepare", keys.prepare(0, 1, b"A", 2),
                                    keys.prepare(0, 1, b"B", 2)))
    for bad in (b"", b"\xc0", good + b"\x00", good[:-1], b"\xc3\x83abc"):
        with pytest.raises(InvalidMessage):
            decode_evidence(bad)
    with pytest.raises(ValueError):
        encode_evidence(Evidence(NodeId(2), "made-up", b"x", b"y"))
