"""Process and port helpers for local testnets: free ports, spawning, signalling, liveness.

Nodes run as ``python -m cli start --home H`` in their own session (``start_new_session``),
so a Ctrl-C aimed at the ``phalanx testnet up`` terminal reaches only the controller, which
then stops the nodes one by one with SIGTERM (then SIGKILL after a grace period).

Every function takes pids explicitly: nothing here looks processes up by name.

Called by :mod:`testnet.local`, :mod:`testnet.chaos` and :mod:`testnet.bench`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "free_ports",
    "pid_alive",
    "pid_runs",
    "pid_stopped",
    "send_signal",
    "spawn",
    "stop_pid",
    "stop_pids",
]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct TCP ports free on ``host`` right now (all sockets held until done)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``python -m <argv>`` detached in its own session; stdout+stderr to ``log_path``.

    Returns:
        The child's pid.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=full_env,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


#: Popen objects of children this process started, so they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> bool:
    """True when ``pid`` is our child and has exited (reaping it)."""
    proc = _CHILDREN.get(pid)
    if proc is None:
        return False
    return proc.poll() is not None


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def pid_runs(pid: int, marker: str) -> bool:
    """True when ``pid`` is alive and its command line contains ``marker``.

    State files keep pids for days; checking the command line (a node's home, the proxy's
    directory) keeps a reused pid from being signalled by mistake.
    """
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def pid_stopped(pid: int) -> bool:
    """True when ``pid`` is stopped (SIGSTOP)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state == "T"


def send_signal(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid``; False when it no longer exists."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, grace: float = 10.0) -> None:
    """SIGCONT + SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
    stop_pids([pid], grace)


def stop_pids(pids: Sequence[int], grace: float = 10.0) -> None:
    """Stop several processes at once: SIGTERM to all, one shared grace period, then SIGKILL."""
    live = [pid for pid in pids if pid_alive(pid)]
    for pid in live:
        send_signal(pid, signal.SIGCONT)
        send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [pid for pid in live if pid_alive(pid)]
        if live:
            time.sleep(0.05)
    for pid in live:
        send_signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while live and time.monotonic() < deadline:
        live = [pid for pid in live if pid_alive(pid)]
        if live:
            time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(KeyError):
            _CHILDREN[pid].poll()
