"""Snapshot sync: a node behind its peers' pruned floor installs a verified state snapshot.

Theory of operation
-------------------
**What is signed.** At every PBFT checkpoint seq the consensus driver makes the ledger head a
checkpoint (:meth:`chain.ledger.Ledger.checkpoint_head`) and reports that record's digest
(height, block hash, state commitment and full Merkle state root) to the engine, so a stable
checkpoint -- 2f+1 matching signed ``Checkpoint(seq, digest)`` messages, a
``CheckpointProof`` -- vouches for the root of a snapshot. :class:`StableCheckpointKeeper`
(the driver's ``on_stable_checkpoint``) stores the proof next to the ledger checkpoint it
names (``cpp:<height>``) and then prunes block data below ``stable height - retain_blocks``
(``[storage] retain_blocks``; 0 keeps everything). The ledger keeps one exportable snapshot:
the latest checkpoint's.

**Serving** (:class:`SnapshotServer`). ``GetSnapshot(id, height, index)`` on
``Kind.REQUEST`` (height 0 = the newest) is answered on ``Kind.RESPONSE`` with
``[id, head, [height, index, count, proof, chunk]]``: chunk ``index`` of the latest
checkpoint's snapshot (:meth:`chain.checkpoint.Snapshot.chunks`; chunk 0 is the manifest,
carrying the block at that height and its commit certificate) and the stored proof. The
snapshot is exported once per checkpoint (in a worker thread) and cached; an export that
raced a commit does not match its own root and is retried. A snapshot larger than
``snapshot_bytes_max`` is not served; each peer gets at most ``snapshot_chunks_per_s`` chunks
a second (a token bucket; requests over the rate are dropped; fetchers pace their chunk
requests at the same rate and retry a chunk whose request timed out). ``count == 0`` means
"no snapshot with a proof here".

**Fetching** (:class:`SnapshotFetcher`). When block sync learns that a peer no longer has
the blocks we need (its floor is above our next height), it asks peers, most advanced
first, for their newest snapshot. From each peer: the manifest chunk and the proof first;
the proof must hold 2f+1 distinct validators' valid signatures over one (seq, digest)
(``check_proof``: the PBFT engine's own check with the validators' keys) and be for a
height above ours; then the remaining chunks, pinned to that height, at most
``snapshot_bytes_max`` bytes in all. The decoded snapshot must match the proven digest
(:func:`chain.checkpoint.verify_snapshot`: entries against the full root, block against
the block hash) before anything is written. The install runs in the engine task
(:meth:`node.driver.ConsensusDriver.call_in_engine_task`), so no commit interleaves:
:func:`chain.checkpoint.install_snapshot` verifies again and replaces the ledger in one
atomic batch (the proof stored with it, so this node serves the snapshot in turn), the
mempool is re-checked, and the engine is told through its state-transfer entry point:
``Applied(seq, digest)`` and then the proof's checkpoint messages, which make the
checkpoint stable there too. Block sync continues from the snapshot's height.

A peer whose proof, chunks or snapshot fail a check is penalised and the next peer is
tried; nothing is written for a snapshot that fails, so nothing committed is touched.

Only PBFT produces checkpoint proofs; on a Paxos chain nothing is pruned (no proof is ever
stored) and snapshot sync never starts.

Called by :mod:`node.sync` (routing) and :mod:`node.runtime` (wiring).
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rlp
import trio

from chain.checkpoint import (
    SNAPSHOT_ENTRIES_MAX,
    Snapshot,
    SnapshotError,
    decode_snapshot,
    export_snapshot,
    install_snapshot,
    prune_below_stable,
    verify_snapshot,
)
from chain.errors import ChainError
from chain.ledger import Head, Ledger

__all__ = [
    "GET_SNAPSHOT",
    "Request",
    "SnapshotFetcher",
    "SnapshotServer",
    "SnapshotSyncError",
    "StableCheckpointKeeper",
    "VerifiedProof",
    "build_snapshot_sync",
    "decode_snapshot_request",
    "decode_snapshot_response",
    "encode_snapshot_request",
    "encode_snapshot_response",
    "head_seq_after_restore",
    "make_installer",
    "pbft_proof_checker",
]

log = logging.getLogger("phalanx.node.snapshot_sync")

GET_SNAPSHOT = 2
#: Distinct peers a server keeps a rate bucket for.
RATE_PEERS_MAX = 1024
#: Exports retried when one raced a commit (its entries then miss its own root).
EXPORT_ATTEMPTS_MAX = 3


class SnapshotSyncError(Exception):
    """A peer's snapshot request or response is malformed."""


@dataclass(frozen=True)
class VerifiedProof:
    """A checkpoint proof whose signatures were checked: ``digest`` is stable at ``seq``.

    Attributes:
        seq: the consensus sequence number of the checkpoint.
        digest: the state digest 2f+1 validators signed (a ledger checkpoint's digest).
        checkpoints: the signed checkpoint messages (fed to the engine after an install).
        encoded: the proof's canonical bytes (stored next to the installed snapshot).
    """

    seq: int
    digest: bytes
    checkpoints: tuple[Any, ...]
    encoded: bytes


# ---------------------------------------------------------------------- wire


def _uint(raw: Any) -> int:
    if not isinstance(raw, bytes) or (raw[:1] == b"\x00"):
        raise ValueError("not a canonical unsigned integer")
    return int.from_bytes(raw, "big")


def encode_snapshot_request(request_id: int, height: int, index: int) -> bytes:
    """``[2, id, height, index]``; height 0 asks for the newest snapshot."""
    return bytes(rlp.encode([GET_SNAPSHOT, request_id, height, index]))


def decode_request_fields(payload: bytes, kind: int) -> tuple[int, int, int]:
    """The three canonical unsigned fields after ``kind`` of a ``[kind, id, a, b]`` request
    (block sync's and snapshot sync's requests share this shape).

    Raises:
        ValueError: malformed, or a request of another kind.
    """
    try:
        items = rlp.decode(payload, strict=True)
    except rlp.exceptions.RLPException as e:
        raise ValueError(str(e)) from None
    if not isinstance(items, list) or len(items) != 4:
        raise ValueError("expected 4 fields")
    got, rid, a, b = (_uint(x) for x in items)
    if got != kind:
        raise ValueError(f"request kind {got}, expected {kind}")
    return rid, a, b


def decode_snapshot_request(payload: bytes) -> tuple[int, int, int]:
    """``(id, height, index)`` of a snapshot request.

    Raises:
        SnapshotSyncError: malformed or not a snapshot request.
    """
    try:
        return decode_request_fields(payload, GET_SNAPSHOT)
    except ValueError as e:
        raise SnapshotSyncError(f"bad snapshot request: {e}") from None


@dataclass(frozen=True)
class SnapshotPart:
    """One answer: chunk ``index`` of ``count`` of the snapshot at ``height``."""

    height: int
    index: int
    count: int
    proof: bytes
    chunk: bytes


def encode_snapshot_response(request_id: int, head: int, part: SnapshotPart | None) -> bytes:
    """``[id, head, [height, index, count, proof, chunk]]``; ``None`` = no snapshot here."""
    p = part or SnapshotPart(0, 0, 0, b"", b"")
    return bytes(rlp.encode([request_id, head, [p.height, p.index, p.count, p.proof, p.chunk]]))


def decode_snapshot_response(payload: bytes) -> tuple[int, int, SnapshotPart]:
    """``(id, head, part)``; ``part.count == 0`` means the peer has no snapshot to give.

    Raises:
        SnapshotSyncError: malformed.
    """
    try:
        rid_b, head_b, body = rlp.decode(payload, strict=True)
        height_b, index_b, count_b, proof, chunk = body
        if not isinstance(proof, bytes) or not isinstance(chunk, bytes):
            raise ValueError("proof and chunk must be byte strings")
        part = SnapshotPart(_uint(height_b), _uint(index_b), _uint(count_b), proof, chunk)
        return _uint(rid_b), _uint(head_b), part
    except Exception as e:
        raise SnapshotSyncError(f"bad snapshot response: {e}") from None


# ---------------------------------------------------------------------- proofs


def pbft_proof_checker(kit: Any, verifier: Any) -> Callable[[bytes], VerifiedProof | None]:
    """A ``check_proof`` for PBFT: decode a ``CheckpointProof`` and verify its quorum.

    Uses the engine's own check (:func:`consensus.pbft.check_checkpoint_proof`):
    at least 2f+1 checkpoints, distinct senders that are validators, one (seq, digest), every
    signature valid under the chain's instance tag.
    """
    from consensus.pbft import CheckpointProof, check_checkpoint_proof

    cfg = kit.inner.config

    def check(raw: bytes) -> VerifiedProof | None:
        try:
            record = kit.decode_record(raw)
        except Exception:
            return None
        if not isinstance(record, CheckpointProof):
            return None
        root = check_checkpoint_proof(cfg, verifier, record.seq, record.checkpoints)
        if root is None or root != record.state_root:
            return None
        return VerifiedProof(record.seq, root, tuple(record.checkpoints), bytes(raw))

    return check


# ---------------------------------------------------------------------- keeping proofs


class StableCheckpointKeeper:
    """The driver's ``on_stable_checkpoint``: keep the proof with its snapshot, then prune.

    Args:
        ledger: the node's ledger.
        run_blocking: runs a blocking function off the Trio thread (the driver's).
        retain_blocks: heights kept below the stable checkpoint (0 = never prune).
    """

    def __init__(
        self,
        ledger: Ledger,
        run_blocking: Callable[..., Awaitable[Any]],
        retain_blocks: int = 0,
    ) -> None:
        self.ledger = ledger
        self._run = run_blocking
        self.retain_blocks = retain_blocks
        self.proofs_kept = 0
        self.heights_pruned = 0

    async def __call__(self, proof: Any) -> None:
        latest = self.ledger.latest_checkpoint
        if latest.digest != proof.state_root:
            # The proof names an older checkpoint whose snapshot is gone (only the latest is
            # kept), or a state we do not hold: nothing to keep.
            log.debug("stable checkpoint at seq %d is not the ledger's latest checkpoint", proof.seq)
            return
        await self._run(self._keep, latest.height, bytes(proof.encode()))

    def _keep(self, height: int, raw: bytes) -> None:
        self.ledger.store_checkpoint_proof(height, raw)
        self.proofs_kept += 1
        pruned = prune_below_stable(self.ledger, height, self.retain_blocks)
        if pruned:
            self.heights_pruned += pruned
            log.info("pruned %d heights below stable checkpoint %d (floor now %d)",
                     pruned, height, self.ledger.floor)


# ---------------------------------------------------------------------- serving


class SnapshotServer:
    """Answers snapshot requests from the ledger's latest proven checkpoint (blocking calls).

    Args:
        ledger: the node's ledger.
        clock: monotonic seconds (injected; the rate limiter's time).
        chunk_bytes_max: bound of one entry chunk.
        snapshot_bytes_max: snapshots larger than this (encoded) are not served.
        chunks_per_s: per-peer rate of answered requests (also the burst size).
    """

    def __init__(
        self,
        ledger: Ledger,
        clock: Callable[[], float],
        *,
        chunk_bytes_max: int = 512 * 1024,
        snapshot_bytes_max: int = 256 * 1024 * 1024,
        chunks_per_s: float = 20.0,
    ) -> None:
        self.ledger = ledger
        self._clock = clock
        self.chunk_bytes_max = chunk_bytes_max
        self.snapshot_bytes_max = snapshot_bytes_max
        self.chunks_per_s = chunks_per_s
        self._buckets: OrderedDict[int, tuple[float, float]] = OrderedDict()
        self._cache: tuple[int, bytes, list[bytes]] | None = None  # (height, proof, chunks)
        self.chunks_served = 0
        self.rate_limited = 0

    def allow(self, peer: int) -> bool:
        """Take a token from ``peer``'s bucket (False: over its rate, drop the request)."""
        now = self._clock()
        tokens, last = self._buckets.pop(peer, (self.chunks_per_s, now))
        tokens = min(self.chunks_per_s, tokens + (now - last) * self.chunks_per_s)
        allowed = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > RATE_PEERS_MAX:
            self._buckets.popitem(last=False)
        if not allowed:
            self.rate_limited += 1
        return allowed

    def part(self, height: int, index: int) -> SnapshotPart | None:
        """Chunk ``index`` of the newest proven snapshot (None: none, or not at ``height``).

        A transfer pinned to the cached snapshot finishes from the cache even after a newer
        checkpoint replaced it in the ledger; while the newer one is not stable yet, new
        transfers get the cached one too.
        """
        cached = self._cache
        if cached is not None and height and cached[0] == height:
            current: tuple[int, bytes, list[bytes]] | None = cached
        else:
            current = self._current() or cached
        if current is None:
            return None
        snap_height, proof, chunks = current
        if (height and height != snap_height) or index >= len(chunks):
            return None
        self.chunks_served += 1
        return SnapshotPart(snap_height, index, len(chunks), proof, chunks[index])

    def _current(self) -> tuple[int, bytes, list[bytes]] | None:
        latest = self.ledger.latest_checkpoint
        if self._cache is not None and self._cache[0] == latest.height:
            return self._cache
        try:
            proof = self.ledger.checkpoint_proof(latest.height)
        except ChainError:
            return None  # not stable yet (or never, on Paxos)
        for _ in range(EXPORT_ATTEMPTS_MAX):
            try:
                snapshot = export_snapshot(self.ledger.db, latest.height)
                verify_snapshot(snapshot, trusted_digest=latest.digest)
            except SnapshotError as e:
                log.info("snapshot export at %d not usable (retrying): %s", latest.height, e)
                continue
            chunks = list(snapshot.chunks(self.chunk_bytes_max))
            size = sum(len(c) for c in chunks)
            if size > self.snapshot_bytes_max:
                log.warning("snapshot at %d is %d bytes, above snapshot_bytes_max %d: not served",
                            latest.height, size, self.snapshot_bytes_max)
                return None
            self._cache = (latest.height, proof, chunks)
            return self._cache
        return None


# ---------------------------------------------------------------------- fetching

#: ``request(peer, build)``: sends ``build(request_id)`` and returns the answer's payload.
Request = Callable[[int, Callable[[int], bytes]], Awaitable[bytes | None]]


class SnapshotFetcher:
    """Fetch, verify and install the newest proven snapshot from peers (see module docstring).

    Args:
        ledger: our ledger (its height says what is newer).
        check_proof: verifies a proof's quorum (:func:`pbft_proof_checker`).
        install: installs a verified snapshot in the engine task (:func:`make_installer`).
        penalize: lowers a peer's score.
        run_blocking: runs the snapshot verification off the Trio thread.
        snapshot_bytes_max: bound on the bytes received for one snapshot.
        entries_max: bound on the entries a manifest may declare.
        chunk_interval_s: pause between chunk requests (``1 / snapshot_chunks_per_s``, so
            a server with the same rate never drops our requests).
        chunk_attempts_max: requests per chunk before giving up on a peer (a dropped
            request times out).
    """

    def __init__(
        self,
        ledger: Ledger,
        check_proof: Callable[[bytes], VerifiedProof | None],
        install: Callable[[Snapshot, VerifiedProof], Awaitable[Head | None]],
        *,
        penalize: Callable[[int, str], None] = lambda peer, reason: None,
        run_blocking: Callable[..., Awaitable[Any]] | None = None,
        snapshot_bytes_max: int = 256 * 1024 * 1024,
        entries_max: int = SNAPSHOT_ENTRIES_MAX,
        chunk_interval_s: float = 0.0,
        chunk_attempts_max: int = 3,
    ) -> None:
        self.ledger = ledger
        self._check_proof = check_proof
        self._install = install
        self._penalize = penalize
        self._run = run_blocking
        self.snapshot_bytes_max = snapshot_bytes_max
        self.entries_max = entries_max
        self.chunk_interval_s = chunk_interval_s
        self.chunk_attempts_max = chunk_attempts_max
        self.installed = 0
        self.last_installed: tuple[int, int] | None = None  # (height, seq)
        self.rejected = 0

    async def fetch(self, request: Request, peers: Sequence[int]) -> bool:
        """Try ``peers`` in order until one snapshot above our head is installed."""
        for peer in peers:
            try:
                if await self._fetch_from(request, peer):
                    return True
            except (SnapshotSyncError, SnapshotError) as e:
                self.rejected += 1
                log.warning("snapshot from peer %s rejected: %s", peer, e)
                self._penalize(peer, f"bad snapshot: {e}")
        return False

    async def _ask(self, request: Request, peer: int, height: int, index: int) -> SnapshotPart | None:
        raw = await request(peer, lambda rid: encode_snapshot_request(rid, height, index))
        if raw is None:
            return None
        _, _, part = decode_snapshot_response(raw)
        return part

    async def _fetch_from(self, request: Request, peer: int) -> bool:
        first = await self._ask(request, peer, 0, 0)
        ours = self.ledger.height
        if first is None or first.count == 0 or first.height <= ours:
            log.info("peer %s has no snapshot above our height %d", peer, ours)
            return False
        if first.index != 0:
            raise SnapshotSyncError(f"asked for chunk 0, got chunk {first.index}")
        proof = self._check_proof(first.proof)
        if proof is None:
            raise SnapshotSyncError(f"the checkpoint proof for height {first.height} does not "
                                    "hold 2f+1 valid validator signatures")
        chunks = [first.chunk]
        received = len(first.chunk)
        for index in range(1, first.count):
            part = None
            for _ in range(self.chunk_attempts_max):
                await trio.sleep(self.chunk_interval_s)
                part = await self._ask(request, peer, first.height, index)
                if part is not None:
                    break
            if part is None:
                log.info("peer %s stopped answering at snapshot chunk %d", peer, index)
                return False
            if part.count == 0:
                log.info("peer %s moved past snapshot %d; trying again later", peer, first.height)
                return False
            if (part.height, part.index, part.count) != (first.height, index, first.count):
                raise SnapshotSyncError(f"chunk {index} answer is for {part.height}/{part.index}")
            received += len(part.chunk)
            if received > self.snapshot_bytes_max:
                raise SnapshotSyncError(f"snapshot exceeds snapshot_bytes_max {self.snapshot_bytes_max}")
            chunks.append(part.chunk)
        snapshot = decode_snapshot(chunks, entries_max=self.entries_max)
        if snapshot.height != first.height:
            raise SnapshotSyncError("the manifest names another height")
        check = functools.partial(verify_snapshot, snapshot, trusted_digest=proof.digest)
        if self._run is not None:
            await self._run(check)
        else:
            check()
        if snapshot.height <= self.ledger.height:
            return False  # block sync got there meanwhile
        head = await self._install(snapshot, proof)
        if head is None:
            return True  # consensus or block sync got past it meanwhile: nothing to install
        self.installed += 1
        self.last_installed = (head.height, proof.seq)
        log.info("snapshot sync: installed the snapshot at height %d (checkpoint seq %d) from "
                 "peer %s, %d chunks, %d bytes, state root verified against %d checkpoint "
                 "signatures", head.height, proof.seq, peer, len(chunks), received,
                 len(proof.checkpoints))
        return True


def make_installer(driver: Any) -> Callable[[Snapshot, VerifiedProof], Awaitable[Head | None]]:
    """The install step for :class:`SnapshotFetcher`, run in ``driver``'s engine task.

    Returns None (installing nothing) when the head reached the snapshot's height meanwhile.
    """
    from consensus.contract import Applied, NodeId, Receive
    from node.app import LedgerStateView

    app = driver.app

    async def install(snapshot: Snapshot, proof: VerifiedProof) -> Head | None:
        async def in_engine_task() -> Head | None:
            if app.ledger.height >= snapshot.height:
                return None
            head: Head = await driver.run_blocking(functools.partial(
                install_snapshot, app.ledger, snapshot,
                trusted_digest=proof.digest, proof=proof.encoded))
            app.head_seq = proof.seq
            app.last_seq = max(app.last_seq, proof.seq)
            app.mempool.recheck_all(LedgerStateView(app.ledger))
            await driver.step(Applied(proof.seq, proof.digest))
            for checkpoint in proof.checkpoints:
                await driver.step(Receive(NodeId(int(checkpoint.sender)), checkpoint))
            return head

        result: Head | None = await driver.call_in_engine_task(in_engine_task)
        return result

    return install


def head_seq_after_restore(ledger: Ledger, decode_record: Callable[[bytes], Any]) -> int | None:
    """The seq of a proven checkpoint at the head (None if the head is not one).

    After a snapshot install and a restart, the head block's certificate names an earlier
    seq; the seqs up to the checkpoint were no-ops (the state is the head's), so consensus
    resumes from the proof's seq.
    """
    if ledger.latest_checkpoint.height != ledger.height:
        return None
    try:
        seq = getattr(decode_record(ledger.checkpoint_proof(ledger.height)), "seq", None)
    except Exception:
        return None
    return int(seq) if isinstance(seq, int) else None


def build_snapshot_sync(
    storage: Any,
    kit: Any,
    verifier: Any,
    driver: Any,
    penalize: Callable[[int, str], None],
    clock: Callable[[], float],
) -> tuple[SnapshotServer, SnapshotFetcher | None]:
    """Wire pruning and snapshot sync into a node (called by :mod:`node.runtime`).

    Sets the driver's ``on_stable_checkpoint`` (keep proofs, prune), resumes consensus from a
    proven checkpoint at the head (after a snapshot install and a restart), and returns the
    server and, on PBFT, the fetcher for :class:`node.sync.BlockSync`.

    Args:
        storage: the ``[storage]`` config section.
        kit: the engine kit.
        verifier: the validators' signature verifier.
        driver: the consensus driver.
        penalize: lowers a peer's score.
        clock: monotonic seconds for the serving rate limit.
    """
    app = driver.app
    ledger: Ledger = app.ledger
    driver.on_stable_checkpoint = StableCheckpointKeeper(
        ledger, driver.run_blocking, storage.retain_blocks
    )
    server = SnapshotServer(
        ledger, clock,
        chunk_bytes_max=storage.snapshot_chunk_bytes_max,
        snapshot_bytes_max=storage.snapshot_bytes_max,
        chunks_per_s=storage.snapshot_chunks_per_s,
    )  # fmt: skip
    if kit.kind != "pbft":
        if storage.retain_blocks:
            log.warning("storage.retain_blocks = %d has no effect on a %s chain: it makes no "
                        "2f+1 checkpoint proofs, so no block is pruned (and no snapshot is "
                        "fetched)", storage.retain_blocks, kit.kind)
        return server, None
    seq = head_seq_after_restore(ledger, kit.decode_record)
    if seq is not None and seq > app.head_seq:
        log.info("resuming consensus from the proven checkpoint at the head: seq %d", seq)
        app.head_seq = seq
        app.last_seq = max(app.last_seq, seq)
    fetcher = SnapshotFetcher(
        ledger, pbft_proof_checker(kit, verifier), make_installer(driver),
        penalize=penalize, run_blocking=driver.run_blocking,
        snapshot_bytes_max=storage.snapshot_bytes_max,
        chunk_interval_s=1 / storage.snapshot_chunks_per_s,
    )  # fmt: skip
    return server, fetcher
