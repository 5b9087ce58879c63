"""Block sync: a restarted or lagging node fetches committed blocks with their certificates.

Theory of operation
-------------------
Peers announce their height in heartbeats (:func:`encode_beat`). When a peer is more than
``lag_blocks`` ahead of our head, or the engine asked for state (``StateWanted``: we fell
behind a stable checkpoint), :meth:`BlockSync.run` asks the most advanced peer for the
next blocks: ``GetBlocks(request_id, from_height, count)`` on ``Kind.REQUEST``. The peer
answers on ``Kind.RESPONSE`` with up to ``batch_blocks_max`` ``(block, certificate)`` pairs
(at most ``batch_bytes_max`` bytes), read from its ledger. One request is outstanding at a
time and each waits at most ``request_timeout_s``, so memory stays bounded by one batch.

Nothing a peer sends is trusted: blocks and certificates are strictly decoded here, then
handed to the consensus driver, which applies them in its own task (so consensus and sync
never interleave inside a commit). :meth:`node.app.ChainApp.apply_synced` checks that each
block extends the head and that its certificate is a valid quorum certificate for it
(the consensus engine's own check, with the validators' keys, including the consensus seq
the certificate names), and the driver then reports ``Applied(seq, state_id)`` to the
engine. A peer that sends garbage is logged and scored down.

Snapshot sync: a peer that pruned the blocks we need (``[storage] retain_blocks``) answers
with no blocks and its floor. Block sync then hands over to :mod:`node.snapshot_sync`: it
fetches the newest snapshot whose root 2f+1 validators signed in a stable checkpoint,
verifies it, installs it as the new head (in the engine task) and block sync continues from
there. Snapshot requests (``GetSnapshot``, kind 2) share the ``REQUEST``/``RESPONSE``
channels and the request ids with block requests (an answer counts only from the peer that
was asked); :class:`BlockSync` routes them to the
:class:`~node.snapshot_sync.SnapshotServer` (in a worker thread: the first request after a
checkpoint exports the snapshot).

Wire forms (RLP): request ``[1, id, from_height, count]``; response
``[id, head_height, [[block, certificate], ...], floor]`` (a response without ``floor``
means floor 0); snapshot request ``[2, id, height, index]`` and response
``[id, head_height, [height, index, count, proof, chunk]]`` (see
:mod:`node.snapshot_sync`). The heartbeat status (height, view and
the sender's suspicion report) is coded by :mod:`node.liveness` (``encode_beat`` and
``decode_beat`` are re-exported here).

Called by :mod:`node.runtime`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

import rlp
import trio

from chain.block import Block, CommitCertificate, decode_block, decode_certificate
from chain.errors import ChainError
from chain.ledger import Ledger
from node.liveness import decode_beat, encode_beat
from node.snapshot_sync import (
    GET_SNAPSHOT,
    SnapshotFetcher,
    SnapshotServer,
    SnapshotSyncError,
    decode_request_fields,
    decode_snapshot_request,
    encode_snapshot_response,
)

__all__ = ["BlockSync", "SyncError", "decode_beat", "encode_beat"]

log = logging.getLogger("phalanx.node.sync")

GET_BLOCKS = 1


class SyncError(Exception):
    """A peer's sync message is malformed."""


def encode_request(request_id: int, from_height: int, count: int) -> bytes:
    return bytes(rlp.encode([GET_BLOCKS, request_id, from_height, count]))


def decode_request(payload: bytes) -> tuple[int, int, int]:
    try:
        return decode_request_fields(payload, GET_BLOCKS)
    except ValueError as e:
        raise SyncError(f"bad sync request: {e}") from None


def encode_response(
    request_id: int, head: int, items: list[tuple[bytes, bytes]], floor: int = 0
) -> bytes:
    return bytes(rlp.encode([request_id, head, [list(i) for i in items], floor]))


def decode_response(payload: bytes) -> tuple[int, int, list[tuple[Block, CommitCertificate]], int]:
    """``(id, head, [(block, certificate), ...], floor)`` of a block response."""
    try:
        fields = rlp.decode(payload, strict=True)
        if len(fields) not in (3, 4):
            raise ValueError(f"expected 3 or 4 fields, got {len(fields)}")
        rid_b, head_b, raw_items = fields[:3]
        floor = int.from_bytes(fields[3], "big") if len(fields) == 4 else 0
        rid, head = int.from_bytes(rid_b, "big"), int.from_bytes(head_b, "big")
        items = [(decode_block(b), decode_certificate(c)) for b, c in raw_items]
    except (ChainError, ValueError, TypeError, rlp.exceptions.RLPException) as e:
        raise SyncError(f"bad sync response: {e}") from None
    return rid, head, items, floor


class BlockSync:
    """Serve and fetch committed blocks (see module docstring).

    Args:
        ledger: our ledger (read to answer requests; the head tells how far we are).
        apply: hands fetched pairs to the consensus driver (``driver.apply_synced``).
        send: ``(peer, kind, payload)`` sender, where kind is "request" or "response".
        requests / responses: inbound channels of ``Inbound`` records.
        penalize: lowers a peer's score for malformed answers.
        snapshot_server: answers snapshot requests (None: they get no answer).
        snapshot_fetcher: fetches a snapshot when peers pruned the blocks we need.
    """

    def __init__(
        self,
        ledger: Ledger,
        apply: Callable[[list[tuple[Block, CommitCertificate]]], Any],
        send: Callable[[int, str, bytes], Any],
        requests: trio.MemoryReceiveChannel[Any],
        responses: trio.MemoryReceiveChannel[Any],
        *,
        penalize: Callable[[int, str], None] = lambda peer, reason: None,
        lag_blocks: int = 5,
        batch_blocks_max: int = 64,
        batch_bytes_max: int = 2 * 1024 * 1024,
        request_timeout_s: float = 5.0,
        poll_s: float = 0.25,
        snapshot_server: SnapshotServer | None = None,
        snapshot_fetcher: SnapshotFetcher | None = None,
    ) -> None:
        self.ledger = ledger
        self._apply = apply
        self._send = send
        self._requests = requests
        self._responses = responses
        self._penalize = penalize
        self.lag_blocks = lag_blocks
        self.batch_blocks_max = batch_blocks_max
        self.batch_bytes_max = batch_bytes_max
        self.request_timeout_s = request_timeout_s
        self.poll_s = poll_s
        self.peer_heights: dict[int, int] = {}
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[Any]] = {}
        self._asked: dict[int, int] = {}  # request id -> the peer asked
        self._wanted = trio.Event()
        self.snapshot_server = snapshot_server
        self.snapshot_fetcher = snapshot_fetcher
        self.blocks_fetched = 0
        self.requests_served = 0

    # ------------------------------------------------------------------ inputs

    def observe_height(self, peer: int, height: int) -> None:
        """A peer's announced height (from its heartbeat)."""
        self.peer_heights[peer] = height
        if height > self.ledger.height + self.lag_blocks:
            self._wanted.set()

    def want_state(self, want: Any) -> None:
        """The engine fell behind a stable checkpoint: fetch blocks now."""
        del want
        self._wanted.set()

    @property
    def catching_up(self) -> bool:
        best = max(self.peer_heights.values(), default=0)
        return best > self.ledger.height + self.lag_blocks

    # ------------------------------------------------------------------ tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve requests, route responses and fetch while behind, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve)
            nursery.start_soon(self._route_responses)
            task_status.started()
            while True:
                with trio.move_on_after(self.poll_s):
                    await self._wanted.wait()
                self._wanted = trio.Event()
                await self._fetch_while_behind()

    async def _fetch_while_behind(self) -> None:
        while True:
            ours = self.ledger.height
            ahead = [(h, p) for p, h in self.peer_heights.items() if h > ours]
            if not ahead:
                return
            _, peer = max(ahead)
            count = min(self.batch_blocks_max, max(h for h, _ in ahead) - ours)
            got, floor = await self._fetch(peer, ours + 1, count)
            if not got:
                if floor > ours + 1 and self.snapshot_fetcher is not None:
                    by_height = [p for _, p in sorted(ahead, reverse=True)]
                    if await self.snapshot_fetcher.fetch(self._request, by_height):
                        continue
                return
            await self._apply(got)
            self.blocks_fetched += len(got)
            if self.ledger.height <= ours:
                with trio.move_on_after(self.request_timeout_s):
                    while self.ledger.height <= ours:
                        await trio.sleep(0.01)
                if self.ledger.height <= ours:
                    return

    async def _request(self, peer: int, build: Callable[[int], bytes]) -> bytes | None:
        """Send ``build(request_id)`` to ``peer``; its answer, or None after the timeout."""
        rid = next(self._ids)
        send, recv = trio.open_memory_channel[Any](1)
        self._waiting[rid] = send
        self._asked[rid] = peer
        try:
            await self._send(peer, "request", build(rid))
            with trio.move_on_after(self.request_timeout_s):
                _sender, payload = await recv.receive()
                return bytes(payload)
            log.info("sync request %d to peer %s timed out", rid, peer)
            return None
        finally:
            del self._waiting[rid]
            del self._asked[rid]

    async def _fetch(
        self, peer: int, start: int, count: int
    ) -> tuple[list[tuple[Block, CommitCertificate]], int]:
        """Blocks from ``start`` and the peer's floor (its lowest stored height)."""
        payload = await self._request(peer, lambda rid: encode_request(rid, start, count))
        if payload is None:
            return [], 0
        try:
            _, head, items, floor = decode_response(payload)
        except SyncError as e:
            log.warning("peer %s sent a bad sync response: %s", peer, e)
            self._penalize(peer, str(e))
            return [], 0
        self.peer_heights[peer] = max(self.peer_heights.get(peer, 0), head)
        if not items and head >= start:
            log.info("peer %s has no blocks from %d (its floor is %d)%s", peer, start, floor,
                     ": trying snapshot sync" if floor > start and self.snapshot_fetcher else "")
        return items, floor

    async def _route_responses(self) -> None:
        async for peer, _kind, _lamport, payload in self._responses:
            try:
                rid = int.from_bytes(rlp.decode(payload, strict=True)[0], "big")
            except Exception:
                self._penalize(int(peer), "undecodable sync response")
                continue
            ch = self._waiting.get(rid)
            # Only the peer asked may answer a request id.
            if ch is not None and self._asked.get(rid) == int(peer):
                with contextlib.suppress(trio.WouldBlock):
                    ch.send_nowait((int(peer), payload))

    async def _serve(self) -> None:
        async for peer, _kind, _lamport, payload in self._requests:
            if _request_kind(payload) == GET_SNAPSHOT:
                await self._serve_snapshot(int(peer), payload)
                continue
            try:
                rid, start, count = decode_request(payload)
            except SyncError as e:
                self._penalize(int(peer), str(e))
                continue
            items = await trio.to_thread.run_sync(self._read, start, count)
            self.requests_served += 1
            await self._send(int(peer), "response",
                             encode_response(rid, self.ledger.height, items, self.ledger.floor))

    async def _serve_snapshot(self, peer: int, payload: bytes) -> None:
        server = self.snapshot_server
        try:
            rid, height, index = decode_snapshot_request(payload)
        except SnapshotSyncError as e:
            self._penalize(peer, str(e))
            return
        if server is None or not server.allow(peer):
            return
        part = await trio.to_thread.run_sync(server.part, height, index)
        self.requests_served += 1
        await self._send(peer, "response", encode_snapshot_response(rid, self.ledger.height, part))

    def _read(self, start: int, count: int) -> list[tuple[bytes, bytes]]:
        items: list[tuple[bytes, bytes]] = []
        size = 0
        head = self.ledger.height
        if start < self.ledger.floor:
            return items  # pruned: the requester needs a snapshot
        start = max(start, 1)
        for h in range(start, min(head, start + min(count, self.batch_blocks_max) - 1) + 1):
            try:
                block = bytes(self.ledger.block(h).encoded)
                cert = bytes(self.ledger.certificate(h).encoded)
            except ChainError:
                break
            size += len(block) + len(cert)
            if items and size > self.batch_bytes_max:
                break
            items.append((block, cert))
        return items


def _request_kind(payload: bytes) -> int | None:
    """The kind field of a request (None if undecodable: the block decoder reports it)."""
    try:
        first = rlp.decode(payload, strict=True)[0]
        return int.from_bytes(first, "big") if isinstance(first, bytes) else None
    except Exception:
        return None
