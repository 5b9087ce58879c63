"""The consensus driver: runs one sans-IO engine inside the node's Trio nursery.

Theory of operation
-------------------
One task (:meth:`ConsensusDriver.run`) owns the engine: every input -- a peer's message, a
clock tick, a proposal, blocks applied by sync -- arrives as an event on one bounded
channel and is stepped in order, so the engine is never re-entered and the effects of one
step are fully executed before the next step starts. For each :class:`Output` the driver,
in the contract's order:

1. **persist**: encodes the records and appends them to the write-ahead log (fsynced, in a
   worker thread) *before anything is sent*. A validator killed after this point restarts
   from the WAL (:meth:`run` calls ``engine.restore(records)``) and never signs a vote that
   conflicts with one it may already have sent. Test hook: with the environment variable
   ``PHALANX_CRASH_AFTER_PERSIST=N`` the process calls ``os._exit(97)`` right after the
   N-th WAL append, before sending (used by the double-sign test; never set it otherwise);
2. **send**: encodes each message once; ``ALL`` goes to the transport's ``broadcast``,
   others to ``send``;
3. **deliver**: executes and commits the block in a worker thread (the ledger batch is
   fsynced), updates the mempool on the Trio thread, notifies commit listeners, then feeds
   ``Applied(seq, state_id)`` back into the engine (a no-op delivery reports the unchanged
   state id);
4. **evidence**: logged, counted and kept (bounded) for the API;
5. **wants**: handed to the ``on_state_wanted`` callback (block sync).

**Checkpoints aligned with the ledger** (PBFT): at every checkpoint seq the driver makes the
ledger's head a checkpoint (:meth:`chain.ledger.Ledger.checkpoint_head`, full state root
included) and reports that record's digest as the state in ``Applied``, so what 2f+1
validators sign in a stable checkpoint is the root of a snapshot this node can serve; the
``on_stable_checkpoint`` callback (:mod:`node.snapshot_sync`) then keeps the proof next to
the snapshot and prunes. Snapshot installs run in the engine task through
:meth:`ConsensusDriver.call_in_engine_task`.

After a stable checkpoint (a PBFT ``CheckpointProof`` or Paxos ``CheckpointRecord`` in
``persist``) the WAL is compacted to the records the engine still needs. PBFT: the proof,
everything above it, and the latest own vote, view change and new view (they fix the view a
restarted replica resumes in). Paxos: the checkpoint, the highest promise and incarnation,
and the highest-ballot accepted value of each slot above the checkpoint.

**Proposals.** Only the current leader proposes, one block at a time: block ``head + 1``
once the previous proposal was committed (or went stale, e.g. after a view change) and
either the mempool holds transactions or ``block_time_ms`` passed since the last block
(empty blocks keep progress visible).

Called by :mod:`node.runtime`; tests drive several of these in one process over a fake
transport.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from consensus.contract import (
    ALL,
    Applied,
    Delivery,
    Evidence,
    NodeId,
    Output,
    Propose,
    Receive,
    Tick,
)
from consensus.paxos.records import (
    AcceptedRecord,
    CheckpointRecord,
    IncarnationRecord,
    PromisedRecord,
)
from consensus.paxos.records import compact_records as compact_paxos_records
from node.app import ApplyOutcome, ChainApp
from node.engines import EngineKit

__all__ = ["ConsensusDriver", "DriverConfig", "DriverStatus", "Transport", "WalLike"]

log = logging.getLogger("phalanx.node.driver")

CRASH_ENV = "PHALANX_CRASH_AFTER_PERSIST"
CRASH_EXIT_CODE = 97


class Transport(Protocol):
    """Where consensus messages go (p2p in a node, memory channels in tests)."""

    async def send(self, peer: int, payload: bytes) -> None: ...

    async def broadcast(self, payload: bytes) -> None: ...


class WalLike(Protocol):
    """What the driver needs of :class:`node.wal.WriteAheadLog`."""

    def records(self) -> list[bytes]: ...

    def append(self, payloads: Sequence[bytes]) -> int: ...

    def compact(self, keep: Sequence[bytes]) -> None: ...


@dataclass(frozen=True)
class DriverConfig:
    """Timings and bounds of the driver.

    Attributes:
        tick_ms: length of one engine tick.
        block_time_ms: the leader proposes an empty block after this long without one.
        proposal_stale_ticks: a proposal not committed after this many ticks is retried.
        backup_propose_ms: a backup that saw no block for this long proposes one itself
            (0 = never). Its engine then holds a pending request, which runs the backup's
            view-change timer: without it, backups with nothing pending would never join a
            view change when the primary stalls.
        events_max: bound of the event channel (peers' messages wait for room).
        events_batch_max: most queued events stepped before the task yields to others.
        evidence_max: evidence items kept for the API.
        crash_after_persist: test hook (see module docstring); 0 = off.
        use_threads: run WAL appends and block commits in worker threads (False in
            MockClock tests, where time would jump while a thread works).
    """

    tick_ms: int = 50
    block_time_ms: int = 200
    proposal_stale_ticks: int = 60
    backup_propose_ms: int = 4000
    events_max: int = 4096
    events_batch_max: int = 256
    evidence_max: int = 256
    crash_after_persist: int = 0
    use_threads: bool = True


@dataclass(frozen=True)
class DriverStatus:
    """A snapshot for ``status`` / ``dump_consensus_state``."""

    engine: str
    node_id: int
    view: int
    leader: int | None
    is_leader: bool
    height: int
    last_seq: int
    proposal_pending: int | None
    deliveries: int
    noops: int
    evidence: int
    byzantine: str
    waiting_for: str


class ConsensusDriver:
    """Drive ``kit.engine`` for ``app`` over ``transport``; see the module docstring.

    Args:
        kit: the engine and its helpers (:func:`node.engines.build_engine`).
        app: the chain application.
        wal: the write-ahead log.
        transport: where messages go.
        config: timings and bounds.
        now_ms: wall clock in ms (for empty-block timing).
    """

    def __init__(
        self,
        kit: EngineKit,
        app: ChainApp,
        wal: WalLike,
        transport: Transport,
        config: DriverConfig | None = None,
        *,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.kit = kit
        self.engine = kit.engine
        self.app = app
        self.wal = wal
        self.transport = transport
        self.config = cfg = config or DriverConfig()
        self._now_ms = now_ms or (lambda: int(trio.current_time() * 1000))
        self._events_tx, self._events_rx = trio.open_memory_channel[tuple[Any, ...]](cfg.events_max)
        crash = cfg.crash_after_persist or int(os.environ.get(CRASH_ENV, "0") or 0)
        self._crash_after = crash
        self._appends = 0
        self._t0: float | None = None
        self._tick = 0
        self._proposed: tuple[int, int] | None = None  # (height, tick)
        self._last_block_ms = 0
        self._last_backup_propose_ms = 0
        self.backup_proposals = 0
        self.deliveries = 0
        self.noops = 0
        self.evidence: collections.deque[Evidence] = collections.deque(maxlen=cfg.evidence_max)
        self.evidence_total = 0
        self.dropped_messages = 0
        self.commit_listeners: list[Callable[[ApplyOutcome], None]] = []
        self.on_state_wanted: Callable[[Any], None] | None = None
        self.on_evidence: Callable[[Evidence], None] | None = None
        self.on_stable_checkpoint: Callable[[Any], Awaitable[None]] | None = None
        self.aligned_checkpoints = kit.kind == "pbft"
        self.ready = trio.Event()

    # ------------------------------------------------------------------ inputs

    async def receive(self, sender: int, payload: bytes) -> None:
        """A consensus message from peer ``sender`` (waits while the event queue is full)."""
        try:
            msg = self.kit.decode_message(payload)
        except Exception as e:  # InvalidMessage and decoder errors: a peer's bad input
            self.dropped_messages += 1
            log.warning("dropping undecodable consensus message from %s: %s", sender, e)
            return
        await self._events_tx.send(("recv", sender, msg))

    async def apply_synced(self, items: Sequence[tuple[Any, Any]]) -> None:
        """Hand verified-on-apply ``(block, certificate)`` pairs from block sync to the engine task."""
        await self._events_tx.send(("synced", list(items)))

    async def call_in_engine_task(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn()`` in the engine task, between two steps (no commit interleaves), and
        return its result or raise its exception. ``fn`` may use :meth:`step`."""
        done, box = trio.Event(), list[Any]()
        await self._events_tx.send(("call", fn, done, box))
        await done.wait()
        if isinstance(box[0], Exception):
            raise box[0]
        return box[0]

    async def step(self, event: Any) -> None:
        """Step the engine and execute its outputs (only from the engine task)."""
        await self._step(event)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a worker thread (or inline when threads are off)."""
        return await self._run(fn, *args)

    async def state_id_at(self, seq: int) -> bytes:
        """What ``Applied(seq)`` reports: at a PBFT checkpoint seq, the digest of a ledger
        checkpoint made at the head (see module docstring); elsewhere ``app.state_id()``."""
        if self.aligned_checkpoints and seq % self.kit.checkpoint_interval == 0:
            checkpoint = await self._run(self.app.ledger.checkpoint_head)
            return bytes(checkpoint.digest)
        return self.app.state_id()

    # ------------------------------------------------------------------ run

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore from the WAL, then step the engine until cancelled."""
        records = self.wal.records()
        decoded = [self.kit.decode_record(r) for r in records]
        self.engine.restore(decoded)
        log.info("consensus restored from %d WAL records; head %d at seq %d",
                 len(records), self.app.head.height, self.app.head_seq)
        self._t0 = trio.current_time()
        self._last_block_ms = self._now_ms()
        if self.app.head_seq > 0:
            await self._step(Applied(self.app.head_seq, await self.state_id_at(self.app.head_seq)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._ticker)
            self.ready.set()
            task_status.started()
            batch_max = self.config.events_batch_max
            async for event in self._events_rx:
                await self._handle(event)
                # Drain what else is queued before yielding to the other tasks: each yield
                # waits for every runnable task (API requests, gossip) to take a turn, so
                # one event per turn let a loaded node's queue of peers' messages grow
                # until views timed out behind it.
                for _ in range(batch_max - 1):
                    try:
                        event = self._events_rx.receive_nowait()
                    except trio.WouldBlock:
                        break
                    await self._handle(event)

    async def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "recv":
            await self._step(Receive(NodeId(event[1]), event[2]))
        elif kind == "tick":
            self._tick = event[1]
            await self._step(Tick(event[1]))
        elif kind == "synced":
            await self._apply_synced(event[1])
        elif kind == "call":
            try:
                event[3].append(await event[1]())
            except Exception as e:  # handed back to the caller
                event[3].append(e)
            finally:
                event[2].set()
        await self._maybe_propose()

    async def _ticker(self) -> None:
        period = self.config.tick_ms / 1000
        assert self._t0 is not None
        while True:
            await trio.sleep(period)
            now = int((trio.current_time() - self._t0) / period)
            # When the engine is busy the tick is skipped: the next one carries the time.
            with contextlib.suppress(trio.WouldBlock):
                self._events_tx.send_nowait(("tick", now))

    # ------------------------------------------------------------------ stepping

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.config.use_threads:
            return await trio.to_thread.run_sync(fn, *args)
        result = fn(*args)
        await trio.lowlevel.checkpoint()
        return result

    async def _step(self, event: Any) -> None:
        queue = collections.deque([self.engine.step(event)])
        while queue:
            out = queue.popleft()
            await self._execute(out, queue)

    async def _execute(self, out: Output, queue: collections.deque[Output]) -> None:
        if out.persist:
            payloads = [r.encode() for r in out.persist]
            await self._run(self.wal.append, payloads)
            self._appends += 1
            if self._crash_after and self._appends >= self._crash_after:
                log.critical("%s=%d reached: exiting before sending", CRASH_ENV, self._crash_after)
                os._exit(CRASH_EXIT_CODE)
        for dest, msg in out.send:
            payload = msg.encode()
            if dest is ALL:
                await self.transport.broadcast(payload)
            else:
                await self.transport.send(int(dest), payload)
        for delivery in out.deliver:
            queue.append(await self._deliver(delivery))
        for ev in out.evidence:
            self.evidence.append(ev)
            self.evidence_total += 1
            log.warning("evidence against validator %s: %s", ev.offender, ev.kind)
            if self.on_evidence is not None:
                self.on_evidence(ev)
        for want in out.wants:
            log.info("engine wants state at seq %s", getattr(want, "seq", "?"))
            if self.on_state_wanted is not None:
                self.on_state_wanted(want)
        if self.on_stable_checkpoint is not None:
            for r in out.persist:
                if type(r).__name__ == "CheckpointProof":
                    await self.on_stable_checkpoint(r)
        if any(type(r).__name__ in ("CheckpointProof", "CheckpointRecord") for r in out.persist):
            await self._compact_wal()

    async def _deliver(self, d: Delivery) -> Output:
        cert = d.certificate
        outcome = await self._run(self.app.execute, d.seq, cert.view, d.value, cert.signatures)
        self._finish(outcome)
        return self.engine.step(Applied(d.seq, await self.state_id_at(d.seq)))

    def _finish(self, outcome: ApplyOutcome) -> None:
        self.deliveries += 1
        if outcome.block is None:
            self.noops += 1
            return
        self.app.finish_delivery(outcome)
        self._last_block_ms = self._now_ms()
        for listener in self.commit_listeners:
            listener(outcome)

    async def _apply_synced(self, items: list[tuple[Any, Any]]) -> None:
        for block, cert in items:
            head = self.app.head
            if block.header.height != head.height + 1 or block.header.parent_hash != head.block_hash:
                continue
            # The seqs between the previous block's and this one's were no-ops, so the chain
            # state at a checkpoint seq among them is the state before this block: report it,
            # or this node would never vote for those checkpoints.
            k = self.kit.checkpoint_interval
            skipped = range((self.app.head_seq // k + 1) * k, int(cert.seq), k)
            before_id = await self.state_id_at(skipped[0]) if skipped else self.app.state_id()
            try:
                outcome = await self._run(self.app.apply_synced, block, cert)
            except Exception as e:  # a peer's bad block or certificate
                log.warning("synced block %d refused: %s", block.header.height, e)
                return
            self._finish(outcome)
            for c in skipped:
                await self._step(Applied(c, before_id))
            await self._step(Applied(outcome.seq, await self.state_id_at(outcome.seq)))

    # ------------------------------------------------------------------ proposing

    def leader(self) -> int | None:
        return self.kit.leader()

    def _normal_phase(self) -> bool:
        phase = getattr(self.kit.inner, "phase", None)
        return phase is None or getattr(phase, "value", "normal") == "normal"

    async def _maybe_propose(self) -> None:
        app = self.app
        if app.key is None:
            return
        if self.kit.leader() != int(self.kit.node_id) or not self._normal_phase():
            await self._maybe_backup_propose()
            return
        head = app.head.height
        if self._proposed is not None:
            height, at = self._proposed
            if head < height and self._tick - at < self.config.proposal_stale_ticks:
                return
            self._proposed = None
        if len(app.mempool) == 0 and self._now_ms() - self._last_block_ms < self.config.block_time_ms:
            return
        value = app.build_proposal()
        self._proposed = (head + 1, self._tick)
        await self._step(Propose(value))

    async def _maybe_backup_propose(self) -> None:
        wait = self.config.backup_propose_ms
        if not wait:
            return
        now = self._now_ms()
        # At most one backup proposal per stall: it stays pending in the engine (and keeps
        # the view-change timer running) until some block is delivered.
        if now - self._last_block_ms < wait or self._last_backup_propose_ms > self._last_block_ms:
            return
        self._last_backup_propose_ms = now
        self.backup_proposals += 1
        log.info("no block for %d ms: proposing block %d as a backup (starts the view-change "
                 "timer if the primary is stuck)", now - self._last_block_ms, self.app.head.height + 1)
        await self._step(Propose(self.app.build_proposal()))

    # ------------------------------------------------------------------ WAL

    async def _compact_wal(self) -> None:
        records = self.wal.records()
        keep = select_wal_records(records, self.kit.decode_record)
        if len(keep) < len(records):
            await self._run(self.wal.compact, keep)
            log.info("WAL compacted: %d -> %d records", len(records), len(keep))

    # ------------------------------------------------------------------ status

    def status(self) -> DriverStatus:
        """Where consensus stands, and in plain words what it waits for."""
        view = self.kit.view()
        leader = self.kit.leader()
        return DriverStatus(
            engine=self.kit.kind,
            node_id=int(self.kit.node_id),
            view=view,
            leader=leader,
            is_leader=leader == int(self.kit.node_id),
            height=self.app.head.height,
            last_seq=self.app.last_seq,
            proposal_pending=None if self._proposed is None else self._proposed[0],
            deliveries=self.deliveries,
            noops=self.noops,
            evidence=self.evidence_total,
            byzantine=self.kit.byzantine,
            waiting_for=self.waiting_for(),
        )

    def waiting_for(self) -> str:
        """A plain answer to "why is it not committing"."""
        stats = self.kit.inner.statistics()
        leader = self.kit.leader()
        if self.kit.kind == "pbft":
            if stats.phase != "normal":
                return (f"view change to view {stats.view}: waiting for a quorum of "
                        f"{self.kit.n - self.kit.f} view-change messages and a NEW-VIEW "
                        f"from validator {stats.primary}")
            if stats.in_flight:
                return (f"{stats.in_flight} block(s) in flight at seq > {stats.last_executed}: "
                        f"waiting for prepare/commit quorums ({self.kit.n - self.kit.f} of "
                        f"{self.kit.n}) in view {stats.view}")
            if leader == int(self.kit.node_id):
                return "nothing in flight: this node is the primary and proposes on the next tick"
            return f"nothing in flight: waiting for a proposal from primary {leader}"
        if leader is None:
            return "no leader elected yet: waiting for the election to settle"
        return f"waiting for leader {leader}'s accept quorum (f+1 of {self.kit.n})"


PAXOS_RECORDS = (PromisedRecord, AcceptedRecord, CheckpointRecord, IncarnationRecord)


def select_wal_records(records: Sequence[bytes], decode: Callable[[bytes], Any]) -> list[bytes]:
    """The WAL records a replica still needs after its latest stable checkpoint.

    A Paxos log is folded by :func:`consensus.paxos.records.compact_records`. For PBFT:

    Keeps the newest ``CheckpointProof``, every record about a seq above it, and the newest
    own vote, view change and new view (they decide the view a restarted replica resumes
    in). Records of other engines are all kept.
    """
    decoded = [(raw, decode(raw)) for raw in records]
    if decoded and all(isinstance(rec, PAXOS_RECORDS) for _, rec in decoded):
        return [rec.encode() for rec in compact_paxos_records([rec for _, rec in decoded])]
    proofs = [(rec.seq, i) for i, (_, rec) in enumerate(decoded) if type(rec).__name__ == "CheckpointProof"]
    if not proofs:
        return list(records)
    stable, proof_index = max(proofs)
    latest: dict[str, tuple[int, int]] = {}
    keep_index = {proof_index}
    for i, (_, rec) in enumerate(decoded):
        name = type(rec).__name__
        if name in ("ViewChange", "NewView"):
            key_view = getattr(rec, "new_view", getattr(rec, "view", 0))
            if name not in latest or key_view >= latest[name][0]:
                latest[name] = (key_view, i)
            continue
        if name == "CheckpointProof":
            continue
        seq = getattr(rec, "seq", None)
        if seq is None:
            return list(records)  # not a PBFT record: keep everything
        if seq > stable:
            keep_index.add(i)
        elif name in ("PrePrepare", "Prepare", "Commit"):
            v = int(rec.view)
            if "vote" not in latest or v >= latest["vote"][0]:
                latest["vote"] = (v, i)
    keep_index.update(i for _, i in latest.values())
    return [decoded[i][0] for i in sorted(keep_index)]
