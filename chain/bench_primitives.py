"""Micro-benchmarks of the chain primitives: what a transaction costs on its way in.

Measures, on one core, the median of ``repeats`` runs of:

* raw Ed25519 verification (pynacl ``crypto_sign_open``), the floor;
* ``decode_transaction`` alone, and decode + hash + signature check (mempool admission);
* ``make_transaction`` (encode + sign);
* ``decode_block`` of a block of ``block_txs`` transactions;
* ``merkle_root`` over ``merkle_leaves`` leaves of 72 bytes (the state root's shape).

Admission must stay at or above 0.6 of the raw verification rate: decoding and hashing must
cost well under half a signature check. Run ``python -m chain.bench_primitives``; the
ledger's benchmark command may call :func:`run` and print the figures with its own.

Not a protocol core: reading the clock is this module's purpose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import nacl.bindings

from chain.block import EMPTY_CERTIFICATE, build_block, decode_block
from chain.keys import PrivateKey
from chain.merkle import merkle_root
from chain.tx import decode_transaction, make_transaction

__all__ = ["PrimitiveFigures", "main", "run"]


@dataclass(frozen=True)
class PrimitiveFigures:
    """Rates per second (medians over repeats) and one ratio."""

    tx_bytes: int
    verify_raw_per_s: float
    decode_per_s: float
    admit_per_s: float
    admit_to_verify_ratio: float
    make_per_s: float
    block_txs: int
    block_decode_ms: float
    merkle_leaves: int
    merkle_root_ms: float


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(
    *, count: int = 2000, repeats: int = 5, block_txs: int = 1000, merkle_leaves: int = 100_000
) -> PrimitiveFigures:
    """Measure the primitives; see the module docstring for what each figure means."""
    key = PrivateKey.from_seed(b"\x01" * 32)
    txs = [
        make_transaction(
            key, chain_id=1, nonce=i, to=b"\x02" * 20, amount=10**18, fee=1, gas_limit=21_000
        )
        for i in range(count)
    ]
    encoded = [tx.encoded for tx in txs]
    triples = [(tx.signature + tx.signing_bytes(), tx.sender) for tx in txs]
    open_ = nacl.bindings.crypto_sign_open

    def verify_raw() -> None:
        for signed, pk in triples:
            open_(signed, pk)

    def decode_only() -> None:
        for data in encoded:
            decode_transaction(data)

    def admit() -> None:
        for data in encoded:
            tx = decode_transaction(data)
            tx.hash  # noqa: B018 - computing the hash is the point
            if not tx.verify_signature():
                raise AssertionError("benchmark transaction failed to verify")

    def make() -> None:
        for i in range(count):
            make_transaction(
                key, chain_id=1, nonce=i, to=b"\x02" * 20, amount=1, fee=1, gas_limit=21_000
            )

    block = build_block(
        chain_id=1,
        height=1,
        parent_hash=b"\x00" * 32,
        timestamp=0,
        proposer=key.address,
        state_root=b"\x00" * 32,
        transactions=txs[:block_txs],
        last_commit=EMPTY_CERTIFICATE,
    )
    block_bytes = block.encoded
    leaves = [i.to_bytes(32, "big") + b"\x07" * 40 for i in range(merkle_leaves)]

    # Interleave the floor and the admission path so that load from other processes
    # affects both alike; the ratio is the figure that matters.
    verify_times, admit_times = [], []
    for _ in range(repeats):
        verify_times.append(_median_seconds(verify_raw, 1))
        admit_times.append(_median_seconds(admit, 1))
    t_verify = statistics.median(verify_times)
    t_admit = statistics.median(admit_times)
    ratios = [v / a for v, a in zip(verify_times, admit_times, strict=True)]
    t_decode = _median_seconds(decode_only, repeats)
    t_make = _median_seconds(make, repeats)
    t_block = _median_seconds(lambda: decode_block(block_bytes), repeats)
    t_merkle = _median_seconds(lambda: merkle_root(leaves), repeats)
    return PrimitiveFigures(
        tx_bytes=len(encoded[0]),
        verify_raw_per_s=count / t_verify,
        decode_per_s=count / t_decode,
        admit_per_s=count / t_admit,
        admit_to_verify_ratio=statistics.median(ratios),
        make_per_s=count / t_make,
        block_txs=len(block.transactions),
        block_decode_ms=t_block * 1000,
        merkle_leaves=merkle_leaves,
        merkle_root_ms=t_merkle * 1000,
    )


def main(argv: list[str] | None = None) -> int:
    """Print the figures as a table, or as JSON with ``--json``."""
    parser = argparse.ArgumentParser(prog="python -m chain.bench_primitives")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--block-txs", type=int, default=1000)
    parser.add_argument("--merkle-leaves", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(
        count=args.count,
        repeats=args.repeats,
        block_txs=args.block_txs,
        merkle_leaves=args.merkle_leaves,
    )
    if args.json:
        print(json.dumps(asdict(figures), indent=2))
    else:
        for name, value in asdict(figures).items():
            print(
                f"{name:24} {value:>14,.2f}"
                if isinstance(value, float)
                else f"{name:24} {value:>14,}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
