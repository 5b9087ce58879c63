"""Snapshot sync against fake peers: a good snapshot installs; a tampered chunk, a proof with
too few or forged signatures, or a proof for another checkpoint is rejected with the ledger
untouched and the peer penalised; serving is bounded (rate, size) and the codecs are strict."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from chain.checkpoint import Snapshot, install_snapshot, prune_below_stable
from chain.db import KeyValueDB, MemoryDB
from chain.ledger import CHECKPOINTS_ON_DEMAND, Head, NotFound
from consensus.contract import NodeId
from consensus.pbft import CheckpointProof, PbftConfig, decode_record
from consensus.pbft.messages import Checkpoint, sign_message
from consensus.signing import Ed25519Signer, Ed25519Verifier
from node.config import ConfigError, StorageSection, load_config, parse_config, write_config
from node.snapshot_sync import (
    SnapshotFetcher,
    SnapshotPart,
    SnapshotServer,
    SnapshotSyncError,
    StableCheckpointKeeper,
    VerifiedProof,
    build_snapshot_sync,
    decode_snapshot_request,
    decode_snapshot_response,
    encode_snapshot_request,
    encode_snapshot_response,
    pbft_proof_checker,
)
from node.sync import BlockSync
from tests.chain.chaingen import ChainGen

N = 4
TAG = b"phalanx/test/snapshots"
SEEDS = [bytes([i + 1]) * 32 for i in range(N)]
SIGNERS = [Ed25519Signer(NodeId(i), seed) for i, seed in enumerate(SEEDS)]
VERIFIER = Ed25519Verifier({NodeId(i): s.public_key for i, s in enumerate(SIGNERS)})
CFG = PbftConfig(n=N, checkpoint_interval=5, instance_tag=TAG)
KIT = SimpleNamespace(inner=SimpleNamespace(config=CFG), decode_record=decode_record)
CHECK = pbft_proof_checker(KIT, VERIFIER)


def _proof(seq: int, digest: bytes, signers: range | list[int] = range(3)) -> bytes:
    checkpoints = tuple(sign_message(Checkpoint(seq, digest, NodeId(i)), SIGNERS[i], TAG) for i in signers)
    return CheckpointProof(seq, digest, checkpoints).encode()


def _decode_proof(raw: bytes) -> CheckpointProof:
    proof = decode_record(raw)
    assert isinstance(proof, CheckpointProof)
    return proof


def _dump(db: KeyValueDB) -> list[tuple[bytes, bytes]]:
    return list(db.iterate())


class Chains:
    """A source ledger with a proven checkpoint at 12 (and one at 6), and a laggard at 3."""

    def __init__(self) -> None:
        self.gen = gen = ChainGen(seed=21)
        self.source = gen.open(MemoryDB(), checkpoint_interval=CHECKPOINTS_ON_DEMAND)
        self.laggard = gen.open(MemoryDB(), checkpoint_interval=CHECKPOINTS_ON_DEMAND)
        gen.commit_next(self.source, 3)
        for h in range(1, 4):
            block = self.source.block(h)
            result = gen.executor.apply_block(self.laggard.state(), block)
            self.laggard.commit_block(block, self.source.certificate(h), result)
        gen.commit_next(self.source, 3)
        self.old_digest = self.source.checkpoint_head().digest
        gen.commit_next(self.source, 6)
        self.digest = self.source.checkpoint_head().digest
        self.source.store_checkpoint_proof(12, _proof(40, self.digest))
        gen.commit_next(self.source, 2)
        self.installed: list[tuple[int, int]] = []
        self.penalised: list[int] = []

    def server(self, **kwargs: Any) -> SnapshotServer:
        return SnapshotServer(self.source, lambda: 0.0, chunk_bytes_max=300, **kwargs)

    def fetcher(self, **kwargs: Any) -> SnapshotFetcher:
        async def install(snapshot: Snapshot, proof: VerifiedProof) -> Head:
            head = install_snapshot(self.laggard, snapshot, trusted_digest=proof.digest, proof=proof.encoded)
            self.installed.append((head.height, proof.seq))
            return head

        return SnapshotFetcher(self.laggard, CHECK, install,
                               penalize=lambda peer, why: self.penalised.append(peer), **kwargs)  # fmt: skip


Tamper = Callable[[SnapshotPart], SnapshotPart]


def _peer(server: SnapshotServer, tamper: Tamper = lambda p: p) -> Callable[[int, bytes], bytes | None]:
    def answer(rid_request: int, payload: bytes) -> bytes | None:
        rid, height, index = decode_snapshot_request(payload)
        part = server.part(height, index)
        return encode_snapshot_response(rid, server.ledger.height, None if part is None else tamper(part))

    return answer


def _network(peers: dict[int, Callable[[int, bytes], bytes | None]]) -> Callable[..., Awaitable[bytes | None]]:
    ids = iter(range(1, 10_000))

    async def request(peer: int, build: Callable[[int], bytes]) -> bytes | None:
        rid = next(ids)
        return peers[peer](rid, build(rid))

    return request


async def test_good_snapshot_installs_with_its_proof_and_ledger_continues() -> None:
    c = Chains()
    fetcher = c.fetcher()
    assert await fetcher.fetch(_network({1: _peer(c.server())}), [1])
    assert c.installed == [(12, 40)]
    assert c.laggard.head.height == 12 and c.laggard.latest_checkpoint.digest == c.digest
    assert c.laggard.checkpoint_proof(12) == c.source.checkpoint_proof(12)
    for h in (13, 14):
        block = c.source.block(h)
        c.laggard.commit_block(block, c.source.certificate(h), c.gen.executor.apply_block(c.laggard.state(), block))
    assert c.laggard.head == c.source.head
    assert c.penalised == [] and fetcher.last_installed == (12, 40)


def _flip_entry_chunk(part: SnapshotPart) -> SnapshotPart:
    if part.index != 1:
        return part
    chunk = bytearray(part.chunk)
    chunk[-1] ^= 0x01  # the last byte of an account record
    return dataclasses.replace(part, chunk=bytes(chunk))


def _proof_from(make: Callable[[Chains], bytes]) -> Callable[[Chains], Tamper]:
    return lambda c: (lambda part: dataclasses.replace(part, proof=make(c)))


def _forged_signature(c: Chains) -> bytes:
    proof = _decode_proof(c.source.checkpoint_proof(12))
    first = proof.checkpoints[0]
    bad = Checkpoint(first.seq, first.state_root, first.sender, bytes(64))
    return CheckpointProof(proof.seq, proof.state_root, (bad, *proof.checkpoints[1:])).encode()


def _signed_by_the_wrong_key(c: Chains) -> bytes:
    # Validator 0's key signing as 0, 1 and 2: the signatures of 1 and 2 do not verify.
    forged = [sign_message(Checkpoint(40, c.digest, NodeId(0)), SIGNERS[0], TAG)]
    for i in (1, 2):
        honest = sign_message(Checkpoint(40, c.digest, NodeId(0)), SIGNERS[0], TAG)
        forged.append(Checkpoint(40, c.digest, NodeId(i), honest.signature))
    return CheckpointProof(40, c.digest, tuple(forged)).encode()


BAD_PEERS: dict[str, Callable[[Chains], Tamper]] = {
    "tampered chunk": lambda c: _flip_entry_chunk,
    "f+1 signatures": _proof_from(lambda c: _proof(40, c.digest, signers=[0, 1])),
    "one signer counted twice": _proof_from(lambda c: _proof(40, c.digest, signers=[0, 1, 1])),
    "forged signature": _proof_from(_forged_signature),
    "signatures by the wrong key": _proof_from(_signed_by_the_wrong_key),
    "proof for another checkpoint": _proof_from(lambda c: _proof(20, c.old_digest)),
    "proof for another chain": _proof_from(
        lambda c: CheckpointProof(40, c.digest, tuple(
            sign_message(Checkpoint(40, c.digest, NodeId(i)), SIGNERS[i], b"other-chain")
            for i in range(3))).encode()),
    "not a proof": _proof_from(lambda c: b"\xc0"),
}


@pytest.mark.parametrize("how", sorted(BAD_PEERS))
async def test_bad_peer_is_penalised_ledger_untouched_and_the_next_peer_serves(how: str) -> None:
    c = Chains()
    before, head = _dump(c.laggard.db), c.laggard.head
    bad = _peer(c.server(), BAD_PEERS[how](c))
    fetcher = c.fetcher()
    assert not await fetcher.fetch(_network({1: bad}), [1])
    assert c.penalised == [1] and c.installed == [] and fetcher.rejected == 1
    assert _dump(c.laggard.db) == before and c.laggard.head == head
    # An honest peer after the bad one: the snapshot installs.
    assert await fetcher.fetch(_network({1: bad, 2: _peer(c.server())}), [1, 2])
    assert c.installed == [(12, 40)] and c.penalised == [1, 1]


async def test_snapshot_over_the_byte_bound_is_refused() -> None:
    c = Chains()
    before = _dump(c.laggard.db)
    fetcher = c.fetcher(snapshot_bytes_max=500)
    assert not await fetcher.fetch(_network({1: _peer(c.server())}), [1])
    assert c.penalised == [1] and _dump(c.laggard.db) == before


async def test_peer_without_a_proven_or_newer_snapshot_is_not_penalised() -> None:
    c = Chains()
    unproven = Chains()
    unproven.source = c.gen.open(MemoryDB(), checkpoint_interval=CHECKPOINTS_ON_DEMAND)
    c.gen.commit_next(unproven.source, 8)
    unproven.source.checkpoint_head()  # a checkpoint, but never stable: no proof stored
    fetcher = c.fetcher()
    peers = {1: _peer(unproven.server()), 2: _peer(SnapshotServer(c.laggard, lambda: 0.0))}
    assert not await fetcher.fetch(_network(peers), [1, 2])
    assert c.penalised == [] and c.laggard.height == 3


def test_server_rate_limits_each_peer_and_refills() -> None:
    now = [0.0]
    c = Chains()
    server = SnapshotServer(c.source, lambda: now[0], chunks_per_s=4)
    assert [server.allow(7) for _ in range(5)] == [True] * 4 + [False]
    assert server.allow(8)  # another peer has its own bucket
    now[0] += 0.5
    assert [server.allow(7) for _ in range(3)] == [True, True, False]
    assert server.rate_limited == 2


def test_server_does_not_serve_a_snapshot_above_its_size_bound() -> None:
    c = Chains()
    assert c.server(snapshot_bytes_max=100).part(0, 0) is None
    part = c.server().part(0, 0)
    assert part is not None and (part.height, part.index) == (12, 0) and part.count > 2
    assert c.server().part(11, 0) is None  # not the height it has


async def test_keeper_stores_the_proof_of_the_latest_checkpoint_and_prunes() -> None:
    c = Chains()

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    keeper = StableCheckpointKeeper(c.source, run, retain_blocks=2)
    await keeper(_decode_proof(_proof(20, c.old_digest)))  # an older checkpoint: ignored
    assert c.source.floor == 0
    c.gen.commit_next(c.source, 1)
    digest = c.source.checkpoint_head().digest
    proof = _decode_proof(_proof(45, digest))
    await keeper(proof)
    assert c.source.checkpoint_proof(15) == proof.encode()
    assert c.source.floor == 13 and keeper.heights_pruned == 13
    with pytest.raises(NotFound):
        c.source.checkpoint_proof(12)  # an older proof goes with its height


def test_codecs_round_trip_and_reject_malformed() -> None:
    assert decode_snapshot_request(encode_snapshot_request(9, 12, 3)) == (9, 12, 3)
    part = SnapshotPart(12, 1, 4, b"proof", b"chunk")
    assert decode_snapshot_response(encode_snapshot_response(9, 30, part)) == (9, 30, part)
    assert decode_snapshot_response(encode_snapshot_response(9, 30, None))[2].count == 0
    # empty; empty list; a block request (kind 1); five fields; a non-canonical zero id
    for bad in (b"", b"\xc0", b"\xc4\x01\x01\x02\x03", b"\xc5\x02\x01\x01\x01\x01",
                b"\xc4\x02\x00\x01\x01"):  # fmt: skip
        with pytest.raises(SnapshotSyncError):
            decode_snapshot_request(bad)
    for bad in (b"", b"\xc3\x01\x01\x01", b"\xc4\x01\x01\xc1\x01"):
        with pytest.raises(SnapshotSyncError):
            decode_snapshot_response(bad)


async def test_block_sync_hands_over_to_a_snapshot_when_the_peer_pruned_and_continues() -> None:
    c = Chains()
    assert prune_below_stable(c.source, 12, 1) == 11  # the laggard's next block (4) is gone
    channels = {
        (peer, kind): trio.open_memory_channel[Any](16) for peer in (1, 2) for kind in ("request", "response")
    }

    def sender(me: int) -> Callable[[int, str, bytes], Awaitable[None]]:
        async def send(peer: int, kind: str, payload: bytes) -> None:
            await channels[(peer, kind)][0].send((me, kind, 0, payload))

        return send

    async def apply(items: list[tuple[Any, Any]]) -> None:
        for block, cert in items:
            result = c.gen.executor.apply_block(c.laggard.state(), block)
            c.laggard.commit_block(block, cert, result)

    async def never(items: list[tuple[Any, Any]]) -> None:
        raise AssertionError("the serving peer applies nothing")

    serving = BlockSync(c.source, never, sender(1), channels[(1, "request")][1],
                        channels[(1, "response")][1], snapshot_server=c.server())  # fmt: skip
    behind = BlockSync(c.laggard, apply, sender(2), channels[(2, "request")][1],
                       channels[(2, "response")][1], snapshot_fetcher=c.fetcher(), lag_blocks=1)  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(serving.run)
        await nursery.start(behind.run)
        behind.observe_height(1, c.source.height)
        with trio.fail_after(20):
            while c.laggard.height < c.source.height:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert c.installed == [(12, 40)]
    assert c.laggard.head == c.source.head and c.laggard.floor == 12
    assert behind.blocks_fetched == 2 and c.penalised == []


def test_storage_config_is_validated_and_round_trips(tmp_path: Path) -> None:
    config = parse_config({"storage": {"retain_blocks": 7}}, tmp_path)
    assert config.storage == StorageSection(retain_blocks=7)
    write_config(config)
    assert load_config(tmp_path).storage.retain_blocks == 7
    assert parse_config({}, tmp_path).storage.retain_blocks == 0  # keep everything by default
    bad = [
        ({"retain_blocks": -1}, "storage.retain_blocks"),
        ({"retain_blocks": "10"}, "storage.retain_blocks"),
        ({"retain": 10}, "storage.retain: unknown key"),
        ({"snapshot_chunks_per_s": 0}, "storage.snapshot_chunks_per_s: must be positive"),
        ({"snapshot_chunk_bytes_max": 8 * 1024 * 1024}, "at most half of p2p.frame_bytes_max"),
    ]
    for storage, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config({"storage": storage}, tmp_path)


async def test_fetcher_retries_a_chunk_whose_request_went_unanswered() -> None:
    c = Chains()
    honest = _peer(c.server())
    asked: list[int] = []

    def flaky(rid: int, payload: bytes) -> bytes | None:
        _, _, index = decode_snapshot_request(payload)
        asked.append(index)
        return None if asked.count(index) == 1 and index > 0 else honest(rid, payload)

    fetcher = c.fetcher(chunk_attempts_max=2)
    assert await fetcher.fetch(_network({1: flaky}), [1])
    assert c.installed == [(12, 40)] and c.penalised == []
    assert all(asked.count(i) == 2 for i in set(asked) if i > 0)
    # With one attempt per chunk, the same peer is given up on (and not blamed).
    c2 = Chains()
    asked.clear()
    honest = _peer(c2.server())
    assert not await c2.fetcher(chunk_attempts_max=1).fetch(_network({1: flaky}), [1])
    assert c2.penalised == [] and c2.laggard.height == 3


def test_server_finishes_a_pinned_transfer_after_a_newer_checkpoint() -> None:
    c = Chains()
    server = c.server()
    first = server.part(0, 0)
    assert first is not None and first.height == 12
    c.source.checkpoint_head()  # a newer checkpoint (14), not stable yet: no proof
    second = server.part(12, 1)
    assert second is not None and (second.height, second.index) == (12, 1)
    again = server.part(0, 0)  # the newest is not proven yet: the cached proven one
    assert again is not None and again.height == 12
    c.source.store_checkpoint_proof(14, _proof(45, c.source.latest_checkpoint.digest))
    newest = server.part(0, 0)
    assert newest is not None and newest.height == 14


@pytest.mark.parametrize("retain", [0, 100])
def test_retain_blocks_on_a_paxos_chain_says_it_does_nothing(
        retain: int, caplog: pytest.LogCaptureFixture) -> None:
    """Paxos makes no 2f+1 checkpoint proofs, so the setting cannot take effect: say so at
    start instead of silently keeping every block."""
    ledger = ChainGen().open(MemoryDB())
    driver = SimpleNamespace(app=SimpleNamespace(ledger=ledger), run_blocking=None,
                             on_stable_checkpoint=None)
    storage = StorageSection(retain_blocks=retain)
    with caplog.at_level("WARNING", logger="phalanx"):
        server, fetcher = build_snapshot_sync(storage, SimpleNamespace(kind="paxos"), None,
                                              driver, lambda _p, _w: None, lambda: 0.0)
    assert fetcher is None and server is not None
    warned = [r.getMessage() for r in caplog.records if "retain_blocks" in r.getMessage()]
    assert (warned != []) == bool(retain)
    if retain:
        assert "no effect on a paxos chain" in warned[0]
