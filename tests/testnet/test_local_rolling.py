"""Rolling restart controller over fake nodes: Ricart-Agrawala keeps at most one node down.

The fake nodes track how many are down at once themselves (independent of the timeline), and
the negative control with the mutex bypassed must be flagged by the timeline checker.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cli.main import main
from consensus.mutex import Acquire, Release
from testnet._layout import generate
from testnet._rolling import (
    MutexBus,
    RollingError,
    TimelineEvent,
    check_timeline,
    render_timeline,
    rolling_restart,
)


class FakeNodes:
    """Nodes whose chain grows with time; a restarted node is down, then lags, then catches up."""

    def __init__(self, n: int, down_s: float = 0.03) -> None:
        self.n = n
        self.down_s = down_s
        self.t0 = time.monotonic()
        self.down: set[int] = set()
        self.lag: dict[int, int] = {}
        self.most_down = 0
        self.restarts: list[int] = []
        self.lock = threading.Lock()

    def _top(self) -> int:
        return 1 + int((time.monotonic() - self.t0) * 200)

    def restart(self, index: int) -> None:
        with self.lock:
            self.down.add(index)
            self.most_down = max(self.most_down, len(self.down))
            self.restarts.append(index)
        time.sleep(self.down_s)
        with self.lock:
            self.down.discard(index)
            self.lag[index] = 3  # comes back behind; catches up over a few polls

    def height(self, index: int) -> int | None:
        with self.lock:
            if index in self.down:
                return None
            lag = self.lag.get(index, 0)
            if lag:
                self.lag[index] = lag - 1
                return max(0, self._top() - 50)
            return self._top()


def test_every_node_restarts_once_and_never_two_are_down() -> None:
    fake = FakeNodes(4)
    timeline = rolling_restart(fake, 4, timeout_s=10, poll_s=0.005)
    assert sorted(fake.restarts) == [0, 1, 2, 3]
    assert fake.most_down == 1
    assert check_timeline(timeline.events, 4) == []
    kinds = [e.kind for e in timeline.events]
    assert kinds == ["enter", "down", "up", "release"] * 4
    # Ricart-Agrawala grants in (timestamp, id) order: all ask at timestamp 1, so by id.
    assert [e.node for e in timeline.events if e.kind == "enter"] == [0, 1, 2, 3]
    ups = [e.height or 0 for e in timeline.events if e.kind == "up"]
    assert all(h > 0 for h in ups) and ups == sorted(ups)
    assert "OK: never two down" in render_timeline(timeline, [])


def test_negative_control_bypassing_the_mutex_is_flagged() -> None:
    fake = FakeNodes(4, down_s=0.2)
    timeline = rolling_restart(fake, 4, timeout_s=10, poll_s=0.005, use_mutex=False)
    found = check_timeline(timeline.events, 4)
    assert fake.most_down > 1  # the fakes saw it too
    assert {v.check for v in found} >= {"two-down", "mutex"}
    assert "VIOLATIONS" in render_timeline(timeline, found)


def test_checker_flags_down_outside_the_section_a_missed_node_and_a_node_left_down() -> None:
    events = [TimelineEvent(0.0, 0, "down"), TimelineEvent(0.1, 0, "up"),
              TimelineEvent(0.2, 1, "enter"), TimelineEvent(0.3, 1, "down"),
              TimelineEvent(0.4, 1, "release")]  # fmt: skip
    checks = [v.check for v in check_timeline(events, 3)]
    assert checks.count("mutex") == 1          # node 0 down without holding the section
    assert "two-down" in checks                # node 1 never came back
    assert checks.count("coverage") == 1       # node 2 never restarted


def test_a_node_that_never_catches_up_fails_the_roll() -> None:
    class Stuck(FakeNodes):
        def height(self, index: int) -> int | None:
            return 1 if index == 2 else super().height(index)

    with pytest.raises(RollingError, match="node 2 not caught up"):
        rolling_restart(Stuck(3), 3, timeout_s=0.5, poll_s=0.01)


def test_bus_grants_one_at_a_time_with_two_n_minus_one_messages_per_entry() -> None:
    bus = MutexBus(4)
    for i in range(4):
        bus.step(i, Acquire())
    for i in range(4):
        granted = [m for m, e in bus.granted.items() if e.is_set()]
        assert granted == list(range(i + 1))   # one more holder at a time, in id order
        bus.step(i, Release())
    assert bus.delivered == 4 * 2 * 3


def test_cli_restart_needs_a_node_or_rolling_but_not_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    generate(tmp_path / "net", nodes=1)
    for argv in (["testnet", "restart"], ["testnet", "restart", "0", "--rolling"]):
        assert main([*argv, "--dir", str(tmp_path / "net")]) == 2   # a usage error
        assert "give a node N, or --rolling" in capsys.readouterr().err
