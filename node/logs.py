"""Node logging: JSON lines to ``logs/node.jsonl`` and a short human line on stderr.

Each JSON line holds ``ts`` (ISO-8601 UTC), ``level``, ``logger``, ``msg`` and the node's
context at that moment: ``lamport`` (the p2p Lamport clock), ``height``, ``view`` and
``node`` (the validator index), provided by a callable the runtime installs with
:func:`set_context`, plus ``exc`` when an exception is attached. :func:`set_log_level`
changes the level of a running node (the ``unsafe_set_log_level`` RPC method). The file handler flushes every line (a crashed node's last words
stay on disk). One file per node; nothing rotates it (test networks are short-lived).

Called by :mod:`node.runtime` at start (:func:`setup_logging`) and at shutdown
(:func:`close_logging`), and by :mod:`node.rpc_methods`.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["JsonFormatter", "close_logging", "set_context", "setup_logging"]

_context: Callable[[], dict[str, Any]] | None = None
_handlers: list[logging.Handler] = []


def set_context(provider: Callable[[], dict[str, Any]] | None) -> None:
    """Install the function that returns ``{"lamport": .., "height": .., "view": ..}``."""
    global _context
    _context = provider


def _current_context() -> dict[str, Any]:
    if _context is None:
        return {}
    try:
        return _context()
    except Exception:  # logging must never fail because the node is half-built
        return {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_current_context())
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = _current_context()
        where = f"h={ctx.get('height', '-')} v={ctx.get('view', '-')}" if ctx else ""
        line = (f"{self.formatTime(record, '%H:%M:%S')} {record.levelname[0]} "
                f"{record.name.removeprefix('phalanx.')}: {record.getMessage()} {where}").rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(log_path: Path, level: str = "info", *, stderr: bool = True) -> None:
    """Send the ``phalanx`` loggers to ``log_path`` (JSON lines) and stderr (human lines)."""
    close_logging()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(log_path, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter())
    _handlers.append(file_handler)
    if stderr:
        err = logging.StreamHandler(sys.stderr)
        err.setFormatter(_HumanFormatter())
        _handlers.append(err)
    numeric = getattr(logging, level.upper(), logging.INFO)
    for name in ("phalanx", "node", "hypercorn.error"):
        logger = logging.getLogger(name)
        logger.setLevel(numeric)
        for h in _handlers:
            logger.addHandler(h)
        logger.propagate = False


LOG_LEVELS = ("debug", "info", "warning", "error")


def set_log_level(level: str) -> None:
    """Change the level of the ``phalanx`` loggers of a running node.

    Raises:
        ValueError: ``level`` is not one of :data:`LOG_LEVELS`.
    """
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    for name in ("phalanx", "node"):
        logging.getLogger(name).setLevel(getattr(logging, level.upper()))


def close_logging() -> None:
    """Detach and close the handlers installed by :func:`setup_logging`."""
    for name in ("phalanx", "node", "hypercorn.error"):
        logger = logging.getLogger(name)
        for h in _handlers:
            logger.removeHandler(h)
        # Hand the loggers back as they were: an in-process node (tests, the CLI) must not
        # leave the rest of the process unable to see these loggers through the root.
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for h in _handlers:
        h.close()
    _handlers.clear()
