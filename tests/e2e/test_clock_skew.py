"""A validator with a skewed clock: seen by its peers, its blocks refused, the chain goes on.

Four real ``phalanx start`` processes. Validator 0, the primary of view 0, runs with
``[testing] clock_skew_ms = +30 s`` (the bound is 2 s): it stamps its blocks and answers
time requests 30 s ahead. Checks: every honest node's ``net_info`` shows validator 0's offset
at +30 s within the Cristian error (rtt/2), the honest nodes refuse its proposals
(``phalanx_proposals_rejected_total{reason="timestamp"}``), a view change moves past it,
transactions commit, and no committed block carries a timestamp ahead of real time by more
than the bound. The skewed node itself sees the median time 30 s behind its clock.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest

from cli.cmd_query import find_field
from node import config as node_config
from tests.e2e.net import Network, address, cli, make_network, running, wait_until

pytestmark = pytest.mark.e2e

SKEW_MS = 30_000
BOUND_MS = 2_000
SKEWED = 0  # the primary of view 0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network = make_network(tmp_path_factory.mktemp("skew"), 4, chain_id=81)
    for node in network.nodes:
        config = node_config.load_config(node.home)
        config = dataclasses.replace(
            config,
            consensus=dataclasses.replace(config.consensus, timestamp_drift_ms_max=BOUND_MS),
            p2p=dataclasses.replace(config.p2p, clock_sync_ms=500),
        )
        if node.index == SKEWED:
            config = dataclasses.replace(
                config, testing=node_config.TestingSection(test_network_only=True,
                                                          clock_skew_ms=SKEW_MS))
        node_config.write_config(config)
    with running(network):
        yield network


def _clock_of(net: Network, observer: int, peer: int) -> dict[str, Any] | None:
    info = net.nodes[observer].call("net_info", timeout=5)
    got: dict[str, Any] | None = info["clock"]["peers"].get(str(peer))
    return got


def _rejected_timestamps(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(r'^phalanx_proposals_rejected_total\{reason="timestamp"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_skewed_validator_is_measured_refused_and_passed(net: Network) -> None:
    honest = [n for n in net.nodes if n.index != SKEWED]
    # 1. Every honest node measures validator 0 at +30 s, within rtt/2.
    for node in honest:
        est = wait_until(f"node {node.index} to measure validator {SKEWED}",
                         partial(_clock_of, net, node.index, SKEWED), 30)
        assert abs(est["offset_ms"] - SKEW_MS) <= est["error_ms"] + 1, est
        print(f"clock: node {node.index} sees validator {SKEWED} at {est['offset_ms']:+.3f} ms "
              f"(error {est['error_ms']:.3f} ms, rtt {est['rtt_ms']:.3f} ms)")
        for peer in honest:
            if peer is not node:
                other = wait_until("an honest estimate",
                                   partial(_clock_of, net, node.index, peer.index), 30)
                assert abs(other["offset_ms"]) <= other["error_ms"] + 1, other
                print(f"clock: node {node.index} sees node {peer.index} at "
                      f"{other['offset_ms']:+.3f} ms (error {other['error_ms']:.3f} ms)")
        status = node.call("status", timeout=5)
        assert abs(status["clock"]["median_time_offset_ms"]) < BOUND_MS / 4, status["clock"]
    skewed_status = net.nodes[SKEWED].call("status", timeout=5)
    assert "CLOCK SKEW" in skewed_status["clock_warning"]
    assert abs(skewed_status["clock"]["median_time_offset_ms"] + SKEW_MS) < BOUND_MS / 4

    # 2. Transactions commit, after a view change past the skewed primary.
    for amount in (1, 2):
        result = cli("tx", "send", "--key", str(net.user_key_files[0]), "--to",
                     address(net.users[1]), "--amount", str(amount), "--wait", "--json",
                     "--node", net.urls([n.index for n in honest]))  # fmt: skip
        assert result.returncode == 0, result.stderr + net.nodes[1].log_tail()
    height = int(find_field(json.loads(result.stdout), "height"))
    for node in honest:
        status = node.call("status", timeout=5)
        assert status["view"] >= 1 and status["primary"] != SKEWED, status
    # 3. The honest nodes refused validator 0's skewed proposals, and said so.
    assert sum(_rejected_timestamps(n.url) for n in honest) >= 1
    assert "ahead of the validators' median time" in "".join(
        n.log_path.read_text(errors="replace") for n in honest)
    # 4. No committed block is stamped ahead of real time by more than the bound.
    now_ms = int(time.time() * 1000)
    proposers = set()
    for h in range(1, height + 1):
        block = net.nodes[1].call("block", {"height": h}, timeout=5)
        assert block["timestamp"] <= now_ms + BOUND_MS, block
        proposers.add(block["proposer"])
    assert address(net.nodes[SKEWED].key) not in proposers
    # 5. The node's metrics agree with what it reports: blocks were timed as they were
    #    executed, and no-op deliveries (e.g. the refused primary's seqs) are counted.
    node = net.nodes[1]
    before = node.call("status", timeout=5)["noop_deliveries"]
    text = httpx.get(f"{node.url}/metrics", timeout=5).text
    after = node.call("status", timeout=5)["noop_deliveries"]
    processed = re.search(r"^phalanx_state_block_processing_seconds_count (\S+)$", text, re.M)
    assert processed and float(processed.group(1)) >= height - 1, processed
    noops = re.search(r"^phalanx_consensus_noop_deliveries_total (\S+)$", text, re.M)
    assert noops and before <= float(noops.group(1)) <= after
