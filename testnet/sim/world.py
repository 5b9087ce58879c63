"""The discrete-event world: engines, the network, crashes and the application, in virtual time.

Theory of operation
-------------------
Events sit in a heap keyed by ``(tick, sequence number)`` -- never by object identity or
``hash()`` -- so ties break in insertion order and a seed replays exactly. Each world tick
the world (1) handles the events due at that tick (message arrivals, crashes, restarts,
partition starts and ends), (2) ticks every running endpoint whose local clock advanced
(clock drift: a slow endpoint's clock advances at ``rate < 1``), (3) hands out workload
proposals. An engine's :class:`Output` is executed in contract order: persist (appended to
the endpoint's durable records), send (encoded to bytes; the bytes are decoded by the first recipient
that receives them and the immutable message is shared with the send's other recipients;
a sample of honest sends must survive ``decode(encode(m)).encode() == encode(m)``),
deliver (checked, appended to the application log, then ``Applied(seq, root)`` is fed back
where ``root`` hashes the delivered prefix), evidence (checked), wants (state installed from
an honest replica whose application holds that checkpoint, then ``Applied``).

A crash throws the engine away and keeps only its persisted records and the application
log (the ledger is durable); a restart builds a fresh engine and calls ``restore(records)``.
Twins are two endpoints sharing one node id and key; the network routes a node's messages
to every endpoint of that node.

Invariants: one ``random.Random`` per purpose, derived from the seed by name; iteration only
over sorted lists; an engine exception stops the world with a :class:`CrashInfo`; the first
safety violation stops it too.

Called by: :mod:`testnet.sim.runner`.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from consensus.contract import (
    ALL,
    Applied,
    Engine,
    Input,
    InvalidMessage,
    NodeId,
    Propose,
    Receive,
    StateWanted,
    Tick,
)
from testnet.sim.checkers import SafetyChecker
from testnet.sim.network import Network
from testnet.sim.trace import Trace, short_hash

__all__ = ["CrashInfo", "Endpoint", "World", "derive_rng"]

GENESIS_ROOT = b"\x00" * 32
_STEP_CHAIN_MAX = 10_000       # Applied feedback per event; more means an engine loops
_WANTS_PENDING_MAX = 64
_CODEC_FIRST_CHECKED = 8      # round-trip every message type's first sends ...
_CODEC_SAMPLE_EVERY = 16      # ... then one send in this many (the check costs a decode)


def derive_rng(seed: int, purpose: str) -> random.Random:
    """A child RNG for one purpose: string seeds hash with SHA-512, stable across runs."""
    return random.Random(f"phalanx-sim:{seed}:{purpose}")


@dataclass(frozen=True, slots=True)
class CrashInfo:
    """An engine (or its codec) raised: the run's status is ``crash``."""

    tick: int
    endpoint: int
    event: str
    error: str
    traceback: str


@dataclass(slots=True)
class Endpoint:
    ep: int
    node: NodeId
    behaviour: str | None                 # None: honest
    build: Callable[[int, int], Engine]   # (endpoint, incarnation) -> engine
    engine: Engine | None = None
    records: list[Any] = field(default_factory=list)
    app_log: list[bytes] = field(default_factory=list)
    app_roots: list[bytes] = field(default_factory=list)
    incarnation: int = 0
    rate: float = 1.0
    clock_acc: float = 0.0
    now: int = 0
    wants: list[StateWanted] = field(default_factory=list)
    crashes: int = 0

    @property
    def up(self) -> bool:
        return self.engine is not None

    @property
    def height(self) -> int:
        return len(self.app_log)


class _Stop(Exception):
    pass


class World:
    """Owns the clock, the event heap, the endpoints and the network."""

    def __init__(self, endpoints: list[Endpoint], network: Network, checker: SafetyChecker,
                 decode: Callable[[bytes], Any], trace: Trace, check_codec: bool = True) -> None:
        self.endpoints = {e.ep: e for e in endpoints}
        self.order = sorted(self.endpoints)
        self._by_node: dict[int, list[int]] = {}
        for e in sorted(endpoints, key=lambda x: x.ep):
            self._by_node.setdefault(int(e.node), []).append(e.ep)
        self.network = network
        self.checker = checker
        self._decode = decode
        self.trace = trace
        self._check_codec = check_codec
        self._heap: list[tuple[int, int, str, int, int, Any]] = []
        self._seq = 0
        self.tick = 0
        self.crash: CrashInfo | None = None
        self.messages_delivered = 0
        self.decode_errors = 0
        self.lost_to_down = 0
        self.wants_served = 0
        self.steps = 0
        self._sends = 0
        self._codec_seen: dict[str, int] = {}

    # -- scheduling ---------------------------------------------------------------------------
    def schedule(self, tick: int, kind: str, a: int = -1, b: int = -1, payload: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (tick, self._seq, kind, a, b, payload))

    def drop_scheduled(self, kinds: tuple[str, ...]) -> None:
        """Remove every scheduled event of these kinds (used at heal)."""
        self._heap = [item for item in self._heap if item[2] not in kinds]
        heapq.heapify(self._heap)

    @property
    def stopped(self) -> bool:
        return self.crash is not None or self.checker.violation is not None

    def start(self) -> None:
        """Build every endpoint's first engine (crash status if a constructor raises)."""
        try:
            for ep in self.order:
                e = self.endpoints[ep]
                e.engine = self._guard(e, "build", lambda e=e: e.build(e.ep, e.incarnation))  # type: ignore[misc]
        except _Stop:
            pass

    def run_ticks(self, count: int, propose: Callable[[int], list[tuple[int, bytes]]],
                  until: Callable[[], bool] | None = None) -> None:
        """Advance ``count`` world ticks (or until ``until()`` holds or the world stops)."""
        try:
            for _ in range(count):
                if self.stopped or (until is not None and until()):
                    return
                self.tick += 1
                self._one_tick(propose)
        except _Stop:
            return

    def _one_tick(self, propose: Callable[[int], list[tuple[int, bytes]]]) -> None:
        t = self.tick
        heap = self._heap
        while heap and heap[0][0] <= t:
            _, _, kind, a, b, payload = heapq.heappop(heap)
            self._handle(kind, a, b, payload)
        for ep in self.order:
            e = self.endpoints[ep]
            if e.engine is None:
                continue
            if e.wants:
                self._retry_wants(e)
            e.clock_acc += e.rate
            if e.clock_acc >= 1.0:
                e.clock_acc -= 1.0
                e.now += 1
                self._step(e, Tick(e.now))
        for node, value in propose(t):
            for ep in self._by_node.get(node, []):
                e = self.endpoints[ep]
                if e.engine is not None:
                    self.trace.record(t, "propose", ep, ep, short_hash(value))
                    self._step(e, Propose(value))

    # -- events -------------------------------------------------------------------------------
    def _handle(self, kind: str, a: int, b: int, payload: Any) -> None:
        t = self.tick
        if kind == "msg":
            data, digest, decoded = payload
            dst = self.endpoints[b]
            if self.network.is_cut(a, b):
                self.network.cut_losses += 1
                self.trace.record(t, "cutloss", a, b, digest)
                return
            if dst.engine is None:
                self.lost_to_down += 1
                self.trace.record(t, "downloss", a, b, digest)
                return
            if decoded is not None:  # another receiver of the same send decoded these bytes
                msg = decoded[0]
            else:
                try:
                    msg = self._decode(data)
                except InvalidMessage:
                    self.decode_errors += 1
                    self.trace.record(t, "badmsg", a, b, digest)
                    return
                except Exception as exc:   # a codec must only raise InvalidMessage
                    self._crash(dst, f"decode of {digest}", exc)
                payload[2] = (msg,)
            self.messages_delivered += 1
            self.trace.record(t, "recv", a, b, digest)
            self._step(dst, Receive(self.endpoints[a].node, msg))
        elif kind == "crash":
            e = self.endpoints[a]
            if e.engine is not None:
                e.engine = None
                e.crashes += 1
                e.wants.clear()
                self.trace.record(t, "crash", a, a)
        elif kind == "restart":
            self.restart(a)
        elif kind == "cut":
            self.network.cut(payload)
            self.trace.record(t, "cut", a, b, str(len(payload)))
        elif kind == "mend":
            self.network.mend(payload)
            self.trace.record(t, "mend", a, b, str(len(payload)))
        else:
            raise AssertionError(f"unknown event kind {kind}")

    def restart(self, ep: int) -> None:
        e = self.endpoints[ep]
        if e.engine is not None:
            return
        e.incarnation += 1
        self.trace.record(self.tick, "restart", ep, ep, str(len(e.records)))

        def rebuild() -> Engine:
            engine = e.build(e.ep, e.incarnation)
            engine.restore(list(e.records))
            return engine

        e.engine = self._guard(e, "restore", rebuild)
        self.checker.on_restart(ep)

    # -- executing engine outputs -------------------------------------------------------------
    def _guard(self, e: Endpoint, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            self._crash(e, what, exc)

    def _crash(self, e: Endpoint, what: str, exc: BaseException) -> None:
        if self.crash is None:
            self.crash = CrashInfo(self.tick, e.ep, what, f"{type(exc).__name__}: {exc}",
                                   traceback.format_exc())
        raise _Stop

    def _step(self, e: Endpoint, first: Input) -> None:
        work: deque[Input] = deque([first])
        budget = _STEP_CHAIN_MAX
        while work:
            event = work.popleft()
            engine = e.engine
            if engine is None:
                return
            budget -= 1
            if budget < 0:
                self._crash(e, "step chain", RuntimeError("engine never stops asking"))
            self.steps += 1
            try:
                out = engine.step(event)
            except Exception as exc:
                self._crash(e, type(event).__name__, exc)
            if out.persist:
                e.records.extend(out.persist)
            for dest, msg in out.send:
                self._send(e, dest, msg)
            for d in out.deliver:
                self._deliver(e, d, work)
            for ev in out.evidence:
                self.trace.record(self.tick, "evidence", e.ep, int(ev.offender), ev.kind)
                self.checker.on_evidence(self.tick, e.ep, ev)
            for want in out.wants:
                self._want(e, want, work)
            if self.checker.violation is not None:
                raise _Stop

    def _send(self, e: Endpoint, dest: Any, msg: Any) -> None:
        try:
            data = msg.encode()
        except Exception as exc:
            self._crash(e, f"encode of {type(msg).__name__}", exc)
        digest = short_hash(data)
        self._sends += 1
        if self._check_codec and e.behaviour is None and self._sample_codec(msg):
            try:
                again = self._decode(data).encode()
            except Exception as exc:
                self._crash(e, f"codec round trip of {type(msg).__name__}", exc)
            if again != data:
                self._crash(e, f"codec round trip of {type(msg).__name__}",
                            AssertionError("decode(encode(m)).encode() differs"))
        if dest is ALL:
            targets = [ep for ep in self.order if self.endpoints[ep].node != e.node]
        else:
            targets = [ep for ep in self._by_node.get(int(dest), []) if ep != e.ep]
        now = self.tick
        # One payload per send, shared by its receivers: the first to receive it decodes the
        # bytes and keeps the (immutable) message in the payload's last slot for the others.
        payload: list[Any] = [data, digest, None]
        for dst in targets:
            self.trace.record(now, "send", e.ep, dst, digest)
            for arrival in self.network.transmit(e.ep, dst, now):
                self.schedule(arrival, "msg", e.ep, dst, payload)

    def _sample_codec(self, msg: Any) -> bool:
        """Round-trip the first few messages of each type, then one send in 16."""
        name = type(msg).__name__
        seen = self._codec_seen.get(name, 0)
        self._codec_seen[name] = seen + 1
        return seen < _CODEC_FIRST_CHECKED or self._sends % _CODEC_SAMPLE_EVERY == 0

    def _deliver(self, e: Endpoint, d: Any, work: deque[Input]) -> None:
        self.trace.record(self.tick, "deliver", e.ep, d.seq, short_hash(d.value))
        append = self.checker.on_delivery(self.tick, e.ep, d, e.app_log)
        if self.checker.violation is not None:
            raise _Stop
        if append:
            prev = e.app_roots[-1] if e.app_roots else GENESIS_ROOT
            e.app_log.append(d.value)
            e.app_roots.append(_root(prev, d.seq, d.value))
            self.checker.on_app_value(self.tick, e.ep, d.seq, d.value)
        if 1 <= d.seq <= e.height:
            work.append(Applied(d.seq, e.app_roots[d.seq - 1]))

    def _want(self, e: Endpoint, want: StateWanted, work: deque[Input]) -> None:
        self.trace.record(self.tick, "want", e.ep, want.seq, want.state_root.hex()[:16])
        if not self._serve(e, want, work) and all(w.seq != want.seq or w.state_root != want.state_root for w in e.wants):
            e.wants.append(want)
            del e.wants[:-_WANTS_PENDING_MAX]

    def _retry_wants(self, e: Endpoint) -> None:
        pending, e.wants = e.wants, []
        for want in pending:
            work: deque[Input] = deque()
            if self._serve(e, want, work):
                while work:
                    self._step(e, work.popleft())
            else:
                e.wants.append(want)

    def _serve(self, e: Endpoint, want: StateWanted, work: deque[Input]) -> bool:
        seq = want.seq
        source: Endpoint | None = None
        if 1 <= seq <= e.height and e.app_roots[seq - 1] == want.state_root:
            source = e
        else:
            for ep in self.order:
                s = self.endpoints[ep]
                if (s.behaviour is None and s.engine is not None and s is not e
                        and s.height >= seq >= 1 and s.app_roots[seq - 1] == want.state_root):
                    source = s
                    break
            if source is None:
                return False
        if seq > e.height:
            for i in range(e.height, seq):
                e.app_log.append(source.app_log[i])
                e.app_roots.append(source.app_roots[i])
                self.checker.on_app_value(self.tick, e.ep, i + 1, source.app_log[i])
        self.checker.on_install(e.ep, seq)
        self.wants_served += 1
        self.trace.record(self.tick, "install", e.ep, source.ep, str(seq))
        work.append(Applied(seq, want.state_root))
        return True


def _root(prev: bytes, seq: int, value: bytes) -> bytes:
    return hashlib.sha256(prev + seq.to_bytes(8, "big") + value).digest()
