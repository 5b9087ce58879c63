"""``phalanx start``: run a node from its home directory until SIGINT or SIGTERM.

Loads ``config.toml`` (a :class:`~node.config.ConfigError` becomes one clear line), applies
``--byzantine KIND`` over ``node.byzantine``, then runs ``node.runtime.run_node`` under
``trio.run``. SIGINT and SIGTERM cancel the node's nursery, so every service closes cleanly
(LevelDB closed, sockets shut) and the exit code is 0.

Called by: :mod:`cli.main` (discovered through ``register``); the e2e tests and
``testnet.local`` run it as a subprocess.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
from typing import Any

from cli._output import add_home_option, home_of

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``phalanx start``."""
    p = subparsers.add_parser(
        "start", help="run the node until SIGINT/SIGTERM",
        description="Run the node configured in the home directory until SIGINT or SIGTERM.")  # fmt: skip
    add_home_option(p)
    p.add_argument("--byzantine", default=None, metavar="KIND",
                   help="switch a Byzantine behaviour on for this node (tests and testnets only)")
    p.set_defaults(func=_start)


def _start(args: argparse.Namespace) -> int:
    import trio

    from cli.main import CliError
    from node.config import ConfigError, load_config

    try:
        config = load_config(home_of(args))
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.byzantine is not None:
        config = dataclasses.replace(
            config, node=dataclasses.replace(config.node, byzantine=args.byzantine)
        )
    try:
        from node.runtime import run_node
    except ImportError as e:  # the node runtime is missing from this installation
        raise CliError(f"cannot start a node: {e}") from None

    async def main() -> None:
        # The receiver stays installed until the node has finished closing, so a second
        # SIGTERM/SIGINT during shutdown is absorbed instead of killing the process mid-close.
        # Trio re-delivers signals still queued when the receiver closes to the handlers that
        # were there before it; make those "ignore", since by then the node is closed.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def watch_signals() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(watch_signals)
                await run_node(config)
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        raise _single_error(group) from None
    except Exception as e:
        raise _user_error(e) from None
    return 0


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for sub in error.exceptions for leaf in _leaves(sub)]
    return [error]


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a nursery wrapped (start-up failures arrive wrapped), made user-facing."""
    leaves = _leaves(group)
    if len(leaves) == 1 and isinstance(leaves[0], Exception):
        return _user_error(leaves[0])
    return group


def _user_error(error: Exception) -> Exception:
    """Start-up errors a user can act on become one line; anything else stays a traceback."""
    from chain.errors import ChainError
    from cli.main import CliError
    from node.config import ConfigError

    known: tuple[type[Exception], ...] = (ConfigError, ChainError, OSError)
    for module, name in (("node.runtime", "NodeStartError"), ("node.wal", "WalError"),
                         ("node.engines", "EngineSetupError")):  # fmt: skip
        cls = getattr(__import__(module, fromlist=[name]), name, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            known += (cls,)
    if isinstance(error, known):
        return CliError(f"cannot start the node: {error}")
    return error
