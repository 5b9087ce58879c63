"""The node's composition root: ``run_node(config)`` wires every service in one nursery.

Start-up order (each service reports ready through ``nursery.start`` before the next one
relies on it)::

    logging -> genesis + key -> LevelDB ledger -> WAL -> ChainApp -> engine (+ Byzantine
    wrapper) -> PeerManager (p2p listener bound) -> gossip, heartbeats, clock sync, block sync ->
    consensus driver (WAL restored) -> RPC API (Hypercorn, Trio worker)

Data flow: consensus messages come from ``Kind.CONSENSUS`` into the driver; transactions
from the API or from peers' gossip go into the mempool (gossiped ones in each sender's nonce
order, :mod:`node.tx_intake`) and, once accepted, out to the peers in batches; evidence the
engine reports is reliably broadcast over ``Kind.EVIDENCE`` and recorded once verified
(:mod:`node.evidence`); heartbeats carry height, view and a suspicion report, and feed block sync (peer
heights) and :mod:`node.liveness` (phi-accrual detector and quorum-confirmed suspicions,
shown in ``status`` and ``net_info``); committed blocks wake
``broadcast_tx_commit`` callers and WebSocket subscribers.

Shutdown: cancelling the caller's scope (``phalanx start`` does it on SIGINT/SIGTERM)
cancels the nursery; ``finally`` closes the WAL and LevelDB, so a restart reopens both
cleanly. A Byzantine behaviour (``node.byzantine``) is announced with a loud warning at
start and in ``status``.

``run_node(config, task_status=...)`` reports a :class:`RunningNode` (bound ports, parts)
once the API listens, which tests use to find ephemeral ports.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import trio

from chain.db.level import LevelDB
from chain.genesis import Genesis, load_genesis
from chain.keys import load_key_file
from chain.ledger import CHECKPOINTS_ON_DEMAND, Ledger
from chain.mempool import MempoolConfig
from chain.vm.runtime import VMRuntime
from node.api import build_app
from node.app import ChainApp, block_digest
from node.clock import NodeClock
from node.clock_sync import build_clock_sync
from node.config import NodeConfig, parse_host_port
from node.diverge_fault import DivergingExecutor
from node.driver import ConsensusDriver, DriverConfig
from node.engines import EngineKit, build_engine, instance_tag_of, make_signing
from node.evidence import EvidenceStore, pbft_evidence_service
from node.jsonrpc import Dispatcher
from node.liveness import LivenessConfig, NodeLiveness
from node.logs import close_logging, set_context, setup_logging
from node.metrics import NodeMetrics
from node.rpc_methods import CommitWaiters, NodeInfo, RpcNode
from node.snapshot_sync import build_snapshot_sync
from node.sync import BlockSync
from node.tx_intake import TxIntake
from node.tx_rebroadcast import TxRebroadcast
from node.wal import WriteAheadLog
from p2p import (
    GossipConfig,
    GossipService,
    HeartbeatService,
    Kind,
    P2PConfig,
    PeerId,
    PeerInfo,
    PeerManager,
    TxGossip,
)

__all__ = ["NodeStartError", "RunningNode", "run_node"]

log = logging.getLogger("phalanx.node.runtime")


class NodeStartError(Exception):
    """The node cannot start (bad genesis/key combination, engine mismatch)."""


@dataclass
class RunningNode:
    """What a started node reports: its bound ports and its parts (for tests)."""

    p2p_port: int | None
    rpc_port: int
    app: ChainApp
    driver: ConsensusDriver
    peers: PeerManager
    sync: BlockSync


class _P2PTransport:
    def __init__(self, peers: PeerManager) -> None:
        self._peers = peers

    async def send(self, peer: int, payload: bytes) -> None:
        try:
            self._peers.send_nowait(PeerId(peer), Kind.CONSENSUS, payload)
        except Exception as e:  # a full queue: the engine retransmits
            log.warning("consensus message to %s dropped: %s", peer, e)
        await trio.lowlevel.checkpoint()

    async def broadcast(self, payload: bytes) -> None:
        await self._peers.broadcast(Kind.CONSENSUS, payload)


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _peer_book(config: NodeConfig, genesis: Genesis) -> list[PeerInfo]:
    addresses: dict[int, tuple[str, int]] = {}
    for i, entry in enumerate(config.p2p.peers):
        index, _, addr = entry.partition("@")
        addresses[int(index)] = parse_host_port(f"p2p.peers[{i}]", addr)
    book = []
    for i, v in enumerate(genesis.validators):
        host, port = addresses.get(i, (None, None))
        book.append(PeerInfo(PeerId(i), v.public_key, host, port))
    return book


async def run_node(
    config: NodeConfig,
    *,
    log_to_stderr: bool = True,
    task_status: trio.TaskStatus[RunningNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the node described by ``config`` until cancelled.

    Raises:
        NodeStartError: the key is not a validator, or config and genesis disagree.
        node.config.ConfigError, chain errors: unreadable genesis, key or database.
    """
    setup_logging(config.log_path, config.node.log_level, stderr=log_to_stderr)
    db: LevelDB | None = None
    wal: WriteAheadLog | None = None
    try:
        genesis = load_genesis(config.genesis_path)
        key = load_key_file(config.key_path)
        if config.consensus.engine != genesis.engine:
            raise NodeStartError(
                f"consensus.engine is {config.consensus.engine!r} but the genesis says "
                f"{genesis.engine!r}: every validator must run the genesis engine"
            )
        db = LevelDB(config.data_dir / "ledger")
        # PBFT: the driver makes ledger checkpoints at the engine's checkpoint seqs.
        ledger = Ledger.open(db, genesis, checkpoint_interval=CHECKPOINTS_ON_DEMAND
                             if genesis.engine == "pbft" else None)
        wal = WriteAheadLog(config.data_dir / "consensus.wal")
        await _serve(config, genesis, key, ledger, wal, task_status)
    finally:
        if wal is not None:
            wal.close()
        if db is not None:
            db.close()
        log.info("node stopped")
        set_context(None)
        close_logging()


async def _serve(config: NodeConfig, genesis: Genesis, key: Any, ledger: Ledger,
                 wal: WriteAheadLog, task_status: trio.TaskStatus[RunningNode]) -> None:
    node_id, signer, verifier = make_signing(genesis, key)
    metrics = NodeMetrics()
    kit_box: list[EngineKit] = []
    m = config.mempool
    clock = NodeClock(config.testing.clock_skew_ms)  # what we stamp on blocks and tell peers
    app = ChainApp(
        genesis, ledger, key=key,
        mempool_config=MempoolConfig(tx_count_max=m.tx_count_max, bytes_max=m.bytes_max,
                                     per_sender_max=m.per_sender_max,
                                     nonce_gap_max=m.nonce_gap_max, fee_min=m.fee_min),
        runtime=(vm := VMRuntime()),
        certificate_ok=lambda cert, value: kit_box[0].verify_commit(cert, value),
        now_ms=clock.now_ms,
        block_txs_max=config.consensus.block_txs_max,
        block_bytes_max=config.consensus.block_bytes_max,
        timestamp_drift_ms_max=config.consensus.timestamp_drift_ms_max,
    )
    if config.testing.diverge_at_height:  # a test-network fault (config refuses it elsewhere)
        app.executor = DivergingExecutor(genesis.chain_id, vm, config.testing.diverge_at_height)
        log.warning("!!! TEST FAULT: this node executes block %d differently on purpose "
                    "(testing.diverge_at_height) !!!", config.testing.diverge_at_height)
    byz = config.node.byzantine
    kit = build_engine(
        genesis, node_id, signer, verifier, app.check_proposal, block_digest,
        view_timeout_ticks=config.consensus.view_timeout_ticks,
        view_timeout_ticks_max=config.consensus.view_timeout_ticks_max,
        byzantine=byz, forge_value=app.forge_value, rng=random.Random(),
    )
    kit_box.append(kit)
    if byz:
        log.warning("!!! BYZANTINE behaviour %r is ON at validator %d: this node misbehaves on "
                    "purpose (test networks only) !!!", byz, node_id)

    listen_host, listen_port = parse_host_port("p2p.listen", config.p2p.listen)
    p2p_config = P2PConfig(
        network=instance_tag_of(genesis.chain_id),
        listen_host=listen_host, listen_port=listen_port,
        frame_bytes_max=config.p2p.frame_bytes_max,
        send_queue_frames_max=config.p2p.send_queue_max,
        handshake_timeout_seconds=config.p2p.handshake_timeout_ms / 1000,
    )
    peers = PeerManager(PeerId(node_id), key.seed, _peer_book(config, genesis), p2p_config)
    consensus_in = peers.subscribe(Kind.CONSENSUS)
    requests_in = peers.subscribe(Kind.REQUEST, drop_when_full=True)
    responses_in = peers.subscribe(Kind.RESPONSE, drop_when_full=True)
    clocks = build_clock_sync(config, clock, node_id, genesis.n, peers)
    app.median_time_ms = clocks.median.now_ms  # proposals are judged against the median
    gossip = GossipService(peers, TxGossip(GossipConfig(relay=False),
                                           _sha256))
    beat_interval = config.p2p.heartbeat_ms / 1000
    driver_box: list[ConsensusDriver] = []
    liveness = NodeLiveness(
        node_id, range(genesis.n), genesis.f + 1,
        LivenessConfig(heartbeat_ms=config.p2p.heartbeat_ms,
                       phi_threshold=float(config.p2p.suspect_phi),
                       pause_ms=config.p2p.suspect_pause_ms,
                       tick_seconds=peers.config.tick_seconds),
        boot_ms=_now_ms(), rng=random.Random(),
    )
    beats = HeartbeatService(
        peers,
        lambda: liveness.status_bytes(app.head.height,
                                      driver_box[0].kit.view() if driver_box else 0),
        interval_seconds=beat_interval,
    )
    transport = _P2PTransport(peers)
    driver = ConsensusDriver(
        kit, app, wal, transport,
        DriverConfig(
            tick_ms=config.consensus.tick_ms, block_time_ms=config.consensus.block_time_ms,
            backup_propose_ms=2 * config.consensus.view_timeout_ticks * config.consensus.tick_ms
            + 4 * config.consensus.block_time_ms,
        ),
        now_ms=_now_ms,
    )
    driver_box.append(driver)

    async def sync_send(peer: int, kind: str, payload: bytes) -> None:
        try:
            peers.send_nowait(PeerId(peer), Kind.REQUEST if kind == "request" else Kind.RESPONSE,
                              payload)
        except Exception as e:
            log.warning("sync %s to %s dropped: %s", kind, peer, e)
        await trio.lowlevel.checkpoint()

    def penalize(peer: int, why: str) -> None:
        peers.report(PeerId(peer), 10, why)

    snapshot_server, snapshot_fetcher = build_snapshot_sync(
        config.storage, kit, verifier, driver, penalize, time.monotonic)
    sync = BlockSync(ledger, driver.apply_synced, sync_send, requests_in, responses_in,
                     penalize=penalize, snapshot_server=snapshot_server,
                     snapshot_fetcher=snapshot_fetcher)
    driver.on_state_wanted = sync.want_state

    waiters = CommitWaiters()
    last_commit = [time.monotonic()]

    def on_commit(outcome: Any) -> None:
        now = time.monotonic()
        metrics.block_interval.observe(now - last_commit[0])
        metrics.block_processing.observe(outcome.seconds)
        last_commit[0] = now
        metrics.total_txs.inc(len(outcome.block.transactions))
        waiters.on_commit(outcome)

    driver.commit_listeners.append(on_commit)
    # Evidence is reliably broadcast to every validator and recorded once verified there
    # (and kept across restarts in data/evidence.jsonl).
    evidence_store = EvidenceStore(path=config.data_dir / "evidence.jsonl")
    evidence = pbft_evidence_service(int(node_id), genesis.n, verifier,
                                     instance_tag_of(genesis.chain_id), peers, metrics,
                                     evidence_store)

    def on_evidence(ev: Any) -> None:
        metrics.evidence.labels(ev.kind).inc()
        evidence.report(ev)

    driver.on_evidence = on_evidence
    # Gossiped transactions reach the mempool in each sender's nonce order.
    intake = TxIntake(app, gossip, metrics)
    driver.commit_listeners.append(intake.on_commit)
    # Transactions still pending a period later are gossiped again (a partition may have hidden them).
    rebroadcast = TxRebroadcast(app.mempool, gossip, metrics, period_s=m.rebroadcast_ms / 1000)

    def refresh() -> None:
        metrics.height.set(app.head.height)
        metrics.view.set(kit.view())
        metrics.mempool_size.set(len(app.mempool))
        metrics.peers.set(len(peers.connected_peers()))
        stats = kit.inner.statistics()
        metrics.observe_view_changes(int(getattr(stats, "view_changes", 0)))
        metrics.observe_noops(driver.noops)
        liveness.update_metrics(metrics)
        clocks.update_metrics(metrics, app.timestamp_rejections, app.invalid_proposals)

    metrics.refresh = refresh

    set_context(lambda: {"lamport": peers.clock.time, "height": app.head.height,
                         "view": kit.view(), "node": int(node_id)})

    async def gossip_tx(raw: bytes) -> None:
        await gossip.submit(raw)

    rpc = RpcNode(
        app, genesis,
        NodeInfo(config.node.moniker, int(node_id), config.p2p.listen, config.rpc.listen,
                 config.rpc.unsafe),
        driver=driver, peers=peers, gossip=gossip_tx, waiters=waiters, metrics=metrics,
        catching_up=lambda: sync.catching_up, suspicions=liveness.suspected, runtime=vm,
        liveness=liveness, evidence=evidence_store, tx_intake=intake, clock=clocks,
        tx_rebroadcast=rebroadcast,
    )
    asgi = build_app(Dispatcher(rpc.methods()), body_bytes_max=config.rpc.body_bytes_max,
                     block_feed=waiters.block_feed, metrics=metrics.render,
                     websocket_clients_max=config.rpc.websocket_clients_max)

    async with trio.open_nursery() as nursery:
        p2p_port = await nursery.start(peers.run)
        await nursery.start(gossip.run)
        await nursery.start(beats.run)
        await nursery.start(clocks.service.run)
        await nursery.start(sync.run)
        await nursery.start(driver.run)
        nursery.start_soon(_consensus_reader, consensus_in, driver)
        await nursery.start(evidence.run)
        await nursery.start(intake.run)
        await nursery.start(rebroadcast.run)
        await nursery.start(liveness.run, beats.received,
                            lambda peer, beat: sync.observe_height(peer, beat.height))
        rpc_port = await nursery.start(_serve_api, asgi, config.rpc.listen)
        log.info("validator %d of chain %d (%s) up: p2p %s:%s, rpc %s:%s, head %d",
                 node_id, genesis.chain_id, genesis.engine, listen_host, p2p_port,
                 parse_host_port("rpc.listen", config.rpc.listen)[0], rpc_port, app.head.height)
        task_status.started(RunningNode(p2p_port, rpc_port, app, driver, peers, sync))


async def _consensus_reader(channel: Any, driver: ConsensusDriver) -> None:
    async for peer, _kind, _lamport, payload in channel:
        await driver.receive(int(peer), payload)


async def _serve_api(asgi: Any, listen: str, *,
                     task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config as HyperConfig
    from hypercorn.trio import serve

    host, port = parse_host_port("rpc.listen", listen)
    hc = HyperConfig()
    hc.bind = [f"{host}:{port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 1.0

    async def started(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(asgi, hc, task_status=task_status, mode="asgi")

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(started)
        bound = int(binds[0].rsplit(":", 1)[1]) if binds else port
        task_status.started(bound)

