"""Peer policy (sans-IO): re-dial backoff, scores, temporary bans, flood limits, de-duplication.

Theory of operation
-------------------
* :class:`Backoff` gives the delay before re-dial attempt ``k``: ``min * 2**k`` capped at
  ``max``, times a jitter in ``[0.5, 1.0]`` from an injected ``random.Random``.
* :class:`ScoreBook` keeps a score per offender key (a ``PeerId`` once authenticated, or a
  remote host string before). Offences subtract points; scores recover linearly with ticks;
  a score at or below zero bans the key for ``ban_ticks``, after which it starts afresh.
  It also keeps one inbound token bucket per peer (``flood_msgs_per_tick`` refill, burst
  ``flood_burst_msgs``). Records are bounded by ``tracked_peers_max`` (oldest unbanned record
  evicted first). Hosts in ``exempt`` are never banned (loopback by default: on one machine
  every peer shares 127.0.0.1, and banning it would ban the whole testnet).
* :func:`keep_new_connection` decides which of two connections to one peer survives: for
  twins of a simultaneous dial, the one dialled by the lower node id (both ends apply the
  same rule, so they keep the same one); against an older connection, the new one.

Time is integer ticks handed in by the driver. Used by ``p2p.peers.PeerManager``.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass

from p2p.config import P2PConfig
from p2p.messages import PeerId

__all__ = ["Backoff", "BanRecord", "OffenderKey", "ScoreBook", "keep_new_connection"]

#: Who is scored: an authenticated peer, or a remote host before authentication.
OffenderKey = PeerId | str


class Backoff:
    """Exponential backoff with jitter.

    Args:
        seconds_min: delay after the first failure.
        seconds_max: cap.
        rng: source of jitter.
    """

    def __init__(self, seconds_min: float, seconds_max: float, rng: random.Random) -> None:
        self._min = seconds_min
        self._max = seconds_max
        self._rng = rng
        self.failures = 0

    def reset(self) -> None:
        """Forget failures (after a connection succeeded)."""
        self.failures = 0

    def next_delay(self) -> float:
        """Record a failure and return how long to wait before the next attempt."""
        base = min(self._max, self._min * (2 ** min(self.failures, 62)))
        self.failures += 1
        return float(base * (0.5 + 0.5 * self._rng.random()))


@dataclass(frozen=True, slots=True)
class BanRecord:
    """A ban in force: who, until which tick, and why."""

    key: OffenderKey
    until_tick: int
    reason: str


@dataclass(slots=True)
class _Record:
    score: float
    updated_tick: int
    tokens: float
    banned_until: int = -1
    reason: str = ""


class ScoreBook:
    """Scores, bans and inbound rate limits per offender key.

    Args:
        config: the p2p configuration (score and flood parameters).
        exempt: host strings that are never banned.
    """

    def __init__(self, config: P2PConfig, exempt: Collection[str] = ("127.0.0.1", "::1")) -> None:
        self._cfg = config
        self._exempt = frozenset(exempt)
        self._records: OrderedDict[OffenderKey, _Record] = OrderedDict()

    def _record(self, key: OffenderKey, now: int) -> _Record:
        rec = self._records.get(key)
        if rec is None:
            cfg = self._cfg
            rec = _Record(float(cfg.score_start), now, float(cfg.flood_burst_msgs))
            self._records[key] = rec
            self._evict(now)
        else:
            self._records.move_to_end(key)
            self._refresh(rec, now)
        return rec

    def _refresh(self, rec: _Record, now: int) -> None:
        cfg = self._cfg
        elapsed = max(0, now - rec.updated_tick)
        if rec.banned_until >= 0 and now >= rec.banned_until:
            rec.banned_until = -1
            rec.score = float(cfg.score_start)
            rec.reason = ""
        rec.score = min(float(cfg.score_start), rec.score + elapsed * cfg.score_recover_per_tick)
        rec.tokens = min(float(cfg.flood_burst_msgs), rec.tokens + elapsed * cfg.flood_msgs_per_tick)
        rec.updated_tick = now

    def _evict(self, now: int) -> None:
        while len(self._records) > self._cfg.tracked_peers_max:
            for key, rec in self._records.items():
                if rec.banned_until < now:
                    del self._records[key]
                    break
            else:  # everyone banned: drop the oldest ban rather than grow
                self._records.popitem(last=False)

    def score(self, key: OffenderKey, now: int) -> float:
        """The key's current score."""
        return self._record(key, now).score

    def penalize(self, key: OffenderKey, points: int, now: int, reason: str) -> bool:
        """Subtract ``points`` for an offence; return True if the key is now banned."""
        rec = self._record(key, now)
        if rec.banned_until >= 0:
            return True
        rec.score -= points
        if rec.score <= 0 and not (isinstance(key, str) and key in self._exempt):
            rec.banned_until = now + self._cfg.ban_ticks
            rec.reason = reason
            return True
        return False

    def is_banned(self, key: OffenderKey, now: int) -> bool:
        """True while a ban on ``key`` is in force."""
        rec = self._records.get(key)
        if rec is None:
            return False
        self._refresh(rec, now)
        return rec.banned_until >= 0

    def ban_ends(self, key: OffenderKey, now: int) -> int | None:
        """The tick a ban on ``key`` ends, or None if it is not banned."""
        return self._records[key].banned_until if self.is_banned(key, now) else None

    def allow_message(self, key: OffenderKey, now: int) -> bool:
        """Take one token from ``key``'s inbound bucket; False means it is flooding."""
        rec = self._record(key, now)
        if rec.tokens >= 1.0:
            rec.tokens -= 1.0
            return True
        return False

    def bans(self, now: int) -> tuple[BanRecord, ...]:
        """The bans in force, oldest record first."""
        out = []
        for key, rec in list(self._records.items()):
            self._refresh(rec, now)
            if rec.banned_until >= 0:
                out.append(BanRecord(key, rec.banned_until, rec.reason))
        return tuple(out)


def keep_new_connection(self_id: PeerId, peer_id: PeerId, existing_dialer: PeerId,
                        new_dialer: PeerId, existing_age_seconds: float = 0.0,
                        twin_window_seconds: float = float("inf")) -> bool:
    """Decide whether a new connection to ``peer_id`` replaces the existing one.

    Two connections that meet within ``twin_window_seconds`` are twins of a simultaneous
    dial: the one dialled by the lower node id wins, and both ends, applying the same rule,
    keep the same one. A new connection meeting an *older* one wins outright: a peer only
    dials when it has no connection to us, so the old one is dead on its side (it restarted,
    or its end broke before ours noticed). Likewise a re-dial by the same side replaces the
    old connection.

    Returns:
        True to keep the new connection and close the old, False to close the new one.
    """
    assert self_id != peer_id
    assert {existing_dialer, new_dialer} <= {self_id, peer_id}
    if existing_dialer == new_dialer or existing_age_seconds > twin_window_seconds:
        return True
    return new_dialer < existing_dialer
