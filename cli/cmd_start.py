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
        async with trio.open_nursery() as nursery:
            async def watch_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(watch_signals)
            await run_node(config)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except ConfigError as e:
        raise CliError(str(e)) from None
    return 0
