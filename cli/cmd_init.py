"""``phalanx init``: a ready-to-start single-validator development home.

Creates, under ``--home`` (default ``$PHALANX_HOME`` or ``~/.phalanx``):

* ``keys/validator.json``: a fresh Ed25519 key, mode 0600;
* ``genesis.json``: a one-validator dev genesis (PBFT, n = 1) whose only balance is the
  node's own address (``DEV_BALANCE``), which is also the faucet, so ``phalanx tx send
  --key <home>/keys/validator.json`` works at once;
* ``config.toml``: defaults plus the moniker.

Refuses a home that already holds a config, genesis or key unless ``--force``; with
``--force`` the old ``data/`` (ledger, WAL) is removed too, because it belongs to the old
genesis and would not open against the new one.

Called by: :mod:`cli.main` (discovered through ``register``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from cli._output import add_home_option, add_json_option, emit, home_of

__all__ = ["DEV_BALANCE", "DEV_CHAIN_ID", "register"]

DEV_CHAIN_ID = 1
DEV_BALANCE = 10**18


def register(subparsers: Any) -> None:
    """Add ``phalanx init``."""
    p = subparsers.add_parser(
        "init", help="create a single-validator dev home (key, genesis, config)",
        description="Create keys/validator.json (0600), genesis.json (one validator, PBFT, "
        "its own key funded) and config.toml in the home directory.")  # fmt: skip
    add_home_option(p)
    p.add_argument("--chain-id", type=int, default=DEV_CHAIN_ID,
                   help=f"chain id (default {DEV_CHAIN_ID})")
    p.add_argument("--moniker", default="node", help="this node's name (default 'node')")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing home (removes its data/ too)")
    add_json_option(p)
    p.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    from chain.genesis import make_dev_genesis
    from chain.keys import PrivateKey, format_address, save_key_file
    from cli.main import CliError
    from node.config import (
        CONFIG_FILE,
        GENESIS_FILE,
        KEY_FILE,
        NodeConfig,
        NodeSection,
        write_config,
    )

    home = home_of(args)
    if not 0 <= args.chain_id < 1 << 64:
        raise CliError(f"--chain-id: must be between 0 and 2^64-1, got {args.chain_id}")
    existing = [name for name in (CONFIG_FILE, GENESIS_FILE, KEY_FILE) if (home / name).exists()]
    if existing and not args.force:
        raise CliError(
            f"{home} is already initialised ({', '.join(existing)} exist); "
            "use --force to overwrite it (its data/ is removed)"
        )
    config = NodeConfig(home=home, node=NodeSection(moniker=args.moniker))
    if args.force and config.data_dir.exists():
        shutil.rmtree(config.data_dir)
    config_path = write_config(config)  # creates keys/, data/, logs/
    key = PrivateKey.generate()
    save_key_file(config.key_path, key)
    genesis = make_dev_genesis(
        [key],
        chain_id=args.chain_id,
        balances={key.address: DEV_BALANCE},
        genesis_time=int(time.time() * 1000),
        engine="pbft",
        block_time_ms=config.consensus.block_time_ms,
        checkpoint_interval=config.consensus.checkpoint_interval,
        faucet=key.address,
        names=[args.moniker],
    )
    tmp = config.genesis_path.with_suffix(".json.tmp")
    tmp.write_text(genesis.to_json(), encoding="utf-8")
    tmp.replace(config.genesis_path)
    data = {
        "home": str(home),
        "address": format_address(key.address),
        "public_key": key.public_key.raw.hex(),
        "chain_id": genesis.chain_id,
        "balance": DEV_BALANCE,
        "key_file": str(config.key_path),
        "genesis_file": str(config.genesis_path),
        "config_file": str(config_path),
        "rpc": config.rpc.listen,
    }

    def human() -> None:
        print(f"initialised {home} (chain {genesis.chain_id}, one validator, pbft)")
        print(f"address:  {data['address']} (funded with {DEV_BALANCE})")
        print(f"key:      {config.key_path}")
        print(f"genesis:  {config.genesis_path}")
        print(f"config:   {config_path}")
        print(f"start it: phalanx start --home {home}")

    emit(args, data, human)
    return 0
