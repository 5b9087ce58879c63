"""Evidence of misbehaviour: reliable broadcast to every validator, own check, bounded store.

Theory of operation
-------------------
When the engine reports :class:`~consensus.contract.Evidence` (two conflicting messages
signed by one validator), the driver calls :meth:`EvidenceService.report`. The service
encodes it and Bracha-broadcasts it (:class:`p2p.broadcast.BrachaBroadcast`, over
``Kind.EVIDENCE``) to all validators, this node included. Bracha's guarantees with at most
``f`` Byzantine validators: if one honest node delivers a payload, every honest node
delivers the same payload (*totality*, *agreement*), even when the detector was the only
node that saw the two messages. On delivery every node decodes the payload and checks it
*itself* (``check``: both messages verify under the accused validator's key and really
conflict). The check is deterministic, so all honest nodes record the same evidence, or
none of them does. Unverifiable evidence is dropped, and the validator that broadcast it
(the Bracha origin: echoes and readies only repeat the origin's payload) loses score.

Invariants and bounds:

* the store keeps at most ``records_max`` records (oldest dropped), one per
  ``(offender, kind, view, seq)``; per-offender counts only grow (there are ``n`` offenders
  at most, the validators);
* the outbox of locally detected evidence is bounded (``outbox_max``; overflow counted);
* evidence larger than the broadcast payload bound (a pre-prepare with a large block) is
  checked and recorded locally only, and counted in ``too_large``;
* sent Bracha messages are re-sent ``resend_count`` times, ``resend_seconds`` apart (a
  bounded log of ``resend_log_max``), so a message lost to a full queue or a reconnection
  does not stall an instance: Bracha counts one vote per peer and phase, so a repeat is
  harmless.

Who calls it: :mod:`node.runtime` (wiring, ``report`` from the driver's evidence hook),
:mod:`node.rpc_methods` (``evidence`` and ``status`` read the store).
"""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from consensus.contract import Evidence, InvalidMessage
from p2p import Kind, PeerId
from p2p.broadcast import (
    PAYLOAD_BYTES_MAX,
    BrachaBroadcast,
    BroadcastOutput,
    Incoming,
    InvalidBroadcastMessage,
    Originate,
    decode_broadcast_message,
)

__all__ = ["EvidenceRecord", "EvidenceService", "EvidenceStatistics", "EvidenceStore"]

log = logging.getLogger("phalanx.node.evidence")

EvidenceKey = tuple[int, str, int, int]


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One recorded misbehaviour, as the ``evidence`` RPC method shows it."""

    offender: int
    kind: str
    view: int
    seq: int
    reporter: int            # the validator that detected and broadcast it
    first_digest: str        # 0x-hex digest (or state root) of each conflicting message
    second_digest: str
    local_only: bool = False   # too large to broadcast: recorded here only

    def to_json(self) -> dict[str, Any]:
        return {"offender": self.offender, "kind": self.kind, "view": self.view,
                "seq": self.seq, "reporter": self.reporter, "first": self.first_digest,
                "second": self.second_digest, "local_only": self.local_only}

    @classmethod
    def from_json(cls, doc: Any) -> EvidenceRecord:
        """The record :meth:`to_json` wrote.

        Raises:
            ValueError, TypeError, KeyError: ``doc`` is not such a record.
        """
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        ints = [doc[k] for k in ("offender", "view", "seq", "reporter")]
        texts = [doc[k] for k in ("kind", "first", "second")]
        if not all(type(v) is int and v >= 0 for v in ints):
            raise ValueError("offender, view, seq and reporter must be non-negative integers")
        if not all(isinstance(v, str) for v in texts) or not isinstance(doc["local_only"], bool):
            raise TypeError("kind, first and second must be strings, local_only a boolean")
        offender, view, seq, reporter = ints
        return cls(offender, texts[0], view, seq, reporter, texts[1], texts[2],
                   doc["local_only"])


class EvidenceStore:
    """Verified evidence, newest last, bounded; counts per accused validator.

    With a ``path`` the records survive a restart: each new record is appended to the file
    as one JSON line (flushed, not fsynced: losing the last lines in a power cut loses only
    a listing, never a vote), and the file is read back when the store is made. Lines that
    do not parse as a record (a torn last line, a hand edit) are skipped with a warning;
    when the file holds more than twice ``records_max`` lines, or such bad lines, it is
    rewritten with the records kept.

    Args:
        records_max: records kept (the oldest is dropped beyond it).
        path: the node's evidence file (``data/evidence.jsonl``), or None to keep the
            records in memory only.
    """

    def __init__(self, records_max: int = 256, path: Path | None = None) -> None:
        if records_max < 1:
            raise ValueError("records_max must be >= 1")
        self.records_max = records_max
        self._records: collections.OrderedDict[EvidenceKey, EvidenceRecord] = collections.OrderedDict()
        self._counts: dict[int, int] = {}
        self.total = 0
        self.path = path
        self.skipped_lines = 0
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            try:
                record = EvidenceRecord.from_json(json.loads(line))
            except (ValueError, TypeError, KeyError) as e:
                self.skipped_lines += 1
                log.warning("%s line %d skipped: not an evidence record (%s)", path, number, e)
                continue
            self._keep(record)
        # Rewrite a long file, and one with bad lines or a torn end (the next append would
        # otherwise continue the torn line).
        if len(lines) > 2 * self.records_max or self.skipped_lines or not text.endswith("\n"):
            kept = "".join(json.dumps(r.to_json()) + "\n" for r in self._records.values())
            tmp = path.with_suffix(".tmp")
            tmp.write_text(kept, encoding="utf-8")
            os.replace(tmp, path)

    def _keep(self, record: EvidenceRecord) -> bool:
        key = (record.offender, record.kind, record.view, record.seq)
        if key in self._records:
            return False
        self._records[key] = record
        if len(self._records) > self.records_max:
            self._records.popitem(last=False)
        self._counts[record.offender] = self._counts.get(record.offender, 0) + 1
        self.total += 1
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: EvidenceRecord) -> bool:
        """Record ``record``; False if that misbehaviour (offender, kind, view, seq) is
        already recorded. Appended to the file, if any."""
        if not self._keep(record):
            return False
        if self.path is not None:
            try:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record.to_json()) + "\n")
            except OSError as e:          # the record stays in memory; say why it may not last
                log.error("evidence not written to %s: %s", self.path, e)
        return True

    def newest(self, limit: int) -> list[EvidenceRecord]:
        """Up to ``limit`` records, newest first."""
        out: list[EvidenceRecord] = []
        for rec in reversed(self._records.values()):
            if len(out) >= limit:
                break
            out.append(rec)
        return out

    def counts(self) -> dict[int, int]:
        """Evidence recorded per accused validator (since start; not reduced by eviction)."""
        return dict(sorted(self._counts.items()))


@dataclass(frozen=True, slots=True)
class EvidenceStatistics:
    reported: int        # handed to us by our own engine
    broadcast: int       # of those, originated over Bracha
    delivered: int       # payloads Bracha delivered (ours and others')
    recorded: int        # new records after the check
    rejected: int        # delivered but unverifiable (origin penalised)
    too_large: int       # recorded locally only
    outbox_dropped: int
    malformed: int       # undecodable Kind.EVIDENCE frames (sender penalised)
    bracha_pending: int
    bracha_dropped: int


class EvidenceService:
    """Reliable broadcast of evidence among the validators, and the store it fills.

    Args:
        node: this validator's id (its index in the genesis).
        validators: number of validators ``n`` (ids ``0..n-1``).
        faults: ``f`` tolerated, ``n >= 3f + 1``.
        peers: the node's PeerManager (``subscribe`` is called here, before it runs).
        encode / decode: evidence <-> bytes (``decode`` raises ``InvalidMessage``).
        check: ``evidence -> None`` if it proves misbehaviour, else a reason.
        key_of: ``evidence -> (offender, kind, view, seq)``.
        store: where verified evidence goes.
        penalize: ``(peer, points, reason)`` lowers a peer's score.
        on_recorded: called with each newly recorded evidence (metrics).
    """

    def __init__(self, node: int, validators: int, faults: int, peers: Any, *,
                 encode: Callable[[Evidence], bytes], decode: Callable[[bytes], Evidence],
                 check: Callable[[Evidence], str | None],
                 key_of: Callable[[Evidence], EvidenceKey], store: EvidenceStore,
                 penalize: Callable[[int, int, str], Any] = lambda p, n, why: None,
                 on_recorded: Callable[[Evidence], None] = lambda ev: None,
                 outbox_max: int = 64, penalty_points: int = 50,
                 resend_seconds: float = 1.0, resend_count: int = 3,
                 resend_log_max: int = 1024) -> None:
        members = [PeerId(i) for i in range(validators)]
        self.core = BrachaBroadcast(PeerId(node), members, f=faults)
        self.node = node
        self.peers = peers
        self.encode, self.decode, self.check, self.key_of = encode, decode, check, key_of
        self.store = store
        self.penalize = penalize
        self.on_recorded = on_recorded
        self.penalty_points = penalty_points
        self.resend_seconds = resend_seconds
        self.resend_count = resend_count
        self._inbound = peers.subscribe(Kind.EVIDENCE, drop_when_full=True)
        self._outbox_send, self._outbox = trio.open_memory_channel[Evidence](outbox_max)
        self._resend: collections.deque[tuple[int, bytes, int]] = collections.deque(
            maxlen=resend_log_max)
        self._originated: collections.OrderedDict[EvidenceKey, None] = collections.OrderedDict()
        self._originated_max = 4 * store.records_max
        self._reported = self._broadcast = self._delivered = self._recorded = 0
        self._rejected = self._too_large = self._outbox_dropped = self._malformed = 0

    # ------------------------------------------------------------------ inputs

    def report(self, ev: Evidence) -> None:
        """Our engine found ``ev`` (the driver's hook; never blocks)."""
        self._reported += 1
        try:
            self._outbox_send.send_nowait(ev)
        except trio.WouldBlock:
            self._outbox_dropped += 1
            log.warning("evidence outbox full: evidence against %s dropped", ev.offender)

    def statistics(self) -> EvidenceStatistics:
        core = self.core.statistics()
        return EvidenceStatistics(self._reported, self._broadcast, self._delivered,
                                  self._recorded, self._rejected, self._too_large,
                                  self._outbox_dropped, self._malformed, core.pending,
                                  core.dropped)

    # ------------------------------------------------------------------ the task

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Broadcast reported evidence and handle Bracha traffic until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._originate_loop)
            nursery.start_soon(self._resend_loop)
            task_status.started()
            async for peer, _kind, _lamport, payload in self._inbound:
                try:
                    msg = decode_broadcast_message(payload)
                except InvalidBroadcastMessage as e:
                    self._malformed += 1
                    log.warning("malformed evidence broadcast from %s: %s", peer, e)
                    self.penalize(int(peer), self.penalty_points // 5, "malformed evidence broadcast")
                    continue
                self._execute(self.core.step(Incoming(PeerId(int(peer)), msg)))

    async def _originate_loop(self) -> None:
        async for ev in self._outbox:
            self.originate(ev)

    def originate(self, ev: Evidence) -> None:
        """Broadcast ``ev`` unless it is already recorded or was already broadcast by us."""
        key = self.key_of(ev)
        if key in self.store or key in self._originated:
            return
        self._originated[key] = None
        if len(self._originated) > self._originated_max:
            self._originated.popitem(last=False)
        why = self.check(ev)
        if why is not None:     # e.g. an engine whose evidence this check does not cover
            self._rejected += 1
            log.error("own evidence against %s does not verify (%s): not broadcast",
                      ev.offender, why)
            return
        data = self.encode(ev)
        if len(data) > min(self.core.payload_bytes_max, PAYLOAD_BYTES_MAX):
            self._too_large += 1
            log.warning("evidence against %s is %d bytes, beyond the broadcast bound: kept "
                        "locally only", ev.offender, len(data))
            self._record(ev, self.node, local_only=True)
            return
        self._broadcast += 1
        self._execute(self.core.step(Originate(data)))

    async def _resend_loop(self) -> None:
        while True:
            await trio.sleep(self.resend_seconds)
            for _ in range(len(self._resend)):
                peer, data, left = self._resend.popleft()
                self._send(peer, data)
                if left > 1:
                    self._resend.append((peer, data, left - 1))

    # ------------------------------------------------------------------ effects

    def _send(self, peer: int, data: bytes) -> None:
        try:
            self.peers.send_nowait(PeerId(peer), Kind.EVIDENCE, data)
        except Exception as e:  # a full queue or an unknown peer: the resend log retries
            log.debug("evidence broadcast to %s not queued: %s", peer, e)

    def _execute(self, out: BroadcastOutput) -> None:
        for peer, msg in out.send:
            data = msg.encode()
            self._send(int(peer), data)
            if self.resend_count > 0:
                self._resend.append((int(peer), data, self.resend_count))
        for d in out.deliver:
            self._delivered += 1
            self._on_delivered(int(d.origin), d.payload)

    def _on_delivered(self, origin: int, payload: bytes) -> None:
        try:
            ev = self.decode(payload)
            why = self.check(ev)
        except (InvalidMessage, ValueError) as e:
            why = f"undecodable: {e}"
            ev = None
        if why is not None or ev is None:
            self._rejected += 1
            if origin == self.node:     # checked before broadcasting: only a forged origin
                log.error("own evidence broadcast does not verify: %s", why)
                return
            log.warning("evidence broadcast by validator %s rejected: %s", origin, why)
            self.penalize(origin, self.penalty_points, f"unverifiable evidence: {why}")
            return
        self._record(ev, origin)

    def _record(self, ev: Evidence, reporter: int, *, local_only: bool = False) -> None:
        offender, kind, view, seq = self.key_of(ev)
        rec = EvidenceRecord(offender, kind, view, seq, reporter,
                             _digest_hex(ev.first), _digest_hex(ev.second), local_only)
        if self.store.add(rec):
            self._recorded += 1
            log.warning("evidence recorded: validator %s %s at view %s seq %s (reported by %s)",
                        offender, kind, view, seq, reporter)
            self.on_recorded(ev)


def _digest_hex(msg: Any) -> str:
    value: Any = getattr(msg, "digest", None)
    if value is None:
        value = getattr(msg, "state_root", b"")
    return "0x" + bytes(value).hex()


def pbft_evidence_service(node: int, validators: int, verifier: Any, instance_tag: bytes,
                          peers: Any, metrics: Any, store: EvidenceStore) -> EvidenceService:
    """The node's evidence service for PBFT evidence (the only engine that reports any).

    Args:
        node: this validator's id.
        validators: ``n``; ``f = max_faulty(n)``.
        verifier: checks validators' signatures.
        instance_tag: the chain's consensus signature tag.
        peers: the PeerManager (scores: an origin of bad evidence loses points).
        metrics: :class:`node.metrics.NodeMetrics` (recorded and rejected counters).
        store: where verified evidence goes.
    """
    from consensus.contract import max_faulty
    from consensus.pbft.evidence import (
        check_evidence,
        decode_evidence,
        encode_evidence,
        evidence_key,
    )

    def penalize(peer: int, points: int, why: str) -> None:
        metrics.evidence_rejected.inc()
        peers.report(PeerId(peer), points, why)

    return EvidenceService(
        node, validators, max_faulty(validators), peers,
        encode=encode_evidence, decode=decode_evidence,
        check=lambda ev: check_evidence(ev, verifier, instance_tag), key_of=evidence_key,
        store=store, penalize=penalize,
        on_recorded=lambda ev: metrics.evidence_recorded.labels(ev.kind).inc())
