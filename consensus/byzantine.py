"""Byzantine behaviours: named wrappers that make an honest engine lie, with its own key.

Theory of operation
-------------------
A behaviour wraps an honest engine (it runs the real protocol underneath) and rewrites the
``Output`` of every ``step``: it drops, delays, duplicates or replaces outgoing messages, or
forges new ones signed with the node's *own* signer (a Byzantine replica cannot sign for
others). Forged messages are re-signed through the ``sign_message(msg, signer)`` function of
the module that defines the message class, and found by field name (``value``, ``digest``,
``state_root``, ``view``), so the generic behaviours work on any engine whose messages are
frozen dataclasses with ``sender``/``signature`` fields; ``silent``, ``replay`` and ``flood``
work on any engine at all. ``view-change-spam`` knows PBFT's ``ViewChange``.

``twins`` is not a wrapper: the simulator runs two honest engines with one node id and key
(the factory returns the engine unchanged and the simulator builds the second copy).

:data:`BEHAVIOURS` maps each name to a factory ``(engine, ByzantineContext) -> Engine``;
tests, the simulator, testnets and ``phalanx start --byzantine KIND`` look them up by name.
Every buffer here is bounded (``*_max``). Randomness comes only from ``ctx.rng``.

Called by: testnet/sim (runner), node wiring (``--byzantine``), tests.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from consensus.contract import ALL, Broadcast, Engine, NodeId, Output, Signer, Tick

__all__ = [
    "BEHAVIOURS",
    "PRIMARY_KINDS",
    "TWINS",
    "Behaviour",
    "ByzantineContext",
    "ByzantineEngine",
    "ForgedBytes",
]

TWINS = "twins"
#: Behaviours that only bite on the primary; placement puts them on node 0 first.
PRIMARY_KINDS = frozenset({"equivocate", "slow-primary"})


@dataclass(frozen=True, slots=True)
class ByzantineContext:
    """What a behaviour may use: its own identity and key, a seeded RNG, a value forge.

    ``forge_value()`` returns a fresh value that passes the application's validity check
    (the driver records it, so checkers know it was forged rather than corrupted).
    """

    node_id: NodeId
    n: int
    f: int
    signer: Signer
    rng: random.Random
    forge_value: Callable[[], bytes]
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any) -> Any:
        return dict(self.options).get(name, default)

    def peers(self) -> list[NodeId]:
        return [NodeId(i) for i in range(self.n) if i != self.node_id]


@dataclass(frozen=True, slots=True)
class ForgedBytes:
    """Raw bytes put on the wire as they are (junk, truncated or oversized messages)."""

    data: bytes

    def encode(self) -> bytes:
        return self.data


Send = tuple[NodeId | Broadcast, Any]


def _resign(msg: Any, signer: Signer, tag: bytes | None = None, **changes: Any) -> Any | None:
    """``msg`` with ``changes``, re-signed by ``signer``.

    Signs through the message module's ``sign_message(msg, signer[, tag])`` if it has one,
    else through the message's own ``signed_bytes([tag])`` and ``with_signature``. Returns
    None when the message can't be rebuilt (no such fields, a constructor check, no signing).
    """
    if not dataclasses.is_dataclass(msg) or isinstance(msg, type):
        return None
    names = {f.name for f in dataclasses.fields(msg)}
    if not set(changes) <= names:
        return None
    signed = "signature" in names
    try:
        if signed:
            changes["signature"] = b""
        forged = dataclasses.replace(msg, **changes)
        if not signed:
            return forged
        sign = getattr(sys.modules.get(type(msg).__module__), "sign_message", None)
        if sign is not None:
            return sign(forged, signer) if tag is None else sign(forged, signer, tag)
        if hasattr(forged, "signed_bytes") and hasattr(forged, "with_signature"):
            data = forged.signed_bytes() if tag is None else forged.signed_bytes(tag)
            return forged.with_signature(signer.sign(data))
    except (ValueError, TypeError):
        return None
    return None


def _has(msg: Any, name: str) -> bool:
    return dataclasses.is_dataclass(msg) and any(f.name == name for f in dataclasses.fields(msg))


class ByzantineEngine:
    """Base wrapper: runs the honest engine and passes every output through :meth:`rewrite`."""

    name = "byzantine"

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        self.inner = inner
        self.ctx = ctx
        self.node_id = inner.node_id
        self.forged = 0
        self.now = 0
        config = getattr(inner, "config", None)
        self.tag: bytes | None = ctx.option("instance_tag", getattr(config, "instance_tag", None))

    def restore(self, records: Sequence[Any]) -> None:
        self.inner.restore(records)

    def statistics(self) -> Any:
        return {"behaviour": self.name, "forged": self.forged, "inner": self.inner.statistics()}

    def step(self, event: Any) -> Output:
        if isinstance(event, Tick):
            self.now = event.now
        out = self.inner.step(event)
        sends = self.rewrite(event, out.send)
        out.send = sends
        return out

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        return sends

    def digest_of(self, msg: Any, value: bytes) -> bytes:
        """The digest the engine would compute for ``value`` (config, module, or SHA-256)."""
        fn = getattr(getattr(self.inner, "config", None), "digest_of", None)
        if fn is None:
            fn = getattr(sys.modules.get(type(msg).__module__), "digest_of", None)
        return bytes(fn(value)) if fn is not None else hashlib.sha256(value).digest()

    def _per_peer(self, sends: list[Send]) -> list[tuple[NodeId, Any]]:
        """Expand broadcasts into one send per peer (so peers can be told different things)."""
        out: list[tuple[NodeId, Any]] = []
        for dest, msg in sends:
            if dest is ALL:
                out.extend((p, msg) for p in self.ctx.peers())
            else:
                out.append((NodeId(int(dest)), msg))
        return out


class Silent(ByzantineEngine):
    """Runs the protocol but never sends anything."""

    name = "silent"

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        return []


class BadSignature(ByzantineEngine):
    """Sends messages whose signature does not match: flipped bits or tampered content."""

    name = "bad-signature"

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        rng = self.ctx.rng
        out: list[Send] = []
        for dest, msg in sends:
            if not _has(msg, "signature") or rng.random() < 0.3:
                out.append((dest, msg))
                continue
            sig = bytearray(msg.signature or b"\x00" * 64)
            sig[rng.randrange(len(sig))] ^= 1 << rng.randrange(8)
            changes: dict[str, Any] = {"signature": bytes(sig)}
            if _has(msg, "digest") and rng.random() < 0.5:   # tamper, keep the old signature
                changes = {"digest": rng.randbytes(32)}
            try:
                bad = dataclasses.replace(msg, **changes)
            except (ValueError, TypeError):
                continue
            self.forged += 1
            out.append((dest, bad))
        return out


class Replay(ByzantineEngine):
    """Also re-sends old messages (stale views, old sequence numbers) to random peers."""

    name = "replay"
    history_max = 256
    per_tick_max = 3

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        super().__init__(inner, ctx)
        self._history: deque[Any] = deque(maxlen=self.history_max)

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        for _, msg in sends:
            self._history.append(msg)
        out = list(sends)
        rng = self.ctx.rng
        if isinstance(event, Tick) and self._history and rng.random() < 0.5:
            for _ in range(rng.randint(1, self.per_tick_max)):
                old = self._history[rng.randrange(len(self._history))]
                peers = self.ctx.peers()
                dest: NodeId | Broadcast = ALL if rng.random() < 0.5 or not peers else rng.choice(peers)
                out.append((dest, old))
                self.forged += 1
        return out


@functools.lru_cache(maxsize=2)
def _oversized(size: int) -> bytes:
    """An RLP-looking message of ``size`` bytes (immutable, so built once per process)."""
    return b"\xf8" + b"\x00" * (size - 1)


class Flood(ByzantineEngine):
    """Adds junk, truncated, oversized and duplicated messages on every tick (bounded)."""

    name = "flood"
    per_tick_max = 6
    junk_bytes_max = 4096
    oversize_bytes = 32 * 1024 * 1024 + 1

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        super().__init__(inner, ctx)
        self._last: deque[Any] = deque(maxlen=16)
        self._oversized_sent = False

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        for _, msg in sends:
            self._last.append(msg)
        out = list(sends)
        if not isinstance(event, Tick):
            return out
        rng = self.ctx.rng
        if not self._oversized_sent:
            self._oversized_sent = True
            size = int(self.ctx.option("flood_oversize_bytes", self.oversize_bytes))
            out.append((ALL, ForgedBytes(_oversized(size))))
        for _ in range(rng.randint(1, self.per_tick_max)):
            roll = rng.random()
            if roll < 0.3 or not self._last:
                junk = ForgedBytes(rng.randbytes(rng.randint(0, self.junk_bytes_max)))
                out.append((ALL, junk))
            elif roll < 0.6:
                data = self._last[rng.randrange(len(self._last))].encode()
                out.append((ALL, ForgedBytes(data[: rng.randrange(len(data) + 1)])))
            else:
                out.append((ALL, self._last[rng.randrange(len(self._last))]))
            self.forged += 1
        return out


class Equivocate(ByzantineEngine):
    """As primary, proposes one value to some peers and a forged other value to the rest."""

    name = "equivocate"
    memo_max = 1024

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        super().__init__(inner, ctx)
        self._memo: dict[tuple[Any, ...], tuple[Any, frozenset[int]]] = {}

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        out: list[Send] = []
        for dest, msg in sends:
            value = getattr(msg, "value", None) if _has(msg, "value") else None
            if not value or not _has(msg, "digest"):
                out.append((dest, msg))
                continue
            key = (type(msg).__name__, getattr(msg, "view", None), getattr(msg, "seq", None),
                   msg.digest)
            if key not in self._memo:
                if len(self._memo) >= self.memo_max:
                    self._memo.pop(next(iter(self._memo)))
                other = self.ctx.forge_value()
                forged = _resign(msg, self.ctx.signer, self.tag, value=other,
                                 digest=self.digest_of(msg, other))
                peers = self.ctx.peers()
                self.ctx.rng.shuffle(peers)
                fooled = frozenset(int(p) for p in peers[: (len(peers) + 1) // 2])
                self._memo[key] = (forged, fooled)
            forged, fooled = self._memo[key]
            if forged is None:
                out.append((dest, msg))
                continue
            for peer, m in self._per_peer([(dest, msg)]):
                if int(peer) in fooled:
                    out.append((peer, forged))
                    self.forged += 1
                else:
                    out.append((peer, m))
        return out


class DoubleVote(ByzantineEngine):
    """Sends each vote and also a conflicting vote (another digest) to a random subset."""

    name = "double-vote"

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        out: list[Send] = []
        rng = self.ctx.rng
        for dest, msg in sends:
            out.append((dest, msg))
            if _has(msg, "digest") and not _has(msg, "value"):
                other = _resign(msg, self.ctx.signer, self.tag,
                                digest=self.digest_of(msg, self.ctx.forge_value()))
                if other is None:
                    continue
                for peer, _ in self._per_peer([(dest, msg)]):
                    if rng.random() < 0.5:
                        out.append((peer, other))
                        self.forged += 1
        return out


class WrongCheckpoint(ByzantineEngine):
    """Announces checkpoints (anything with a ``state_root``) with a wrong state root."""

    name = "wrong-checkpoint"

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        out: list[Send] = []
        for dest, msg in sends:
            if _has(msg, "state_root"):
                bad = _resign(msg, self.ctx.signer, self.tag, state_root=self.ctx.rng.randbytes(32))
                if bad is not None:
                    self.forged += 1
                    msg = bad
            out.append((dest, msg))
        return out


class ViewChangeSpam(ByzantineEngine):
    """Keeps asking for higher views (PBFT ``ViewChange`` with an empty proof)."""

    name = "view-change-spam"
    spam_every_ticks = 3
    views_ahead_max = 4

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        super().__init__(inner, ctx)
        self._view = 0

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        for _, msg in sends:
            self._view = max(self._view, int(getattr(msg, "view", 0) or 0),
                             int(getattr(msg, "new_view", 0) or 0))
        out = list(sends)
        if isinstance(event, Tick) and event.now % self.spam_every_ticks == 0:
            from consensus.pbft import messages as pbft

            target = self._view + self.ctx.rng.randint(1, self.views_ahead_max)
            vc = pbft.ViewChange(target, 0, (), (), self.ctx.node_id)
            forged = _resign(vc, self.ctx.signer, self.tag)
            if forged is not None:
                out.append((ALL, forged))
                self.forged += 1
        return out


class SlowPrimary(ByzantineEngine):
    """Holds back its proposals (messages carrying a value) to just under the view timeout."""

    name = "slow-primary"
    held_max = 1024

    def __init__(self, inner: Engine, ctx: ByzantineContext) -> None:
        super().__init__(inner, ctx)
        config = getattr(inner, "config", None)
        timeout = int(getattr(config, "view_timeout_ticks", 0) or ctx.option("view_timeout_ticks", 20))
        self.delay_ticks = max(1, int(ctx.option("slow_delay_ticks", timeout - 3)))
        self._held: deque[tuple[int, Send]] = deque()

    def rewrite(self, event: Any, sends: list[Send]) -> list[Send]:
        out: list[Send] = []
        for item in sends:
            msg = item[1]
            if _has(msg, "value") and _has(msg, "digest") and len(self._held) < self.held_max:
                self._held.append((self.now + self.delay_ticks, item))
            else:
                out.append(item)
        while self._held and self._held[0][0] <= self.now:
            out.append(self._held.popleft()[1])
        return out


Behaviour = Callable[[Engine, ByzantineContext], Engine]


def _twins(engine: Engine, ctx: ByzantineContext) -> Engine:
    return engine


BEHAVIOURS: dict[str, Behaviour] = {
    "silent": Silent,
    "equivocate": Equivocate,
    "double-vote": DoubleVote,
    "bad-signature": BadSignature,
    "replay": Replay,
    "wrong-checkpoint": WrongCheckpoint,
    "view-change-spam": ViewChangeSpam,
    "slow-primary": SlowPrimary,
    "flood": Flood,
    TWINS: _twins,
}

