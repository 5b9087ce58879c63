"""Evidence service: Bracha-broadcast evidence is recorded alike by every honest validator,
even when only the detector saw it; unverifiable evidence is refused and its origin penalised."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import trio

from consensus.contract import Evidence, NodeId
from consensus.pbft import Prepare, sign_message
from consensus.pbft.evidence import check_evidence, decode_evidence, encode_evidence, evidence_key
from consensus.signing import make_keyring
from node.evidence import EvidenceRecord, EvidenceService, EvidenceStore
from p2p import Kind, PeerId
from p2p.broadcast import Originate
from p2p.messages import Inbound

TAG = b"phalanx/test-evidence-node"
N = 4
SIGNERS, VERIFIER = make_keyring(N, "ed25519")


class FakePeers:
    """One node's PeerManager stand-in: Kind.EVIDENCE frames go straight to other nodes."""

    def __init__(self, me: int, net: dict[int, FakePeers]) -> None:
        self.me, self.net = me, net
        self.tx: trio.MemorySendChannel[Inbound] | None = None
        self.penalties: list[tuple[int, str]] = []

    def subscribe(self, kind: Kind, drop_when_full: bool = False) -> trio.MemoryReceiveChannel[Inbound]:
        assert kind is Kind.EVIDENCE
        self.tx, rx = trio.open_memory_channel[Inbound](10_000)
        return rx

    def penalize(self, peer: int, points: int, why: str) -> None:
        self.penalties.append((peer, why))

    def send_nowait(self, peer: PeerId, kind: Kind, data: bytes) -> None:
        target = self.net.get(int(peer))
        if target is not None and target.tx is not None:      # a silent node receives nothing
            target.tx.send_nowait(Inbound(PeerId(self.me), kind, 0, data))


def _prepare(view: int, seq: int, digest: bytes, sender: int) -> Prepare:
    msg: Prepare = sign_message(Prepare(view, seq, digest, NodeId(sender)), SIGNERS[sender], TAG)
    return msg


def _double_prepare(sender: int, seq: int = 1) -> Evidence:
    return Evidence(NodeId(sender), "double-prepare", _prepare(0, seq, b"\x01" * 32, sender),
                    _prepare(0, seq, b"\x02" * 32, sender))


def _services(honest: list[int]) -> tuple[dict[int, EvidenceService], dict[int, FakePeers]]:
    net: dict[int, FakePeers] = {}
    services = {}
    for i in honest:
        net[i] = FakePeers(i, net)
        services[i] = EvidenceService(
            i, N, 1, net[i], encode=encode_evidence, decode=decode_evidence,
            check=lambda ev: check_evidence(ev, VERIFIER, TAG), key_of=evidence_key,
            store=EvidenceStore(8),
            penalize=net[i].penalize,
            resend_seconds=0.05, resend_count=1)
    return services, net


async def _settle(services: dict[int, EvidenceService], until: Any) -> None:
    with trio.fail_after(10):
        while not until():
            await trio.sleep(0.01)


async def test_evidence_seen_by_one_detector_is_recorded_by_every_honest_validator() -> None:
    services, _ = _services([0, 1, 2])                # validator 3 is Byzantine and silent
    ev = _double_prepare(3)
    async with trio.open_nursery() as nursery:
        for s in services.values():
            await nursery.start(s.run)
        services[1].report(ev)                        # only validator 1 saw both prepares
        services[1].report(ev)                        # reported twice: broadcast once
        await _settle(services, lambda: all(len(s.store) == 1 for s in services.values()))
        nursery.cancel_scope.cancel()
    for s in services.values():
        (rec,) = s.store.newest(10)
        assert (rec.offender, rec.kind, rec.view, rec.seq, rec.reporter) == (3, "double-prepare", 0, 1, 1)
        assert s.store.counts() == {3: 1}
    assert services[1].statistics().broadcast == 1


async def test_unverifiable_evidence_is_dropped_everywhere_and_its_origin_penalised() -> None:
    services, net = _services([0, 1, 2, 3])
    good = _double_prepare(1)
    forged = dataclasses.replace(good, second=dataclasses.replace(good.second, signature=bytes(64)))
    async with trio.open_nursery() as nursery:
        for s in services.values():
            await nursery.start(s.run)
        # validator 2 broadcasts a forgery through the real core (as a Byzantine node would)
        services[2]._execute(services[2].core.step(Originate(encode_evidence(forged))))
        await _settle(services, lambda: all(s.statistics().delivered == 1 for s in services.values()
                                            if s.node != 2))
        nursery.cancel_scope.cancel()
    for i in (0, 1, 3):
        assert len(services[i].store) == 0
        assert services[i].statistics().rejected == 1
        assert [p for p, _ in net[i].penalties] == [2]


def test_store_is_bounded_newest_first_and_counts_per_offender() -> None:
    store = EvidenceStore(records_max=3)
    for seq in range(5):
        rec = EvidenceRecord(seq % 2, "double-commit", 0, seq, 1, "0x01", "0x02")
        assert store.add(rec)
    assert not store.add(EvidenceRecord(0, "double-commit", 0, 4, 2, "", ""))
    assert [r.seq for r in store.newest(10)] == [4, 3, 2]
    assert [r.seq for r in store.newest(2)] == [4, 3]
    assert store.counts() == {0: 3, 1: 2} and store.total == 5 and len(store) == 3
    with pytest.raises(ValueError):
        EvidenceStore(0)


def test_store_with_a_file_survives_a_restart_and_skips_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "evidence.jsonl"
    store = EvidenceStore(records_max=4, path=path)
    records = [EvidenceRecord(s % 2, "double-prepare", 1, s, 3, "0x0a", "0x0b", s == 2)
               for s in range(3)]
    for rec in records:
        assert store.add(rec)
    assert not store.add(records[0])                        # not written twice
    with path.open("a") as f:
        f.write('{"offender": -1}\n[1, 2]\n{"torn": ')     # a hand edit, a torn last line
    again = EvidenceStore(records_max=4, path=path)
    assert again.newest(10) == list(reversed(records))
    assert again.counts() == {0: 2, 1: 1} and again.total == 3 and again.skipped_lines == 3
    # Records added after the restart are appended after the ones read back.
    assert again.add(EvidenceRecord(1, "double-commit", 2, 9, 0, "0x0c", "0x0d"))
    assert [r.seq for r in EvidenceStore(records_max=4, path=path).newest(10)] == [9, 2, 1, 0]


def test_store_file_is_compacted_to_the_records_kept(tmp_path: Path) -> None:
    path = tmp_path / "evidence.jsonl"
    store = EvidenceStore(records_max=2, path=path)
    for seq in range(7):
        store.add(EvidenceRecord(0, "double-commit", 0, seq, 1, "0x01", "0x02"))
    assert len(path.read_text().splitlines()) == 7
    reread = EvidenceStore(records_max=2, path=path)
    assert [r.seq for r in reread.newest(10)] == [6, 5]
    assert len(path.read_text().splitlines()) == 2          # rewritten: 7 > 2 * 2
    assert [r.seq for r in EvidenceStore(records_max=2, path=path).newest(10)] == [6, 5]
