"""``phalanx bench``: the network benchmark — signed transfers through real nodes' APIs.

Theory of operation
-------------------
The benchmark starts a testnet (or attaches to one with ``--attach DIR``; the senders are
then funded from its faucet) whose genesis funds ``senders`` load accounts. Load processes
(``multiprocessing``, one per ``clients``) pre-sign their transfers before the clock starts,
then send them as JSON-RPC batches of ``broadcast_tx_sync`` at an open-loop rate (``--rate``)
or as fast as the nodes accept them (``--max``). Each sender always talks to the same node
(sticky), so its nonces arrive in order. The main process watches the chain: it learns each
new block once, matches its transactions to the submit times the load processes report, and
derives commit latency (submit to block observed), block interval (block timestamps) and
committed throughput. CPU per committed transaction comes from ``/proc/<pid>/stat`` of the
node processes over the measured window. The same run measures raw Ed25519 verifications per
second (pynacl, one core), so the result also reads as a ratio that travels across machines.
Blocks and commit times come from node 0's ``/websocket`` block feed
(:mod:`testnet._commit_watch`, pushed as the node commits). Node 0 is also polled, every
``POLL_WITH_FEED_S`` (every 50 ms without a feed), for the heights the feed did not bring;
the earlier of the two times counts. Reading every block through the API as well, as
earlier versions did, was load on the node being measured.

Honesty: the report carries the payload size, one signature per transaction, the storage
mode (one synced LevelDB batch per block), the client count and the exact command.

Called by ``cli/cmd_bench.py`` (``phalanx bench`` with no target).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chain.keys import PrivateKey, load_key_file, verify_signature
from chain.tx import make_transaction
from testnet._collect import rpc_batch
from testnet._commit_watch import CommitWatcher
from testnet._workload import TRANSFER_GAS, workload_keys
from testnet.local import Testnet, TestnetError

__all__ = ["NetBenchConfig", "measure_verify_rate", "render", "run_bench", "verify_rate_samples"]

SENDER_BALANCE = 10**15
BATCH_TXS = 50
BENCH_CONSENSUS = {"block_time_ms": 100, "block_txs_max": 2000, "tick_ms": 50,
                   "checkpoint_interval": 100}  # fmt: skip
MAX_RATE_PRESIGN = 2500
VERIFY_SAMPLES = 5  # raw verify samples before the run, and as many after it
POLL_WITH_FEED_S = 0.5  # how often node 0 is polled for blocks its feed missed
FUND_CHUNK = 32  # tx/s presigned for --max


@dataclass(frozen=True)
class NetBenchConfig:
    """Parameters of one benchmark run."""

    nodes: int = 4
    engine: str = "pbft"
    duration_s: float = 20.0
    rate: float | None = 800.0
    clients: int = 2
    senders: int = 200
    attach: Path | None = None
    command: str = ""


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Raw Ed25519 verifications per second on one core (pynacl)."""
    key = PrivateKey.from_seed(b"\x01" * 32)
    msg = b"x" * 150
    sig = key.sign(msg)
    pub = key.public_key.raw
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            verify_signature(pub, msg, sig)
        count += 200
    return count / (time.perf_counter() - start)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_process(urls: list[str], seeds: list[bytes], chain_id: int, count: int,
                  rate: float | None, duration_s: float, barrier: Any, out: Any) -> None:  # fmt: skip
    """Pre-sign ``count`` transfers round-robin over the senders, then send them in batches."""
    keys = [PrivateKey.from_seed(s) for s in seeds]
    nonces = [0] * len(keys)
    per_node: dict[int, list[tuple[str, str]]] = {}
    for k in range(count):
        a = k % len(keys)
        tx = make_transaction(keys[a], chain_id=chain_id, nonce=nonces[a], to=keys[(a + 1) % len(keys)].address,
                              amount=1, fee=1, gas_limit=TRANSFER_GAS)  # fmt: skip
        nonces[a] += 1
        per_node.setdefault(a % len(urls), []).append(("0x" + tx.encoded.hex(), "0x" + tx.hash.hex()))
    batches: list[tuple[int, list[tuple[str, str]]]] = []
    longest = max((len(v) for v in per_node.values()), default=0)
    for i in range(0, longest, BATCH_TXS):
        for node, items in sorted(per_node.items()):
            if i < len(items):
                batches.append((node, items[i : i + BATCH_TXS]))
    submitted: dict[str, float] = {}
    rejected = 0
    clients = {i: httpx.Client(timeout=30) for i in per_node}
    barrier.wait()  # everyone has signed: the clock starts now
    start_at = time.time()
    stop_at = start_at + duration_s
    sent = 0
    for node, batch in batches:
        if time.time() >= stop_at:
            break
        if rate is not None:
            due = start_at + sent / rate
            if due > time.time():
                time.sleep(due - time.time())
        body = [{"jsonrpc": "2.0", "id": k, "method": "broadcast_tx_sync", "params": {"tx": raw}}
                for k, (raw, _) in enumerate(batch)]  # fmt: skip
        now = time.time()
        try:
            answer = clients[node].post(urls[node], json=body).json()
        except (httpx.HTTPError, ValueError):
            answer = []
        ok = {item.get("id") for item in answer if isinstance(item, dict) and "result" in item}
        for k, (_, tx_hash) in enumerate(batch):
            if k in ok:
                submitted[tx_hash] = now
            else:
                rejected += 1
        sent += len(batch)
    for c in clients.values():
        c.close()
    out.put((submitted, rejected))


def verify_rate_samples(count: int = VERIFY_SAMPLES, seconds: float = 0.2) -> list[float]:
    """``count`` short measurements of :func:`measure_verify_rate`."""
    return [measure_verify_rate(seconds) for _ in range(count)]


def run_bench(config: NetBenchConfig, progress: bool = True) -> dict[str, Any]:
    """Run the network benchmark and return its JSON-able report.

    The raw verify rate is the median of short samples taken before the testnet starts and
    after it stops: on a shared VM one 1 s sample moved by ±15% between runs minutes apart,
    and the ratio with it.
    """
    samples = verify_rate_samples()
    # Fresh senders when attaching (a previous run left nonces behind on that chain).
    keys = workload_keys(4242 if config.attach is None else time.time_ns(), config.senders)
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if config.attach is not None:
        net = Testnet.open(config.attach)
        _fund_from_faucet(net, keys)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="phalanx-bench-")
        net = Testnet.create(Path(tmp.name) / "net", nodes=config.nodes, engine=config.engine,
                             extra_balances={k.address: SENDER_BALANCE for k in keys},
                             consensus=BENCH_CONSENSUS)  # fmt: skip
    try:
        if config.attach is None:
            net.start(timeout=90)
        report = _measure(net, config, keys, progress)
    finally:
        if config.attach is None:
            net.stop()
            if tmp is not None:
                tmp.cleanup()
    samples += verify_rate_samples()
    verify_rate = statistics.median(samples)
    report["ed25519_verify_per_s"] = round(verify_rate)
    report["ed25519_verify_range_per_s"] = [round(min(samples)), round(max(samples))]
    report["ratio_to_verify_rate"] = round(report["committed_tps"] / verify_rate, 4)
    return report


def _fund_from_faucet(net: Testnet, keys: list[PrivateKey]) -> None:
    faucet = load_key_file(net.layout.faucet_key)
    url = net.layout.rpc_urls[0]
    from chain.keys import format_address

    nonce = int(rpc_batch(url, [("account", {"address": format_address(faucet.address)})])[0]["next_nonce"])
    calls = []
    for k in keys:
        tx = make_transaction(faucet, chain_id=net.layout.chain_id, nonce=nonce, to=k.address,
                              amount=SENDER_BALANCE, fee=1, gas_limit=TRANSFER_GAS)  # fmt: skip
        nonce += 1
        calls.append({"tx": "0x" + tx.encoded.hex()})
    # The mempool bounds one sender's nonce gap: wait for each chunk's last tx to commit.
    for i in range(0, len(calls), FUND_CHUNK):
        chunk = calls[i : i + FUND_CHUNK]
        batch = [("broadcast_tx_sync", c) for c in chunk[:-1]] + [("broadcast_tx_commit", chunk[-1])]
        for res in rpc_batch(url, batch, timeout=60):
            if isinstance(res, Exception):
                raise TestnetError(f"funding the bench senders from the faucet failed: {res}")


def _measure(net: Testnet, config: NetBenchConfig, keys: list[PrivateKey],
             progress: bool) -> dict[str, Any]:  # fmt: skip
    urls = net.layout.rpc_urls
    rate = config.rate
    total = int((rate if rate is not None else MAX_RATE_PRESIGN) * config.duration_s)
    clients = max(1, config.clients)
    per_client = [keys[c::clients] for c in range(clients)]
    ctx = mp.get_context("fork")
    out: Any = ctx.Queue()
    start_h = net.height(0) or 0
    barrier = ctx.Barrier(clients + 1)
    procs = [
        ctx.Process(target=_load_process, args=(
            urls, [k.seed for k in mine], net.layout.chain_id, total // clients,
            None if rate is None else rate / clients, config.duration_s, barrier, out))
        for mine in per_client
    ]  # fmt: skip
    for p in procs:
        p.start()
    pids = [n.pid for n in net.layout.nodes]
    barrier.wait(timeout=300)  # the load processes pre-sign first
    start_at = time.time()
    stop_at = start_at + config.duration_s
    cpu0 = sum(_cpu_seconds(p) for p in pids)
    seen_at: dict[str, float] = {}
    watcher = CommitWatcher(urls[0], seen_at)   # commits as node 0 makes them (pushed)
    fed = watcher.start()
    polled: dict[int, int] = {}                 # height -> timestamp, blocks the feed missed
    height = start_h
    drain_until = stop_at + 10.0
    results: list[tuple[dict[str, float], int]] = []
    next_poll = 0.0
    while time.time() < drain_until:
        # Poll node 0 for the blocks its feed did not bring: every 50 ms without a feed,
        # every POLL_WITH_FEED_S with one (the poll is load on the node being measured).
        if time.time() >= next_poll:
            next_poll = time.time() + (POLL_WITH_FEED_S if fed else 0.05)
            top = net.height(0) or height
            missing = [h for h in range(height + 1, top + 1) if h not in watcher.timestamps]
            for res in rpc_batch(urls[0], [("block", {"height": h}) for h in missing]):
                if isinstance(res, dict):
                    now = time.time()
                    polled[int(res["height"])] = int(res["timestamp"])
                    for t in res.get("txs", []):
                        seen_at.setdefault(t["hash"], now)   # the feed may have been first
            height = max(height, top)
        while len(results) < len(procs) and not out.empty():
            results.append(out.get())
        if progress:
            elapsed = max(1e-3, time.time() - start_at)
            sys.stderr.write(f"\r[{'#' * int(30 * min(1, elapsed / config.duration_s)):<30}] "
                             f"{elapsed:5.1f}s  committed {len(seen_at):>7}  "
                             f"{len(seen_at) / elapsed:7.0f} tx/s ")  # fmt: skip
        if len(results) == len(procs) and time.time() > stop_at:
            submitted_all = {h for sub, _ in results for h in sub}
            if submitted_all <= set(seen_at):
                break
        time.sleep(0.05)
    cpu1 = sum(_cpu_seconds(p) for p in pids)
    watcher.stop()
    deadline = time.time() + 30
    while len(results) < len(procs) and time.time() < deadline:  # read before join: the
        try:  # children's queue feeders block until their data is read
            results.append(out.get(timeout=1))
        except queue.Empty:
            continue
    for p in procs:
        p.join(10)
    if progress:
        sys.stderr.write("\n")
    submitted: dict[str, float] = {}
    rejected = 0
    for sub, rej in results:
        submitted.update(sub)
        rejected += rej
    lat = sorted(seen_at[h] - t for h, t in submitted.items() if h in seen_at)
    committed = len(lat)
    last_commit = max((seen_at[h] for h in submitted if h in seen_at), default=start_at)
    window = max(1e-3, last_commit - start_at)
    blocks = {**{h: t for h, t in watcher.timestamps.items() if start_h < h <= height}, **polled}
    stamps = [blocks[h] for h in sorted(blocks)]
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(stamps)]
    tps = committed / window
    sample_tx = make_transaction(keys[0], chain_id=net.layout.chain_id, nonce=0, to=keys[1].address,
                                 amount=1, fee=1, gas_limit=TRANSFER_GAS)  # fmt: skip
    return {
        "engine": net.layout.engine,
        "nodes": net.layout.n,
        "duration_s": config.duration_s,
        "offered_rate": rate if rate is not None else "max",
        "submitted": len(submitted),
        "rejected": rejected,
        "committed": committed,
        "committed_tps": round(tps, 1),
        "latency_p50_s": _pct(lat, 50),
        "latency_p95_s": _pct(lat, 95),
        "latency_p99_s": _pct(lat, 99),
        "block_interval_mean_s": round(statistics.fmean(intervals), 3) if intervals else None,
        "blocks": len(stamps),
        "txs_per_block_mean": round(committed / max(1, len(stamps)), 1),
        "cpu_ms_per_committed_tx": round(1000 * (cpu1 - cpu0) / committed, 3) if committed else None,
        "commits_observed_by": "websocket block feed of node 0 (polling for blocks it missed)"
        if watcher.blocks else "polling node 0",
        "websocket_blocks": watcher.blocks,
        "payload_bytes": len(sample_tx.encoded),
        "signatures_per_tx": 1,
        "storage": "LevelDB, one synced write batch per block",
        "clients": clients,
        "senders": len(keys),
        "batch_txs": BATCH_TXS,
        "machine_cpus": os.cpu_count(),
        "command": config.command,
    }


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    k = min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))
    return round(values[k], 3)


def render(report: dict[str, Any]) -> str:
    """The human table of a network benchmark report."""
    rows = [
        ("engine / nodes", f"{report['engine']} / {report['nodes']}"),
        ("offered", f"{report['offered_rate']} tx/s for {report['duration_s']} s "
                    f"({report['clients']} client processes, {report['senders']} senders)"),
        ("committed", f"{report['committed']} of {report['submitted']} submitted "
                      f"({report['rejected']} rejected)"),
        ("throughput", f"{report['committed_tps']} tx/s = {report['ratio_to_verify_rate']} x raw "
                       f"Ed25519 verify ({report['ed25519_verify_per_s']}/s, median of samples "
                       f"{report['ed25519_verify_range_per_s'][0]}-"
                       f"{report['ed25519_verify_range_per_s'][1]}/s)"),
        ("commit latency", f"p50 {report['latency_p50_s']} s, p95 {report['latency_p95_s']} s, "
                           f"p99 {report['latency_p99_s']} s"),
        ("blocks", f"{report['blocks']}, interval {report['block_interval_mean_s']} s, "
                   f"{report['txs_per_block_mean']} tx/block"),
        ("CPU per tx", f"{report['cpu_ms_per_committed_tx']} ms (all node processes)"),
        ("payload", f"{report['payload_bytes']} B transfer, {report['signatures_per_tx']} "
                    f"signature, {report['storage']}"),
        ("command", report["command"]),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
