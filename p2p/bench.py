"""Benchmark: messages per second through an encrypted session over TCP loopback.

Run ``python -m p2p.bench`` (options: ``--frames``, ``--payload-bytes``, ``--runs``,
``--mode session|manager|both``). Both ends run in this one process and on one core, so the
figure is the throughput of sender *and* receiver together (seal, frame, send_all, receive,
cut, open, decode). Modes:

* ``session``: two :class:`~p2p.transport.Connection` objects after a real handshake; the
  sender queues pre-encoded envelopes (the per-message cost of the transport alone);
* ``manager``: two :class:`~p2p.peers.PeerManager` objects; ``send_nowait`` builds each
  envelope with its Lamport tick, the receiver reads ``inbound`` (the cost a node pays).

Prints each run and the medians: wall-clock messages/s, and CPU time per message (less
sensitive to other load on a shared machine; it includes setup and the handshake). Not used by tests (no wall-clock asserts anywhere).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import trio

from p2p.config import P2PConfig
from p2p.errors import QueueFull
from p2p.handshake import Identity, Role
from p2p.messages import Envelope, Kind, PeerId
from p2p.peers import PeerInfo, PeerManager
from p2p.transport import Connection, SecureLink, SendQueue, TrafficCounters, secure_handshake

# Flood limits far above any rate this can reach: the benchmark measures the transport.
CFG = P2PConfig(network=b"bench", send_queue_frames_max=8192, inbound_queue_max=8192,
                flood_msgs_per_tick=1e9, flood_burst_msgs=10**9)
SEEDS = [random.Random(f"bench-{i}").randbytes(32) for i in range(2)]


async def _session_run(frames: int, payload: bytes) -> float:
    a, b = Identity(SEEDS[0]), Identity(SEEDS[1])
    links: dict[str, SecureLink] = {}
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        accepted = trio.Event()

        async def serve(stream: trio.SocketStream) -> None:
            links["b"] = await secure_handshake(stream, identity=b, role=Role.RESPONDER,
                                                config=CFG, allowed={a.public_key})
            accepted.set()
            await trio.sleep_forever()

        await nursery.start(trio.serve_listeners, serve, listeners)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        links["a"] = await secure_handshake(stream, identity=a, role=Role.INITIATOR, config=CFG,
                                            allowed={b.public_key})
        await accepted.wait()
        done = trio.Event()
        count = 0

        async def on_message(env: Envelope) -> None:
            nonlocal count
            count += 1
            if count == frames:
                done.set()

        async def ignore(env: Envelope) -> None:
            return None

        queue = SendQueue(CFG.send_queue_frames_max, CFG.send_queue_bytes_max)
        sender = Connection(links["a"], config=CFG, outbound=queue, on_message=ignore,
                            counters=TrafficCounters())
        receiver = Connection(links["b"], config=CFG, outbound=SendQueue(1, 1),
                              on_message=on_message, counters=TrafficCounters())
        nursery.start_soon(sender.run)
        nursery.start_soon(receiver.run)
        data = Envelope(Kind.CONSENSUS, 1, payload).encode()
        start = time.perf_counter()
        for _ in range(frames):
            try:
                queue.put_nowait(data)
            except trio.WouldBlock:
                await queue.put(data)
        await done.wait()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return frames / elapsed


async def _manager_run(frames: int, payload: bytes) -> float:
    keys = [Identity(s).public_key for s in SEEDS]
    book = [PeerInfo(PeerId(i), keys[i]) for i in range(2)]
    m0 = PeerManager(PeerId(0), SEEDS[0], book, CFG)
    m1 = PeerManager(PeerId(1), SEEDS[1], book, CFG)
    async with trio.open_nursery() as nursery:
        await nursery.start(m0.run)
        port1 = await nursery.start(m1.run)
        m0.set_address(PeerId(1), "127.0.0.1", port1)
        await m0.wait_connected()
        await m1.wait_connected()
        start = time.perf_counter()

        async def produce() -> None:
            for _ in range(frames):
                try:
                    m0.send_nowait(PeerId(1), Kind.CONSENSUS, payload)
                except QueueFull:
                    await m0.send(PeerId(1), Kind.CONSENSUS, payload)

        nursery.start_soon(produce)
        received = 0
        while received < frames:  # a consumer that drains without a schedule point per item
            await m1.inbound.receive()
            received += 1
            while received < frames:
                try:
                    m1.inbound.receive_nowait()
                except trio.WouldBlock:
                    break
                received += 1
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return frames / elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print each run and the median."""
    parser = argparse.ArgumentParser(prog="python -m p2p.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=["session", "manager", "both"], default="both")
    args = parser.parse_args(argv)
    payload = random.Random(0).randbytes(args.payload_bytes)
    modes = ["session", "manager"] if args.mode == "both" else [args.mode]
    for mode in modes:
        fn = _session_run if mode == "session" else _manager_run
        rates = []
        cpu_us = []
        for i in range(args.runs):
            cpu0 = time.process_time()
            rate = trio.run(fn, args.frames, payload)
            cpu = (time.process_time() - cpu0) / args.frames * 1e6
            rates.append(rate)
            cpu_us.append(cpu)
            print(f"{mode} run {i + 1}: {rate:,.0f} msgs/s, {cpu:.1f} us CPU per message")
        print(f"{mode}: median {statistics.median(rates):,.0f} msgs/s, "
              f"{statistics.median(cpu_us):.1f} us CPU per message (both ends), over "
              f"{args.runs} runs of {args.frames} messages with {args.payload_bytes} B payloads "
              f"(one process, encrypted, TCP 127.0.0.1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
